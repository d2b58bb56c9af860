/* server — the two listening ports (main and cross-origin) on libmicrohttpd, the life of
 * every request on them, and a clean stop.
 *
 * Each port is one MHD daemon with its own internal polling thread on epoll, with
 * suspend/resume and upgrade allowed. Both serve the same instances (/s/ID/...), so the
 * cross port is simply another origin; the control API (/_harness/) is on the main port.
 * server_stop() quiesces both daemons, resumes every suspended connection, waits until no
 * request is in flight (bounded), then stops them: libmicrohttpd aborts if a daemon is
 * stopped while a connection is suspended. Idle keep-alive connections are simply closed.
 */
#ifndef HARNESS_SERVER_H
#define HARNESS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "instance.h"
#include "limits.h"

struct server_config {
    const char *bind; /* an IPv4 address; default 127.0.0.1 */
    uint16_t port;    /* 0: any free port */
    uint16_t cross_port;
    size_t journal_limit;
    FILE *log;                   /* one line per request, or NULL */
    const struct limits *limits; /* NULL: LIMITS_DEFAULT (copied) */
};

struct server;

/* Start both ports. NULL on failure, with a message in err. */
struct server *server_start(const struct server_config *cfg, char *err, size_t errlen);
uint16_t server_port(const struct server *srv, int which); /* 0 main, 1 cross */
struct registry *server_registry(struct server *srv);
/* Stop accepting, end every request in flight, stop, free. */
void server_stop(struct server *srv);

#endif
