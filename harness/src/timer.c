/* timer — see timer.h. A binary min-heap of (due, id) under one mutex, and one thread.
 *
 * Cancellation is by id: the heap is searched linearly (cancel is rare: shutdown and early
 * answers), removal re-heapifies the hole. Ties on due time run in insertion order (ids
 * grow), so a schedule written as "every 100 ms" keeps its order.
 */
#include "timer.h"
#include "xalloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

struct timer {
    uint64_t due_us;
    uint64_t id;
    timer_fn fn;
    void *arg;
};

struct idle_call {
    timer_fn fn;
    void *arg;
    uint64_t since_us;
};

struct timers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    struct timer *heap;
    size_t n, cap;
    struct idle_call *idle; /* timers_when_idle(), in the order given */
    size_t n_idle, cap_idle;
    uint64_t next_id;
    bool stop;
};

uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static bool before(const struct timer *a, const struct timer *b)
{
    return a->due_us < b->due_us || (a->due_us == b->due_us && a->id < b->id);
}

static void swap(struct timer *a, struct timer *b)
{
    struct timer t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(struct timers *t, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&t->heap[i], &t->heap[parent]))
            break;
        swap(&t->heap[i], &t->heap[parent]);
        i = parent;
    }
}

static void sift_down(struct timers *t, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < t->n && before(&t->heap[l], &t->heap[m]))
            m = l;
        if (r < t->n && before(&t->heap[r], &t->heap[m]))
            m = r;
        if (m == i)
            break;
        swap(&t->heap[i], &t->heap[m]);
        i = m;
    }
}

static void remove_at(struct timers *t, size_t i)
{
    t->n--;
    if (i == t->n)
        return;
    t->heap[i] = t->heap[t->n];
    sift_down(t, i);
    sift_up(t, i);
}

/* Run every idle call waiting (t->lock held; released meanwhile), in order. */
static void run_idle(struct timers *t)
{
    struct idle_call *calls = t->idle;
    size_t n = t->n_idle;
    t->idle = NULL;
    t->n_idle = t->cap_idle = 0;
    pthread_mutex_unlock(&t->lock);
    for (size_t i = 0; i < n; i++)
        calls[i].fn(calls[i].arg);
    free(calls);
    pthread_mutex_lock(&t->lock);
}

static void *run(void *arg)
{
    struct timers *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        uint64_t now = mono_us();
        bool due = t->n && t->heap[0].due_us <= now;
        if (t->n_idle) {
            bool waited = now >= t->idle[0].since_us + TIMER_IDLE_MAX_US;
            bool quiet = !t->n || t->heap[0].due_us > now + TIMER_IDLE_US;
            if (waited || quiet) {
                run_idle(t);
                continue;
            }
        }
        if (!due) {
            if (t->n == 0 && t->n_idle == 0) {
                pthread_cond_wait(&t->wake, &t->lock);
                continue;
            }
            uint64_t until = t->n ? t->heap[0].due_us : UINT64_MAX;
            if (t->n_idle && t->idle[0].since_us + TIMER_IDLE_MAX_US < until)
                until = t->idle[0].since_us + TIMER_IDLE_MAX_US;
            struct timespec ts = {.tv_sec = (time_t)(until / 1000000u),
                                  .tv_nsec = (long)(until % 1000000u) * 1000};
            pthread_cond_timedwait(&t->wake, &t->lock, &ts);
            continue;
        }
        struct timer first = t->heap[0];
        remove_at(t, 0);
        pthread_mutex_unlock(&t->lock);
        first.fn(first.arg);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

struct timers *timers_start(void)
{
    struct timers *t = xcalloc(1, sizeof *t);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&t->lock, NULL);
    t->next_id = 1;
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return NULL;
    }
    return t;
}

uint64_t timers_add(struct timers *t, uint64_t due_us, timer_fn fn, void *arg)
{
    pthread_mutex_lock(&t->lock);
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        struct timer *heap = xrealloc(t->heap, cap * sizeof *heap);
        t->heap = heap;
        t->cap = cap;
    }
    uint64_t id = t->next_id++;
    t->heap[t->n] = (struct timer){.due_us = due_us, .id = id, .fn = fn, .arg = arg};
    sift_up(t, t->n);
    t->n++;
    if (t->heap[0].id == id)
        pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    return id;
}

uint64_t timers_after_ms(struct timers *t, uint64_t delay_ms, timer_fn fn, void *arg)
{
    return timers_add(t, mono_us() + delay_ms * 1000u, fn, arg);
}

bool timers_cancel(struct timers *t, uint64_t id)
{
    bool found = false;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->n; i++) {
        if (t->heap[i].id == id) {
            remove_at(t, i);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

void timers_when_idle(struct timers *t, timer_fn fn, void *arg)
{
    pthread_mutex_lock(&t->lock);
    if (t->n_idle == t->cap_idle) {
        t->cap_idle = t->cap_idle ? t->cap_idle * 2 : 64;
        t->idle = xrealloc(t->idle, t->cap_idle * sizeof *t->idle);
    }
    t->idle[t->n_idle++] = (struct idle_call){.fn = fn, .arg = arg, .since_us = mono_us()};
    if (t->n_idle == 1)
        pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

size_t timers_pending(struct timers *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->n;
    pthread_mutex_unlock(&t->lock);
    return n;
}

void timers_stop(struct timers *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    /* what is still pending runs now, so that what each timer holds (a reference to a
     * request) is released; a timer added meanwhile runs too */
    pthread_mutex_lock(&t->lock);
    while (t->n || t->n_idle) {
        if (!t->n) {
            run_idle(t);
            continue;
        }
        struct timer due = t->heap[0];
        remove_at(t, 0);
        pthread_mutex_unlock(&t->lock);
        due.fn(due.arg);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    free(t->heap);
    free(t->idle);
    free(t);
}
