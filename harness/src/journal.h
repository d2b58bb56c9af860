/* journal — the bounded record of the requests one instance received.
 *
 * An entry is a fixed C record (struct journal_entry): times, status, sizes, and the
 * request's strings, headers and body copied right behind it (one allocation per request,
 * record and all, freed at once when the entry goes). Appending costs one allocation and a copy;
 * nothing is turned into JSON until a reader asks (journal_dump(), journal_entry_json()),
 * and the JSON is the same, key for key and in the same order, as the one the server built
 * per request before (docs/control-api.md lists the fields; harness/tests/test_journal.c
 * holds the two equal).
 *
 * The journal grows as entries come (nothing is preallocated) and is bounded twice: at most
 * `limit` entries and at most `max_bytes` bytes of entries (the blocks and the records; the
 * newest entry is always kept). What goes past either bound drops the oldest entries, and
 * `dropped` counts them, so a reader always sees how much is missing.
 *
 * An entry stays mutable after it is appended (the server records the response's phases
 * and how the connection ended as they happen): the server keeps the entry's id (never 0,
 * never reused, not even after journal_clear) and finds it again with journal_find(), which
 * says NULL once the entry has been dropped or cleared. Every access goes through the owning
 * instance's lock, which the caller holds; an entry pointer is valid until the next
 * append or clear.
 */
#ifndef HARNESS_JOURNAL_H
#define HARNESS_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "request.h"

enum journal_phase {
    JOURNAL_HEADERS_SENT,
    JOURNAL_BODY_FIRST_BYTE,
    JOURNAL_BODY_DONE,
    JOURNAL_N_PHASES,
};

/* The fields that are rare, or trees of their own, kept as JSON (owned by the entry). */
enum journal_extra {
    JOURNAL_REQUIRE,   /* {met, failed} */
    JOURNAL_JSONP,     /* {param, callback_valid} */
    JOURNAL_LONG_POLL, /* {timed_out, cursor, delivered} */
    JOURNAL_WEBSOCKET, /* the handshake and the session (mutated in place by its thread) */
    JOURNAL_WARNINGS,  /* [text...] */
    JOURNAL_N_EXTRAS,
};

/* What a new entry records: the request as received and what dispatch made of it.
 * Everything is borrowed and copied by journal_append(), except route_name (see there). */
struct journal_request {
    uint16_t port;
    bool cross;         /* the cross-origin port */
    const char *origin; /* the port's name (static: "main_tls", …); NULL: main or cross */
    bool tls;           /* it came over TLS */
    const char *sni;    /* the server name the TLS client sent, or NULL (copied) */
    const char *remote, *method, *target, *path, *query, *http_version;
    const struct name_value *headers;
    size_t n_headers;
    const unsigned char *body; /* may be NULL when body_len is 0 */
    size_t body_len;
    uint64_t arrived_us; /* mono_us() */
    bool preflight;
    /* the route that answered (index and name), or -1 and NULL: none matched. The name is
     * borrowed for the journal's whole life (the instance's scenario owns it). */
    long route;
    const char *route_name;
    long response_index; /* -1: null */
    bool has_count;      /* an actual request of a route: "count" */
    unsigned long count;
    /* a preflight: "cors" with these (each may be NULL) */
    const char *cors_origin, *cors_method, *cors_headers;
};

/* Keys set after the entry was appended, in the order they were first set. */
enum journal_late_key {
    JOURNAL_KEY_EXTRA0, /* + enum journal_extra */
    JOURNAL_KEY_STATUS = JOURNAL_KEY_EXTRA0 + JOURNAL_N_EXTRAS,
    JOURNAL_KEY_ENDED,
    JOURNAL_N_LATE_KEYS,
};

struct journal_entry {
    uint64_t id;  /* internal, never reused */
    uint64_t seq; /* 1, 2, ... since the last clear */
    size_t bytes; /* what it counts against max_bytes */
    /* the strings, headers and body below are in the same allocation, right behind it */
    const char *remote, *method, *target, *path, *query, *http_version;
    struct name_value *headers;
    size_t n_headers;
    const unsigned char *body;
    size_t body_len;
    const char *route_name;
    const char **cors; /* a preflight's [3]: origin, request_method, request_headers (each
                        * NULL: absent), in the same allocation; NULL for others */
    long route, response_index;
    unsigned long count;
    uint16_t port;
    const char *origin; /* static, or NULL: main or cross */
    const char *sni;    /* in block, or NULL */
    bool cross, tls, preflight, has_count, has_cors;
    int status;      /* <= 0: null */
    const char *end; /* a static name, or NULL */
    uint64_t bytes_sent;
    uint64_t arrived_us, ended_us;
    uint64_t phase_us[JOURNAL_N_PHASES];
    json_t **extra; /* [JOURNAL_N_EXTRAS], owned, allocated at the first set (or NULL) */
    uint8_t phase_order[JOURNAL_N_PHASES], n_phases;
    uint8_t late[JOURNAL_N_LATE_KEYS], n_late;
};

struct journal {
    struct journal_entry **ring; /* owned records; grows by doubling up to limit */
    size_t cap;
    size_t limit;     /* most entries kept, >= 1 */
    size_t max_bytes; /* most bytes kept (the newest entry is kept whatever its size) */
    size_t head;      /* index of the oldest entry */
    size_t n;         /* entries kept */
    size_t bytes;     /* bytes kept */
    uint64_t total;   /* entries ever appended (since the last clear) */
    uint64_t dropped; /* entries dropped because a bound was reached */
    uint64_t next_id;
    uint64_t base_us;   /* times are milliseconds since this mono_us() time */
    size_t *route_kept; /* per route index: entries kept */
    size_t n_routes;
};

/* limit 0: 1; max_bytes 0: no byte bound. n_routes: the routes of the instance's scenario
 * (journal_count() counts by route index). base_us: what times count from. */
void journal_init(struct journal *j, size_t limit, size_t max_bytes, size_t n_routes,
                  uint64_t base_us);
void journal_free(struct journal *j);
/* Forget every entry (the counters restart; times now count from base_us). */
void journal_clear(struct journal *j, uint64_t base_us);
/* Append an entry for the request (copied) with the next seq; "phases" {}, "bytes_sent" 0,
 * "end" null. Returns its id (never 0), for journal_find(). */
uint64_t journal_append(struct journal *j, const struct journal_request *r);
/* The entry with this id, or NULL if it has been dropped or cleared. */
struct journal_entry *journal_find(struct journal *j, uint64_t id);

/* --- setters (a missing entry is fine: they do nothing) --------------------------------- */

void journal_set_status(struct journal_entry *e, int status); /* <= 0: null */
/* Record a phase at mono_us() time t unless it is already recorded. */
void journal_set_phase(struct journal_entry *e, enum journal_phase p, uint64_t t);
bool journal_has_phase(const struct journal_entry *e, enum journal_phase p);
void journal_set_end(struct journal_entry *e, const char *end); /* a static string */
void journal_set_ended(struct journal_entry *e, uint64_t t);
void journal_set_bytes_sent(struct journal_entry *e, uint64_t n);
/* Set a JSON field (steals value; dropped when e is NULL). */
void journal_set_extra(struct journal_entry *e, enum journal_extra which, json_t *value);
/* A JSON field (borrowed), or NULL. */
json_t *journal_extra(const struct journal_entry *e, enum journal_extra which);

/* --- reading ----------------------------------------------------------------------------- */

/* The entry as JSON (a new object), as docs/control-api.md describes it. */
json_t *journal_entry_json(const struct journal *j, const struct journal_entry *e);
/* {"total": N, "dropped": D, "limit": L, "entries": [the entries with seq > since]} */
json_t *journal_dump(const struct journal *j, uint64_t since);
/* How many kept entries have this route index (< 0: every entry). */
size_t journal_count(const struct journal *j, long route);

#endif
