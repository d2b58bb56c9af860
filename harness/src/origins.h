/* origins — the named origins a server hands to clients, in one table: their names (as the
 * ready line, the control API, {{origin.NAME}} templates and a client's `origin:` key spell
 * them), and the URLs of each under every site topology (docs/tls.md, docs/scenarios.md).
 *
 * A server listens on plain ports (main, cross) and TLS ports (their https twins, and one
 * per deliberately wrong certificate). A scenario picks its topology with two keys:
 *   tls: true     main, cross and alt are the https twins (else plain http)
 *   site: S       the host names: none (default) 127.0.0.1 / 127.0.0.1 / localhost;
 *                 same: a.localhost / a.localhost / www.a.localhost (one site);
 *                 cross: a.localhost / b.localhost / b.localhost (two sites)
 * main_tls, cross_tls and alt_tls are always https; main_http… always http; insecure the
 * main port as http://insecure.test (mixed content); cert_FLAW the port of that flaw under
 * the main host. Every (tls, site) pair has its table, made once
 * when the server starts (origins_make): an instance points at one, nothing is formatted
 * per request.
 */
#ifndef HARNESS_ORIGINS_H
#define HARNESS_ORIGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum origin_id {
    ORIGIN_MAIN,
    ORIGIN_CROSS,
    ORIGIN_ALT,
    ORIGIN_MAIN_TLS,
    ORIGIN_CROSS_TLS,
    ORIGIN_ALT_TLS,
    ORIGIN_MAIN_HTTP,
    ORIGIN_CROSS_HTTP,
    ORIGIN_ALT_HTTP,
    ORIGIN_INSECURE,     /* http://insecure.test:PORT (the main port): see ORIGIN_INSECURE_HOST */
    ORIGIN_CERT_EXPIRED, /* then one per flaw, in the order of enum tls_cert_flaw */
    ORIGIN_CERT_NOT_YET_VALID,
    ORIGIN_CERT_WRONG_NAME,
    ORIGIN_CERT_SELF_SIGNED,
    ORIGIN_CERT_UNTRUSTED_CA,
    ORIGIN_N
};
#define ORIGIN_N_FLAWED 5 /* TLS_CERT_N_FLAWS - 1: every flaw but "good" */
/* A name that is loopback for the browsers only (their adapters map it: Chromium's host
 * resolver rules, Firefox's network.dns.localDomains, WebKit's private /etc/hosts) and is
 * not "potentially trustworthy" (Secure Contexts 3.2), unlike localhost, *.localhost and
 * 127.0.0.1: http to it from an https page is mixed content. */
#define ORIGIN_INSECURE_HOST "insecure.test"

enum origin_site { ORIGIN_SITE_NONE, ORIGIN_SITE_SAME, ORIGIN_SITE_CROSS, ORIGIN_N_SITES };

#define ORIGIN_LEN 300 /* room for one origin URL */

/* "main", "cross", "alt", "main_tls", …, "cert_expired", …: NULL-terminated, indexed by
 * enum origin_id (keys.c takes it as the enum of a client's `origin:`). */
extern const char *const ORIGIN_NAMES[ORIGIN_N + 1];
/* "same", "cross" (the values of a scenario's `site:`), NULL-terminated; index + 1 is the
 * enum origin_site. */
extern const char *const ORIGIN_SITE_NAMES[];

/* The origin named by the len bytes at name; false if none is. */
bool origin_lookup(const char *name, size_t len, enum origin_id *out);

/* The listening ports behind the origins (0: that port is not served). */
struct origin_ports {
    uint16_t main, cross;         /* plain */
    uint16_t main_tls, cross_tls; /* their https twins */
    uint16_t flawed[ORIGIN_N_FLAWED];
};

/* Fill out with every origin for one topology. public_host: the host of main and cross
 * without a site (the --public-host, else the bind address); alt_host: alt's. */
void origins_make(char out[ORIGIN_N][ORIGIN_LEN], const struct origin_ports *ports,
                  const char *public_host, const char *alt_host, bool tls, enum origin_site site);

/* The host names the good certificate must name for every topology: public_host, alt_host
 * and the site names (and 127.0.0.1, ::1). Stored in names (at most ORIGIN_MAX_HOSTS,
 * borrowed strings, no duplicates); returns how many. */
#define ORIGIN_MAX_HOSTS 10
size_t origins_cert_names(const char *public_host, const char *alt_host,
                          const char *names[ORIGIN_MAX_HOSTS]);

#endif
