/* server — the three listening ports (main, cross-origin and control) on libmicrohttpd,
 * the life of every request on them, and a clean stop.
 *
 * Each port is one MHD daemon with its own internal polling thread on epoll, with
 * suspend/resume and upgrade allowed. Main and cross serve the same instances (/s/ID/...),
 * so the cross port is simply another origin; the control API (/_harness/) is on a port of
 * its own, so that no scenario page is same-origin with it, behind the checks of ctlauth.h.
 * server_stop() quiesces the daemons, resumes every suspended connection, waits until no
 * request is in flight (bounded), then stops them: libmicrohttpd aborts if a daemon is
 * stopped while a connection is suspended. Idle keep-alive connections are simply closed.
 */
#ifndef HARNESS_SERVER_H
#define HARNESS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "fsroot.h"
#include "instance.h"
#include "caps.h"

struct server_config {
    const char *bind;        /* an IPv4 address; default 127.0.0.1 */
    const char *public_host; /* the name in every origin and URL; NULL: the bind address
                              * (127.0.0.1 for 0.0.0.0) */
    uint16_t port;           /* 0: any free port */
    uint16_t cross_port;
    uint16_t control_port;
    const char *token;          /* the control API's token (required, borrowed) */
    const struct fsroot *roots; /* where the control API may read files (borrowed; must
                                 * outlive the server) */
    size_t journal_limit;
    FILE *log;                 /* one line per request, or NULL */
    const struct caps *limits; /* NULL: CAPS_DEFAULT (copied) */
};

struct server;

/* Start both ports. NULL on failure, with a message in err. */
struct server *server_start(const struct server_config *cfg, char *err, size_t errlen);
uint16_t server_port(const struct server *srv, int which); /* enum ex_port */
/* The origins handed to clients (0 main, 1 cross, 2 alt) and the control API's URL. */
const char *server_origin(const struct server *srv, int which);
const char *server_control_url(const struct server *srv);
struct registry *server_registry(struct server *srv);
/* Stop accepting, end every request in flight, stop, free. */
void server_stop(struct server *srv);

#endif
