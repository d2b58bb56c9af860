/* plan — how a response is to be sent, built from a scenario's response and the request.
 *
 * A struct plan is status, reason, headers, body (or paced pieces), pacing and the fault to
 * carry out: everything the sending stage (deliver.h) needs, whatever the scenario key that
 * produced it. The builders here are pure functions of the response, the request and a
 * template context: no I/O, no locks, no clock (the long poll's hold is decided by the
 * caller, which hands in the events to deliver). They are unit-tested in
 * harness/tests/test_plan.c.
 *
 * Ownership: a plan owns every string, header and piece in it; plan_free() releases them
 * and leaves an empty plan. Builders that replace a plan (an invalid JSONP callback) free
 * what was there first. One exception: a body that is the same for every request (bytes, a
 * body_file, a text without placeholders) is borrowed from the response (body_borrowed):
 * every connection sends from the scenario's one copy, which lives as long as the instance
 * the exchange holds a reference to. 50 clients reading a 20 MB body slowly cost 50 small
 * send buffers, not 50 copies.
 */
#ifndef HARNESS_PLAN_H
#define HARNESS_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "instance.h"
#include "piece.h"
#include "request.h"
#include "scenario.h"
#include "tmpl.h"

struct plan {
    int status;
    enum fault_action fault;
    char *reason; /* NULL: standard */
    struct name_value *headers;
    size_t n_headers;
    unsigned char *body;
    size_t body_len;
    uint64_t body_delay_ms;
    size_t trickle_bytes;
    uint64_t trickle_every_ms;
    size_t fault_after;
    bool fault_has_after;
    bool body_borrowed; /* body belongs to the response (see above): never written or freed */
    bool chunked;
    /* the bytes are written by hand, not by libmicrohttpd (raw, a custom reason phrase) */
    bool manual;
    bool raw; /* manual: body holds the whole response as is */
    /* paced pieces (stream, sse) instead of body: one chunk each, except that with
     * `together` (sse) the pieces due at the same moment go out in one chunk, one write */
    bool paced;
    bool together;
    bool pieces_borrowed; /* the response's own (an SSE stream's): never written or freed */
    enum stream_end then;
    struct piece *pieces;
    size_t n_pieces;
};

void plan_free(struct plan *p);
/* Free the reason and the headers alone: once libmicrohttpd has its own copies (a response
 * queued), a stream held for minutes need not keep ours. */
void plan_drop_headers(struct plan *p);
/* Append a header (both strings copied). */
void plan_header(struct plan *p, const char *name, const char *value);
bool plan_has_header(const struct plan *p, const char *name);
/* Replace the body by a copy of len bytes (NUL-terminated for convenience). */
void plan_body(struct plan *p, const void *data, size_t len);
/* Bytes the plan owns (body unless borrowed, pieces): what it costs the server's budget. */
size_t plan_owned_bytes(const struct plan *p);
/* A status with a text/plain body. */
void plan_text(struct plan *p, int status, const char *text);

/* Status, reason, headers (templates expanded with ctx), timing and faults common to every
 * kind of response. */
void plan_base(const struct response *r, const struct tmpl_ctx *ctx, struct plan *p);
/* The body of a response of kind RESP_PLAIN, RESP_RAW, RESP_STREAM or RESP_SSE (after
 * plan_base). Other kinds are left alone. */
void plan_content(const struct response *r, const struct tmpl_ctx *ctx, struct plan *p);

/* CORS (route-level `cors:`): the answer to a preflight, and the headers added to an actual
 * response. origin is the request's Origin header, or NULL. */
void plan_cors_preflight(const struct cors_policy *c, const char *origin, struct plan *p);
void plan_cors_actual(const struct cors_policy *c, const char *origin, struct plan *p);

/* Is s a dotted JavaScript identifier path (a.b.$c), at most 128 bytes? */
bool plan_js_identifier_path(const char *s);
/* JSONP: `callback(data);` (or `throw new Error(msg);`) for the callback named by the query
 * parameter j->param (default "callback"); a 400 text plan if it is missing or not a safe
 * identifier path (never reflected). Returns whether the callback was valid; *param is set
 * to the parameter name used (static or borrowed from j). */
bool plan_jsonp(const struct jsonp_spec *j, const struct request *req, struct plan *p,
                const char **param);

/* A long poll that delivers events [cursor, cursor + n) of a channel: the first as text with
 * X-Harness-Cursor (LP_TEXT), or {"cursor", "events": [{id, data}]} as JSON. */
void plan_long_poll_events(const struct long_poll_spec *lp, const struct channel_event_state *ev,
                           size_t cursor, size_t n, struct plan *p);
/* A long poll that timed out: lp->on_timeout, or a 204. The plan is replaced. */
void plan_long_poll_timeout(const struct long_poll_spec *lp, const struct tmpl_ctx *ctx,
                            struct plan *p);

#endif
