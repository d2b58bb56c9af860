/* plan — building the plan of a response; see plan.h. */
#include "plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "sse_encode.h"
#include "xalloc.h"

void plan_drop_headers(struct plan *p)
{
    free(p->reason);
    for (size_t i = 0; i < p->n_headers; i++) {
        free(p->headers[i].name);
        free(p->headers[i].value);
    }
    free(p->headers);
    p->reason = NULL;
    p->headers = NULL;
    p->n_headers = 0;
}

void plan_free(struct plan *p)
{
    plan_drop_headers(p);
    if (!p->body_borrowed)
        free(p->body);
    if (!p->pieces_borrowed)
        pieces_free(p->pieces, p->n_pieces);
    memset(p, 0, sizeof *p);
}

void plan_header(struct plan *p, const char *name, const char *value)
{
    p->headers = xrealloc(p->headers, (p->n_headers + 1) * sizeof *p->headers);
    p->headers[p->n_headers].name = xstrdup(name);
    p->headers[p->n_headers].value = xstrdup(value);
    p->n_headers++;
}

bool plan_has_header(const struct plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_headers; i++)
        if (!strcasecmp(p->headers[i].name, name))
            return true;
    return false;
}

void plan_body(struct plan *p, const void *data, size_t len)
{
    if (!p->body_borrowed)
        free(p->body);
    p->body_borrowed = false;
    p->body = xmalloc(len + 1);
    memcpy(p->body, data, len);
    p->body[len] = 0;
    p->body_len = len;
}

/* Borrow len bytes of the response as the body (see plan.h). */
static void borrow_body(struct plan *p, const void *data, size_t len)
{
    if (!p->body_borrowed)
        free(p->body);
    p->body = (unsigned char *)data;
    p->body_len = len;
    p->body_borrowed = true;
}

size_t plan_owned_bytes(const struct plan *p)
{
    size_t n = p->body_borrowed ? 0 : p->body_len;
    for (size_t i = 0; i < p->n_pieces; i++)
        n += p->pieces[i].len;
    return n;
}

void plan_text(struct plan *p, int status, const char *text)
{
    p->status = status;
    plan_header(p, "Content-Type", "text/plain; charset=utf-8");
    plan_body(p, text, strlen(text));
}

static void body_from(struct plan *p, enum body_kind kind, const struct tmpl *t,
                      const struct bytes *b, const struct tmpl_ctx *ctx)
{
    size_t len;
    const char *same;
    if (kind == BODY_TEXT && (same = tmpl_constant_text(t, &len))) {
        borrow_body(p, same, len);
    } else if (kind == BODY_TEXT) {
        char *text = tmpl_expand(t, ctx, &len);
        plan_body(p, text, len);
        free(text);
    } else if (kind == BODY_BYTES) {
        borrow_body(p, b->data ? b->data : (const unsigned char *)"", b->len);
    }
}

/* ---------------------------------------------------------------- common parts */

void plan_base(const struct response *r, const struct tmpl_ctx *ctx, struct plan *p)
{
    p->status = r->status ? r->status : 200;
    if (r->reason) {
        p->reason = xstrdup(r->reason);
        p->manual = strcmp(r->reason, scenario_reason_phrase(p->status)) != 0;
    }
    for (size_t i = 0; i < r->headers.n; i++) {
        size_t len;
        char *v = tmpl_expand(r->headers.items[i].value, ctx, &len);
        plan_header(p, r->headers.items[i].name, v);
        free(v);
    }
    p->chunked = r->transfer == TRANSFER_CHUNKED;
    p->body_delay_ms = r->body_delay_ms;
    p->trickle_bytes = r->trickle_bytes;
    p->trickle_every_ms = r->trickle_every_ms;
    p->fault = r->fault;
    p->fault_has_after = r->fault_has_after;
    p->fault_after = r->fault_after_bytes;
    if (r->end != CONN_END_DEFAULT) {
        /* after the whole response: written by hand, then the end as a fault at its end */
        static const enum fault_action AS_FAULT[] = {[CONN_END_FIN] = FAULT_CLOSE,
                                                     [CONN_END_RST] = FAULT_RESET,
                                                     [CONN_END_HANG] = FAULT_HANG};
        p->manual = true;
        p->fault = AS_FAULT[r->end];
        p->fault_has_after = true;
        p->fault_after = SIZE_MAX / 4; /* past any body: the whole response goes first */
    }
}

/* The encoded stream of an SSE response: no template reaches it, so every stream sends the
 * same bytes, encoded on the first request and shared read-only from then on. Two first
 * requests at once may both encode; one copy is published, the other freed. */
static const struct sse_wire *sse_wire(const struct sse_spec *sse)
{
    struct sse_wire **slot = &((struct sse_spec *)sse)->wire; /* the spec's one cache */
    struct sse_wire *w = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (w)
        return w;
    struct sse_wire *mine = xcalloc(1, sizeof *mine);
    mine->n = sse_encode(sse, &mine->pieces);
    if (__atomic_compare_exchange_n(slot, &w, mine, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return mine;
    pieces_free(mine->pieces, mine->n);
    free(mine);
    return w;
}

void plan_content(const struct response *r, const struct tmpl_ctx *ctx, struct plan *p)
{
    switch (r->kind) {
    case RESP_RAW:
        p->manual = true;
        p->raw = true;
        /* a copy: deliver takes the bytes over and adjusts them (raw bytes are small) */
        if (r->raw_tmpl) {
            size_t len;
            char *text = tmpl_expand(r->raw_tmpl, ctx, &len);
            plan_body(p, text, len);
            free(text);
        } else if (r->chunks.n) {
            /* the bytes in one buffer; the pieces say where each write ends, and when */
            size_t total = 0;
            for (size_t i = 0; i < r->chunks.n; i++)
                total += r->chunks.items[i].bytes.len;
            unsigned char *all = xmalloc(total + 1);
            p->paced = true;
            p->n_pieces = r->chunks.n;
            p->pieces = xcalloc(r->chunks.n, sizeof *p->pieces);
            size_t off = 0;
            for (size_t i = 0; i < r->chunks.n; i++) {
                const struct bytes *b = &r->chunks.items[i].bytes;
                p->pieces[i].after_ms = r->chunks.items[i].pause_ms;
                p->pieces[i].len = b->len;
                p->pieces[i].data = xmalloc(b->len + 1);
                if (b->len)
                    memcpy(p->pieces[i].data, b->data, b->len);
                if (b->len)
                    memcpy(all + off, b->data, b->len);
                off += b->len;
            }
            plan_body(p, all, total);
            free(all);
        } else {
            plan_body(p, r->raw_bytes.data, r->raw_bytes.len);
        }
        break;
    case RESP_PLAIN:
        body_from(p, r->body_kind, r->body_tmpl, &r->body, ctx);
        if (r->preset_type && !plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", r->preset_type);
        break;
    case RESP_STREAM:
        p->paced = true;
        p->chunked = true;
        p->then = r->stream_then;
        p->n_pieces = r->n_stream;
        p->pieces = xcalloc(r->n_stream ? r->n_stream : 1, sizeof *p->pieces);
        for (size_t i = 0; i < r->n_stream; i++) {
            const struct stream_chunk *c = &r->stream[i];
            p->pieces[i].after_ms = c->after_ms;
            if (c->data) {
                size_t len;
                p->pieces[i].data = (unsigned char *)tmpl_expand(c->data, ctx, &len);
                p->pieces[i].len = len;
            } else {
                p->pieces[i].data = xmalloc(c->bytes.len + 1);
                memcpy(p->pieces[i].data, c->bytes.data, c->bytes.len);
                p->pieces[i].len = c->bytes.len;
            }
        }
        break;
    case RESP_SSE: {
        const struct sse_spec *sse = r->sse;
        p->paced = true;
        p->together = true;
        p->chunked = true;
        p->then = sse->then;
        const struct sse_wire *w = sse_wire(sse);
        p->pieces = w->pieces;
        p->n_pieces = w->n;
        p->pieces_borrowed = true;
        const char *ct = sse->content_type ? sse->content_type : "text/event-stream";
        if (*ct && !plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", ct);
        if (!plan_has_header(p, "Cache-Control"))
            plan_header(p, "Cache-Control", "no-store");
        break;
    }
    case RESP_JSONP:
    case RESP_LONG_POLL:
    case RESP_WEBSOCKET:
        break; /* plan_jsonp(), plan_long_poll_*(), ws_upgrade */
    }
}

/* ---------------------------------------------------------------- CORS */

static void cors_origin_headers(const struct cors_policy *c, const char *origin, struct plan *p)
{
    switch (c->allow_origin) {
    case ACAO_ECHO:
        if (origin)
            plan_header(p, "Access-Control-Allow-Origin", origin);
        break;
    case ACAO_STAR:
        plan_header(p, "Access-Control-Allow-Origin", "*");
        break;
    case ACAO_NONE:
        break;
    case ACAO_WRONG:
        plan_header(p, "Access-Control-Allow-Origin",
                    c->allow_origin_value ? c->allow_origin_value : "http://wrong.example");
        break;
    case ACAO_EXACT:
        plan_header(p, "Access-Control-Allow-Origin",
                    c->allow_origin_value ? c->allow_origin_value : "");
        break;
    }
    if (c->allow_credentials)
        plan_header(p, "Access-Control-Allow-Credentials", c->allow_credentials);
    if (c->vary_origin)
        plan_header(p, "Vary", "Origin");
}

void plan_cors_preflight(const struct cors_policy *c, const char *origin, struct plan *p)
{
    p->status = 204;
    cors_origin_headers(c, origin, p);
    if (c->allow_methods)
        plan_header(p, "Access-Control-Allow-Methods", c->allow_methods);
    if (c->allow_headers)
        plan_header(p, "Access-Control-Allow-Headers", c->allow_headers);
    if (c->max_age >= 0) {
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", c->max_age);
        plan_header(p, "Access-Control-Max-Age", buf);
    }
}

void plan_cors_actual(const struct cors_policy *c, const char *origin, struct plan *p)
{
    cors_origin_headers(c, origin, p);
    if (c->expose_headers)
        plan_header(p, "Access-Control-Expose-Headers", c->expose_headers);
}

/* ---------------------------------------------------------------- JSONP */

bool plan_js_identifier_path(const char *s)
{
    /* dotted identifiers: [A-Za-z_$][A-Za-z0-9_$]* joined by '.', at most 128 bytes */
    size_t len = strlen(s);
    if (len == 0 || len > 128)
        return false;
    bool start = true;
    for (const char *c = s; *c; c++) {
        bool alpha = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || *c == '$';
        bool digit = *c >= '0' && *c <= '9';
        if (*c == '.') {
            if (start)
                return false;
            start = true;
        } else if (start) {
            if (!alpha)
                return false;
            start = false;
        } else if (!alpha && !digit) {
            return false;
        }
    }
    return !start;
}

bool plan_jsonp(const struct jsonp_spec *j, const struct request *req, struct plan *p,
                const char **param_out)
{
    const char *param = j->param ? j->param : "callback";
    *param_out = param;
    const char *cb = request_param(req, param);
    if (!cb || !plan_js_identifier_path(cb)) {
        /* never reflect an unsafe name: that is the XSS hole of naive JSONP */
        plan_free(p);
        char msg[200];
        snprintf(msg, sizeof msg, "invalid or missing JSONP callback in the query parameter '%s'\n",
                 param);
        plan_text(p, 400, msg);
        return false;
    }
    char *body;
    if (j->throws) {
        json_t *msg = json_string(j->throw_message ? j->throw_message : "error");
        char *m = json_dumps(msg, JSON_ENCODE_ANY);
        json_decref(msg);
        size_t cap = strlen(m) + 64;
        body = xmalloc(cap);
        snprintf(body, cap, "throw new Error(%s);\n", m);
        free(m);
    } else {
        const char *data = j->data_json ? j->data_json : "null";
        size_t cap = strlen(cb) + strlen(data) + 64;
        body = xmalloc(cap);
        snprintf(body, cap, "%s(%s);\n", cb, data);
    }
    if (!plan_has_header(p, "Content-Type"))
        plan_header(p, "Content-Type", "application/javascript");
    plan_body(p, body, strlen(body));
    free(body);
    return true;
}

/* ---------------------------------------------------------------- long poll */

void plan_long_poll_events(const struct long_poll_spec *lp, const struct channel_event_state *ev,
                           size_t cursor, size_t n, struct plan *p)
{
    if (lp->format == LP_TEXT) {
        plan_body(p, ev[cursor].data, ev[cursor].len);
        char buf[32];
        snprintf(buf, sizeof buf, "%zu", cursor + 1);
        plan_header(p, "X-Harness-Cursor", buf);
        if (!plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", "text/plain; charset=utf-8");
        return;
    }
    json_t *events = json_array();
    for (size_t i = cursor; i < cursor + n; i++) {
        json_t *d = json_stringn((const char *)ev[i].data, ev[i].len);
        json_array_append_new(
            events, json_pack("{s:I, s:o}", "id", (json_int_t)i, "data", d ? d : json_null()));
    }
    json_t *doc = json_pack("{s:I, s:o}", "cursor", (json_int_t)(cursor + n), "events", events);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    plan_body(p, text, strlen(text));
    free(text);
    if (!plan_has_header(p, "Content-Type"))
        plan_header(p, "Content-Type", "application/json");
}

void plan_long_poll_timeout(const struct long_poll_spec *lp, const struct tmpl_ctx *ctx,
                            struct plan *p)
{
    plan_free(p);
    if (!lp->on_timeout) {
        p->status = 204;
        return;
    }
    const struct response *t = lp->on_timeout;
    plan_base(t, ctx, p);
    body_from(p, t->body_kind, t->body_tmpl, &t->body, ctx);
}
