/* caps — the limits of a server, their options and defaults; see caps.h. */
#include "caps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const struct caps CAPS_DEFAULT = {
    .max_connections = 10000,
    .max_connections_per_ip = 0,
    .idle_timeout_s = 60,
    .header_timeout_s = 60,
    .body_timeout_s = 120,
    .max_body = 64u << 20,
    .max_buffered = 256u << 20,
    .conn_memory = CAPS_CONN_MEMORY_DEFAULT,
};

#define OPT(name, unit, field, help)                                                               \
    {                                                                                              \
        name, unit, offsetof(struct caps, field), help                                             \
    }

const struct caps_option CAPS_OPTIONS[] = {
    OPT("max-connections", CAPS_COUNT, max_connections, "open connections, both ports"),
    OPT("max-connections-per-ip", CAPS_COUNT, max_connections_per_ip, "from one address, 0: any"),
    OPT("idle-timeout", CAPS_SECONDS, idle_timeout_s, "close when idle this long"),
    OPT("header-timeout", CAPS_SECONDS, header_timeout_s, "to send request line+headers"),
    OPT("body-timeout", CAPS_SECONDS, body_timeout_s, "to send the request body"),
    OPT("max-body", CAPS_BYTES, max_body, "the largest request body"),
    OPT("max-buffered", CAPS_BYTES, max_buffered, "bodies in memory, in all"),
    OPT("conn-memory", CAPS_BYTES, conn_memory, "request head, per connection"),
};
const size_t CAPS_N_OPTIONS = sizeof CAPS_OPTIONS / sizeof CAPS_OPTIONS[0];

bool caps_set(struct caps *l, const struct caps_option *o, const char *text)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *text == '-')
        return false;
    if (o->unit == CAPS_BYTES && *end) {
        int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : -1;
        if (shift < 0 || end[1] || v > (~0ull >> shift))
            return false;
        v <<= shift;
        end++;
    }
    if (*end)
        return false;
    char *field = (char *)l + o->offset;
    if (o->unit == CAPS_BYTES) {
        if (v > (size_t)-1)
            return false;
        *(size_t *)field = (size_t)v;
    } else {
        if (v > 1000000000ull)
            return false;
        *(unsigned *)field = (unsigned)v;
    }
    return true;
}

const char *caps_format(const struct caps *l, const struct caps_option *o, char *buf, size_t len)
{
    const char *field = (const char *)l + o->offset;
    if (o->unit != CAPS_BYTES) {
        snprintf(buf, len, "%u", *(const unsigned *)field);
        return buf;
    }
    size_t v = *(const size_t *)field;
    static const char SUFFIX[] = "GMK";
    for (int i = 0; i < 3; i++) {
        size_t unit = (size_t)1 << (30 - 10 * i);
        if (v && v % unit == 0) {
            snprintf(buf, len, "%zu%c", v / unit, SUFFIX[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%zu", v);
    return buf;
}

void caps_usage(FILE *out)
{
    static const char *const ARG[] = {
        [CAPS_COUNT] = "N", [CAPS_SECONDS] = "S", [CAPS_BYTES] = "BYTES"};
    for (size_t i = 0; i < CAPS_N_OPTIONS; i++) {
        const struct caps_option *o = &CAPS_OPTIONS[i];
        char opt[64], def[32];
        snprintf(opt, sizeof opt, "--%s %s", o->name, ARG[o->unit]);
        fprintf(out, "  %-29s %-29s (default %s)\n", opt, o->help,
                caps_format(&CAPS_DEFAULT, o, def, sizeof def));
    }
}

bool caps_take(struct caps_budget *b, size_t n)
{
    size_t used = atomic_load(&b->used);
    do {
        if (n > b->cap || used > b->cap - n)
            return false;
    } while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
    return true;
}

void caps_give(struct caps_budget *b, size_t n)
{
    atomic_fetch_sub(&b->used, n);
}
