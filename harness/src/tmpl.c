/* tmpl — see tmpl.h. A template is a list of parts: literal text or a placeholder. */
#include "tmpl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum part_kind {
    P_TEXT,
    P_ORIGIN_MAIN,
    P_ORIGIN_CROSS,
    P_ORIGIN_ALT,
    P_BASE,
    P_INSTANCE,
    P_METHOD,
    P_PATH,
    P_TARGET,
    P_BODY,
    P_COUNT,
    P_HEADER,
    P_QUERY,
    P_FULL_TARGET,
    P_ORIGIN_FORM, /* which: origin * 4 + form (FORMS below) */
};

/* The forms of an origin: {{port.X}} and {{origin.X.FORM}}, X = main, cross or alt. */
enum { F_PORT, F_UPPER, F_HTTPS, F_USERINFO };
static const char *const ORIGIN_NAMES[] = {"main", "cross", "alt"};
static const char *const FORM_NAMES[] = {
    [F_UPPER] = "upper", [F_HTTPS] = "https", [F_USERINFO] = "userinfo"};
#define USERINFO "user:pass@"

struct part {
    enum part_kind kind;
    char *text; /* P_TEXT: the text; P_HEADER / P_QUERY: the name */
    size_t len;
    int which; /* P_ORIGIN_FORM */
};

struct tmpl {
    struct part *parts;
    size_t n;
};

static const struct {
    const char *name;
    enum part_kind kind;
} NAMES[] = {
    {"origin.main", P_ORIGIN_MAIN},
    {"origin.cross", P_ORIGIN_CROSS},
    {"origin.alt", P_ORIGIN_ALT},
    {"base", P_BASE},
    {"instance", P_INSTANCE},
    {"request.method", P_METHOD},
    {"request.path", P_PATH},
    {"request.target", P_TARGET},
    {"request.body", P_BODY},
    {"request.count", P_COUNT},
    {"request.full_target", P_FULL_TARGET},
};

/* port.X or origin.X.FORM: its `which`, or -1. */
static int origin_form(const char *n, size_t len)
{
    for (int o = 0; o < 3; o++) {
        char name[40];
        snprintf(name, sizeof name, "port.%s", ORIGIN_NAMES[o]);
        if (strlen(name) == len && !memcmp(name, n, len))
            return o * 4 + F_PORT;
        for (int f = F_UPPER; f <= F_USERINFO; f++) {
            snprintf(name, sizeof name, "origin.%s.%s", ORIGIN_NAMES[o], FORM_NAMES[f]);
            if (strlen(name) == len && !memcmp(name, n, len))
                return o * 4 + f;
        }
    }
    return -1;
}

static void add(struct tmpl *t, enum part_kind kind, const char *text, size_t len)
{
    if (kind == P_TEXT && len == 0)
        return;
    if (kind == P_TEXT && t->n && t->parts[t->n - 1].kind == P_TEXT) {
        struct part *p = &t->parts[t->n - 1];
        p->text = realloc(p->text, p->len + len + 1);
        if (!p->text)
            abort();
        memcpy(p->text + p->len, text, len);
        p->len += len;
        p->text[p->len] = 0;
        return;
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
            for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
                if (strlen(NAMES[i].name) == nlen && !memcmp(NAMES[i].name, n0, nlen))
                    kind = NAMES[i].kind;
            int which = kind == P_TEXT ? origin_form(n0, nlen) : -1;
            if (which >= 0)
                kind = P_ORIGIN_FORM;
            if (kind == P_TEXT && nlen > 15 && !memcmp(n0, "request.header.", 15)) {
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
                         "origin.alt, base, instance, request.method, request.path, "
                         "request.target, request.full_target, request.header.NAME, "
                         "request.query.NAME, request.body, request.count, port.X, "
                         "origin.X.upper, origin.X.https, origin.X.userinfo; X = main, cross "
                         "or alt)",
                         (int)nlen, n0);
                ok = false;
            } else {
                add(t, P_TEXT, lit, (size_t)(p - lit));
                add(t, kind, arg ? arg : "", arglen);
                t->parts[t->n - 1].which = which;
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

const char *tmpl_constant_text(const struct tmpl *t, size_t *len)
{
    if (t->n == 0) {
        *len = 0;
        return "";
    }
    if (t->n == 1 && t->parts[0].kind == P_TEXT) { /* adjacent texts are merged */
        *len = t->parts[0].len;
        return t->parts[0].text;
    }
    return NULL;
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

/* A form of an origin "http://HOST:PORT" (an empty origin gives ""). */
static void origin_form_put(struct out *o, const struct tmpl_ctx *ctx, int which)
{
    const char *origins[] = {ctx->origin_main, ctx->origin_cross, ctx->origin_alt};
    const char *origin = origins[which / 4];
    if (!origin || strncmp(origin, "http://", 7))
        return;
    const char *rest = origin + 7;
    switch (which % 4) {
    case F_PORT: {
        const char *colon = strrchr(rest, ':');
        puts_(o, colon ? colon + 1 : "80");
        break;
    }
    case F_UPPER:
        for (const char *c = origin; *c; c++) {
            char u = (char)toupper((unsigned char)*c);
            put(o, &u, 1);
        }
        break;
    case F_HTTPS:
        puts_(o, "https://");
        puts_(o, rest);
        break;
    case F_USERINFO:
        puts_(o, "http://" USERINFO);
        puts_(o, rest);
        break;
    }
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
        case P_ORIGIN_MAIN:
            puts_(&o, ctx->origin_main);
            break;
        case P_ORIGIN_CROSS:
            puts_(&o, ctx->origin_cross);
            break;
        case P_ORIGIN_ALT:
            puts_(&o, ctx->origin_alt);
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
        case P_FULL_TARGET:
            puts_(&o, ctx->full_target);
            break;
        case P_ORIGIN_FORM:
            origin_form_put(&o, ctx, p->which);
            break;
        }
    }
    if (out_len)
        *out_len = o.len;
    return o.p;
}
