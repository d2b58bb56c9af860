/* scenario_server — the `server` part of a scenario: routes, responses and every response
 * kind (plain, raw, JSONP, long poll, stream, SSE, WebSocket), CORS policies and channels;
 * and scenario_free(). Keys and meanings: docs/scenarios.md.
 */
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>
#include "scenario_load.h"

static const char *const SERVER_KEYS[] = {"routes", "channels", NULL};
static const char *const ROUTE_KEYS[] = {"name",       "match", "response", "responses",
                                         "after_last", "cors",  NULL};
static const char *const MATCH_KEYS_[] = {"method", "path", "path_regex", "query", "headers", NULL};
static const char *const RESPONSE_KEYS[] = {
    "status",     "reason",  "headers",  "body",  "body_base64", "body_file",  "preset",  "delay",
    "body_delay", "trickle", "transfer", "fault", "raw",         "raw_base64", "require", "jsonp",
    "long_poll",  "stream",  "then",     "sse",   "websocket",   NULL};
static const char *const TRICKLE_KEYS[] = {"bytes", "every", NULL};
static const char *const FAULT_KEYS[] = {"action", "after_bytes", NULL};
static const char *const REQUIRE_KEYS[] = {"headers", NULL};
static const char *const JSONP_KEYS[] = {"param", "data", "data_json", "throw", NULL};
static const char *const LP_KEYS[] = {"channel",    "cursor_param", "hold_timeout",
                                      "on_timeout", "format",       NULL};
static const char *const CHUNK_KEYS[] = {"after", "data", "data_base64", NULL};
static const char *const SSE_KEYS[] = {"line_ending",  "bom",    "data_space", "final_blank_line",
                                       "content_type", "events", "then",       NULL};
static const char *const SSE_ITEM_KEYS[] = {"data",  "data_size", "id",         "event",
                                            "retry", "comment",   "after",      "blank_line",
                                            "lines", "raw",       "raw_base64", NULL};
static const char *const WS_KEYS[] = {"handshake", "script", "linger", NULL};
static const char *const HS_KEYS[] = {"status",         "subprotocol", "extensions", "accept",
                                      "upgrade_header", "headers",     NULL};
static const char *const CORS_KEYS[] = {"allow_origin",  "allow_credentials", "allow_methods",
                                        "allow_headers", "expose_headers",    "max_age",
                                        "vary_origin",   "preflight",         NULL};
static const char *const CHANNEL_KEYS[] = {"events", NULL};
static const char *const CHANNEL_EVENT_KEYS[] = {"after", "data", NULL};

static const unsigned char GIF_1X1[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
static const char PNG_1X1_B64[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
                                  "YAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

static void set_bytes(struct bytes *b, const void *data, size_t len)
{
    b->data = ld_alloc(len + 1, 1);
    memcpy(b->data, data, len);
    b->len = len;
}

/* ------------------------------------------------------------------ response kinds */

static bool load_response(struct ld *ld, const struct ynode *n, struct response *r);

static enum stream_end load_then(struct ld *ld, const struct ynode *n)
{
    const char *s = ld_string(ld, n, "then");
    if (!s)
        return END_CLOSE;
    if (!strcmp(s, "close"))
        return END_CLOSE;
    if (!strcmp(s, "hang"))
        return END_HANG;
    if (!strcmp(s, "reset"))
        return END_RESET;
    ld_err(ld, n, "then: expected close, hang or reset, got '%s'", s);
    return END_CLOSE;
}

static void load_jsonp(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_map(ld, n, "jsonp"))
        return;
    ld_keys(ld, n, JSONP_KEYS, "jsonp");
    struct jsonp_spec *j = r->jsonp = ld_alloc(1, sizeof *j);
    const struct ynode *v;
    if ((v = ymap_get(n, "param")) && ld_string(ld, v, "jsonp.param"))
        j->param = ld_strdup(v->str);
    const struct ynode *data = ymap_get(n, "data"), *dj = ymap_get(n, "data_json"),
                       *th = ymap_get(n, "throw");
    if (data && dj)
        ld_err(ld, dj, "jsonp: give data or data_json, not both");
    if (data) {
        json_t *doc = ynode_to_json(data);
        j->data_json = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(doc);
    } else if (dj && ld_text(ld, dj, "jsonp.data_json")) {
        j->data_json = ld_strdup(dj->str);
    }
    if (th && ld_text(ld, th, "jsonp.throw")) {
        j->throws = true;
        j->throw_message = ld_strdup(th->str);
    }
}

static void load_long_poll(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_map(ld, n, "long_poll"))
        return;
    ld_keys(ld, n, LP_KEYS, "long_poll");
    struct long_poll_spec *lp = r->long_poll = ld_alloc(1, sizeof *lp);
    lp->hold_timeout_ms = 30000;
    const struct ynode *v;
    if (!(v = ymap_get(n, "channel")))
        ld_err(ld, n, "long_poll: missing 'channel' (a name from server.channels)");
    else if (ld_string(ld, v, "long_poll.channel")) {
        lp->channel = ld_strdup(v->str);
        bool found = false;
        for (size_t i = 0; i < ld->s->n_channels; i++)
            found |= !strcmp(ld->s->channels[i].name, v->str);
        if (!found)
            ld_err(ld, v, "long_poll.channel: no channel '%s' in server.channels", v->str);
    }
    if ((v = ymap_get(n, "cursor_param")) && ld_string(ld, v, "long_poll.cursor_param"))
        lp->cursor_param = ld_strdup(v->str);
    if ((v = ymap_get(n, "hold_timeout")))
        ld_duration(ld, v, &lp->hold_timeout_ms, "long_poll.hold_timeout");
    if ((v = ymap_get(n, "on_timeout")) && ld_is_map(ld, v, "long_poll.on_timeout")) {
        lp->on_timeout = ld_alloc(1, sizeof *lp->on_timeout);
        load_response(ld, v, lp->on_timeout);
    }
    if ((v = ymap_get(n, "format")) && ld_string(ld, v, "long_poll.format")) {
        if (!strcmp(v->str, "json"))
            lp->format = LP_JSON;
        else if (!strcmp(v->str, "text"))
            lp->format = LP_TEXT;
        else
            ld_err(ld, v, "long_poll.format: expected json or text, got '%s'", v->str);
    }
}

static void load_stream(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_seq(ld, n, "stream"))
        return;
    r->stream = ld_alloc(n->n, sizeof *r->stream);
    for (size_t i = 0; i < n->n; i++) {
        const struct ynode *it = n->values[i];
        struct stream_chunk *c = &r->stream[r->n_stream];
        if (it->kind == Y_SCALAR) {
            if ((c->data = ld_tmpl(ld, it, "stream item")))
                r->n_stream++;
            continue;
        }
        if (!ld_is_map(ld, it, "stream item"))
            continue;
        ld_keys(ld, it, CHUNK_KEYS, "a stream item");
        const struct ynode *v;
        if ((v = ymap_get(it, "after")))
            ld_duration(ld, v, &c->after_ms, "stream.after");
        const struct ynode *d = ymap_get(it, "data"), *b = ymap_get(it, "data_base64");
        if ((d != NULL) == (b != NULL)) {
            ld_err(ld, it, "a stream item needs exactly one of data and data_base64");
            continue;
        }
        if (d && !(c->data = ld_tmpl(ld, d, "stream.data")))
            continue;
        if (b && !ld_base64(ld, b, &c->bytes, "stream.data_base64"))
            continue;
        r->n_stream++;
    }
}

static void sse_field(struct ld *ld, const struct ynode *it, const char *key, bool *has,
                      struct bytes *out)
{
    const struct ynode *v = ymap_get(it, key);
    if (!v)
        return;
    if (v->kind != Y_SCALAR || v->type == YS_NULL) {
        ld_err(ld, v, "sse %s: expected text, got %s", key, ynode_kind_name(v));
        return;
    }
    *has = true;
    ld_bytes_text(v, out);
}

static void load_sse(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_map(ld, n, "sse"))
        return;
    ld_keys(ld, n, SSE_KEYS, "sse");
    struct sse_spec *s = r->sse = ld_alloc(1, sizeof *s);
    s->data_space = true;
    s->final_blank_line = true;
    const struct ynode *v;
    if ((v = ymap_get(n, "line_ending")) && ld_string(ld, v, "sse.line_ending")) {
        const char *names[] = {"lf", "cr", "crlf", "mixed"};
        bool ok = false;
        for (int i = 0; i < 4; i++)
            if (!strcmp(v->str, names[i])) {
                s->line_ending = (enum sse_line_ending)i;
                ok = true;
            }
        if (!ok)
            ld_err(ld, v, "sse.line_ending: expected lf, cr, crlf or mixed, got '%s'", v->str);
    }
    if ((v = ymap_get(n, "bom")))
        ld_bool(ld, v, &s->bom, "sse.bom");
    if ((v = ymap_get(n, "data_space")))
        ld_bool(ld, v, &s->data_space, "sse.data_space");
    if ((v = ymap_get(n, "final_blank_line")))
        ld_bool(ld, v, &s->final_blank_line, "sse.final_blank_line");
    if ((v = ymap_get(n, "content_type"))) {
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            s->content_type = ld_strdup("");
        else if (ld_text(ld, v, "sse.content_type"))
            s->content_type = ld_strdup(v->str);
    }
    if ((v = ymap_get(n, "then")))
        s->then = load_then(ld, v);
    const struct ynode *events = ymap_get(n, "events");
    if (!events || !ld_is_seq(ld, events, "sse.events"))
        return;
    s->items = ld_alloc(events->n, sizeof *s->items);
    for (size_t i = 0; i < events->n; i++) {
        const struct ynode *it = events->values[i];
        if (!ld_is_map(ld, it, "an sse event"))
            continue;
        ld_keys(ld, it, SSE_ITEM_KEYS, "an sse event");
        struct sse_item *x = &s->items[s->n_items];
        if ((v = ymap_get(it, "after")))
            ld_duration(ld, v, &x->after_ms, "sse after");
        const struct ynode *lines = ymap_get(it, "lines"), *raw = ymap_get(it, "raw"),
                           *raw64 = ymap_get(it, "raw_base64");
        int special = (lines != NULL) + (raw != NULL) + (raw64 != NULL);
        if (special > 1) {
            ld_err(ld, it, "an sse event has at most one of lines, raw and raw_base64");
            continue;
        }
        if (lines) {
            x->kind = SSE_LINES;
            if (ld_is_seq(ld, lines, "sse lines")) {
                x->lines = ld_alloc(lines->n, sizeof *x->lines);
                for (size_t l = 0; l < lines->n; l++)
                    if (ld_text(ld, lines->values[l], "an sse line"))
                        ld_bytes_text(lines->values[l], &x->lines[x->n_lines++]);
            }
        } else if (raw) {
            x->kind = SSE_RAW;
            if (ld_text(ld, raw, "sse raw"))
                ld_bytes_text(raw, &x->raw);
        } else if (raw64) {
            x->kind = SSE_RAW;
            ld_base64(ld, raw64, &x->raw, "sse raw_base64");
        } else {
            x->kind = SSE_EVENT;
            sse_field(ld, it, "data", &x->has_data, &x->data);
            sse_field(ld, it, "id", &x->has_id, &x->id);
            sse_field(ld, it, "event", &x->has_event, &x->event);
            sse_field(ld, it, "retry", &x->has_retry, &x->retry);
            sse_field(ld, it, "comment", &x->has_comment, &x->comment);
            if ((v = ymap_get(it, "data_size"))) {
                long long size;
                if (x->has_data)
                    ld_err(ld, v, "an sse event has data or data_size, not both");
                else if (ld_int(ld, v, 0, 64LL * 1024 * 1024, &size, "sse data_size")) {
                    x->has_data = true;
                    x->data.data = ld_alloc((size_t)size + 1, 1);
                    memset(x->data.data, 'x', (size_t)size);
                    x->data.len = (size_t)size;
                }
            }
            bool blank = true;
            if ((v = ymap_get(it, "blank_line")) && ld_bool(ld, v, &blank, "sse blank_line"))
                x->no_blank_line = !blank;
            if (!x->has_data && !x->has_id && !x->has_event && !x->has_retry && !x->has_comment) {
                ld_err(ld, it,
                       "an sse event needs at least one of data, data_size, id, event, "
                       "retry, comment (or lines, raw, raw_base64)");
                continue;
            }
        }
        s->n_items++;
    }
}

static const char *const STEP_NAMES[] = {"send", "ping",  "pong",  "wait", "receive",
                                         "echo", "frame", "close", "drop", NULL};

static void ws_payload(struct ld *ld, const struct ynode *m, const char *text_key,
                       const char *b64_key, struct bytes *out, const char *what)
{
    const struct ynode *t = ymap_get(m, text_key), *b = ymap_get(m, b64_key);
    if (t && b)
        ld_err(ld, b, "%s: give %s or %s, not both", what, text_key, b64_key);
    else if (t && ld_text(ld, t, what))
        ld_bytes_text(t, out);
    else if (b)
        ld_base64(ld, b, out, what);
}

static bool load_step(struct ld *ld, const struct ynode *n, struct ws_step *st)
{
    if (n->kind != Y_MAP || n->n != 1) {
        ld_err(ld, n,
               "a websocket step is a one-key mapping: send, ping, pong, wait, receive, "
               "echo, frame, close or drop");
        return false;
    }
    ld_keys(ld, n, STEP_NAMES, "a websocket step");
    const char *k = n->keys[0]->str;
    const struct ynode *v = n->values[0];
    st->loc = n->loc;
    st->fin = true;
    if (!strcmp(k, "send")) {
        st->kind = WS_SEND;
        if (v->kind == Y_SCALAR) {
            if (ld_text(ld, v, "send"))
                ld_bytes_text(v, &st->payload);
            return true;
        }
        if (!ld_is_map(ld, v, "send"))
            return false;
        static const char *const keys[] = {"text", "binary", "binary_base64", "fragments", NULL};
        ld_keys(ld, v, keys, "send");
        const struct ynode *t = ymap_get(v, "text"), *b = ymap_get(v, "binary"),
                           *b64 = ymap_get(v, "binary_base64"), *f = ymap_get(v, "fragments");
        if ((t != NULL) + (b != NULL) + (b64 != NULL) != 1) {
            ld_err(ld, v, "send: give exactly one of text, binary and binary_base64");
            return false;
        }
        st->binary = !t;
        if (t && ld_text(ld, t, "send.text"))
            ld_bytes_text(t, &st->payload);
        if (b && ld_text(ld, b, "send.binary"))
            ld_bytes_text(b, &st->payload);
        if (b64)
            ld_base64(ld, b64, &st->payload, "send.binary_base64");
        long long frags;
        if (f && ld_int(ld, f, 1, 100000, &frags, "send.fragments"))
            st->fragments = (unsigned)frags;
        return true;
    }
    if (!strcmp(k, "ping") || !strcmp(k, "pong")) {
        st->kind = !strcmp(k, "ping") ? WS_PING : WS_PONG;
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            return true;
        if (v->kind == Y_SCALAR) {
            if (ld_text(ld, v, k))
                ld_bytes_text(v, &st->payload);
            return true;
        }
        if (!ld_is_map(ld, v, k))
            return false;
        static const char *const keys[] = {"payload", "payload_base64", NULL};
        ld_keys(ld, v, keys, k);
        ws_payload(ld, v, "payload", "payload_base64", &st->payload, k);
        return true;
    }
    if (!strcmp(k, "wait")) {
        st->kind = WS_WAIT;
        return ld_duration(ld, v, &st->ms, "wait");
    }
    if (!strcmp(k, "receive") || !strcmp(k, "echo")) {
        bool echo = !strcmp(k, "echo");
        st->kind = echo ? WS_ECHO : WS_RECEIVE;
        st->ms = 5000;
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            return true;
        if (v->kind == Y_SCALAR)
            return ld_duration(ld, v, &st->ms, k);
        if (!ld_is_map(ld, v, k))
            return false;
        static const char *const rkeys[] = {"timeout", NULL};
        static const char *const ekeys[] = {"timeout", "count", NULL};
        ld_keys(ld, v, echo ? ekeys : rkeys, k);
        const struct ynode *t = ymap_get(v, "timeout"), *c = ymap_get(v, "count");
        if (t)
            ld_duration(ld, t, &st->ms, "timeout");
        long long count;
        if (c && ld_int(ld, c, 0, 1000000, &count, "echo.count"))
            st->count = (unsigned)count;
        return true;
    }
    if (!strcmp(k, "frame")) {
        st->kind = WS_FRAME;
        if (!ld_is_map(ld, v, "frame"))
            return false;
        static const char *const keys[] = {"opcode",      "fin",    "rsv1",    "rsv2",
                                           "rsv3",        "masked", "payload", "payload_base64",
                                           "length_form", NULL};
        ld_keys(ld, v, keys, "frame");
        const struct ynode *x;
        long long op = 1, lf = 0;
        if (!(x = ymap_get(v, "opcode")))
            ld_err(ld, v, "frame: missing 'opcode' (0..15)");
        else if (ld_int(ld, x, 0, 15, &op, "frame.opcode"))
            st->opcode = (int)op;
        if ((x = ymap_get(v, "fin")))
            ld_bool(ld, x, &st->fin, "frame.fin");
        if ((x = ymap_get(v, "rsv1")))
            ld_bool(ld, x, &st->rsv1, "frame.rsv1");
        if ((x = ymap_get(v, "rsv2")))
            ld_bool(ld, x, &st->rsv2, "frame.rsv2");
        if ((x = ymap_get(v, "rsv3")))
            ld_bool(ld, x, &st->rsv3, "frame.rsv3");
        if ((x = ymap_get(v, "masked")))
            ld_bool(ld, x, &st->masked, "frame.masked");
        if ((x = ymap_get(v, "length_form")) && ld_int(ld, x, 0, 64, &lf, "frame.length_form")) {
            if (lf != 0 && lf != 7 && lf != 16 && lf != 64)
                ld_err(ld, x, "frame.length_form: expected 7, 16 or 64, got %lld", lf);
            st->length_form = (int)lf;
        }
        ws_payload(ld, v, "payload", "payload_base64", &st->payload, "frame");
        return true;
    }
    if (!strcmp(k, "close")) {
        st->kind = WS_CLOSE;
        st->ms = 5000;
        long long code;
        if (v->kind == Y_SCALAR && v->type == YS_INT) {
            if (ld_int(ld, v, 0, 65535, &code, "close")) {
                st->has_code = true;
                st->code = (int)code;
            }
            return true;
        }
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            return true;
        if (!ld_is_map(ld, v, "close"))
            return false;
        static const char *const keys[] = {"code", "reason", "reason_base64", "timeout", NULL};
        ld_keys(ld, v, keys, "close");
        const struct ynode *c = ymap_get(v, "code"), *t = ymap_get(v, "timeout");
        if (c && ld_int(ld, c, 0, 65535, &code, "close.code")) {
            st->has_code = true;
            st->code = (int)code;
        }
        if (t)
            ld_duration(ld, t, &st->ms, "close.timeout");
        ws_payload(ld, v, "reason", "reason_base64", &st->payload, "close");
        if (st->payload.len && !c)
            ld_err(ld, v, "close: a reason needs a code");
        return true;
    }
    if (!strcmp(k, "drop")) {
        st->kind = WS_DROP;
        return true;
    }
    return false;
}

static void load_websocket(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (n->kind == Y_SCALAR && n->type == YS_NULL) {
        r->websocket = ld_alloc(1, sizeof *r->websocket);
    } else if (!ld_is_map(ld, n, "websocket")) {
        return;
    }
    ld_keys(ld, n, WS_KEYS, "websocket");
    struct ws_spec *w = r->websocket ? r->websocket : (r->websocket = ld_alloc(1, sizeof *w));
    w->linger_ms = 5000;
    struct ws_handshake_spec *h = &w->handshake;
    h->status = 101;
    h->upgrade_header = true;
    const struct ynode *v, *hs = ymap_get(n, "handshake");
    if (hs && ld_is_map(ld, hs, "websocket.handshake")) {
        ld_keys(ld, hs, HS_KEYS, "websocket.handshake");
        long long st;
        if ((v = ymap_get(hs, "status")) && ld_int(ld, v, 100, 999, &st, "handshake.status"))
            h->status = (int)st;
        if ((v = ymap_get(hs, "subprotocol"))) {
            if (v->kind == Y_SCALAR && v->type == YS_NULL)
                h->subprotocol = WS_SUB_NONE;
            else if (ld_text(ld, v, "handshake.subprotocol")) {
                if (!strcmp(v->str, "first_offered"))
                    h->subprotocol = WS_SUB_FIRST_OFFERED;
                else if (!strcmp(v->str, "none"))
                    h->subprotocol = WS_SUB_NONE;
                else {
                    h->subprotocol = WS_SUB_NAMED;
                    h->subprotocol_name = ld_strdup(v->str);
                }
            }
        }
        if ((v = ymap_get(hs, "extensions")) && ld_text(ld, v, "handshake.extensions"))
            h->extensions = ld_strdup(v->str);
        if ((v = ymap_get(hs, "accept")) && ld_string(ld, v, "handshake.accept")) {
            if (!strcmp(v->str, "correct"))
                h->accept = WS_ACCEPT_CORRECT;
            else if (!strcmp(v->str, "wrong"))
                h->accept = WS_ACCEPT_WRONG;
            else if (!strcmp(v->str, "omit"))
                h->accept = WS_ACCEPT_OMIT;
            else
                ld_err(ld, v, "handshake.accept: expected correct, wrong or omit, got '%s'",
                       v->str);
        }
        if ((v = ymap_get(hs, "upgrade_header"))) {
            if (v->kind == Y_SCALAR && v->type == YS_BOOL)
                h->upgrade_header = v->b;
            else if (ld_text(ld, v, "handshake.upgrade_header"))
                h->upgrade_value = ld_strdup(v->str);
        }
        if ((v = ymap_get(hs, "headers")))
            ld_headers(ld, v, &h->headers, "handshake.headers");
    }
    if ((v = ymap_get(n, "linger")))
        ld_duration(ld, v, &w->linger_ms, "websocket.linger");
    const struct ynode *script = ymap_get(n, "script");
    if (script && ld_is_seq(ld, script, "websocket.script")) {
        w->steps = ld_alloc(script->n, sizeof *w->steps);
        for (size_t i = 0; i < script->n; i++)
            if (load_step(ld, script->values[i], &w->steps[w->n_steps]))
                w->n_steps++;
    }
}

/* ------------------------------------------------------------------ plain responses */

static bool load_response(struct ld *ld, const struct ynode *n, struct response *r)
{
    r->loc = n->loc;
    r->status = 200;
    if (!ld_is_map(ld, n, "response"))
        return false;
    ld_keys(ld, n, RESPONSE_KEYS, "a response");
    const struct ynode *v;
    long long num;
    if ((v = ymap_get(n, "status")) && ld_int(ld, v, 100, 999, &num, "status"))
        r->status = (int)num;
    if ((v = ymap_get(n, "reason")) && ld_text(ld, v, "reason")) {
        if (strpbrk(v->str, "\r\n"))
            ld_err(ld, v, "reason: no line breaks (use raw for that)");
        r->reason = ld_strdup(v->str);
    }
    if ((v = ymap_get(n, "headers")))
        ld_headers(ld, v, &r->headers, "headers");

    const char *body_keys[] = {"body", "body_base64", "body_file", "preset"};
    const struct ynode *body_node = NULL;
    for (int i = 0; i < 4; i++) {
        const struct ynode *b = ymap_get(n, body_keys[i]);
        if (!b)
            continue;
        if (body_node) {
            ld_err(ld, b, "a response has one body: body, body_base64, body_file or preset");
            continue;
        }
        body_node = b;
        if (i == 0) {
            if ((r->body_tmpl = ld_tmpl(ld, b, "body")))
                r->body_kind = BODY_TEXT;
        } else if (i == 1) {
            if (ld_base64(ld, b, &r->body, "body_base64"))
                r->body_kind = BODY_BYTES;
        } else if (i == 2) {
            if (ld_body_file(ld, b, &r->body))
                r->body_kind = BODY_BYTES;
        } else if (ld_string(ld, b, "preset")) {
            if (!strcmp(b->str, "gif")) {
                set_bytes(&r->body, GIF_1X1, sizeof GIF_1X1);
                r->preset_type = ld_strdup("image/gif");
                r->body_kind = BODY_BYTES;
            } else if (!strcmp(b->str, "png")) {
                struct base64_decode_ctx ctx;
                base64_decode_init(&ctx);
                size_t len = BASE64_DECODE_LENGTH(sizeof PNG_1X1_B64);
                r->body.data = ld_alloc(len + 1, 1);
                base64_decode_update(&ctx, &len, r->body.data, sizeof PNG_1X1_B64 - 1, PNG_1X1_B64);
                r->body.len = len;
                r->preset_type = ld_strdup("image/png");
                r->body_kind = BODY_BYTES;
            } else {
                ld_err(ld, b, "preset: expected gif or png, got '%s'", b->str);
            }
        }
    }
    if ((v = ymap_get(n, "delay")))
        ld_duration(ld, v, &r->delay_ms, "delay");
    if ((v = ymap_get(n, "body_delay")))
        ld_duration(ld, v, &r->body_delay_ms, "body_delay");
    if ((v = ymap_get(n, "trickle")) && ld_is_map(ld, v, "trickle")) {
        ld_keys(ld, v, TRICKLE_KEYS, "trickle");
        const struct ynode *b = ymap_get(v, "bytes"), *e = ymap_get(v, "every");
        if (!b || !e)
            ld_err(ld, v, "trickle needs bytes and every");
        if (b && ld_int(ld, b, 1, 1LL << 30, &num, "trickle.bytes"))
            r->trickle_bytes = (size_t)num;
        if (e)
            ld_duration(ld, e, &r->trickle_every_ms, "trickle.every");
    }
    if ((v = ymap_get(n, "transfer")) && ld_string(ld, v, "transfer")) {
        if (!strcmp(v->str, "length"))
            r->transfer = TRANSFER_LENGTH;
        else if (!strcmp(v->str, "chunked"))
            r->transfer = TRANSFER_CHUNKED;
        else
            ld_err(ld, v, "transfer: expected length or chunked, got '%s'", v->str);
    }
    if ((v = ymap_get(n, "fault"))) {
        const struct ynode *action = v;
        if (v->kind == Y_MAP) {
            ld_keys(ld, v, FAULT_KEYS, "fault");
            action = ymap_get(v, "action");
            if (!action)
                ld_err(ld, v, "fault: missing 'action' (close, reset or hang)");
            const struct ynode *after = ymap_get(v, "after_bytes");
            if (after && ld_int(ld, after, 0, 1LL << 40, &num, "fault.after_bytes")) {
                r->fault_has_after = true;
                r->fault_after_bytes = (size_t)num;
            }
        }
        if (action && ld_string(ld, action, "fault.action")) {
            if (!strcmp(action->str, "close"))
                r->fault = FAULT_CLOSE;
            else if (!strcmp(action->str, "reset"))
                r->fault = FAULT_RESET;
            else if (!strcmp(action->str, "hang"))
                r->fault = FAULT_HANG;
            else
                ld_err(ld, action, "fault.action: unknown fault '%s' (close, reset or hang)",
                       action->str);
        }
    }
    if ((v = ymap_get(n, "require")) && ld_is_map(ld, v, "require")) {
        ld_keys(ld, v, REQUIRE_KEYS, "require");
        const struct ynode *h = ymap_get(v, "headers");
        if (h)
            ld_matches(ld, h, &r->require_headers, &r->n_require_headers, "require.headers");
    }

    /* the kind: at most one special key */
    const char *kinds[] = {"raw", "raw_base64", "jsonp", "long_poll", "stream", "sse", "websocket"};
    const struct ynode *kind_node = NULL;
    int kind = -1;
    for (int i = 0; i < 7; i++) {
        const struct ynode *k = ymap_get(n, kinds[i]);
        if (!k)
            continue;
        if (kind_node) {
            ld_err(ld, k,
                   "a response is one of raw, raw_base64, jsonp, long_poll, stream, sse, "
                   "websocket: '%s' and '%s' are both given",
                   kinds[kind], kinds[i]);
            continue;
        }
        kind_node = k;
        kind = i;
    }
    r->kind = RESP_PLAIN;
    if (kind_node && body_node && kind != 2 && kind != 3)
        ld_err(ld, body_node, "a %s response has no body key", kinds[kind]);
    switch (kind) {
    case 0:
        r->kind = RESP_RAW;
        r->raw_tmpl = ld_tmpl(ld, kind_node, "raw");
        break;
    case 1:
        r->kind = RESP_RAW;
        ld_base64(ld, kind_node, &r->raw_bytes, "raw_base64");
        break;
    case 2:
        r->kind = RESP_JSONP;
        load_jsonp(ld, kind_node, r);
        break;
    case 3:
        r->kind = RESP_LONG_POLL;
        load_long_poll(ld, kind_node, r);
        break;
    case 4:
        r->kind = RESP_STREAM;
        load_stream(ld, kind_node, r);
        break;
    case 5:
        r->kind = RESP_SSE;
        load_sse(ld, kind_node, r);
        break;
    case 6:
        r->kind = RESP_WEBSOCKET;
        load_websocket(ld, kind_node, r);
        break;
    }
    if ((v = ymap_get(n, "then"))) {
        if (r->kind != RESP_STREAM)
            ld_err(ld, v, "then: only for a stream response (for sse, put it inside sse)");
        else
            r->stream_then = load_then(ld, v);
    }
    if (r->kind == RESP_RAW && r->reason)
        ld_err(ld, ymap_get(n, "reason"), "reason: a raw response writes its own status line");
    return true;
}

/* ------------------------------------------------------------------ CORS and routes */

static char *join_list(struct ld *ld, const struct ynode *n, const char *what)
{
    if (n->kind == Y_SCALAR)
        return ld_text(ld, n, what) ? ld_strdup(n->str) : NULL;
    if (!ld_is_seq(ld, n, what))
        return NULL;
    size_t cap = 1;
    for (size_t i = 0; i < n->n; i++)
        cap += (n->values[i]->str ? strlen(n->values[i]->str) : 0) + 2;
    char *out = ld_alloc(cap, 1);
    for (size_t i = 0; i < n->n; i++) {
        if (!ld_text(ld, n->values[i], what))
            continue;
        if (*out)
            strcat(out, ", ");
        strcat(out, n->values[i]->str);
    }
    return out;
}

static void load_cors(struct ld *ld, const struct ynode *n, struct route *rt)
{
    if (!ld_is_map(ld, n, "cors"))
        return;
    ld_keys(ld, n, CORS_KEYS, "cors");
    struct cors_policy *c = rt->cors = ld_alloc(1, sizeof *c);
    c->allow_origin = ACAO_ECHO;
    c->max_age = -1;
    c->vary_origin = true;
    const struct ynode *v;
    if ((v = ymap_get(n, "allow_origin"))) {
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            c->allow_origin = ACAO_NONE;
        else if (ld_string(ld, v, "cors.allow_origin")) {
            if (!strcmp(v->str, "echo"))
                c->allow_origin = ACAO_ECHO;
            else if (!strcmp(v->str, "*"))
                c->allow_origin = ACAO_STAR;
            else if (!strcmp(v->str, "none"))
                c->allow_origin = ACAO_NONE;
            else if (!strcmp(v->str, "wrong"))
                c->allow_origin = ACAO_WRONG;
            else {
                c->allow_origin = ACAO_EXACT;
                c->allow_origin_value = ld_strdup(v->str);
            }
        }
    }
    if ((v = ymap_get(n, "allow_credentials"))) {
        if (v->kind == Y_SCALAR && v->type == YS_BOOL)
            c->allow_credentials = v->b ? ld_strdup("true") : NULL;
        else if (ld_text(ld, v, "cors.allow_credentials"))
            c->allow_credentials = ld_strdup(v->str);
    }
    if ((v = ymap_get(n, "allow_methods")))
        c->allow_methods = join_list(ld, v, "cors.allow_methods");
    if ((v = ymap_get(n, "allow_headers")))
        c->allow_headers = join_list(ld, v, "cors.allow_headers");
    if ((v = ymap_get(n, "expose_headers")))
        c->expose_headers = join_list(ld, v, "cors.expose_headers");
    long long age;
    if ((v = ymap_get(n, "max_age")) && ld_int(ld, v, -1, 1LL << 31, &age, "cors.max_age"))
        c->max_age = (long)age;
    if ((v = ymap_get(n, "vary_origin")))
        ld_bool(ld, v, &c->vary_origin, "cors.vary_origin");
    if ((v = ymap_get(n, "preflight"))) {
        if (v->kind == Y_MAP) {
            c->preflight = PREFLIGHT_SCRIPTED;
            c->preflight_response = ld_alloc(1, sizeof *c->preflight_response);
            load_response(ld, v, c->preflight_response);
        } else if (ld_string(ld, v, "cors.preflight")) {
            if (!strcmp(v->str, "auto"))
                c->preflight = PREFLIGHT_AUTO;
            else if (!strcmp(v->str, "none"))
                c->preflight = PREFLIGHT_NONE;
            else
                ld_err(ld, v,
                       "cors.preflight: expected auto, none or a response mapping, got "
                       "'%s'",
                       v->str);
        }
    }
}

static void load_match(struct ld *ld, const struct ynode *n, struct route *rt)
{
    if (!ld_is_map(ld, n, "match"))
        return;
    ld_keys(ld, n, MATCH_KEYS_, "match");
    const struct ynode *v;
    if ((v = ymap_get(n, "method"))) {
        if (v->kind == Y_SCALAR) {
            if (ld_string(ld, v, "match.method")) {
                rt->methods = ld_alloc(1, sizeof *rt->methods);
                rt->methods[rt->n_methods++] = ld_strdup(v->str);
            }
        } else if (ld_is_seq(ld, v, "match.method")) {
            rt->methods = ld_alloc(v->n, sizeof *rt->methods);
            for (size_t i = 0; i < v->n; i++)
                if (ld_string(ld, v->values[i], "match.method"))
                    rt->methods[rt->n_methods++] = ld_strdup(v->values[i]->str);
        }
    }
    const struct ynode *p = ymap_get(n, "path"), *pr = ymap_get(n, "path_regex");
    if (p && pr)
        ld_err(ld, pr, "match: give path or path_regex, not both");
    else if (p && ld_text(ld, p, "match.path")) {
        if (p->str[0] != '/')
            ld_err(ld, p,
                   "match.path: '%s' must start with '/' (it is relative to the "
                   "instance prefix)",
                   p->str);
        rt->path = ld_strdup(p->str);
    } else if (pr && ld_text(ld, pr, "match.path_regex") &&
               ld_regex(ld, pr, &rt->path_re, "match.path_regex")) {
        rt->has_path_re = true;
        rt->path_re_src = ld_strdup(pr->str);
    }
    if ((v = ymap_get(n, "query")))
        ld_matches(ld, v, &rt->query, &rt->n_query, "match.query");
    if ((v = ymap_get(n, "headers")))
        ld_matches(ld, v, &rt->headers, &rt->n_headers, "match.headers");
}

static void load_route(struct ld *ld, const struct ynode *n, struct route *rt, size_t index)
{
    rt->loc = n->loc;
    ld_keys(ld, n, ROUTE_KEYS, "a route");
    const struct ynode *v;
    if ((v = ymap_get(n, "name")) && ld_text(ld, v, "route name")) {
        rt->name = ld_strdup(v->str);
        for (size_t i = 0; i < index; i++)
            if (ld->s->routes[i].name && !strcmp(ld->s->routes[i].name, v->str))
                ld_err(ld, v, "a route named '%s' already exists", v->str);
    } else {
        char buf[32];
        snprintf(buf, sizeof buf, "route-%zu", index + 1);
        rt->name = ld_strdup(buf);
    }
    if ((v = ymap_get(n, "match")))
        load_match(ld, v, rt);
    const struct ynode *one = ymap_get(n, "response"), *seq = ymap_get(n, "responses");
    if (one && seq) {
        ld_err(ld, seq, "a route has response or responses, not both");
    } else if (one) {
        rt->responses = ld_alloc(1, sizeof *rt->responses);
        rt->n_responses = 1;
        load_response(ld, one, &rt->responses[0]);
    } else if (seq) {
        if (ld_is_seq(ld, seq, "responses")) {
            if (seq->n == 0)
                ld_err(ld, seq, "responses: the sequence is empty");
            rt->responses = ld_alloc(seq->n, sizeof *rt->responses);
            for (size_t i = 0; i < seq->n; i++)
                load_response(ld, seq->values[i], &rt->responses[rt->n_responses++]);
        }
    } else {
        ld_err(ld, n, "route '%s': missing response (or responses)", rt->name);
    }
    if ((v = ymap_get(n, "after_last")) && ld_string(ld, v, "after_last")) {
        if (!strcmp(v->str, "repeat"))
            rt->after_last = AFTER_REPEAT;
        else if (!strcmp(v->str, "cycle"))
            rt->after_last = AFTER_CYCLE;
        else if (!strcmp(v->str, "not_found"))
            rt->after_last = AFTER_NOT_FOUND;
        else
            ld_err(ld, v, "after_last: expected repeat, cycle or not_found, got '%s'", v->str);
    }
    if ((v = ymap_get(n, "cors")))
        load_cors(ld, v, rt);
}

static void load_channels(struct ld *ld, const struct ynode *n)
{
    if (!ld_is_map(ld, n, "channels"))
        return;
    struct scenario *s = ld->s;
    s->channels = ld_alloc(n->n, sizeof *s->channels);
    for (size_t i = 0; i < n->n; i++) {
        struct channel *c = &s->channels[s->n_channels++];
        c->name = ld_strdup(n->keys[i]->str);
        const struct ynode *v = n->values[i];
        if (v->kind == Y_SCALAR && v->type == YS_NULL)
            continue;
        if (!ld_is_map(ld, v, "a channel"))
            continue;
        ld_keys(ld, v, CHANNEL_KEYS, "a channel");
        const struct ynode *events = ymap_get(v, "events");
        if (!events || !ld_is_seq(ld, events, "channel events"))
            continue;
        c->events = ld_alloc(events->n, sizeof *c->events);
        for (size_t e = 0; e < events->n; e++) {
            const struct ynode *ev = events->values[e];
            struct channel_event *ce = &c->events[c->n_events];
            if (ev->kind == Y_SCALAR) {
                if (ld_text(ld, ev, "a channel event")) {
                    ld_bytes_text(ev, &ce->data);
                    c->n_events++;
                }
                continue;
            }
            if (!ld_is_map(ld, ev, "a channel event"))
                continue;
            ld_keys(ld, ev, CHANNEL_EVENT_KEYS, "a channel event");
            const struct ynode *a = ymap_get(ev, "after"), *d = ymap_get(ev, "data");
            if (a)
                ld_duration(ld, a, &ce->after_ms, "after");
            if (!d) {
                ld_err(ld, ev, "a channel event needs data");
                continue;
            }
            if (d->kind == Y_SCALAR && d->type == YS_STRING) {
                ld_bytes_text(d, &ce->data);
            } else {
                json_t *j = ynode_to_json(d);
                char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
                json_decref(j);
                ce->data.data = (unsigned char *)text;
                ce->data.len = strlen(text);
            }
            c->n_events++;
        }
    }
}

void load_server(struct ld *ld, const struct ynode *server)
{
    if (!server || !ld_is_map(ld, server, "server"))
        return;
    ld_keys(ld, server, SERVER_KEYS, "server");
    const struct ynode *ch = ymap_get(server, "channels");
    if (ch)
        load_channels(ld, ch);
    const struct ynode *routes = ymap_get(server, "routes");
    if (!routes || !ld_is_seq(ld, routes, "server.routes"))
        return;
    struct scenario *s = ld->s;
    s->routes = ld_alloc(routes->n, sizeof *s->routes);
    for (size_t i = 0; i < routes->n; i++) {
        if (!ld_is_map(ld, routes->values[i], "a route"))
            continue;
        load_route(ld, routes->values[i], &s->routes[s->n_routes], s->n_routes);
        s->n_routes++;
    }
}

/* ------------------------------------------------------------------ freeing */

static void free_bytes(struct bytes *b)
{
    free(b->data);
}

static void free_headers(struct header_list *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].name);
        tmpl_free(h->items[i].value);
    }
    free(h->items);
}

static void free_matches(struct value_match *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        if (m[i].op == MATCH_REGEX)
            regfree(&m[i].re);
        free(m[i].value);
    }
    free(m);
}

static void free_response(struct response *r)
{
    if (!r)
        return;
    free(r->reason);
    free_headers(&r->headers);
    tmpl_free(r->body_tmpl);
    free_bytes(&r->body);
    free(r->preset_type);
    tmpl_free(r->raw_tmpl);
    free_bytes(&r->raw_bytes);
    free_matches(r->require_headers, r->n_require_headers);
    if (r->jsonp) {
        free(r->jsonp->param);
        free(r->jsonp->data_json);
        free(r->jsonp->throw_message);
        free(r->jsonp);
    }
    if (r->long_poll) {
        free(r->long_poll->channel);
        free(r->long_poll->cursor_param);
        free_response(r->long_poll->on_timeout);
        free(r->long_poll->on_timeout);
        free(r->long_poll);
    }
    for (size_t i = 0; i < r->n_stream; i++) {
        tmpl_free(r->stream[i].data);
        free_bytes(&r->stream[i].bytes);
    }
    free(r->stream);
    if (r->sse) {
        for (size_t i = 0; i < r->sse->n_items; i++) {
            struct sse_item *x = &r->sse->items[i];
            free_bytes(&x->data);
            free_bytes(&x->id);
            free_bytes(&x->event);
            free_bytes(&x->retry);
            free_bytes(&x->comment);
            for (size_t l = 0; l < x->n_lines; l++)
                free_bytes(&x->lines[l]);
            free(x->lines);
            free_bytes(&x->raw);
        }
        free(r->sse->items);
        free(r->sse->content_type);
        free(r->sse);
    }
    if (r->websocket) {
        free(r->websocket->handshake.subprotocol_name);
        free(r->websocket->handshake.extensions);
        free(r->websocket->handshake.upgrade_value);
        free_headers(&r->websocket->handshake.headers);
        for (size_t i = 0; i < r->websocket->n_steps; i++)
            free_bytes(&r->websocket->steps[i].payload);
        free(r->websocket->steps);
        free(r->websocket);
    }
}

void scenario_free(struct scenario *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_routes; i++) {
        struct route *rt = &s->routes[i];
        free(rt->name);
        for (size_t m = 0; m < rt->n_methods; m++)
            free(rt->methods[m]);
        free(rt->methods);
        free(rt->path);
        if (rt->has_path_re)
            regfree(&rt->path_re);
        free(rt->path_re_src);
        free_matches(rt->query, rt->n_query);
        free_matches(rt->headers, rt->n_headers);
        for (size_t r = 0; r < rt->n_responses; r++)
            free_response(&rt->responses[r]);
        free(rt->responses);
        if (rt->cors) {
            free(rt->cors->allow_origin_value);
            free(rt->cors->allow_credentials);
            free(rt->cors->allow_methods);
            free(rt->cors->allow_headers);
            free(rt->cors->expose_headers);
            free_response(rt->cors->preflight_response);
            free(rt->cors->preflight_response);
            free(rt->cors);
        }
    }
    free(s->routes);
    for (size_t c = 0; c < s->n_channels; c++) {
        for (size_t e = 0; e < s->channels[c].n_events; e++)
            free_bytes(&s->channels[c].events[e].data);
        free(s->channels[c].events);
        free(s->channels[c].name);
    }
    free(s->channels);
    for (size_t t = 0; t < s->n_tags; t++)
        free(s->tags[t]);
    free(s->tags);
    json_decref(s->client);
    json_decref(s->expect);
    json_decref(s->doc);
    free(s->file);
    free(s->dir);
    free(s->id);
    free(s->title);
    free(s->spec);
    free(s->description);
    free(s);
}
