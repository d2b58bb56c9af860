/* caps — the limits of a server: what it allows a client: connections, time to send a
 * request, bytes held.
 *
 * In the spirit of nginx (worker_connections, client_header_timeout, client_body_timeout,
 * client_max_body_size, keepalive_timeout): every cap is one field of struct caps, one row
 * of CAPS_OPTIONS (its `harness serve` option, unit, default and meaning) and one row of
 * the "Limits" table of docs/control-api.md. The table here is the one place: serve_cmd
 * parses and prints the options from it, and tests/test_limits.py checks that the docs and
 * --help agree with it.
 *
 * The byte budget (struct caps_budget) is shared by every exchange of a server: request
 * bodies and per-connection copies of response bodies take from it, and give back when they
 * are freed. A response body that is the same for everyone (a body_file, a constant text) is
 * shared between connections instead, and costs the budget nothing.
 */
#ifndef HARNESS_CAPS_H
#define HARNESS_CAPS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct caps {
    unsigned max_connections;        /* open connections on both ports together */
    unsigned max_connections_per_ip; /* 0: no limit (every local test client is 127.0.0.1) */
    unsigned idle_timeout_s;         /* nothing read or written for this long: closed (0: never) */
    unsigned header_timeout_s;       /* request line and headers, from the connection's start or
                                      * the end of its previous request (0: never) */
    unsigned body_timeout_s;         /* the whole body, from the end of the headers (0: never) */
    size_t max_body;                 /* one request's body */
    size_t max_buffered;             /* all bodies held in memory at once, uploads and copies */
    size_t conn_memory;              /* libmicrohttpd's pool per connection: the request line
                                      * and headers (431 beyond), then the response's headers */
};

/* libmicrohttpd's memory pool per connection (--conn-memory): see docs/control-api.md.
 * Every open connection holds it whole (MHD 0.9.75 zeroes it at every request), so it is
 * most of what a connection costs: 3K keeps 10,000 held SSE streams under 64 MiB (about
 * 5.3 KB each; 4K: 6.3 KB, over it) and takes a head of 2.4 KB on one line, or a browser's
 * 0.7 KB head on 14 lines with 0.9 KB to spare (server.c: head_fits). */
#define CAPS_CONN_MEMORY_DEFAULT (3u << 10)

/* The defaults. */
extern const struct caps CAPS_DEFAULT;

enum caps_unit { CAPS_COUNT, CAPS_SECONDS, CAPS_BYTES };

/* One option of `harness serve`: --NAME VALUE sets the field at offset. */
struct caps_option {
    const char *name; /* without the dashes */
    enum caps_unit unit;
    size_t offset;    /* of an unsigned (COUNT, SECONDS) or a size_t (BYTES) in struct caps */
    const char *help; /* a few words for --help; the docs say the rest */
};
extern const struct caps_option CAPS_OPTIONS[];
extern const size_t CAPS_N_OPTIONS;

/* Set option o of l from text: a decimal number, for bytes optionally followed by K, M or G
 * (KiB, MiB, GiB). False if the text is not one (l unchanged). */
bool caps_set(struct caps *l, const struct caps_option *o, const char *text);
/* The value of option o in l as text ("60", "64M"), in buf. */
const char *caps_format(const struct caps *l, const struct caps_option *o, char *buf, size_t len);
/* The options' lines of a usage text, with their defaults (0 for a timeout: never). */
void caps_usage(FILE *out);

/* --- the byte budget ------------------------------------------------------------------- */

struct caps_budget {
    atomic_size_t used;
    size_t cap;
};

/* Take n bytes if they fit under the cap. Thread-safe. */
bool caps_take(struct caps_budget *b, size_t n);
/* Give back n bytes taken before. */
void caps_give(struct caps_budget *b, size_t n);

#endif
