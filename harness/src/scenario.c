/* scenario — loading and validating scenario files (see scenario.h, docs/scenarios.md).
 *
 * The YAML tree (yamldoc.h) is walked once, part by part; every check that fails appends a
 * located message and the walk goes on, so one run reports every error of a file. Small
 * typed readers (text, integer, boolean, duration, base64, header list, match conditions)
 * do the checking, and each mapping lists its allowed keys in a table. The server-side
 * parts become structs; `client` and `expect` are checked here and kept as JSON.
 */
#include "scenario.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <nettle/base64.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <microhttpd.h>
#include "scenario_load.h"
#include "xalloc.h"
#include "yamldoc.h"

/* ------------------------------------------------------------------ readers */

void ld_err(struct ld *ld, const struct ynode *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_addv(ld->d, n ? n->loc : (struct src_loc){ld->file, 1, 1}, fmt, ap);
    va_end(ap);
}

void *ld_alloc(size_t n, size_t size)
{
    return xcalloc(n, size);
}

char *ld_strdup(const char *s)
{
    return xstrdup(s ? s : "");
}

void ld_keys(struct ld *ld, const struct ynode *map, const char *const *allowed, const char *where)
{
    if (!map || map->kind != Y_MAP)
        return;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str ? map->keys[i]->str : "";
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = !strcmp(*a, k);
        if (ok)
            continue;
        char list[1024] = "";
        for (const char *const *a = allowed; *a; a++) {
            if (strlen(list) + strlen(*a) + 3 >= sizeof list)
                break;
            if (*list)
                strcat(list, ", ");
            strcat(list, *a);
        }
        ld_err(ld, map->keys[i], "unknown key '%s' in %s (allowed: %s)", k, where, list);
    }
}

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

/* A scalar's text (numbers and booleans as written); NULL (with an error) otherwise. */
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

/* A string proper (not a number or boolean). */
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

bool ld_duration(struct ld *ld, const struct ynode *n, uint64_t *ms, const char *what)
{
    if (!n)
        return false;
    if (n->kind == Y_SCALAR && (n->type == YS_INT || n->type == YS_FLOAT)) {
        double v = n->type == YS_INT ? (double)n->i : n->f;
        if (v < 0) {
            ld_err(ld, n, "%s: a duration cannot be negative", what);
            return false;
        }
        *ms = (uint64_t)(v + 0.5);
        return true;
    }
    if (n->kind == Y_SCALAR && n->type == YS_STRING) {
        char *end;
        errno = 0;
        const char *s = n->str;
        while (*s == ' ')
            s++;
        if (*s == '-') {
            ld_err(ld, n, "%s: a duration cannot be negative", what);
            return false;
        }
        double v = strtod(s, &end);
        if (end != s && !errno) {
            while (*end == ' ')
                end++;
            double scale = -1;
            if (!strcmp(end, "ms") || !*end)
                scale = 1;
            else if (!strcmp(end, "s"))
                scale = 1000;
            else if (!strcmp(end, "m") || !strcmp(end, "min"))
                scale = 60000;
            if (scale > 0 && v >= 0) {
                *ms = (uint64_t)(v * scale + 0.5);
                return true;
            }
        }
    }
    ld_err(ld, n,
           "%s: expected a duration (milliseconds, or a string such as \"500ms\", "
           "\"1.5s\"), got '%s'",
           what, n->kind == Y_SCALAR ? n->str : ynode_kind_name(n));
    return false;
}

bool ld_base64(struct ld *ld, const struct ynode *n, struct bytes *out, const char *what)
{
    const char *s = ld_text(ld, n, what);
    if (!s)
        return false;
    /* whitespace (folded YAML) is ignored */
    size_t len = strlen(s);
    char *clean = ld_alloc(len + 1, 1);
    size_t c = 0;
    for (size_t i = 0; i < len; i++)
        if (!isspace((unsigned char)s[i]))
            clean[c++] = s[i];
    struct base64_decode_ctx ctx;
    base64_decode_init(&ctx);
    out->data = ld_alloc(BASE64_DECODE_LENGTH(c) + 1, 1);
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
    out->data = ld_alloc(n->len + 1, 1);
    memcpy(out->data, n->str, n->len);
}

struct tmpl *ld_tmpl(struct ld *ld, const struct ynode *n, const char *what)
{
    const char *s = ld_text(ld, n, what);
    if (!s)
        return NULL;
    struct src_loc loc = n->loc;
    if (n->quoted)
        loc.col++;
    return tmpl_compile(n->str, n->len, loc, ld->d);
}

/* Header lists: a mapping, or a sequence of one-entry mappings (order kept). */
void ld_headers(struct ld *ld, const struct ynode *n, struct header_list *out, const char *what)
{
    if (!n)
        return;
    const struct ynode **names = NULL, **values = NULL;
    size_t count = 0;
    if (n->kind == Y_MAP) {
        names = ld_alloc(n->n, sizeof *names);
        values = ld_alloc(n->n, sizeof *values);
        for (size_t i = 0; i < n->n; i++) {
            names[count] = n->keys[i];
            values[count++] = n->values[i];
        }
    } else if (n->kind == Y_SEQ) {
        names = ld_alloc(n->n, sizeof *names);
        values = ld_alloc(n->n, sizeof *values);
        for (size_t i = 0; i < n->n; i++) {
            const struct ynode *item = n->values[i];
            if (item->kind != Y_MAP || item->n != 1) {
                ld_err(ld, item, "%s: each item is one 'Name: value' mapping", what);
                continue;
            }
            names[count] = item->keys[0];
            values[count++] = item->values[0];
        }
    } else {
        ld_err(ld, n, "%s: expected a mapping or a list of 'Name: value' items, got %s", what,
               ynode_kind_name(n));
        return;
    }
    out->items = ld_alloc(count, sizeof *out->items);
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
        out->items[out->n].name = ld_strdup(name);
        out->items[out->n].value = t;
        out->n++;
    }
    free(names);
    free(values);
}

static const char *const MATCH_KEYS[] = {"equals", "regex", "present", "absent", NULL};

bool ld_regex(struct ld *ld, const struct ynode *n, regex_t *re, const char *what)
{
    int rc = regcomp(re, n->str, REG_EXTENDED | REG_NOSUB);
    if (rc) {
        char buf[200];
        regerror(rc, re, buf, sizeof buf);
        ld_err(ld, n, "%s: invalid regular expression: %s", what, buf);
        return false;
    }
    return true;
}

/* name -> "value" | {equals|regex|present|absent} */
void ld_matches(struct ld *ld, const struct ynode *n, struct value_match **out, size_t *count,
                const char *what)
{
    if (!ld_is_map(ld, n, what))
        return;
    *out = ld_alloc(n->n, sizeof **out);
    for (size_t i = 0; i < n->n; i++) {
        const struct ynode *v = n->values[i];
        struct value_match m = {.name = NULL};
        if (v->kind == Y_SCALAR && v->type != YS_NULL) {
            m.op = MATCH_EQUALS;
            m.value = ld_strdup(v->str);
        } else if (v->kind == Y_MAP && v->n == 1) {
            ld_keys(ld, v, MATCH_KEYS, "a match condition");
            const char *k = v->keys[0]->str;
            const struct ynode *arg = v->values[0];
            if (!strcmp(k, "equals")) {
                const char *s = ld_text(ld, arg, "equals");
                if (!s)
                    continue;
                m.op = MATCH_EQUALS;
                m.value = ld_strdup(s);
            } else if (!strcmp(k, "regex")) {
                const char *s = ld_text(ld, arg, "regex");
                if (!s || !ld_regex(ld, arg, &m.re, "regex"))
                    continue;
                m.op = MATCH_REGEX;
                m.value = ld_strdup(s);
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
                continue;
            }
        } else {
            ld_err(ld, v,
                   "%s: expected a value or one of {equals, regex, present, absent}, "
                   "got %s",
                   what, ynode_kind_name(v));
            continue;
        }
        m.name = ld_strdup(n->keys[i]->str);
        (*out)[(*count)++] = m;
    }
}

/* ------------------------------------------------------------------ files */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s", strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = ld_alloc(cap, 1);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    bool bad = ferror(f);
    fclose(f);
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
    char path[PATH_MAX * 2];
    snprintf(path, sizeof path, "%s/%s", ld->dir, rel);
    char real[PATH_MAX], realdir[PATH_MAX];
    if (!realpath(path, real)) {
        ld_err(ld, n, "body_file: cannot open '%s': %s", rel, strerror(errno));
        return false;
    }
    if (!realpath(ld->dir, realdir) || strncmp(real, realdir, strlen(realdir)) ||
        (real[strlen(realdir)] != '/' && real[strlen(realdir)] != 0)) {
        ld_err(ld, n, "body_file: '%s' is outside the scenario's folder", rel);
        return false;
    }
    char err[200];
    size_t len = 0;
    char *data = read_file(real, &len, err, sizeof err);
    if (!data) {
        ld_err(ld, n, "body_file: cannot read '%s': %s", rel, err);
        return false;
    }
    out->data = (unsigned char *)data;
    out->len = len;
    return true;
}

/* ------------------------------------------------------------------ the file */

static const char *const TOP_KEYS[] = {"id",     "title",  "spec",   "tags", "description",
                                       "server", "client", "expect", NULL};

static bool id_ok(const char *id)
{
    if (!*id || !((*id >= 'a' && *id <= 'z') || (*id >= '0' && *id <= '9')))
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
              *c == '_'))
            return false;
    return true;
}

static void identity(struct ld *ld, const struct ynode *root)
{
    struct scenario *s = ld->s;
    const struct ynode *n;
    if (!(n = ymap_get(root, "id"))) {
        ld_err(ld, root, "missing 'id' (a unique dotted name such as xhr.timeout.basic)");
    } else if (ld_string(ld, n, "id")) {
        if (!id_ok(n->str))
            ld_err(ld, n,
                   "id '%s': use lower-case letters, digits, '.', '-' and '_', starting "
                   "with a letter or digit",
                   n->str);
        s->id = ld_strdup(n->str);
    }
    if (!(n = ymap_get(root, "title")))
        ld_err(ld, root, "missing 'title' (one line: what the scenario checks)");
    else if (ld_text(ld, n, "title"))
        s->title = ld_strdup(n->str);
    if (!(n = ymap_get(root, "spec"))) {
        ld_err(ld, root, "missing 'spec' (the URL of the spec section it checks)");
    } else if (ld_string(ld, n, "spec")) {
        if (strncmp(n->str, "https://", 8) && strncmp(n->str, "http://", 7))
            ld_err(ld, n, "spec: expected the URL of a spec section, got '%s'", n->str);
        s->spec = ld_strdup(n->str);
    }
    if ((n = ymap_get(root, "description")) && ld_text(ld, n, "description"))
        s->description = ld_strdup(n->str);
    if ((n = ymap_get(root, "tags")) && ld_is_seq(ld, n, "tags")) {
        s->tags = ld_alloc(n->n, sizeof *s->tags);
        for (size_t i = 0; i < n->n; i++)
            if (ld_string(ld, n->values[i], "a tag"))
                s->tags[s->n_tags++] = ld_strdup(n->values[i]->str);
    }
}

static struct scenario *load_tree(struct ynode *root, const char *file, const char *dir,
                                  struct diag_list *diags)
{
    size_t before = diags->n;
    struct scenario *s = ld_alloc(1, sizeof *s);
    s->file = ld_strdup(file);
    s->dir = dir ? ld_strdup(dir) : NULL;
    struct ld ld = {.d = diags, .file = s->file, .dir = dir, .s = s};
    if (root->kind != Y_MAP) {
        ld_err(&ld, root,
               "a scenario is a mapping with id, title, spec, server, client and "
               "expect; got %s",
               ynode_kind_name(root));
    } else {
        ld_keys(&ld, root, TOP_KEYS, "the scenario");
        identity(&ld, root);
        load_server(&ld, ymap_get(root, "server"));
        const struct ynode *client = ymap_get(root, "client");
        if (!client)
            ld_err(&ld, root, "missing 'client' (what the client under test is asked to do)");
        else
            s->client = load_client(&ld, client);
        const struct ynode *expect = ymap_get(root, "expect");
        if (expect)
            s->expect = load_expect(&ld, expect);
        s->doc = ynode_to_json(root);
        json_object_set_new(s->doc, "file", json_string(file));
    }
    if (diags->n > before) {
        scenario_free(s);
        return NULL;
    }
    return s;
}

struct scenario *scenario_load_text(const char *text, size_t len, const char *name,
                                    const char *base_dir, struct diag_list *diags)
{
    /* the file name must outlive the tree for its locations: use the scenario's copy */
    char *file = ld_strdup(name);
    size_t before = diags->n;
    struct ynode *root = ydoc_parse(text, len, file, diags);
    struct scenario *s = NULL;
    if (root && diags->n == before)
        s = load_tree(root, file, base_dir, diags);
    else if (root) {
        /* duplicate keys: report the rest of the file too */
        struct scenario *tmp = load_tree(root, file, base_dir, diags);
        scenario_free(tmp);
    }
    ynode_free(root);
    free(file);
    return s;
}

struct scenario *scenario_load(const char *path, struct diag_list *diags)
{
    char err[256];
    size_t len = 0;
    char *text = read_file(path, &len, err, sizeof err);
    if (!text) {
        diag_add(diags, (struct src_loc){path, 0, 0}, "cannot read the file: %s", err);
        return NULL;
    }
    char real[PATH_MAX];
    const char *abs = realpath(path, real) ? real : path;
    char *dir = ld_strdup(abs);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    struct scenario *s = scenario_load_text(text, len, path, dir, diags);
    if (s) {
        json_object_set_new(s->doc, "file", json_string(abs));
    }
    free(dir);
    free(text);
    return s;
}

/* ------------------------------------------------------------------ finding files */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct file_list {
    char **items;
    size_t n, cap;
};

static void push(struct file_list *l, const char *p)
{
    if (l->n + 1 >= l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = realloc(l->items, l->cap * sizeof *l->items);
        if (!l->items)
            abort();
    }
    l->items[l->n++] = ld_strdup(p);
    l->items[l->n] = NULL;
}

static bool yaml_name(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static void walk(struct file_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st))
            continue;
        if (S_ISDIR(st.st_mode))
            walk(l, path);
        else if (S_ISREG(st.st_mode) && yaml_name(e->d_name))
            push(l, path);
    }
    closedir(d);
}

char **scenario_find_files(char *const *args, int nargs, struct diag_list *diags)
{
    struct file_list l = {0};
    push(&l, "");
    l.n = 0;
    free(l.items[0]);
    l.items[0] = NULL;
    for (int i = 0; i < nargs; i++) {
        struct stat st;
        if (stat(args[i], &st)) {
            diag_add(diags, (struct src_loc){args[i], 0, 0}, "%s", strerror(errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            size_t from = l.n;
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s", args[i]);
            size_t dl = strlen(dir);
            while (dl > 1 && dir[dl - 1] == '/')
                dir[--dl] = 0;
            walk(&l, dir);
            qsort(l.items + from, l.n - from, sizeof *l.items, cmp_str);
        } else {
            push(&l, args[i]);
        }
    }
    return l.items;
}

void scenario_free_files(char **files)
{
    if (!files)
        return;
    for (char **f = files; *f; f++)
        free(*f);
    free(files);
}

const char *scenario_reason_phrase(int status)
{
    return MHD_get_reason_phrase_for((unsigned)status);
}
