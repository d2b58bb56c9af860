/* route — see route.h. */
#include "route.h"

#include <string.h>
#include <strings.h>

bool value_match_holds(const struct value_match *m, const char *value)
{
    switch (m->op) {
    case MATCH_PRESENT:
        return value != NULL;
    case MATCH_ABSENT:
        return value == NULL;
    case MATCH_EQUALS:
        return value && !strcmp(value, m->value);
    case MATCH_REGEX:
        return value && rx_search(&m->re, value, strlen(value), NULL, NULL);
    case MATCH_JSON: {
        json_t *doc = value ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
        bool ok = doc && route_json_subset(m->json, doc);
        json_decref(doc);
        return ok;
    }
    }
    return false;
}

bool route_json_subset(const json_t *want, const json_t *have)
{
    if (!want || !have)
        return want == have;
    if (json_is_number(want))
        return json_is_number(have) && json_number_value(want) == json_number_value(have);
    if (json_typeof(want) != json_typeof(have))
        return false;
    switch (json_typeof(want)) {
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)want, key, v)
        {
            if (!route_json_subset(v, json_object_get(have, key)))
                return false;
        }
        return true;
    }
    case JSON_ARRAY:
        if (json_array_size(want) != json_array_size(have))
            return false;
        for (size_t i = 0; i < json_array_size(want); i++)
            if (!route_json_subset(json_array_get(want, i), json_array_get(have, i)))
                return false;
        return true;
    case JSON_STRING:
        return json_string_length(want) == json_string_length(have) &&
               !memcmp(json_string_value(want), json_string_value(have), json_string_length(want));
    default: /* true, false, null */
        return true;
    }
}

bool route_body_match(const struct value_match *m, const struct request *r)
{
    if (!m)
        return true;
    const char *body = r->body ? (const char *)r->body : "";
    size_t len = r->body ? r->body_len : 0;
    switch (m->op) {
    case MATCH_EQUALS:
        return len == strlen(m->value) && !memcmp(body, m->value, len);
    case MATCH_REGEX:
        return rx_search(&m->re, body, len, NULL, NULL);
    default: {
        /* bodies are NUL-terminated (request.h); JSON text with a NUL inside is not JSON */
        json_t *doc = json_loadb(body, len, JSON_DECODE_ANY, NULL);
        bool ok = doc && route_json_subset(m->json, doc);
        json_decref(doc);
        return ok;
    }
    }
}

bool headers_match(const struct value_match *m, size_t n, const struct request *r)
{
    for (size_t i = 0; i < n; i++) {
        bool seen = false, ok = false;
        for (size_t h = 0; h < r->n_headers && !ok; h++) {
            if (strcasecmp(r->headers[h].name, m[i].name))
                continue;
            seen = true;
            ok = value_match_holds(&m[i], r->headers[h].value);
        }
        if (!seen)
            ok = value_match_holds(&m[i], NULL);
        if (!ok)
            return false;
    }
    return true;
}

static bool query_match(const struct route *rt, const struct request *r)
{
    for (size_t i = 0; i < rt->n_query; i++) {
        bool seen = false, ok = false;
        for (size_t p = 0; p < r->n_params && !ok; p++) {
            if (strcmp(r->params[p].name, rt->query[i].name))
                continue;
            seen = true;
            ok = value_match_holds(&rt->query[i], r->params[p].value);
        }
        if (!seen)
            ok = value_match_holds(&rt->query[i], NULL);
        if (!ok)
            return false;
    }
    return true;
}

static bool path_match(const struct route *rt, const char *rel_path)
{
    if (rt->target) /* the path and query together, as received */
        return false;
    if (rt->path)
        return !strcmp(rt->path, rel_path);
    if (rt->has_path_re)
        return rx_search(&rt->path_re, rel_path, strlen(rel_path), NULL, NULL);
    return true;
}

static bool method_match(const struct route *rt, const char *method)
{
    if (rt->n_methods == 0)
        return true;
    for (size_t i = 0; i < rt->n_methods; i++)
        if (!strcmp(rt->methods[i], method))
            return true;
    return false;
}

static bool is_preflight(const struct request *r)
{
    bool origin = false, acrm = false;
    for (size_t h = 0; h < r->n_headers; h++) {
        origin |= !strcasecmp(r->headers[h].name, "Origin");
        acrm |= !strcasecmp(r->headers[h].name, "Access-Control-Request-Method");
    }
    return !strcmp(r->method, "OPTIONS") && origin && acrm;
}

/* target, kind and body: the conditions path_match and query_match do not cover. */
static bool more_match(const struct route *rt, const struct request *r, const char *rel_path)
{
    if (rt->target) {
        const char *rel = request_rel(r->target);
        const char *t = *rel ? rel : "/";
        (void)rel_path;
        if (strcmp(rt->target, t))
            return false;
    }
    if (rt->kind && (rt->kind == 2) != is_preflight(r))
        return false;
    return route_body_match(rt->body, r);
}

long route_find(const struct scenario *s, const struct request *r, const char *rel_path)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct route *rt = &s->routes[i];
        if (method_match(rt, r->method) && (rt->target || path_match(rt, rel_path)) &&
            query_match(rt, r) && headers_match(rt->headers, rt->n_headers, r) &&
            more_match(rt, r, rel_path))
            return (long)i;
    }
    return -1;
}

bool request_is_preflight(struct request *r)
{
    return is_preflight(r);
}

long route_find_preflight(const struct scenario *s, const struct request *r, const char *rel_path)
{
    const char *wanted = NULL;
    for (size_t h = 0; h < r->n_headers; h++)
        if (!strcasecmp(r->headers[h].name, "Access-Control-Request-Method"))
            wanted = r->headers[h].value;
    if (!wanted)
        return -1;
    /* First a route that allows the requested method, then any with the same path. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < s->n_routes; i++) {
            const struct route *rt = &s->routes[i];
            if (!rt->cors || rt->cors->preflight == PREFLIGHT_NONE)
                continue;
            if ((pass == 1 || method_match(rt, wanted)) &&
                (rt->target ? more_match(rt, r, rel_path) : path_match(rt, rel_path)) &&
                query_match(rt, r) && rt->kind != 1)
                return (long)i;
        }
    }
    return -1;
}

long route_response_index(const struct route *route, unsigned long count)
{
    if (count == 0 || route->n_responses == 0)
        return -1;
    unsigned long n = route->n_responses;
    if (count <= n)
        return (long)(count - 1);
    switch (route->after_last) {
    case AFTER_REPEAT:
        return (long)(n - 1);
    case AFTER_CYCLE:
        return (long)((count - 1) % n);
    case AFTER_NOT_FOUND:
        return -1;
    }
    return -1;
}
