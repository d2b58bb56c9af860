/* arrival — when a request's bytes reached this machine, for the schedules that count from
 * the request (delay, a stream's pieces, SSE events, long-poll holds).
 *
 * The server learns of a request when it gets round to it: under a backlog (thousands of
 * requests at once, a loaded machine) that is later than the client sent it, and a
 * schedule counted from then slides by the backlog. The kernel knows better: TCP_INFO's
 * tcpi_last_data_recv is the time since the socket last received data, the request's
 * newest bytes (or later ones, never earlier). It counts in whole jiffies (4 ms at HZ=250,
 * 10 ms at HZ=100), so arrival_lag_us() gives it less one jiffy (arrival_jiffy_ms(): the
 * resolution of CLOCK_MONOTONIC_COARSE, which ticks once a jiffy; ARRIVAL_JIFFY_MAX_MS if
 * that is unknown): never more than the true lag, so a schedule counted from now - lag is
 * never early, and at most two jiffies late. A lag of one jiffy or less, or a socket that
 * gives no TCP_INFO, counts as none: the time the server saw the request stays the arrival.
 * One caveat seen on a heavily loaded machine: for a new connection whose request followed
 * its handshake closely, the kernel can date the last data from the handshake, so the
 * arrival may be as early as the connect.
 */
#ifndef HARNESS_ARRIVAL_H
#define HARNESS_ARRIVAL_H

#include <stdint.h>

#define ARRIVAL_JIFFY_MAX_MS 10u /* the longest jiffy of a Linux kernel (HZ=100) */

/* The kernel's jiffy in whole milliseconds, rounded up (one more if it is not whole). */
unsigned arrival_jiffy_ms(void);

/* How long ago (µs) the data on the TCP socket fd surely arrived; 0: now, or unknown. */
uint64_t arrival_lag_us(int fd);

#endif
