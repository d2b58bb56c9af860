/* scenario_response — one response of a route (docs/scenarios.md, "A response"): status,
 * reason, headers, a body (one of four keys, a table), timing, trickle, transfer, fault,
 * require; and its kind, chosen by at most one key of a table {key, kind, loader} (plain
 * when none): raw, raw_base64, jsonp, long_poll and stream here, sse and websocket in their
 * own modules. Each loader fills its part of struct response and nothing else.
 */
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>
#include "scenario_load.h"
#include "xalloc.h"

static const unsigned char GIF_1X1[] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b};
static const char PNG_1X1_B64[] = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNk"
                                  "YAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

/* ------------------------------------------------------------------ bodies */

static void body_text(struct ld *ld, const struct ynode *b, struct response *r)
{
    if ((r->body_tmpl = ld_tmpl(ld, b, "body")))
        r->body_kind = BODY_TEXT;
}

static void body_base64(struct ld *ld, const struct ynode *b, struct response *r)
{
    if (ld_base64(ld, b, &r->body, "body_base64"))
        r->body_kind = BODY_BYTES;
}

static void body_file(struct ld *ld, const struct ynode *b, struct response *r)
{
    if (ld_body_file(ld, b, &r->body))
        r->body_kind = BODY_BYTES;
}

/* preset: the body of a real 1x1 image, and its Content-Type. */
static void body_preset(struct ld *ld, const struct ynode *b, struct response *r)
{
    int which;
    if (!ld_choice(ld, b, &KEYS_RESPONSE, "preset", &which, "preset"))
        return;
    if (which == 0) {
        r->body.data = xcalloc(sizeof GIF_1X1 + 1, 1);
        memcpy(r->body.data, GIF_1X1, sizeof GIF_1X1);
        r->body.len = sizeof GIF_1X1;
        r->preset_type = xstrdup("image/gif");
    } else {
        struct base64_decode_ctx ctx;
        base64_decode_init(&ctx);
        size_t len = BASE64_DECODE_LENGTH(sizeof PNG_1X1_B64);
        r->body.data = xcalloc(len + 1, 1);
        base64_decode_update(&ctx, &len, r->body.data, sizeof PNG_1X1_B64 - 1, PNG_1X1_B64);
        r->body.len = len;
        r->preset_type = xstrdup("image/png");
    }
    r->body_kind = BODY_BYTES;
}

typedef void (*part_loader)(struct ld *ld, const struct ynode *n, struct response *r);

static const struct {
    const char *key;
    part_loader load;
} BODIES[] = {
    {"body", body_text},
    {"body_base64", body_base64},
    {"body_file", body_file},
    {"preset", body_preset},
};

/* ------------------------------------------------------------------ kinds */

static void load_raw(struct ld *ld, const struct ynode *n, struct response *r)
{
    r->raw_tmpl = ld_tmpl(ld, n, "raw");
}

static void load_raw_base64(struct ld *ld, const struct ynode *n, struct response *r)
{
    ld_base64(ld, n, &r->raw_bytes, "raw_base64");
}

static void load_chunks(struct ld *ld, const struct ynode *n, struct response *r)
{
    ld_chunks(ld, n, &r->chunks, "chunks");
}

static void load_jsonp(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_map(ld, n, "jsonp"))
        return;
    ld_keys(ld, n, &KEYS_JSONP);
    struct jsonp_spec *j = r->jsonp = xcalloc(1, sizeof *j);
    const struct ynode *v;
    if ((v = ymap_get(n, "param")) && ld_string(ld, v, "jsonp.param"))
        j->param = xstrdup(v->str);
    const struct ynode *data = ymap_get(n, "data"), *dj = ymap_get(n, "data_json"),
                       *th = ymap_get(n, "throw");
    if (data && dj)
        ld_err(ld, dj, "jsonp: give data or data_json, not both");
    if (data) {
        json_t *doc = ynode_to_json(data);
        j->data_json = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(doc);
    } else if (dj && ld_text(ld, dj, "jsonp.data_json")) {
        j->data_json = xstrdup(dj->str);
    }
    if (th && ld_text(ld, th, "jsonp.throw")) {
        j->throws = true;
        j->throw_message = xstrdup(th->str);
    }
}

static void load_long_poll(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_map(ld, n, "long_poll"))
        return;
    ld_keys(ld, n, &KEYS_LONG_POLL);
    struct long_poll_spec *lp = r->long_poll = xcalloc(1, sizeof *lp);
    lp->hold_timeout_ms = 30000;
    const struct ynode *v;
    if (!(v = ymap_get(n, "channel")))
        ld_err(ld, n, "long_poll: missing 'channel' (a name from server.channels)");
    else if (ld_string(ld, v, "long_poll.channel")) {
        lp->channel = xstrdup(v->str);
        if (!strmap_get(&ld->channel_names, v->str, strlen(v->str)))
            ld_err(ld, v, "long_poll.channel: no channel '%s' in server.channels", v->str);
    }
    if ((v = ymap_get(n, "cursor_param")) && ld_string(ld, v, "long_poll.cursor_param"))
        lp->cursor_param = xstrdup(v->str);
    if ((v = ymap_get(n, "hold_timeout")))
        ld_duration(ld, v, &lp->hold_timeout_ms, "long_poll.hold_timeout");
    if ((v = ymap_get(n, "on_timeout")) && ld_is_map(ld, v, "long_poll.on_timeout")) {
        lp->on_timeout = xcalloc(1, sizeof *lp->on_timeout);
        scenario_response_load(ld, v, lp->on_timeout);
    }
    int format;
    if ((v = ymap_get(n, "format")) &&
        ld_choice(ld, v, &KEYS_LONG_POLL, "format", &format, "long_poll.format"))
        lp->format = (enum lp_format)format;
}

static void load_stream(struct ld *ld, const struct ynode *n, struct response *r)
{
    if (!ld_is_seq(ld, n, "stream"))
        return;
    r->stream = xcalloc(n->n, sizeof *r->stream);
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
        ld_keys(ld, it, &KEYS_STREAM_ITEM);
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

/* The response kinds: at most one of these keys. with_body: body keys may go beside it. */
static const struct {
    const char *key;
    enum response_kind kind;
    part_loader load;
    bool with_body;
} KINDS[] = {
    {"raw", RESP_RAW, load_raw, false},
    {"raw_base64", RESP_RAW, load_raw_base64, false},
    {"chunks", RESP_RAW, load_chunks, false},
    {"jsonp", RESP_JSONP, load_jsonp, true},
    {"long_poll", RESP_LONG_POLL, load_long_poll, true},
    {"stream", RESP_STREAM, load_stream, false},
    {"sse", RESP_SSE, scenario_sse_load, false},
    {"websocket", RESP_WEBSOCKET, scenario_ws_load, false},
};
#define N_KINDS (sizeof KINDS / sizeof KINDS[0])

/* ------------------------------------------------------------------ common keys */

static void load_trickle(struct ld *ld, const struct ynode *v, struct response *r)
{
    if (!ld_is_map(ld, v, "trickle"))
        return;
    ld_keys(ld, v, &KEYS_TRICKLE);
    const struct ynode *b = ymap_get(v, "bytes"), *e = ymap_get(v, "every");
    long long num;
    if (!b || !e)
        ld_err(ld, v, "trickle needs bytes and every");
    if (b && ld_int(ld, b, 1, 1LL << 30, &num, "trickle.bytes"))
        r->trickle_bytes = (size_t)num;
    if (e)
        ld_duration(ld, e, &r->trickle_every_ms, "trickle.every");
}

static void load_fault(struct ld *ld, const struct ynode *v, struct response *r)
{
    const struct ynode *action = v;
    if (v->kind == Y_MAP) {
        ld_keys(ld, v, &KEYS_FAULT);
        action = ymap_get(v, "action");
        if (!action)
            ld_err(ld, v, "fault: missing 'action' (close, reset or hang)");
        const struct ynode *after = ymap_get(v, "after_bytes");
        long long num;
        if (after && ld_int(ld, after, 0, 1LL << 40, &num, "fault.after_bytes")) {
            r->fault_has_after = true;
            r->fault_after_bytes = (size_t)num;
        }
    }
    if (!action || !ld_string(ld, action, "fault.action"))
        return;
    const char *const *names = keys_find(&KEYS_FAULT, "action")->values;
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], action->str)) {
            r->fault = (enum fault_action)(FAULT_CLOSE + i);
            return;
        }
    ld_err(ld, action, "fault.action: unknown fault '%s' (close, reset or hang)", action->str);
}

/* The body keys: at most one. Returns the one given, or NULL. */
static const struct ynode *load_body(struct ld *ld, const struct ynode *n, struct response *r)
{
    const struct ynode *body_node = NULL;
    for (size_t i = 0; i < sizeof BODIES / sizeof BODIES[0]; i++) {
        const struct ynode *b = ymap_get(n, BODIES[i].key);
        if (!b)
            continue;
        if (body_node) {
            ld_err(ld, b, "a response has one body: body, body_base64, body_file or preset");
            continue;
        }
        body_node = b;
        BODIES[i].load(ld, b, r);
    }
    return body_node;
}

static void load_kind(struct ld *ld, const struct ynode *n, struct response *r,
                      const struct ynode *body_node)
{
    size_t kind = N_KINDS;
    const struct ynode *kind_node = NULL;
    for (size_t i = 0; i < N_KINDS; i++) {
        const struct ynode *k = ymap_get(n, KINDS[i].key);
        if (!k)
            continue;
        if (kind_node) {
            ld_err(ld, k,
                   "a response is one of raw, raw_base64, chunks, jsonp, long_poll, stream, "
                   "sse, websocket: '%s' and '%s' are both given",
                   KINDS[kind].key, KINDS[i].key);
            continue;
        }
        kind_node = k;
        kind = i;
    }
    r->kind = RESP_PLAIN;
    if (!kind_node)
        return;
    if (body_node && !KINDS[kind].with_body)
        ld_err(ld, body_node, "a %s response has no body key", KINDS[kind].key);
    r->kind = KINDS[kind].kind;
    KINDS[kind].load(ld, kind_node, r);
}

bool scenario_response_load(struct ld *ld, const struct ynode *n, struct response *r)
{
    r->loc = n->loc;
    r->status = 200;
    if (!ld_is_map(ld, n, "response"))
        return false;
    ld_keys(ld, n, &KEYS_RESPONSE);
    const struct ynode *v;
    long long num;
    if ((v = ymap_get(n, "status")) && ld_int(ld, v, 100, 999, &num, "status"))
        r->status = (int)num;
    if ((v = ymap_get(n, "reason")) && ld_text(ld, v, "reason")) {
        if (strpbrk(v->str, "\r\n"))
            ld_err(ld, v, "reason: no line breaks (use raw for that)");
        r->reason = xstrdup(v->str);
    }
    if ((v = ymap_get(n, "headers")))
        ld_headers(ld, v, &r->headers, "headers");
    const struct ynode *body_node = load_body(ld, n, r);
    if ((v = ymap_get(n, "delay")))
        ld_duration(ld, v, &r->delay_ms, "delay");
    if ((v = ymap_get(n, "body_delay")))
        ld_duration(ld, v, &r->body_delay_ms, "body_delay");
    if ((v = ymap_get(n, "trickle")))
        load_trickle(ld, v, r);
    int choice;
    if ((v = ymap_get(n, "transfer")) &&
        ld_choice(ld, v, &KEYS_RESPONSE, "transfer", &choice, "transfer"))
        r->transfer = (enum transfer)choice;
    if ((v = ymap_get(n, "fault")))
        load_fault(ld, v, r);
    if ((v = ymap_get(n, "require")) && ld_is_map(ld, v, "require")) {
        ld_keys(ld, v, &KEYS_REQUIRE);
        const struct ynode *h = ymap_get(v, "headers");
        if (h)
            ld_matches(ld, h, &r->require_headers, &r->n_require_headers, "require.headers");
    }
    load_kind(ld, n, r, body_node);
    if ((v = ymap_get(n, "then"))) {
        if (r->kind != RESP_STREAM)
            ld_err(ld, v, "then: only for a stream response (for sse, put it inside sse)");
        else if (ld_choice(ld, v, &KEYS_RESPONSE, "then", &choice, "then"))
            r->stream_then = (enum stream_end)choice;
    }
    if ((v = ymap_get(n, "end")) && ld_conn_end(ld, v, &r->end, "end")) {
        if (r->kind != RESP_PLAIN && r->kind != RESP_RAW)
            ld_err(ld, v,
                   "end: for plain, raw and chunks responses (a stream or sse has then, a "
                   "websocket websocket.end)");
        else if (r->fault != FAULT_NONE)
            ld_err(ld, v,
                   "end: give fault (a bad end inside the body) or end (after it), not "
                   "both");
        else if (r->transfer == TRANSFER_CHUNKED)
            ld_err(ld, v,
                   "end: a response with an end is written by hand with Content-Length "
                   "(write chunked bytes with chunks)");
    }
    if (r->chunks.n && r->trickle_bytes)
        ld_err(ld, ymap_get(n, "trickle"), "trickle: chunks carry their own pauses");
    if (r->kind == RESP_RAW && r->reason)
        ld_err(ld, ymap_get(n, "reason"), "reason: a raw response writes its own status line");
    return true;
}

void scenario_response_free(struct response *r)
{
    if (!r)
        return;
    if (r->reply && r->reply_free)
        r->reply_free(r->reply);
    free(r->reason);
    ld_free_headers(&r->headers);
    tmpl_free(r->body_tmpl);
    free(r->body.data);
    free(r->preset_type);
    tmpl_free(r->raw_tmpl);
    free(r->raw_bytes.data);
    ld_free_chunks(&r->chunks);
    ld_free_matches(r->require_headers, r->n_require_headers);
    if (r->jsonp) {
        free(r->jsonp->param);
        free(r->jsonp->data_json);
        free(r->jsonp->throw_message);
        free(r->jsonp);
    }
    if (r->long_poll) {
        free(r->long_poll->channel);
        free(r->long_poll->cursor_param);
        scenario_response_free(r->long_poll->on_timeout);
        free(r->long_poll->on_timeout);
        free(r->long_poll);
    }
    for (size_t i = 0; i < r->n_stream; i++) {
        tmpl_free(r->stream[i].data);
        free(r->stream[i].bytes.data);
    }
    free(r->stream);
    scenario_sse_free(r->sse);
    scenario_ws_free(r->websocket);
}
