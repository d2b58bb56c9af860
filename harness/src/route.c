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
    }
    return false;
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

long route_find(const struct scenario *s, const struct request *r, const char *rel_path)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct route *rt = &s->routes[i];
        if ((!rt->tls || r->tls) && method_match(rt, r->method) && path_match(rt, rel_path) &&
            query_match(rt, r) && headers_match(rt->headers, rt->n_headers, r))
            return (long)i;
    }
    return -1;
}

bool request_is_preflight(struct request *r)
{
    return !strcmp(r->method, "OPTIONS") && request_header(r, "Origin") &&
           request_header(r, "Access-Control-Request-Method");
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
            if (!rt->cors || rt->cors->preflight == PREFLIGHT_NONE || (rt->tls && !r->tls))
                continue;
            if ((pass == 1 || method_match(rt, wanted)) && path_match(rt, rel_path) &&
                query_match(rt, r))
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
