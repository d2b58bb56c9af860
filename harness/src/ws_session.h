/* ws_session — a scenario's WebSocket script run on an upgraded connection.
 *
 * Blocking I/O with poll() timeouts, on a thread of its own (the caller's). The steps of
 * struct ws_spec run in order; while any step waits, frames from the client are read,
 * recorded and answered as RFC 6455 wants of a server (a ping gets a pong with the same
 * payload, a close gets a close echoing the code). Everything the client sends is recorded,
 * with what it breaks of the protocol, so the drivers can grade the client's side.
 */
#ifndef HARNESS_WS_SESSION_H
#define HARNESS_WS_SESSION_H

#include <jansson.h>
#include "scenario.h"

struct ws_recorder {
    void *ctx;
    /* One event (the recorder takes ownership): every event has "t" (ms since the session
     * started) and "kind": frame, message, close, violation, timeout. */
    void (*event)(void *ctx, json_t *ev);
    /* Non-zero when the server is stopping: the session closes with 1001. */
    int (*stopping)(void *ctx);
};

/* Run the script on fd (bytes already read past the handshake are in extra). Returns how
 * it ended: "closed_by_client", "closed_by_server", "close_timeout", "dropped",
 * "client_gone", "server_stopped" or "protocol_error". Does not close fd. */
const char *ws_session_run(const struct ws_spec *spec, int fd, const unsigned char *extra,
                           size_t extra_len, const struct ws_recorder *rec);

#endif
