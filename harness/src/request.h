/* request — one HTTP request as the server sees it, independent of libmicrohttpd.
 *
 * Built from the raw request target and the header list in arrival order; the query string
 * is split and percent-decoded here ('+' is a space, as in HTML forms), so route matching,
 * templates and the journal all see the same values. Pure data and functions, no I/O.
 */
#ifndef HARNESS_REQUEST_H
#define HARNESS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

struct name_value {
    char *name;
    char *value;
};

struct request {
    char *method;              /* owns one block with target, path and query */
    char *target;              /* as received: "/s/ID/path?x=1" */
    char *path;                /* the target's path, percent-decoding not applied */
    char *query;               /* the raw query string after '?', or "" */
    struct name_value *params; /* the query, split and decoded, in order */
    size_t n_params;
    struct name_value *headers; /* in arrival order, duplicates kept */
    size_t n_headers, cap_headers;
    bool headers_borrowed; /* names and values are borrowed (request_borrow_header) */
    bool tls;              /* it came over TLS (https, wss) */
    unsigned char *body;
    size_t body_len, body_cap;
    char *sni; /* the server name the TLS client asked for, or NULL (owned) */
    /* Per-request joined header values handed out by request_header(). */
    char **scratch;
    size_t n_scratch;
};

/* Set method and target (copies them) and split the target into path and query. */
void request_init(struct request *r, const char *method, const char *target);
void request_add_header(struct request *r, const char *name, const char *value);
/* Make room for n more headers at once. */
void request_reserve_headers(struct request *r, size_t n);
/* Append a header without copying it: name and value must outlive the request's use (the
 * server's come from libmicrohttpd's connection pool, valid until the request completes).
 * A request's headers are all copied or all borrowed. */
void request_borrow_header(struct request *r, const char *name, const char *value);
/* Make room for a body of n bytes at once (a Content-Length), instead of growing by
 * doubling as bytes come: one allocation, whose untouched pages cost nothing. */
void request_reserve_body(struct request *r, size_t n);
/* Append body bytes. False if the body would exceed limit bytes (nothing is appended). */
bool request_append_body(struct request *r, const void *data, size_t len, size_t limit);
void request_free(struct request *r);

/* All values of a header (case-insensitive name) joined with ", ", or NULL if absent. The
 * string lives as long as the request. */
const char *request_header(struct request *r, const char *name);
/* The part of a /s/ID/... path or target after the instance prefix ("" if none): what
 * scenarios call relative to the instance prefix. */
const char *request_rel(const char *full);
/* The number of times a header appears. */
size_t request_header_count(const struct request *r, const char *name);
/* The first value of a query parameter (decoded), or NULL. */
const char *request_param(const struct request *r, const char *name);

/* Is the message framing of the request unambiguous (RFC 9112 6.1, 6.3)? NULL if it is,
 * else why not: two Content-Length headers (even equal ones), a Content-Length that is not
 * one decimal number, Content-Length with Transfer-Encoding, or a Transfer-Encoding other
 * than one "chunked". A server that reads such a request one way while something in front
 * of it reads it another lets a request be smuggled: it answers 400 and closes. *length
 * gets the Content-Length (0 without one). */
const char *request_framing_error(const struct request *r, unsigned long long *length);

/* Percent-decode s into a new string ('+' becomes a space when plus_is_space). Invalid
 * escapes are kept as written. */
char *url_decode(const char *s, size_t len, bool plus_is_space);

#endif
