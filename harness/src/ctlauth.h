/* ctlauth — who may use the control API: the token, the Host and the Origin of a control
 * request (docs/control-api.md, "Security").
 *
 * The defences, in the spirit of Jupyter's token and of browsers' own DNS-rebinding
 * defences:
 *   - Host must name the address served, with the control port: the advertised host
 *     (--public-host), the --bind address, the local address the connection reached, or
 *     `localhost` when that address is a loopback one. A DNS-rebinding page sends its own
 *     name: refused.
 *   - A request with an Origin is refused unless the Origin is the control port's own
 *     (which serves no page, so in practice: any Origin). A page on any site, or a
 *     scenario page (another port, so another origin), is refused.
 *   - The token (X-Harness-Token: T, or Authorization: Bearer T) is required on every
 *     request but the health probe. Being a header, it makes every cross-site call a
 *     preflighted one, and a preflight is refused like any request with an Origin.
 * Pure functions of the request's headers: unit-tested (harness/tests/test_ctlauth.c).
 */
#ifndef HARNESS_CTLAUTH_H
#define HARNESS_CTLAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A generated token: 32 random bytes in hex. */
#define CTLAUTH_TOKEN_HEX 64
/* A token given by the user (--token, --token-file, HARNESS_TOKEN): 16 to 256 printable
 * ASCII characters, no space. */
#define CTLAUTH_TOKEN_MIN 16
#define CTLAUTH_TOKEN_MAX 256

struct ctlauth {
    char token[CTLAUTH_TOKEN_MAX + 1];
    const char *public_host; /* borrowed: the advertised host name or address */
    const char *bind;        /* borrowed: the IPv4 address listened on ("0.0.0.0": any) */
    uint16_t port;           /* the control port */
};

enum ctlauth_verdict {
    CTLAUTH_OK,
    CTLAUTH_BAD_HOST,       /* 403: Host is not the address served */
    CTLAUTH_FOREIGN_ORIGIN, /* 403: an Origin other than the control port's own */
    CTLAUTH_NO_TOKEN,       /* 401 */
    CTLAUTH_BAD_TOKEN,      /* 401 */
};

/* The headers of one control request (each NULL if absent) and the local address (dotted
 * IPv4) the connection reached, or NULL if unknown. */
struct ctlauth_request {
    const char *host, *origin, *token, *authorization;
    const char *local_ip;
    bool token_exempt; /* the health probe */
};

/* Fill token with a new random token (getrandom(2)); false if no randomness was had. */
bool ctlauth_new_token(char token[CTLAUTH_TOKEN_MAX + 1]);
/* Is a user's token acceptable? If not, why in buf. */
bool ctlauth_token_ok(const char *token, char *why, size_t len);
/* Is the dotted IPv4 address a loopback one (127.0.0.0/8)? */
bool ctlauth_is_loopback(const char *ip);

enum ctlauth_verdict ctlauth_check(const struct ctlauth *a, const struct ctlauth_request *r);
/* The HTTP status (401 or 403) and the error text of a refusal (static). */
int ctlauth_status(enum ctlauth_verdict v);
const char *ctlauth_message(enum ctlauth_verdict v);

#endif
