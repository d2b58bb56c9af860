/* conns — open connections, their cap and their request deadlines; see conns.h. */
#include "conns.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include "xalloc.h"

enum phase { PH_HEADERS, PH_BODY, PH_ANSWERING };

struct conn {
    int fd;
    enum phase phase;
    uint64_t deadline_us; /* 0: none */
    uint64_t since_us;    /* when the phase began */
    bool timed_out;
    struct conn *prev, *next;
};

struct conns {
    struct timers *timers;
    const struct caps *lim;
    pthread_mutex_t lock; /* guards everything below */
    struct conn *head;
    size_t n;
    bool stopped;
    uint64_t sweep_id; /* the pending sweep */
};

static void sweep(void *arg);

static void schedule_locked(struct conns *cs)
{
    cs->sweep_id = timers_after_ms(cs->timers, CONNS_SWEEP_MS, sweep, cs);
}

struct conns *conns_new(struct timers *t, const struct caps *lim)
{
    struct conns *cs = xcalloc(1, sizeof *cs);
    cs->timers = t;
    cs->lim = lim;
    pthread_mutex_init(&cs->lock, NULL);
    pthread_mutex_lock(&cs->lock);
    schedule_locked(cs);
    pthread_mutex_unlock(&cs->lock);
    return cs;
}

void conns_stop(struct conns *cs)
{
    pthread_mutex_lock(&cs->lock);
    cs->stopped = true;
    uint64_t id = cs->sweep_id;
    cs->sweep_id = 0;
    pthread_mutex_unlock(&cs->lock);
    if (id)
        timers_cancel(cs->timers, id); /* if it runs now, it sees `stopped` */
}

void conns_free(struct conns *cs)
{
    while (cs->head) { /* none, normally: libmicrohttpd closed them all */
        struct conn *k = cs->head;
        cs->head = k->next;
        free(k);
    }
    pthread_mutex_destroy(&cs->lock);
    free(cs);
}

/* ---------------------------------------------------------------- the sweep */

static void end_connection(struct conn *k)
{
    static const char MSG[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                              "Content-Type: text/plain\r\nContent-Length: 29\r\n\r\n"
                              "the request came too slowly\n";
    /* libmicrohttpd is reading a request here, so it is not writing: a few bytes of our own
     * cannot interleave with its. Best effort: a full send buffer drops them. */
    if (send(k->fd, MSG, sizeof MSG - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* nothing to do: the connection ends anyway */
    }
    shutdown(k->fd, SHUT_RDWR);
    k->timed_out = true;
    k->deadline_us = 0;
}

/* The client's FIN is waiting unread behind no data: libmicrohttpd under edge-triggered
 * epoll took the short read before it as "nothing more to read" and will not look again.
 * Peeking consumes nothing, so it never races with libmicrohttpd's own reads. */
static bool peer_gone(int fd)
{
    char b;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static void sweep(void *arg)
{
    struct conns *cs = arg;
    uint64_t now = mono_us();
    pthread_mutex_lock(&cs->lock);
    if (cs->stopped) {
        pthread_mutex_unlock(&cs->lock);
        return;
    }
    for (struct conn *k = cs->head; k; k = k->next) {
        if (k->deadline_us && now >= k->deadline_us)
            end_connection(k);
        else if (k->phase != PH_ANSWERING && !k->timed_out &&
                 now - k->since_us >= CONNS_SWEEP_MS * 1000u && peer_gone(k->fd))
            shutdown(k->fd, SHUT_RDWR); /* the event libmicrohttpd missed: it closes now */
    }
    schedule_locked(cs);
    pthread_mutex_unlock(&cs->lock);
}

/* ---------------------------------------------------------------- phases */

static void enter_locked(struct conns *cs, struct conn *k, enum phase ph)
{
    unsigned s = ph == PH_HEADERS ? cs->lim->header_timeout_s
                 : ph == PH_BODY  ? cs->lim->body_timeout_s
                                  : 0;
    k->phase = ph;
    k->since_us = mono_us();
    k->deadline_us = s ? k->since_us + (uint64_t)s * 1000000u : 0;
}

bool conns_admit(struct conns *cs)
{
    pthread_mutex_lock(&cs->lock);
    bool ok = cs->n < cs->lim->max_connections;
    pthread_mutex_unlock(&cs->lock);
    return ok;
}

struct conn *conns_opened(struct conns *cs, int fd)
{
    struct conn *k = xcalloc(1, sizeof *k);
    k->fd = fd;
    pthread_mutex_lock(&cs->lock);
    enter_locked(cs, k, PH_HEADERS);
    k->next = cs->head;
    if (cs->head)
        cs->head->prev = k;
    cs->head = k;
    cs->n++;
    pthread_mutex_unlock(&cs->lock);
    return k;
}

void conns_closed(struct conns *cs, struct conn *k)
{
    pthread_mutex_lock(&cs->lock);
    if (k->prev)
        k->prev->next = k->next;
    else
        cs->head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    cs->n--;
    pthread_mutex_unlock(&cs->lock);
    free(k);
}

size_t conns_count(struct conns *cs)
{
    pthread_mutex_lock(&cs->lock);
    size_t n = cs->n;
    pthread_mutex_unlock(&cs->lock);
    return n;
}

static void enter(struct conns *cs, struct conn *k, enum phase ph)
{
    if (!k)
        return;
    pthread_mutex_lock(&cs->lock);
    if (!k->timed_out)
        enter_locked(cs, k, ph);
    pthread_mutex_unlock(&cs->lock);
}

void conns_headers_read(struct conns *cs, struct conn *k)
{
    enter(cs, k, PH_BODY);
}

void conns_request_read(struct conns *cs, struct conn *k)
{
    enter(cs, k, PH_ANSWERING);
}

void conns_request_done(struct conns *cs, struct conn *k)
{
    enter(cs, k, PH_HEADERS);
}

bool conns_timed_out(struct conns *cs, struct conn *k)
{
    if (!k)
        return false;
    pthread_mutex_lock(&cs->lock);
    bool t = k->timed_out;
    pthread_mutex_unlock(&cs->lock);
    return t;
}
