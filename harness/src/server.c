/* server — see server.h.
 *
 * The access handler is a small state machine over struct exchange (exchange.h): it is
 * called once per request with the headers, once per body slice, then again after every
 * resume, until a response is queued or the connection is to be closed.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "exchange.h"
#include "timer.h"

#define BODY_LIMIT (64u * 1024u * 1024u)

struct server {
    struct MHD_Daemon *daemons[2];
    uint16_t ports[2];
    char origins[3][80];
    struct timers *timers;
    struct registry reg;
    FILE *log;
    pthread_mutex_t lock; /* guards live, stopping, ws_sessions */
    struct exchange *live;
    bool stopping;
    int ws_sessions;
};

struct port_ctx {
    struct server *srv;
    int index;
};

json_t *ms_since(uint64_t from_us, uint64_t to_us)
{
    double ms = to_us >= from_us ? (double)(to_us - from_us) / 1000.0 : 0.0;
    return json_real((double)(long long)(ms * 1000.0 + 0.5) / 1000.0);
}

const char *server_origin(const struct server *srv, int which)
{
    return srv->origins[which];
}
struct timers *server_timers(struct server *srv)
{
    return srv->timers;
}
struct registry *server_registry(struct server *srv)
{
    return &srv->reg;
}
uint16_t server_port(const struct server *srv, int which)
{
    return srv->ports[which];
}
bool server_stopping(struct server *srv)
{
    pthread_mutex_lock(&srv->lock);
    bool s = srv->stopping;
    pthread_mutex_unlock(&srv->lock);
    return s;
}

/* ---------------------------------------------------------------- exchange life */

void ex_unref(struct exchange *ex)
{
    pthread_mutex_lock(&ex->lock);
    bool last = --ex->refs == 0;
    pthread_mutex_unlock(&ex->lock);
    if (!last)
        return;
    struct server *srv = ex->srv;
    if (ex->entry)
        json_decref(ex->entry);
    if (ex->inst)
        instance_unref(&srv->reg, ex->inst);
    plan_free(&ex->plan);
    request_free(&ex->req);
    free(ex->version);
    free(ex->out);
    free(ex->wait_route);
    pthread_mutex_destroy(&ex->lock);
    free(ex);
}

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
    if (old && timers_cancel(ex->srv->timers, old))
        ex_unref(ex); /* an earlier timer that will not run now */
    uint64_t id = timers_add(ex->srv->timers, due_us, on_timer, ex);
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

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct port_ctx *pc = cls;
    struct exchange *ex = calloc(1, sizeof *ex);
    if (!ex)
        abort();
    ex->srv = pc->srv;
    ex->port_index = pc->index;
    ex->conn = conn;
    ex->refs = 1;
    ex->route = -1;
    ex->resp_index = -1;
    ex->channel = -1;
    ex->arrived_us = mono_us();
    pthread_mutex_init(&ex->lock, NULL);
    /* the method is not known yet: request_init() is redone with it later */
    request_init(&ex->req, "", uri ? uri : "/");
    struct server *srv = pc->srv;
    pthread_mutex_lock(&srv->lock);
    ex->next = srv->live;
    if (srv->live)
        srv->live->prev = ex;
    srv->live = ex;
    pthread_mutex_unlock(&srv->lock);
    return ex;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    request_add_header(cls, key, value);
    return MHD_YES;
}

static void read_headers(struct exchange *ex, const char *method, const char *version)
{
    char *target = strdup(ex->req.target);
    if (!target)
        abort();
    request_free(&ex->req);
    request_init(&ex->req, method, target);
    free(target);
    MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, collect_header, &ex->req);
    ex->version = strdup(version ? version : "");
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ci->client_addr;
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
        snprintf(ex->remote, sizeof ex->remote, "%s:%u", ip, ntohs(sin->sin_port));
    }
    ex->headers_read = true;
}

enum MHD_Result queue_simple(struct exchange *ex, int status, const char *content_type,
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

enum MHD_Result queue_json(struct exchange *ex, int status, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
    json_decref(doc);
    if (!text)
        return queue_simple(ex, 500, "text/plain", "json error\n", 11);
    size_t len = strlen(text);
    text = realloc(text, len + 2);
    text[len++] = '\n';
    enum MHD_Result ok = queue_simple(ex, status, "application/json", text, len);
    free(text);
    return ok;
}

static const char PAGE[] = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                           "<title>Comet Harness</title></head><body></body></html>\n";

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)conn;
    struct exchange *ex = *con_cls;
    if (!ex)
        return MHD_NO;
    if (!ex->headers_read) {
        /* the first call has the headers only: the body (if any) follows */
        read_headers(ex, method, version);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!request_append_body(&ex->req, upload_data, *upload_data_size, BODY_LIMIT))
            ex->body_too_large = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (ex->state == EX_CLOSE_NOW)
        return MHD_NO;
    if (server_stopping(ex->srv) && ex->state != EX_NEW && ex->state != EX_READY) {
        if (!ex->end)
            ex->end = "server_stopped";
        return MHD_NO;
    }
    const char *path = ex->req.path;
    if (ex->entry || !strncmp(path, "/s/", 3))
        return respond_scenario(ex);
    if (ex->body_too_large)
        return queue_simple(ex, 413, "text/plain", "body too large\n", 15);
    if (!strcmp(path, "/_harness/page"))
        return queue_simple(ex, 200, "text/html; charset=utf-8", PAGE, sizeof PAGE - 1);
    if (!strncmp(path, "/_harness/", 10) || !strcmp(path, "/_harness")) {
        if (ex->port_index != 0)
            return queue_simple(ex, 404, "text/plain", "the control API is on the main port only\n",
                                41);
        return control_handle(ex);
    }
    if (!strcmp(path, "/favicon.ico"))
        return queue_simple(ex, 404, "text/plain", "", 0);
    static const char nf[] = "not found: scenarios are served under /s/INSTANCE/, the control "
                             "API under /_harness/\n";
    return queue_simple(ex, 404, "text/plain", nf, sizeof nf - 1);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    struct exchange *ex = *con_cls;
    if (!ex)
        return;
    *con_cls = NULL;
    respond_completed(ex, code);
    struct server *srv = ex->srv;
    if (srv->log && ex->headers_read) {
        /* one line per request */
        fprintf(srv->log, "%s %s %s%s%s\n", ex->port_index ? "cross" : "main", ex->req.method,
                ex->req.target, ex->end ? " " : "", ex->end ? ex->end : "");
        fflush(srv->log);
    }
    pthread_mutex_lock(&srv->lock);
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        srv->live = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    pthread_mutex_unlock(&srv->lock);
    pthread_mutex_lock(&ex->lock);
    ex->done = true;
    uint64_t tid = ex->timer_id;
    ex->timer_id = 0;
    pthread_mutex_unlock(&ex->lock);
    if (tid && timers_cancel(srv->timers, tid))
        ex_unref(ex); /* the cancelled timer's reference */
    if (ex->waiting && ex->inst) {
        pthread_mutex_lock(&ex->inst->lock);
        instance_remove_waiter_locked(ex->inst, &ex->waiter);
        pthread_mutex_unlock(&ex->inst->lock);
        ex->waiting = false;
    }
    ex_unref(ex);
}

/* ---------------------------------------------------------------- start and stop */

static struct MHD_Daemon *start_daemon(struct server *srv, struct port_ctx *pc, const char *bind,
                                       uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, bind, &sin.sin_addr) != 1)
        return NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_ALLOW_UPGRADE | MHD_USE_ITC;
    (void)srv;
    return MHD_start_daemon(
        flags, port, NULL, NULL, on_request, pc, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sin,
        MHD_OPTION_URI_LOG_CALLBACK, uri_log, pc, MHD_OPTION_NOTIFY_COMPLETED, on_completed, pc,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)60000, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
        /* 32 KiB: a larger pool is mmap()ed, and munmap() per connection costs ~0.2 ms of the
         * polling thread (it made 100 concurrent delays 36 ms late instead of 5) */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)4096, MHD_OPTION_END);
}

struct server *server_start(const struct server_config *cfg, char *err, size_t errlen)
{
    struct server *srv = calloc(1, sizeof *srv + 2 * sizeof(struct port_ctx));
    if (!srv)
        abort();
    struct port_ctx *pcs = (struct port_ctx *)(srv + 1);
    pthread_mutex_init(&srv->lock, NULL);
    registry_init(&srv->reg, cfg->journal_limit);
    srv->log = cfg->log;
    srv->timers = timers_start();
    if (!srv->timers) {
        snprintf(err, errlen, "cannot start the timer thread");
        goto fail;
    }
    const char *bind = cfg->bind ? cfg->bind : "127.0.0.1";
    uint16_t want[2] = {cfg->port, cfg->cross_port};
    for (int i = 0; i < 2; i++) {
        pcs[i].srv = srv;
        pcs[i].index = i;
        srv->daemons[i] = start_daemon(srv, &pcs[i], bind, want[i]);
        if (!srv->daemons[i]) {
            snprintf(err, errlen, "cannot listen on %s:%u (%s)", bind, want[i],
                     errno ? strerror(errno) : "libmicrohttpd refused");
            goto fail;
        }
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(srv->daemons[i], MHD_DAEMON_INFO_BIND_PORT);
        srv->ports[i] = di ? di->port : want[i];
    }
    snprintf(srv->origins[0], sizeof srv->origins[0], "http://%s:%u", bind, srv->ports[0]);
    snprintf(srv->origins[1], sizeof srv->origins[1], "http://%s:%u", bind, srv->ports[1]);
    snprintf(srv->origins[2], sizeof srv->origins[2], "http://localhost:%u", srv->ports[0]);
    return srv;
fail:
    for (int i = 0; i < 2; i++)
        if (srv->daemons[i])
            MHD_stop_daemon(srv->daemons[i]);
    timers_stop(srv->timers);
    registry_free(&srv->reg);
    free(srv);
    return NULL;
}

void server_ws_session_started(struct server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->ws_sessions++;
    pthread_mutex_unlock(&srv->lock);
}

void server_ws_session_ended(struct server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->ws_sessions--;
    pthread_mutex_unlock(&srv->lock);
}

void server_stop(struct server *srv)
{
    for (int i = 0; i < 2; i++)
        MHD_quiesce_daemon(srv->daemons[i]);
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_mutex_unlock(&srv->lock);
    /* Resume everything suspended, repeatedly: a request may suspend again in between. */
    uint64_t until = mono_us() + 5000000u;
    while (mono_us() < until) {
        pthread_mutex_lock(&srv->lock);
        for (struct exchange *ex = srv->live; ex; ex = ex->next)
            ex_resume(ex);
        int ws = srv->ws_sessions;
        bool busy = srv->live != NULL;
        pthread_mutex_unlock(&srv->lock);
        /* idle keep-alive connections do not matter: MHD_stop_daemon closes them */
        if (!busy && ws == 0)
            break;
        usleep(10000);
    }
    for (int i = 0; i < 2; i++)
        MHD_stop_daemon(srv->daemons[i]);
    timers_stop(srv->timers);
    registry_free(&srv->reg);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
