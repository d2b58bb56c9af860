/* ws_session — a scenario's WebSocket script, run on a connection that is already upgraded.
 *
 * ws_session_run() blocks (poll() with timeouts; the caller gives it a thread of its own)
 * and runs the steps of a struct ws_spec in order: send (text or binary, in N fragments),
 * ping, pong, wait, receive, echo, frame (anything, through ws_encode), close, drop. While
 * any step runs -- sending included -- frames from the client are read, recorded and
 * answered as RFC 6455 asks of a server: a ping gets a pong with the same payload, a close
 * gets a close echoing its code (1002 if the close itself broke the rules, 1007 for a reason
 * that is not UTF-8), and then the session ends. An invalid ping (over 125 bytes, or
 * fragmented: RFC 6455 5.5) gets no pong: the session fails the connection with close 1002
 * and ends ("protocol_error"). After the last step the session waits up to
 * spec->linger_ms for the client to close, then closes with 1000 and waits 2 s for the
 * answer. Before each step, what the client sent meanwhile is handled first (so a close
 * that came during a send ends the script there). Complete messages are queued: a receive
 * or echo step takes the oldest one not yet taken, even if it came during an earlier step.
 *
 * Everything is recorded through the recorder as jansson objects, each with "t" (ms since
 * the session started, a real) and "kind":
 *   step       {"index", "step": "send"|"ping"|...}            when a step starts
 *   frame      {"dir": "in"|"out", "opcode", "fin", "rsv": [b,b,b], "masked", "length",
 *               "payload" (text, if valid UTF-8) | "payload_base64", "truncated"?}
 *   message    {"dir": "in", "type": "text"|"binary", "length", "frames",
 *               "data" (valid UTF-8 text) | "data_base64", "truncated"?}
 *   close      {"dir", "code": N|null, "reason" | "reason_base64"}
 *   violation  {"what", "detail"}       what the CLIENT broke (ws_violation_what/_detail),
 *                                       or went over the harness's limits
 *   timeout    {"step", "waiting"}      a step waited in vain ("a message", ...)
 *   error      {"step", "detail"}       a step that could not be carried out
 * Payloads are recorded up to 64 KiB ("truncated": true beyond). Client violations are
 * recorded, not acted on: the session carries on, so that the grader sees what the client
 * does next. Only an invalid ping (close 1002) or a frame or message over 16 MiB (close
 * 1009) ends it ("protocol_error").
 *
 * The session never closes fd; it sends with MSG_NOSIGNAL | MSG_DONTWAIT, so the descriptor
 * may be blocking or not.
 */
#ifndef HARNESS_WS_SESSION_H
#define HARNESS_WS_SESSION_H

#include <jansson.h>
#include <stddef.h>
#include "scenario.h"

struct ws_recorder {
    void *ctx;
    /* One event; the recorder takes ownership. Called on the session's thread. */
    void (*event)(void *ctx, json_t *ev);
    /* Non-zero when the server is stopping: the session sends close 1001 and returns
     * "server_stopped". Polled at least every 100 ms. May be NULL. */
    int (*stopping)(void *ctx);
};

/* The largest frame payload and message the session accepts from a client. */
#define WS_SESSION_MAX_PAYLOAD (16u * 1024u * 1024u)

/* Run spec's script on fd; bytes already read past the handshake are in extra (extra_len,
 * may be 0). Returns how it ended, a static string:
 *   "closed_by_client"  the client sent a close first (answered)
 *   "closed_by_server"  the server's close (a close step, or after the linger) was answered
 *   "close_timeout"     the server's close was never answered
 *   "dropped"           a drop step: the caller closes the TCP connection, no close frame
 *   "client_gone"       the connection ended or broke without a close frame
 *   "server_stopped"    rec->stopping said so (close 1001 sent)
 *   "protocol_error"    the client sent an invalid ping (close 1002 sent) or went over the
 *                       harness's limits (close 1009 sent)
 * Does not close fd. */
const char *ws_session_run(const struct ws_spec *spec, int fd, const unsigned char *extra,
                           size_t extra_len, const struct ws_recorder *rec);

#endif
