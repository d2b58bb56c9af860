/* deliver — sending a planned response; see deliver.h. */
#include "deliver.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include "xalloc.h"

#define PROBE_EVERY_US 200000u
#define RESPONSE_BLOCK (16 * 1024) /* the most one body callback writes */
#define RESPONSE_BLOCK_STREAM 64   /* a body of unknown size to HTTP/1.0 (response_of) */

/* The connection's TLS session, or NULL on a plain port. Bytes written by hand go through
 * it (docs/tls.md): libmicrohttpd does not touch it while the connection is suspended. */
static gnutls_session_t conn_tls(struct exchange *ex)
{
    if (!ex->req.tls)
        return NULL;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(ex->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return ci ? (gnutls_session_t)ci->tls_session : NULL;
}

/* Write up to len bytes by hand, as send() would (MSG_DONTWAIT: -1 and errno EAGAIN when
 * the socket is full). Over TLS a record is sent; after GNUTLS_E_AGAIN GnuTLS wants the
 * same length again, which ex->tls_again keeps. */
static ssize_t conn_write(struct exchange *ex, int fd, const void *buf, size_t len)
{
    gnutls_session_t tls = conn_tls(ex);
    if (!tls)
        return send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (ex->tls_again && ex->tls_again <= len)
        len = ex->tls_again;
    ssize_t n = gnutls_record_send(tls, buf, len);
    if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
        ex->tls_again = len;
        errno = n == GNUTLS_E_AGAIN ? EAGAIN : EINTR;
        return -1;
    }
    ex->tls_again = 0;
    if (n < 0) {
        errno = EPIPE;
        return -1;
    }
    return n;
}

/* The end of a response written by hand: over TLS a close_notify first (a truncation is
 * a close without it), then the FIN. */
static void conn_finish(struct exchange *ex, int fd)
{
    gnutls_session_t tls = conn_tls(ex);
    if (tls)
        gnutls_bye(tls, GNUTLS_SHUT_WR);
    shutdown(fd, SHUT_WR);
}

/* Is the peer gone? 1: closed, -1: reset or failed, 0: still there. */
static int conn_gone(struct exchange *ex)
{
    int fd = ex_fd(ex);
    if (fd < 0)
        return 1;
    gnutls_session_t tls = conn_tls(ex);
    if (tls) {
        /* a close_notify (0), an error, or nothing yet (AGAIN); data is consumed (a
         * hanging response reads nothing more anyway) */
        char c;
        ssize_t n = gnutls_record_recv(tls, &c, 1);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED || n > 0)
            return 0;
        return n == 0 ? 1 : -1;
    }
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return -1;
    return 0;
}

/* A TCP reset now: SO_LINGER 0, then disconnect (Linux sends RST for connect(AF_UNSPEC) on
 * an established socket). libmicrohttpd closes the dead socket afterwards. */
static void reset_connection(struct exchange *ex)
{
    int fd = ex_fd(ex);
    if (fd < 0)
        return;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    connect(fd, &sa, sizeof sa);
}

static void note_status(struct exchange *ex, int status)
{
    ex_entry_status(ex, status);
}

/* ---------------------------------------------------------------- hanging */

static void probe(void *arg);

static void start_probe(struct exchange *ex)
{
    ex_call_at(ex, mono_us() + PROBE_EVERY_US, probe);
}

/* Is the peer of a hanging response still there? Runs on the timer thread. */
static void probe(void *arg)
{
    struct exchange *ex = arg;
    pthread_mutex_lock(&ex->lock);
    ex->timer_id = 0;
    bool done = ex->done;
    pthread_mutex_unlock(&ex->lock);
    if (done) {
        ex_unref(ex);
        return;
    }
    int gone = conn_gone(ex);
    if (gone) {
        ex->end = gone > 0 ? EX_END_CLIENT_CLOSED : EX_END_RESET;
        ex_resume(ex);
        ex_unref(ex);
        return;
    }
    if (ex_stopping(ex)) {
        ex_resume(ex);
        ex_unref(ex);
        return;
    }
    start_probe(ex);
    ex_unref(ex);
}

/* ---------------------------------------------------------------- faults and pacing */

/* Carry out a fault: a reset, a hang, or a close (FIN) before the body is done. manual_fd:
 * the socket when the bytes are written by hand (the connection is then already suspended,
 * and a close is a shutdown of our side), else -1. True if the connection stays open (a
 * hang), false if it is to be closed now. */
static bool carry_out_fault(struct exchange *ex, enum fault_action action, int manual_fd)
{
    switch (action) {
    case FAULT_RESET:
        ex->end = EX_END_FAULT_RESET;
        reset_connection(ex);
        return false;
    case FAULT_HANG:
        /* suspended forever: probe the peer until it goes */
        ex->state = EX_HANGING;
        ex->probing = true;
        if (manual_fd < 0)
            ex_suspend(ex);
        start_probe(ex);
        return true;
    case FAULT_CLOSE:
    default:
        ex->end = EX_END_FAULT_CLOSE;
        if (manual_fd >= 0)
            shutdown(manual_fd, SHUT_WR);
        return false;
    }
}

/* How much of a body may have gone out by now. */
struct pace {
    size_t limit;     /* where the fault cuts the body (else its length) */
    size_t allowed;   /* what the trickle allows by now (<= limit) */
    uint64_t next_us; /* trickling: when the next tick allows more */
};

/* When the response was due to start: the request's arrival (put back to when it reached
 * the kernel, for a response with a schedule: arrival.h) and its delay. A body's schedule
 * counts from here, not from when the headers went, so that a backlog in this server does
 * not slide it; never later than when the headers went. */
static uint64_t scheduled_start(const struct exchange *ex)
{
    uint64_t at = ex->arrived_us + (ex->resp ? ex->resp->delay_ms * 1000u : 0);
    return ex->headers_us && ex->headers_us < at ? ex->headers_us : at;
}

/* total bytes, of which the first `head` go at once; the trickle counts from start_us. */
static struct pace pace_at(const struct plan *p, size_t total, size_t head, uint64_t start_us,
                           uint64_t now)
{
    struct pace pc = {.limit = total};
    if (p->fault != FAULT_NONE && p->fault_has_after && p->fault_after < pc.limit)
        pc.limit = p->fault_after;
    pc.allowed = pc.limit;
    if (p->raw && p->paced) { /* `chunks`: each piece when its pause has passed */
        uint64_t due = start_us;
        size_t end = 0;
        for (size_t i = 0; i < p->n_pieces; i++) {
            due += p->pieces[i].after_ms * 1000u;
            if (due > now) {
                pc.next_us = due;
                break;
            }
            end += p->pieces[i].len;
        }
        if (end < pc.allowed)
            pc.allowed = end;
        return pc;
    }
    if (p->trickle_bytes) {
        uint64_t every = p->trickle_every_ms ? p->trickle_every_ms * 1000u : 1;
        uint64_t ticks = 1 + (now - start_us) / every;
        uint64_t a = head + ticks * p->trickle_bytes;
        if (a < pc.allowed)
            pc.allowed = (size_t)a;
        pc.next_us = start_us + ticks * every;
    }
    return pc;
}

/* ---------------------------------------------------------------- the content reader */

/* After a stream's last piece: the terminating chunk, or a hang or reset. */
static ssize_t stream_end(struct exchange *ex)
{
    if (ex->plan.then == END_CLOSE)
        return MHD_CONTENT_READER_END_OF_STREAM;
    enum fault_action a = ex->plan.then == END_RESET ? FAULT_RESET : FAULT_HANG;
    return carry_out_fault(ex, a, -1) ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void count_sent(struct exchange *ex, size_t n, uint64_t now)
{
    if (ex->sent == 0 && n > 0)
        ex_phase(ex, JOURNAL_BODY_FIRST_BYTE, now);
    ex->sent += n;
}

/* ---------------------------------------------------------------- a stream's pieces by hand
 *
 * Between the pieces of a paced stream (SSE events, `chunks` with pauses) the connection is
 * suspended. Resuming it for every piece costs libmicrohttpd a wake-up, two epoll_ctl calls
 * and a walk over every suspended connection (0.9.75), per piece: with 10,000 streams that
 * walk alone was a fifth of the server's time. Instead, while the connection stays
 * suspended (libmicrohttpd touches neither the socket nor its state then), the timer thread
 * writes each due piece itself, framed as libmicrohttpd would frame it (a chunk on HTTP/1.1,
 * the bare bytes on HTTP/1.0), and resumes the connection only at the end, where the reader
 * says what follows the last piece. The content reader is only called with libmicrohttpd's
 * write buffer empty, so nothing of its own can be waiting to interleave. Plain ports only:
 * over TLS the pieces go through the reader as before. A piece the socket does not take
 * whole waits in ex->out and goes first on the next tick. */

#define DIRECT_RETRY_US 5000u
#define DIRECT_IOV 64 /* pieces in one write, with the chunk's head and tail */

static bool direct_possible(struct exchange *ex)
{
    return !ex->req.tls && ex->version &&
           (!strcmp(ex->version, "HTTP/1.1") || !strcmp(ex->version, "HTTP/1.0"));
}

static void direct_tick(void *arg);

static void direct_start(struct exchange *ex)
{
    if (!ex->direct) {
        int one = 1, fd = ex_fd(ex);
        if (fd >= 0) /* each piece goes out as it is written, as libmicrohttpd pushes it */
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ex->direct = true;
    }
    ex_suspend(ex);
    ex_call_at(ex, ex->piece_due_us, direct_tick);
}

/* Write out[out_off..out_len). 1: all of it, 0: the socket is full, -1: the peer is gone. */
static int direct_flush(struct exchange *ex, int fd)
{
    while (ex->out_off < ex->out_len) {
        ssize_t n =
            send(fd, ex->out + ex->out_off, ex->out_len - ex->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
        }
        ex->out_off += (size_t)n;
    }
    free(ex->out);
    ex->out = NULL;
    ex->out_len = ex->out_off = 0;
    return 1;
}

/* Write every piece due by now (under ex->lock). 1: more later (*next_us), 0: the stream's
 * pieces are all out, -1: the peer is gone. */
static int direct_write(struct exchange *ex, uint64_t now, uint64_t *next_us)
{
    struct plan *p = &ex->plan;
    int fd = ex_fd(ex);
    if (fd < 0)
        return -1;
    bool chunked = !strcmp(ex->version, "HTTP/1.1");
    for (;;) {
        int f = direct_flush(ex, fd);
        if (f < 0)
            return -1;
        if (f == 0) {
            *next_us = now + DIRECT_RETRY_US;
            return 1;
        }
        if (ex->piece >= p->n_pieces)
            return 0;
        if (ex->piece_due_us > now) {
            *next_us = ex->piece_due_us;
            return 1;
        }
        /* the due piece in one chunk (one write); with `together`, every due piece */
        struct iovec iov[DIRECT_IOV];
        size_t niov = 1, len = 0;
        while (ex->piece < p->n_pieces && ex->piece_due_us <= now && niov < DIRECT_IOV - 1) {
            const struct piece *pc = &p->pieces[ex->piece];
            if (pc->len > ex->piece_off) {
                iov[niov].iov_base = pc->data + ex->piece_off;
                iov[niov++].iov_len = pc->len - ex->piece_off;
                len += pc->len - ex->piece_off;
            }
            ex->piece++;
            ex->piece_off = 0;
            if (ex->piece < p->n_pieces)
                ex->piece_due_us += p->pieces[ex->piece].after_ms * 1000u;
            if (!p->together && len)
                break; /* a stream: one chunk per piece */
        }
        if (!len) /* only empty pieces: nothing to send */
            continue;
        char head[24];
        int hl = chunked ? snprintf(head, sizeof head, "%zX\r\n", len) : 0;
        iov[0] = (struct iovec){head, (size_t)hl};
        iov[niov++] = (struct iovec){"\r\n", chunked ? 2 : 0};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = niov};
        size_t total = (size_t)hl + len + (chunked ? 2 : 0);
        ssize_t n;
        do
            n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        size_t done = n < 0 ? 0 : (size_t)n;
        ex->sent += len;
        if (done < total) { /* the rest waits in ex->out */
            ex->out = xmalloc(total - done);
            ex->out_len = total - done;
            ex->out_off = 0;
            for (size_t i = 0, at = 0, o = 0; i < niov; at += iov[i].iov_len, i++)
                for (size_t k = 0; k < iov[i].iov_len; k++)
                    if (at + k >= done)
                        ex->out[o++] = ((const unsigned char *)iov[i].iov_base)[k];
        }
    }
}

/* On the timer thread: the next due piece(s) of a suspended stream. */
static void direct_tick(void *arg)
{
    struct exchange *ex = arg;
    uint64_t now = mono_us(), next = 0;
    pthread_mutex_lock(&ex->lock);
    ex->timer_id = 0;
    /* the lock keeps a resume (a stop, the end) from letting libmicrohttpd in meanwhile */
    bool live = ex->suspended && !ex->done && !ex_stopping(ex);
    bool first = ex->sent == 0;
    int r = live ? direct_write(ex, now, &next) : 0;
    bool started = first && ex->sent > 0;
    pthread_mutex_unlock(&ex->lock);
    if (started)
        ex_phase(ex, JOURNAL_BODY_FIRST_BYTE, now);
    if (live && r > 0)
        ex_call_at(ex, next, direct_tick);
    else if (live && r == 0)
        /* the last piece is out: the reader ends the stream, once the pieces due now on
         * other streams are (10,000 streams ending at once: libmicrohttpd's work closing
         * them made the last pieces of the others up to 100 ms late) */
        ex_resume_when_idle(ex);
    else {
        if (r < 0 && !ex->end)
            ex->end = EX_END_CLIENT_CLOSED;
        ex_resume(ex); /* the reader ends the stream (or the connection) */
    }
    ex_unref(ex);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct exchange *ex = cls;
    struct plan *p = &ex->plan;
    if (ex->state == EX_HANGING) {
        if (ex->end || ex_stopping(ex)) {
            if (!ex->end)
                ex->end = EX_END_SERVER_STOPPED;
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        ex_suspend(ex); /* a spurious resume: hang on */
        return 0;
    }
    if (ex_stopping(ex)) {
        ex->end = EX_END_SERVER_STOPPED;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (ex->end == EX_END_CLIENT_CLOSED) /* found so while writing by hand */
        return MHD_CONTENT_READER_END_WITH_ERROR;
    uint64_t now = mono_us();
    if (!ex->body_start_us) {
        /* body_delay is a pause after the headers, kept whole; else the pieces count from
         * when the response was due */
        uint64_t due =
            p->body_delay_ms ? ex->headers_us + p->body_delay_ms * 1000u : scheduled_start(ex);
        if (due > now) {
            ex_sleep_until(ex, due);
            return 0;
        }
        ex->body_start_us = due;
        ex->piece_due_us = due + (p->n_pieces ? p->pieces[0].after_ms * 1000u : 0);
    }
    if (p->paced) {
        if (ex->piece >= p->n_pieces)
            return stream_end(ex);
        if (now < ex->piece_due_us) {
            if (direct_possible(ex))
                direct_start(ex);
            else
                ex_sleep_until(ex, ex->piece_due_us);
            return 0;
        }
        /* the piece due now; with `together` (SSE), every piece due by now in one chunk */
        size_t n = 0;
        while (ex->piece < p->n_pieces && ex->piece_due_us <= now && n < max) {
            const struct piece *pc = &p->pieces[ex->piece];
            size_t k = pc->len - ex->piece_off;
            if (k > max - n)
                k = max - n;
            memcpy(buf + n, pc->data + ex->piece_off, k);
            n += k;
            ex->piece_off += k;
            if (ex->piece_off < pc->len)
                break; /* the buffer is full */
            ex->piece++;
            ex->piece_off = 0;
            if (ex->piece < p->n_pieces)
                ex->piece_due_us += p->pieces[ex->piece].after_ms * 1000u;
            if (!p->together)
                break; /* a stream: one chunk per piece */
        }
        count_sent(ex, n, now);
        if (n == 0) /* only empty pieces: nothing to send, go on */
            return reader(cls, pos, buf, max);
        return (ssize_t)n;
    }
    struct pace pc = pace_at(p, p->body_len, 0, ex->body_start_us, now);
    if (pos >= pc.limit) {
        if (pos >= p->body_len)
            return MHD_CONTENT_READER_END_OF_STREAM;
        return carry_out_fault(ex, p->fault, -1) ? 0 : MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (pos >= pc.allowed) {
        ex_sleep_until(ex, pc.next_us);
        return 0;
    }
    size_t n = pc.allowed - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, p->body + pos, n);
    count_sent(ex, n, now);
    return (ssize_t)n;
}

/* A response queued whole (headers and a body of len bytes): its body goes with the headers,
 * in the same write, unless there is none to send (HEAD, 1xx, 204, 304). */
static void queued_whole(struct exchange *ex, int status, size_t len)
{
    bool body = strcmp(ex->req.method, "HEAD") && status >= 200 && status != 204 && status != 304;
    ex->sent = body ? len : 0;
    ex_entry_queued(ex, status, ex->headers_us, ex->sent > 0);
}

/* A body that goes out whole, at once: no chunks, pacing, body delay or fault, and no more
 * than one block -- what the content reader would hand over in one call anyway, so that
 * bytes_sent keeps following a large body as the socket takes it. */
static bool sent_whole(const struct plan *p)
{
    return !p->chunked && !p->paced && !p->trickle_bytes && !p->body_delay_ms &&
           p->fault == FAULT_NONE && p->body_len <= RESPONSE_BLOCK;
}

/* The response object of a plan. A body sent whole is a buffer response over the plan's
 * bytes (borrowed from the scenario, or the plan's own: both outlive the request), which
 * libmicrohttpd sends with the headers in one write when it fits its write buffer; a
 * callback response would cost a second send. Anything paced or cut reads through reader().
 * *whole says which. */
static struct MHD_Response *response_of(struct exchange *ex, bool *whole)
{
    struct plan *p = &ex->plan;
    *whole = sent_whole(p);
    if (*whole)
        return MHD_create_response_from_buffer(p->body_len, p->body ? (void *)p->body : "",
                                               MHD_RESPMEM_PERSISTENT);
    uint64_t size = (p->chunked || p->paced) ? MHD_SIZE_UNKNOWN : p->body_len;
    /* MHD allocates (and zeroes) a buffer of block_size per response. A body of unknown
     * size goes chunked to an HTTP/1.1 client (libmicrohttpd 0.9.75 always chunks it then)
     * and is read straight into the connection's write buffer, so the block is unused: one
     * byte, the least MHD takes (a held stream keeps its response as long as it lasts). To
     * HTTP/1.0 it is read through the block: a small one. A paced body of known size
     * (trickle, fault, body delay) needs no more than its own length, up to 16 KiB. */
    size_t block = RESPONSE_BLOCK;
    if (size == MHD_SIZE_UNKNOWN)
        block = ex->version && !strcmp(ex->version, "HTTP/1.1") ? 1 : RESPONSE_BLOCK_STREAM;
    else if (p->body_len < block)
        block = p->body_len > 64 ? p->body_len : 64;
    return MHD_create_response_from_callback(size, block, reader, ex, NULL);
}

static enum MHD_Result queue_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    bool whole;
    struct MHD_Response *resp = response_of(ex, &whole);
    if (!resp)
        return MHD_NO;
    json_t *warnings = NULL;
    for (size_t i = 0; i < p->n_headers; i++) {
        if (MHD_add_response_header(resp, p->headers[i].name, p->headers[i].value) != MHD_YES) {
            if (!warnings)
                warnings = json_array();
            json_array_append_new(
                warnings,
                json_sprintf("libmicrohttpd refused the header %s: use raw", p->headers[i].name));
        }
    }
    if (warnings)
        ex_entry_extra(ex, JOURNAL_WARNINGS, warnings);
    plan_drop_headers(p); /* the response holds copies: a held stream keeps only those */
    ex->headers_us = mono_us();
    ex->state = EX_QUEUED;
    enum MHD_Result ok = MHD_queue_response(ex->conn, (unsigned)p->status, resp);
    MHD_destroy_response(resp);
    if (whole)
        queued_whole(ex, p->status, p->body_len);
    else
        ex_entry_queued(ex, p->status, ex->headers_us, false);
    return ok;
}

/* ---------------------------------------------------------------- shared responses */

/* What reply holds when the response object could not be built: never try again. */
static char NOT_SHARED;

bool deliver_is_shared(const struct response *r)
{
    size_t len;
    if (r->kind != RESP_PLAIN || r->reason || r->end != CONN_END_DEFAULT ||
        r->transfer == TRANSFER_CHUNKED || r->body_delay_ms || r->trickle_bytes ||
        r->fault != FAULT_NONE || r->reply == &NOT_SHARED)
        return false;
    if (r->body_kind == BODY_TEXT && !tmpl_constant_text(r->body_tmpl, &len))
        return false;
    if ((r->body_kind == BODY_TEXT && len > RESPONSE_BLOCK) ||
        (r->body_kind == BODY_BYTES && r->body.len > RESPONSE_BLOCK))
        return false; /* as sent_whole(): a large body is read out as the socket drains */
    for (size_t i = 0; i < r->headers.n; i++)
        if (!tmpl_constant_text(r->headers.items[i].value, &len))
            return false;
    return true;
}

static void reply_free(void *reply)
{
    if (reply != &NOT_SHARED)
        MHD_destroy_response(reply);
}

/* The response object of a shared response, as plan_base() and plan_content() would plan
 * it: its headers in order, then the preset's Content-Type unless one is given. NULL if
 * libmicrohttpd refuses a header. */
static struct MHD_Response *shared_build(const struct response *r)
{
    size_t len = 0;
    const void *body = "";
    if (r->body_kind == BODY_TEXT)
        body = tmpl_constant_text(r->body_tmpl, &len);
    else if (r->body_kind == BODY_BYTES && r->body.data) {
        body = r->body.data;
        len = r->body.len;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return NULL;
    bool has_type = false;
    for (size_t i = 0; i < r->headers.n; i++) {
        const char *name = r->headers.items[i].name;
        has_type |= !strcasecmp(name, "Content-Type");
        if (MHD_add_response_header(
                resp, name, tmpl_constant_text(r->headers.items[i].value, &len)) != MHD_YES) {
            MHD_destroy_response(resp);
            return NULL;
        }
    }
    if (r->kind == RESP_PLAIN && r->preset_type && !has_type)
        MHD_add_response_header(resp, "Content-Type", r->preset_type);
    return resp;
}

bool deliver_shared(struct exchange *ex, const struct response *r, enum MHD_Result *result)
{
    void **slot = &((struct response *)r)->reply; /* the response's one cache */
    struct MHD_Response *resp = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (!resp) {
        /* two first requests at once may both build: one is kept, the other destroyed */
        struct MHD_Response *mine = shared_build(r);
        void *want = mine ? (void *)mine : (void *)&NOT_SHARED;
        ((struct response *)r)->reply_free = reply_free;
        void *seen = NULL;
        if (__atomic_compare_exchange_n(slot, &seen, want, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            resp = mine;
        else {
            if (mine)
                MHD_destroy_response(mine);
            resp = seen;
        }
    }
    if (!resp || (void *)resp == &NOT_SHARED)
        return false;
    int status = r->status ? r->status : 200;
    ex->headers_us = mono_us();
    ex->state = EX_QUEUED;
    *result = MHD_queue_response(ex->conn, (unsigned)status, resp);
    size_t len = 0;
    if (r->body_kind == BODY_TEXT)
        tmpl_constant_text(r->body_tmpl, &len);
    else if (r->body_kind == BODY_BYTES)
        len = r->body.len;
    queued_whole(ex, status, len);
    return true;
}

/* ---------------------------------------------------------------- written by hand */

/* The bytes of a response written by hand (a custom reason phrase). */
static void serialize_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    size_t cap = 256 + p->body_len;
    for (size_t i = 0; i < p->n_headers; i++)
        cap += strlen(p->headers[i].name) + strlen(p->headers[i].value) + 4;
    char *out = xmalloc(cap);
    size_t n = (size_t)snprintf(out, cap, "HTTP/1.1 %d %s\r\n", p->status,
                                p->reason ? p->reason : scenario_reason_phrase(p->status));
    for (size_t i = 0; i < p->n_headers; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s: %s\r\n", p->headers[i].name,
                              p->headers[i].value);
    if (!plan_has_header(p, "Content-Length"))
        n += (size_t)snprintf(out + n, cap - n, "Content-Length: %zu\r\n", p->body_len);
    n += (size_t)snprintf(out + n, cap - n, "Connection: close\r\n\r\n");
    ex->out_off = 0;
    size_t head = n;
    memcpy(out + n, p->body, p->body_len);
    n += p->body_len;
    ex->out = (unsigned char *)out;
    ex->out_len = n;
    /* trickle and faults count body bytes: shift them past the head */
    if (p->fault_has_after)
        p->fault_after += head;
    ex->piece_off = head; /* bytes that go out at once */
}

/* Write what is due of a hand-written response; suspend until the next part is due. */
static enum MHD_Result manual_pump(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    int fd = ex_fd(ex);
    uint64_t now = mono_us();
    if (fd < 0)
        return MHD_NO;
    if (!ex->body_start_us)
        ex->body_start_us = scheduled_start(ex) < now ? scheduled_start(ex) : now;
    struct pace pc = pace_at(p, ex->out_len, ex->piece_off, ex->body_start_us, now);
    while (ex->out_off < pc.allowed) {
        size_t stop = pc.allowed;
        if (p->raw && p->paced) /* `chunks`: one write per piece, never two pieces in one */
            for (size_t i = 0, end = 0; i < p->n_pieces; i++)
                if ((end += p->pieces[i].len) > ex->out_off) {
                    stop = end < stop ? end : stop;
                    break;
                }
        ssize_t n = conn_write(ex, fd, ex->out + ex->out_off, stop - ex->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                ex_wake_at(ex, now + 5000);
                return MHD_YES;
            }
            if (errno == EINTR)
                continue;
            ex->end = EX_END_CLIENT_CLOSED;
            return MHD_NO;
        }
        if (ex->out_off == 0 && n > 0)
            ex_phase(ex, JOURNAL_HEADERS_SENT, now);
        ex->out_off += (size_t)n;
        ex->sent = ex->out_off;
    }
    if (ex->out_off < pc.limit) {
        ex_wake_at(ex, pc.next_us);
        return MHD_YES;
    }
    ex_phase(ex, JOURNAL_BODY_DONE, now);
    if (ex->out_off < ex->out_len || p->fault != FAULT_NONE)
        return carry_out_fault(ex, p->fault, fd) ? MHD_YES : MHD_NO;
    ex->end = EX_END_COMPLETE;
    conn_finish(ex, fd);
    return MHD_NO;
}

/* Pump while suspended (MHD must not touch the socket while we write); on the end, resume
 * so that the next call closes the connection. */
static enum MHD_Result pump(struct exchange *ex)
{
    ex_suspend(ex);
    if (manual_pump(ex) == MHD_NO) {
        ex_resume(ex);
        ex->state = EX_CLOSE_NOW;
    }
    return MHD_YES;
}

static enum MHD_Result start_manual(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    if (p->raw) {
        ex->out = p->body;
        ex->out_len = p->body_len;
        p->body = NULL;
        p->body_len = 0;
        ex->piece_off = 0;
        int status = 0;
        if (ex->out_len > 12 && !memcmp(ex->out, "HTTP/", 5)) {
            const char *sp = memchr(ex->out, ' ', ex->out_len);
            if (sp)
                status = atoi(sp + 1);
        }
        note_status(ex, status);
        if (p->paced) { /* `chunks`: every write goes out as it is */
            int one = 1, fd = ex_fd(ex);
            if (fd >= 0)
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
    } else {
        note_status(ex, p->status);
        serialize_plan(ex);
    }
    ex->state = EX_MANUAL;
    ex->body_start_us = 0;
    return pump(ex);
}

/* ---------------------------------------------------------------- entry points */

enum MHD_Result deliver_plan(struct exchange *ex)
{
    struct plan *p = &ex->plan;
    size_t owned = plan_owned_bytes(p);
    if (owned && !ex_buffer_take(ex, owned)) {
        /* a body of its own for this connection (a template, a stream) that the budget of
         * buffered bytes has no room for now */
        plan_free(p);
        plan_text(p, 503, "the server holds too many bodies now (--max-buffered)\n");
        plan_header(p, "Connection", "close");
    }
    if (p->fault != FAULT_NONE && !p->fault_has_after) {
        note_status(ex, 0);
        return carry_out_fault(ex, p->fault, -1) ? MHD_YES : MHD_NO;
    }
    if (p->manual)
        return start_manual(ex);
    return queue_plan(ex);
}

enum MHD_Result deliver_raw_bytes(struct exchange *ex, const void *bytes, size_t len,
                                  enum fault_action after)
{
    struct plan *p = &ex->plan;
    plan_free(p);
    p->manual = true;
    p->raw = true;
    plan_body(p, bytes, len);
    p->fault = after;
    p->fault_has_after = after != FAULT_NONE;
    p->fault_after = len;
    return deliver_plan(ex);
}

enum MHD_Result deliver_resumed(struct exchange *ex)
{
    if (ex->state == EX_MANUAL)
        return pump(ex);
    /* EX_HANGING */
    if (ex->end || ex_stopping(ex)) {
        if (!ex->end)
            ex->end = EX_END_SERVER_STOPPED;
        return MHD_NO;
    }
    ex_suspend(ex);
    return MHD_YES;
}
