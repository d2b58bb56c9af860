/* scenario_server — the `server` part of a scenario: routes (name, match conditions,
 * responses, after_last), CORS policies and channels (docs/scenarios.md, "server").
 * Responses themselves are scenario_response.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "scenario_load.h"
#include "xalloc.h"

/* A string, or a list of strings joined with ", ". */
static char *join_list(struct ld *ld, const struct ynode *n, const char *what)
{
    if (n->kind == Y_SCALAR)
        return ld_text(ld, n, what) ? xstrdup(n->str) : NULL;
    if (!ld_is_seq(ld, n, what))
        return NULL;
    size_t cap = 1;
    for (size_t i = 0; i < n->n; i++)
        cap += (n->values[i]->str ? strlen(n->values[i]->str) : 0) + 2;
    char *out = xcalloc(cap, 1);
    for (size_t i = 0; i < n->n; i++) {
        if (!ld_text(ld, n->values[i], what))
            continue;
        if (*out)
            strcat(out, ", ");
        strcat(out, n->values[i]->str);
    }
    return out;
}

/* allow_origin: echo, *, none, wrong, null, or an exact origin. */
static void cors_origin(struct ld *ld, const struct ynode *v, struct cors_policy *c)
{
    if (v->kind == Y_SCALAR && v->type == YS_NULL) {
        c->allow_origin = ACAO_NONE;
        return;
    }
    if (!ld_string(ld, v, "cors.allow_origin"))
        return;
    static const struct {
        const char *word;
        enum acao_mode mode;
    } words[] = {{"echo", ACAO_ECHO}, {"*", ACAO_STAR}, {"none", ACAO_NONE}, {"wrong", ACAO_WRONG}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (!strcmp(v->str, words[i].word)) {
            c->allow_origin = words[i].mode;
            return;
        }
    c->allow_origin = ACAO_EXACT;
    c->allow_origin_value = xstrdup(v->str);
}

static void load_cors(struct ld *ld, const struct ynode *n, struct route *rt)
{
    if (!ld_is_map(ld, n, "cors"))
        return;
    ld_keys(ld, n, &KEYS_CORS);
    struct cors_policy *c = rt->cors = xcalloc(1, sizeof *c);
    c->allow_origin = ACAO_ECHO;
    c->max_age = -1;
    c->vary_origin = true;
    const struct ynode *v;
    if ((v = ymap_get(n, "allow_origin")))
        cors_origin(ld, v, c);
    if ((v = ymap_get(n, "allow_credentials"))) {
        if (v->kind == Y_SCALAR && v->type == YS_BOOL)
            c->allow_credentials = v->b ? xstrdup("true") : NULL;
        else if (ld_text(ld, v, "cors.allow_credentials"))
            c->allow_credentials = xstrdup(v->str);
    }
    if ((v = ymap_get(n, "allow_methods")))
        c->allow_methods = join_list(ld, v, "cors.allow_methods");
    if ((v = ymap_get(n, "allow_headers")))
        c->allow_headers = join_list(ld, v, "cors.allow_headers");
    if ((v = ymap_get(n, "expose_headers")))
        c->expose_headers = join_list(ld, v, "cors.expose_headers");
    long long age;
    if ((v = ymap_get(n, "max_age")) && ld_int(ld, v, -1, 1LL << 31, &age, "cors.max_age"))
        c->max_age = (long)age;
    if ((v = ymap_get(n, "vary_origin")))
        ld_bool(ld, v, &c->vary_origin, "cors.vary_origin");
    int pf;
    if (!(v = ymap_get(n, "preflight"))) {
        return;
    } else if (v->kind == Y_MAP) {
        c->preflight = PREFLIGHT_SCRIPTED;
        c->preflight_response = xcalloc(1, sizeof *c->preflight_response);
        scenario_response_load(ld, v, c->preflight_response);
    } else if (v->kind == Y_SCALAR && v->type == YS_STRING && strcmp(v->str, "auto") &&
               strcmp(v->str, "none")) {
        ld_err(ld, v, "cors.preflight: expected auto, none or a response mapping, got '%s'",
               v->str);
    } else if (ld_choice(ld, v, &KEYS_CORS, "preflight", &pf, "cors.preflight")) {
        c->preflight = (enum preflight_mode)pf;
    }
}

static void load_match(struct ld *ld, const struct ynode *n, struct route *rt)
{
    if (!ld_is_map(ld, n, "match"))
        return;
    ld_keys(ld, n, &KEYS_MATCH);
    const struct ynode *v;
    if ((v = ymap_get(n, "method"))) {
        if (v->kind == Y_SCALAR) {
            if (ld_string(ld, v, "match.method")) {
                rt->methods = xcalloc(1, sizeof *rt->methods);
                rt->methods[rt->n_methods++] = xstrdup(v->str);
            }
        } else if (ld_is_seq(ld, v, "match.method")) {
            rt->methods = xcalloc(v->n, sizeof *rt->methods);
            for (size_t i = 0; i < v->n; i++)
                if (ld_string(ld, v->values[i], "match.method"))
                    rt->methods[rt->n_methods++] = xstrdup(v->values[i]->str);
        }
    }
    const struct ynode *p = ymap_get(n, "path"), *pr = ymap_get(n, "path_regex");
    if (p && pr)
        ld_err(ld, pr, "match: give path or path_regex, not both");
    else if (p && ld_text(ld, p, "match.path")) {
        if (p->str[0] != '/')
            ld_err(ld, p,
                   "match.path: '%s' must start with '/' (it is relative to the "
                   "instance prefix)",
                   p->str);
        rt->path = xstrdup(p->str);
    } else if (pr && ld_regex(ld, pr, &rt->path_re, "match.path_regex")) {
        rt->has_path_re = true;
        rt->path_re_src = xstrdup(pr->str);
    }
    if ((v = ymap_get(n, "query")))
        ld_matches(ld, v, &rt->query, &rt->n_query, "match.query");
    if ((v = ymap_get(n, "headers")))
        ld_matches(ld, v, &rt->headers, &rt->n_headers, "match.headers");
    if ((v = ymap_get(n, "target")) && ld_text(ld, v, "match.target")) {
        if (p || pr)
            ld_err(ld, v,
                   "match: give target or path/path_regex, not both (target is the path "
                   "and the query)");
        else if (ymap_get(n, "query"))
            ld_err(ld, v, "match: target fixes the query already; leave out match.query");
        else if (v->str[0] != '/' && v->str[0] != '?')
            ld_err(ld, v,
                   "match.target: '%s' must start with '/' or '?' (it is relative to the "
                   "instance prefix)",
                   v->str);
        else
            rt->target = xstrdup(v->str);
    }
    int kind;
    if ((v = ymap_get(n, "kind")) && ld_choice(ld, v, &KEYS_MATCH, "kind", &kind, "match.kind"))
        rt->kind = kind + 1;
    if ((v = ymap_get(n, "body")))
        rt->body = ld_body_condition(ld, v, "match.body");
}

static void load_responses(struct ld *ld, const struct ynode *n, struct route *rt)
{
    const struct ynode *one = ymap_get(n, "response"), *seq = ymap_get(n, "responses");
    if (one && seq) {
        ld_err(ld, seq, "a route has response or responses, not both");
    } else if (one) {
        rt->responses = xcalloc(1, sizeof *rt->responses);
        rt->n_responses = 1;
        scenario_response_load(ld, one, &rt->responses[0]);
    } else if (seq) {
        if (!ld_is_seq(ld, seq, "responses"))
            return;
        if (seq->n == 0)
            ld_err(ld, seq, "responses: the sequence is empty");
        rt->responses = xcalloc(seq->n, sizeof *rt->responses);
        for (size_t i = 0; i < seq->n; i++)
            scenario_response_load(ld, seq->values[i], &rt->responses[rt->n_responses++]);
    } else {
        ld_err(ld, n, "route '%s': missing response (or responses)", rt->name);
    }
}

static void load_route(struct ld *ld, const struct ynode *n, struct route *rt, size_t index)
{
    rt->loc = n->loc;
    ld_keys(ld, n, &KEYS_ROUTE);
    const struct ynode *v;
    if ((v = ymap_get(n, "name")) && ld_text(ld, v, "route name")) {
        rt->name = xstrdup(v->str);
        for (size_t i = 0; i < index; i++)
            if (ld->s->routes[i].name && !strcmp(ld->s->routes[i].name, v->str))
                ld_err(ld, v, "a route named '%s' already exists", v->str);
    } else {
        char buf[32];
        snprintf(buf, sizeof buf, "route-%zu", index + 1);
        rt->name = xstrdup(buf);
    }
    if ((v = ymap_get(n, "match")))
        load_match(ld, v, rt);
    load_responses(ld, n, rt);
    int al;
    if ((v = ymap_get(n, "after_last")) &&
        ld_choice(ld, v, &KEYS_ROUTE, "after_last", &al, "after_last"))
        rt->after_last = (enum after_last)al;
    if ((v = ymap_get(n, "cors")))
        load_cors(ld, v, rt);
}

static void load_channel_event(struct ld *ld, const struct ynode *ev, struct channel *c)
{
    struct channel_event *ce = &c->events[c->n_events];
    if (ev->kind == Y_SCALAR) {
        if (ld_text(ld, ev, "a channel event")) {
            ld_bytes_text(ev, &ce->data);
            c->n_events++;
        }
        return;
    }
    if (!ld_is_map(ld, ev, "a channel event"))
        return;
    ld_keys(ld, ev, &KEYS_CHANNEL_EVENT);
    const struct ynode *a = ymap_get(ev, "after"), *d = ymap_get(ev, "data");
    if (a)
        ld_duration(ld, a, &ce->after_ms, "after");
    if (!d) {
        ld_err(ld, ev, "a channel event needs data");
        return;
    }
    if (d->kind == Y_SCALAR && d->type == YS_STRING) {
        ld_bytes_text(d, &ce->data);
    } else {
        json_t *j = ynode_to_json(d);
        char *text = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(j);
        ce->data.data = (unsigned char *)text;
        ce->data.len = strlen(text);
    }
    c->n_events++;
}

static void load_channels(struct ld *ld, const struct ynode *n)
{
    if (!ld_is_map(ld, n, "channels"))
        return;
    struct scenario *s = ld->s;
    s->channels = xcalloc(n->n, sizeof *s->channels);
    for (size_t i = 0; i < n->n; i++) {
        struct channel *c = &s->channels[s->n_channels++];
        c->name = xstrdup(n->keys[i]->str);
        const struct ynode *v = n->values[i];
        if ((v->kind == Y_SCALAR && v->type == YS_NULL) || !ld_is_map(ld, v, "a channel"))
            continue;
        ld_keys(ld, v, &KEYS_CHANNEL);
        const struct ynode *events = ymap_get(v, "events");
        if (!events || !ld_is_seq(ld, events, "channel events"))
            continue;
        c->events = xcalloc(events->n, sizeof *c->events);
        for (size_t e = 0; e < events->n; e++)
            load_channel_event(ld, events->values[e], c);
    }
}

void scenario_server_load(struct ld *ld, const struct ynode *server)
{
    if (!server || !ld_is_map(ld, server, "server"))
        return;
    ld_keys(ld, server, &KEYS_SERVER);
    const struct ynode *ch = ymap_get(server, "channels");
    if (ch)
        load_channels(ld, ch);
    const struct ynode *routes = ymap_get(server, "routes");
    if (!routes || !ld_is_seq(ld, routes, "server.routes"))
        return;
    struct scenario *s = ld->s;
    s->routes = xcalloc(routes->n, sizeof *s->routes);
    for (size_t i = 0; i < routes->n; i++) {
        if (!ld_is_map(ld, routes->values[i], "a route"))
            continue;
        load_route(ld, routes->values[i], &s->routes[s->n_routes], s->n_routes);
        s->n_routes++;
    }
}

static void free_route(struct route *rt)
{
    free(rt->name);
    for (size_t m = 0; m < rt->n_methods; m++)
        free(rt->methods[m]);
    free(rt->methods);
    free(rt->path);
    if (rt->has_path_re)
        rx_free(&rt->path_re);
    free(rt->path_re_src);
    ld_free_matches(rt->query, rt->n_query);
    ld_free_matches(rt->headers, rt->n_headers);
    free(rt->target);
    if (rt->body)
        ld_free_matches(rt->body, 1);
    for (size_t r = 0; r < rt->n_responses; r++)
        scenario_response_free(&rt->responses[r]);
    free(rt->responses);
    if (rt->cors) {
        free(rt->cors->allow_origin_value);
        free(rt->cors->allow_credentials);
        free(rt->cors->allow_methods);
        free(rt->cors->allow_headers);
        free(rt->cors->expose_headers);
        scenario_response_free(rt->cors->preflight_response);
        free(rt->cors->preflight_response);
        free(rt->cors);
    }
}

void scenario_server_free(struct scenario *s)
{
    for (size_t i = 0; i < s->n_routes; i++)
        free_route(&s->routes[i]);
    free(s->routes);
    for (size_t c = 0; c < s->n_channels; c++) {
        for (size_t e = 0; e < s->channels[c].n_events; e++)
            free(s->channels[c].events[e].data.data);
        free(s->channels[c].events);
        free(s->channels[c].name);
    }
    free(s->channels);
}
