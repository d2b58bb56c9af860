/* server — see server.h.
 *
 * The access handler reads the headers and the body into the exchange (exchange.h), then
 * hands it to the handler of the first entry of HANDLERS whose prefix the path has: the
 * scenario responder (respond.h), the control API (control.h, on the control port only),
 * or a fixed answer. It is called again after every resume, until a response is queued or
 * the connection is to be closed.
 *
 * Before any body is read, the request's framing is checked (request_framing_error(): two
 * Content-Length, or Content-Length and Transfer-Encoding, get 400 and the connection is
 * closed; libmicrohttpd 0.9.75 would take one of them and let a smuggled request through),
 * and a body over limits.max_body gets 413. Every body byte is taken from the host's budget
 * (limits.max_buffered): a Content-Length is taken whole before the body is read (503 if it
 * does not fit), a chunked body as it comes (the connection is closed when it no longer
 * fits). conns.h tracks every connection for the connection cap and the header and body
 * deadlines.
 *
 * The daemons use epoll: poll() costs a walk over every descriptor per wake-up, which with
 * 5,000 connections was half the server's time (and a 1 s wait to accept 5,000 of them).
 * Under edge-triggered epoll libmicrohttpd 0.9.75 takes a short read as "nothing more to
 * read", so a client whose last bytes and FIN arrive together would never be read again
 * (CLOSE_WAIT until a timeout): conns.c's sweep finds that FIN and shuts the socket down,
 * which libmicrohttpd sees.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "conns.h"
#include "control.h"
#include "deliver.h"
#include "exchange.h"
#include "jwait.h"
#include "respond.h"
#include "timer.h"
#include "xalloc.h"

#define N_PORTS EX_N_PORTS

/* libmicrohttpd's polling threads per port (0: one). Tried: 2 (MHD_OPTION_THREAD_POOL_SIZE,
 * suspend/resume work with it) under make bench, whose server is pinned to one CPU: bursts of
 * 1000 and 5000 resumed delays were 273 and 2733 ms late at p99 against 330 and 3223 ms with
 * one thread, in one run at load 40 where nginx answering the same bursts without any delay
 * took 312-314 and 1328-1398 ms: no gain beyond the noise, so one thread stays. */
#ifndef SERVER_THREAD_POOL
#define SERVER_THREAD_POOL 0
#endif

struct port_ctx {
    struct server *srv;
    int index;
};

struct server {
    struct ex_host host; /* shared with every exchange */
    struct MHD_Daemon *daemons[N_PORTS];
    struct port_ctx ports[N_PORTS];
    FILE *log;
    struct conns *conns;       /* every open connection, their cap and deadlines */
    pthread_mutex_t live_lock; /* guards live */
    struct exchange *live;
};

struct registry *server_registry(struct server *srv)
{
    return &srv->host.reg;
}

uint16_t server_port(const struct server *srv, int which)
{
    return srv->host.ports[which];
}

const char *server_origin(const struct server *srv, int which)
{
    return srv->host.origins[0][ORIGIN_SITE_NONE][which];
}

void server_hosts(const struct server_config *cfg, const char **public_host, const char **alt_host)
{
    const char *bind = cfg->bind ? cfg->bind : "127.0.0.1";
    const char *public = cfg->public_host          ? cfg->public_host
                         : strcmp(bind, "0.0.0.0") ? bind
                                                   : "127.0.0.1";
    /* alt: the main port under a second name (docs/control-api.md) */
    *alt_host = ctlauth_is_loopback(public) ? "localhost"
                : !strcmp(public, "localhost")
                    ? "127.0.0.1"
                    : (strcmp(bind, "0.0.0.0") && strcmp(bind, public) ? bind : "localhost");
    *public_host = public;
}

const char *server_control_url(const struct server *srv)
{
    return srv->host.control_url;
}

/* ---------------------------------------------------------------- handlers */

static const char PAGE[] = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                           "<title>Comet Harness</title></head><body></body></html>\n";

static enum MHD_Result page(struct exchange *ex)
{
    return ex_queue_simple(ex, 200, "text/html; charset=utf-8", PAGE, sizeof PAGE - 1);
}

static enum MHD_Result control(struct exchange *ex)
{
    if (ex->port_index != EX_PORT_CONTROL) {
        static const char msg[] = "the control API is on a port of its own: the ready line's "
                                  "\"control\" URL\n";
        return ex_queue_simple(ex, 404, "text/plain", msg, sizeof msg - 1);
    }
    return control_handle(ex);
}

static enum MHD_Result favicon(struct exchange *ex)
{
    return ex_queue_simple(ex, 404, "text/plain", "", 0);
}

static enum MHD_Result not_found(struct exchange *ex)
{
    static const char nf[] = "not found: scenarios are served under /s/INSTANCE/, the control "
                             "API under /_harness/\n";
    return ex_queue_simple(ex, 404, "text/plain", nf, sizeof nf - 1);
}

/* Who answers a path: the first entry whose prefix it has (exact: the whole path). */
static const struct {
    const char *prefix;
    bool exact;
    enum MHD_Result (*handler)(struct exchange *ex);
} HANDLERS[] = {
    {"/_harness/page", true, page},  {"/_harness/", false, control}, {"/_harness", true, control},
    {"/favicon.ico", true, favicon}, {"", false, not_found},
};

static enum MHD_Result dispatch(struct exchange *ex)
{
    const char *path = ex->req.path;
    if (ex->port_index == EX_PORT_CONTROL) {
        /* the control port serves the control API only: no page, no scenario */
        if (!strncmp(path, "/_harness/", 10) || !strcmp(path, "/_harness"))
            return control_handle(ex);
        static const char nf[] = "not found: this is the control port (/_harness/)\n";
        return ex_queue_simple(ex, 404, "text/plain", nf, sizeof nf - 1);
    }
    /* an instance's journal wait (jwait.h): never journaled, never a route's */
    if (!ex->entry && jwait_is_instance_path(path))
        return jwait_instance(ex);
    /* a scenario request stays one once journaled, whatever its state */
    if (ex->entry || !strncmp(path, "/s/", 3))
        return respond_scenario(ex);
    for (size_t i = 0;; i++) {
        size_t n = strlen(HANDLERS[i].prefix);
        if (HANDLERS[i].exact ? !strcmp(path, HANDLERS[i].prefix)
                              : !strncmp(path, HANDLERS[i].prefix, n))
            return HANDLERS[i].handler(ex);
    }
}

/* ---------------------------------------------------------------- libmicrohttpd callbacks */

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
    struct port_ctx *pc = cls;
    struct server *srv = pc->srv;
    struct exchange *ex = ex_new(&srv->host, pc->index, conn, uri);
    pthread_mutex_lock(&srv->live_lock);
    ex->next = srv->live;
    if (srv->live)
        srv->live->prev = ex;
    srv->live = ex;
    pthread_mutex_unlock(&srv->live_lock);
    return ex;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    (void)kind;
    /* libmicrohttpd keeps them in the connection's pool until the request completes: after
     * that only the journal's own copy is read */
    request_borrow_header(cls, key, value);
    return MHD_YES;
}

static void read_headers(struct exchange *ex, const char *method, const char *version)
{
    char *target = xstrdup(ex->req.target);
    request_free(&ex->req);
    request_init(&ex->req, method, target);
    free(target);
    int n = MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, NULL, NULL);
    request_reserve_headers(&ex->req, n > 0 ? (size_t)n : 0);
    MHD_get_connection_values(ex->conn, MHD_HEADER_KIND, collect_header, &ex->req);
    /* the two versions libmicrohttpd serves are static: nothing to hold per request */
    static const char *const KNOWN[] = {"HTTP/1.1", "HTTP/1.0"};
    ex->version = NULL;
    for (size_t i = 0; i < sizeof KNOWN / sizeof *KNOWN && !ex->version; i++)
        if (version && !strcmp(version, KNOWN[i]))
            ex->version = KNOWN[i];
    if (!ex->version) {
        ex->version = xstrdup(version ? version : "");
        ex->version_owned = true;
    }
    if (ex_port_tls(ex->port_index)) {
        ex->req.tls = true;
        const union MHD_ConnectionInfo *ti =
            MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        char name[256];
        size_t len = sizeof name;
        unsigned type = 0;
        if (ti && ti->tls_session &&
            gnutls_server_name_get(ti->tls_session, name, &len, &type, 0) == GNUTLS_E_SUCCESS &&
            type == GNUTLS_NAME_DNS)
            ex->req.sni = xstrdup(name);
    }
    ex->headers_read = true;
}

static struct conn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A refusal before the body is read: libmicrohttpd closes the connection after it. */
static enum MHD_Result refuse(struct exchange *ex, int status, const char *fmt, const char *arg)
{
    char msg[200];
    snprintf(msg, sizeof msg, fmt, arg);
    enum MHD_Result r = ex_queue_simple(ex, status, "text/plain", msg, strlen(msg));
    ex->state = EX_CLOSE_NOW; /* should it be called again: close */
    return r;
}

/* What libmicrohttpd 0.9.75's pool (--conn-memory) must hold while a request is answered:
 * the head's bytes, POOL_ENTRY_BYTES for each header line, query parameter and cookie it
 * parsed (its record of one, measured), a copy of the Cookie header's value, and the
 * response's status line and headers (POOL_RESPONSE_RESERVE). Heads too large for MHD to
 * read get its own 431 without a word about why; but a head that MHD reads and that
 * leaves no room for the response's headers makes it close the connection without sending
 * anything. check_request() turns away what would come to that, with a 431 written by
 * hand (no pool needed) that names --conn-memory, and a line on stderr.
 * docs/control-api.md gives the formula. */
#define POOL_ENTRY_BYTES 64
#define POOL_RESPONSE_RESERVE 512

/* The head's bytes, and whether they leave room in the pool (*need: what they take). */
static bool head_fits(struct exchange *ex, size_t *head, size_t *need)
{
    const union MHD_ConnectionInfo *hi =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    int n = MHD_get_connection_values(
        ex->conn, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND, NULL, NULL);
    /* MHD copies the (first) Cookie header's value into the pool to split it */
    const char *cookie = MHD_lookup_connection_value(ex->conn, MHD_HEADER_KIND, "Cookie");
    *head = hi ? hi->header_size : 0;
    *need = *head + (n > 0 ? (size_t)n : 0) * POOL_ENTRY_BYTES + POOL_RESPONSE_RESERVE +
            (cookie ? strlen(cookie) + 1 : 0);
    return *need <= ex->host->limits.conn_memory;
}

/* A line on stderr about a head that did not fit --conn-memory: at most one a second (a
 * client may send many). */
static void warn_head(const struct exchange *ex, const char *what)
{
    static _Atomic uint64_t last_us;
    uint64_t now = mono_us(), seen = last_us;
    if (now - seen >= 1000000u && atomic_compare_exchange_strong(&last_us, &seen, now))
        fprintf(stderr,
                "harness serve: %s %s: the request head (%s) does not fit --conn-memory (%zu "
                "bytes): answered 431; raise --conn-memory\n",
                ex_port_name(ex->port_index), ex->req.target, what, ex->host->limits.conn_memory);
}

/* A 431 by hand (no pool needed), and a line on stderr. */
static enum MHD_Result refuse_head(struct exchange *ex, size_t head, size_t need)
{
    size_t pool = ex->host->limits.conn_memory;
    char what[80];
    snprintf(what, sizeof what, "%zu bytes that need %zu", head, need);
    warn_head(ex, what);
    char body[300], msg[500];
    int bl = snprintf(body, sizeof body,
                      "the request head (%zu bytes) does not fit the server's --conn-memory "
                      "(%zu bytes; it needs %zu with its header lines and the response's "
                      "headers): raise --conn-memory\n",
                      head, pool, need);
    int ml = snprintf(msg, sizeof msg,
                      "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain"
                      "\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
                      bl, body);
    ex->end = EX_END_ERROR;
    return deliver_raw_bytes(ex, msg, (size_t)ml, FAULT_NONE);
}

/* The headers are in, nothing of the body is read: room in the pool, framing, size and
 * budget. */
static enum MHD_Result check_request(struct exchange *ex)
{
    const struct caps *lim = &ex->host->limits;
    size_t head, need;
    if (!head_fits(ex, &head, &need))
        return refuse_head(ex, head, need);
    unsigned long long length;
    const char *why = request_framing_error(&ex->req, &length);
    if (why)
        return refuse(ex, 400, "bad request framing: %s\n", why);
    if (length > lim->max_body) {
        char n[32];
        snprintf(n, sizeof n, "%zu", lim->max_body);
        return refuse(ex, 413, "the body is over the server's --max-body (%s bytes)\n", n);
    }
    if (length && !ex_buffer_take(ex, (size_t)length))
        return refuse(ex, 503, "%s", "the server holds too many bodies now (--max-buffered)\n");
    if (length)
        request_reserve_body(&ex->req, (size_t)length);
    return MHD_YES;
}

/* Body bytes: a Content-Length's were taken before, a chunked body's are taken now. */
static bool take_body(struct exchange *ex, const char *data, size_t len)
{
    const struct caps *lim = &ex->host->limits;
    if (ex->req.body_len + len > lim->max_body)
        return false;
    if (ex->req.body_len + len > ex->buffered &&
        !ex_buffer_take(ex, ex->req.body_len + len - ex->buffered))
        return false;
    return request_append_body(&ex->req, data, len, lim->max_body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)url;
    struct server *srv = ((struct port_ctx *)cls)->srv;
    struct exchange *ex = *con_cls;
    if (!ex)
        return MHD_NO;
    if (!ex->headers_read) {
        /* the first call has the headers only: the body (if any) follows */
        read_headers(ex, method, version);
        conns_headers_read(srv->conns, conn_of(conn));
        return check_request(ex);
    }
    if (*upload_data_size) {
        if (ex->state == EX_CLOSE_NOW)
            return MHD_NO;
        if (!take_body(ex, upload_data, *upload_data_size)) {
            ex->end = EX_END_ERROR; /* over --max-body or --max-buffered: closed */
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!ex->body_read) {
        ex->body_read = true;
        conns_request_read(srv->conns, conn_of(conn));
    }
    if (ex->state == EX_CLOSE_NOW)
        return MHD_NO;
    if (ex_stopping(ex) && ex->state != EX_NEW && ex->state != EX_READY) {
        if (!ex->end)
            ex->end = EX_END_SERVER_STOPPED;
        return MHD_NO;
    }
    return dispatch(ex);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct server *srv = ((struct port_ctx *)cls)->srv;
    struct exchange *ex = *con_cls;
    struct conn *k = conn_of(conn);
    bool timed_out = conns_timed_out(srv->conns, k);
    conns_request_done(srv->conns, k);
    if (!ex)
        return;
    *con_cls = NULL;
    if (timed_out && !ex->end)
        ex->end = EX_END_TIMEOUT;
    if (!ex->headers_read) {
        /* libmicrohttpd's own 431 (414 for a request line alone): a head it could not read
         * whole into its pool; its answer says nothing of --conn-memory, this line does */
        const union MHD_ConnectionInfo *si =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
        if (si && (si->http_status == MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE ||
                   si->http_status == MHD_HTTP_URI_TOO_LONG))
            warn_head(ex, "over what libmicrohttpd reads");
    }
    respond_completed(ex, code);
    if (srv->log && ex->headers_read) {
        /* one line per request */
        const char *end = ex_end_name(ex->end);
        fprintf(srv->log, "%s %s %s%s%s\n", ex_port_name(ex->port_index), ex->req.method,
                ex->req.target, end ? " " : "", end ? end : "");
        fflush(srv->log);
    }
    pthread_mutex_lock(&srv->live_lock);
    if (ex->prev)
        ex->prev->next = ex->next;
    else
        srv->live = ex->next;
    if (ex->next)
        ex->next->prev = ex->prev;
    pthread_mutex_unlock(&srv->live_lock);
    ex_finish(ex);
    ex_unref(ex); /* the connection's */
}

/* ---------------------------------------------------------------- connections */

static enum MHD_Result admit(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)addr;
    (void)addrlen;
    struct server *srv = ((struct port_ctx *)cls)->srv;
    return conns_admit(srv->conns) ? MHD_YES : MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct server *srv = ((struct port_ctx *)cls)->srv;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = conns_opened(srv->conns, ci ? ci->connect_fd : -1);
    } else if (*socket_context) {
        conns_closed(srv->conns, *socket_context);
        *socket_context = NULL;
    }
}

/* ---------------------------------------------------------------- start and stop */

/* One port; over TLS (GnuTLS, TLS 1.3 and 1.2) with cert (borrowed: must outlive the
 * daemon) when it is not NULL. */
static struct MHD_Daemon *start_daemon(struct port_ctx *pc, const char *bind, uint16_t port,
                                       const struct tls_cert *cert)
{
    const struct caps *lim = &pc->srv->host.limits;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, bind, &sin.sin_addr) != 1)
        return NULL;
    /* epoll: see the top of this file */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_ALLOW_UPGRADE | MHD_USE_ITC;
    struct MHD_OptionItem tls[3] = {{MHD_OPTION_END, 0, NULL}};
    if (cert) {
        flags |= MHD_USE_TLS;
        tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0,
                                         (void *)(uintptr_t)tls_cert_key_pem(cert)};
        tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                         (void *)(uintptr_t)tls_cert_pem(cert)};
        tls[2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    /* the idle timeout does not run while a connection is suspended (a delay, a held long
     * poll, a trickle's pause), and restarts when it is resumed */
    return MHD_start_daemon(
        flags, port, admit, pc, on_request, pc, MHD_OPTION_ARRAY, tls, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sin, MHD_OPTION_URI_LOG_CALLBACK, uri_log, pc,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, pc, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        pc, MHD_OPTION_CONNECTION_LIMIT, lim->max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        lim->max_connections_per_ip, MHD_OPTION_CONNECTION_TIMEOUT, lim->idle_timeout_s,
        /* --conn-memory (caps.h): zeroed at every request and held by every connection, idle
         * or not; it bounds a request's line and headers too (431 beyond). Over 32 KiB it is
         * mmap()ed, and munmap() per connection costs ~0.2 ms of the polling thread (it made
         * 100 concurrent delays 36 ms late instead of 5) */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, lim->conn_memory, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)SERVER_THREAD_POOL, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096,
        MHD_OPTION_END);
}

struct server *server_start(const struct server_config *cfg, char *err, size_t errlen)
{
    struct server *srv = xcalloc(1, sizeof *srv);
    struct ex_host *host = &srv->host;
    pthread_mutex_init(&host->lock, NULL);
    pthread_mutex_init(&srv->live_lock, NULL);
    registry_init(&host->reg, cfg->journal_limit);
    host->limits = cfg->limits ? *cfg->limits : CAPS_DEFAULT;
    host->buffered.cap = host->limits.max_buffered;
    srv->log = cfg->log;
    host->timers = timers_start();
    if (!host->timers) {
        snprintf(err, errlen, "cannot start the timer thread");
        goto fail;
    }
    srv->conns = conns_new(host->timers, &host->limits);
    const char *bind = cfg->bind ? cfg->bind : "127.0.0.1";
    const char *public, *alt;
    server_hosts(cfg, &public, &alt);
    host->roots = cfg->roots;
    host->auth = (struct ctlauth){.public_host = public, .bind = bind};
    snprintf(host->auth.token, sizeof host->auth.token, "%s", cfg->token ? cfg->token : "");
    if (!cfg->token || !*cfg->token) {
        snprintf(err, errlen, "the control API needs a token");
        goto fail;
    }
    uint16_t want[N_PORTS] = {cfg->port, cfg->cross_port, cfg->control_port, cfg->tls_port,
                              cfg->tls_cross_port};
    const struct tls_cert *cert[N_PORTS] = {NULL, NULL, NULL, cfg->tls_leaf, cfg->tls_leaf};
    for (int f = 0; f < ORIGIN_N_FLAWED; f++)
        cert[EX_PORT_FLAWED + f] = cfg->tls_flawed[f];
    for (int i = 0; i < N_PORTS; i++) {
        srv->ports[i] = (struct port_ctx){.srv = srv, .index = i};
        if (ex_port_tls(i) && !cert[i])
            continue; /* not served: no certificate for it */
        srv->daemons[i] = start_daemon(&srv->ports[i], bind, want[i], cert[i]);
        if (!srv->daemons[i]) {
            snprintf(err, errlen, "cannot listen on %s:%u (%s)", bind, want[i],
                     errno ? strerror(errno) : "libmicrohttpd refused");
            goto fail;
        }
        const union MHD_DaemonInfo *di =
            MHD_get_daemon_info(srv->daemons[i], MHD_DAEMON_INFO_BIND_PORT);
        host->ports[i] = di ? di->port : want[i];
    }
    host->auth.port = host->ports[EX_PORT_CONTROL];
    struct origin_ports op = {.main = host->ports[EX_PORT_MAIN],
                              .cross = host->ports[EX_PORT_CROSS],
                              .main_tls = host->ports[EX_PORT_MAIN_TLS],
                              .cross_tls = host->ports[EX_PORT_CROSS_TLS]};
    for (int f = 0; f < ORIGIN_N_FLAWED; f++)
        op.flawed[f] = host->ports[EX_PORT_FLAWED + f];
    for (int tls = 0; tls < 2; tls++)
        for (int site = 0; site < ORIGIN_N_SITES; site++)
            origins_make(host->origins[tls][site], &op, public, alt, tls, (enum origin_site)site);
    snprintf(host->control_url, sizeof host->control_url, "http://%s:%u", public,
             host->ports[EX_PORT_CONTROL]);
    return srv;
fail:
    for (int i = 0; i < N_PORTS; i++)
        if (srv->daemons[i])
            MHD_stop_daemon(srv->daemons[i]);
    if (srv->conns)
        conns_stop(srv->conns);
    timers_stop(host->timers);
    if (srv->conns)
        conns_free(srv->conns);
    registry_free(&host->reg);
    pthread_mutex_destroy(&srv->live_lock);
    pthread_mutex_destroy(&host->lock);
    free(srv);
    return NULL;
}

void server_stop(struct server *srv)
{
    struct ex_host *host = &srv->host;
    for (int i = 0; i < N_PORTS; i++)
        if (srv->daemons[i])
            MHD_quiesce_daemon(srv->daemons[i]);
    pthread_mutex_lock(&host->lock);
    host->stopping = true;
    pthread_mutex_unlock(&host->lock);
    /* Resume everything suspended, until nothing is: once `stopping` is set, ex_suspend()
     * suspends nothing more. Requests still in flight but not suspended (a body being sent,
     * one being read) are ended by MHD_stop_daemon() (server_stopped). */
    uint64_t until = mono_us() + 5000000u;
    while (mono_us() < until) {
        bool busy = false;
        pthread_mutex_lock(&srv->live_lock);
        for (struct exchange *ex = srv->live; ex; ex = ex->next) {
            ex_resume(ex);
            pthread_mutex_lock(&ex->lock);
            busy |= ex->suspended;
            pthread_mutex_unlock(&ex->lock);
        }
        pthread_mutex_unlock(&srv->live_lock);
        pthread_mutex_lock(&host->lock);
        int ws = host->ws_sessions;
        pthread_mutex_unlock(&host->lock);
        /* idle keep-alive connections do not matter: MHD_stop_daemon closes them */
        if (!busy && ws == 0)
            break;
        usleep(10000);
    }
    for (int i = 0; i < N_PORTS; i++)
        if (srv->daemons[i])
            MHD_stop_daemon(srv->daemons[i]);
    conns_stop(srv->conns);
    timers_stop(host->timers); /* runs what is pending: the references timers hold go */
    conns_free(srv->conns);
    registry_free(&host->reg);
    pthread_mutex_destroy(&srv->live_lock);
    pthread_mutex_destroy(&host->lock);
    free(srv);
}
