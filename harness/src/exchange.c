/* exchange — the life of a request in flight; see exchange.h. */
#include "exchange.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "arrival.h"
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
    if (ex->inst)
        instance_unref(&ex->host->reg, ex->inst);
    plan_free(&ex->plan);
    request_free(&ex->req);
    if (ex->buffered)
        caps_give(&ex->host->buffered, ex->buffered);
    if (ex->version_owned)
        free((char *)ex->version);
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

bool ex_buffer_take(struct exchange *ex, size_t n)
{
    if (!caps_take(&ex->host->buffered, n))
        return false;
    ex->buffered += n;
    return true;
}

/* ---------------------------------------------------------------- waits */

void ex_suspend(struct exchange *ex)
{
    /* under the lock, so that ex_resume() (a stop resuming everything) never sees the
     * connection suspended by libmicrohttpd but not yet marked */
    pthread_mutex_lock(&ex->lock);
    if (!ex_stopping(ex)) {
        MHD_suspend_connection(ex->conn);
        ex->suspended = true;
    }
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

static void on_idle(void *arg)
{
    ex_resume(arg);
    ex_unref(arg);
}

void ex_resume_when_idle(struct exchange *ex)
{
    ex_ref(ex); /* the timer's */
    timers_when_idle(ex->host->timers, on_idle, ex);
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

/* ---------------------------------------------------------------- the connection */

/* Decimal digits of v at p; returns the end. */
static char *put_uint(char *p, unsigned v)
{
    char tmp[10];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* "a.b.c.d:port" (at most 21 characters) by hand, as inet_ntop() and snprintf() cost a
 * tenth of a request's instructions. */
void ex_remote(const struct exchange *ex, char *out)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    *out = 0;
    if (!ci || !ci->client_addr || ci->client_addr->sa_family != AF_INET)
        return;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ci->client_addr;
    const unsigned char *a = (const unsigned char *)&sin->sin_addr;
    char *p = out;
    for (int i = 0; i < 4; i++) {
        p = put_uint(p, a[i]);
        *p++ = i < 3 ? '.' : ':';
    }
    p = put_uint(p, ntohs(sin->sin_port));
    *p = 0;
}

void ex_local_ip(const struct exchange *ex, char *out)
{
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    int fd = ex_fd(ex);
    *out = 0;
    if (fd >= 0 && getsockname(fd, (struct sockaddr *)&local, &len) == 0 &&
        local.sin_family == AF_INET)
        inet_ntop(AF_INET, &local.sin_addr, out, EX_LOCAL_IP_LEN);
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

int ex_fd(const struct exchange *ex)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

void ex_arrival_from_kernel(struct exchange *ex)
{
    uint64_t lag = arrival_lag_us(ex_fd(ex));
    if (lag && lag < ex->arrived_us)
        ex->arrived_us -= lag;
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

void ex_entry_append_locked(struct exchange *ex, const char *rel_path, struct journal_request *r)
{
    r->port = ex_port(ex);
    r->cross = ex->port_index == EX_PORT_CROSS || ex->port_index == EX_PORT_CROSS_TLS;
    r->origin = ex->port_index == EX_PORT_MAIN || ex->port_index == EX_PORT_CROSS
                    ? NULL
                    : ex_port_name(ex->port_index);
    r->tls = ex_port_tls(ex->port_index);
    r->sni = ex->req.sni;
    char remote[EX_REMOTE_LEN];
    ex_remote(ex, remote);
    r->remote = remote; /* copied by journal_append() below */
    r->method = ex->req.method;
    r->target = ex->req.target;
    r->path = rel_path;
    r->query = ex->req.query;
    r->http_version = ex->version ? ex->version : "";
    r->headers = ex->req.headers;
    r->n_headers = ex->req.n_headers;
    r->body = ex->req.body;
    r->body_len = ex->req.body_len;
    r->arrived_us = ex->arrived_us;
    ex->entry = journal_append(&ex->inst->journal, r);
}

/* The entry, with the instance lock taken (NULL: none, and the lock is not taken). */
static struct journal_entry *entry_lock(struct exchange *ex)
{
    if (!ex->entry)
        return NULL;
    pthread_mutex_lock(&ex->inst->lock);
    return journal_find(&ex->inst->journal, ex->entry);
}

static void entry_unlock(struct exchange *ex)
{
    pthread_mutex_unlock(&ex->inst->lock);
}

void ex_entry_status(struct exchange *ex, int status)
{
    if (!ex->entry)
        return;
    journal_set_status(entry_lock(ex), status);
    entry_unlock(ex);
}

void ex_entry_extra(struct exchange *ex, enum journal_extra which, json_t *value)
{
    if (!ex->entry) {
        json_decref(value);
        return;
    }
    journal_set_extra(entry_lock(ex), which, value);
    entry_unlock(ex);
}

void ex_entry_queued(struct exchange *ex, int status, uint64_t t, bool body_too)
{
    if (!ex->entry)
        return;
    struct journal_entry *e = entry_lock(ex);
    journal_set_status(e, status);
    journal_set_phase(e, JOURNAL_HEADERS_SENT, t);
    if (body_too)
        journal_set_phase(e, JOURNAL_BODY_FIRST_BYTE, t);
    entry_unlock(ex);
}

void ex_phase(struct exchange *ex, enum journal_phase phase, uint64_t t)
{
    if (!ex->entry)
        return;
    journal_set_phase(entry_lock(ex), phase, t);
    entry_unlock(ex);
}

void ex_entry_end(struct exchange *ex, enum ex_end end, uint64_t now)
{
    if (!ex->entry)
        return;
    struct journal_entry *e = entry_lock(ex);
    journal_set_end(e, ex_end_name(end));
    journal_set_ended(e, now);
    journal_set_bytes_sent(e, ex->sent);
    if (end == EX_END_COMPLETE)
        journal_set_phase(e, JOURNAL_BODY_DONE, now);
    entry_unlock(ex);
}

void ex_entry_end_name(struct exchange *ex, const char *end)
{
    if (!ex->entry)
        return;
    journal_set_end(entry_lock(ex), end);
    entry_unlock(ex);
}
