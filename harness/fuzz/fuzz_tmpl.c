/* libFuzzer target for the template engine: the input is compiled as a template (as if it
 * started at line 1, column 1 of a file) and, when it compiles, expanded against a fixed
 * context with a few request headers and query values. A plain reference expander (the
 * grammar of tmpl.h written out again, the other way round: scan, look the name up in the
 * same table as the context) judges both: the input compiles exactly when the reference
 * finds no unknown or unclosed placeholder; the expansion is the reference's byte for byte;
 * a constant template expands to its own text (with "{{{{" read as "{{"); every error lies
 * inside the input.
 *
 *   make fuzz FUZZ_SECONDS=120      (seeds: harness/fuzz/corpus/tmpl, tmpl.dict)
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "diag.h"
#include "tmpl.h"
#include "xalloc.h"

static const char BODY[] = "body\0with NUL";

static const char *const HEADERS[][2] = {
    {"Origin", "http://127.0.0.1:8001"},
    {"X-Test", "a, b"},
    {"Cookie", "k=v"},
    {"Empty", ""},
};
static const char *const QUERIES[][2] = {
    {"callback", "cb"},
    {"cursor", "3"},
    {"q", "a b&c"},
    {"", "nameless"},
};

static const char *lookup(const char *const table[][2], size_t n, const char *name, bool icase)
{
    for (size_t i = 0; i < n; i++)
        if (icase ? !strcasecmp(table[i][0], name) : !strcmp(table[i][0], name))
            return table[i][1];
    return NULL;
}

static const char *header(void *req, const char *name)
{
    (void)req;
    return lookup(HEADERS, sizeof HEADERS / sizeof HEADERS[0], name, true);
}

static const char *query(void *req, const char *name)
{
    (void)req;
    return lookup(QUERIES, sizeof QUERIES / sizeof QUERIES[0], name, false);
}

static const struct tmpl_ctx CTX = {
    .origins = {[ORIGIN_MAIN] = "http://127.0.0.1:8001",
                [ORIGIN_CROSS] = "http://127.0.0.1:8002",
                [ORIGIN_ALT] = "http://localhost:8001",
                [ORIGIN_MAIN_TLS] = "https://127.0.0.1:8003"},
    .base = "/s/i1",
    .instance = "i1",
    .method = "GET",
    .path = "/p",
    .target = "/p?q=1",
    .full_target = "/s/i1/p?q=1",
    .body = BODY,
    .body_len = sizeof BODY - 1,
    .count = 18446744073709551615ul,
    .header = header,
    .query = query,
};

/* A growing byte buffer for the reference expansion. */
struct buf {
    char *p;
    size_t len;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (!s)
        return;
    b->p = xrealloc(b->p, b->len + n + 1);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void puts_(struct buf *b, const char *s)
{
    if (s)
        put(b, s, strlen(s));
}

/* Expands name (n bytes, spaces trimmed) into b; false if it is no placeholder. */
static bool ref_placeholder(struct buf *b, const char *name, size_t n)
{
    static const char *const FIXED[] = {"base",         "instance",       "request.method",
                                        "request.path", "request.target", "request.full_target"};
    const char *values[] = {CTX.base, CTX.instance, CTX.method,
                            CTX.path, CTX.target,   CTX.full_target};
    /* the forms of the first three origins, written out by hand from CTX above */
    static const char *const FORMS[][2] = {
        {"port.main", "8001"},
        {"port.cross", "8002"},
        {"port.alt", "8001"},
        {"origin.main.upper", "HTTP://127.0.0.1:8001"},
        {"origin.cross.upper", "HTTP://127.0.0.1:8002"},
        {"origin.alt.upper", "HTTP://LOCALHOST:8001"},
        {"origin.main.https", "https://127.0.0.1:8001"},
        {"origin.cross.https", "https://127.0.0.1:8002"},
        {"origin.alt.https", "https://localhost:8001"},
        {"origin.main.userinfo", "http://user:pass@127.0.0.1:8001"},
        {"origin.cross.userinfo", "http://user:pass@127.0.0.1:8002"},
        {"origin.alt.userinfo", "http://user:pass@localhost:8001"},
    };
    for (size_t i = 0; i < sizeof FORMS / sizeof FORMS[0]; i++)
        if (strlen(FORMS[i][0]) == n && !memcmp(FORMS[i][0], name, n)) {
            puts_(b, FORMS[i][1]);
            return true;
        }
    /* origin.NAME: every name of the one table (origins.h), "" where CTX has none */
    for (size_t i = 0; ORIGIN_NAMES[i]; i++)
        if (n == 7 + strlen(ORIGIN_NAMES[i]) && !memcmp(name, "origin.", 7) &&
            !memcmp(name + 7, ORIGIN_NAMES[i], n - 7)) {
            puts_(b, CTX.origins[i]);
            return true;
        }
    for (size_t i = 0; i < sizeof FIXED / sizeof FIXED[0]; i++)
        if (strlen(FIXED[i]) == n && !memcmp(FIXED[i], name, n)) {
            puts_(b, values[i]);
            return true;
        }
    if (n == 12 && !memcmp(name, "request.body", 12)) {
        put(b, CTX.body, CTX.body_len);
        return true;
    }
    if (n == 13 && !memcmp(name, "request.count", 13)) {
        puts_(b, "18446744073709551615");
        return true;
    }
    const char *prefix[] = {"request.header.", "request.query."};
    for (int k = 0; k < 2; k++) {
        size_t pl = strlen(prefix[k]);
        if (n > pl && !memcmp(name, prefix[k], pl)) {
            /* the callbacks see a C string: the name stops at a NUL */
            char *arg = xstrndup(name + pl, n - pl);
            puts_(b, k == 0 ? header(NULL, arg) : query(NULL, arg));
            free(arg);
            return true;
        }
    }
    return false;
}

/* The reference: returns false if the text has an unknown or unclosed placeholder; else b
 * gets the expansion and *constant whether there was no placeholder at all. */
static bool reference(const char *s, size_t n, struct buf *b, bool *constant)
{
    *constant = true;
    size_t i = 0;
    while (i < n) {
        if (n - i >= 4 && !memcmp(s + i, "{{{{", 4)) {
            put(b, "{{", 2);
            i += 4;
        } else if (n - i >= 2 && !memcmp(s + i, "{{", 2)) {
            const char *close = NULL;
            for (size_t j = i + 2; j + 1 < n; j++)
                if (s[j] == '}' && s[j + 1] == '}') {
                    close = s + j;
                    break;
                }
            if (!close)
                return false;
            const char *a = s + i + 2, *z = close;
            while (a < z && *a == ' ')
                a++;
            while (z > a && z[-1] == ' ')
                z--;
            if (!ref_placeholder(b, a, (size_t)(z - a)))
                return false;
            *constant = false;
            i = (size_t)(close - s) + 2;
        } else {
            put(b, s + i, 1);
            i++;
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    const char *text = (const char *)data;
    struct diag_list diags;
    diag_init(&diags);
    struct tmpl *t = tmpl_compile(text, size, (struct src_loc){"fuzz", 1, 1}, &diags);
    struct buf want = {0};
    bool constant;
    bool valid = reference(text, size, &want, &constant);
    if ((t != NULL) != valid || (t == NULL) != (diags.n > 0))
        abort();
    /* errors: inside the input (a line per LF, a column per byte) */
    long lines = 1, cols = 1, col = 1;
    for (size_t i = 0; i < size; i++) {
        col = data[i] == '\n' ? 1 : col + 1;
        lines += data[i] == '\n';
        cols = col > cols ? col : cols;
    }
    for (size_t i = 0; i < diags.n; i++) {
        const struct diag *d = &diags.items[i];
        if (d->line < 1 || d->line > lines || d->col < 1 || d->col > cols)
            abort();
    }
    if (t) {
        if (tmpl_is_constant(t) != constant)
            abort();
        size_t len = 0;
        char *got = tmpl_expand(t, &CTX, &len);
        if (!got || got[len] || len != want.len || (len && memcmp(got, want.p, len)))
            abort();
        /* a text without "{{" is its own expansion */
        if (!memmem(data, size, "{{", 2) && (len != size || (len && memcmp(got, data, len))))
            abort();
        free(got);
    }
    free(want.p);
    tmpl_free(t);
    diag_free(&diags);
    return 0;
}
