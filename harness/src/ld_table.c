/* ld_table — see ld_table.h. */
#include "ld_table.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void check_value(struct ld *ld, const struct ynode *v, const struct key_spec *k);

static bool is_null(const struct ynode *n)
{
    return n->kind == Y_SCALAR && n->type == YS_NULL;
}

static bool is_number(const struct ynode *n)
{
    return n->kind == Y_SCALAR && (n->type == YS_INT || n->type == YS_FLOAT);
}

bool ld_is_matcher(const struct ynode *n)
{
    if (n->kind != Y_MAP)
        return false;
    /* strict, when and level go on any check: they do not make a mapping a matcher */
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->keys[i]->str, "strict") && strcmp(n->keys[i]->str, "when") &&
            strcmp(n->keys[i]->str, "level") && keys_find(&KEYS_MATCHER, n->keys[i]->str))
            return true;
    return false;
}

void ld_expected(struct ld *ld, const struct ynode *n, const char *what)
{
    if (n->kind == Y_SEQ) {
        for (size_t i = 0; i < n->n; i++)
            ld_expected(ld, n->values[i], what);
        return;
    }
    if (n->kind != Y_MAP)
        return;
    if (ld_is_matcher(n)) {
        ld_table(ld, n, &KEYS_MATCHER);
        const struct ynode *t = ymap_get(n, "tolerance");
        if (t && !ymap_get(n, "approx"))
            ld_err(ld, t, "tolerance goes with approx");
        return;
    }
    for (size_t i = 0; i < n->n; i++) {
        bool b;
        if (!strcmp(n->keys[i]->str, "strict"))
            ld_bool(ld, n->values[i], &b, "strict");
        else
            ld_expected(ld, n->values[i], n->keys[i]->str);
    }
}

static const struct key_table *table_of(const struct ld *ld, const struct key_spec *k)
{
    if (!k->variants)
        return k->table;
    for (const struct key_variant *x = k->variants; ld->action && x->action; x++)
        if (!strcmp(x->action, ld->action))
            return x->table;
    return NULL; /* the action is unknown (an error already): nothing to check against */
}

static void check_type(struct ld *ld, const struct ynode *v, enum key_type type,
                       const struct key_spec *k, const char *what)
{
    long long i;
    bool b;
    uint64_t ms;
    int e;
    struct bytes bytes = {0};
    struct header_list headers = {0};
    struct value_match *matches = NULL;
    size_t n_matches = 0;
    struct rx re;
    const struct key_table *t = k ? table_of(ld, k) : NULL;
    switch (type) {
    case KT_ANY:
        return;
    case KT_EXPECTED:
        ld_expected(ld, v, what);
        return;
    case KT_STRING:
        ld_string(ld, v, what);
        return;
    case KT_TEXT:
        ld_text(ld, v, what);
        return;
    case KT_TEMPLATE:
        tmpl_free(ld_tmpl(ld, v, what));
        return;
    case KT_INT:
        if (k && (k->min || k->max))
            ld_int(ld, v, k->min, k->max, &i, what);
        else
            ld_int(ld, v, LLONG_MIN, LLONG_MAX, &i, what);
        return;
    case KT_NUMBER:
        if (!is_number(v))
            ld_err(ld, v, "%s: expected a number, got %s", what, ynode_kind_name(v));
        else if (v->type == YS_FLOAT && !isfinite(v->f))
            ld_err(ld, v, "%s: expected a finite number, got %s", what, v->str);
        return;
    case KT_BOOL:
        ld_bool(ld, v, &b, what);
        return;
    case KT_DURATION:
        ld_duration(ld, v, &ms, what);
        return;
    case KT_ENUM:
        if (k)
            ld_enum(ld, v, k->values, &e, what);
        return;
    case KT_REGEX:
        if (ld_regex(ld, v, &re, what))
            rx_free(&re);
        return;
    case KT_BASE64:
        if (ld_base64(ld, v, &bytes, what))
            free(bytes.data);
        return;
    case KT_HEADERS:
        ld_headers(ld, v, &headers, what);
        ld_free_headers(&headers);
        return;
    case KT_MATCHES:
        ld_matches(ld, v, &matches, &n_matches, what);
        ld_free_matches(matches, n_matches);
        return;
    case KT_MAP:
        if (ld_is_map(ld, v, what) && t)
            ld_table(ld, v, t);
        return;
    case KT_LIST:
        if (!ld_is_seq(ld, v, what))
            return;
        if (k && (k->forms & KF_MAP))
            t = NULL; /* the table is the mapping form's; items are of type item */
        for (size_t x = 0; x < v->n; x++) {
            const struct ynode *item = v->values[x];
            if (t && item->kind == Y_MAP)
                ld_table(ld, item, t);
            else if (t && !(k->forms & KF_SCALAR))
                ld_is_map(ld, item, t->what);
            else
                check_type(ld, item, k ? k->item : KT_ANY, NULL, what);
        }
        return;
    case KT_MAP_OF:
        if (!ld_is_map(ld, v, what))
            return;
        for (size_t x = 0; x < v->n; x++) {
            const struct ynode *item = v->values[x];
            if (t) {
                if (!is_null(item) && ld_is_map(ld, item, t->what))
                    ld_table(ld, item, t);
            } else {
                check_type(ld, item, k ? k->item : KT_ANY, NULL, v->keys[x]->str);
            }
        }
        return;
    }
}

static void check_value(struct ld *ld, const struct ynode *v, const struct key_spec *k)
{
    unsigned f = k->forms;
    if ((f & KF_NULL) && is_null(v))
        return;
    if ((f & KF_BOOL) && v->kind == Y_SCALAR && v->type == YS_BOOL)
        return;
    if ((f & KF_INT) && v->kind == Y_SCALAR && v->type == YS_INT) {
        long long i;
        if (k->min || k->max)
            ld_int(ld, v, k->min, k->max, &i, k->key);
        return;
    }
    if ((f & KF_SCALAR) && k->type != KT_LIST && v->kind == Y_SCALAR && !is_null(v))
        return;
    if ((f & KF_MAP) && v->kind == Y_MAP && !(k->type == KT_EXPECTED && ld_is_matcher(v))) {
        ld_table(ld, v, k->table);
        return;
    }
    if ((f & KF_LIST) && v->kind == Y_SEQ) {
        for (size_t x = 0; x < v->n; x++)
            check_type(ld, v->values[x], k->item, NULL, k->key);
        return;
    }
    check_type(ld, v, k->type, k, k->key);
}

void ld_table(struct ld *ld, const struct ynode *map, const struct key_table *t)
{
    if (!map || map->kind != Y_MAP)
        return;
    ld_keys(ld, map, t);
    for (size_t i = 0; i < map->n; i++) {
        const struct key_spec *k = keys_find(t, map->keys[i]->str ? map->keys[i]->str : "");
        if (k)
            check_value(ld, map->values[i], k);
    }
}
