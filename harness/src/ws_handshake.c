/* ws_handshake — the server side of RFC 6455's opening handshake; see ws_handshake.h. */
#include "ws_handshake.h"
#include "xalloc.h"

#include <ctype.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void accept_digest(const char *key, uint8_t digest[SHA1_DIGEST_SIZE])
{
    static const char guid[] = WS_GUID;
    struct sha1_ctx ctx;
    sha1_init(&ctx);
    sha1_update(&ctx, strlen(key), (const uint8_t *)key);
    sha1_update(&ctx, sizeof guid - 1, (const uint8_t *)guid);
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
}

void ws_accept_for(const char *key, char out[29])
{
    uint8_t digest[SHA1_DIGEST_SIZE];
    accept_digest(key, digest);
    base64_encode_raw(out, sizeof digest, digest);
    out[28] = 0;
}

void ws_wrong_accept_for(const char *key, char out[29])
{
    uint8_t digest[SHA1_DIGEST_SIZE];
    accept_digest(key, digest);
    digest[0] ^= 0xFF;
    base64_encode_raw(out, sizeof digest, digest);
    out[28] = 0;
}

bool ws_key_valid(const char *key)
{
    if (!key || strlen(key) != 24 || strcmp(key + 22, "=="))
        return false;
    for (int i = 0; i < 22; i++)
        if (!isalnum((unsigned char)key[i]) && key[i] != '+' && key[i] != '/')
            return false;
    struct base64_decode_ctx ctx;
    uint8_t raw[BASE64_DECODE_LENGTH(24)];
    size_t len = sizeof raw;
    base64_decode_init(&ctx);
    return base64_decode_update(&ctx, &len, raw, 24, key) && base64_decode_final(&ctx) && len == 16;
}

bool ws_has_token(const char *value, const char *token)
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

size_t ws_handshake_check(const struct ws_client_handshake *c, const char **why, size_t max)
{
    size_t n = 0;
#define WHY(t)                                                                                     \
    do {                                                                                           \
        if (n < max)                                                                               \
            why[n] = (t);                                                                          \
        n++;                                                                                       \
    } while (0)
    if (!c->method || strcmp(c->method, "GET"))
        WHY("the method is not GET");
    if (!ws_has_token(c->upgrade, "websocket"))
        WHY("no 'Upgrade: websocket'");
    if (!ws_has_token(c->connection, "upgrade"))
        WHY("no 'Connection: Upgrade'");
    if (!c->key)
        WHY("no Sec-WebSocket-Key");
    else if (!ws_key_valid(c->key))
        WHY("Sec-WebSocket-Key is not 16 bytes in base64");
    if (!c->version)
        WHY("no Sec-WebSocket-Version");
    else if (strcmp(c->version, "13"))
        WHY("Sec-WebSocket-Version is not 13");
    return n < max ? n : max;
#undef WHY
}

size_t ws_handshake_problems(struct request *r, const char **why, size_t max)
{
    struct ws_client_handshake c = {
        .method = r->method,
        .upgrade = request_header(r, "Upgrade"),
        .connection = request_header(r, "Connection"),
        .key = request_header(r, "Sec-WebSocket-Key"),
        .version = request_header(r, "Sec-WebSocket-Version"),
    };
    return ws_handshake_check(&c, why, max);
}

char **ws_parse_protocols(const char *const *values, size_t n_values)
{
    size_t n = 0;
    char **list = xmalloc(sizeof *list);
    list[0] = NULL;
    for (size_t h = 0; h < n_values; h++) {
        const char *p = values[h];
        while (p && *p) {
            while (*p == ' ' || *p == ',' || *p == '\t')
                p++;
            const char *end = p;
            while (*end && *end != ',')
                end++;
            const char *e = end;
            while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if (e > p) {
                list = xrealloc(list, (n + 2) * sizeof *list);
                list[n] = xmalloc((size_t)(e - p) + 1);
                memcpy(list[n], p, (size_t)(e - p));
                list[n][e - p] = 0;
                list[++n] = NULL;
            }
            p = end;
        }
    }
    return list;
}

char **ws_offered_protocols(const struct request *r)
{
    const char **values = xmalloc((r->n_headers + 1) * sizeof *values);
    size_t n = 0;
    for (size_t h = 0; h < r->n_headers; h++)
        if (!strcasecmp(r->headers[h].name, "Sec-WebSocket-Protocol"))
            values[n++] = r->headers[h].value;
    char **list = ws_parse_protocols(values, n);
    free(values);
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

/* ---------------------------------------------------------------------------- response */

static void add_header(struct ws_hs_response *r, const char *name, char *value /* taken */)
{
    struct ws_header_pair *h = xrealloc(r->headers, (r->n_headers + 1) * sizeof *h);
    r->headers = h;
    h[r->n_headers].name = xstrdup(name);
    h[r->n_headers].value = value;
    r->n_headers++;
}

void ws_handshake_response(const struct ws_handshake_spec *h, const char *key, char **offered,
                           const struct tmpl_ctx *ctx, struct ws_hs_response *out)
{
    memset(out, 0, sizeof *out);
    out->status = h->status ? h->status : 101;
    bool upgrade = h->upgrade_header || h->upgrade_value;
    if (upgrade)
        add_header(out, "Upgrade", xstrdup(h->upgrade_value ? h->upgrade_value : "websocket"));
    if (h->accept != WS_ACCEPT_OMIT) {
        if (h->accept == WS_ACCEPT_WRONG)
            ws_wrong_accept_for(key ? key : "", out->accept);
        else
            ws_accept_for(key ? key : "", out->accept);
        if (h->accept == WS_ACCEPT_CASE_FLIPPED)
            for (char *c = out->accept; *c; c++)
                *c = (char)(isupper((unsigned char)*c)   ? tolower((unsigned char)*c)
                            : islower((unsigned char)*c) ? toupper((unsigned char)*c)
                                                         : *c);
        if (h->accept == WS_ACCEPT_PADDED) {
            char padded[40];
            snprintf(padded, sizeof padded, " \t %s \t", out->accept);
            add_header(out, "Sec-WebSocket-Accept", xstrdup(padded));
        } else {
            add_header(out, "Sec-WebSocket-Accept", xstrdup(out->accept));
        }
        if (h->accept == WS_ACCEPT_DUPLICATE)
            add_header(out, "Sec-WebSocket-Accept", xstrdup(out->accept));
    }
    if (h->connection)
        add_header(out, "Connection", xstrdup(h->connection));
    out->protocol = ws_choose_protocol(h, offered);
    if (out->protocol)
        add_header(out, "Sec-WebSocket-Protocol", xstrdup(out->protocol));
    if (h->extensions)
        add_header(out, "Sec-WebSocket-Extensions", xstrdup(h->extensions));
    struct tmpl_ctx empty = {0};
    for (size_t i = 0; i < h->headers.n; i++)
        add_header(out, h->headers.items[i].name,
                   tmpl_expand(h->headers.items[i].value, ctx ? ctx : &empty, NULL));
    /* padded and duplicate accepts and another Connection value are written by hand as
     * they are, and the session runs: a client that accepts them gets a working connection */
    bool accept_ok = h->accept == WS_ACCEPT_CORRECT || h->accept == WS_ACCEPT_PADDED ||
                     h->accept == WS_ACCEPT_DUPLICATE;
    out->session = out->status == 101 && accept_ok && key && h->upgrade_header &&
                   (!h->upgrade_value || !strcasecmp(h->upgrade_value, "websocket"));
    out->conforming = out->session && h->accept == WS_ACCEPT_CORRECT && !h->connection;
}

void ws_hs_response_free(struct ws_hs_response *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->n_headers = 0;
}

static bool has_header(const struct ws_hs_response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return true;
    return false;
}

char *ws_handshake_raw(const struct ws_hs_response *r, size_t *len)
{
    const char *phrase = scenario_reason_phrase(r->status);
    size_t cap = 128 + strlen(phrase);
    for (size_t i = 0; i < r->n_headers; i++)
        cap += strlen(r->headers[i].name) + strlen(r->headers[i].value) + 4;
    char *out = xmalloc(cap);
    size_t n = (size_t)snprintf(out, cap, "HTTP/1.1 %d %s\r\n", r->status, phrase);
    for (size_t i = 0; i < r->n_headers; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s: %s\r\n", r->headers[i].name,
                              r->headers[i].value);
    if (r->status == 101) {
        if (!has_header(r, "Connection"))
            n += (size_t)snprintf(out + n, cap - n, "Connection: Upgrade\r\n");
    } else {
        if (!has_header(r, "Content-Length"))
            n += (size_t)snprintf(out + n, cap - n, "Content-Length: 0\r\n");
        if (!has_header(r, "Connection"))
            n += (size_t)snprintf(out + n, cap - n, "Connection: close\r\n");
    }
    n += (size_t)snprintf(out + n, cap - n, "\r\n");
    *len = n;
    return out;
}
