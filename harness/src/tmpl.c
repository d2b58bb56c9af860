/* tmpl — see tmpl.h. A template is a list of parts: literal text or a placeholder. */
#include "tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum part_kind {
    P_TEXT,
    P_ORIGIN, /* origin.NAME: which one in origin */
    P_BASE,
    P_INSTANCE,
    P_METHOD,
    P_PATH,
    P_TARGET,
    P_BODY,
    P_COUNT,
    P_HEADER,
    P_QUERY,
};

struct part {
    enum part_kind kind;
    char *text; /* P_TEXT: the text; P_HEADER / P_QUERY: the name */
    size_t len;
    enum origin_id origin; /* P_ORIGIN */
};

struct tmpl {
    struct part *parts;
    size_t n;
};

static const struct {
    const char *name;
    enum part_kind kind;
} NAMES[] = {
    {"base", P_BASE},           {"instance", P_INSTANCE},     {"request.method", P_METHOD},
    {"request.path", P_PATH},   {"request.target", P_TARGET}, {"request.body", P_BODY},
    {"request.count", P_COUNT},
};

static struct part *add(struct tmpl *t, enum part_kind kind, const char *text, size_t len)
{
    if (kind == P_TEXT && len == 0)
        return NULL;
    if (kind == P_TEXT && t->n && t->parts[t->n - 1].kind == P_TEXT) {
        struct part *p = &t->parts[t->n - 1];
        p->text = realloc(p->text, p->len + len + 1);
        if (!p->text)
            abort();
        memcpy(p->text + p->len, text, len);
        p->len += len;
        p->text[p->len] = 0;
        return p;
    }
    t->parts = realloc(t->parts, (t->n + 1) * sizeof *t->parts);
    if (!t->parts)
        abort();
    struct part *p = &t->parts[t->n++];
    p->kind = kind;
    p->text = malloc(len + 1);
    if (!p->text)
        abort();
    memcpy(p->text, text, len);
    p->text[len] = 0;
    p->len = len;
    p->origin = ORIGIN_MAIN;
    return p;
}

static struct src_loc at(struct src_loc loc, const char *text, const char *p)
{
    /* columns move with the text; a newline starts a new line */
    for (const char *c = text; c < p; c++) {
        if (*c == '\n') {
            loc.line++;
            loc.col = 1;
        } else {
            loc.col++;
        }
    }
    return loc;
}

struct tmpl *tmpl_compile(const char *text, size_t len, struct src_loc loc, struct diag_list *diags)
{
    struct tmpl *t = calloc(1, sizeof *t);
    if (!t)
        abort();
    bool ok = true;
    const char *p = text, *end = text + len, *lit = text;
    while (p < end) {
        if (p + 4 <= end && !memcmp(p, "{{{{", 4)) {
            add(t, P_TEXT, lit, (size_t)(p - lit));
            add(t, P_TEXT, "{{", 2);
            p += 4;
            lit = p;
            continue;
        }
        if (p + 2 <= end && p[0] == '{' && p[1] == '{') {
            const char *close = NULL;
            for (const char *q = p + 2; q + 1 < end; q++)
                if (q[0] == '}' && q[1] == '}') {
                    close = q;
                    break;
                }
            if (!close) {
                diag_add(diags, at(loc, text, p),
                         "unclosed placeholder '{{' (write {{{{ for a "
                         "literal {{)");
                ok = false;
                break;
            }
            const char *n0 = p + 2, *n1 = close;
            while (n0 < n1 && *n0 == ' ')
                n0++;
            while (n1 > n0 && n1[-1] == ' ')
                n1--;
            size_t nlen = (size_t)(n1 - n0);
            enum part_kind kind = P_TEXT;
            const char *arg = NULL;
            size_t arglen = 0;
            enum origin_id origin = ORIGIN_MAIN;
            for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
                if (strlen(NAMES[i].name) == nlen && !memcmp(NAMES[i].name, n0, nlen))
                    kind = NAMES[i].kind;
            if (kind == P_TEXT && nlen > 7 && !memcmp(n0, "origin.", 7) &&
                origin_lookup(n0 + 7, nlen - 7, &origin)) {
                kind = P_ORIGIN;
            } else if (kind == P_TEXT && nlen > 15 && !memcmp(n0, "request.header.", 15)) {
                kind = P_HEADER;
                arg = n0 + 15;
                arglen = nlen - 15;
            } else if (kind == P_TEXT && nlen > 14 && !memcmp(n0, "request.query.", 14)) {
                kind = P_QUERY;
                arg = n0 + 14;
                arglen = nlen - 14;
            }
            if (kind == P_TEXT) {
                diag_add(diags, at(loc, text, p),
                         "unknown placeholder '{{%.*s}}' (known: origin.main, origin.cross, "
                         "origin.alt, origin.main_tls and the other origins of "
                         "docs/scenarios.md, base, instance, request.method, request.path, "
                         "request.target, request.header.NAME, request.query.NAME, "
                         "request.body, request.count)",
                         (int)nlen, n0);
                ok = false;
            } else {
                add(t, P_TEXT, lit, (size_t)(p - lit));
                add(t, kind, arg ? arg : "", arglen)->origin = origin;
            }
            p = close + 2;
            lit = p;
            continue;
        }
        p++;
    }
    add(t, P_TEXT, lit, (size_t)(end - lit));
    if (!ok) {
        tmpl_free(t);
        return NULL;
    }
    return t;
}

void tmpl_free(struct tmpl *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        free(t->parts[i].text);
    free(t->parts);
    free(t);
}

bool tmpl_is_constant(const struct tmpl *t)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->parts[i].kind != P_TEXT)
            return false;
    return true;
}

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t len)
{
    if (!s)
        return;
    if (o->len + len + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->len + len + 1)
            cap *= 2;
        o->p = realloc(o->p, cap);
        if (!o->p)
            abort();
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, len);
    o->len += len;
    o->p[o->len] = 0;
}

static void puts_(struct out *o, const char *s)
{
    if (s)
        put(o, s, strlen(s));
}

char *tmpl_expand(const struct tmpl *t, const struct tmpl_ctx *ctx, size_t *out_len)
{
    struct out o = {0};
    put(&o, "", 0);
    for (size_t i = 0; i < t->n; i++) {
        const struct part *p = &t->parts[i];
        char num[32];
        switch (p->kind) {
        case P_TEXT:
            put(&o, p->text, p->len);
            break;
        case P_ORIGIN:
            puts_(&o, ctx->origins[p->origin]);
            break;
        case P_BASE:
            puts_(&o, ctx->base);
            break;
        case P_INSTANCE:
            puts_(&o, ctx->instance);
            break;
        case P_METHOD:
            puts_(&o, ctx->method);
            break;
        case P_PATH:
            puts_(&o, ctx->path);
            break;
        case P_TARGET:
            puts_(&o, ctx->target);
            break;
        case P_BODY:
            put(&o, ctx->body, ctx->body ? ctx->body_len : 0);
            break;
        case P_COUNT:
            snprintf(num, sizeof num, "%lu", ctx->count);
            puts_(&o, num);
            break;
        case P_HEADER:
            if (ctx->header)
                puts_(&o, ctx->header(ctx->req, p->text));
            break;
        case P_QUERY:
            if (ctx->query)
                puts_(&o, ctx->query(ctx->req, p->text));
            break;
        }
    }
    if (out_len)
        *out_len = o.len;
    return o.p;
}
