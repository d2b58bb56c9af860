/* respond — answering a request for a scenario instance (/s/ID/...).
 *
 *   dispatch      find the instance, the route (or a CORS preflight), the response of the
 *                 sequence; append the journal entry
 *   delay         suspend until `delay` has passed since arrival
 *   plan          turn the response into a struct plan: status, headers and body with the
 *                 templates expanded, CORS headers added; JSONP, long-poll bodies, streams
 *                 and SSE pieces made here; a long poll with nothing to say is held
 *   send          queue it on libmicrohttpd with a content reader that paces the body
 *                 (body_delay, trickle, pieces) and carries out faults — or write the bytes
 *                 by hand (raw, custom reason phrase) while the connection is suspended
 *   completed     record the end in the journal
 *
 * Every wait suspends the connection and sets a timer (exchange.h); nothing blocks.
 */
#include <errno.h>
#include <nettle/base64.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "exchange.h"
#include "route.h"
#include "server.h"
#include "sse_encode.h"
#include "xalloc.h"

#define PROBE_EVERY_US 200000u
#define RESPONSE_BLOCK (16 * 1024) /* the most one body callback writes */

/* ---------------------------------------------------------------- small helpers */

void plan_free(struct plan *p)
{
    free(p->reason);
    for (size_t i = 0; i < p->n_headers; i++) {
        free(p->headers[i].name);
        free(p->headers[i].value);
    }
    free(p->headers);
    free(p->body);
    pieces_free(p->pieces, p->n_pieces);
    memset(p, 0, sizeof *p);
}

static void plan_header(struct plan *p, const char *name, const char *value)
{
    p->headers = realloc(p->headers, (p->n_headers + 1) * sizeof *p->headers);
    if (!p->headers)
        abort();
    p->headers[p->n_headers].name = xstrdup(name);
    p->headers[p->n_headers].value = xstrdup(value);
    p->n_headers++;
}

static bool plan_has_header(const struct plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_headers; i++)
        if (!strcasecmp(p->headers[i].name, name))
            return true;
    return false;
}

static void plan_body(struct plan *p, const void *data, size_t len)
{
    free(p->body);
    p->body = xmalloc(len + 1);
    memcpy(p->body, data, len);
    p->body[len] = 0;
    p->body_len = len;
}

static char *base64_of(const unsigned char *data, size_t len)
{
    char *out = xmalloc(BASE64_ENCODE_RAW_LENGTH(len) + 1);
    base64_encode_raw(out, len, data);
    out[BASE64_ENCODE_RAW_LENGTH(len)] = 0;
    return out;
}

/* A JSON string for bytes that are UTF-8, else NULL. */
static json_t *text_or_null(const unsigned char *data, size_t len)
{
    return json_stringn((const char *)data, len);
}

static double rel_ms(const struct exchange *ex, uint64_t t)
{
    uint64_t base = ex->inst ? ex->inst->created_us : ex->arrived_us;
    return t >= base ? (double)(t - base) / 1000.0 : 0.0;
}

static json_t *jms(double ms)
{
    return json_real((double)(long long)(ms * 1000.0 + 0.5) / 1000.0);
}

/* Set a field of the journal entry under the instance lock. */
static void entry_set(struct exchange *ex, const char *key, json_t *value)
{
    if (!ex->entry) {
        json_decref(value);
        return;
    }
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(ex->entry, key, value);
    pthread_mutex_unlock(&ex->inst->lock);
}

static void phase(struct exchange *ex, const char *name, uint64_t t)
{
    if (!ex->entry)
        return;
    pthread_mutex_lock(&ex->inst->lock);
    json_t *phases = json_object_get(ex->entry, "phases");
    if (phases && !json_object_get(phases, name))
        json_object_set_new(phases, name, jms(rel_ms(ex, t)));
    pthread_mutex_unlock(&ex->inst->lock);
}

static int conn_fd(struct exchange *ex)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

/* A TCP reset now: SO_LINGER 0, then disconnect (Linux sends RST for connect(AF_UNSPEC) on
 * an established socket). libmicrohttpd closes the dead socket afterwards. */
static void reset_connection(struct exchange *ex)
{
    int fd = conn_fd(ex);
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    connect(fd, &sa, sizeof sa);
}

/* ---------------------------------------------------------------- templates */

static const char *ctx_header(void *req, const char *name)
{
    return request_header(req, name);
}

static const char *ctx_query(void *req, const char *name)
{
    return request_param(req, name);
}

static void make_ctx(struct exchange *ex, struct tmpl_ctx *ctx, char *base, size_t baselen,
                     const char *rel_path, const char *rel_target)
{
    snprintf(base, baselen, "/s/%s", ex->inst->id);
    *ctx = (struct tmpl_ctx){
        .origin_main = server_origin(ex->srv, 0),
        .origin_cross = server_origin(ex->srv, 1),
        .origin_alt = server_origin(ex->srv, 2),
        .base = base,
        .instance = ex->inst->id,
        .method = ex->req.method,
        .path = rel_path,
        .target = rel_target,
        .body = (const char *)(ex->req.body ? ex->req.body : (unsigned char *)""),
        .body_len = ex->req.body_len,
        .count = ex->count,
        .header = ctx_header,
        .query = ctx_query,
        .req = &ex->req,
    };
}

/* The path and target relative to the instance prefix. */
static const char *rel_of(const char *full)
{
    /* full starts with /s/ID */
    const char *p = full + 3;
    p += strcspn(p, "/?#");
    return p;
}

/* ---------------------------------------------------------------- dispatch */

static json_t *headers_json(const struct request *r)
{
    json_t *list = json_array();
    for (size_t i = 0; i < r->n_headers; i++)
        json_array_append_new(list, json_pack("[s,s]", r->headers[i].name, r->headers[i].value));
    return list;
}

static json_t *new_entry(struct exchange *ex, const char *rel_path)
{
    json_t *e = json_object();
    json_object_set_new(e, "port", json_integer(server_port(ex->srv, ex->port_index)));
    json_object_set_new(e, "origin", json_string(ex->port_index ? "cross" : "main"));
    json_object_set_new(e, "remote", json_string(ex->remote));
    json_object_set_new(e, "method", json_string(ex->req.method));
    json_object_set_new(e, "target", json_string(ex->req.target));
    json_object_set_new(e, "path", json_string(rel_path));
    json_object_set_new(e, "query", json_string(ex->req.query));
    json_object_set_new(e, "http_version", json_string(ex->version ? ex->version : ""));
    json_object_set_new(e, "headers", headers_json(&ex->req));
    json_t *body =
        text_or_null(ex->req.body ? ex->req.body : (const unsigned char *)"", ex->req.body_len);
    if (body) {
        json_object_set_new(e, "body", body);
    } else {
        char *b64 = base64_of(ex->req.body, ex->req.body_len);
        json_object_set_new(e, "body_base64", json_string(b64));
        free(b64);
    }
    json_object_set_new(e, "body_len", json_integer((json_int_t)ex->req.body_len));
    if (ex->body_too_large)
        json_object_set_new(e, "body_truncated", json_true());
    json_object_set_new(e, "arrived", jms(rel_ms(ex, ex->arrived_us)));
    json_object_set_new(e, "phases", json_object());
    json_object_set_new(e, "bytes_sent", json_integer(0));
    json_object_set_new(e, "end", json_null());
    return e;
}

static bool dispatch(struct exchange *ex)
{
    const char *p = ex->req.path + 3;
    size_t idlen = strcspn(p, "/");
    char *id = strndup(p, idlen);
    if (!id)
        abort();
    ex->inst = registry_get(server_registry(ex->srv), id);
    free(id);
    if (!ex->inst)
        return false;
    const char *rel = p + idlen;
    if (!*rel)
        rel = "/";
    struct instance *in = ex->inst;
    const struct scenario *s = in->scenario;
    pthread_mutex_lock(&in->lock);
    /* arrival times count from the instance's load (or reset) */
    ex->preflight = false;
    ex->route = -1;
    if (request_is_preflight(&ex->req)) {
        ex->route = route_find_preflight(s, &ex->req, rel);
        ex->preflight = ex->route >= 0;
    }
    if (!ex->preflight)
        ex->route = route_find(s, &ex->req, rel);
    json_t *e = new_entry(ex, rel);
    json_object_set_new(e, "kind", json_string(ex->preflight ? "preflight" : "actual"));
    if (ex->route >= 0) {
        const struct route *rt = &s->routes[ex->route];
        json_object_set_new(e, "route", json_string(rt->name));
        if (ex->preflight) {
            ex->resp =
                rt->cors->preflight == PREFLIGHT_SCRIPTED ? rt->cors->preflight_response : NULL;
            json_object_set_new(e, "response_index", json_null());
        } else {
            ex->count = ++in->route_counts[ex->route];
            ex->resp_index = route_response_index(rt, ex->count);
            ex->resp = ex->resp_index >= 0 ? &rt->responses[ex->resp_index] : NULL;
            json_object_set_new(e, "response_index",
                                ex->resp_index >= 0 ? json_integer(ex->resp_index) : json_null());
            json_object_set_new(e, "count", json_integer((json_int_t)ex->count));
        }
    } else {
        json_object_set_new(e, "route", json_null());
        json_object_set_new(e, "response_index", json_null());
    }
    if (ex->preflight) {
        const char *o = request_header(&ex->req, "Origin");
        const char *m = request_header(&ex->req, "Access-Control-Request-Method");
        const char *h = request_header(&ex->req, "Access-Control-Request-Headers");
        json_object_set_new(e, "cors",
                            json_pack("{s:s?, s:s?, s:s?}", "origin", o, "request_method", m,
                                      "request_headers", h));
    }
    ex->entry = e; /* our reference; the journal takes its own */
    journal_append(&in->journal, e);
    struct waiter *wake = instance_take_waiters_locked(in, -1);
    pthread_mutex_unlock(&in->lock);
    waiters_wake(wake);
    return true;
}

/* ---------------------------------------------------------------- CORS */

static void cors_origin_headers(struct exchange *ex, const struct cors_policy *c, struct plan *p)
{
    const char *origin = request_header(&ex->req, "Origin");
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

static void cors_preflight_plan(struct exchange *ex, const struct cors_policy *c, struct plan *p)
{
    p->status = 204;
    cors_origin_headers(ex, c, p);
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

static void cors_actual_headers(struct exchange *ex, const struct cors_policy *c, struct plan *p)
{
    cors_origin_headers(ex, c, p);
    if (c->expose_headers)
        plan_header(p, "Access-Control-Expose-Headers", c->expose_headers);
}

/* ---------------------------------------------------------------- plans */

static void text_plan(struct plan *p, int status, const char *text)
{
    p->status = status;
    plan_header(p, "Content-Type", "text/plain; charset=utf-8");
    plan_body(p, text, strlen(text));
}

/* Status, reason, headers, timing and faults common to every kind of response. */
static void base_plan(struct exchange *ex, const struct response *r, const struct tmpl_ctx *ctx,
                      struct plan *p)
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
    (void)ex;
}

static bool js_identifier_path(const char *s)
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

static void jsonp_plan(struct exchange *ex, const struct response *r, struct plan *p)
{
    const struct jsonp_spec *j = r->jsonp;
    const char *param = j->param ? j->param : "callback";
    const char *cb = request_param(&ex->req, param);
    bool ok = cb && js_identifier_path(cb);
    entry_set(ex, "jsonp", json_pack("{s:s, s:b}", "param", param, "callback_valid", ok));
    if (!ok) {
        /* never reflect an unsafe name: that is the XSS hole of naive JSONP */
        plan_free(p);
        char msg[200];
        snprintf(msg, sizeof msg, "invalid or missing JSONP callback in the query parameter '%s'\n",
                 param);
        text_plan(p, 400, msg);
        return;
    }
    size_t cap = strlen(cb) + (j->data_json ? strlen(j->data_json) : 4) +
                 (j->throw_message ? 2 * strlen(j->throw_message) : 0) + 64;
    char *body = xmalloc(cap);
    if (j->throws) {
        json_t *msg = json_string(j->throw_message ? j->throw_message : "error");
        char *m = json_dumps(msg, JSON_ENCODE_ANY);
        json_decref(msg);
        cap = strlen(m) + 64;
        body = realloc(body, cap);
        snprintf(body, cap, "throw new Error(%s);\n", m);
        free(m);
    } else {
        snprintf(body, cap, "%s(%s);\n", cb, j->data_json ? j->data_json : "null");
    }
    if (!plan_has_header(p, "Content-Type"))
        plan_header(p, "Content-Type", "application/javascript");
    plan_body(p, body, strlen(body));
    free(body);
}

static void wake_exchange(void *arg)
{
    ex_resume(arg);
}

/* A long poll: true if the plan is ready, false if the request is now held. */
static bool long_poll_plan(struct exchange *ex, const struct response *r,
                           const struct tmpl_ctx *ctx, struct plan *p)
{
    const struct long_poll_spec *lp = r->long_poll;
    struct instance *in = ex->inst;
    uint64_t now = mono_us();
    if (!ex->hold_until_us)
        ex->hold_until_us = ex->arrived_us + lp->hold_timeout_ms * 1000u + r->delay_ms * 1000u;
    pthread_mutex_lock(&in->lock);
    if (ex->waiting) {
        instance_remove_waiter_locked(in, &ex->waiter);
        ex->waiting = false;
    }
    long ch = instance_channel_index(in, lp->channel);
    struct channel_state *st = ch >= 0 ? &in->channels[ch] : NULL;
    size_t cursor = in->route_cursors[ex->route];
    const char *cp = lp->cursor_param ? request_param(&ex->req, lp->cursor_param) : NULL;
    if (cp)
        cursor = (size_t)strtoull(cp, NULL, 10);
    size_t avail = 0;
    uint64_t next_due = 0;
    if (st) {
        for (size_t i = cursor; i < st->n; i++) {
            if (st->events[i].available_us <= now)
                avail = i + 1 - cursor;
            else {
                next_due = st->events[i].available_us;
                break;
            }
        }
    }
    if (avail == 0 && now < ex->hold_until_us && !server_stopping(ex->srv) && !in->unloaded) {
        ex->waiter.channel = ch;
        ex->waiter.wake = wake_exchange;
        ex->waiter.arg = ex;
        instance_add_waiter_locked(in, &ex->waiter);
        ex->waiting = true;
        pthread_mutex_unlock(&in->lock);
        uint64_t due = ex->hold_until_us;
        if (next_due && next_due < due)
            due = next_due;
        ex->state = EX_HOLDING;
        ex_sleep_until(ex, due);
        return false;
    }
    if (avail == 0) {
        pthread_mutex_unlock(&in->lock);
        entry_set(ex, "long_poll",
                  json_pack("{s:b, s:I}", "timed_out", 1, "cursor", (json_int_t)cursor));
        plan_free(p);
        if (lp->on_timeout) {
            base_plan(ex, lp->on_timeout, ctx, p);
            if (lp->on_timeout->body_kind == BODY_TEXT) {
                size_t len;
                char *b = tmpl_expand(lp->on_timeout->body_tmpl, ctx, &len);
                plan_body(p, b, len);
                free(b);
            } else if (lp->on_timeout->body_kind == BODY_BYTES) {
                plan_body(p, lp->on_timeout->body.data, lp->on_timeout->body.len);
            }
        } else {
            p->status = 204;
        }
        return true;
    }
    size_t next = cursor + avail;
    if (!lp->cursor_param || !cp)
        in->route_cursors[ex->route] = next;
    if (lp->format == LP_TEXT) {
        plan_body(p, st->events[cursor].data, st->events[cursor].len);
        char buf[32];
        snprintf(buf, sizeof buf, "%zu", cursor + 1);
        plan_header(p, "X-Harness-Cursor", buf);
        if (!plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", "text/plain; charset=utf-8");
    } else {
        json_t *events = json_array();
        for (size_t i = cursor; i < next; i++) {
            json_t *d = json_stringn((const char *)st->events[i].data, st->events[i].len);
            json_array_append_new(
                events, json_pack("{s:I, s:o}", "id", (json_int_t)i, "data", d ? d : json_null()));
        }
        json_t *doc = json_pack("{s:I, s:o}", "cursor", (json_int_t)next, "events", events);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        plan_body(p, text, strlen(text));
        free(text);
        if (!plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", "application/json");
    }
    pthread_mutex_unlock(&in->lock);
    entry_set(ex, "long_poll",
              json_pack("{s:b, s:I, s:I}", "timed_out", 0, "cursor", (json_int_t)cursor,
                        "delivered", (json_int_t)avail));
    return true;
}

static void require_check(struct exchange *ex, const struct response *r)
{
    if (!r->n_require_headers)
        return;
    json_t *failed = json_array();
    for (size_t i = 0; i < r->n_require_headers; i++)
        if (!headers_match(&r->require_headers[i], 1, &ex->req))
            json_array_append_new(failed, json_string(r->require_headers[i].name));
    entry_set(ex, "require",
              json_pack("{s:b, s:o}", "met", json_array_size(failed) == 0, "failed", failed));
}

/* Build ex->plan. False if the request is held (a long poll). */
static bool make_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    plan_free(p); /* a held long poll comes back here */
    char base[256];
    struct tmpl_ctx ctx;
    const char *rel_path = rel_of(ex->req.path);
    const char *rel_target = rel_of(ex->req.target);
    make_ctx(ex, &ctx, base, sizeof base, *rel_path ? rel_path : "/", rel_target);
    const struct scenario *s = ex->inst->scenario;
    const struct route *rt = ex->route >= 0 ? &s->routes[ex->route] : NULL;
    const struct response *r = ex->resp;

    if (ex->route < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "no route of instance %s matches %s %s\n", ex->inst->id,
                 ex->req.method, *rel_path ? rel_path : "/");
        text_plan(p, 404, msg);
        return true;
    }
    if (ex->preflight && !r) {
        cors_preflight_plan(ex, rt->cors, p);
        return true;
    }
    if (!r) {
        char msg[512];
        snprintf(msg, sizeof msg, "the sequence of route %s is over (after_last: not_found)\n",
                 rt->name);
        text_plan(p, 404, msg);
        return true;
    }
    require_check(ex, r);
    base_plan(ex, r, &ctx, p);
    switch (r->kind) {
    case RESP_RAW: {
        p->manual = true;
        if (r->raw_tmpl) {
            size_t len;
            char *b = tmpl_expand(r->raw_tmpl, &ctx, &len);
            plan_body(p, b, len);
            free(b);
        } else {
            plan_body(p, r->raw_bytes.data, r->raw_bytes.len);
        }
        break;
    }
    case RESP_PLAIN:
        if (r->body_kind == BODY_TEXT) {
            size_t len;
            char *b = tmpl_expand(r->body_tmpl, &ctx, &len);
            plan_body(p, b, len);
            free(b);
        } else if (r->body_kind == BODY_BYTES) {
            plan_body(p, r->body.data, r->body.len);
        }
        if (r->preset_type && !plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", r->preset_type);
        break;
    case RESP_JSONP:
        jsonp_plan(ex, r, p);
        break;
    case RESP_LONG_POLL:
        if (!long_poll_plan(ex, r, &ctx, p))
            return false;
        break;
    case RESP_STREAM: {
        p->paced = true;
        p->chunked = true;
        p->then = r->stream_then;
        p->n_pieces = r->n_stream;
        p->pieces = calloc(r->n_stream ? r->n_stream : 1, sizeof *p->pieces);
        for (size_t i = 0; i < r->n_stream; i++) {
            const struct stream_chunk *c = &r->stream[i];
            p->pieces[i].after_ms = c->after_ms;
            if (c->data) {
                size_t len;
                p->pieces[i].data = (unsigned char *)tmpl_expand(c->data, &ctx, &len);
                p->pieces[i].len = len;
            } else {
                p->pieces[i].data = xmalloc(c->bytes.len + 1);
                memcpy(p->pieces[i].data, c->bytes.data, c->bytes.len);
                p->pieces[i].len = c->bytes.len;
            }
        }
        break;
    }
    case RESP_SSE: {
        const struct sse_spec *sse = r->sse;
        p->paced = true;
        p->chunked = true;
        p->then = sse->then;
        p->n_pieces = sse_encode(sse, &p->pieces);
        const char *ct = sse->content_type ? sse->content_type : "text/event-stream";
        if (*ct && !plan_has_header(p, "Content-Type"))
            plan_header(p, "Content-Type", ct);
        if (!plan_has_header(p, "Cache-Control"))
            plan_header(p, "Cache-Control", "no-store");
        break;
    }
    case RESP_WEBSOCKET:
        break; /* handled by ws_respond() */
    }
    if (rt->cors && !ex->preflight)
        cors_actual_headers(ex, rt->cors, p);
    return true;
}

/* ---------------------------------------------------------------- hanging */

static void probe(void *arg);

static void start_probe(struct exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    ex->refs++;
    pthread_mutex_unlock(&ex->lock);
    uint64_t id = timers_add(server_timers(ex->srv), mono_us() + PROBE_EVERY_US, probe, ex);
    pthread_mutex_lock(&ex->lock);
    if (!ex->done)
        ex->timer_id = id;
    pthread_mutex_unlock(&ex->lock);
}

/* Is the peer of a hanging response still there? Runs on the timer thread. */
static void probe(void *arg)
{
    struct exchange *ex = arg;
    pthread_mutex_lock(&ex->lock);
    ex->timer_id = 0;
    bool done = ex->done;
    pthread_mutex_unlock(&ex->lock);
    if (done) {
        ex_unref(ex);
        return;
    }
    int fd = conn_fd(ex);
    char c;
    ssize_t n = fd >= 0 ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) : 0;
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        ex->end = n == 0 ? "client_closed" : "reset";
        ex_resume(ex);
        ex_unref(ex);
        return;
    }
    if (server_stopping(ex->srv)) {
        ex_resume(ex);
        ex_unref(ex);
        return;
    }
    start_probe(ex);
    ex_unref(ex);
}

static void hang(struct exchange *ex)
{
    ex->state = EX_HANGING;
    ex->probing = true;
    ex_suspend(ex);
    start_probe(ex);
}

/* ---------------------------------------------------------------- the content reader */

/* End the body as a fault says: a reset, a hang, or a close (FIN) before the body is done. */
static ssize_t end_with(struct exchange *ex, enum fault_action action)
{
    switch (action) {
    case FAULT_RESET:
        ex->end = "fault_reset";
        reset_connection(ex);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    case FAULT_HANG:
        hang(ex);
        return 0;
    case FAULT_CLOSE:
    default:
        ex->end = "fault_close";
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

/* After a stream's last piece: the terminating chunk, or a hang or reset. */
static ssize_t stream_end(struct exchange *ex)
{
    if (ex->plan.then == END_CLOSE)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return end_with(ex, ex->plan.then == END_RESET ? FAULT_RESET : FAULT_HANG);
}

static void count_sent(struct exchange *ex, size_t n, uint64_t now)
{
    if (ex->sent == 0 && n > 0)
        phase(ex, "body_first_byte", now);
    ex->sent += n;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct exchange *ex = cls;
    struct plan *p = &ex->plan;
    if (ex->state == EX_HANGING) {
        if (ex->end || server_stopping(ex->srv)) {
            if (!ex->end)
                ex->end = "server_stopped";
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        ex_suspend(ex); /* a spurious resume: hang on */
        return 0;
    }
    if (server_stopping(ex->srv)) {
        ex->end = "server_stopped";
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    uint64_t now = mono_us();
    if (!ex->body_start_us) {
        uint64_t due = ex->headers_us + p->body_delay_ms * 1000u;
        if (p->body_delay_ms && now < due) {
            ex_sleep_until(ex, due);
            return 0;
        }
        ex->body_start_us = now;
        ex->piece_due_us = now + (p->n_pieces ? p->pieces[0].after_ms * 1000u : 0);
    }
    if (p->paced) {
        if (ex->piece >= p->n_pieces)
            return stream_end(ex);
        if (now < ex->piece_due_us) {
            ex_sleep_until(ex, ex->piece_due_us);
            return 0;
        }
        const struct piece *pc = &p->pieces[ex->piece];
        size_t n = pc->len - ex->piece_off;
        if (n > max)
            n = max;
        memcpy(buf, pc->data + ex->piece_off, n);
        ex->piece_off += n;
        if (ex->piece_off >= pc->len) {
            ex->piece++;
            ex->piece_off = 0;
            if (ex->piece < p->n_pieces)
                ex->piece_due_us += p->pieces[ex->piece].after_ms * 1000u;
        }
        count_sent(ex, n, now);
        if (n == 0) /* an empty piece: nothing to send, go on */
            return reader(cls, pos, buf, max);
        return (ssize_t)n;
    }
    size_t limit = p->body_len;
    if (p->fault != FAULT_NONE && p->fault_has_after && p->fault_after < limit)
        limit = p->fault_after;
    size_t allowed = limit;
    uint64_t ticks = 0;
    if (p->trickle_bytes) {
        uint64_t every = p->trickle_every_ms ? p->trickle_every_ms * 1000u : 1;
        ticks = 1 + (now - ex->body_start_us) / every;
        uint64_t a = ticks * p->trickle_bytes;
        if (a < allowed)
            allowed = (size_t)a;
    }
    if (pos >= limit) {
        if (pos >= p->body_len)
            return MHD_CONTENT_READER_END_OF_STREAM;
        return end_with(ex, p->fault);
    }
    if (pos >= allowed) {
        uint64_t every = p->trickle_every_ms * 1000u;
        ex_sleep_until(ex, ex->body_start_us + ticks * every);
        return 0;
    }
    size_t n = allowed - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, p->body + pos, n);
    count_sent(ex, n, now);
    return (ssize_t)n;
}

/* ---------------------------------------------------------------- sending */

static void note_status(struct exchange *ex, int status)
{
    entry_set(ex, "status", status > 0 ? json_integer(status) : json_null());
}

static enum MHD_Result queue_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    uint64_t size = (p->chunked || p->paced) ? MHD_SIZE_UNKNOWN : p->body_len;
    /* MHD allocates (and zeroes) a buffer of block_size per response: a body sent whole
     * needs no more than its own length, which keeps a burst of small answers cheap. A
     * streamed or paced body keeps the full size (one chunk per piece up to 16 KiB). */
    size_t block = RESPONSE_BLOCK;
    if (size != MHD_SIZE_UNKNOWN && p->body_len < block)
        block = p->body_len > 64 ? p->body_len : 64;
    struct MHD_Response *resp = MHD_create_response_from_callback(size, block, reader, ex, NULL);
    if (!resp)
        return MHD_NO;
    json_t *warnings = NULL;
    for (size_t i = 0; i < p->n_headers; i++) {
        if (MHD_add_response_header(resp, p->headers[i].name, p->headers[i].value) != MHD_YES) {
            if (!warnings)
                warnings = json_array();
            json_array_append_new(
                warnings,
                json_sprintf("libmicrohttpd refused the header %s: use raw", p->headers[i].name));
        }
    }
    if (warnings)
        entry_set(ex, "warnings", warnings);
    ex->headers_us = mono_us();
    ex->state = EX_QUEUED;
    note_status(ex, p->status);
    enum MHD_Result ok = MHD_queue_response(ex->conn, (unsigned)p->status, resp);
    MHD_destroy_response(resp);
    phase(ex, "headers_sent", ex->headers_us);
    return ok;
}

/* The bytes of a response written by hand (a custom reason phrase). */
static void serialize_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    size_t cap = 256 + p->body_len;
    for (size_t i = 0; i < p->n_headers; i++)
        cap += strlen(p->headers[i].name) + strlen(p->headers[i].value) + 4;
    char *out = xmalloc(cap);
    size_t n = (size_t)snprintf(out, cap, "HTTP/1.1 %d %s\r\n", p->status,
                                p->reason ? p->reason : scenario_reason_phrase(p->status));
    for (size_t i = 0; i < p->n_headers; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s: %s\r\n", p->headers[i].name,
                              p->headers[i].value);
    if (!plan_has_header(p, "Content-Length"))
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n", p->body_len);
    n += (size_t)snprintf(out + n, cap - n, "Connection: close\r\n\r\n");
    ex->out_off = 0;
    size_t head = n;
    memcpy(out + n, p->body, p->body_len);
    n += p->body_len;
    ex->out = (unsigned char *)out;
    ex->out_len = n;
    /* trickle and faults count body bytes: shift them past the head */
    if (p->fault_has_after)
        p->fault_after += head;
    ex->piece_off = head; /* bytes that go out at once */
}

/* Write what is due of a hand-written response; suspend until the next part is due. */
static enum MHD_Result manual_pump(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    int fd = conn_fd(ex);
    uint64_t now = mono_us();
    if (fd < 0)
        return MHD_NO;
    size_t limit = ex->out_len;
    if (p->fault != FAULT_NONE && p->fault_has_after && p->fault_after < limit)
        limit = p->fault_after;
    size_t allowed = limit;
    uint64_t ticks = 0;
    if (!ex->body_start_us)
        ex->body_start_us = now;
    if (p->trickle_bytes) {
        uint64_t every = p->trickle_every_ms ? p->trickle_every_ms * 1000u : 1;
        ticks = 1 + (now - ex->body_start_us) / every;
        uint64_t a = ex->piece_off + ticks * p->trickle_bytes;
        if (a < allowed)
            allowed = (size_t)a;
    }
    while (ex->out_off < allowed) {
        ssize_t n =
            send(fd, ex->out + ex->out_off, allowed - ex->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ex_wake_at(ex, now + 5000);
                return MHD_YES;
            }
            if (errno == EINTR)
                continue;
            ex->end = "client_closed";
            return MHD_NO;
        }
        if (ex->out_off == 0 && n > 0)
            phase(ex, "headers_sent", now);
        ex->out_off += (size_t)n;
        ex->sent = ex->out_off;
    }
    if (ex->out_off < limit) {
        ex_wake_at(ex, ex->body_start_us + ticks * p->trickle_every_ms * 1000u);
        return MHD_YES;
    }
    phase(ex, "body_done", now);
    if (ex->out_off < ex->out_len || p->fault != FAULT_NONE) {
        switch (p->fault) {
        case FAULT_RESET:
            ex->end = "fault_reset";
            reset_connection(ex);
            return MHD_NO;
        case FAULT_HANG:
            /* already suspended: probe the peer until it goes */
            ex->state = EX_HANGING;
            ex->probing = true;
            start_probe(ex);
            return MHD_YES;
        default:
            ex->end = "fault_close";
            shutdown(fd, SHUT_WR);
            return MHD_NO;
        }
    }
    ex->end = "complete";
    shutdown(fd, SHUT_WR);
    return MHD_NO;
}

static enum MHD_Result send_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    if (p->fault != FAULT_NONE && !p->fault_has_after) {
        note_status(ex, 0);
        switch (p->fault) {
        case FAULT_RESET:
            ex->end = "fault_reset";
            reset_connection(ex);
            return MHD_NO;
        case FAULT_HANG:
            hang(ex);
            return MHD_YES;
        default:
            ex->end = "fault_close";
            return MHD_NO;
        }
    }
    if (p->manual) {
        if ((ex->resp && ex->resp->kind == RESP_RAW) || p->raw) {
            ex->out = p->body;
            ex->out_len = p->body_len;
            p->body = NULL;
            p->body_len = 0;
            ex->piece_off = 0;
            int status = 0;
            if (ex->out_len > 12 && !memcmp(ex->out, "HTTP/", 5)) {
                const char *sp = memchr(ex->out, ' ', ex->out_len);
                if (sp)
                    status = atoi(sp + 1);
            }
            note_status(ex, status);
        } else {
            note_status(ex, p->status);
            serialize_plan(ex);
        }
        ex->state = EX_MANUAL;
        /* MHD must not touch the socket while we write: stay suspended between writes */
        ex->body_start_us = 0;
        ex_suspend(ex);
        enum MHD_Result r = manual_pump(ex);
        if (r == MHD_NO) {
            ex_resume(ex);
            ex->state = EX_CLOSE_NOW;
            return MHD_YES;
        }
        return MHD_YES;
    }
    return queue_plan(ex);
}

enum MHD_Result respond_raw_bytes(struct exchange *ex, const void *bytes, size_t len,
                                  enum fault_action after)
{
    struct plan *p = &ex->plan;
    plan_free(p);
    p->manual = true;
    p->raw = true;
    plan_body(p, bytes, len);
    p->fault = after;
    p->fault_has_after = after != FAULT_NONE;
    p->fault_after = len;
    return send_plan(ex);
}

/* ---------------------------------------------------------------- entry point */

enum MHD_Result respond_scenario(struct exchange *ex)
{
    switch (ex->state) {
    case EX_NEW:
        if (!dispatch(ex)) {
            char msg[300];
            snprintf(msg, sizeof msg, "no instance at %.200s (see GET /_harness/instances)\n",
                     ex->req.path);
            return queue_simple(ex, 404, "text/plain; charset=utf-8", msg, strlen(msg));
        }
        if (ex->resp && ex->resp->delay_ms) {
            ex->state = EX_DELAYED;
            ex_sleep_until(ex, ex->arrived_us + ex->resp->delay_ms * 1000u);
            return MHD_YES;
        }
        ex->state = EX_READY;
        break;
    case EX_DELAYED: {
        uint64_t due = ex->arrived_us + ex->resp->delay_ms * 1000u;
        if (mono_us() + 200 < due) { /* resumed early (shutdown is handled by the caller) */
            ex_sleep_until(ex, due);
            return MHD_YES;
        }
        ex->state = EX_READY;
        break;
    }
    case EX_HOLDING:
        break;
    case EX_MANUAL: {
        ex_suspend(ex);
        enum MHD_Result r = manual_pump(ex);
        if (r == MHD_NO) {
            ex_resume(ex);
            ex->state = EX_CLOSE_NOW;
        }
        return MHD_YES;
    }
    case EX_HANGING:
        if (ex->end || server_stopping(ex->srv)) {
            if (!ex->end)
                ex->end = "server_stopped";
            return MHD_NO;
        }
        ex_suspend(ex);
        return MHD_YES;
    case EX_CLOSE_NOW:
        return MHD_NO;
    case EX_READY:
    case EX_QUEUED:
        break;
    }
    if (ex->state == EX_QUEUED)
        return MHD_YES;
    if (ex->resp && ex->resp->kind == RESP_WEBSOCKET && !ex->preflight)
        return ws_respond(ex);
    if (!make_plan(ex))
        return MHD_YES; /* held */
    return send_plan(ex);
}

void respond_completed(struct exchange *ex, enum MHD_RequestTerminationCode code)
{
    if (!ex->entry)
        return;
    uint64_t now = mono_us();
    const char *end = ex->end;
    pthread_mutex_lock(&ex->inst->lock);
    bool upgraded =
        json_is_true(json_object_get(json_object_get(ex->entry, "websocket"), "upgraded"));
    pthread_mutex_unlock(&ex->inst->lock);
    if (upgraded)
        return; /* the WebSocket session records its own end */
    if (!end) {
        switch (code) {
        case MHD_REQUEST_TERMINATED_COMPLETED_OK:
            end = "complete";
            break;
        case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN:
            end = "server_stopped";
            break;
        case MHD_REQUEST_TERMINATED_CLIENT_ABORT:
        case MHD_REQUEST_TERMINATED_READ_ERROR:
            end = "client_closed";
            break;
        case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED:
            end = "timeout";
            break;
        default:
            end = server_stopping(ex->srv) ? "server_stopped" : "error";
            break;
        }
    }
    pthread_mutex_lock(&ex->inst->lock);
    json_t *e = ex->entry;
    json_object_set_new(e, "end", json_string(end));
    json_object_set_new(e, "ended", jms(rel_ms(ex, now)));
    json_object_set_new(e, "bytes_sent", json_integer((json_int_t)ex->sent));
    if (!strcmp(end, "complete")) {
        json_t *phases = json_object_get(e, "phases");
        if (phases && !json_object_get(phases, "body_done"))
            json_object_set_new(phases, "body_done", jms(rel_ms(ex, now)));
    }
    pthread_mutex_unlock(&ex->inst->lock);
}
