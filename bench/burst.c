/* burst: the load client of make bench for what wrk cannot measure.
 *
 * It opens N connections to one server on loopback (in waves, so no backlog overflows and
 * the setup is not timed), then sends every request at once and judges each answer against
 * the absolute schedule, never against the previous answer:
 *
 *   http   one GET per connection; lateness = full response received - (sent + delay)
 *   sse    one GET per connection on an event stream whose event K carries "data: K" and
 *          is due at sent + first + K * every; lateness per event, lost = due - received
 *   hold   one GET per connection, answer read, then the connection is kept open (idle)
 *          until stdin reaches end of file: the caller measures the server meanwhile
 *
 * Every sample (lateness in microseconds, one per line) goes to --out; one JSON summary line
 * goes to stdout. Every wait is bounded (--timeout-ms); nothing here retries. Connections
 * are closed once the run is over (a failed one at once), so that closing them is not
 * counted in the lateness of the answers still coming.
 *
 *   burst --port P --path /x --conns N [--mode http|sse|hold] [--delay-ms D]
 *         [--events E --every MS --first MS] [--timeout-ms T] [--out FILE]
 *
 * Exit status: 0 when the run was carried out (failures are counted, not fatal), 2 on bad
 * arguments or when the client itself could not work (no memory, no epoll).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_HTTP, MODE_SSE, MODE_HOLD };
enum state { ST_IDLE, ST_CONNECTING, ST_CONNECTED, ST_SENT, ST_DONE, ST_FAILED };
enum fail { F_CONNECT, F_RESET, F_TIMEOUT, F_STATUS, F_PARSE, F_COUNT };
static const char *fail_names[F_COUNT] = {"connect", "reset", "timeout", "status", "parse"};

/* Chunked transfer decoding, enough for what servers send (sizes, data, CRLFs). */
enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_DONE };

struct conn {
    int fd;
    enum state state;
    int64_t sent_ns;
    char *buf; /* owned: the response head (and the body in http mode) */
    size_t len, cap;
    size_t head_len;     /* 0 until the blank line after the headers was seen */
    long content_length; /* -1 when absent */
    bool chunked;
    size_t body_seen; /* http: body bytes so far */
    char tail[5];     /* http: the last five of them */
    /* sse: the body, decoded, parsed line by line */
    enum chunk_state ch;
    size_t ch_left;
    char line[256];
    size_t line_len;
    long pending; /* the K of the event being read, -1 when none */
    int received;
    unsigned char *seen; /* owned: one flag per event index */
};

static struct {
    enum mode mode;
    const char *host, *path, *out_path;
    int port, conns, delay_ms, events, every_ms, first_ms, timeout_ms, wave;
} opt = {MODE_HTTP, "127.0.0.1", "/", NULL, 0, 1, 0, 0, 1000, 1000, 30000, 256};

static FILE *out;
static long samples, fails[F_COUNT];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *must(void *p)
{
    if (!p) {
        fputs("burst: out of memory\n", stderr);
        exit(2);
    }
    return p;
}

static void sample(int64_t late_ns)
{
    fprintf(out, "%lld\n", (long long)(late_ns / 1000));
    samples++;
}

static int n_sent; /* connections in ST_SENT: waiting for their answer */

static void finish(int ep, struct conn *c, enum state st, enum fail why)
{
    if (st == ST_FAILED)
        fails[why]++;
    if (c->state == ST_SENT)
        n_sent--;
    c->state = st;
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        /* a connection done with is closed after the run, not during it: a close costs this
         * client the FIN both ways on loopback (~10 us of its CPU), which would delay the
         * reading of the answers still coming and count as the server's lateness */
        if (st == ST_FAILED) {
            close(c->fd);
            c->fd = -1;
        }
    }
}

static bool start_connect(int ep, struct conn *c, const struct sockaddr_in *sa)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return false;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return false;
    }
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    return true;
}

/* Parses the head once it is complete: status, Content-Length, chunked. */
static bool parse_head(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!end)
        return c->len < c->cap; /* not yet; a head that fills the buffer is a parse error */
    c->head_len = (size_t)(end - c->buf) + 4;
    int status = 0;
    if (sscanf(c->buf, "HTTP/1.%*d %d", &status) != 1)
        return false;
    c->content_length = -1;
    for (char *p = memchr(c->buf, '\n', c->head_len); p && p < end;
         p = memchr(p, '\n', (size_t)(end - p))) {
        p++;
        if (!strncasecmp(p, "content-length:", 15))
            c->content_length = strtol(p + 15, NULL, 10);
        else if (!strncasecmp(p, "transfer-encoding:", 18) && strstr(p, "hunked") &&
                 strstr(p, "hunked") < end)
            c->chunked = true;
    }
    if (status < 200 || status > 299)
        c->content_length = -2; /* marks a bad status */
    return true;
}

/* One line of the event stream (without its line ending). */
static void sse_line(struct conn *c, int64_t t)
{
    if (c->line_len && c->line[c->line_len - 1] == '\r')
        c->line_len--;
    c->line[c->line_len] = 0;
    if (c->line_len == 0) {
        long k = c->pending;
        c->pending = -1;
        if (k >= 0 && k < opt.events && !c->seen[k]) {
            c->seen[k] = 1;
            c->received++;
            sample(t -
                   (c->sent_ns + ((int64_t)opt.first_ms + k * (int64_t)opt.every_ms) * 1000000));
        }
    } else if (!strncmp(c->line, "data:", 5)) {
        char *e;
        long k = strtol(c->line + 5, &e, 10);
        c->pending = e == c->line + 5 ? -1 : k;
    }
    c->line_len = 0;
}

static void sse_bytes(struct conn *c, const char *p, size_t n, int64_t t)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            sse_line(c, t);
        else if (c->line_len + 1 < sizeof c->line)
            c->line[c->line_len++] = p[i];
    }
}

/* Decodes chunked framing (when used) and hands the body bytes on. */
static void sse_body(struct conn *c, const char *p, size_t n, int64_t t)
{
    if (!c->chunked) {
        sse_bytes(c, p, n, t);
        return;
    }
    while (n) {
        if (c->ch == CH_SIZE) {
            if (*p == '\n') {
                c->ch = c->ch_left ? CH_DATA : CH_DONE;
            } else if (*p != '\r') {
                int v = *p >= '0' && *p <= '9'   ? *p - '0'
                        : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
                        : *p >= 'A' && *p <= 'F' ? *p - 'A' + 10
                                                 : -1;
                if (v >= 0 && c->ch_left < ((size_t)1 << 40))
                    c->ch_left = c->ch_left * 16 + (size_t)v;
            }
            p++, n--;
        } else if (c->ch == CH_DATA) {
            size_t k = n < c->ch_left ? n : c->ch_left;
            sse_bytes(c, p, k, t);
            p += k, n -= k, c->ch_left -= k;
            if (!c->ch_left)
                c->ch = CH_DATA_END;
        } else if (c->ch == CH_DATA_END) {
            if (*p == '\n')
                c->ch = CH_SIZE;
            p++, n--;
        } else {
            return;
        }
    }
}

/* Counts http body bytes and keeps the last five (a chunked body ends "0\r\n\r\n"). */
static void http_body(struct conn *c, const char *p, size_t n)
{
    c->body_seen += n;
    for (size_t i = n > 5 ? n - 5 : 0; i < n; i++) {
        memmove(c->tail, c->tail + 1, 4);
        c->tail[4] = p[i];
    }
}

/* Is the http answer complete (eof: the server closed)? */
static bool http_complete(struct conn *c, bool eof)
{
    if (c->content_length >= 0)
        return c->body_seen >= (size_t)c->content_length;
    if (c->chunked)
        return c->body_seen >= 5 && !memcmp(c->tail, "0\r\n\r\n", 5);
    return eof;
}

static void on_readable(int ep, struct conn *c)
{
    char tmp[16384];
    for (;;) {
        ssize_t n = read(c->fd, tmp, sizeof tmp);
        int64_t t = now_ns();
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            finish(ep, c, ST_FAILED, F_RESET);
            return;
        }
        bool eof = n == 0;
        const char *body = tmp;
        size_t body_len = (size_t)n;
        if (!c->head_len) { /* the head is gathered in buf; what follows it is body */
            size_t k = body_len < c->cap - c->len ? body_len : c->cap - c->len;
            memcpy(c->buf + c->len, tmp, k);
            size_t before = c->len;
            c->len += k;
            if (!parse_head(c)) {
                finish(ep, c, ST_FAILED, F_PARSE);
                return;
            }
            if (!c->head_len) {
                if (eof) {
                    finish(ep, c, ST_FAILED, F_RESET);
                    return;
                }
                continue;
            }
            if (c->content_length == -2) {
                finish(ep, c, ST_FAILED, F_STATUS);
                return;
            }
            body = tmp + (c->head_len - before);
            body_len = (size_t)n - (c->head_len - before);
        }
        if (opt.mode == MODE_SSE) {
            sse_body(c, body, body_len, t);
            if (c->received == opt.events || eof) { /* missing events count as lost */
                finish(ep, c, ST_DONE, 0);
                return;
            }
            if ((size_t)n < sizeof tmp) /* drained: epoll (level-triggered) says when more */
                return;
            continue;
        }
        http_body(c, body, body_len);
        if (http_complete(c, eof)) {
            if (opt.mode == MODE_HTTP)
                sample(t - (c->sent_ns + (int64_t)opt.delay_ms * 1000000));
            finish(ep, c, ST_DONE, 0);
            return;
        }
        if (eof) {
            finish(ep, c, ST_FAILED, F_RESET);
            return;
        }
    }
}

static void usage(void)
{
    fputs("usage: burst --port P --path /x --conns N [--mode http|sse|hold] [--delay-ms D]\n"
          "             [--events E --every MS --first MS] [--timeout-ms T] [--out FILE]\n"
          "             [--host 127.0.0.1] [--wave CONNECTS_IN_FLIGHT]\n",
          stderr);
    exit(2);
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {{"host", 1, 0, 'h'},   {"port", 1, 0, 'p'},
                                       {"path", 1, 0, 'u'},   {"conns", 1, 0, 'n'},
                                       {"mode", 1, 0, 'm'},   {"delay-ms", 1, 0, 'd'},
                                       {"events", 1, 0, 'e'}, {"every", 1, 0, 'v'},
                                       {"first", 1, 0, 'f'},  {"timeout-ms", 1, 0, 't'},
                                       {"out", 1, 0, 'o'},    {"wave", 1, 0, 'w'},
                                       {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = atoi(optarg);
            break;
        case 'u':
            opt.path = optarg;
            break;
        case 'n':
            opt.conns = atoi(optarg);
            break;
        case 'd':
            opt.delay_ms = atoi(optarg);
            break;
        case 'e':
            opt.events = atoi(optarg);
            break;
        case 'v':
            opt.every_ms = atoi(optarg);
            break;
        case 'f':
            opt.first_ms = atoi(optarg);
            break;
        case 't':
            opt.timeout_ms = atoi(optarg);
            break;
        case 'o':
            opt.out_path = optarg;
            break;
        case 'w':
            opt.wave = atoi(optarg);
            break;
        case 'm':
            opt.mode = !strcmp(optarg, "sse")    ? MODE_SSE
                       : !strcmp(optarg, "hold") ? MODE_HOLD
                       : !strcmp(optarg, "http") ? MODE_HTTP
                                                 : (usage(), MODE_HTTP);
            break;
        default:
            usage();
        }
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.conns <= 0 || opt.conns > 100000 ||
        opt.wave <= 0 || opt.timeout_ms <= 0 ||
        (opt.mode == MODE_SSE && (opt.events <= 0 || opt.events > 100000)))
        usage();
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    out = opt.out_path ? fopen(opt.out_path, "w") : fopen("/dev/null", "w");
    if (!out) {
        perror("burst: --out");
        return 2;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1)
        usage();
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        perror("burst: epoll");
        return 2;
    }
    int n = opt.conns;
    struct conn *cs = must(calloc((size_t)n, sizeof *cs));
    for (int i = 0; i < n; i++) {
        cs[i].fd = -1;
        cs[i].cap = 4096;
        cs[i].buf = must(malloc(cs[i].cap));
        cs[i].pending = -1;
        if (opt.mode == MODE_SSE)
            cs[i].seen = must(calloc((size_t)opt.events, 1));
    }
    struct epoll_event *evs = must(calloc(1024, sizeof *evs));
    int64_t t_start = now_ns();

    /* 1. connect, at most --wave connects in flight */
    int next = 0, inflight = 0, connected = 0;
    int64_t connect_deadline = t_start + (int64_t)opt.timeout_ms * 1000000;
    while ((next < n || inflight) && now_ns() < connect_deadline) {
        while (next < n && inflight < opt.wave) {
            if (start_connect(ep, &cs[next], &sa))
                inflight++;
            else
                finish(ep, &cs[next], ST_FAILED, F_CONNECT);
            next++;
        }
        int k = epoll_wait(ep, evs, 1024, 100);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            int err = 0;
            socklen_t el = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
            inflight--;
            if (err) {
                finish(ep, c, ST_FAILED, F_CONNECT);
            } else {
                c->state = ST_CONNECTED;
                connected++;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (cs[i].state == ST_CONNECTING || cs[i].state == ST_IDLE)
            finish(ep, &cs[i], ST_FAILED, F_CONNECT);
    int64_t t_connected = now_ns();

    /* 2. every request at once */
    char req[1024];
    int rl_len =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", opt.path, opt.host,
                 opt.port, opt.mode == MODE_SSE ? "Accept: text/event-stream\r\n" : "");
    int64_t first_sent = 0, last_sent = 0;
    for (int i = 0; i < n; i++) {
        struct conn *c = &cs[i];
        if (c->state != ST_CONNECTED)
            continue;
        ssize_t w = write(c->fd, req, (size_t)rl_len);
        c->sent_ns = last_sent = now_ns();
        if (!first_sent)
            first_sent = c->sent_ns;
        if (w != rl_len)
            finish(ep, c, ST_FAILED, F_RESET);
        else {
            c->state = ST_SENT;
            n_sent++;
        }
    }

    /* 3. answers until each is done or the deadline passes */
    int64_t span_ms = opt.mode == MODE_SSE ? opt.first_ms + (int64_t)(opt.events - 1) * opt.every_ms
                      : opt.mode == MODE_HTTP ? opt.delay_ms
                                              : 0;
    int64_t deadline = last_sent + (span_ms + opt.timeout_ms) * 1000000;
    for (;;) {
        /* a counter, not a walk over every connection per wake-up: with 10,000 streams the
         * walk made this client, not the server, the slower side */
        if (!n_sent || now_ns() >= deadline)
            break;
        int64_t left_ms = (deadline - now_ns()) / 1000000 + 1;
        int k = epoll_wait(ep, evs, 1024, left_ms > 1000 ? 1000 : (int)left_ms);
        for (int i = 0; i < k; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->state == ST_SENT)
                on_readable(ep, c);
        }
    }
    long events_received = 0;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        if (cs[i].state == ST_SENT)
            finish(ep, &cs[i], opt.mode == MODE_SSE ? ST_DONE : ST_FAILED, F_TIMEOUT);
        ok += cs[i].state == ST_DONE;
        events_received += cs[i].received;
    }
    int64_t t_end = now_ns();
    fflush(out);

    printf("{\"mode\":\"%s\",\"conns\":%d,\"connected\":%d,\"ok\":%d,\"samples\":%ld,",
           opt.mode == MODE_SSE    ? "sse"
           : opt.mode == MODE_HOLD ? "hold"
                                   : "http",
           n, connected, ok, samples);
    printf("\"failed\":{");
    for (int f = 0; f < F_COUNT; f++)
        printf("%s\"%s\":%ld", f ? "," : "", fail_names[f], fails[f]);
    printf("},\"connect_ms\":%.1f,\"send_spread_ms\":%.3f,\"wall_ms\":%.1f",
           (t_connected - t_start) / 1e6, (last_sent - first_sent) / 1e6, (t_end - t_start) / 1e6);
    if (opt.mode == MODE_SSE)
        printf(",\"events_expected\":%ld,\"events_received\":%ld,\"lost\":%ld",
               (long)opt.events * n, events_received, (long)opt.events * n - events_received);
    printf("}\n");
    fflush(stdout);

    /* hold: keep the idle connections until the caller closes our stdin (bounded by it) */
    if (opt.mode == MODE_HOLD) {
        struct pollfd pf = {.fd = 0, .events = POLLIN};
        char b[64];
        while (poll(&pf, 1, -1) >= 0 && read(0, b, sizeof b) > 0)
            ;
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].fd >= 0)
            close(cs[i].fd);
        free(cs[i].buf);
        free(cs[i].seen);
    }
    free(cs);
    free(evs);
    fclose(out);
    close(ep);
    return 0;
}
