/* ws_handshake — see ws_handshake.h. */
#include "ws_handshake.h"

#include <ctype.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void ws_accept_for(const char *key, char out[29])
{
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof GUID - 1, (const uint8_t *)GUID);
    sha1_digest(&ctx, sizeof digest, digest);
    base64_encode_raw(out, sizeof digest, digest);
    out[28] = 0;
}

/* Does a comma-separated header value contain token (case-insensitive)? */
static bool has_token(const char *value, const char *token)
{
    if (!value)
        return false;
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *e = end;
        while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - p) == tl && !strncasecmp(p, token, tl))
            return true;
        p = end;
    }
    return false;
}

size_t ws_handshake_problems(struct request *r, const char **why, size_t max)
{
    size_t n = 0;
#define WHY(t)                                                                                     \
    do {                                                                                           \
        if (n < max)                                                                               \
            why[n++] = (t);                                                                        \
    } while (0)
    if (strcmp(r->method, "GET"))
        WHY("the method is not GET");
    if (!has_token(request_header(r, "Upgrade"), "websocket"))
        WHY("no 'Upgrade: websocket'");
    if (!has_token(request_header(r, "Connection"), "upgrade"))
        WHY("no 'Connection: Upgrade'");
    const char *key = request_header(r, "Sec-WebSocket-Key");
    if (!key) {
        WHY("no Sec-WebSocket-Key");
    } else {
        struct base64_decode_ctx ctx;
        uint8_t raw[64];
        size_t len = sizeof raw;
        base64_decode_init(&ctx);
        size_t kl = strlen(key);
        if (kl > 40 || !base64_decode_update(&ctx, &len, raw, kl, key) ||
            !base64_decode_final(&ctx) || len != 16)
            WHY("Sec-WebSocket-Key is not 16 bytes in base64");
    }
    const char *version = request_header(r, "Sec-WebSocket-Version");
    if (!version || strcmp(version, "13"))
        WHY("Sec-WebSocket-Version is not 13");
    return n;
#undef WHY
}

char **ws_offered_protocols(const struct request *r)
{
    size_t n = 0;
    char **list = calloc(1, sizeof *list);
    for (size_t h = 0; h < r->n_headers; h++) {
        if (strcasecmp(r->headers[h].name, "Sec-WebSocket-Protocol"))
            continue;
        const char *p = r->headers[h].value;
        while (*p) {
            while (*p == ' ' || *p == ',' || *p == '\t')
                p++;
            const char *end = p;
            while (*end && *end != ',')
                end++;
            const char *e = end;
            while (e > p && isspace((unsigned char)e[-1]))
                e--;
            if (e > p) {
                list = realloc(list, (n + 2) * sizeof *list);
                list[n++] = strndup(p, (size_t)(e - p));
                list[n] = NULL;
            }
            p = end;
        }
    }
    return list;
}

void ws_free_list(char **list)
{
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

const char *ws_choose_protocol(const struct ws_handshake_spec *h, char **offered)
{
    switch (h->subprotocol) {
    case WS_SUB_FIRST_OFFERED:
        return offered && offered[0] ? offered[0] : NULL;
    case WS_SUB_NONE:
        return NULL;
    case WS_SUB_NAMED:
        return h->subprotocol_name;
    }
    return NULL;
}
