/* ld — see ld.h. */
#include "ld.h"

#include <ctype.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <nettle/base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fsroot.h"
#include "xalloc.h"

struct ld_value {
    const struct ynode *node; /* borrowed: the tree outlives the struct ld's use */
    uint64_t ms;
};

void ld_err(struct ld *ld, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_addv(ld->d, n ? n->loc : (struct src_loc){ld->file, 1, 1}, fmt, ap);
    va_end(ap);
}

void ld_done(struct ld *ld)
{
    free(ld->values);
    ld->values = NULL;
    ld->n_values = ld->cap_values = 0;
    strmap_free(&ld->route_names);
    strmap_free(&ld->channel_names);
}

/* ------------------------------------------------------------------ shapes */

bool ld_is_map(struct ld *ld, const struct ynode *n, const char *what)
{
    if (n && n->kind == Y_MAP)
        return true;
    if (n)
        ld_err(ld, n, "%s: expected a mapping, got %s", what, ynode_kind_name(n));
    return false;
}

bool ld_is_seq(struct ld *ld, const struct ynode *n, const char *what)
{
    if (n && n->kind == Y_SEQ)
        return true;
    if (n)
        ld_err(ld, n, "%s: expected a sequence, got %s", what, ynode_kind_name(n));
    return false;
}

const char *ld_text(struct ld *ld, const struct ynode *n, const char *what)
{
    if (!n)
        return NULL;
    if (n->kind != Y_SCALAR || n->type == YS_NULL) {
        ld_err(ld, n, "%s: expected a string, got %s", what, ynode_kind_name(n));
        return NULL;
    }
    return n->str;
}

const char *ld_string(struct ld *ld, const struct ynode *n, const char *what)
{
    if (!n)
        return NULL;
    if (n->kind != Y_SCALAR || n->type != YS_STRING) {
        ld_err(ld, n, "%s: expected a string, got %s", what, ynode_kind_name(n));
        return NULL;
    }
    return n->str;
}

bool ld_int(struct ld *ld, const struct ynode *n, long long min, long long max, long long *out,
            const char *what)
{
    if (!n)
        return false;
    if (n->kind != Y_SCALAR || n->type != YS_INT) {
        ld_err(ld, n, "%s: expected an integer, got %s", what, ynode_kind_name(n));
        return false;
    }
    if (n->i < min || n->i > max) {
        ld_err(ld, n, "%s: %lld is out of range (%lld to %lld)", what, n->i, min, max);
        return false;
    }
    *out = n->i;
    return true;
}

bool ld_bool(struct ld *ld, const struct ynode *n, bool *out, const char *what)
{
    if (!n)
        return false;
    if (n->kind != Y_SCALAR || n->type != YS_BOOL) {
        ld_err(ld, n, "%s: expected true or false, got %s", what, ynode_kind_name(n));
        return false;
    }
    *out = n->b;
    return true;
}

bool ld_enum(struct ld *ld, const struct ynode *n, const char *const *values, int *out,
             const char *what)
{
    const char *s = ld_string(ld, n, what);
    if (!s)
        return false;
    char list[256] = "";
    size_t len = 0;
    for (int i = 0; values[i]; i++) {
        if (!strcmp(values[i], s)) {
            *out = i;
            return true;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s",
                                i == 0          ? ""
                                : values[i + 1] ? ", "
                                                : " or ",
                                values[i]);
        if (len >= sizeof list)
            len = sizeof list - 1;
    }
    ld_err(ld, n, "%s: expected %s, got '%s'", what, list, s);
    return false;
}

/* ------------------------------------------------------------------ durations */

/* The string form: [spaces] NUMBER [spaces] [UNIT] [spaces]. -1: not a duration. */
static double duration_text(const char *s)
{
    while (*s == ' ')
        s++;
    double v = 0, scale = 1;
    bool digits = false;
    for (; isdigit((unsigned char)*s); s++, digits = true)
        v = v * 10 + (*s - '0');
    if (*s == '.') {
        s++;
        for (double f = 0.1; isdigit((unsigned char)*s); s++, f /= 10, digits = true)
            v += (*s - '0') * f;
    }
    if (!digits)
        return -1;
    while (*s == ' ')
        s++;
    size_t unit = strcspn(s, " ");
    if (unit == 0 || (unit == 2 && !strncmp(s, "ms", 2)))
        scale = 1;
    else if (unit == 1 && *s == 's')
        scale = 1000;
    else if ((unit == 1 && *s == 'm') || (unit == 3 && !strncmp(s, "min", 3)))
        scale = 60000;
    else
        return -1;
    for (s += unit; *s == ' '; s++)
        ;
    return *s ? -1 : v * scale;
}

bool ld_duration(struct ld *ld, const struct ynode *n, uint64_t *ms, const char *what)
{
    if (!n)
        return false;
    double v = -1;
    bool negative = false;
    if (n->kind == Y_SCALAR && (n->type == YS_INT || n->type == YS_FLOAT)) {
        v = n->type == YS_INT ? (double)n->i : n->f;
        negative = v < 0;
    } else if (n->kind == Y_SCALAR && n->type == YS_STRING) {
        v = duration_text(n->str);
        negative = v < 0 && n->str[strspn(n->str, " ")] == '-' &&
                   duration_text(n->str + strspn(n->str, " ") + 1) >= 0;
    }
    if (negative) {
        ld_err(ld, n, "%s: a duration cannot be negative", what);
        return false;
    }
    if (!(v >= 0)) {
        ld_err(ld, n,
               "%s: expected a duration (milliseconds, or a string such as \"500ms\", "
               "\"1.5s\", \".5s\", \"2min\"), got '%s'",
               what, n->kind == Y_SCALAR ? n->str : ynode_kind_name(n));
        return false;
    }
    if (v > (double)LD_MAX_DURATION_MS) {
        ld_err(ld, n, "%s: a duration is at most one day (%llu ms)", what,
               (unsigned long long)LD_MAX_DURATION_MS);
        return false;
    }
    *ms = (uint64_t)(v + 0.5);
    if (ld->n_values == ld->cap_values) {
        ld->cap_values = ld->cap_values ? ld->cap_values * 2 : 16;
        ld->values = xrealloc(ld->values, ld->cap_values * sizeof *ld->values);
    }
    ld->values[ld->n_values++] = (struct ld_value){n, *ms};
    ld->values_sorted = false;
    return true;
}

static int by_node(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const struct ld_value *)a)->node;
    uintptr_t y = (uintptr_t)((const struct ld_value *)b)->node;
    return x < y ? -1 : x > y;
}

static json_t *normalized(const struct ynode *n, void *ctx)
{
    const struct ld *ld = ctx;
    if (!ld->n_values)
        return NULL;
    struct ld_value key = {n, 0};
    const struct ld_value *v = bsearch(&key, ld->values, ld->n_values, sizeof key, by_node);
    return v ? json_integer((json_int_t)v->ms) : NULL;
}

json_t *ld_to_json(struct ld *ld, const struct ynode *n)
{
    if (!ld->values_sorted && ld->n_values)
        qsort(ld->values, ld->n_values, sizeof *ld->values, by_node);
    ld->values_sorted = true;
    return ynode_to_json_with(n, normalized, ld);
}

/* ------------------------------------------------------------------ bytes and text */

bool ld_base64(struct ld *ld, const struct ynode *n, struct bytes *out, const char *what)
{
    const char *s = ld_text(ld, n, what);
    if (!s)
        return false;
    size_t len = strlen(s);
    char *clean = xmalloc(len + 1);
    size_t c = 0;
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            clean[c++] = s[i];
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    out->data = xcalloc(BASE64_DECODE_LENGTH(c) + 1, 1);
    size_t dlen = BASE64_DECODE_LENGTH(c);
    bool ok = base64_decode_update(&ctx, &dlen, out->data, c, clean) && base64_decode_final(&ctx);
    free(clean);
    if (!ok) {
        ld_err(ld, n, "%s: invalid base64", what);
        free(out->data);
        out->data = NULL;
        return false;
    }
    out->len = dlen;
    out->data[dlen] = 0;
    return true;
}

void ld_bytes_text(const struct ynode *n, struct bytes *out)
{
    out->len = n->len;
    out->data = xcalloc(n->len + 1, 1);
    memcpy(out->data, n->str, n->len);
}

struct tmpl *ld_tmpl(struct ld *ld, const struct ynode *n, const char *what)
{
    const char *s = ld_text(ld, n, what);
    if (!s)
        return NULL;
    struct src_loc loc = n->loc;
    if (n->exact && n->quoted)
        loc.col++; /* after the opening quote */
    return tmpl_compile_at(n->str, n->len, loc, n->exact, ld->d);
}

void ld_headers(struct ld *ld, const struct ynode *n, struct header_list *out, const char *what)
{
    if (!n)
        return;
    if (n->kind != Y_MAP && n->kind != Y_SEQ) {
        ld_err(ld, n, "%s: expected a mapping or a list of 'Name: value' items, got %s", what,
               ynode_kind_name(n));
        return;
    }
    const struct ynode **names = xcalloc(n->n, sizeof *names);
    const struct ynode **values = xcalloc(n->n, sizeof *values);
    size_t count = 0;
    for (size_t i = 0; i < n->n; i++) {
        const struct ynode *item = n->values[i];
        if (n->kind == Y_MAP) {
            names[count] = n->keys[i];
            values[count++] = item;
        } else if (item->kind != Y_MAP || item->n != 1) {
            ld_err(ld, item, "%s: each item is one 'Name: value' mapping", what);
        } else {
            names[count] = item->keys[0];
            values[count++] = item->values[0];
        }
    }
    out->items = xcalloc(count, sizeof *out->items);
    for (size_t i = 0; i < count; i++) {
        const char *name = names[i]->str;
        bool token = *name != 0;
        for (const char *c = name; *c; c++)
            if (!isgraph((unsigned char)*c) || *c == ':')
                token = false;
        if (!token)
            ld_err(ld, names[i], "%s: '%s' is not a valid header name (use raw for that)", what,
                   name);
        struct tmpl *t = ld_tmpl(ld, values[i], "header value");
        if (!t)
            continue;
        out->items[out->n].name = xstrdup(name);
        out->items[out->n].value = t;
        out->n++;
    }
    free(names);
    free(values);
}

void ld_free_headers(struct header_list *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->items[i].name);
        tmpl_free(h->items[i].value);
    }
    free(h->items);
    h->items = NULL;
    h->n = 0;
}

/* ------------------------------------------------------------------ regexes and matches */

bool ld_regex(struct ld *ld, const struct ynode *n, struct rx *re, const char *what)
{
    const char *s = ld_text(ld, n, what);
    if (!s)
        return false;
    char err[200];
    size_t off = 0;
    if (!rx_compile(re, n->str, n->len, err, sizeof err, &off)) {
        ld_err(ld, n, "%s: invalid regular expression: %s (at character %zu of the pattern)", what,
               err, off + 1);
        return false;
    }
    return true;
}

void ld_matches(struct ld *ld, const struct ynode *n, struct value_match **out, size_t *count,
                const char *what)
{
    if (!ld_is_map(ld, n, what))
        return;
    *out = xcalloc(n->n, sizeof **out);
    for (size_t i = 0; i < n->n; i++) {
        const struct ynode *v = n->values[i];
        struct value_match m = {.name = NULL};
        if (v->kind == Y_SCALAR && v->type != YS_NULL) {
            m.op = MATCH_EQUALS;
            m.value = xstrdup(v->str);
        } else if (v->kind == Y_MAP && v->n == 1) {
            ld_keys(ld, v, &KEYS_CONDITION);
            const char *k = v->keys[0]->str;
            const struct ynode *arg = v->values[0];
            if (!strcmp(k, "equals")) {
                const char *s = ld_text(ld, arg, "equals");
                if (!s)
                    continue;
                m.op = MATCH_EQUALS;
                m.value = xstrdup(s);
            } else if (!strcmp(k, "regex")) {
                if (!ld_regex(ld, arg, &m.re, "regex"))
                    continue;
                m.op = MATCH_REGEX;
                m.value = xstrdup(arg->str);
            } else if (!strcmp(k, "present") || !strcmp(k, "absent")) {
                bool b;
                if (!ld_bool(ld, arg, &b, k))
                    continue;
                if (!b) {
                    ld_err(ld, arg, "%s: only '%s: true' is meaningful", what, k);
                    continue;
                }
                m.op = !strcmp(k, "present") ? MATCH_PRESENT : MATCH_ABSENT;
            } else {
                if (!strcmp(k, "json"))
                    ld_err(ld, v, "%s: json is a condition of match.body only", what);
                continue;
            }
        } else {
            ld_err(ld, v,
                   "%s: expected a value or one of {equals, regex, present, absent}, "
                   "got %s",
                   what, ynode_kind_name(v));
            continue;
        }
        m.name = xstrdup(n->keys[i]->str);
        (*out)[(*count)++] = m;
    }
}

void ld_free_matches(struct value_match *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(m[i].name);
        if (m[i].op == MATCH_REGEX)
            rx_free(&m[i].re);
        free(m[i].value);
        json_decref(m[i].json);
    }
    free(m);
}

struct value_match *ld_body_condition(struct ld *ld, const struct ynode *n, const char *what)
{
    struct value_match m = {.op = MATCH_EQUALS};
    if (n->kind == Y_SCALAR && n->type != YS_NULL) {
        m.value = xstrdup(n->str);
    } else if (n->kind == Y_MAP && n->n == 1) {
        ld_keys(ld, n, &KEYS_CONDITION);
        const char *k = n->keys[0]->str;
        const struct ynode *arg = n->values[0];
        if (!strcmp(k, "equals") && ld_text(ld, arg, "body.equals")) {
            m.value = xstrdup(arg->str);
        } else if (!strcmp(k, "regex") && ld_regex(ld, arg, &m.re, "body.regex")) {
            m.op = MATCH_REGEX;
            m.value = xstrdup(arg->str);
        } else if (!strcmp(k, "json")) {
            m.op = MATCH_JSON;
            m.json = ynode_to_json(arg);
        } else {
            if (!strcmp(k, "present") || !strcmp(k, "absent"))
                ld_err(ld, n,
                       "%s: a body is always there (empty or not): use equals, regex "
                       "or json",
                       what);
            return NULL;
        }
    } else {
        ld_err(ld, n, "%s: expected a text or one of {equals, regex, json}, got %s", what,
               ynode_kind_name(n));
        return NULL;
    }
    m.name = xstrdup("body");
    struct value_match *out = xmalloc(sizeof *out);
    *out = m;
    return out;
}

/* Hex digits in pairs, whitespace allowed between the bytes. */
static bool hex_bytes(struct ld *ld, const struct ynode *n, struct bytes *out, const char *what)
{
    const char *s = ld_text(ld, n, what);
    if (!s)
        return false;
    out->data = xcalloc(strlen(s) / 2 + 1, 1);
    out->len = 0;
    for (const char *p = s; *p;) {
        if (isspace((unsigned char)*p)) {
            p++;
            continue;
        }
        if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1])) {
            ld_err(ld, n, "%s: hex digits in pairs expected at offset %td ('%.2s')", what, p - s,
                   p);
            free(out->data);
            out->data = NULL;
            out->len = 0;
            return false;
        }
        char pair[3] = {p[0], p[1], 0};
        out->data[out->len++] = (unsigned char)strtoul(pair, NULL, 16);
        p += 2;
    }
    return true;
}

void ld_chunks(struct ld *ld, const struct ynode *n, struct raw_chunks *out, const char *what)
{
    if (!ld_is_seq(ld, n, what))
        return;
    if (n->n == 0)
        ld_err(ld, n, "%s: at least one chunk", what);
    out->items = xcalloc(n->n ? n->n : 1, sizeof *out->items);
    for (size_t i = 0; i < n->n; i++) {
        const struct ynode *it = n->values[i];
        struct raw_chunk *c = &out->items[out->n];
        if (it->kind == Y_SCALAR && it->type != YS_NULL) {
            ld_bytes_text(it, &c->bytes);
            out->n++;
            continue;
        }
        if (!ld_is_map(ld, it, what))
            continue;
        ld_keys(ld, it, &KEYS_CHUNK);
        const struct ynode *t = ymap_get(it, "bytes"), *h = ymap_get(it, "hex"),
                           *b = ymap_get(it, "base64"), *p = ymap_get(it, "pause");
        if ((t != NULL) + (h != NULL) + (b != NULL) > 1) {
            ld_err(ld, it, "%s: a chunk is one of bytes, hex and base64", what);
            continue;
        }
        if (!t && !h && !b && !p) {
            ld_err(ld, it, "%s: a chunk needs bytes, hex, base64 or a pause", what);
            continue;
        }
        if (p && !ld_duration(ld, p, &c->pause_ms, "chunk.pause"))
            continue;
        if (t && ld_text(ld, t, "chunk.bytes"))
            ld_bytes_text(t, &c->bytes);
        else if (h && !hex_bytes(ld, h, &c->bytes, "chunk.hex"))
            continue;
        else if (b && !ld_base64(ld, b, &c->bytes, "chunk.base64"))
            continue;
        out->n++;
    }
}

void ld_free_chunks(struct raw_chunks *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->items[i].bytes.data);
    free(c->items);
    c->items = NULL;
    c->n = 0;
}

bool ld_conn_end(struct ld *ld, const struct ynode *n, enum conn_end *out, const char *what)
{
    int v;
    static const char *const ENDS[] = {"fin", "rst", "hang", NULL};
    if (!ld_enum(ld, n, ENDS, &v, what))
        return false;
    *out = (enum conn_end)(CONN_END_FIN + v);
    return true;
}

/* ------------------------------------------------------------------ files */

char *ld_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    return ld_read_fd(fd, 0, len, err, errlen);
}

char *ld_read_fd(int fd, size_t size, size_t *len, char *err, size_t errlen)
{
    /* room for size bytes, the NUL and one more: the second read() finds the end */
    size_t cap = size < 4096 - 2 ? 4096 : size + 2, n = 0;
    char *buf = xmalloc(cap);
    bool bad = false;
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            bad = r < 0;
            break;
        }
        n += (size_t)r;
    }
    close(fd);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "read error");
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

bool ld_body_file(struct ld *ld, const struct ynode *n, struct bytes *out)
{
    const char *rel = ld_text(ld, n, "body_file");
    if (!rel)
        return false;
    if (!ld->dir) {
        ld_err(ld, n, "body_file: a posted scenario needs a base_dir to read files from");
        return false;
    }
    if (rel[0] == '/') {
        ld_err(ld, n, "body_file: '%s' must be relative to the scenario's folder", rel);
        return false;
    }
    /* fsroot: resolved inside the folder, a regular file, at most LD_BODY_FILE_MAX (a FIFO
     * or a device would hang or exhaust the server); errors never quote the content */
    struct fsroot_error fe;
    size_t len = 0;
    char *data = fsroot_read_under(ld->dir, rel, LD_BODY_FILE_MAX, &len, &fe);
    if (!data) {
        if (fe.status == FSROOT_OUTSIDE) {
            ld_err(ld, n, "body_file: '%s' is outside the scenario's folder", rel);
        } else if (fe.status == FSROOT_MISSING) {
            ld_err(ld, n, "body_file: cannot open '%s': %s", rel, strerror(fe.err));
        } else {
            char why[200];
            fsroot_describe(&fe, why, sizeof why);
            ld_err(ld, n, "body_file: '%s': %s", rel, why);
        }
        return false;
    }
    out->data = (unsigned char *)data;
    out->len = len;
    return true;
}

/* ------------------------------------------------------------------ key names */

void ld_keys(struct ld *ld, const struct ynode *map, const struct key_table *t)
{
    if (!map || map->kind != Y_MAP)
        return;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str ? map->keys[i]->str : "";
        char list[1024];
        if (!keys_find(t, k))
            ld_err(ld, map->keys[i], "unknown key '%s' in %s (allowed: %s)", k, t->what,
                   keys_list(t, list, sizeof list));
    }
}

bool ld_choice(struct ld *ld, const struct ynode *n, const struct key_table *t, const char *key,
               int *out, const char *what)
{
    const struct key_spec *k = keys_find(t, key);
    if (!k || !k->values)
        abort(); /* a loader asked for a key its table does not have: a bug */
    return ld_enum(ld, n, k->values, out, what);
}
