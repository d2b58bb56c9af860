/* exchange — one HTTP request and its response in flight, shared by the modules of the
 * server (server.c drives it, respond.c answers scenario requests, control.c the API).
 *
 * Life: created when libmicrohttpd reports the request line (server.c), freed when the
 * request is complete and no timer holds it any more (reference counted). While a request
 * waits (a delay, a trickle tick, a held long poll, the wait API) its connection is
 * SUSPENDED: no thread is held. Exactly one resume follows each suspend: ex_resume() takes
 * the exchange lock and resumes only if still suspended, so a timer and a shutdown (or a
 * publish) racing each other are harmless.
 */
#ifndef HARNESS_EXCHANGE_H
#define HARNESS_EXCHANGE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "instance.h"
#include "piece.h"
#include "request.h"
#include "scenario.h"
#include "timer.h"

struct server;

/* How a response is sent, whatever the scenario key that produced it. */
struct plan {
    int status;
    char *reason; /* NULL: standard */
    struct name_value *headers;
    size_t n_headers;
    unsigned char *body;
    size_t body_len;
    bool chunked;
    uint64_t body_delay_ms;
    size_t trickle_bytes;
    uint64_t trickle_every_ms;
    enum fault_action fault;
    bool fault_has_after;
    size_t fault_after;
    /* paced pieces (stream, sse) instead of body: one chunk each */
    bool paced;
    struct piece *pieces;
    size_t n_pieces;
    enum stream_end then;
    /* the bytes are written by hand, not by libmicrohttpd (raw, a custom reason phrase) */
    bool manual;
    bool raw; /* manual: body holds the whole response as is */
};

enum ex_state {
    EX_NEW,       /* headers and body being read */
    EX_DELAYED,   /* suspended for `delay` */
    EX_READY,     /* the plan can be sent */
    EX_HOLDING,   /* a long poll held, or a wait API call */
    EX_QUEUED,    /* a response is queued: the reader runs */
    EX_MANUAL,    /* bytes written by hand while suspended */
    EX_HANGING,   /* suspended forever (fault hang), probing the peer */
    EX_CLOSE_NOW, /* next call: return MHD_NO (close the connection) */
};

struct exchange {
    struct server *srv;
    int port_index; /* 0 main, 1 cross */
    struct MHD_Connection *conn;
    int refs; /* guarded by lock */
    pthread_mutex_t lock;
    bool suspended;               /* guarded by lock */
    bool done;                    /* completed: timers must not resume it */
    uint64_t timer_id;            /* the pending timer, 0 if none (guarded by lock) */
    struct exchange *prev, *next; /* the server's list of live exchanges */

    struct request req;
    bool headers_read;
    bool body_too_large;
    char *version;
    char remote[64];
    uint64_t arrived_us;
    enum ex_state state;

    /* a scenario request */
    struct instance *inst; /* a reference, or NULL */
    long route;            /* index, or -1 */
    const struct response *resp;
    long resp_index;
    bool preflight;
    unsigned long count;
    json_t *entry; /* the journal entry (a reference), or NULL for control requests */
    struct plan plan;
    bool planned;

    /* sending */
    uint64_t headers_us; /* when the response was queued */
    uint64_t body_start_us;
    size_t sent; /* body bytes handed to libmicrohttpd */
    size_t piece, piece_off;
    uint64_t piece_due_us;
    const char *end; /* how it ended, if decided by us (fault_close, ...) */
    bool probing;    /* a hang: the peer is probed from a timer */

    /* manual writing */
    unsigned char *out;
    size_t out_len, out_off;

    /* holding (long poll, wait API) */
    struct waiter waiter;
    bool waiting;
    uint64_t hold_until_us;
    bool timed_out;
    long channel;
    /* wait API */
    char *wait_route;
    size_t wait_count;
    bool is_wait;
};

/* server.c */
void ex_suspend(struct exchange *ex);
void ex_unref(struct exchange *ex);
void server_ws_session_started(struct server *srv);
void server_ws_session_ended(struct server *srv);
uint16_t server_port(const struct server *srv, int which);
void ex_resume(struct exchange *ex);
/* Resume an exchange that is already suspended at due_us (mono_us() time). */
void ex_wake_at(struct exchange *ex, uint64_t due_us);
/* Suspend the exchange and resume it at due_us. */
void ex_sleep_until(struct exchange *ex, uint64_t due_us);
const char *server_origin(const struct server *srv, int which); /* 0 main, 1 cross, 2 alt */
struct timers *server_timers(struct server *srv);
struct registry *server_registry(struct server *srv);
bool server_stopping(struct server *srv);
/* Milliseconds (with microseconds) between two mono_us() times, as JSON. */
json_t *ms_since(uint64_t from_us, uint64_t to_us);

/* respond.c: answer a scenario request (the path starts with /s/). */
enum MHD_Result respond_scenario(struct exchange *ex);
/* The end of an exchange (completion): fill in the journal entry. */
void respond_completed(struct exchange *ex, enum MHD_RequestTerminationCode code);
void plan_free(struct plan *p);
/* Write bytes as the whole response (by hand), then end the connection as `after` says
 * (FAULT_NONE or FAULT_CLOSE: a FIN; FAULT_HANG: wait for the client to close). */
enum MHD_Result respond_raw_bytes(struct exchange *ex, const void *bytes, size_t len,
                                  enum fault_action after);

/* control.c: answer a request under /_harness/. */
enum MHD_Result control_handle(struct exchange *ex);

/* Queue a small complete response (JSON or text). Used by control and respond. */
enum MHD_Result queue_simple(struct exchange *ex, int status, const char *content_type,
                             const char *body, size_t len);
enum MHD_Result queue_json(struct exchange *ex, int status, json_t *doc); /* steals doc */

/* ws_upgrade.c: answer a scenario request whose response is `websocket:`. */
enum MHD_Result ws_respond(struct exchange *ex);

#endif
