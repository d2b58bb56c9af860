/* ws_session — a scripted WebSocket session; see ws_session.h for the contract.
 *
 * One loop does all the reading: pump() takes frames out of the parser, hands them to the
 * assembler and on_frame(), and polls the socket (at most 100 ms at a time, so that the
 * stopping flag is seen) until a deadline, a complete message (when a step wants one), the
 * client's close or the end of the connection. Sending waits for POLLOUT and meanwhile
 * keeps reading into the parser (not acting on it), so that a client blocked on a full
 * socket buffer of its own cannot deadlock the session.
 */
#include "ws_session.h"

#include <errno.h>
#include <nettle/base64.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include "timer.h"
#include "ws_frame.h"

#define RECORD_LIMIT (64u * 1024u)
#define SEND_STALL_US (30u * 1000000u) /* a client that reads nothing for this long is gone */
#define READ_AHEAD_LIMIT (32u * 1024u * 1024u)
#define FINAL_CLOSE_WAIT_MS 2000u
#define QUEUE_MAX_MESSAGES 1024u
#define QUEUE_MAX_BYTES (64u * 1024u * 1024u)

enum pump_result {
    R_OK,      /* nothing special: go on */
    R_TIMEOUT, /* the deadline passed */
    R_MESSAGE, /* a complete message is queued (s->queue) */
    R_CLOSED,  /* the client's close frame came */
    R_GONE,    /* the connection ended or broke */
    R_STOP,    /* the server is stopping */
    R_ERROR,   /* the client went over the limits */
};

struct session {
    int fd;
    const struct ws_recorder *rec;
    uint64_t t0;
    size_t step; /* the step running (for events) */
    struct ws_parser parser;
    struct ws_assembler as;
    bool eof;          /* the client will send nothing more */
    bool broken;       /* a frame went out partly: nothing more may be sent */
    bool sent_close;   /* our close frame went out */
    bool got_close;    /* the client's close frame came */
    bool client_first; /* ... before ours went out */
    /* messages no receive or echo step has taken yet, oldest first (all are recorded as
     * they come; the queue only decides what the next receive/echo step sees) */
    struct ws_message *queue;
    size_t q_head, q_len, q_cap, q_bytes;
    enum conn_end drop_end; /* a drop step's: how the TCP connection ends */
    bool nodelay;           /* TCP_NODELAY is set: each write goes out as it is */
};

static uint64_t deadline_after(uint64_t ms)
{
    uint64_t now = mono_us();
    return ms > (UINT64_MAX - now) / 1000u ? UINT64_MAX : now + ms * 1000u;
}

static bool stopping(const struct session *s)
{
    return s->rec->stopping && s->rec->stopping(s->rec->ctx);
}

/* ------------------------------------------------------------------------------ events */

static void emit(struct session *s, json_t *ev)
{
    if (!ev)
        return;
    double t = (double)(mono_us() - s->t0) / 1000.0;
    json_object_set_new(ev, "t", json_real((double)(long long)(t * 1000.0) / 1000.0));
    if (s->rec->event)
        s->rec->event(s->rec->ctx, ev);
    else
        json_decref(ev);
}

/* data as text under text_key if it is valid UTF-8, else base64 under b64_key; at most
 * RECORD_LIMIT bytes ("truncated" beyond; a code point cut in two makes it base64). */
static void put_payload(json_t *ev, const char *text_key, const char *b64_key,
                        const unsigned char *data, size_t len, bool text_ok)
{
    size_t n = len > RECORD_LIMIT ? RECORD_LIMIT : len;
    json_t *t = text_ok && ws_utf8_valid(data, n) ? json_stringn((const char *)data, n) : NULL;
    if (t) {
        json_object_set_new(ev, text_key, t);
    } else {
        char *b = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
        if (!b)
            abort();
        base64_encode_raw(b, n, data);
        b[BASE64_ENCODE_RAW_LENGTH(n)] = 0;
        json_object_set_new(ev, b64_key, json_string(b));
        free(b);
    }
    if (n < len)
        json_object_set_new(ev, "truncated", json_true());
}

static void record_frame(struct session *s, const char *dir, const struct ws_frame *f)
{
    json_t *ev = json_pack("{s:s, s:s, s:i, s:b, s:[b,b,b], s:b, s:I}", "kind", "frame", "dir", dir,
                           "opcode", f->opcode, "fin", f->fin, "rsv", f->rsv1, f->rsv2, f->rsv3,
                           "masked", f->masked, "length", (json_int_t)f->len);
    put_payload(ev, "payload", "payload_base64", f->payload, f->len, true);
    emit(s, ev);
}

static void record_close(struct session *s, const char *dir, const unsigned char *payload,
                         size_t len)
{
    json_t *ev = json_pack("{s:s, s:s}", "kind", "close", "dir", dir);
    json_object_set_new(ev, "code",
                        len >= 2 ? json_integer((payload[0] << 8) | payload[1]) : json_null());
    if (len > 2)
        put_payload(ev, "reason", "reason_base64", payload + 2, len - 2, true);
    else
        json_object_set_new(ev, "reason", json_string(""));
    emit(s, ev);
}

static void violation(struct session *s, const char *what, const char *detail)
{
    emit(s, json_pack("{s:s, s:s, s:s}", "kind", "violation", "what", what, "detail", detail));
}

static void step_timeout(struct session *s, const char *waiting)
{
    emit(s, json_pack("{s:s, s:I, s:s}", "kind", "timeout", "step", (json_int_t)s->step, "waiting",
                      waiting));
}

/* ----------------------------------------------------------------------------- sending */

/* Read what the client sent into the parser without acting on it (while a send waits,
 * and before a step starts); true if anything came. */
static bool read_ahead(struct session *s)
{
    if (s->eof || ws_parser_pending(&s->parser) > READ_AHEAD_LIMIT)
        return false;
    unsigned char buf[16384];
    ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0)
        ws_parser_feed(&s->parser, buf, (size_t)n);
    else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
        s->eof = true;
    return n > 0;
}

static enum pump_result pump(struct session *s, uint64_t deadline_us, bool want_message);

static enum pump_result send_bytes(struct session *s, const unsigned char *data, size_t len)
{
    size_t done = 0;
    uint64_t last_progress = mono_us();
    while (done < len) {
        ssize_t n = send(s->fd, data + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            done += (size_t)n;
            last_progress = mono_us();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            s->broken = true;
            return R_GONE;
        }
        if (stopping(s)) {
            s->broken = done > 0;
            return R_STOP;
        }
        if (mono_us() - last_progress > SEND_STALL_US) {
            s->broken = true;
            step_timeout(s, "the client to read");
            return R_GONE;
        }
        bool want_in = !s->eof && ws_parser_pending(&s->parser) <= READ_AHEAD_LIMIT;
        struct pollfd pfd = {.fd = s->fd, .events = POLLOUT | (want_in ? POLLIN : 0)};
        if (poll(&pfd, 1, 100) > 0 && (pfd.revents & (POLLIN | POLLHUP)) && want_in)
            read_ahead(s);
    }
    return R_OK;
}

/* Write bytes when due_us comes (meanwhile the client's frames are handled as in a wait
 * step), as one send() with TCP_NODELAY, and record them: exactly what went out, and when. */
static enum pump_result write_at(struct session *s, const unsigned char *data, size_t len,
                                 uint64_t due_us)
{
    if (s->broken)
        return R_GONE;
    if (mono_us() < due_us) {
        enum pump_result r = pump(s, due_us, false);
        if (r != R_TIMEOUT)
            return r;
    }
    if (!s->nodelay) {
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        s->nodelay = true;
    }
    json_t *ev =
        json_pack("{s:s, s:s, s:I, s:f}", "kind", "write", "dir", "out", "length", (json_int_t)len,
                  "due", (double)(long long)((double)(due_us - s->t0) / 1000.0 * 1000.0) / 1000.0);
    enum pump_result r = send_bytes(s, data, len);
    if (r == R_OK) {
        put_payload(ev, "bytes", "bytes_base64", data, len, false);
        emit(s, ev);
    } else {
        json_decref(ev);
    }
    return r;
}

/* A raw step: each chunk after its pause, counted from the previous chunk's due time (an
 * absolute schedule: a slow write does not shift the ones after it). */
static enum pump_result write_chunks(struct session *s, const struct raw_chunks *c)
{
    uint64_t due = mono_us();
    enum pump_result r = R_OK;
    for (size_t i = 0; i < c->n && r == R_OK; i++) {
        due += c->items[i].pause_ms * 1000u;
        if (c->items[i].bytes.len)
            r = write_at(s, c->items[i].bytes.data, c->items[i].bytes.len, due);
        else if (mono_us() < due && (r = pump(s, due, false)) == R_TIMEOUT)
            r = R_OK;
    }
    return r;
}

/* Send one frame (as described; a masked frame without a key gets 37 fa 21 3d, the RFC's)
 * and record it. A length that length_form cannot hold is recorded as an error event. */
static enum pump_result send_frame(struct session *s, struct ws_frame *f, const void *payload,
                                   size_t len, int length_form)
{
    if (s->broken)
        return R_GONE;
    static const uint8_t zero[4];
    if (f->masked && !memcmp(f->mask, zero, 4))
        memcpy(f->mask, "\x37\xfa\x21\x3d", 4);
    size_t out_len;
    unsigned char *out = ws_encode(f, payload, len, length_form, &out_len);
    if (!out) {
        emit(s, json_pack("{s:s, s:I, s:s}", "kind", "error", "step", (json_int_t)s->step, "detail",
                          "the payload does not fit the length_form asked for: not sent"));
        return R_OK;
    }
    enum pump_result r = send_bytes(s, out, out_len);
    free(out);
    if (r == R_OK) { /* recorded once it is on the wire */
        struct ws_frame rec = *f;
        rec.payload = (unsigned char *)payload;
        rec.len = len;
        record_frame(s, "out", &rec);
        if (f->opcode == WS_OP_CLOSE) {
            s->sent_close = true;
            record_close(s, "out", payload, len);
        }
    }
    return r;
}

static enum pump_result send_simple(struct session *s, int opcode, const void *payload, size_t len)
{
    struct ws_frame f = {.opcode = opcode, .fin = true};
    return send_frame(s, &f, payload, len, 0);
}

/* A frame step with a length that lies or cut into pieces (split_at, pause). */
static enum pump_result send_frame_step(struct session *s, const struct ws_step *st,
                                        struct ws_frame *f)
{
    if (s->broken)
        return R_GONE;
    if (f->masked)
        memcpy(f->mask, "\x37\xfa\x21\x3d", 4);
    size_t out_len;
    unsigned char *out =
        ws_encode_announced(f, st->payload.data, st->payload.len, st->length_form,
                            st->has_length ? st->length : st->payload.len, &out_len);
    if (!out) {
        emit(s, json_pack("{s:s, s:I, s:s}", "kind", "error", "step", (json_int_t)s->step, "detail",
                          "the length does not fit the length_form asked for: not sent"));
        return R_OK;
    }
    enum pump_result r = R_OK;
    uint64_t due = mono_us();
    size_t from = 0;
    for (size_t k = 0; k <= st->n_split && r == R_OK; k++) {
        size_t to = k < st->n_split ? st->split_at[k] : out_len;
        if (to > out_len)
            to = out_len;
        if (to <= from)
            continue;
        r = write_at(s, out + from, to - from, due);
        from = to;
        due += st->pause_ms * 1000u;
    }
    free(out);
    if (r == R_OK) {
        struct ws_frame rec = *f;
        rec.payload = st->payload.data;
        rec.len = st->payload.len;
        record_frame(s, "out", &rec);
        if (f->opcode == WS_OP_CLOSE) {
            s->sent_close = true;
            record_close(s, "out", st->payload.data, st->payload.len);
        }
    }
    return r;
}

/* A close frame: no payload at all when !has_code. */
static enum pump_result send_close(struct session *s, bool has_code, int code, const void *reason,
                                   size_t reason_len)
{
    if (!has_code)
        return send_simple(s, WS_OP_CLOSE, "", 0);
    size_t len;
    unsigned char *p = ws_close_payload(code, reason, reason_len, &len);
    enum pump_result r = send_simple(s, WS_OP_CLOSE, p, len);
    free(p);
    return r;
}

/* ----------------------------------------------------------------------------- reading */

static enum pump_result on_close(struct session *s, const struct ws_frame *f, uint32_t v)
{
    s->got_close = true;
    s->client_first = !s->sent_close;
    record_close(s, "in", f->payload, f->len);
    if (!s->sent_close && !s->broken) {
        /* 5.5.1: answer with a close, typically echoing the code; a close that breaks the
         * rules gets 1002 (protocol error), a reason that is not UTF-8 1007 (7.4.1) */
        if (v & (WS_V_CLOSE_ONE_BYTE | WS_V_CLOSE_CODE | WS_V_CONTROL_INVALID))
            send_close(s, true, 1002, "", 0);
        else if (v & WS_V_CLOSE_REASON_UTF8)
            send_close(s, true, 1007, "", 0);
        else
            send_close(s, f->len >= 2, f->len >= 2 ? (f->payload[0] << 8) | f->payload[1] : 0, "",
                       0);
    }
    return R_CLOSED;
}

static void record_message(struct session *s, const struct ws_message *m)
{
    bool text = m->opcode == WS_OP_TEXT;
    json_t *ev = json_pack("{s:s, s:s, s:s, s:I, s:I}", "kind", "message", "dir", "in", "type",
                           text ? "text" : "binary", "length", (json_int_t)m->len, "frames",
                           (json_int_t)m->frames);
    put_payload(ev, "data", "data_base64", m->data, m->len, text && !m->bad_utf8);
    emit(s, ev);
}

/* ------------------------------------------------------------------------------ queue */

static void queue_drop_oldest(struct session *s)
{
    struct ws_message *m = &s->queue[s->q_head];
    s->q_bytes -= m->len;
    free(m->data);
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_len--;
}

static void queue_push(struct session *s, struct ws_message m)
{
    while (s->q_len && (s->q_len >= QUEUE_MAX_MESSAGES || s->q_bytes + m.len > QUEUE_MAX_BYTES))
        queue_drop_oldest(s); /* recorded already; a script that never receives loses them */
    if (s->q_len == s->q_cap) {
        size_t cap = s->q_cap ? s->q_cap * 2 : 8;
        struct ws_message *q = malloc(cap * sizeof *q);
        if (!q)
            abort();
        for (size_t i = 0; i < s->q_len; i++)
            q[i] = s->queue[(s->q_head + i) % s->q_cap];
        free(s->queue);
        s->queue = q;
        s->q_cap = cap;
        s->q_head = 0;
    }
    s->queue[(s->q_head + s->q_len) % s->q_cap] = m;
    s->q_len++;
    s->q_bytes += m.len;
}

/* Take the oldest message out (the caller frees m->data). */
static void queue_pop(struct session *s, struct ws_message *m)
{
    *m = s->queue[s->q_head];
    s->q_bytes -= m->len;
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_len--;
}

/* One frame from the client. */
static enum pump_result on_frame(struct session *s, const struct ws_frame *f)
{
    record_frame(s, "in", f);
    uint32_t v;
    struct ws_message m;
    enum ws_asm_result r = ws_assembler_add(&s->as, f, &v, &m);
    for (uint32_t bit = 1; bit && bit <= v; bit <<= 1)
        if (v & bit)
            violation(s, ws_violation_what(bit), ws_violation_detail(bit));
    switch (r) {
    case WS_ASM_CONTROL:
        if (f->opcode == WS_OP_CLOSE)
            return on_close(s, f, v);
        if (f->opcode == WS_OP_PING && !ws_ping_answerable(f)) {
            /* never a pong for an invalid ping: the connection is failed (7.1.7) */
            if (!s->sent_close && !s->broken)
                send_close(s, true, 1002, "", 0);
            return R_ERROR;
        }
        if (f->opcode == WS_OP_PING && !s->sent_close)
            return send_simple(s, WS_OP_PONG, f->payload, f->len);
        return R_OK;
    case WS_ASM_MESSAGE:
        record_message(s, &m);
        queue_push(s, m);
        return R_MESSAGE;
    case WS_ASM_TOO_BIG:
        violation(s, "message over the harness's limit",
                  "the harness assembles messages of up to 16 MiB (close 1009, RFC 6455 7.4.1)");
        if (!s->sent_close)
            send_close(s, true, 1009, "", 0);
        return R_ERROR;
    case WS_ASM_NONE:
        break;
    }
    return R_OK;
}

/* Read and handle frames until the deadline, a complete message (want_message), the
 * client's close, the end of the connection, or a stop. */
static enum pump_result pump(struct session *s, uint64_t deadline_us, bool want_message)
{
    if (want_message && s->q_len)
        return R_MESSAGE;
    for (;;) {
        struct ws_frame f;
        enum ws_parse_result pr;
        while ((pr = ws_parser_next(&s->parser, &f)) == WS_PARSE_FRAME) {
            enum pump_result r = on_frame(s, &f);
            free(f.payload);
            if (r == R_MESSAGE && !want_message)
                r = R_OK;
            if (r != R_OK)
                return r;
        }
        if (pr == WS_PARSE_TOO_BIG) {
            char detail[160];
            snprintf(detail, sizeof detail,
                     "a frame announces %llu bytes; the harness accepts up to %u (close 1009)",
                     (unsigned long long)s->parser.announced, WS_SESSION_MAX_PAYLOAD);
            violation(s, "frame over the harness's limit", detail);
            if (!s->sent_close && !s->broken)
                send_close(s, true, 1009, "", 0);
            return R_ERROR;
        }
        if (s->eof)
            return R_GONE;
        if (stopping(s))
            return R_STOP;
        uint64_t now = mono_us();
        if (now >= deadline_us)
            return R_TIMEOUT;
        uint64_t wait = (deadline_us - now + 999) / 1000;
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        int rc = poll(&pfd, 1, wait > 100 ? 100 : (int)wait);
        if (rc < 0 && errno != EINTR)
            return R_GONE;
        if (rc <= 0)
            continue;
        unsigned char buf[16384];
        ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0)
            ws_parser_feed(&s->parser, buf, (size_t)n);
        else if (n == 0 || (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
            s->eof = true; /* frames already buffered are still handled first */
    }
}

/* ------------------------------------------------------------------------------- steps */

static const char *STEP_NAMES[] = {
    [WS_SEND] = "send",       [WS_PING] = "ping", [WS_PONG] = "pong",   [WS_WAIT] = "wait",
    [WS_RECEIVE] = "receive", [WS_ECHO] = "echo", [WS_FRAME] = "frame", [WS_CLOSE] = "close",
    [WS_DROP] = "drop",       [WS_RAW] = "raw",
};

/* The session's end for a result that ends it. */
static const char *ended(struct session *s, enum pump_result r)
{
    switch (r) {
    case R_CLOSED:
        return s->client_first ? "closed_by_client" : "closed_by_server";
    case R_STOP:
        if (!s->sent_close && !s->broken) {
            size_t len;
            unsigned char *p = ws_close_payload(1001, "", 0, &len);
            struct ws_frame f = {.opcode = WS_OP_CLOSE, .fin = true};
            unsigned char *out = ws_encode(&f, p, len, 0, &len);
            /* one attempt: the server is going away, it does not wait for the client */
            if (send(s->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT) == (ssize_t)len) {
                f.payload = p;
                f.len = 2;
                record_frame(s, "out", &f);
                record_close(s, "out", p, 2);
                s->sent_close = true;
            }
            free(out);
            free(p);
        }
        return "server_stopped";
    case R_ERROR:
        return "protocol_error";
    case R_TIMEOUT:
        return "close_timeout";
    default:
        return "client_gone";
    }
}

/* Run one step; returns NULL to go on, or how the session ended. */
static const char *run_step(struct session *s, const struct ws_step *st)
{
    enum pump_result r = R_OK;
    switch (st->kind) {
    case WS_SEND: {
        unsigned parts = st->fragments > 1 ? st->fragments : 1;
        size_t len = st->payload.len, off = 0;
        for (unsigned k = 0; k < parts && r == R_OK; k++) {
            size_t piece = len / parts + (k < len % parts ? 1 : 0);
            struct ws_frame f = {.opcode = k            ? WS_OP_CONT
                                           : st->binary ? WS_OP_BINARY
                                                        : WS_OP_TEXT,
                                 .fin = k + 1 == parts};
            r = send_frame(s, &f, st->payload.data + off, piece, 0);
            off += piece;
        }
        break;
    }
    case WS_PING:
    case WS_PONG:
        r = send_simple(s, st->kind == WS_PING ? WS_OP_PING : WS_OP_PONG, st->payload.data,
                        st->payload.len);
        break;
    case WS_WAIT:
        r = pump(s, deadline_after(st->ms), false);
        if (r == R_TIMEOUT)
            r = R_OK;
        break;
    case WS_RECEIVE:
        r = pump(s, deadline_after(st->ms), true);
        if (r == R_MESSAGE) {
            struct ws_message m;
            queue_pop(s, &m);
            free(m.data);
            r = R_OK;
        } else if (r == R_TIMEOUT) {
            step_timeout(s, "a message");
            r = R_OK;
        }
        break;
    case WS_ECHO:
        for (unsigned done = 0; st->count == 0 || done < st->count; done++) {
            r = pump(s, deadline_after(st->ms), true);
            if (r != R_MESSAGE)
                break;
            struct ws_message m;
            queue_pop(s, &m);
            r = send_simple(s, m.opcode, m.data, m.len);
            free(m.data);
            if (r != R_OK)
                break;
        }
        if (r == R_TIMEOUT) {
            if (st->count)
                step_timeout(s, "a message to echo");
            r = R_OK;
        }
        break;
    case WS_FRAME: {
        struct ws_frame f = {.opcode = st->opcode,
                             .fin = st->fin,
                             .rsv1 = st->rsv1,
                             .rsv2 = st->rsv2,
                             .rsv3 = st->rsv3,
                             .masked = st->masked};
        if (st->has_length || st->n_split)
            r = send_frame_step(s, st, &f);
        else
            r = send_frame(s, &f, st->payload.data, st->payload.len, st->length_form);
        break;
    }
    case WS_RAW:
        r = write_chunks(s, &st->chunks);
        break;
    case WS_CLOSE:
        r = send_close(s, st->has_code, st->code, st->payload.data, st->payload.len);
        if (r == R_OK && st->go_on)
            break;
        if (r == R_OK)
            r = pump(s, deadline_after(st->ms), false);
        if (r == R_TIMEOUT)
            step_timeout(s, "the client's close frame");
        return ended(s, r);
    case WS_DROP:
        s->drop_end = st->drop_end;
        return "dropped";
    }
    return r == R_OK ? NULL : ended(s, r);
}

/* How the TCP connection ends (`end`, or a drop step's): a FIN is the caller's (it shuts
 * the socket down); a reset is SO_LINGER 0 and a disconnect, here; a hang waits until the
 * client goes (or the server stops), reading and discarding what it sends. */
static void end_connection(struct session *s, enum conn_end how)
{
    if (how == CONN_END_DEFAULT)
        return;
    static const char *const NAMES[] = {"", "fin", "rst", "hang"};
    emit(s, json_pack("{s:s, s:s}", "kind", "tcp_end", "how", NAMES[how]));
    if (how == CONN_END_RST) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        struct sockaddr sa = {.sa_family = AF_UNSPEC};
        connect(s->fd, &sa, sizeof sa); /* Linux: an RST now, the socket disconnected */
    } else if (how == CONN_END_HANG) {
        while (!s->eof && !stopping(s)) {
            struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) <= 0)
                continue;
            unsigned char buf[4096];
            ssize_t n = recv(s->fd, buf, sizeof buf, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK))
                s->eof = true;
        }
    }
}

const char *ws_session_run(const struct ws_spec *spec, int fd, const unsigned char *extra,
                           size_t extra_len, const struct ws_recorder *rec)
{
    struct session s = {.fd = fd, .rec = rec, .t0 = mono_us()};
    ws_parser_init(&s.parser, WS_SESSION_MAX_PAYLOAD);
    ws_assembler_init(&s.as, WS_SESSION_MAX_PAYLOAD);
    if (extra_len)
        ws_parser_feed(&s.parser, extra, extra_len);
    const char *end = NULL;
    for (size_t i = 0; i < spec->n_steps && !end; i++) {
        const struct ws_step *st = &spec->steps[i];
        s.step = i;
        emit(&s, json_pack("{s:s, s:I, s:s}", "kind", "step", "index", (json_int_t)i, "step",
                           (unsigned)st->kind < sizeof STEP_NAMES / sizeof STEP_NAMES[0]
                               ? STEP_NAMES[st->kind]
                               : "?"));
        /* first what the client sent meanwhile: a close ends the script before this step
         * acts, pings are answered, messages queued */
        for (int k = 0; k < 64 && read_ahead(&s); k++)
            ;
        enum pump_result r = pump(&s, 0, false);
        if (r != R_TIMEOUT)
            end = ended(&s, r);
        else
            end = run_step(&s, st);
    }
    if (!end) {
        /* the script is over: let the client close, else close ourselves */
        s.step = spec->n_steps;
        enum pump_result r = pump(&s, deadline_after(spec->linger_ms), false);
        if (r == R_TIMEOUT) {
            r = send_close(&s, true, 1000, "", 0);
            if (r == R_OK)
                r = pump(&s, deadline_after(FINAL_CLOSE_WAIT_MS), false);
        }
        end = ended(&s, r);
    }
    end_connection(&s, !strcmp(end, "dropped") && s.drop_end ? s.drop_end : spec->end);
    while (s.q_len)
        queue_drop_oldest(&s);
    free(s.queue);
    ws_assembler_free(&s.as);
    ws_parser_free(&s.parser);
    return end;
}
