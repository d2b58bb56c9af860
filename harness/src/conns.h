/* conns — the open connections of a server: their number under a cap, and the deadlines of
 * the request being read on each.
 *
 * libmicrohttpd's own timeout counts idle time only: a client that trickles its request one
 * byte a second (slowloris) is never idle and would hold its connection forever. Here every
 * connection has a phase, and the phases that wait for the client have a deadline:
 *
 *   HEADERS    from the accept, or the end of the previous request on the connection, until
 *              the request line and headers are in            (limits.header_timeout_s)
 *   BODY       from the end of the headers until the body is in (limits.body_timeout_s)
 *   ANSWERING  the server answers, as long as the scenario says (held requests, streams,
 *              WebSocket sessions): no deadline here
 *
 * A sweep on the timer thread, every CONNS_SWEEP_MS, ends each connection past its deadline:
 * it writes "408 Request Timeout" (best effort) and shuts the socket down both ways, which
 * libmicrohttpd then sees as the end of the connection and cleans up as usual. The same sweep
 * covers libmicrohttpd's blind spot under epoll (server.c): a connection that has waited for
 * its client a whole sweep period and whose socket holds a FIN behind no data (a peek, which
 * reads nothing) is shut down the same way, without the 408.
 *
 * server.c reports each connection's life from libmicrohttpd's callbacks. Locking: one mutex
 * guards the list and every phase; conns_closed() unlists a connection before
 * libmicrohttpd closes its descriptor, so the sweep never shuts down a descriptor that was
 * reused by another connection.
 */
#ifndef HARNESS_CONNS_H
#define HARNESS_CONNS_H

#include <stdbool.h>
#include <stddef.h>
#include "caps.h"
#include "timer.h"

#define CONNS_SWEEP_MS 250

struct conns;
struct conn; /* one connection (owned by the conns) */

/* Track connections under lim (borrowed; must outlive the conns), sweeping on t. */
struct conns *conns_new(struct timers *t, const struct caps *lim);
/* Stop the sweep (before the timers stop). */
void conns_stop(struct conns *cs);
/* Free the conns once every connection is closed. */
void conns_free(struct conns *cs);

/* May one more connection be accepted under max_connections? */
bool conns_admit(struct conns *cs);
/* A connection was accepted on fd: it is in HEADERS now. */
struct conn *conns_opened(struct conns *cs, int fd);
/* It is closed (its descriptor is about to be): k is freed. */
void conns_closed(struct conns *cs, struct conn *k);
size_t conns_count(struct conns *cs);

/* The headers are in: BODY. */
void conns_headers_read(struct conns *cs, struct conn *k);
/* The whole request is in: ANSWERING. */
void conns_request_read(struct conns *cs, struct conn *k);
/* The request is over (the connection may carry another): HEADERS again. */
void conns_request_done(struct conns *cs, struct conn *k);
/* Did the sweep end this connection (a timeout)? */
bool conns_timed_out(struct conns *cs, struct conn *k);

#endif
