/* exchange — one HTTP request and its response in flight: its life, its waits, the small
 * responses every handler queues, its template context and its journal entry.
 *
 * Life: created when libmicrohttpd reports the request line (server.c), freed when the
 * request is complete and no timer or session thread holds it any more: ex_ref() takes a
 * reference, ex_unref() drops one and frees on the last. While a request waits (a delay, a
 * trickle tick, a held long poll, the wait API) its connection is SUSPENDED: no thread is
 * held. Exactly one resume follows each suspend: ex_resume() takes the exchange lock and
 * resumes only if still suspended, so a timer and a shutdown (or a publish) racing each
 * other are harmless.
 *
 * What an exchange shares with the server that owns it (timers, instances, origins, the
 * stop flag) is a struct ex_host, filled in by server.c: the handlers (respond, control,
 * ws_upgrade) reach it through the exchange and never include server.h.
 */
#ifndef HARNESS_EXCHANGE_H
#define HARNESS_EXCHANGE_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "ctlauth.h"
#include "fsroot.h"
#include "instance.h"
#include "caps.h"
#include "origins.h"
#include "plan.h"
#include "request.h"
#include "scenario.h"
#include "timer.h"
#include "tmpl.h"

/* The ports of a server, as an exchange's port_index says: the plain ones, the control
 * API's, their TLS twins, then one TLS port per deliberately wrong certificate (in the
 * order of enum tls_cert_flaw, from TLS_CERT_EXPIRED). */
enum ex_port {
    EX_PORT_MAIN,
    EX_PORT_CROSS,
    EX_PORT_CONTROL,
    EX_PORT_MAIN_TLS,
    EX_PORT_CROSS_TLS,
    EX_PORT_FLAWED,
    EX_N_PORTS = EX_PORT_FLAWED + ORIGIN_N_FLAWED
};
/* The journal's name of a port ("main", "cross", "control", "main_tls", "cross_tls",
 * "cert_expired", …) and whether it speaks TLS. */
const char *ex_port_name(int port_index);
bool ex_port_tls(int port_index);

/* Shared by every exchange of one server (owned by it; server.c fills it in). */
struct ex_host {
    struct timers *timers;
    struct registry reg;
    /* every origin of every topology (origins.h): [tls][site][enum origin_id] */
    char origins[2][ORIGIN_N_SITES][ORIGIN_N][ORIGIN_LEN];
    char control_url[300];      /* the control port's URL */
    uint16_t ports[EX_N_PORTS]; /* enum ex_port; 0: not served */
    struct ctlauth auth;        /* the control API's token, Host and Origin checks */
    const struct fsroot *roots; /* borrowed: where the control API may read files */
    pthread_mutex_t lock;       /* guards stopping and ws_sessions */
    bool stopping;
    int ws_sessions;             /* WebSocket session threads running */
    struct caps limits;          /* what clients are allowed (limits.h) */
    struct caps_budget buffered; /* bodies in memory: limits.max_buffered */
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

/* How an exchange ended, as the journal's "end" says it (docs/control-api.md). */
enum ex_end {
    EX_END_NONE, /* not decided by us: libmicrohttpd's termination code says */
    EX_END_COMPLETE,
    EX_END_CLIENT_CLOSED,
    EX_END_RESET,
    EX_END_FAULT_CLOSE,
    EX_END_FAULT_RESET,
    EX_END_SERVER_STOPPED,
    EX_END_TIMEOUT,
    EX_END_ERROR,
};
/* The journal name of an end ("complete", "fault_close", ...); NULL for EX_END_NONE. */
const char *ex_end_name(enum ex_end end);

struct exchange {
    /* Small fields are grouped so that the record has no holes: it lives as long as its
     * request, a held stream's whole life (tests/test_memory.py bounds what that costs). */
    struct ex_host *host;
    struct MHD_Connection *conn;
    pthread_mutex_t lock;
    uint64_t timer_id;            /* the pending timer, 0 if none (guarded by lock) */
    struct exchange *prev, *next; /* the server's list of live exchanges */
    int port_index;               /* enum ex_port */
    int refs;                     /* guarded by lock */
    bool suspended;               /* guarded by lock */
    bool done;                    /* completed: timers must not resume it */
    bool headers_read;
    bool body_read; /* the whole request is in */
    enum ex_state state;

    struct request req;
    size_t buffered;     /* bytes taken from the host's budget, given back when freed */
    const char *version; /* static ("HTTP/1.1", "HTTP/1.0") or owned (version_owned) */
    uint64_t arrived_us;

    /* a scenario request */
    struct instance *inst; /* a reference, or NULL */
    const struct response *resp;
    long route; /* index, or -1 */
    long resp_index;
    unsigned long count;
    uint64_t entry; /* the journal entry's id (journal_find), 0 for control requests */
    bool preflight;
    bool ws_upgraded; /* handed to a WebSocket session, which records its own end */
    bool probing;     /* a hang: the peer is probed from a timer */
    bool direct;      /* a stream's pieces written by hand while suspended (deliver.c) */
    bool waiting;     /* holding: waiter is in the instance's list */
    bool version_owned;
    enum ex_end end; /* how it ended, if decided by us */
    struct plan plan;

    /* sending */
    uint64_t headers_us; /* when the response was queued */
    uint64_t body_start_us;
    size_t sent; /* body bytes handed to libmicrohttpd */
    size_t piece, piece_off;
    uint64_t piece_due_us;

    /* manual writing (and a piece written by hand that the socket did not take whole) */
    unsigned char *out;
    size_t out_len, out_off;
    size_t tls_again; /* over TLS: the length of a write to repeat (GNUTLS_E_AGAIN), or 0 */

    /* holding (long poll, wait API) */
    struct waiter waiter;
    uint64_t hold_until_us;
    long channel;
    /* wait API */
    char *wait_route;
    size_t wait_count;
};

/* --- life ------------------------------------------------------------------------------ */

/* A new exchange for a connection of host on port_index, with one reference (the
 * connection's), for the request target uri. */
struct exchange *ex_new(struct ex_host *host, int port_index, struct MHD_Connection *conn,
                        const char *uri);
void ex_ref(struct exchange *ex);
/* Drop a reference; the last frees the exchange (and its instance reference, entry, plan). */
void ex_unref(struct exchange *ex);
/* libmicrohttpd completed the request: no timer may resume it any more; its pending timer
 * is cancelled and it leaves the waiters of its instance. The caller still holds (and then
 * drops) the connection's reference. */
void ex_finish(struct exchange *ex);

/* Take n bytes of the host's budget of buffered bytes for this exchange (given back when it
 * is freed). False if they do not fit under limits.max_buffered. */
bool ex_buffer_take(struct exchange *ex, size_t n);

/* --- waits ----------------------------------------------------------------------------- */

/* Suspend the connection -- unless the server is stopping: then nothing happens (the access
 * handler, called again, ends the request), so that a stop never meets a connection
 * suspended after it resumed everything. */
void ex_suspend(struct exchange *ex);
void ex_resume(struct exchange *ex);
/* The same once the timer thread is idle (timers_when_idle): for a resume that may yield
 * to the pieces due on other connections. */
void ex_resume_when_idle(struct exchange *ex);
/* Resume an exchange that is already suspended at due_us (mono_us() time). */
void ex_wake_at(struct exchange *ex, uint64_t due_us);
/* Suspend the exchange and resume it at due_us. */
void ex_sleep_until(struct exchange *ex, uint64_t due_us);
/* Run fn(ex) on the timer thread at due_us with a reference for it (fn drops it with
 * ex_unref); remembered as the exchange's pending timer unless it is done. */
void ex_call_at(struct exchange *ex, uint64_t due_us, void (*fn)(void *ex));
/* A waiter's wake function: resume the exchange given as arg. */
void ex_wake(void *ex);

/* --- the connection ------------------------------------------------------------------- */

/* Asked of libmicrohttpd while the connection is open (not kept: a held stream would keep
 * them for nothing). The client's address "a.b.c.d:port" (IPv4), or "", into out (at least
 * EX_REMOTE_LEN bytes); the address the connection reached (IPv4 text), or "", into out (at
 * least EX_LOCAL_IP_LEN bytes). */
#define EX_REMOTE_LEN 24
#define EX_LOCAL_IP_LEN 16
void ex_remote(const struct exchange *ex, char *out);
void ex_local_ip(const struct exchange *ex, char *out);

/* --- the host -------------------------------------------------------------------------- */

/* The server's own origins (no tls, no site), by enum origin_id; "" if not served. */
const char *ex_origin(const struct exchange *ex, int which);
/* The origins of a scenario's instance (its tls and site keys), by enum origin_id. */
const char (*ex_scenario_origins(const struct exchange *ex, const struct scenario *s))[ORIGIN_LEN];
uint16_t ex_port(const struct exchange *ex); /* the port it came on */
struct registry *ex_registry(struct exchange *ex);
const struct ctlauth *ex_auth(const struct exchange *ex);
const struct fsroot *ex_roots(const struct exchange *ex); /* NULL: no file access */
bool ex_stopping(struct exchange *ex);
int ex_fd(const struct exchange *ex); /* the connection's socket, or -1 */
/* A request whose response has a schedule: its arrival is put back to when its bytes
 * reached the kernel (arrival.h), so that a backlog in this server does not slide the
 * schedule. Before the journal entry is made. */
void ex_arrival_from_kernel(struct exchange *ex);
void ex_ws_session_started(struct exchange *ex);
void ex_ws_session_ended(struct ex_host *host);

/* --- small responses ------------------------------------------------------------------- */

/* Queue a small complete response (JSON or text; body copied). */
enum MHD_Result ex_queue_simple(struct exchange *ex, int status, const char *content_type,
                                const char *body, size_t len);
enum MHD_Result ex_queue_json(struct exchange *ex, int status, json_t *doc); /* steals doc */

/* --- templates ------------------------------------------------------------------------- */

/* Storage for a template context: the strings it points to. */
struct ex_tmpl {
    struct tmpl_ctx ctx;
    char base[256];
};
/* The template context of a scenario request (ex->inst set): origins, the instance base,
 * method, path and target relative to it, body, count, headers and query. The one context
 * every response of a scenario is expanded with. Valid while t and ex are. */
const struct tmpl_ctx *ex_tmpl_ctx(struct exchange *ex, struct ex_tmpl *t);
/* The part of a /s/ID/... path or target after the instance prefix ("" if none). */
const char *ex_rel(const char *full);

/* --- the journal entry ----------------------------------------------------------------- */

/* With the instance lock held: append the journal entry of a scenario request (ex->inst
 * set) and remember it in ex->entry. r says what dispatch made of the request (route,
 * response_index, count, preflight and cors); the request as received (ports, remote,
 * method, target, query, version, headers, body, arrival) is filled in here, rel_path is
 * its path relative to the instance. */
void ex_entry_append_locked(struct exchange *ex, const char *rel_path, struct journal_request *r);
/* Each of these takes the instance lock; they do nothing without an entry (or once the
 * journal has dropped it). */
void ex_entry_status(struct exchange *ex, int status); /* <= 0: null */
/* Set a JSON field of the entry (steals value). */
void ex_entry_extra(struct exchange *ex, enum journal_extra which, json_t *value);
/* Record a phase at mono_us() time t, unless it is already recorded. */
void ex_phase(struct exchange *ex, enum journal_phase phase, uint64_t t);
/* A response queued at t with this status: its headers_sent phase, and body_first_byte too
 * when the body goes out with the headers (one lock for all). */
void ex_entry_queued(struct exchange *ex, int status, uint64_t t, bool body_too);
/* Record how the exchange ended: "end", "ended", "bytes_sent" and, for a complete one, the
 * "body_done" phase if missing. */
void ex_entry_end(struct exchange *ex, enum ex_end end, uint64_t now);
/* Set "end" alone (a WebSocket session's own end: a static string). */
void ex_entry_end_name(struct exchange *ex, const char *end);

#endif
