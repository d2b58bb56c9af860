/* The timer thread: order of firing (by due time, ties in insertion order), cancellation,
 * callbacks adding timers, lateness measured against the requested time, and calls that
 * wait for the thread to be idle. */
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

/* Each timer is judged against its own due time, never against the one before it: never
 * early, and late by at most LATE_US, room for a loaded machine (make check passes beside
 * `stress-ng --cpu 4` on two cores). */
#define LATE_US 300000u

static void wait_for(struct log *l, int n)
{
    for (int i = 0; i < 2500 && count(l) < n; i++) /* up to 5 s */
        usleep(2000);
}

static void test_order_and_ties(void **state)
{
    (void)state;
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct tick t[6];
    struct timers *tm = timers_start();
    /* all due after a margin, so that a descheduled test thread (a loaded machine) still
     * adds all six before the first is due */
    uint64_t now = mono_us() + 200000;
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
    /* far enough ahead that the cancel comes first even on a loaded machine */
    uint64_t ida = timers_after_ms(tm, 300, record, &a);
    timers_after_ms(tm, 400, record, &b);
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
    /* 20 timers over 200 ms: each fires at or after its own due time, and not much later
     * (a generous bound: this is a correctness check, the figures live in the benchmark) */
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
        assert_true(l.at[i] - d < LATE_US);
    }
    timers_stop(tm);
}

static void test_stop_runs_what_is_pending(void **state)
{
    (void)state;
    /* a timer holds a reference (to a request): stopping runs it, so nothing leaks */
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct tick a = {&l, 1}, b = {&l, 2};
    struct timers *tm = timers_start();
    timers_after_ms(tm, 600000, record, &b);
    timers_after_ms(tm, 300000, record, &a);
    timers_stop(tm);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.order[0], 1); /* in due order */
    assert_int_equal(l.order[1], 2);
}

static struct timers *idle_tm;
static struct tick idle_ticks[3];

/* The first busy timer: recorded, then the idle calls are given (others are due then). */
static void record_then_idle(void *arg)
{
    record(arg);
    for (int i = 1; i < 3; i++)
        timers_when_idle(idle_tm, record, &idle_ticks[i]);
}

static void test_when_idle(void **state)
{
    (void)state;
    struct log l = {.lock = PTHREAD_MUTEX_INITIALIZER};
    struct tick busy[40];
    struct timers *tm = idle_tm = timers_start();
    /* nothing else to do: an idle call runs at once */
    idle_ticks[0] = (struct tick){&l, 100};
    uint64_t t0 = mono_us();
    timers_when_idle(tm, record, &idle_ticks[0]);
    wait_for(&l, 1);
    assert_int_equal(count(&l), 1);
    assert_true(l.at[0] - t0 < LATE_US);
    /* timers due every 2 ms for 80 ms, the first giving two idle calls: these wait for the
     * others to be done (nothing due within TIMER_IDLE_US), then run together, in order */
    l.n = 0;
    for (int i = 1; i < 3; i++)
        idle_ticks[i] = (struct tick){&l, 100 + i};
    uint64_t start = mono_us() + 100000; /* a margin to add them all before the first */
    for (int i = 0; i < 40; i++) {
        busy[i] = (struct tick){&l, i};
        timers_add(tm, start + (uint64_t)i * 2000u, i ? record : record_then_idle, &busy[i]);
    }
    wait_for(&l, 42);
    assert_int_equal(count(&l), 42);
    int at101 = -1;
    for (int i = 0; i < 42; i++)
        if (l.order[i] == 101)
            at101 = i;
    assert_true(at101 > 0 && at101 + 1 < 42 && l.order[at101 + 1] == 102);
    /* after the last busy timer; or, if a loaded machine spread the busy ones out, at the
     * latest TIMER_IDLE_MAX_US after the calls were given, never before */
    if (at101 != 40)
        assert_true(l.at[at101] >= l.at[0] + TIMER_IDLE_MAX_US - 1000);
    /* stopping runs an idle call still waiting */
    struct tick late = {&l, 200}, last = {&l, 201};
    timers_after_ms(tm, 600000, record, &late);
    timers_when_idle(tm, record, &last);
    timers_stop(tm);
    assert_int_equal(l.n, 44);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_ties),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_callbacks_add_timers),
        cmocka_unit_test(test_lateness),
        cmocka_unit_test(test_stop_runs_what_is_pending),
        cmocka_unit_test(test_when_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
