/* request — see request.h. */
#include "request.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *url_decode(const char *s, size_t len, bool plus_is_space)
{
    char *out = xrealloc(NULL, len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int h, l;
        if (s[i] == '%' && i + 2 < len && (h = hexval((unsigned char)s[i + 1])) >= 0 &&
            (l = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (char)(h * 16 + l);
            i += 2;
        } else if (s[i] == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return out;
}

static void split_query(struct request *r)
{
    const char *q = r->query;
    while (*q) {
        const char *end = strchr(q, '&');
        size_t len = end ? (size_t)(end - q) : strlen(q);
        if (len > 0) {
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            r->params = xrealloc(r->params, (r->n_params + 1) * sizeof *r->params);
            r->params[r->n_params].name = url_decode(q, nlen, true);
            r->params[r->n_params].value =
                eq ? url_decode(eq + 1, len - nlen - 1, true) : xstrndup("", 0);
            r->n_params++;
        }
        q += len;
        if (*q == '&')
            q++;
    }
}

void request_init(struct request *r, const char *method, const char *target)
{
    memset(r, 0, sizeof *r);
    const char *qm = strchr(target, '?');
    size_t mlen = strlen(method), tlen = strlen(target);
    size_t plen = qm ? (size_t)(qm - target) : tlen;
    const char *hash = memchr(target, '#', plen);
    if (hash)
        plen = (size_t)(hash - target);
    size_t qlen = qm ? strcspn(qm + 1, "#") : 0;
    /* one allocation for the four strings (method owns it): a request held for as long as
     * a stream lasts costs one block, not four */
    char *p = xmalloc(mlen + tlen + plen + qlen + 4);
    r->method = memcpy(p, method, mlen);
    p[mlen] = '\0';
    r->target = memcpy(p += mlen + 1, target, tlen);
    p[tlen] = '\0';
    r->path = memcpy(p += tlen + 1, target, plen);
    p[plen] = '\0';
    r->query = memcpy(p += plen + 1, qm ? qm + 1 : "", qlen);
    p[qlen] = '\0';
    split_query(r);
}

void request_reserve_headers(struct request *r, size_t n)
{
    if (r->n_headers + n > r->cap_headers) {
        r->cap_headers = r->n_headers + n;
        r->headers = xrealloc(r->headers, r->cap_headers * sizeof *r->headers);
    }
}

static void append_header(struct request *r, char *name, char *value)
{
    if (r->n_headers == r->cap_headers)
        request_reserve_headers(r, r->cap_headers ? r->cap_headers : 16);
    r->headers[r->n_headers].name = name;
    r->headers[r->n_headers].value = value;
    r->n_headers++;
}

void request_add_header(struct request *r, const char *name, const char *value)
{
    append_header(r, xstrndup(name, strlen(name)),
                  xstrndup(value ? value : "", value ? strlen(value) : 0));
}

void request_borrow_header(struct request *r, const char *name, const char *value)
{
    r->headers_borrowed = true;
    append_header(r, (char *)name, (char *)(value ? value : ""));
}

void request_reserve_body(struct request *r, size_t n)
{
    if (n + 1 > r->body_cap) {
        r->body = xrealloc(r->body, n + 1);
        r->body_cap = n + 1;
    }
}

bool request_append_body(struct request *r, const void *data, size_t len, size_t limit)
{
    if (r->body_len + len > limit)
        return false;
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap : 1024;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        r->body = xrealloc(r->body, cap);
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return true;
}

void request_free(struct request *r)
{
    free(r->sni);
    free(r->method); /* and target, path and query (request_init) */
    for (size_t i = 0; i < r->n_params; i++) {
        free(r->params[i].name);
        free(r->params[i].value);
    }
    free(r->params);
    for (size_t i = 0; i < r->n_headers && !r->headers_borrowed; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    free(r->body);
    for (size_t i = 0; i < r->n_scratch; i++)
        free(r->scratch[i]);
    free(r->scratch);
    memset(r, 0, sizeof *r);
}

const char *request_header(struct request *r, const char *name)
{
    size_t total = 0, count = 0;
    const char *only = NULL;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!strcasecmp(r->headers[i].name, name)) {
            total += strlen(r->headers[i].value) + 2;
            count++;
            only = r->headers[i].value;
        }
    }
    if (count <= 1)
        return only;
    char *joined = xrealloc(NULL, total + 1);
    joined[0] = '\0';
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!strcasecmp(r->headers[i].name, name)) {
            if (joined[0])
                strcat(joined, ", ");
            strcat(joined, r->headers[i].value);
        }
    }
    r->scratch = xrealloc(r->scratch, (r->n_scratch + 1) * sizeof *r->scratch);
    r->scratch[r->n_scratch++] = joined;
    return joined;
}

size_t request_header_count(const struct request *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name))
            n++;
    return n;
}

/* The value of the only header name (NULL if absent or repeated). */
static const char *only_value(const struct request *r, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name))
            v = r->headers[i].value;
    return v;
}

const char *request_framing_error(const struct request *r, unsigned long long *length)
{
    *length = 0;
    size_t n_cl = request_header_count(r, "Content-Length");
    size_t n_te = request_header_count(r, "Transfer-Encoding");
    if (n_cl > 1)
        return "more than one Content-Length";
    if (n_cl && n_te)
        return "both Content-Length and Transfer-Encoding";
    if (n_te > 1)
        return "more than one Transfer-Encoding";
    if (n_te && strcasecmp(only_value(r, "Transfer-Encoding"), "chunked"))
        return "a Transfer-Encoding other than chunked";
    if (n_cl) {
        const char *v = only_value(r, "Content-Length");
        if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
            return "a Content-Length that is not a decimal number";
        *length = strtoull(v, NULL, 10);
    }
    return NULL;
}

const char *request_param(const struct request *r, const char *name)
{
    for (size_t i = 0; i < r->n_params; i++)
        if (!strcmp(r->params[i].name, name))
            return r->params[i].value;
    return NULL;
}

const char *request_rel(const char *full)
{
    /* full starts with /s/ID */
    const char *p = full + 3;
    p += strcspn(p, "/?#");
    return p;
}
