/* ws_upgrade — a scenario request answered by `websocket:`: the opening handshake, then
 * the script on its own thread (ws_session.h), everything recorded in the journal entry's
 * "websocket" object.
 *
 * A conforming handshake (status 101, correct accept, Upgrade header) goes through
 * libmicrohttpd's upgrade support, which adds `Connection: Upgrade` itself. A handshake that
 * is wrong on purpose (another status, a wrong or missing accept, no Upgrade header) is
 * written by hand, and the connection then waits for the client to give up.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "exchange.h"
#include "server.h"
#include "ws_handshake.h"
#include "ws_session.h"

struct ws_run {
    struct exchange *ex;
    int fd;
    unsigned char *extra;
    size_t extra_len;
    struct MHD_UpgradeResponseHandle *urh;
};

static json_t *ws_record(struct exchange *ex)
{
    return json_object_get(ex->entry, "websocket");
}

static void on_event(void *ctx, json_t *ev)
{
    struct exchange *ex = ctx;
    pthread_mutex_lock(&ex->inst->lock);
    json_array_append_new(json_object_get(ws_record(ex), "events"), ev);
    pthread_mutex_unlock(&ex->inst->lock);
}

static int is_stopping(void *ctx)
{
    struct exchange *ex = ctx;
    return server_stopping(ex->srv);
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
    json_object_set_new(ws_record(ex), "end", json_string(end));
    json_object_set_new(ex->entry, "end", json_string(end));
    pthread_mutex_unlock(&ex->inst->lock);
    shutdown(run->fd, SHUT_RDWR);
    MHD_upgrade_action(run->urh, MHD_UPGRADE_ACTION_CLOSE);
    struct server *srv = ex->srv;
    free(run->extra);
    free(run);
    ex_unref(ex);
    server_ws_session_ended(srv);
    return NULL;
}

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                       size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    (void)con_cls;
    struct exchange *ex = cls;
    struct ws_run *run = calloc(1, sizeof *run);
    if (!run)
        abort();
    run->ex = ex;
    run->fd = sock;
    run->urh = urh;
    if (extra_in_size) {
        run->extra = malloc(extra_in_size);
        memcpy(run->extra, extra_in, extra_in_size);
        run->extra_len = extra_in_size;
    }
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&th, &attr, session_thread, run) != 0) {
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        free(run->extra);
        free(run);
        ex_unref(ex);
        server_ws_session_ended(ex->srv);
    }
    pthread_attr_destroy(&attr);
}

static json_t *list_json(char **list)
{
    json_t *a = json_array();
    for (char **p = list; p && *p; p++)
        json_array_append_new(a, json_string(*p));
    return a;
}

enum MHD_Result ws_respond(struct exchange *ex)
{
    const struct ws_spec *spec = ex->resp->websocket;
    const struct ws_handshake_spec *h = &spec->handshake;
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
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(ex->entry, "websocket", record);
    pthread_mutex_unlock(&ex->inst->lock);
    if (n) {
        ws_free_list(offered);
        char msg[300];
        snprintf(msg, sizeof msg, "not a WebSocket handshake: %s\n", why[0]);
        pthread_mutex_lock(&ex->inst->lock);
        json_object_set_new(ex->entry, "status", json_integer(400));
        pthread_mutex_unlock(&ex->inst->lock);
        return queue_simple(ex, 400, "text/plain", msg, strlen(msg));
    }
    char accept[29];
    ws_accept_for(key, accept);
    if (h->accept == WS_ACCEPT_WRONG) {
        char other[200];
        snprintf(other, sizeof other, "%sx", key);
        ws_accept_for(other, accept);
    }
    const char *proto = ws_choose_protocol(h, offered);
    pthread_mutex_lock(&ex->inst->lock);
    json_object_set_new(record, "accept_sent",
                        h->accept == WS_ACCEPT_OMIT ? json_null() : json_string(accept));
    json_object_set_new(record, "protocol_sent", proto ? json_string(proto) : json_null());
    json_object_set_new(ex->entry, "status", json_integer(h->status));
    pthread_mutex_unlock(&ex->inst->lock);

    /* extra headers with templates */
    char base[256];
    snprintf(base, sizeof base, "/s/%s", ex->inst->id);
    struct tmpl_ctx ctx = {.origin_main = server_origin(ex->srv, 0),
                           .origin_cross = server_origin(ex->srv, 1),
                           .origin_alt = server_origin(ex->srv, 2),
                           .base = base,
                           .instance = ex->inst->id,
                           .method = r->method};
    bool conforming = h->status == 101 && h->accept == WS_ACCEPT_CORRECT && h->upgrade_header &&
                      !h->upgrade_value;
    enum MHD_Result result;
    if (conforming) {
        struct MHD_Response *resp = MHD_create_response_for_upgrade(on_upgrade, ex);
        MHD_add_response_header(resp, "Upgrade", "websocket");
        MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
        if (proto)
            MHD_add_response_header(resp, "Sec-WebSocket-Protocol", proto);
        if (h->extensions)
            MHD_add_response_header(resp, "Sec-WebSocket-Extensions", h->extensions);
        for (size_t i = 0; i < h->headers.n; i++) {
            char *v = tmpl_expand(h->headers.items[i].value, &ctx, NULL);
            MHD_add_response_header(resp, h->headers.items[i].name, v);
            free(v);
        }
        pthread_mutex_lock(&ex->lock);
        ex->refs++; /* the session thread's */
        pthread_mutex_unlock(&ex->lock);
        server_ws_session_started(ex->srv);
        pthread_mutex_lock(&ex->inst->lock);
        json_object_set_new(record, "upgraded", json_true());
        pthread_mutex_unlock(&ex->inst->lock);
        result = MHD_queue_response(ex->conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
        MHD_destroy_response(resp);
        ex->state = EX_QUEUED;
        if (result != MHD_YES) {
            server_ws_session_ended(ex->srv);
            ex_unref(ex);
        }
    } else {
        /* written by hand: exactly the faults asked for */
        size_t cap = 1024;
        for (size_t i = 0; i < h->headers.n; i++)
            cap += strlen(h->headers.items[i].name) + 256;
        char *out = malloc(cap);
        size_t len = (size_t)snprintf(out, cap, "HTTP/1.1 %d %s\r\n", h->status,
                                      scenario_reason_phrase(h->status));
        if (h->upgrade_header || h->upgrade_value)
            len += (size_t)snprintf(out + len, cap - len, "Upgrade: %s\r\n",
                                    h->upgrade_value ? h->upgrade_value : "websocket");
        if (h->status == 101)
            len += (size_t)snprintf(out + len, cap - len, "Connection: Upgrade\r\n");
        if (h->accept != WS_ACCEPT_OMIT)
            len += (size_t)snprintf(out + len, cap - len, "Sec-WebSocket-Accept: %s\r\n", accept);
        if (proto)
            len += (size_t)snprintf(out + len, cap - len, "Sec-WebSocket-Protocol: %s\r\n", proto);
        if (h->extensions)
            len += (size_t)snprintf(out + len, cap - len, "Sec-WebSocket-Extensions: %.200s\r\n",
                                    h->extensions);
        for (size_t i = 0; i < h->headers.n; i++) {
            char *v = tmpl_expand(h->headers.items[i].value, &ctx, NULL);
            len += (size_t)snprintf(out + len, cap - len, "%s: %.200s\r\n",
                                    h->headers.items[i].name, v);
            free(v);
        }
        if (h->status != 101)
            len += (size_t)snprintf(out + len, cap - len,
                                    "Content-Length: 0\r\nConnection: close\r\n");
        len += (size_t)snprintf(out + len, cap - len, "\r\n");
        pthread_mutex_lock(&ex->inst->lock);
        json_object_set_new(record, "upgraded", json_false());
        json_object_set_new(record, "handshake_bytes", json_stringn(out, len));
        pthread_mutex_unlock(&ex->inst->lock);
        result = respond_raw_bytes(ex, out, len, h->status == 101 ? FAULT_HANG : FAULT_NONE);
        free(out);
    }
    ws_free_list(offered);
    return result;
}
