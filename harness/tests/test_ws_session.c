/* Scripted WebSocket sessions over socketpair(): the session runs on the test's thread, a
 * client runs in a second thread and speaks frames through the codec (masked, as a client
 * must, unless a test wants otherwise). Checked: what the client receives, how the session
 * ends, and the events recorded. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include "test_util.h"
#include "timer.h"
#include "ws_frame.h"
#include "ws_session.h"

/* ------------------------------------------------------------------------- the client */

struct client {
    int fd;
    struct ws_parser p;
    char error[256]; /* the first thing that went wrong (cmocka asserts stay on the main
                      * thread) */
    atomic_int *stop;
};

#define CHECK(c, cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond) && !(c)->error[0])                                                             \
            snprintf((c)->error, sizeof(c)->error, __VA_ARGS__);                                   \
    } while (0)

static void c_write(struct client *c, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0) {
            CHECK(c, 0, "send failed: %s", strerror(errno));
            return;
        }
        p += n;
        len -= (size_t)n;
    }
}

static void c_frame(struct client *c, int opcode, bool fin, bool masked, const void *payload,
                    size_t len)
{
    struct ws_frame f = {.opcode = opcode, .fin = fin, .masked = masked, .mask = {1, 2, 3, 4}};
    size_t n;
    unsigned char *b = ws_encode(&f, payload, len, 0, &n);
    c_write(c, b, n);
    free(b);
}

static void c_send(struct client *c, int opcode, const char *text)
{
    c_frame(c, opcode, true, true, text, strlen(text));
}

/* The next frame from the server within timeout_ms; false (and an error) if none. */
static bool c_recv(struct client *c, struct ws_frame *f, int timeout_ms)
{
    uint64_t deadline = mono_us() + (uint64_t)timeout_ms * 1000u;
    for (;;) {
        if (ws_parser_next(&c->p, f) == WS_PARSE_FRAME)
            return true;
        uint64_t now = mono_us();
        if (now >= deadline) {
            CHECK(c, 0, "no frame within %d ms", timeout_ms);
            return false;
        }
        struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)((deadline - now) / 1000) + 1) <= 0)
            continue;
        unsigned char buf[65536];
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n <= 0) {
            CHECK(c, 0, "connection ended while waiting for a frame");
            return false;
        }
        ws_parser_feed(&c->p, buf, (size_t)n);
    }
}

/* Receive one frame and check its opcode and payload (NULL: any payload). */
static void c_expect(struct client *c, int opcode, bool fin, const void *payload, size_t len)
{
    struct ws_frame f;
    if (!c_recv(c, &f, 3000))
        return;
    CHECK(c, f.opcode == opcode, "opcode %d, wanted %d", f.opcode, opcode);
    CHECK(c, f.fin == fin, "fin %d, wanted %d (opcode %d)", f.fin, fin, opcode);
    CHECK(c, !f.masked, "a masked server frame");
    if (payload)
        CHECK(c, f.len == len && !memcmp(f.payload, payload, len),
              "payload '%.*s' (%zu bytes), wanted '%.*s'", (int)f.len, f.payload, f.len, (int)len,
              (const char *)payload);
    free(f.payload);
}

static void c_expect_text(struct client *c, int opcode, const char *text)
{
    c_expect(c, opcode, true, text, strlen(text));
}

/* Wait until the server side is closed by the test (EOF) or timeout_ms pass. */
static void c_wait_eof(struct client *c, int timeout_ms)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    unsigned char buf[4096];
    uint64_t deadline = mono_us() + (uint64_t)timeout_ms * 1000u;
    while (mono_us() < deadline && poll(&pfd, 1, 50) >= 0)
        if ((pfd.revents & (POLLIN | POLLHUP)) && recv(c->fd, buf, sizeof buf, MSG_DONTWAIT) <= 0)
            return;
}

/* ----------------------------------------------------------------------- the harness */

struct rec {
    json_t *events;
    atomic_int stop;
};

static void on_event(void *ctx, json_t *ev)
{
    json_array_append_new(((struct rec *)ctx)->events, ev);
}

static int on_stopping(void *ctx)
{
    return atomic_load(&((struct rec *)ctx)->stop);
}

struct run {
    const char *end;
    json_t *events;
    char error[256];
    double ms; /* how long the session took */
};

struct thread_arg {
    struct client *c;
    void (*fn)(struct client *);
};

static void *client_thread(void *p)
{
    struct thread_arg *a = p;
    a->fn(a->c);
    return NULL;
}

/* Run spec against client_fn (in a thread) and return what happened. */
static struct run run_session(const struct ws_spec *spec, void (*client_fn)(struct client *),
                              const void *extra, size_t extra_len)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    struct rec r = {.events = json_array()};
    struct client c = {.fd = sv[1], .stop = &r.stop};
    ws_parser_init(&c.p, 64u << 20);
    struct thread_arg arg = {&c, client_fn};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_thread, &arg), 0);
    struct ws_recorder rec = {.ctx = &r, .event = on_event, .stopping = on_stopping};
    uint64_t t0 = mono_us();
    struct run out = {0};
    out.end = ws_session_run(spec, sv[0], extra, extra_len, &rec);
    out.ms = (double)(mono_us() - t0) / 1000.0;
    close(sv[0]); /* as the caller does: the client sees EOF */
    pthread_join(th, NULL);
    close(sv[1]);
    ws_parser_free(&c.p);
    memcpy(out.error, c.error, sizeof out.error);
    out.events = r.events;
    return out;
}

static void run_free(struct run *r)
{
    json_decref(r->events);
}

/* Events of one kind (and direction, if dir is not NULL), as a new array. */
static json_t *events(const struct run *r, const char *kind, const char *dir)
{
    json_t *out = json_array();
    size_t i;
    json_t *ev;
    json_array_foreach(r->events, i, ev)
    {
        if (strcmp(json_string_value(json_object_get(ev, "kind")), kind))
            continue;
        if (dir && strcmp(json_string_value(json_object_get(ev, "dir")), dir))
            continue;
        json_array_append(out, ev);
    }
    return out;
}

static const char *str(json_t *ev, const char *key)
{
    return json_string_value(json_object_get(ev, key));
}

static json_int_t num(json_t *ev, const char *key)
{
    return json_integer_value(json_object_get(ev, key));
}

static void assert_client_ok(const struct run *r)
{
    if (r->error[0])
        fail_msg("client: %s", r->error);
}

/* Steps, built by hand as the loader would. */
static struct ws_step step(enum ws_step_kind kind)
{
    return (struct ws_step){.kind = kind, .fin = true, .ms = 5000};
}

static struct bytes text(const char *s)
{
    return (struct bytes){(unsigned char *)s, strlen(s)};
}

static struct ws_spec spec_of(struct ws_step *steps, size_t n, uint64_t linger_ms)
{
    return (struct ws_spec){.handshake = {.status = 101, .upgrade_header = true},
                            .steps = steps,
                            .n_steps = n,
                            .linger_ms = linger_ms};
}

/* ------------------------------------------------------------------------------ tests */

static void client_script(struct client *c)
{
    c_expect_text(c, WS_OP_TEXT, "hello");
    c_expect(c, WS_OP_BINARY, false, "\x00\x01", 2);
    c_expect(c, WS_OP_CONT, false, "\x02", 1);
    c_expect(c, WS_OP_CONT, true, "\xff", 1);
    c_expect_text(c, WS_OP_PING, "pp");
    c_send(c, WS_OP_PONG, "pp");
    c_frame(c, WS_OP_TEXT, false, true, "echo ", 5);
    c_frame(c, WS_OP_CONT, true, true, "me", 2);
    c_expect_text(c, WS_OP_TEXT, "echo me");
    c_expect(c, WS_OP_CLOSE, true,
             "\x03\xe8"
             "bye",
             5);
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_wait_eof(c, 3000);
}

static void test_script(void **state)
{
    (void)state;
    struct ws_step steps[6] = {step(WS_SEND), step(WS_SEND), step(WS_PING), step(WS_ECHO),
                               step(WS_CLOSE)};
    steps[0].payload = text("hello");
    steps[1].binary = true;
    steps[1].payload = (struct bytes){(unsigned char *)"\x00\x01\x02\xff", 4};
    steps[1].fragments = 3;
    steps[2].payload = text("pp");
    steps[3].count = 1;
    steps[4].has_code = true;
    steps[4].code = 1000;
    steps[4].payload = text("bye");
    struct ws_spec spec = spec_of(steps, 5, 1000);
    struct run r = run_session(&spec, client_script, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");

    json_t *out = events(&r, "frame", "out");
    /* text, 3 binary fragments, ping, echo, close */
    assert_int_equal(json_array_size(out), 7);
    json_t *f = json_array_get(out, 0);
    assert_int_equal(num(f, "opcode"), 1);
    assert_string_equal(str(f, "payload"), "hello");
    assert_true(json_is_false(json_object_get(f, "masked")));
    assert_int_equal(num(f, "length"), 5);
    assert_string_equal(str(json_array_get(out, 3), "payload_base64"), "/w==");
    assert_int_equal(num(json_array_get(out, 6), "opcode"), 8);
    json_decref(out);

    json_t *in = events(&r, "frame", "in");
    assert_int_equal(json_array_size(in), 4); /* pong, 2 fragments, close */
    assert_true(json_is_true(json_object_get(json_array_get(in, 0), "masked")));
    json_decref(in);

    json_t *msgs = events(&r, "message", "in");
    assert_int_equal(json_array_size(msgs), 1);
    json_t *m = json_array_get(msgs, 0);
    assert_string_equal(str(m, "type"), "text");
    assert_string_equal(str(m, "data"), "echo me");
    assert_int_equal(num(m, "frames"), 2);
    json_decref(msgs);

    json_t *closes = events(&r, "close", NULL);
    assert_int_equal(json_array_size(closes), 2);
    assert_string_equal(str(json_array_get(closes, 0), "dir"), "out");
    assert_int_equal(num(json_array_get(closes, 0), "code"), 1000);
    assert_string_equal(str(json_array_get(closes, 0), "reason"), "bye");
    assert_string_equal(str(json_array_get(closes, 1), "dir"), "in");
    assert_int_equal(num(json_array_get(closes, 1), "code"), 1000);
    json_decref(closes);

    json_t *steps_ev = events(&r, "step", NULL);
    assert_int_equal(json_array_size(steps_ev), 5);
    assert_string_equal(str(json_array_get(steps_ev, 3), "step"), "echo");
    assert_int_equal(num(json_array_get(steps_ev, 3), "index"), 3);
    json_decref(steps_ev);
    json_t *viol = events(&r, "violation", NULL);
    assert_int_equal(json_array_size(viol), 0);
    json_decref(viol);

    /* every event has a time, never decreasing */
    double last = 0;
    size_t i;
    json_t *ev;
    json_array_foreach(r.events, i, ev)
    {
        json_t *t = json_object_get(ev, "t");
        assert_true(json_is_real(t));
        assert_true(json_real_value(t) >= last);
        last = json_real_value(t);
    }
    run_free(&r);
}

static void client_pings_then_closes(struct client *c)
{
    c_send(c, WS_OP_PING, "are you there");
    c_expect_text(c, WS_OP_PONG, "are you there");
    c_send(c, WS_OP_BINARY, "\x01\x02");
    c_send(c, WS_OP_PING, "");
    c_expect_text(c, WS_OP_PONG, "");
    c_send(c, WS_OP_CLOSE,
           "\x0b\xb9"
           "client says bye");
    c_expect(c, WS_OP_CLOSE, true, "\x0b\xb9", 2); /* the code echoed */
    c_wait_eof(c, 3000);
}

static void test_auto_pong_and_client_close(void **state)
{
    (void)state;
    struct ws_step steps[2] = {step(WS_RECEIVE), step(WS_WAIT)};
    steps[1].ms = 5000;
    struct ws_spec spec = spec_of(steps, 2, 5000);
    struct run r = run_session(&spec, client_pings_then_closes, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_client");
    assert_true(r.ms < 2000); /* the close ended the wait */
    json_t *msgs = events(&r, "message", "in");
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(str(json_array_get(msgs, 0), "type"), "binary");
    assert_string_equal(str(json_array_get(msgs, 0), "data_base64"), "AQI=");
    json_decref(msgs);
    json_t *closes = events(&r, "close", NULL);
    assert_int_equal(json_array_size(closes), 2);
    assert_string_equal(str(json_array_get(closes, 0), "dir"), "in");
    assert_int_equal(num(json_array_get(closes, 0), "code"), 3001);
    assert_string_equal(str(json_array_get(closes, 0), "reason"), "client says bye");
    assert_string_equal(str(json_array_get(closes, 1), "dir"), "out");
    assert_int_equal(num(json_array_get(closes, 1), "code"), 3001);
    json_decref(closes);
    json_t *pongs = events(&r, "frame", "out");
    assert_int_equal(json_array_size(pongs), 3); /* 2 pongs, the close */
    assert_int_equal(num(json_array_get(pongs, 0), "opcode"), 10);
    assert_string_equal(str(json_array_get(pongs, 0), "payload"), "are you there");
    json_decref(pongs);
    run_free(&r);
}

/* Closes of every shape from the client, and the server's answer. */
static const struct {
    const char *payload;
    size_t len;
    const char *answer;
    size_t answer_len;
    const char *violation;
} CLOSES[] = {
    {"", 0, "", 0, NULL},
    {"\x03\xe8", 2, "\x03\xe8", 2, NULL},
    {"\x0f\xa0"
     "ok",
     4, "\x0f\xa0", 2, NULL},
    {"\x03", 1, "\x03\xea", 2, "close payload of one byte"},
    {"\x03\xed", 2, "\x03\xea", 2, "close code not allowed"},              /* 1005 */
    {"\x03\xf7", 2, "\x03\xea", 2, "close code not allowed"},              /* 1015 */
    {"\x03\xe8\xff", 3, "\x03\xef", 2, "invalid UTF-8 in a close reason"}, /* 1007 */
};
static _Atomic size_t close_case;

static void client_closes(struct client *c)
{
    size_t i = atomic_load(&close_case);
    c_frame(c, WS_OP_CLOSE, true, true, CLOSES[i].payload, CLOSES[i].len);
    c_expect(c, WS_OP_CLOSE, true, CLOSES[i].answer, CLOSES[i].answer_len);
    c_wait_eof(c, 3000);
}

static void test_close_answers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CLOSES / sizeof CLOSES[0]; i++) {
        atomic_store(&close_case, i);
        struct ws_step steps[1] = {step(WS_WAIT)};
        struct ws_spec spec = spec_of(steps, 1, 1000);
        struct run r = run_session(&spec, client_closes, NULL, 0);
        if (r.error[0])
            fail_msg("case %zu: %s", i, r.error);
        assert_string_equal(r.end, "closed_by_client");
        json_t *v = events(&r, "violation", NULL);
        if (CLOSES[i].violation) {
            assert_int_equal(json_array_size(v), 1);
            assert_string_equal(str(json_array_get(v, 0), "what"), CLOSES[i].violation);
            assert_non_null(strstr(str(json_array_get(v, 0), "detail"), "RFC 6455"));
        } else {
            assert_int_equal(json_array_size(v), 0);
        }
        json_decref(v);
        json_t *in = events(&r, "close", "in");
        json_t *code = json_object_get(json_array_get(in, 0), "code");
        assert_true(CLOSES[i].len >= 2 ? json_is_integer(code) : json_is_null(code));
        json_decref(in);
        run_free(&r);
    }
}

static void client_silent_then_close(struct client *c)
{
    struct ws_frame f;
    if (c_recv(c, &f, 3000)) { /* the server's close after the timeout */
        CHECK(c, f.opcode == WS_OP_CLOSE, "opcode %d", f.opcode);
        free(f.payload);
        c_send(c, WS_OP_CLOSE, "\x03\xe8");
    }
    c_wait_eof(c, 3000);
}

static void test_receive_timeout(void **state)
{
    (void)state;
    struct ws_step steps[2] = {step(WS_RECEIVE), step(WS_CLOSE)};
    steps[0].ms = 150;
    steps[1].has_code = true;
    steps[1].code = 1000;
    struct ws_spec spec = spec_of(steps, 2, 1000);
    struct run r = run_session(&spec, client_silent_then_close, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");
    json_t *t = events(&r, "timeout", NULL);
    assert_int_equal(json_array_size(t), 1);
    assert_int_equal(num(json_array_get(t, 0), "step"), 0);
    assert_string_equal(str(json_array_get(t, 0), "waiting"), "a message");
    assert_true(json_real_value(json_object_get(json_array_get(t, 0), "t")) >= 150);
    json_decref(t);
    run_free(&r);
}

static void client_never_answers(struct client *c)
{
    c_expect(c, WS_OP_CLOSE, true,
             "\x0f\xa0"
             "x",
             3);
    c_wait_eof(c, 3000);
}

static void test_close_timeout(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_CLOSE)};
    steps[0].has_code = true;
    steps[0].code = 4000;
    steps[0].payload = text("x");
    steps[0].ms = 200;
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_never_answers, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "close_timeout");
    assert_true(r.ms >= 200 && r.ms < 1500);
    json_t *t = events(&r, "timeout", NULL);
    assert_int_equal(json_array_size(t), 1);
    assert_string_equal(str(json_array_get(t, 0), "waiting"), "the client's close frame");
    json_decref(t);
    run_free(&r);
}

static void client_empty_close(struct client *c)
{
    c_expect(c, WS_OP_CLOSE, true, "", 0);
    c_send(c, WS_OP_CLOSE, "");
    c_wait_eof(c, 3000);
}

static void test_close_without_code(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_CLOSE)}; /* has_code false: an empty close */
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_empty_close, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");
    json_t *c = events(&r, "close", "out");
    assert_true(json_is_null(json_object_get(json_array_get(c, 0), "code")));
    json_decref(c);
    run_free(&r);
}

static void client_reads_then_eof(struct client *c)
{
    c_expect_text(c, WS_OP_TEXT, "bye");
    c_wait_eof(c, 3000);
}

static void test_drop(void **state)
{
    (void)state;
    struct ws_step steps[3] = {step(WS_SEND), step(WS_DROP), step(WS_SEND)};
    steps[0].payload = text("bye");
    steps[2].payload = text("never");
    struct ws_spec spec = spec_of(steps, 3, 1000);
    struct run r = run_session(&spec, client_reads_then_eof, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "dropped");
    json_t *out = events(&r, "frame", "out");
    assert_int_equal(json_array_size(out), 1); /* no close frame, nothing after the drop */
    json_decref(out);
    run_free(&r);
}

static void client_hangs_up(struct client *c)
{
    shutdown(c->fd, SHUT_RDWR);
}

static void test_client_gone(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_WAIT)};
    steps[0].ms = 5000;
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_hangs_up, NULL, 0);
    assert_string_equal(r.end, "client_gone");
    assert_true(r.ms < 1000);
    run_free(&r);
}

static void client_waits_for_linger_close(struct client *c)
{
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_wait_eof(c, 3000);
}

static void test_linger_then_server_closes(void **state)
{
    (void)state;
    struct ws_spec spec = spec_of(NULL, 0, 150);
    struct run r = run_session(&spec, client_waits_for_linger_close, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");
    assert_true(r.ms >= 150);
    run_free(&r);
}

static void client_stops_server(struct client *c)
{
    usleep(150000);
    atomic_store(c->stop, 1);
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe9", 2); /* 1001 going away */
    c_wait_eof(c, 3000);
}

static void test_server_stopping(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_WAIT)};
    steps[0].ms = 10000;
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_stops_server, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "server_stopped");
    assert_true(r.ms < 1000);
    json_t *c = events(&r, "close", "out");
    assert_int_equal(num(json_array_get(c, 0), "code"), 1001);
    json_decref(c);
    run_free(&r);
}

static void client_breaks_rules(struct client *c)
{
    c_frame(c, WS_OP_TEXT, true, false, "unmasked", 8);
    struct ws_frame f = {.opcode = WS_OP_TEXT, .fin = true, .rsv1 = true, .masked = true};
    size_t n;
    unsigned char *b = ws_encode(&f, "rsv", 3, 0, &n);
    c_write(c, b, n);
    free(b);
    c_send(c, 3, "op3");
    c_send(c, WS_OP_CONT, "orphan");
    c_frame(c, WS_OP_TEXT, false, true, "ok\xe2", 3);
    c_frame(c, WS_OP_CONT, true, true, "\x28", 1);
    f = (struct ws_frame){.opcode = WS_OP_BINARY, .fin = true, .masked = true};
    b = ws_encode(&f, "ab", 2, 64, &n);
    c_write(c, b, n);
    free(b);
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_wait_eof(c, 3000);
}

static void test_violations_recorded(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_WAIT)};
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_breaks_rules, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_client");
    json_t *v = events(&r, "violation", NULL);
    const char *want[] = {"unmasked client frame",
                          "reserved bit set",
                          "reserved opcode",
                          "continuation without a start",
                          "invalid UTF-8 in a text message",
                          "length not minimally encoded"};
    assert_int_equal(json_array_size(v), sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_string_equal(str(json_array_get(v, i), "what"), want[i]);
    json_decref(v);
    json_t *m = events(&r, "message", "in");
    assert_int_equal(json_array_size(m), 4); /* unmasked, rsv, bad UTF-8, binary */
    json_t *bad = json_array_get(m, 2);
    assert_null(json_object_get(bad, "data"));
    assert_string_equal(str(bad, "data_base64"), "b2viKA==");
    json_decref(m);
    run_free(&r);
}

/* An invalid ping is never answered: the next frame the client gets is a close 1002, and
 * the server ends the connection (RFC 6455 5.5, 7.1.7, 7.4.1). */
static void client_pings_fragmented(struct client *c)
{
    c_frame(c, WS_OP_PING, false, true, "frag", 4);
    c_expect(c, WS_OP_CLOSE, true, "\x03\xea", 2);
    c_wait_eof(c, 3000);
}

static void client_pings_126_bytes(struct client *c)
{
    char big[126];
    memset(big, 'p', sizeof big);
    c_frame(c, WS_OP_PING, true, true, big, sizeof big);
    c_expect(c, WS_OP_CLOSE, true, "\x03\xea", 2);
    c_wait_eof(c, 3000);
}

static void client_pings_125_bytes(struct client *c)
{
    char edge[125];
    memset(edge, 'q', sizeof edge);
    c_frame(c, WS_OP_PING, true, true, edge, sizeof edge);
    c_expect(c, WS_OP_PONG, true, edge, sizeof edge); /* the largest valid ping */
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_wait_eof(c, 3000);
}

static void test_invalid_ping_fails_the_connection(void **state)
{
    (void)state;
    void (*clients[2])(struct client *) = {client_pings_fragmented, client_pings_126_bytes};
    const char *what[2] = {"fragmented control frame", "control frame over 125 bytes"};
    for (int i = 0; i < 2; i++) {
        struct ws_step steps[1] = {step(WS_WAIT)};
        struct ws_spec spec = spec_of(steps, 1, 1000);
        struct run r = run_session(&spec, clients[i], NULL, 0);
        assert_client_ok(&r);
        assert_string_equal(r.end, "protocol_error");
        json_t *pongs = json_array();
        json_t *out = events(&r, "frame", "out");
        size_t k;
        json_t *ev;
        json_array_foreach(out, k, ev)
        {
            if (num(ev, "opcode") == WS_OP_PONG)
                json_array_append(pongs, ev);
        }
        assert_int_equal(json_array_size(pongs), 0);
        json_t *c = events(&r, "close", "out");
        assert_int_equal(json_array_size(c), 1);
        assert_int_equal(num(json_array_get(c, 0), "code"), 1002);
        json_t *v = events(&r, "violation", NULL);
        assert_int_equal(json_array_size(v), 1);
        assert_string_equal(str(json_array_get(v, 0), "what"), what[i]);
        json_decref(v);
        json_decref(c);
        json_decref(out);
        json_decref(pongs);
        run_free(&r);
    }
    struct ws_step steps[1] = {step(WS_WAIT)};
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_pings_125_bytes, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_client");
    run_free(&r);
}

static void client_echo_three(struct client *c)
{
    const char *words[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        c_send(c, i == 1 ? WS_OP_BINARY : WS_OP_TEXT, words[i]);
        c_expect_text(c, i == 1 ? WS_OP_BINARY : WS_OP_TEXT, words[i]);
    }
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_wait_eof(c, 3000);
}

static void test_echo_until_close(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_ECHO)}; /* count 0: until the client closes */
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_echo_three, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_client");
    json_t *m = events(&r, "message", "in");
    assert_int_equal(json_array_size(m), 3);
    json_decref(m);
    run_free(&r);
}

static void client_checks_raw_frames(struct client *c)
{
    /* FRAME steps, byte for byte: masked with the RFC's key, a 64-bit length for 2 bytes,
     * all reserved bits, a reserved opcode */
    unsigned char want[] = {0xFB, 0xFF, 0,    0,    0,    0,    0,          0,
                            0,    2,    0x37, 0xfa, 0x21, 0x3d, 'h' ^ 0x37, 'i' ^ 0xfa};
    unsigned char got[sizeof want];
    size_t have = 0;
    uint64_t deadline = mono_us() + 3000000u;
    while (have < sizeof want && mono_us() < deadline) {
        ssize_t n = recv(c->fd, got + have, sizeof want - have, 0);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    CHECK(c, have == sizeof want && !memcmp(got, want, sizeof want), "frame bytes differ");
    c_expect(c, WS_OP_CONT, false, "x", 1); /* a continuation without a start, fin 0 */
    c_expect(c, WS_OP_TEXT, true, "after", 5);
    c_wait_eof(c, 3000);
}

static void test_frame_step(void **state)
{
    (void)state;
    struct ws_step steps[4] = {step(WS_FRAME), step(WS_FRAME), step(WS_FRAME), step(WS_SEND)};
    steps[0].opcode = 0xB;
    steps[0].rsv1 = steps[0].rsv2 = steps[0].rsv3 = true;
    steps[0].masked = true;
    steps[0].length_form = 64;
    steps[0].payload = text("hi");
    steps[1].opcode = 0;
    steps[1].fin = false;
    steps[1].payload = text("x");
    steps[2].opcode = 1;
    steps[2].length_form = 7; /* 200 bytes cannot be said in 7 bits: not sent */
    unsigned char zeros[200] = {0};
    steps[2].payload = (struct bytes){zeros, sizeof zeros};
    steps[3].payload = text("after");
    struct ws_spec spec = spec_of(steps, 4, 100);
    struct run r = run_session(&spec, client_checks_raw_frames, NULL, 0);
    assert_client_ok(&r);
    json_t *out = events(&r, "frame", "out");
    json_t *f = json_array_get(out, 0);
    assert_int_equal(num(f, "opcode"), 11);
    assert_true(json_is_true(json_object_get(f, "masked")));
    assert_string_equal(str(f, "payload"), "hi");
    json_t *rsv = json_object_get(f, "rsv");
    for (int i = 0; i < 3; i++)
        assert_true(json_is_true(json_array_get(rsv, (size_t)i)));
    json_decref(out);
    json_t *e = events(&r, "error", NULL);
    assert_int_equal(json_array_size(e), 1);
    assert_int_equal(num(json_array_get(e, 0), "step"), 2);
    json_decref(e);
    run_free(&r);
}

static unsigned char rest[2]; /* what the client sends after the handshake's extra bytes */

static void client_sends_rest(struct client *c)
{
    c_write(c, rest, 2);
    c_expect_text(c, WS_OP_TEXT, "early");
    c_expect_text(c, WS_OP_TEXT, "late");
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_wait_eof(c, 3000);
}

static void test_extra_bytes(void **state)
{
    (void)state;
    /* a frame and most of a second one were read with the handshake */
    size_t n1, n2;
    struct ws_frame f = {.opcode = WS_OP_TEXT, .fin = true, .masked = true, .mask = {1, 2, 3, 4}};
    unsigned char *a = ws_encode(&f, "early", 5, 0, &n1);
    unsigned char *b = ws_encode(&f, "late", 4, 0, &n2);
    unsigned char extra[64];
    memcpy(extra, a, n1);
    memcpy(extra + n1, b, n2 - 2);
    memcpy(rest, b + n2 - 2, 2);
    struct ws_step steps[1] = {step(WS_ECHO)};
    steps[0].count = 2;
    struct ws_spec spec = spec_of(steps, 1, 100);
    struct run r = run_session(&spec, client_sends_rest, extra, n1 + n2 - 2);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");
    json_t *m = events(&r, "message", "in");
    assert_int_equal(json_array_size(m), 2);
    assert_string_equal(str(json_array_get(m, 1), "data"), "late");
    json_decref(m);
    run_free(&r);
    free(a);
    free(b);
}

static void client_announces_too_much(struct client *c)
{
    /* a 64-bit length of 32 MiB, masked: only the header is needed to refuse it */
    c_write(c, "\x82\xFF\x00\x00\x00\x00\x02\x00\x00\x00\x01\x02\x03\x04", 14);
    c_expect(c, WS_OP_CLOSE, true, "\x03\xf1", 2); /* 1009 message too big */
    c_wait_eof(c, 3000);
}

static void test_too_big(void **state)
{
    (void)state;
    struct ws_step steps[1] = {step(WS_RECEIVE)};
    struct ws_spec spec = spec_of(steps, 1, 1000);
    struct run r = run_session(&spec, client_announces_too_much, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "protocol_error");
    json_t *v = events(&r, "violation", NULL);
    assert_int_equal(json_array_size(v), 1);
    assert_string_equal(str(json_array_get(v, 0), "what"), "frame over the harness's limit");
    assert_non_null(strstr(str(json_array_get(v, 0), "detail"), "33554432"));
    json_decref(v);
    run_free(&r);
}

#define BIG (4u << 20)

static void client_sends_big_first(struct client *c)
{
    /* both sides send 4 MiB at once; the client reads only after its send is done, which
     * works only if the server keeps reading while it sends */
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i % 251);
    c_frame(c, WS_OP_BINARY, true, true, big, BIG);
    struct ws_frame f;
    if (c_recv(c, &f, 10000)) {
        CHECK(c, f.len == BIG && !memcmp(f.payload, big, BIG), "the big frame differs");
        free(f.payload);
    }
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_wait_eof(c, 3000);
    free(big);
}

static void test_send_and_receive_at_once(void **state)
{
    (void)state;
    unsigned char *big = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (unsigned char)(i % 251);
    struct ws_step steps[2] = {step(WS_SEND), step(WS_RECEIVE)};
    steps[0].binary = true;
    steps[0].payload = (struct bytes){big, BIG};
    struct ws_spec spec = spec_of(steps, 2, 0);
    struct run r = run_session(&spec, client_sends_big_first, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");
    json_t *m = events(&r, "message", "in");
    assert_int_equal(json_array_size(m), 1);
    assert_int_equal(num(json_array_get(m, 0), "length"), BIG);
    assert_true(json_is_true(json_object_get(json_array_get(m, 0), "truncated")));
    json_decref(m);
    run_free(&r);
    free(big);
}

static void client_replies_at_once(struct client *c)
{
    c_expect_text(c, WS_OP_TEXT, "go");
    c_send(c, WS_OP_TEXT, "reply"); /* arrives while the server waits */
    c_send(c, WS_OP_TEXT, "second");
    c_expect_text(c, WS_OP_TEXT, "second"); /* the echo step takes the second one */
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2);
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    c_wait_eof(c, 3000);
}

static void test_messages_wait_for_receive(void **state)
{
    (void)state;
    struct ws_step steps[5] = {step(WS_SEND), step(WS_WAIT), step(WS_RECEIVE), step(WS_ECHO),
                               step(WS_CLOSE)};
    steps[0].payload = text("go");
    steps[1].ms = 300;
    steps[2].ms = 50;
    steps[3].count = 1;
    steps[3].ms = 50;
    steps[4].has_code = true;
    steps[4].code = 1000;
    struct ws_spec spec = spec_of(steps, 5, 100);
    struct run r = run_session(&spec, client_replies_at_once, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_server");
    json_t *t = events(&r, "timeout", NULL);
    assert_int_equal(json_array_size(t), 0);
    json_decref(t);
    run_free(&r);
}

#define HALF_MIB (512u * 1024u)

static void client_closes_during_a_send(struct client *c)
{
    c_expect_text(c, WS_OP_TEXT, "a");
    c_send(c, WS_OP_CLOSE, "\x03\xe8");
    usleep(100000); /* the server is still sending the big message */
    struct ws_frame f;
    if (c_recv(c, &f, 3000)) {
        CHECK(c, f.opcode == WS_OP_BINARY && f.len == HALF_MIB * 4, "not the big message");
        free(f.payload);
    }
    c_expect(c, WS_OP_CLOSE, true, "\x03\xe8", 2); /* echoed before "after" */
    c_wait_eof(c, 3000);
}

static void test_client_close_between_steps(void **state)
{
    (void)state;
    unsigned char *big = calloc(HALF_MIB * 4, 1);
    struct ws_step steps[3] = {step(WS_SEND), step(WS_SEND), step(WS_SEND)};
    steps[0].payload = text("a");
    steps[1].binary = true;
    steps[1].payload = (struct bytes){big, HALF_MIB * 4};
    steps[2].payload = text("after");
    struct ws_spec spec = spec_of(steps, 3, 1000);
    struct run r = run_session(&spec, client_closes_during_a_send, NULL, 0);
    assert_client_ok(&r);
    assert_string_equal(r.end, "closed_by_client");
    json_t *st = events(&r, "step", NULL);
    assert_int_equal(json_array_size(st), 3);
    json_decref(st);
    json_t *out = events(&r, "frame", "out");
    assert_int_equal(json_array_size(out), 3); /* a, big, the close: not "after" */
    json_decref(out);
    run_free(&r);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_script),
        cmocka_unit_test(test_auto_pong_and_client_close),
        cmocka_unit_test(test_close_answers),
        cmocka_unit_test(test_receive_timeout),
        cmocka_unit_test(test_close_timeout),
        cmocka_unit_test(test_close_without_code),
        cmocka_unit_test(test_drop),
        cmocka_unit_test(test_client_gone),
        cmocka_unit_test(test_linger_then_server_closes),
        cmocka_unit_test(test_server_stopping),
        cmocka_unit_test(test_violations_recorded),
        cmocka_unit_test(test_invalid_ping_fails_the_connection),
        cmocka_unit_test(test_echo_until_close),
        cmocka_unit_test(test_frame_step),
        cmocka_unit_test(test_extra_bytes),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_send_and_receive_at_once),
        cmocka_unit_test(test_messages_wait_for_receive),
        cmocka_unit_test(test_client_close_between_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
