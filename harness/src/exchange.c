/* exchange — the life of a request in flight; see exchange.h. */
#include "exchange.h"

#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "xalloc.h"

static const char *const END_NAMES[] = {
    [EX_END_NONE] = NULL,
    [EX_END_COMPLETE] = "complete",
    [EX_END_CLIENT_CLOSED] = "client_closed",
    [EX_END_RESET] = "reset",
    [EX_END_FAULT_CLOSE] = "fault_close",
    [EX_END_FAULT_RESET] = "fault_reset",
    [EX_END_SERVER_STOPPED] = "server_stopped",
    [EX_END_TIMEOUT] = "timeout",
    [EX_END_ERROR] = "error",
};

const char *ex_end_name(enum ex_end end)
{
    return (size_t)end < sizeof END_NAMES / sizeof *END_NAMES ? END_NAMES[end] : NULL;
}

/* ---------------------------------------------------------------- life */

struct exchange *ex_new(struct ex_host *host, int port_index, struct MHD_Connection *conn,
                        const char *uri)
{
    struct exchange *ex = xcalloc(1, sizeof *ex);
    ex->host = host;
    ex->port_index = port_index;
    ex->conn = conn;
    ex->refs = 1;
    ex->route = -1;
    ex->resp_index = -1;
    ex->channel = -1;
    ex->arrived_us = mono_us();
    pthread_mutex_init(&ex->lock, NULL);
    /* the method is not known yet: request_init() is redone with it later */
    request_init(&ex->req, "", uri ? uri : "/");
    return ex;
}

void ex_ref(struct exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    ex->refs++;
    pthread_mutex_unlock(&ex->lock);
}

void ex_unref(struct exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    bool last = --ex->refs == 0;
    pthread_mutex_unlock(&ex->lock);
    if (!last)
        return;
    if (ex->entry)
        json_decref(ex->entry);
    if (ex->inst)
        instance_unref(&ex->host->reg, ex->inst);
    plan_free(&ex->plan);
    request_free(&ex->req);
    free(ex->version);
    free(ex->out);
    free(ex->wait_route);
    pthread_mutex_destroy(&ex->lock);
    free(ex);
}

void ex_finish(struct exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    ex->done = true;
    uint64_t tid = ex->timer_id;
    ex->timer_id = 0;
    pthread_mutex_unlock(&ex->lock);
    if (tid && timers_cancel(ex->host->timers, tid))
        ex_unref(ex); /* the cancelled timer's reference */
    if (ex->waiting && ex->inst) {
        pthread_mutex_lock(&ex->inst->lock);
        instance_remove_waiter_locked(ex->inst, &ex->waiter);
        pthread_mutex_unlock(&ex->inst->lock);
        ex->waiting = false;
    }
}

/* ---------------------------------------------------------------- waits */

void ex_suspend(struct exchange *ex)
{
    MHD_suspend_connection(ex->conn);
    pthread_mutex_lock(&ex->lock);
    ex->suspended = true;
    pthread_mutex_unlock(&ex->lock);
}

void ex_resume(struct exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    if (ex->suspended && !ex->done) {
        ex->suspended = false;
        MHD_resume_connection(ex->conn);
    }
    pthread_mutex_unlock(&ex->lock);
}

void ex_wake(void *ex)
{
    ex_resume(ex);
}

static void on_timer(void *arg)
{
    struct exchange *ex = arg;
    pthread_mutex_lock(&ex->lock);
    ex->timer_id = 0;
    pthread_mutex_unlock(&ex->lock);
    ex_resume(ex);
    ex_unref(ex);
}

void ex_wake_at(struct exchange *ex, uint64_t due_us)
{
    pthread_mutex_lock(&ex->lock);
    uint64_t old = ex->timer_id;
    ex->timer_id = 0;
    ex->refs++; /* the timer's */
    pthread_mutex_unlock(&ex->lock);
    if (old && timers_cancel(ex->host->timers, old))
        ex_unref(ex); /* an earlier timer that will not run now */
    uint64_t id = timers_add(ex->host->timers, due_us, on_timer, ex);
    pthread_mutex_lock(&ex->lock);
    /* the timer may already have run: only remember it if it is still pending */
    if (ex->suspended)
        ex->timer_id = id;
    pthread_mutex_unlock(&ex->lock);
}

void ex_sleep_until(struct exchange *ex, uint64_t due_us)
{
    ex_suspend(ex);
    ex_wake_at(ex, due_us);
}

void ex_call_at(struct exchange *ex, uint64_t due_us, void (*fn)(void *ex))
{
    ex_ref(ex); /* the timer's */
    uint64_t id = timers_add(ex->host->timers, due_us, fn, ex);
    pthread_mutex_lock(&ex->lock);
    if (!ex->done)
        ex->timer_id = id;
    pthread_mutex_unlock(&ex->lock);
}

/* ---------------------------------------------------------------- the host */

static const char *const PORT_NAMES[EX_N_PORTS] = {
    "main",
    "cross",
    "control",
    "main_tls",
    "cross_tls",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_wrong_name",
    "cert_self_signed",
    "cert_untrusted_ca",
};

const char *ex_port_name(int port_index)
{
    return port_index >= 0 && port_index < EX_N_PORTS ? PORT_NAMES[port_index] : "?";
}

bool ex_port_tls(int port_index)
{
    return port_index >= EX_PORT_MAIN_TLS && port_index < EX_N_PORTS;
}

const char *ex_origin(const struct exchange *ex, int which)
{
    return ex->host->origins[0][ORIGIN_SITE_NONE][which];
}

const char (*ex_scenario_origins(const struct exchange *ex, const struct scenario *s))[ORIGIN_LEN]
{
    return ex->host->origins[s->tls ? 1 : 0][s->site];
}

uint16_t ex_port(const struct exchange *ex)
{
    return ex->host->ports[ex->port_index];
}

struct registry *ex_registry(struct exchange *ex)
{
    return &ex->host->reg;
}

const struct ctlauth *ex_auth(const struct exchange *ex)
{
    return &ex->host->auth;
}

const struct fsroot *ex_roots(const struct exchange *ex)
{
    return ex->host->roots;
}

bool ex_stopping(struct exchange *ex)
{
    pthread_mutex_lock(&ex->host->lock);
    bool s = ex->host->stopping;
    pthread_mutex_unlock(&ex->host->lock);
    return s;
}

void ex_ws_session_started(struct exchange *ex)
{
    pthread_mutex_lock(&ex->host->lock);
    ex->host->ws_sessions++;
    pthread_mutex_unlock(&ex->host->lock);
}

void ex_ws_session_ended(struct ex_host *host)
{
    pthread_mutex_lock(&host->lock);
    host->ws_sessions--;
    pthread_mutex_unlock(&host->lock);
}

/* ---------------------------------------------------------------- small responses */

enum MHD_Result ex_queue_simple(struct exchange *ex, int status, const char *content_type,
                                const char *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    if (content_type)
        MHD_add_response_header(r, "Content-Type", content_type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ok = MHD_queue_response(ex->conn, (unsigned)status, r);
    MHD_destroy_response(r);
    ex->state = EX_QUEUED;
    return ok;
}

enum MHD_Result ex_queue_json(struct exchange *ex, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
    json_decref(doc);
    if (!text)
        return ex_queue_simple(ex, 500, "text/plain", "json error\n", 11);
    size_t len = strlen(text);
    char *line = xmalloc(len + 2);
    memcpy(line, text, len);
    line[len++] = '\n';
    free(text);
    enum MHD_Result ok = ex_queue_simple(ex, status, "application/json", line, len);
    free(line);
    return ok;
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

const char *ex_rel(const char *full)
{
    return request_rel(full);
}

const struct tmpl_ctx *ex_tmpl_ctx(struct exchange *ex, struct ex_tmpl *t)
{
    snprintf(t->base, sizeof t->base, "/s/%s", ex->inst->id);
    const char *rel_path = ex_rel(ex->req.path);
    t->ctx = (struct tmpl_ctx){
        .base = t->base,
        .instance = ex->inst->id,
        .method = ex->req.method,
        .path = *rel_path ? rel_path : "/",
        .target = ex_rel(ex->req.target),
        .full_target = ex->req.target,
        .body = (const char *)(ex->req.body ? ex->req.body : (unsigned char *)""),
        .body_len = ex->req.body_len,
        .count = ex->count,
        .header = ctx_header,
        .query = ctx_query,
        .req = &ex->req,
    };
    const char(*origins)[ORIGIN_LEN] = ex_scenario_origins(ex, ex->inst->scenario);
    for (int i = 0; i < ORIGIN_N; i++)
        t->ctx.origins[i] = origins[i];
    return &t->ctx;
}

/* ---------------------------------------------------------------- the journal entry */

static double rel_ms(const struct exchange *ex, uint64_t t)
{
    uint64_t base = ex->inst ? ex->inst->created_us : ex->arrived_us;
    return t >= base ? (double)(t - base) / 1000.0 : 0.0;
}

static json_t *jms(double ms)
{
    return json_real((double)(long long)(ms * 1000.0 + 0.5) / 1000.0);
}

json_t *ex_ms_at(const struct exchange *ex, uint64_t t)
{
    return jms(rel_ms(ex, t));
}

static json_t *headers_json(const struct request *r)
{
    json_t *list = json_array();
    for (size_t i = 0; i < r->n_headers; i++)
        json_array_append_new(list, json_pack("[s,s]", r->headers[i].name, r->headers[i].value));
    return list;
}

static char *base64_of(const unsigned char *data, size_t len)
{
    char *out = xmalloc(BASE64_ENCODE_RAW_LENGTH(len) + 1);
    base64_encode_raw(out, len, data);
    out[BASE64_ENCODE_RAW_LENGTH(len)] = 0;
    return out;
}

json_t *ex_entry_new(struct exchange *ex, const char *rel_path)
{
    json_t *e = json_object();
    json_object_set_new(e, "port", json_integer(ex_port(ex)));
    json_object_set_new(e, "origin", json_string(ex_port_name(ex->port_index)));
    json_object_set_new(e, "tls", json_boolean(ex_port_tls(ex->port_index)));
    if (ex->req.sni)
        json_object_set_new(e, "sni", json_string(ex->req.sni));
    json_object_set_new(e, "remote", json_string(ex->remote));
    json_object_set_new(e, "method", json_string(ex->req.method));
    json_object_set_new(e, "target", json_string(ex->req.target));
    json_object_set_new(e, "path", json_string(rel_path));
    json_object_set_new(e, "query", json_string(ex->req.query));
    json_object_set_new(e, "http_version", json_string(ex->version ? ex->version : ""));
    json_object_set_new(e, "headers", headers_json(&ex->req));
    /* a JSON string if the body is UTF-8, else its base64 */
    json_t *body = json_stringn(
        (const char *)(ex->req.body ? ex->req.body : (const unsigned char *)""), ex->req.body_len);
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
    json_object_set_new(e, "arrived", ex_ms_at(ex, ex->arrived_us));
    json_object_set_new(e, "phases", json_object());
    json_object_set_new(e, "bytes_sent", json_integer(0));
    json_object_set_new(e, "end", json_null());
    return e;
}

void ex_entry_set(struct exchange *ex, const char *key, json_t *value)
{
    if (!ex->entry) {
        json_decref(value);
        return;
    }
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(ex->entry, key, value);
    pthread_mutex_unlock(&ex->inst->lock);
}

void ex_phase(struct exchange *ex, const char *name, uint64_t t)
{
    if (!ex->entry)
        return;
    pthread_mutex_lock(&ex->inst->lock);
    json_t *phases = json_object_get(ex->entry, "phases");
    if (phases && !json_object_get(phases, name))
        json_object_set_new(phases, name, ex_ms_at(ex, t));
    pthread_mutex_unlock(&ex->inst->lock);
}

void ex_entry_end(struct exchange *ex, enum ex_end end, uint64_t now)
{
    pthread_mutex_lock(&ex->inst->lock);
    json_t *e = ex->entry;
    json_object_set_new(e, "end", json_string(ex_end_name(end)));
    json_object_set_new(e, "ended", ex_ms_at(ex, now));
    json_object_set_new(e, "bytes_sent", json_integer((json_int_t)ex->sent));
    if (end == EX_END_COMPLETE) {
        json_t *phases = json_object_get(e, "phases");
        if (phases && !json_object_get(phases, "body_done"))
            json_object_set_new(phases, "body_done", ex_ms_at(ex, now));
    }
    pthread_mutex_unlock(&ex->inst->lock);
}
