/* ws_handshake — the opening handshake of RFC 6455 section 4, server side.
 *
 * Sec-WebSocket-Accept is computed with nettle (SHA-1, base64), never by hand. The checks
 * say what a client request lacks; the choice of subprotocol follows the scenario (the
 * first offered, none, or a named one even if not offered, to see clients fail it).
 */
#ifndef HARNESS_WS_HANDSHAKE_H
#define HARNESS_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include "request.h"
#include "scenario.h"

/* base64(SHA-1(key + GUID)): 28 characters and a NUL. */
void ws_accept_for(const char *key, char out[29]);

/* Problems of a client's opening handshake (method, Upgrade, Connection, key, version),
 * each a static string; returns how many (0: a valid handshake). */
size_t ws_handshake_problems(struct request *r, const char **why, size_t max);

/* The offered subprotocols (Sec-WebSocket-Protocol, comma lists, several headers), as a
 * malloc'd NULL-terminated array of malloc'd strings. */
char **ws_offered_protocols(const struct request *r);
void ws_free_list(char **list);

/* The subprotocol to answer with, or NULL for none (points into offered or spec). */
const char *ws_choose_protocol(const struct ws_handshake_spec *h, char **offered);

#endif
