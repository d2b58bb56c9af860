/* ws_upgrade — the WebSocket upgrade of a scenario request; see ws_upgrade.h.
 *
 * The handshake is what ws_handshake_response() builds (the one tested builder), with the
 * same template context as every other response (ex_tmpl_ctx). A conforming one (status
 * 101, the right accept, an Upgrade header naming websocket in any case) goes through
 * libmicrohttpd's upgrade support, which adds `Connection: Upgrade` itself. One that is
 * wrong on purpose (another status, a wrong or missing accept, no or another Upgrade
 * header) is written by hand as ws_handshake_raw() gives it, and the connection then waits
 * for the client to give up.
 */
#include "ws_upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "deliver.h"
#include "ws_handshake.h"
#include "ws_session.h"
#include "xalloc.h"

struct ws_run {
    struct exchange *ex; /* a reference */
    int fd;
    unsigned char *extra;
    size_t extra_len;
    struct MHD_UpgradeResponseHandle *urh; /* NULL: a handshake written by hand, on the
                                            * suspended connection's own socket */
    int fd_flags;                          /* by hand: the socket's flags, restored */
};

/* The journal's record of the session (instance lock held), or NULL once the journal has
 * dropped the entry. */
static json_t *ws_record(struct exchange *ex)
{
    return journal_extra(journal_find(&ex->inst->journal, ex->entry), JOURNAL_WEBSOCKET);
}

static void on_event(void *ctx, json_t *ev)
{
    struct exchange *ex = ctx;
    pthread_mutex_lock(&ex->inst->lock);
    json_t *rec = ws_record(ex);
    if (rec)
        json_array_append_new(json_object_get(rec, "events"), ev);
    else
        json_decref(ev);
    pthread_mutex_unlock(&ex->inst->lock);
}

static int is_stopping(void *ctx)
{
    return ex_stopping(ctx);
}

/* Release what a session holds: its buffers, the exchange, the host's session count. */
static void run_free(struct ws_run *run)
{
    struct exchange *ex = run->ex;
    struct ex_host *host = ex->host; /* read before the exchange may go */
    free(run->extra);
    free(run);
    ex_unref(ex);
    ex_ws_session_ended(host);
}

static void *session_thread(void *arg)
{
    struct ws_run *run = arg;
    struct exchange *ex = run->ex;
    int flags = fcntl(run->fd, F_GETFL);
    if (flags >= 0)
        fcntl(run->fd, F_SETFL, flags & ~O_NONBLOCK);
    struct ws_recorder rec = {.ctx = ex, .event = on_event, .stopping = is_stopping};
    const char *end =
        ws_session_run(ex->resp->websocket, run->fd, run->extra, run->extra_len, &rec);
    pthread_mutex_lock(&ex->inst->lock);
    json_t *record = ws_record(ex);
    if (record)
        json_object_set_new(record, "end", json_string(end));
    journal_set_end(journal_find(&ex->inst->journal, ex->entry), end);
    pthread_mutex_unlock(&ex->inst->lock);
    shutdown(run->fd, SHUT_RDWR);
    if (run->urh) {
        MHD_upgrade_action(run->urh, MHD_UPGRADE_ACTION_CLOSE);
    } else { /* libmicrohttpd closes the connection when it is resumed */
        if (run->fd_flags >= 0)
            fcntl(run->fd, F_SETFL, run->fd_flags);
        ex->state = EX_CLOSE_NOW;
        ex_resume(ex);
    }
    run_free(run);
    return NULL;
}

static bool start_thread(struct ws_run *run)
{
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    bool ok = pthread_create(&th, &attr, session_thread, run) == 0;
    pthread_attr_destroy(&attr);
    return ok;
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    (void)con_cls;
    struct ws_run *run = xcalloc(1, sizeof *run);
    run->ex = cls;
    run->fd = sock;
    run->urh = urh;
    if (extra_in_size) {
        run->extra = xmalloc(extra_in_size);
        memcpy(run->extra, extra_in, extra_in_size);
        run->extra_len = extra_in_size;
    }
    if (!start_thread(run)) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        run_free(run);
    }
}

static json_t *list_json(char **list)
{
    json_t *a = json_array();
    for (char **p = list; p && *p; p++)
        json_array_append_new(a, json_string(*p));
    return a;
}

/* libmicrohttpd's upgrade: the session thread starts once the 101 is sent. */
static enum MHD_Result upgrade(struct exchange *ex, const struct ws_hs_response *hs, json_t *record)
{
    struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, ex);
    if (!resp)
        return MHD_NO;
    for (size_t i = 0; i < hs->n_headers; i++)
        MHD_add_response_header(resp, hs->headers[i].name, hs->headers[i].value);
    ex_ref(ex); /* the session thread's */
    ex_ws_session_started(ex);
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(record, "upgraded", json_true());
    pthread_mutex_unlock(&ex->inst->lock);
    ex->ws_upgraded = true; /* the session records its own end */
    enum MHD_Result result = MHD_queue_response(ex->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
    MHD_destroy_response(resp);
    ex->state = EX_QUEUED;
    if (result != MHD_YES) {
        struct ex_host *host = ex->host;
        ex_unref(ex); /* the connection still holds its own reference */
        ex_ws_session_ended(host);
    }
    return result;
}

/* A 101 that libmicrohttpd cannot send as asked (a padded or doubled accept, another
 * Connection value): written by hand on the suspended connection's socket, then the
 * session runs there as after an upgrade; at its end the connection is resumed and closed. */
static enum MHD_Result session_by_hand(struct exchange *ex, const char *out, size_t len,
                                       json_t *record)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return MHD_NO;
    int fd = ci->connect_fd;
    ex_suspend(ex); /* libmicrohttpd leaves the socket alone until the session ends */
    size_t done = 0;
    while (done < len) {
        ssize_t n = send(fd, out + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            if (poll(&pfd, 1, 1000) >= 0)
                continue;
        }
        ex->state = EX_CLOSE_NOW;
        ex_resume(ex);
        return MHD_YES;
    }
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(record, "upgraded", json_true());
    json_object_set_new(record, "handshake_bytes", json_stringn(out, len));
    pthread_mutex_unlock(&ex->inst->lock);
    struct ws_run *run = xcalloc(1, sizeof *run);
    run->ex = ex;
    run->fd = fd;
    run->fd_flags = fcntl(fd, F_GETFL);
    ex_ref(ex); /* the session thread's */
    ex_ws_session_started(ex);
    ex->state = EX_MANUAL;
    if (!start_thread(run)) {
        ex->state = EX_CLOSE_NOW;
        ex_resume(ex);
        run_free(run);
    }
    return MHD_YES;
}

/* Written by hand: exactly the faults asked for; a 101 then hangs. */
static enum MHD_Result write_by_hand(struct exchange *ex, const struct ws_hs_response *hs,
                                     json_t *record)
{
    size_t len;
    char *out = ws_handshake_raw(hs, &len);
    if (hs->session) {
        enum MHD_Result r = session_by_hand(ex, out, len, record);
        free(out);
        return r;
    }
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(record, "upgraded", json_false());
    json_object_set_new(record, "handshake_bytes", json_stringn(out, len));
    pthread_mutex_unlock(&ex->inst->lock);
    enum MHD_Result result =
        deliver_raw_bytes(ex, out, len, hs->status == 101 ? FAULT_HANG : FAULT_NONE);
    free(out);
    return result;
}

enum MHD_Result ws_upgrade_respond(struct exchange *ex)
{
    const struct ws_handshake_spec *h = &ex->resp->websocket->handshake;
    struct request *r = &ex->req;
    const char *why[8];
    size_t n = ws_handshake_problems(r, why, 8);
    char **offered = ws_offered_protocols(r);
    json_t *problems = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(problems, json_string(why[i]));
    const char *key = request_header(r, "Sec-WebSocket-Key");
    json_t *record = json_pack("{s:s?, s:s?, s:s?, s:o, s:s?, s:o, s:[], s:n}", "key", key,
                               "version", request_header(r, "Sec-WebSocket-Version"), "origin",
                               request_header(r, "Origin"), "offered_protocols", list_json(offered),
                               "offered_extensions", request_header(r, "Sec-WebSocket-Extensions"),
                               "problems", problems, "events", "end");
    /* the journal's entry owns the record; our own reference keeps it while we change it
     * (under the instance lock), even should the journal drop the entry meanwhile */
    pthread_mutex_lock(&ex->inst->lock);
    journal_set_extra(journal_find(&ex->inst->journal, ex->entry), JOURNAL_WEBSOCKET,
                      json_incref(record));
    pthread_mutex_unlock(&ex->inst->lock);
    if (n) {
        ws_free_list(offered);
        char msg[300];
        snprintf(msg, sizeof msg, "not a WebSocket handshake: %s\n", why[0]);
        ex_entry_status(ex, 400);
        json_decref(record);
        return ex_queue_simple(ex, 400, "text/plain", msg, strlen(msg));
    }
    struct ex_tmpl t;
    struct ws_hs_response hs;
    ws_handshake_response(h, key, offered, ex_tmpl_ctx(ex, &t), &hs);
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(record, "accept_sent",
                        h->accept == WS_ACCEPT_OMIT ? json_null() : json_string(hs.accept));
    json_object_set_new(record, "protocol_sent",
                        hs.protocol ? json_string(hs.protocol) : json_null());
    journal_set_status(journal_find(&ex->inst->journal, ex->entry), hs.status);
    pthread_mutex_unlock(&ex->inst->lock);
    enum MHD_Result result =
        hs.conforming ? upgrade(ex, &hs, record) : write_by_hand(ex, &hs, record);
    ws_hs_response_free(&hs);
    ws_free_list(offered); /* after hs: hs.protocol may point into it */
    json_decref(record);
    return result;
}
