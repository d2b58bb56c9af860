/* ws_handshake — the opening handshake of RFC 6455 section 4, server side, with no I/O.
 *
 *   ws_accept_for()          Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), with nettle
 *                            (never hand-written); ws_wrong_accept_for() a value that looks
 *                            just as valid (28 base64 characters) but is certainly wrong
 *   ws_handshake_check()     what a client's request lacks (GET, Upgrade: websocket,
 *                            Connection: Upgrade, a key of 16 bytes in base64, version 13),
 *                            as a list of static strings; ws_handshake_problems() the same
 *                            for a struct request
 *   ws_parse_protocols()     the offered subprotocols (comma lists over several headers);
 *                            ws_choose_protocol() the one to answer with, per the scenario
 *   ws_handshake_response()  the answer a struct ws_handshake_spec asks for, as (name, value)
 *                            pairs to add to a libmicrohttpd upgrade response (which adds
 *                            `Connection: Upgrade` itself, so it is not in the list), and
 *                            ws_handshake_raw() as complete HTTP/1.1 bytes, for the faulty
 *                            handshakes written by hand (101 without Upgrade, 200, 403...)
 *
 * Strings handed out are malloc'd unless said otherwise; nothing is global.
 */
#ifndef HARNESS_WS_HANDSHAKE_H
#define HARNESS_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include "request.h"
#include "scenario.h"
#include "tmpl.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* base64(SHA-1(key + GUID)): 28 characters and a NUL. */
void ws_accept_for(const char *key, char out[29]);
/* A wrong accept value for key: the right digest with its first byte inverted, in base64
 * (so it is never the right one, and is as well-formed). */
void ws_wrong_accept_for(const char *key, char out[29]);

/* Is key the base64 of 16 bytes (24 characters, "==" padding, nothing else)? */
bool ws_key_valid(const char *key);

/* The parts of a client's opening handshake (NULL: the header is absent; a header given
 * several times: its values joined with ", "). */
struct ws_client_handshake {
    const char *method;
    const char *upgrade;
    const char *connection;
    const char *key;
    const char *version;
};
/* Its problems, each a static string, up to max in why[]; returns how many (0: valid). */
size_t ws_handshake_check(const struct ws_client_handshake *c, const char **why, size_t max);
/* The same for a request. */
size_t ws_handshake_problems(struct request *r, const char **why, size_t max);

/* Does a comma-separated header value contain token (case-insensitive)? */
bool ws_has_token(const char *value, const char *token);

/* The subprotocols offered in the values of n Sec-WebSocket-Protocol headers (each a comma
 * list; empty items skipped), as a NULL-terminated array of strings (free: ws_free_list). */
char **ws_parse_protocols(const char *const *values, size_t n);
/* The same from a request's headers. */
char **ws_offered_protocols(const struct request *r);
void ws_free_list(char **list);

/* The subprotocol to answer with, or NULL for none (points into offered or h). */
const char *ws_choose_protocol(const struct ws_handshake_spec *h, char **offered);

/* --- the response ---------------------------------------------------------------------- */

struct ws_header_pair {
    char *name;
    char *value;
};

struct ws_hs_response {
    int status;      /* 101, or what the scenario says */
    bool conforming; /* 101, the right accept, `Upgrade: websocket`: libmicrohttpd's upgrade
                      * can send it; otherwise write ws_handshake_raw() by hand */
    bool session;    /* a 101 that a conforming client may accept (the right accept, maybe
                      * padded or twice; Upgrade: websocket): the script runs after it, even
                      * when it is written by hand */
    struct ws_header_pair *headers; /* in order; no Connection (see ws_handshake_raw) */
    size_t n_headers;
    char accept[29];      /* the Sec-WebSocket-Accept value sent; "" when omitted */
    const char *protocol; /* the subprotocol sent (points into offered or h), or NULL */
};

/* The response h asks for to a request with key (NULL: none) and the offered subprotocols:
 * Upgrade (unless h->upgrade_header is false; h->upgrade_value replaces "websocket"),
 * Sec-WebSocket-Accept (right, wrong or omitted), Sec-WebSocket-Protocol,
 * Sec-WebSocket-Extensions, then h's extra headers expanded with ctx (NULL: no request
 * context; placeholders expand to ""). Free with ws_hs_response_free(). */
void ws_handshake_response(const struct ws_handshake_spec *h, const char *key, char **offered,
                           const struct tmpl_ctx *ctx, struct ws_hs_response *out);
void ws_hs_response_free(struct ws_hs_response *r);

/* The whole response as bytes (*len of them, NUL-terminated): the status line, the headers,
 * then `Connection: Upgrade` for a 101, or `Content-Length: 0` and `Connection: close`
 * otherwise (each only if the scenario's headers do not give it), and the blank line. */
char *ws_handshake_raw(const struct ws_hs_response *r, size_t *len);

#endif
