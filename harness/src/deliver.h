/* deliver — sending a planned response (plan.h) on an exchange, paced and faulted.
 *
 *   queued   through libmicrohttpd with a content reader that paces the body (body_delay,
 *            trickle, one chunk per piece of a stream or SSE) and carries out the fault
 *   manual   written by hand (raw bytes, a custom reason phrase) while the connection is
 *            suspended, resumed by a timer for each trickle tick or a full socket
 *   faults   a reset (RST), a close (FIN) before the body is done, or a hang: the
 *            connection stays suspended and a timer probes the peer until it goes
 *
 * The fault and the trickle arithmetic are each written once, for both ways of sending.
 * Every wait suspends the connection and sets a timer (exchange.h); nothing blocks.
 */
#ifndef HARNESS_DELIVER_H
#define HARNESS_DELIVER_H

#include <microhttpd.h>
#include <stddef.h>
#include "exchange.h"

/* A response that is the same bytes for every request: plain, its headers and body without
 * placeholders, sent whole (no pacing, fault, custom reason or `end`; a body of at most
 * 16 KiB, as larger ones are read out as the socket drains for bytes_sent). Its route's CORS
 * headers are not part of it: the caller checks the route has none. */
bool deliver_is_shared(const struct response *r);
/* Queue the shared response object of such a response: built once on r (the first request),
 * then queued as is by every request -- no plan, no copy, one write with the headers. False
 * if libmicrohttpd refused one of its headers (nothing queued: send a plan, which journals
 * the warning). *result: what the access handler returns. */
bool deliver_shared(struct exchange *ex, const struct response *r, enum MHD_Result *result);
/* Send ex->plan. Returns what the access handler returns. */
enum MHD_Result deliver_plan(struct exchange *ex);
/* Write bytes as the whole response (by hand), then end the connection as `after` says
 * (FAULT_NONE or FAULT_CLOSE: a FIN; FAULT_HANG: wait for the client to close). */
enum MHD_Result deliver_raw_bytes(struct exchange *ex, const void *bytes, size_t len,
                                  enum fault_action after);
/* The access handler called again (resumed) for an exchange in EX_MANUAL or EX_HANGING. */
enum MHD_Result deliver_resumed(struct exchange *ex);

#endif
