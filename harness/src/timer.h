/* timer — one thread that runs callbacks at given times (the server's only clock).
 *
 * Every delay and schedule of the server (a response held before its status line, a
 * trickled body, a stream's next chunk, a long poll's hold timeout, the wait API's timeout)
 * is a timer here. Timers live in a binary min-heap ordered by due time on CLOCK_MONOTONIC;
 * the thread sleeps on a condition variable until the earliest one is due, so thousands of
 * pending timers cost one thread and no CPU.
 *
 * Callbacks run on the timer thread, one at a time, outside the timer lock: they may add or
 * cancel timers. They must be quick (resume a connection, write a few bytes).
 */
#ifndef HARNESS_TIMER_H
#define HARNESS_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*timer_fn)(void *arg);

struct timers;

/* Microseconds on CLOCK_MONOTONIC. */
uint64_t mono_us(void);

/* Start the timer thread. Returns NULL if the thread cannot be created. */
struct timers *timers_start(void);
/* Run fn(arg) at due_us (mono_us() time; a past time runs it at once). Returns a non-zero
 * id for timers_cancel(). */
uint64_t timers_add(struct timers *t, uint64_t due_us, timer_fn fn, void *arg);
/* The same, delay_ms from now. */
uint64_t timers_after_ms(struct timers *t, uint64_t delay_ms, timer_fn fn, void *arg);
/* Remove a pending timer. True if it was pending (it will not run); false if it already
 * ran, is running, or never existed. */
bool timers_cancel(struct timers *t, uint64_t id);
/* Run fn(arg) once the timer thread has nothing due within TIMER_IDLE_US, or at the latest
 * TIMER_IDLE_MAX_US from now while it stays that busy: work that may yield to a schedule
 * (a stream's end, after its last piece: resuming the connection wakes libmicrohttpd,
 * whose work would otherwise compete with the pieces due at that moment on other
 * streams). Callbacks that waited run together, in the order given. */
#define TIMER_IDLE_US 10000u
#define TIMER_IDLE_MAX_US 250000u
void timers_when_idle(struct timers *t, timer_fn fn, void *arg);
/* How many timers are pending. */
size_t timers_pending(struct timers *t);
/* Stop the thread, run every timer still pending at once (in due order, then those
 * waiting for the thread to be idle, on the caller's thread, so that what each one holds is
 * released; timers they add run too), then free everything. A callback that always adds another
 * timer would never let it return. */
void timers_stop(struct timers *t);

#endif
