/* ws_session — see ws_session.h. */
#include "ws_session.h"

#include <errno.h>
#include <nettle/base64.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "timer.h"
#include "ws_frame.h"

#define MAX_PAYLOAD (16u * 1024u * 1024u)
#define RECORD_LIMIT (64u * 1024u)

struct session {
    int fd;
    const struct ws_recorder *rec;
    uint64_t t0;
    struct ws_parser parser;
    struct ws_stream stream;
    /* the message being assembled */
    unsigned char *msg;
    size_t msg_len;
    int msg_opcode;
    bool sent_close;
    bool got_close;
    int close_code; /* the client's, -1 if none */
    /* the last complete message (for echo) */
    unsigned char *last;
    size_t last_len;
    int last_opcode;
};

enum pump_result { P_TIMEOUT, P_MESSAGE, P_CLOSED, P_GONE, P_STOP, P_ERROR };

static double now_ms(const struct session *s)
{
    return (double)(mono_us() - s->t0) / 1000.0;
}

static void emit(struct session *s, json_t *ev)
{
    json_object_set_new(ev, "t", json_real((double)(long long)(now_ms(s) * 1000) / 1000.0));
    s->rec->event(s->rec->ctx, ev);
}

static void put_payload(json_t *ev, const char *text_key, const char *b64_key,
                        const unsigned char *data, size_t len)
{
    size_t n = len > RECORD_LIMIT ? RECORD_LIMIT : len;
    json_t *t = json_stringn((const char *)data, n);
    if (t) {
        json_object_set_new(ev, text_key, t);
    } else {
        char *b = malloc(BASE64_ENCODE_RAW_LENGTH(n) + 1);
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
    put_payload(ev, "payload", "payload_base64", f->payload, f->len);
    emit(s, ev);
}

static bool send_all(struct session *s, const unsigned char *data, size_t len)
{
    while (len) {
        ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Send one frame (as described) and record it. */
static bool send_frame(struct session *s, struct ws_frame *f, const void *payload, size_t len,
                       int length_form)
{
    if (f->masked && !f->mask[0] && !f->mask[1] && !f->mask[2] && !f->mask[3])
        memcpy(f->mask, "\x37\xfa\x21\x3d", 4);
    size_t out_len;
    unsigned char *out = ws_encode(f, payload, len, length_form, &out_len);
    bool ok = send_all(s, out, out_len);
    free(out);
    struct ws_frame rec = *f;
    rec.payload = (unsigned char *)payload;
    rec.len = len;
    record_frame(s, "out", &rec);
    if (f->opcode == WS_OP_CLOSE)
        s->sent_close = true;
    return ok;
}

static bool send_simple(struct session *s, int opcode, const void *payload, size_t len)
{
    struct ws_frame f = {.opcode = opcode, .fin = true};
    return send_frame(s, &f, payload, len, 0);
}

static bool send_close(struct session *s, bool has_code, int code, const void *reason,
                       size_t reason_len)
{
    json_t *ev = json_pack("{s:s, s:s}", "kind", "close", "dir", "out");
    json_object_set_new(ev, "code", has_code ? json_integer(code) : json_null());
    put_payload(ev, "reason", "reason_base64", reason, reason_len);
    emit(s, ev);
    if (!has_code)
        return send_simple(s, WS_OP_CLOSE, "", 0);
    size_t len;
    unsigned char *p = ws_close_payload(code, reason, reason_len, &len);
    bool ok = send_simple(s, WS_OP_CLOSE, p, len);
    free(p);
    return ok;
}

static void violation(struct session *s, const char *what)
{
    emit(s, json_pack("{s:s, s:s}", "kind", "violation", "what", what));
}

/* Handle one frame from the client. */
static enum pump_result on_frame(struct session *s, struct ws_frame *f)
{
    record_frame(s, "in", f);
    const char *why[8];
    size_t n = ws_check_frame(&s->stream, f, why, 8);
    for (size_t i = 0; i < n; i++)
        violation(s, why[i]);
    switch (f->opcode) {
    case WS_OP_PING:
        send_simple(s, WS_OP_PONG, f->payload, f->len);
        return P_TIMEOUT;
    case WS_OP_PONG:
        return P_TIMEOUT;
    case WS_OP_CLOSE: {
        s->got_close = true;
        int code = f->len >= 2 ? (f->payload[0] << 8) | f->payload[1] : -1;
        s->close_code = code;
        json_t *ev = json_pack("{s:s, s:s}", "kind", "close", "dir", "in");
        json_object_set_new(ev, "code", code >= 0 ? json_integer(code) : json_null());
        if (f->len >= 2)
            put_payload(ev, "reason", "reason_base64", f->payload + 2, f->len - 2);
        emit(s, ev);
        if (!s->sent_close) {
            /* echo the code (RFC 6455 5.5.1); a bad close is answered with 1002 */
            if (n)
                send_close(s, true, 1002, "", 0);
            else
                send_close(s, code >= 0, code, "", 0);
        }
        return P_CLOSED;
    }
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        free(s->msg);
        s->msg = NULL;
        s->msg_len = 0;
        s->msg_opcode = f->opcode;
        /* fall through */
    case WS_OP_CONT: {
        s->msg = realloc(s->msg, s->msg_len + f->len + 1);
        memcpy(s->msg + s->msg_len, f->payload, f->len);
        s->msg_len += f->len;
        if (!f->fin)
            return P_TIMEOUT;
        json_t *ev = json_pack("{s:s, s:s, s:s, s:I}", "kind", "message", "dir", "in", "type",
                               s->msg_opcode == WS_OP_TEXT ? "text" : "binary", "length",
                               (json_int_t)s->msg_len);
        if (s->msg_opcode == WS_OP_TEXT && !ws_utf8_valid(s->msg, s->msg_len)) {
            put_payload(ev, "data", "data_base64", s->msg, s->msg_len);
            emit(s, ev);
            violation(s, "text message is not UTF-8 (RFC 6455 8.1)");
        } else if (s->msg_opcode == WS_OP_TEXT) {
            put_payload(ev, "data", "data_base64", s->msg, s->msg_len);
            emit(s, ev);
        } else {
            size_t k = s->msg_len > RECORD_LIMIT ? RECORD_LIMIT : s->msg_len;
            char *b = malloc(BASE64_ENCODE_RAW_LENGTH(k) + 1);
            base64_encode_raw(b, k, s->msg);
            b[BASE64_ENCODE_RAW_LENGTH(k)] = 0;
            json_object_set_new(ev, "data_base64", json_string(b));
            free(b);
            emit(s, ev);
        }
        free(s->last);
        s->last = s->msg;
        s->last_len = s->msg_len;
        s->last_opcode = s->msg_opcode;
        s->msg = NULL;
        s->msg_len = 0;
        return P_MESSAGE;
    }
    default:
        return P_TIMEOUT; /* reserved opcodes: recorded as a violation above */
    }
}

/* Read and handle frames until the deadline, a complete message (want_message), a close,
 * or the end of the connection. */
static enum pump_result pump(struct session *s, uint64_t deadline_us, bool want_message)
{
    for (;;) {
        struct ws_frame f;
        enum ws_parse_result pr;
        while ((pr = ws_parser_next(&s->parser, &f)) == WS_PARSE_FRAME) {
            enum pump_result r = on_frame(s, &f);
            free(f.payload);
            if (r == P_CLOSED || (r == P_MESSAGE && want_message))
                return r;
        }
        if (pr == WS_PARSE_TOO_BIG) {
            violation(s, "frame larger than the harness accepts (16 MiB)");
            return P_ERROR;
        }
        if (s->rec->stopping && s->rec->stopping(s->rec->ctx))
            return P_STOP;
        uint64_t now = mono_us();
        if (now >= deadline_us)
            return P_TIMEOUT;
        uint64_t wait = (deadline_us - now) / 1000 + 1;
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        int rc = poll(&pfd, 1, wait > 100 ? 100 : (int)wait);
        if (rc < 0 && errno != EINTR)
            return P_GONE;
        if (rc <= 0)
            continue;
        unsigned char buf[16384];
        ssize_t n = recv(s->fd, buf, sizeof buf, 0);
        if (n == 0)
            return P_GONE;
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return P_GONE;
        }
        ws_parser_feed(&s->parser, buf, (size_t)n);
    }
}

static const char *ended(struct session *s, enum pump_result r)
{
    switch (r) {
    case P_CLOSED:
        return s->sent_close && !s->got_close ? "closed_by_server" : "closed_by_client";
    case P_GONE:
        return "client_gone";
    case P_STOP:
        if (!s->sent_close)
            send_close(s, true, 1001, "", 0);
        return "server_stopped";
    case P_ERROR:
        return "protocol_error";
    default:
        return "close_timeout";
    }
}

static void step_event(struct session *s, size_t i, const char *what)
{
    emit(s,
         json_pack("{s:s, s:I, s:s}", "kind", "timeout", "step", (json_int_t)i, "waiting", what));
}

const char *ws_session_run(const struct ws_spec *spec, int fd, const unsigned char *extra,
                           size_t extra_len, const struct ws_recorder *rec)
{
    struct session s = {.fd = fd, .rec = rec, .t0 = mono_us(), .close_code = -1};
    ws_parser_init(&s.parser, MAX_PAYLOAD);
    if (extra_len)
        ws_parser_feed(&s.parser, extra, extra_len);
    const char *end = NULL;
    for (size_t i = 0; i < spec->n_steps && !end; i++) {
        const struct ws_step *st = &spec->steps[i];
        enum pump_result r = P_TIMEOUT;
        switch (st->kind) {
        case WS_SEND: {
            unsigned parts = st->fragments > 1 ? st->fragments : 1;
            size_t len = st->payload.len, off = 0;
            for (unsigned k = 0; k < parts; k++) {
                size_t piece = len / parts + (k < len % parts ? 1 : 0);
                struct ws_frame f = {.opcode =
                                         k ? WS_OP_CONT : (st->binary ? WS_OP_BINARY : WS_OP_TEXT),
                                     .fin = k + 1 == parts};
                if (!send_frame(&s, &f, st->payload.data + off, piece, 0))
                    r = P_GONE;
                off += piece;
            }
            break;
        }
        case WS_PING:
        case WS_PONG:
            if (!send_simple(&s, st->kind == WS_PING ? WS_OP_PING : WS_OP_PONG, st->payload.data,
                             st->payload.len))
                r = P_GONE;
            break;
        case WS_WAIT:
            r = pump(&s, mono_us() + st->ms * 1000u, false);
            break;
        case WS_RECEIVE:
            r = pump(&s, mono_us() + st->ms * 1000u, true);
            if (r == P_TIMEOUT)
                step_event(&s, i, "a message");
            break;
        case WS_ECHO: {
            unsigned done = 0;
            while (st->count == 0 || done < st->count) {
                r = pump(&s, mono_us() + st->ms * 1000u, true);
                if (r != P_MESSAGE)
                    break;
                send_simple(&s, s.last_opcode, s.last, s.last_len);
                done++;
            }
            if (r == P_TIMEOUT && st->count)
                step_event(&s, i, "a message to echo");
            if (r == P_MESSAGE)
                r = P_TIMEOUT;
            break;
        }
        case WS_FRAME: {
            struct ws_frame f = {.opcode = st->opcode,
                                 .fin = st->fin,
                                 .rsv1 = st->rsv1,
                                 .rsv2 = st->rsv2,
                                 .rsv3 = st->rsv3,
                                 .masked = st->masked};
            if (!send_frame(&s, &f, st->payload.data, st->payload.len, st->length_form))
                r = P_GONE;
            break;
        }
        case WS_CLOSE:
            send_close(&s, st->has_code, st->code, st->payload.data, st->payload.len);
            r = pump(&s, mono_us() + st->ms * 1000u, false);
            end = r == P_CLOSED ? "closed_by_server" : ended(&s, r);
            if (r == P_TIMEOUT)
                step_event(&s, i, "the client's close frame");
            break;
        case WS_DROP:
            end = "dropped";
            break;
        }
        if (!end && r != P_TIMEOUT && r != P_MESSAGE)
            end = ended(&s, r);
    }
    if (!end) {
        /* the script is over: let the client close, else close ourselves */
        enum pump_result r = pump(&s, mono_us() + spec->linger_ms * 1000u, false);
        if (r == P_TIMEOUT) {
            send_close(&s, true, 1000, "", 0);
            r = pump(&s, mono_us() + 2000000u, false);
            end = r == P_CLOSED ? "closed_by_server" : ended(&s, r);
        } else {
            end = ended(&s, r);
        }
    }
    free(s.msg);
    free(s.last);
    ws_parser_free(&s.parser);
    return end;
}
