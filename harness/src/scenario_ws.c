/* scenario_ws — the `websocket` response kind: the handshake response and the script the
 * server runs on the connection (docs/scenarios.md, "WebSockets"). A script step is a
 * one-key mapping; each step name has a small loader in a table, as response kinds do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "scenario_load.h"
#include "xalloc.h"

#define DEFAULT_TIMEOUT_MS 5000

static void payload(struct ld *ld, const struct ynode *m, const char *text_key, const char *b64_key,
                    struct bytes *out, const char *what)
{
    const struct ynode *t = ymap_get(m, text_key), *b = ymap_get(m, b64_key);
    if (t && b)
        ld_err(ld, b, "%s: give %s or %s, not both", what, text_key, b64_key);
    else if (t && ld_text(ld, t, what))
        ld_bytes_text(t, out);
    else if (b)
        ld_base64(ld, b, out, what);
}

static bool step_send(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    if (v->kind == Y_SCALAR) {
        if (ld_text(ld, v, "send"))
            ld_bytes_text(v, &st->payload);
        return true;
    }
    if (!ld_is_map(ld, v, "send"))
        return false;
    ld_keys(ld, v, &KEYS_WS_SEND);
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

static bool step_ping(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    const char *what = st->kind == WS_PING ? "ping" : "pong";
    if (v->kind == Y_SCALAR && v->type == YS_NULL)
        return true;
    if (v->kind == Y_SCALAR) {
        if (ld_text(ld, v, what))
            ld_bytes_text(v, &st->payload);
        return true;
    }
    if (!ld_is_map(ld, v, what))
        return false;
    ld_keys(ld, v, &KEYS_WS_PING);
    payload(ld, v, "payload", "payload_base64", &st->payload, what);
    return true;
}

static bool step_wait(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    return ld_duration(ld, v, &st->ms, "wait");
}

static bool step_receive(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    bool echo = st->kind == WS_ECHO;
    const char *what = echo ? "echo" : "receive";
    st->ms = DEFAULT_TIMEOUT_MS;
    if (v->kind == Y_SCALAR && v->type == YS_NULL)
        return true;
    if (v->kind == Y_SCALAR)
        return ld_duration(ld, v, &st->ms, what);
    if (!ld_is_map(ld, v, what))
        return false;
    ld_keys(ld, v, echo ? &KEYS_WS_ECHO : &KEYS_WS_RECEIVE);
    const struct ynode *t = ymap_get(v, "timeout"), *c = ymap_get(v, "count");
    if (t)
        ld_duration(ld, t, &st->ms, "timeout");
    long long count;
    if (c && ld_int(ld, c, 0, 1000000, &count, "echo.count"))
        st->count = (unsigned)count;
    return true;
}

static bool step_frame(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    if (!ld_is_map(ld, v, "frame"))
        return false;
    ld_keys(ld, v, &KEYS_WS_FRAME);
    const struct ynode *x;
    long long op = 1, lf = 0;
    if (!(x = ymap_get(v, "opcode")))
        ld_err(ld, v, "frame: missing 'opcode' (0..15)");
    else if (ld_int(ld, x, 0, 15, &op, "frame.opcode"))
        st->opcode = (int)op;
    static const struct {
        const char *key;
        size_t offset;
    } bits[] = {
        {"fin", offsetof(struct ws_step, fin)},       {"rsv1", offsetof(struct ws_step, rsv1)},
        {"rsv2", offsetof(struct ws_step, rsv2)},     {"rsv3", offsetof(struct ws_step, rsv3)},
        {"masked", offsetof(struct ws_step, masked)},
    };
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if ((x = ymap_get(v, bits[i].key)))
            ld_bool(ld, x, (bool *)((char *)st + bits[i].offset), bits[i].key);
    if ((x = ymap_get(v, "length_form")) && ld_int(ld, x, 0, 64, &lf, "frame.length_form")) {
        if (lf != 0 && lf != 7 && lf != 16 && lf != 64)
            ld_err(ld, x, "frame.length_form: expected 7, 16 or 64, got %lld", lf);
        st->length_form = (int)lf;
    }
    payload(ld, v, "payload", "payload_base64", &st->payload, "frame");
    if ((x = ymap_get(v, "length")) && ld_text(ld, x, "frame.length")) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(x->str, &end, 0);
        if (errno || *end || x->str[0] == '-' || !x->str[0])
            ld_err(ld, x, "frame.length: expected a number from 0 to 2^64-1 (0x... too), got '%s'",
                   x->str);
        else if ((st->length_form == 7 && n > 125) || (st->length_form == 16 && n > 0xFFFF))
            ld_err(ld, x, "frame.length: %llu does not fit length_form %d", n, st->length_form);
        else {
            st->has_length = true;
            st->length = n;
        }
    }
    if ((x = ymap_get(v, "split_at")) && ld_is_seq(ld, x, "frame.split_at")) {
        st->split_at = xcalloc(x->n ? x->n : 1, sizeof *st->split_at);
        long long prev = 0, at;
        for (size_t i = 0; i < x->n; i++) {
            if (!ld_int(ld, x->values[i], 1, 1LL << 40, &at, "frame.split_at"))
                continue;
            if (at <= prev)
                ld_err(ld, x->values[i], "frame.split_at: offsets increase (%lld after %lld)", at,
                       prev);
            st->split_at[st->n_split++] = (size_t)at;
            prev = at;
        }
    }
    if ((x = ymap_get(v, "pause"))) {
        ld_duration(ld, x, &st->pause_ms, "frame.pause");
        if (!ymap_get(v, "split_at"))
            ld_err(ld, x, "frame.pause: the pause goes between the pieces of split_at");
    }
    return true;
}

static bool step_raw(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    ld_chunks(ld, v, &st->chunks, "raw");
    return true;
}

static bool step_close(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    st->ms = DEFAULT_TIMEOUT_MS;
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
    ld_keys(ld, v, &KEYS_WS_CLOSE);
    const struct ynode *c = ymap_get(v, "code"), *t = ymap_get(v, "timeout");
    if (c && ld_int(ld, c, 0, 65535, &code, "close.code")) {
        st->has_code = true;
        st->code = (int)code;
    }
    if (t)
        ld_duration(ld, t, &st->ms, "close.timeout");
    const struct ynode *go = ymap_get(v, "continue");
    if (go)
        ld_bool(ld, go, &st->go_on, "close.continue");
    if (go && t && st->go_on)
        ld_err(ld, t, "close: a timeout waits for the reply, continue: true does not wait");
    payload(ld, v, "reason", "reason_base64", &st->payload, "close");
    if (st->payload.len && !c)
        ld_err(ld, v, "close: a reason needs a code");
    return true;
}

static bool step_drop(struct ld *ld, const struct ynode *v, struct ws_step *st)
{
    st->drop_end = CONN_END_DEFAULT; /* true: as websocket.end says (default fin) */
    if (v->kind == Y_SCALAR && v->type == YS_BOOL) {
        if (!v->b)
            ld_err(ld, v, "drop: true, fin, rst or hang (false means nothing)");
        return true;
    }
    if (v->kind == Y_SCALAR && v->type == YS_NULL)
        return true;
    return ld_conn_end(ld, v, &st->drop_end, "drop");
}

/* The step names (KEYS_WS_STEP lists them for messages and the export). */
static const struct {
    const char *key;
    enum ws_step_kind kind;
    bool (*load)(struct ld *ld, const struct ynode *v, struct ws_step *st);
} STEPS[] = {
    {"send", WS_SEND, step_send},          {"ping", WS_PING, step_ping},
    {"pong", WS_PONG, step_ping},          {"wait", WS_WAIT, step_wait},
    {"receive", WS_RECEIVE, step_receive}, {"echo", WS_ECHO, step_receive},
    {"frame", WS_FRAME, step_frame},       {"close", WS_CLOSE, step_close},
    {"drop", WS_DROP, step_drop},          {"raw", WS_RAW, step_raw},
};

static bool load_step(struct ld *ld, const struct ynode *n, struct ws_step *st)
{
    if (n->kind != Y_MAP || n->n != 1) {
        ld_err(ld, n,
               "a websocket step is a one-key mapping: send, ping, pong, wait, receive, "
               "echo, frame, close, drop or raw");
        return false;
    }
    ld_keys(ld, n, &KEYS_WS_STEP);
    st->loc = n->loc;
    st->fin = true;
    for (size_t i = 0; i < sizeof STEPS / sizeof STEPS[0]; i++)
        if (!strcmp(n->keys[0]->str, STEPS[i].key)) {
            st->kind = STEPS[i].kind;
            return STEPS[i].load(ld, n->values[0], st);
        }
    return false;
}

static void load_handshake(struct ld *ld, const struct ynode *hs, struct ws_handshake_spec *h)
{
    ld_keys(ld, hs, &KEYS_HANDSHAKE);
    const struct ynode *v;
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
                h->subprotocol_name = xstrdup(v->str);
            }
        }
    }
    if ((v = ymap_get(hs, "extensions")) && ld_text(ld, v, "handshake.extensions"))
        h->extensions = xstrdup(v->str);
    int accept;
    if ((v = ymap_get(hs, "accept")) &&
        ld_choice(ld, v, &KEYS_HANDSHAKE, "accept", &accept, "handshake.accept"))
        h->accept = (enum ws_accept_mode)accept;
    if ((v = ymap_get(hs, "upgrade_header"))) {
        if (v->kind == Y_SCALAR && v->type == YS_BOOL)
            h->upgrade_header = v->b;
        else if (ld_text(ld, v, "handshake.upgrade_header"))
            h->upgrade_value = xstrdup(v->str);
    }
    if ((v = ymap_get(hs, "headers")))
        ld_headers(ld, v, &h->headers, "handshake.headers");
    if ((v = ymap_get(hs, "connection")) && ld_text(ld, v, "handshake.connection")) {
        if (strpbrk(v->str, "\r\n"))
            ld_err(ld, v, "handshake.connection: no line breaks");
        h->connection = xstrdup(v->str);
    }
}

void scenario_ws_load(struct ld *ld, const struct ynode *n, struct response *r)
{
    bool empty = n->kind == Y_SCALAR && n->type == YS_NULL;
    if (!empty && !ld_is_map(ld, n, "websocket"))
        return;
    ld_keys(ld, n, &KEYS_WEBSOCKET);
    struct ws_spec *w = r->websocket = xcalloc(1, sizeof *w);
    w->linger_ms = DEFAULT_TIMEOUT_MS;
    w->handshake.status = 101;
    w->handshake.upgrade_header = true;
    const struct ynode *v, *hs = ymap_get(n, "handshake");
    if (hs && ld_is_map(ld, hs, "websocket.handshake"))
        load_handshake(ld, hs, &w->handshake);
    if ((v = ymap_get(n, "linger")))
        ld_duration(ld, v, &w->linger_ms, "websocket.linger");
    if ((v = ymap_get(n, "end")))
        ld_conn_end(ld, v, &w->end, "websocket.end");
    const struct ynode *script = ymap_get(n, "script");
    if (script && ld_is_seq(ld, script, "websocket.script")) {
        w->steps = xcalloc(script->n, sizeof *w->steps);
        for (size_t i = 0; i < script->n; i++)
            if (load_step(ld, script->values[i], &w->steps[w->n_steps]))
                w->n_steps++;
    }
}

void scenario_ws_free(struct ws_spec *w)
{
    if (!w)
        return;
    free(w->handshake.subprotocol_name);
    free(w->handshake.extensions);
    free(w->handshake.upgrade_value);
    ld_free_headers(&w->handshake.headers);
    free(w->handshake.connection);
    for (size_t i = 0; i < w->n_steps; i++) {
        free(w->steps[i].payload.data);
        free(w->steps[i].split_at);
        ld_free_chunks(&w->steps[i].chunks);
    }
    free(w->steps);
    free(w);
}
