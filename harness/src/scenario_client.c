/* scenario_client — the `client` and `expect` parts of a scenario: checked here (shapes,
 * keys, durations, regexes), kept as JSON for the drivers. The keys of `client` are the
 * ones adapters act on (docs/adapters.md); `expect` is graded by drivers/comet_harness.
 */
#include <string.h>
#include "scenario_load.h"

#define COMMON "url", "origin", "deadline"

static const char *const XHR_KEYS[] = {
    COMMON,  "method", "async",       "timeout",       "with_credentials",   "headers",
    "body",  "form",   "body_base64", "response_type", "override_mime_type", "upload_progress",
    "abort", NULL};
static const char *const FETCH_KEYS[] = {
    COMMON,     "method", "headers",         "body",  "form", "body_base64", "mode", "credentials",
    "redirect", "cache",  "referrer_policy", "abort", NULL};
static const char *const ES_KEYS[] = {COMMON, "with_credentials", "event_types", "close_after",
                                      NULL};
static const char *const WS_CLIENT_KEYS[] = {COMMON, "protocols", "binary_type",
                                             "send", "close",     NULL};
static const char *const JSONP_CLIENT_KEYS[] = {COMMON, "callback", "cross_origin", "charset",
                                                NULL};
static const char *const IMAGE_KEYS[] = {COMMON, "cross_origin", NULL};
static const char *const HTTP_KEYS[] = {COMMON,        "method",   "headers", "body",
                                        "body_base64", "form",     "timeout", "stream",
                                        "chunk_size",  "redirect", NULL};

static const struct {
    const char *name;
    const char *const *keys;
} ACTIONS[] = {
    {"xhr", XHR_KEYS},
    {"fetch", FETCH_KEYS},
    {"eventsource", ES_KEYS},
    {"websocket", WS_CLIENT_KEYS},
    {"jsonp", JSONP_CLIENT_KEYS},
    {"image", IMAGE_KEYS},
    {"http", HTTP_KEYS},
};
#define N_ACTIONS (sizeof ACTIONS / sizeof ACTIONS[0])

static void check_abort(struct ld *ld, const struct ynode *v)
{
    if (!ld_is_map(ld, v, "abort"))
        return;
    static const char *const keys[] = {"on", "ready_state", "after", NULL};
    ld_keys(ld, v, keys, "abort");
    const struct ynode *on = ymap_get(v, "on"), *after = ymap_get(v, "after"), *x;
    uint64_t ms;
    if ((on != NULL) == (after != NULL))
        ld_err(ld, v, "abort: give on (an event name) or after (ms), not both or neither");
    if (on)
        ld_string(ld, on, "abort.on");
    if (after)
        ld_duration(ld, after, &ms, "abort.after");
    long long rs;
    if ((x = ymap_get(v, "ready_state")))
        ld_int(ld, x, 0, 4, &rs, "abort.ready_state");
}

static void check_body(struct ld *ld, const struct ynode *action)
{
    const struct ynode *b = ymap_get(action, "body"), *f = ymap_get(action, "form"),
                       *b64 = ymap_get(action, "body_base64");
    if ((b != NULL) + (f != NULL) + (b64 != NULL) > 1)
        ld_err(ld, b ? b : f, "give one of body, form and body_base64");
    if (b)
        ld_text(ld, b, "body");
    if (f)
        ld_is_map(ld, f, "form");
    struct bytes tmp = {0};
    if (b64 && ld_base64(ld, b64, &tmp, "body_base64"))
        free(tmp.data);
}

static void check_ws_send(struct ld *ld, const struct ynode *send)
{
    if (!ld_is_seq(ld, send, "send"))
        return;
    static const char *const keys[] = {"wait",   "wait_messages", "text", "binary_base64",
                                       "binary", "close",         NULL};
    for (size_t i = 0; i < send->n; i++) {
        const struct ynode *st = send->values[i];
        if (st->kind == Y_SCALAR) {
            ld_text(ld, st, "a send step");
            continue;
        }
        if (!ld_is_map(ld, st, "a send step"))
            continue;
        ld_keys(ld, st, keys, "a send step");
        const struct ynode *x;
        uint64_t ms;
        long long n;
        if ((x = ymap_get(st, "wait")))
            ld_duration(ld, x, &ms, "wait");
        if ((x = ymap_get(st, "wait_messages")))
            ld_int(ld, x, 0, 1000000, &n, "wait_messages");
        struct bytes tmp = {0};
        if ((x = ymap_get(st, "binary_base64")) && ld_base64(ld, x, &tmp, "binary_base64"))
            free(tmp.data);
    }
}

static void check_close(struct ld *ld, const struct ynode *c)
{
    if (c->kind == Y_SCALAR && c->type == YS_BOOL)
        return;
    if (!ld_is_map(ld, c, "close"))
        return;
    static const char *const keys[] = {"code", "reason", NULL};
    ld_keys(ld, c, keys, "close");
    const struct ynode *x;
    long long code;
    if ((x = ymap_get(c, "code")))
        ld_int(ld, x, 0, 65535, &code, "close.code");
    if ((x = ymap_get(c, "reason")))
        ld_text(ld, x, "close.reason");
}

json_t *load_client(struct ld *ld, const struct ynode *client)
{
    if (!ld_is_map(ld, client, "client"))
        return NULL;
    if (client->n != 1) {
        ld_err(ld, client,
               "client: exactly one action key (xhr, fetch, eventsource, websocket, "
               "jsonp, image or http), got %zu",
               client->n);
        if (client->n == 0)
            return NULL;
    }
    for (size_t a = 0; a < client->n; a++) {
        const char *name = client->keys[a]->str;
        const struct ynode *action = client->values[a];
        size_t k = 0;
        while (k < N_ACTIONS && strcmp(ACTIONS[k].name, name))
            k++;
        if (k == N_ACTIONS) {
            ld_err(ld, client->keys[a],
                   "client: unknown action '%s' (xhr, fetch, eventsource, "
                   "websocket, jsonp, image, http)",
                   name);
            continue;
        }
        char where[64];
        snprintf(where, sizeof where, "client.%s", name);
        if (!ld_is_map(ld, action, where))
            continue;
        ld_keys(ld, action, ACTIONS[k].keys, where);
        const struct ynode *v;
        if (!(v = ymap_get(action, "url")))
            ld_err(ld, action, "%s: missing 'url'", where);
        else if (ld_text(ld, v, "url")) {
            struct tmpl *t = tmpl_compile(v->str, v->len, v->loc, ld->d);
            tmpl_free(t);
        }
        if ((v = ymap_get(action, "origin")) && ld_string(ld, v, "origin") &&
            strcmp(v->str, "main") && strcmp(v->str, "cross") && strcmp(v->str, "alt"))
            ld_err(ld, v, "origin: expected main, cross or alt, got '%s'", v->str);
        uint64_t ms;
        if ((v = ymap_get(action, "deadline")))
            ld_duration(ld, v, &ms, "deadline");
        if ((v = ymap_get(action, "timeout")))
            ld_duration(ld, v, &ms, "timeout");
        if ((v = ymap_get(action, "method")))
            ld_string(ld, v, "method");
        if ((v = ymap_get(action, "headers"))) {
            struct header_list h = {0};
            ld_headers(ld, v, &h, "headers");
            for (size_t i = 0; i < h.n; i++) {
                free(h.items[i].name);
                tmpl_free(h.items[i].value);
            }
            free(h.items);
        }
        check_body(ld, action);
        if ((v = ymap_get(action, "abort")))
            check_abort(ld, v);
        bool b;
        const char *bools[] = {"async", "with_credentials", "upload_progress", "stream"};
        for (int i = 0; i < 4; i++)
            if ((v = ymap_get(action, bools[i])))
                ld_bool(ld, v, &b, bools[i]);
        if ((v = ymap_get(action, "close_after"))) {
            if (ld_is_map(ld, v, "close_after")) {
                static const char *const keys[] = {"messages", "events", "ms", NULL};
                ld_keys(ld, v, keys, "close_after");
                if (v->n != 1)
                    ld_err(ld, v, "close_after: one of messages, events or ms");
            }
        }
        if ((v = ymap_get(action, "event_types")) && ld_is_seq(ld, v, "event_types"))
            for (size_t i = 0; i < v->n; i++)
                ld_string(ld, v->values[i], "an event type");
        if ((v = ymap_get(action, "send")) && !strcmp(name, "websocket"))
            check_ws_send(ld, v);
        if ((v = ymap_get(action, "close")) && !strcmp(name, "websocket"))
            check_close(ld, v);
        if ((v = ymap_get(action, "redirect")) && ld_string(ld, v, "redirect") &&
            strcmp(v->str, "follow") && strcmp(v->str, "manual") && strcmp(v->str, "error"))
            ld_err(ld, v, "redirect: expected follow, manual or error, got '%s'", v->str);
    }
    return ynode_to_json(client);
}

/* ------------------------------------------------------------------ expect */

static const char *const MATCHER_KEYS[] = {"equals",    "regex",    "one_of",  "absent",
                                           "present",   "at_least", "at_most", "approx",
                                           "tolerance", "strict",   NULL};

static bool is_matcher_key(const char *k)
{
    for (const char *const *m = MATCHER_KEYS; *m; m++)
        if (!strcmp(*m, k) && strcmp(k, "strict") && strcmp(k, "tolerance"))
            return true;
    return false;
}

static bool is_number(const struct ynode *n)
{
    return n->kind == Y_SCALAR && (n->type == YS_INT || n->type == YS_FLOAT);
}

/* A value expected somewhere: plain, a matcher mapping, or nested mappings and lists. */
static void check_value(struct ld *ld, const struct ynode *n)
{
    if (n->kind == Y_SEQ) {
        for (size_t i = 0; i < n->n; i++)
            check_value(ld, n->values[i]);
        return;
    }
    if (n->kind != Y_MAP)
        return;
    bool matcher = false;
    for (size_t i = 0; i < n->n; i++)
        matcher |= is_matcher_key(n->keys[i]->str);
    if (!matcher) {
        for (size_t i = 0; i < n->n; i++)
            if (strcmp(n->keys[i]->str, "strict"))
                check_value(ld, n->values[i]);
        return;
    }
    ld_keys(ld, n, MATCHER_KEYS, "a matcher");
    const struct ynode *v;
    if ((v = ymap_get(n, "regex")) && ld_text(ld, v, "regex")) {
        regex_t re;
        if (ld_regex(ld, v, &re, "regex"))
            regfree(&re);
    }
    if ((v = ymap_get(n, "one_of")))
        ld_is_seq(ld, v, "one_of");
    const char *nums[] = {"at_least", "at_most", "approx", "tolerance"};
    for (int i = 0; i < 4; i++)
        if ((v = ymap_get(n, nums[i])) && !is_number(v))
            ld_err(ld, v, "%s: expected a number, got %s", nums[i], ynode_kind_name(v));
    if ((v = ymap_get(n, "tolerance")) && !ymap_get(n, "approx"))
        ld_err(ld, v, "tolerance goes with approx");
    bool b;
    if ((v = ymap_get(n, "strict")))
        ld_bool(ld, v, &b, "strict");
    if ((v = ymap_get(n, "present")))
        ld_bool(ld, v, &b, "present");
    if ((v = ymap_get(n, "absent")))
        ld_bool(ld, v, &b, "absent");
}

static void check_expect_client(struct ld *ld, const struct ynode *n)
{
    if (!ld_is_map(ld, n, "expect.client"))
        return;
    const struct ynode *v;
    if ((v = ymap_get(n, "events")) && ld_is_seq(ld, v, "expect.client.events")) {
        for (size_t i = 0; i < v->n; i++) {
            const struct ynode *ev = v->values[i];
            if (!ld_is_map(ld, ev, "an expected event"))
                continue;
            check_value(ld, ev);
        }
    }
    if ((v = ymap_get(n, "events_mode")) && ld_string(ld, v, "events_mode") &&
        strcmp(v->str, "exact") && strcmp(v->str, "subsequence") && strcmp(v->str, "contains"))
        ld_err(ld, v, "events_mode: expected exact, subsequence or contains, got '%s'", v->str);
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->keys[i]->str, "events") && strcmp(n->keys[i]->str, "events_mode"))
            check_value(ld, n->values[i]);
}

static void check_expect_server(struct ld *ld, const struct ynode *n)
{
    if (!ld_is_map(ld, n, "expect.server"))
        return;
    static const char *const keys[] = {"requests",  "preflights", "order",
                                       "websocket", "strict",     NULL};
    static const char *const ws_keys[] = {"pongs",      "messages", "close_code", "masked",
                                          "violations", "end",      "strict",     NULL};
    static const char *const req_keys[] = {"route",  "count", "headers", "preflight", "strict",
                                           "method", "path",  "query",   "body",      NULL};
    ld_keys(ld, n, keys, "expect.server");
    const struct ynode *v;
    if ((v = ymap_get(n, "requests")) && ld_is_seq(ld, v, "expect.server.requests")) {
        for (size_t i = 0; i < v->n; i++) {
            const struct ynode *r = v->values[i];
            if (!ld_is_map(ld, r, "an expected request"))
                continue;
            ld_keys(ld, r, req_keys, "an expected request");
            const struct ynode *x;
            if ((x = ymap_get(r, "route")) && x->type != YS_NULL) {
                bool found = false;
                if (ld_text(ld, x, "route"))
                    for (size_t k = 0; k < ld->s->n_routes; k++)
                        found |= ld->s->routes[k].name && !strcmp(ld->s->routes[k].name, x->str);
                if (!found && x->str)
                    ld_err(ld, x, "route: no route named '%s' in server.routes", x->str);
            }
            if ((x = ymap_get(r, "count")) && !is_number(x))
                check_value(ld, x);
            if ((x = ymap_get(r, "headers")) && ld_is_map(ld, x, "headers"))
                check_value(ld, x);
        }
    }
    if ((v = ymap_get(n, "preflights")))
        check_value(ld, v);
    if ((v = ymap_get(n, "websocket")) && ld_is_map(ld, v, "expect.server.websocket")) {
        ld_keys(ld, v, ws_keys, "expect.server.websocket");
        for (size_t i = 0; i < v->n; i++)
            check_value(ld, v->values[i]);
    }
    if ((v = ymap_get(n, "order"))) {
        if (v->kind == Y_SEQ) {
            for (size_t i = 0; i < v->n; i++)
                ld_text(ld, v->values[i], "order");
        } else {
            ld_is_map(ld, v, "order");
        }
    }
}

json_t *load_expect(struct ld *ld, const struct ynode *expect)
{
    if (expect->kind == Y_SCALAR && expect->type == YS_NULL)
        return json_object();
    if (!ld_is_map(ld, expect, "expect"))
        return NULL;
    static const char *const keys[] = {"client", "server", NULL};
    ld_keys(ld, expect, keys, "expect");
    const struct ynode *v;
    if ((v = ymap_get(expect, "client")))
        check_expect_client(ld, v);
    if ((v = ymap_get(expect, "server")))
        check_expect_server(ld, v);
    return ynode_to_json(expect);
}
