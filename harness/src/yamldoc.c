/* yamldoc — see yamldoc.h. A recursive descent over libyaml's events, its depth bounded by
 * YDOC_MAX_DEPTH. The entries of the mappings and sequences being read wait on one stack of
 * the parser; each is copied into the arena, at its exact size, when its end is reached. */
#include "yamldoc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "strmap.h"
#include "xalloc.h"

struct parser {
    yaml_parser_t y;
    const char *text;
    size_t len;
    const char *file;
    struct diag_list *d;
    struct arena *a;
    struct ynode **stack; /* the entries of the open mappings and sequences (owned) */
    size_t top, stack_cap;
    size_t nodes;
    bool failed;
    size_t end_line, end_col; /* 0-based: where the text ends (past its last character) */
};

/* A mark as a location. At the end of a text without a final line break, libyaml moves its
 * mark to the start of a line after the last (for a syntax error, an empty value at the
 * end): that is the end of the last line. */
static struct src_loc mark_loc(const struct parser *p, yaml_mark_t m)
{
    if (p->end_col > 0 && m.line == p->end_line + 1 && m.column == 0) {
        m.line = p->end_line;
        m.column = p->end_col;
    }
    return (struct src_loc){.file = p->file, .line = (int)m.line + 1, .col = (int)m.column + 1};
}

/* The length in bytes of the line break at s (LF, CR, CRLF, and in UTF-8 NEL, LS, PS, as
 * libyaml counts them), or 0. */
static size_t line_break(const char *s, const char *end)
{
    if (*s == '\n')
        return 1;
    if (*s == '\r')
        return s + 1 < end && s[1] == '\n' ? 2 : 1;
    if (s + 1 < end && (unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0x85)
        return 2;
    if (s + 2 < end && (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x80 &&
        ((unsigned char)s[2] == 0xA8 || (unsigned char)s[2] == 0xA9))
        return 3;
    return 0;
}

/* The character at a 0-based line and column of the text (UTF-8), or -1 past the end. */
static int char_at(const struct parser *p, size_t line, size_t col)
{
    const char *s = p->text, *end = p->text + p->len;
    if (p->len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
        s += 3;
    for (size_t brk; line > 0 && s < end; s += brk ? brk : 1)
        if ((brk = line_break(s, end)))
            line--;
    for (; s < end && !line_break(s, end); s++)
        if (((unsigned char)*s & 0xC0) != 0x80 && col-- == 0)
            return (unsigned char)*s;
    return -1;
}

/* Where the text ends, as libyaml counts lines and columns (characters). */
static void find_end(struct parser *p)
{
    const char *s = p->text, *end = p->text + p->len;
    if (p->len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3))
        s += 3;
    for (size_t brk; s < end; s += brk ? brk : 1) {
        if ((brk = line_break(s, end))) {
            p->end_line++;
            p->end_col = 0;
        } else if (((unsigned char)*s & 0xC0) != 0x80) {
            p->end_col++;
        }
    }
}

static bool next(struct parser *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(&p->y, ev))
        return true;
    struct src_loc loc = mark_loc(p, p->y.problem_mark);
    const char *hint = char_at(p, p->y.problem_mark.line, p->y.problem_mark.column) == '\t'
                           ? " (YAML forbids tabs for indentation; use spaces)"
                           : "";
    if (p->y.context)
        diag_add(p->d, loc, "YAML syntax error: %s %s%s", p->y.problem ? p->y.problem : "error",
                 p->y.context, hint);
    else
        diag_add(p->d, loc, "YAML syntax error: %s%s", p->y.problem ? p->y.problem : "error", hint);
    p->failed = true;
    return false;
}

static struct ynode *new_node(struct parser *p, enum ynode_kind kind, struct src_loc loc)
{
    struct ynode *n = arena_calloc(p->a, 1, sizeof *n);
    n->kind = kind;
    n->loc = loc;
    return n;
}

static bool eq(const char *s, const char *a, const char *b, const char *c)
{
    return !strcmp(s, a) || !strcmp(s, b) || !strcmp(s, c);
}

/* The YAML 1.2 core schema's type of a plain scalar. Only a few first characters can start
 * anything but a string: null, true and false are told by theirs and their length, numbers
 * and .inf/.nan by a digit, a sign or a dot. */
static void type_plain(struct ynode *n)
{
    const char *s = n->str;
    if (memchr(s, 0, n->len))
        return;
    switch (*s) {
    case 0:
        n->type = YS_NULL;
        return;
    case '~':
        if (n->len == 1)
            n->type = YS_NULL;
        return;
    case 'n':
    case 'N':
        if (n->len == 4 && (eq(s, "null", "Null", "NULL")))
            n->type = YS_NULL;
        return;
    case 't':
    case 'T':
        if (n->len == 4 && eq(s, "true", "True", "TRUE")) {
            n->type = YS_BOOL;
            n->b = true;
        }
        return;
    case 'f':
    case 'F':
        if (n->len == 5 && eq(s, "false", "False", "FALSE")) {
            n->type = YS_BOOL;
            n->b = false;
        }
        return;
    case '+':
    case '-':
    case '.':
        break;
    default:
        if (*s < '0' || *s > '9')
            return;
    }
    char *end;
    errno = 0;
    const char *digits = s + (*s == '-' || *s == '+');
    if (*digits >= '0' && *digits <= '9') {
        long long v;
        if (!strncmp(s, "0x", 2))
            v = strtoll(s + 2, &end, 16);
        else if (!strncmp(s, "0o", 2))
            v = strtoll(s + 2, &end, 8);
        else
            v = strtoll(s, &end, 10);
        if (!*end && !errno) {
            n->type = YS_INT;
            n->i = v;
            return;
        }
    }
    if ((*digits >= '0' && *digits <= '9') ||
        (*digits == '.' && digits[1] >= '0' && digits[1] <= '9')) {
        errno = 0;
        double f = strtod(s, &end);
        if (!*end && !errno) {
            n->type = YS_FLOAT;
            n->f = f;
            return;
        }
    }
    if (eq(s, ".inf", ".Inf", ".INF") || eq(s, "+.inf", "+.Inf", "+.INF")) {
        n->type = YS_FLOAT;
        n->f = INFINITY;
    } else if (eq(s, "-.inf", "-.Inf", "-.INF")) {
        n->type = YS_FLOAT;
        n->f = -INFINITY;
    } else if (eq(s, ".nan", ".NaN", ".NAN")) {
        n->type = YS_FLOAT;
        n->f = NAN;
    }
}

static struct ynode *parse_node(struct parser *p, yaml_event_t *ev, int depth);

static void push(struct parser *p, struct ynode *entry)
{
    if (p->top == p->stack_cap) {
        p->stack_cap = p->stack_cap ? p->stack_cap * 2 : 64;
        p->stack = xrealloc(p->stack, p->stack_cap * sizeof *p->stack);
    }
    p->stack[p->top++] = entry;
}

/* Whether a one-line scalar's value is its source text (escapes and folding change it):
 * the source has as many characters as the value. */
static bool scalar_exact(const yaml_event_t *ev)
{
    const yaml_mark_t *a = &ev->start_mark, *b = &ev->end_mark;
    yaml_scalar_style_t style = ev->data.scalar.style;
    if (a->line != b->line || b->column < a->column ||
        (style != YAML_PLAIN_SCALAR_STYLE && style != YAML_SINGLE_QUOTED_SCALAR_STYLE &&
         style != YAML_DOUBLE_QUOTED_SCALAR_STYLE))
        return false;
    size_t source = b->column - a->column - (style == YAML_PLAIN_SCALAR_STYLE ? 0 : 2), chars = 0;
    for (size_t i = 0; i < ev->data.scalar.length; i++)
        chars += (ev->data.scalar.value[i] & 0xC0) != 0x80;
    return source == chars && b->column - a->column >= (style == YAML_PLAIN_SCALAR_STYLE ? 0 : 2);
}

/* An anchor is reported; the tree is still made, so that the rest is checked too. */
static void refuse_anchor(struct parser *p, struct src_loc loc, const yaml_char_t *anchor)
{
    if (anchor)
        diag_add(p->d, loc, "anchors (&%s) are not supported: write the value out",
                 (const char *)anchor);
}

static struct ynode *parse_scalar(struct parser *p, yaml_event_t *ev, struct src_loc loc)
{
    refuse_anchor(p, loc, ev->data.scalar.anchor);
    struct ynode *n = new_node(p, Y_SCALAR, loc);
    n->len = ev->data.scalar.length;
    n->str = arena_strndup(p->a, (const char *)ev->data.scalar.value, n->len);
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    n->exact = scalar_exact(ev);
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && !strcmp(tag, "tag:yaml.org,2002:str"))
        n->quoted = true;
    n->type = YS_STRING;
    if (!n->quoted)
        type_plain(n);
    yaml_event_delete(ev);
    return n;
}

/* The key equal to key among the n keys so far of the mapping whose entries are on the
 * stack from base (key, value, key, ...), or NULL (then key is remembered). A short mapping
 * is searched; from SMALL_MAP keys on, a hash map of them (seen) is used: linear time. */
#define SMALL_MAP 8
static const struct ynode *first_key(const struct parser *p, size_t base, size_t n,
                                     struct strmap *seen, const struct ynode *key)
{
    if (!n)
        return NULL; /* the first key (and the stack may not be allocated yet) */
    struct ynode *const *keys = p->stack + base;
    if (n < SMALL_MAP) {
        for (size_t i = 0; i < n; i++)
            if (keys[2 * i]->len == key->len && !memcmp(keys[2 * i]->str, key->str, key->len))
                return keys[2 * i];
        return NULL;
    }
    if (n == SMALL_MAP && !seen->n)
        for (size_t i = 0; i < n; i++)
            strmap_put(seen, keys[2 * i]->str, keys[2 * i]->len, keys[2 * i]);
    return strmap_put(seen, key->str, key->len, (void *)key);
}

/* The entries of a sequence or mapping n, up to its end event, gathered on the stack and
 * then copied into n. false on a syntax error or a limit crossed (n is left empty). */
static bool parse_entries(struct parser *p, struct ynode *n, int depth)
{
    bool map = n->kind == Y_MAP;
    size_t base = p->top, count = 0;
    struct strmap seen = {0}; /* key text -> the first key node */
    bool ok = true;
    for (;;) {
        yaml_event_t e;
        if (!next(p, &e)) {
            ok = false;
            break;
        }
        if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&e);
            break;
        }
        struct ynode *key = NULL;
        if (map) {
            if (!(key = parse_node(p, &e, depth + 1)) || !next(p, &e)) {
                ok = false;
                break;
            }
        }
        struct ynode *value = parse_node(p, &e, depth + 1);
        if (!value) {
            ok = false;
            break;
        }
        if (map && key->kind != Y_SCALAR) {
            /* refused here once for every reader: they all take keys as strings */
            diag_add(p->d, key->loc, "a mapping key must be a plain value, not %s",
                     ynode_kind_name(key));
            p->failed = true;
            continue;
        }
        const struct ynode *first = map ? first_key(p, base, count, &seen, key) : NULL;
        if (first) {
            diag_add(p->d, key->loc, "duplicate key '%s' (first at line %d, column %d)", key->str,
                     first->loc.line, first->loc.col);
            continue;
        }
        if (map)
            push(p, key);
        push(p, value);
        count++;
    }
    strmap_free(&seen);
    if (ok && count) {
        n->n = count;
        n->values = arena_alloc(p->a, count * sizeof *n->values);
        if (map) {
            n->keys = arena_alloc(p->a, count * sizeof *n->keys);
            for (size_t i = 0; i < count; i++) {
                n->keys[i] = p->stack[base + 2 * i];
                n->values[i] = p->stack[base + 2 * i + 1];
            }
        } else {
            memcpy(n->values, p->stack + base, count * sizeof *n->values);
        }
    }
    p->top = base;
    return ok;
}

/* Parse the node that starts with event ev (consumed), depth levels down. NULL on error. */
static struct ynode *parse_node(struct parser *p, yaml_event_t *ev, int depth)
{
    struct src_loc loc = mark_loc(p, ev->start_mark);
    if (++p->nodes > YDOC_MAX_NODES) {
        diag_add(p->d, loc, "too many values: a scenario has at most %d nodes", YDOC_MAX_NODES);
        yaml_event_delete(ev);
        p->failed = true;
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        diag_add(p->d, loc, "aliases (*%s) are not supported: write the value out",
                 (const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        p->failed = true;
        return NULL;
    case YAML_SCALAR_EVENT:
        return parse_scalar(p, ev, loc);
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        refuse_anchor(p, loc, map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor);
        yaml_event_delete(ev);
        if (depth >= YDOC_MAX_DEPTH) {
            diag_add(p->d, loc, "nested too deeply: at most %d levels of sequences and mappings",
                     YDOC_MAX_DEPTH);
            p->failed = true;
            return NULL;
        }
        struct ynode *n = new_node(p, map ? Y_MAP : Y_SEQ, loc);
        return parse_entries(p, n, depth) ? n : NULL;
    }
    default:
        diag_add(p->d, loc, "unexpected YAML event");
        yaml_event_delete(ev);
        p->failed = true;
        return NULL;
    }
}

struct ynode *ydoc_parse(const char *text, size_t len, const char *file, struct arena *a,
                         struct diag_list *diags)
{
    struct parser p = {.text = text, .len = len, .file = file, .d = diags, .a = a};
    if (len > YDOC_MAX_BYTES) {
        diag_add(diags, (struct src_loc){file, 1, 1},
                 "the file is %zu bytes: a scenario is at most %u bytes (16 MiB)", len,
                 YDOC_MAX_BYTES);
        return NULL;
    }
    /* a text that ends with a line break ends at column 0, where mark_loc changes nothing */
    if (!len || (text[len - 1] != '\n' && text[len - 1] != '\r'))
        find_end(&p);
    if (!yaml_parser_initialize(&p.y))
        abort();
    yaml_parser_set_input_string(&p.y, (const unsigned char *)text, len);
    struct ynode *root = NULL;
    yaml_event_t ev;
    bool done = false;
    while (!done && next(&p, &ev)) {
        switch (ev.type) {
        case YAML_STREAM_START_EVENT:
        case YAML_DOCUMENT_END_EVENT:
            yaml_event_delete(&ev);
            break;
        case YAML_DOCUMENT_START_EVENT:
            yaml_event_delete(&ev);
            if (root) {
                diag_add(diags, mark_loc(&p, p.y.mark),
                         "a scenario file holds one YAML document, not several");
                p.failed = true;
                done = true;
            }
            break;
        case YAML_STREAM_END_EVENT:
            yaml_event_delete(&ev);
            done = true;
            break;
        default:
            root = parse_node(&p, &ev, 0);
            if (!root)
                done = true;
            break;
        }
    }
    yaml_parser_delete(&p.y);
    free(p.stack);
    if (p.failed)
        return NULL;
    if (!root) {
        root = new_node(&p, Y_SCALAR, (struct src_loc){file, 1, 1});
        root->str = arena_strndup(a, "", 0);
        root->type = YS_NULL;
    }
    return root;
}

struct ynode *ymap_get(const struct ynode *n, const char *key)
{
    if (!n || n->kind != Y_MAP)
        return NULL;
    for (size_t i = 0; i < n->n; i++)
        if (n->keys[i]->kind == Y_SCALAR && n->keys[i]->str[0] == key[0] &&
            !strcmp(n->keys[i]->str, key))
            return n->values[i];
    return NULL;
}

json_t *ynode_to_json(const struct ynode *n)
{
    return ynode_to_json_with(n, NULL, NULL);
}

json_t *ynode_to_json_with(const struct ynode *n, json_t *(*scalar)(const struct ynode *, void *),
                           void *ctx)
{
    json_t *alt;
    switch (n->kind) {
    case Y_SCALAR:
        if (scalar && (alt = scalar(n, ctx)))
            return alt;
        switch (n->type) {
        case YS_NULL:
            return json_null();
        case YS_BOOL:
            return json_boolean(n->b);
        case YS_INT:
            return json_integer(n->i);
        case YS_FLOAT:
            return isfinite(n->f) ? json_real(n->f) : json_stringn(n->str, n->len);
        case YS_STRING: {
            json_t *s = json_stringn(n->str, n->len);
            return s ? s : json_string("\xEF\xBF\xBD");
        }
        }
        return json_null();
    case Y_SEQ: {
        json_t *a = json_array();
        for (size_t i = 0; i < n->n; i++)
            json_array_append_new(a, ynode_to_json_with(n->values[i], scalar, ctx));
        return a;
    }
    case Y_MAP: {
        json_t *o = json_object();
        for (size_t i = 0; i < n->n; i++)
            json_object_setn_new(o, n->keys[i]->str ? n->keys[i]->str : "",
                                 n->keys[i]->str ? n->keys[i]->len : 0,
                                 ynode_to_json_with(n->values[i], scalar, ctx));
        return o;
    }
    }
    return json_null();
}

const char *ynode_kind_name(const struct ynode *n)
{
    if (n->kind == Y_MAP)
        return "a mapping";
    if (n->kind == Y_SEQ)
        return "a sequence";
    switch (n->type) {
    case YS_NULL:
        return "null";
    case YS_BOOL:
        return "a boolean";
    case YS_INT:
        return "an integer";
    case YS_FLOAT:
        return "a number";
    default:
        return "a string";
    }
}
