/* origins — see origins.h. */
#include "origins.h"

#include <stdio.h>
#include <string.h>

const char *const ORIGIN_NAMES[ORIGIN_N + 1] = {
    "main",
    "cross",
    "alt",
    "main_tls",
    "cross_tls",
    "alt_tls",
    "main_http",
    "cross_http",
    "alt_http",
    "insecure",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_wrong_name",
    "cert_self_signed",
    "cert_untrusted_ca",
    NULL,
};

const char *const ORIGIN_SITE_NAMES[] = {"same", "cross", NULL};

/* The host names of a site topology: main, cross, alt (NULL: the server's own). */
static const char *const SITE_HOSTS[ORIGIN_N_SITES][3] = {
    [ORIGIN_SITE_NONE] = {NULL, NULL, NULL},
    [ORIGIN_SITE_SAME] = {"a.localhost", "a.localhost", "www.a.localhost"},
    [ORIGIN_SITE_CROSS] = {"a.localhost", "b.localhost", "b.localhost"},
};

bool origin_lookup(const char *name, size_t len, enum origin_id *out)
{
    for (int i = 0; i < ORIGIN_N; i++)
        if (strlen(ORIGIN_NAMES[i]) == len && !memcmp(ORIGIN_NAMES[i], name, len)) {
            *out = (enum origin_id)i;
            return true;
        }
    return false;
}

static void put(char out[ORIGIN_LEN], bool tls, const char *host, uint16_t port)
{
    if (!port)
        out[0] = 0;
    else
        snprintf(out, ORIGIN_LEN, "%s://%s:%u", tls ? "https" : "http", host, port);
}

void origins_make(char out[ORIGIN_N][ORIGIN_LEN], const struct origin_ports *ports,
                  const char *public_host, const char *alt_host, bool tls, enum origin_site site)
{
    const char *const *sh = SITE_HOSTS[site];
    const char *host[3] = {sh[0] ? sh[0] : public_host, sh[1] ? sh[1] : public_host,
                           sh[2] ? sh[2] : alt_host};
    uint16_t plain[3] = {ports->main, ports->cross, ports->main};
    uint16_t secure[3] = {ports->main_tls, ports->cross_tls, ports->main_tls};
    for (int i = 0; i < 3; i++) {
        put(out[ORIGIN_MAIN + i], tls, host[i], tls ? secure[i] : plain[i]);
        put(out[ORIGIN_MAIN_TLS + i], true, host[i], secure[i]);
        put(out[ORIGIN_MAIN_HTTP + i], false, host[i], plain[i]);
    }
    put(out[ORIGIN_INSECURE], false, ORIGIN_INSECURE_HOST, ports->main);
    for (int f = 0; f < ORIGIN_N_FLAWED; f++)
        put(out[ORIGIN_CERT_EXPIRED + f], true, host[0], ports->flawed[f]);
}

static void add_name(const char *names[ORIGIN_MAX_HOSTS], size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(names[i], name))
            return;
    if (*n < ORIGIN_MAX_HOSTS)
        names[(*n)++] = name;
}

size_t origins_cert_names(const char *public_host, const char *alt_host,
                          const char *names[ORIGIN_MAX_HOSTS])
{
    size_t n = 0;
    add_name(names, &n, "localhost");
    add_name(names, &n, public_host);
    add_name(names, &n, alt_host);
    for (int s = 0; s < ORIGIN_N_SITES; s++)
        for (int i = 0; i < 3; i++)
            if (SITE_HOSTS[s][i])
                add_name(names, &n, SITE_HOSTS[s][i]);
    add_name(names, &n, "127.0.0.1");
    add_name(names, &n, "::1");
    return n;
}
