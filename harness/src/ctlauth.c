/* ctlauth — who may use the control API; see ctlauth.h. */
#include "ctlauth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

bool ctlauth_new_token(char token[CTLAUTH_TOKEN_MAX + 1])
{
    unsigned char raw[CTLAUTH_TOKEN_HEX / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        sprintf(token + 2 * i, "%02x", raw[i]);
    token[CTLAUTH_TOKEN_HEX] = 0;
    return true;
}

bool ctlauth_token_ok(const char *token, char *why, size_t len)
{
    size_t n = strlen(token);
    if (n < CTLAUTH_TOKEN_MIN || n > CTLAUTH_TOKEN_MAX) {
        snprintf(why, len, "a token has %d to %d characters (this one has %zu)", CTLAUTH_TOKEN_MIN,
                 CTLAUTH_TOKEN_MAX, n);
        return false;
    }
    for (const char *c = token; *c; c++)
        if (*c <= ' ' || *c > '~') {
            snprintf(why, len, "a token is printable ASCII without spaces");
            return false;
        }
    return true;
}

bool ctlauth_is_loopback(const char *ip)
{
    struct in_addr a;
    return ip && inet_pton(AF_INET, ip, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* Does "name[:port]" (a Host header, or an Origin without its scheme) name the served
 * address on the control port? */
static bool host_ok(const struct ctlauth *a, const char *local_ip, const char *hostport)
{
    const char *colon = strrchr(hostport, ':');
    size_t namelen = colon ? (size_t)(colon - hostport) : strlen(hostport);
    unsigned long port = 80;
    if (colon) {
        char *end;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1)
            return false;
    }
    if (port != a->port || namelen == 0)
        return false;
    const char *names[4] = {a->public_host, NULL, local_ip, NULL};
    if (a->bind && strcmp(a->bind, "0.0.0.0"))
        names[1] = a->bind;
    if (ctlauth_is_loopback(local_ip))
        names[3] = "localhost";
    for (size_t i = 0; i < 4; i++)
        if (names[i] && strlen(names[i]) == namelen && !strncasecmp(names[i], hostport, namelen))
            return true;
    return false;
}

/* Compare in time independent of where they differ. */
static bool same_token(const char *given, const char *want)
{
    size_t n = strlen(want), m = strlen(given);
    unsigned char diff = n != m;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

enum ctlauth_verdict ctlauth_check(const struct ctlauth *a, const struct ctlauth_request *r)
{
    if (!r->host || !host_ok(a, r->local_ip, r->host))
        return CTLAUTH_BAD_HOST;
    if (r->origin) {
        static const char scheme[] = "http://";
        if (strncasecmp(r->origin, scheme, sizeof scheme - 1) ||
            !host_ok(a, r->local_ip, r->origin + sizeof scheme - 1))
            return CTLAUTH_FOREIGN_ORIGIN;
    }
    if (r->token_exempt)
        return CTLAUTH_OK;
    const char *given = r->token;
    if (!given && r->authorization && !strncasecmp(r->authorization, "Bearer ", 7)) {
        given = r->authorization + 7;
        while (*given == ' ')
            given++;
    }
    if (!given)
        return CTLAUTH_NO_TOKEN;
    return same_token(given, a->token) ? CTLAUTH_OK : CTLAUTH_BAD_TOKEN;
}

int ctlauth_status(enum ctlauth_verdict v)
{
    return v == CTLAUTH_NO_TOKEN || v == CTLAUTH_BAD_TOKEN ? 401 : v == CTLAUTH_OK ? 200 : 403;
}

const char *ctlauth_message(enum ctlauth_verdict v)
{
    switch (v) {
    case CTLAUTH_OK:
        return "ok";
    case CTLAUTH_BAD_HOST:
        return "refused: the Host header does not name this server's control address";
    case CTLAUTH_FOREIGN_ORIGIN:
        return "refused: requests from web pages (an Origin header) are not accepted";
    case CTLAUTH_NO_TOKEN:
        return "the control API needs the token of the ready line: send X-Harness-Token: TOKEN";
    case CTLAUTH_BAD_TOKEN:
        return "wrong token (X-Harness-Token or Authorization: Bearer)";
    }
    return "refused";
}
