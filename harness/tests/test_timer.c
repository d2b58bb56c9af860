/* The timer thread: order of firing (by due time, ties in insertion order), cancellation,
 * callbacks adding timers, and lateness measured against the requested time. */
#include <pthread.h>
#include <unistd.h>
#include "test_util.h"
#include "timer.h"

struct log {
    pthread_mutex_t lock;
    int order[64];
    uint64_t at[64];
    int n;
};

struct tick {
    struct log *log;
    int id;
};

static void record(void *arg)
{
    struct tick *t = arg;
    pthread_mutex_lock(&t->log->lock);
    t->log->at[t->log->n] = mono_us();
    t->log->order[t->log->n++] = t->id;
    pthread_mutex_unlock(&t->log->lock);
}

static int count(struct log *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->n;
    pthread_mutex_unlock(&l->lock);
    return n;
}

static void wait_for(struct log *l, int n)
{
    for (int i = 0; i < 500 && count(l) < n; i++)
        usleep(2000);
}

static void test_order_and_ties(void **state)
{
    (void)state;
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct tick t[6];
    struct timers *tm = timers_start();
    uint64_t now = mono_us();
    uint64_t due[6] = {now + 60000, now + 20000, now + 40000, now + 20000, now, now + 20000};
    for (int i = 0; i < 6; i++) {
        t[i] = (struct tick){&l, i};
        timers_add(tm, due[i], record, &t[i]);
    }
    wait_for(&l, 6);
    int expect[6] = {4, 1, 3, 5, 2, 0};
    assert_int_equal(l.n, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(l.order[i], expect[i]);
    timers_stop(tm);
}

static void test_cancel(void **state)
{
    (void)state;
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct tick a = {&l, 1}, b = {&l, 2};
    struct timers *tm = timers_start();
    uint64_t ida = timers_after_ms(tm, 30, record, &a);
    timers_after_ms(tm, 40, record, &b);
    assert_int_equal(timers_pending(tm), 2);
    assert_true(timers_cancel(tm, ida));
    assert_false(timers_cancel(tm, ida));
    wait_for(&l, 1);
    usleep(30000);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.order[0], 2);
    assert_int_equal(timers_pending(tm), 0);
    timers_stop(tm);
}

struct chain {
    struct timers *tm;
    struct log *log;
    struct tick tick;
};

static void again(void *arg)
{
    struct chain *c = arg;
    record(&c->tick);
    if (c->tick.id < 3) {
        c->tick.id++;
        timers_after_ms(c->tm, 5, again, c);
    }
}

static void test_callbacks_add_timers(void **state)
{
    (void)state;
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct timers *tm = timers_start();
    struct chain c = {tm, &l, {&l, 1}};
    timers_after_ms(tm, 1, again, &c);
    wait_for(&l, 3);
    assert_int_equal(l.n, 3);
    timers_stop(tm);
}

static void test_lateness(void **state)
{
    (void)state;
    /* 20 timers over 200 ms: each fires after its time, and not much later (generous bound:
     * this is a correctness check, the figures live in the benchmark) */
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct tick t[20];
    uint64_t due[20];
    struct timers *tm = timers_start();
    uint64_t now = mono_us();
    for (int i = 0; i < 20; i++) {
        t[i] = (struct tick){&l, i};
        due[i] = now + (uint64_t)(i + 1) * 10000;
        timers_add(tm, due[i], record, &t[i]);
    }
    wait_for(&l, 20);
    assert_int_equal(l.n, 20);
    for (int i = 0; i < 20; i++) {
        uint64_t d = due[l.order[i]];
        assert_true(l.at[i] >= d);
        assert_true(l.at[i] - d < 50000);
    }
    timers_stop(tm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_callbacks_add_timers),
        cmocka_unit_test(test_lateness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
