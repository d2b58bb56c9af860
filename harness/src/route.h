/* route — which route of a scenario answers a request, and which response of its sequence.
 *
 * Pure functions over struct scenario (scenario.h) and struct request (request.h): no
 * locking, no I/O. The instance keeps the per-route counters and passes them in.
 */
#ifndef HARNESS_ROUTE_H
#define HARNESS_ROUTE_H

#include <stdbool.h>
#include "request.h"
#include "scenario.h"

/* True if the condition holds for a request value; value is NULL when absent. For a header
 * that appears several times, call it per value (any may match). */
bool value_match_holds(const struct value_match *m, const char *value);
/* True if every header condition holds for the request (a header repeated: any value). */
bool headers_match(const struct value_match *m, size_t n, const struct request *r);

/* Is have a superset of want: every key of an object (recursively), arrays of the same
 * length item by item, numbers equal in value (1 == 1.0), other values equal. The one
 * definition of the `json` condition and matcher (the grader's is held to it). */
bool route_json_subset(const json_t *want, const json_t *have);
/* Does the body condition (match.body; NULL: none) hold for the request's body? */
bool route_body_match(const struct value_match *m, const struct request *r);

/* The index of the first route whose match holds for a request whose path relative to the
 * instance prefix is rel_path, or -1. */
long route_find(const struct scenario *s, const struct request *r, const char *rel_path);

/* A CORS preflight (OPTIONS with Origin and Access-Control-Request-Method) for a route with
 * a CORS policy whose preflight is not `none`: the index of the first such route whose path
 * and query match, preferring one whose methods include the requested method, or -1. Header
 * conditions are not checked: a preflight does not carry the actual request's headers. */
long route_find_preflight(const struct scenario *s, const struct request *r, const char *rel_path);
bool request_is_preflight(struct request *r);

/* Which response answers the count-th match (1-based) of a route: an index into
 * route->responses, or -1 when the sequence is over and after_last is not_found. */
long route_response_index(const struct route *route, unsigned long count);

#endif
