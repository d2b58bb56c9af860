/* yamldoc — see yamldoc.h. A recursive descent over libyaml's events. */
#include "yamldoc.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct parser {
    yaml_parser_t y;
    const char *file;
    struct diag_list *d;
    bool failed;
};

static struct src_loc mark_loc(const struct parser *p, yaml_mark_t m)
{
    return (struct src_loc){.file = p->file, .line = (int)m.line + 1, .col = (int)m.column + 1};
}

static bool next(struct parser *p, yaml_event_t *ev)
{
    if (yaml_parser_parse(&p->y, ev))
        return true;
    struct src_loc loc = mark_loc(p, p->y.problem_mark);
    if (p->y.context)
        diag_add(p->d, loc, "YAML syntax error: %s %s", p->y.problem ? p->y.problem : "error",
                 p->y.context);
    else
        diag_add(p->d, loc, "YAML syntax error: %s", p->y.problem ? p->y.problem : "error");
    p->failed = true;
    return false;
}

static struct ynode *new_node(enum ynode_kind kind, struct src_loc loc)
{
    struct ynode *n = calloc(1, sizeof *n);
    if (!n)
        abort();
    n->kind = kind;
    n->loc = loc;
    return n;
}

static bool eq(const char *s, const char *a, const char *b, const char *c)
{
    return !strcmp(s, a) || !strcmp(s, b) || !strcmp(s, c);
}

static void type_plain(struct ynode *n)
{
    const char *s = n->str;
    if (n->len != strlen(s))
        return;
    if (!*s || eq(s, "~", "null", "Null") || !strcmp(s, "NULL")) {
        n->type = YS_NULL;
        return;
    }
    if (eq(s, "true", "True", "TRUE")) {
        n->type = YS_BOOL;
        n->b = true;
        return;
    }
    if (eq(s, "false", "False", "FALSE")) {
        n->type = YS_BOOL;
        n->b = false;
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

static struct ynode *parse_node(struct parser *p, yaml_event_t *ev);

static void append(struct ynode *n, struct ynode *key, struct ynode *value)
{
    n->values = realloc(n->values, (n->n + 1) * sizeof *n->values);
    if (!n->values)
        abort();
    if (n->kind == Y_MAP) {
        n->keys = realloc(n->keys, (n->n + 1) * sizeof *n->keys);
        if (!n->keys)
            abort();
        n->keys[n->n] = key;
    }
    n->values[n->n++] = value;
}

/* Parse the node that starts with event ev (consumed). NULL on error. */
static struct ynode *parse_node(struct parser *p, yaml_event_t *ev)
{
    struct src_loc loc = mark_loc(p, ev->start_mark);
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        diag_add(p->d, loc, "aliases (*%s) are not supported: write the value out",
                 (const char *)ev->data.alias.anchor);
        yaml_event_delete(ev);
        p->failed = true;
        return NULL;
    case YAML_SCALAR_EVENT: {
        if (ev->data.scalar.anchor) {
            diag_add(p->d, loc, "anchors (&%s) are not supported: write the value out",
                     (const char *)ev->data.scalar.anchor);
        }
        struct ynode *n = new_node(Y_SCALAR, loc);
        n->len = ev->data.scalar.length;
        n->str = malloc(n->len + 1);
        if (!n->str)
            abort();
        memcpy(n->str, ev->data.scalar.value, n->len);
        n->str[n->len] = 0;
        n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        const char *tag = (const char *)ev->data.scalar.tag;
        if (tag && !strcmp(tag, "tag:yaml.org,2002:str"))
            n->quoted = true;
        n->type = YS_STRING;
        if (!n->quoted)
            type_plain(n);
        yaml_event_delete(ev);
        return n;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool map = ev->type == YAML_MAPPING_START_EVENT;
        const yaml_char_t *anchor =
            map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
        if (anchor)
            diag_add(p->d, loc, "anchors (&%s) are not supported: write the value out",
                     (const char *)anchor);
        yaml_event_delete(ev);
        struct ynode *n = new_node(map ? Y_MAP : Y_SEQ, loc);
        for (;;) {
            yaml_event_t e;
            if (!next(p, &e)) {
                ynode_free(n);
                return NULL;
            }
            if (e.type == YAML_MAPPING_END_EVENT || e.type == YAML_SEQUENCE_END_EVENT) {
                yaml_event_delete(&e);
                return n;
            }
            struct ynode *key = NULL;
            if (map) {
                key = parse_node(p, &e);
                if (!key) {
                    ynode_free(n);
                    return NULL;
                }
                if (key->kind != Y_SCALAR) {
                    diag_add(p->d, key->loc, "a mapping key must be a plain value, not %s",
                             ynode_kind_name(key));
                }
                if (!next(p, &e)) {
                    ynode_free(key);
                    ynode_free(n);
                    return NULL;
                }
            }
            struct ynode *value = parse_node(p, &e);
            if (!value) {
                ynode_free(key);
                ynode_free(n);
                return NULL;
            }
            if (map && key->kind == Y_SCALAR) {
                struct ynode *first = NULL;
                for (size_t i = 0; i < n->n && !first; i++)
                    if (n->keys[i]->kind == Y_SCALAR && n->keys[i]->len == key->len &&
                        !memcmp(n->keys[i]->str, key->str, key->len))
                        first = n->keys[i];
                if (first) {
                    diag_add(p->d, key->loc, "duplicate key '%s' (first at line %d, column %d)",
                             key->str, first->loc.line, first->loc.col);
                    ynode_free(key);
                    ynode_free(value);
                    continue;
                }
            }
            append(n, key, value);
        }
    }
    default:
        diag_add(p->d, loc, "unexpected YAML event");
        yaml_event_delete(ev);
        p->failed = true;
        return NULL;
    }
}

struct ynode *ydoc_parse(const char *text, size_t len, const char *file, struct diag_list *diags)
{
    struct parser p = {.file = file, .d = diags};
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
            root = parse_node(&p, &ev);
            if (!root)
                done = true;
            break;
        }
    }
    yaml_parser_delete(&p.y);
    if (p.failed) {
        ynode_free(root);
        return NULL;
    }
    if (!root) {
        root = new_node(Y_SCALAR, (struct src_loc){file, 1, 1});
        root->str = calloc(1, 1);
        root->type = YS_NULL;
    }
    return root;
}

void ynode_free(struct ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            ynode_free(n->keys[i]);
        ynode_free(n->values[i]);
    }
    free(n->keys);
    free(n->values);
    free(n->str);
    free(n);
}

struct ynode *ymap_get(const struct ynode *n, const char *key)
{
    if (!n || n->kind != Y_MAP)
        return NULL;
    for (size_t i = 0; i < n->n; i++)
        if (n->keys[i]->kind == Y_SCALAR && !strcmp(n->keys[i]->str, key))
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
