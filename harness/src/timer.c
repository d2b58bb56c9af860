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
#include <stdlib.h>
#include <time.h>

struct timer {
    uint64_t due_us;
    uint64_t id;
    timer_fn fn;
    void *arg;
};

struct timers {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    struct timer *heap;
    size_t n, cap;
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

static void *run(void *arg)
{
    struct timers *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        if (t->n == 0) {
            pthread_cond_wait(&t->wake, &t->lock);
            continue;
        }
        uint64_t now = mono_us();
        if (t->heap[0].due_us > now) {
            uint64_t due = t->heap[0].due_us;
            struct timespec ts = {.tv_sec = (time_t)(due / 1000000u),
                                  .tv_nsec = (long)(due % 1000000u) * 1000};
            pthread_cond_timedwait(&t->wake, &t->lock, &ts);
            continue;
        }
        struct timer due = t->heap[0];
        remove_at(t, 0);
        pthread_mutex_unlock(&t->lock);
        due.fn(due.arg);
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
    while (t->n) {
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
    free(t);
}
