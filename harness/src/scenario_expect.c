/* scenario_expect — the `expect` part, graded by drivers/comet_harness/grader.py: validated
 * from the key tables (ld_table.h: expect.client by the client's action, expect.server,
 * matchers, gaps, timeline, cases) plus what a table cannot say: a named route exists; in a
 * client script, a named step exists and the fields an expectation names are ones its
 * step's action reports (an event's fields, selectors of all/monotonic, points of gaps and
 * timelines, expect.client.steps.ID); kept as JSON.
 */
#include <string.h>
#include "clientreg.h"
#include "ld_table.h"
#include "scenario_load.h"

struct ctx {
    struct ld *ld;
    const struct ynode *steps; /* client.steps, or NULL for a single action */
};

/* route names are in a hash map (ld->route_names): a check per expectation stays O(1) */
static bool route_exists(const struct ld *ld, const char *name)
{
    return strmap_get(&ld->route_names, name, strlen(name)) != NULL;
}

static void check_route(struct ld *ld, const struct ynode *x)
{
    if (x && x->kind == Y_SCALAR && x->type != YS_NULL && x->str && !route_exists(ld, x->str))
        ld_err(ld, x, "route: no route named '%s' in server.routes", x->str);
}

static void check_routes(struct ld *ld, const struct ynode *server)
{
    const struct ynode *requests = ymap_get(server, "requests");
    if (!requests || requests->kind != Y_SEQ)
        return;
    for (size_t i = 0; i < requests->n; i++)
        check_route(ld, ymap_get(requests->values[i], "route"));
}

/* The expect.client table of an action (the variants of KEYS_EXPECT's client key). */
static const struct key_table *client_table(const char *action)
{
    const struct key_spec *k = keys_find(&KEYS_EXPECT, "client");
    for (const struct key_variant *x = k->variants; action && x->action; x++)
        if (!strcmp(x->action, action))
            return x->table;
    return NULL;
}

static const struct key_table *events_table(const char *action)
{
    const struct key_table *t = client_table(action);
    const struct key_spec *e = t ? keys_find(t, "events") : NULL;
    return e ? e->table : NULL;
}

/* The step named by the scalar n (reporting a bad name), or NULL. */
static const struct ynode *named_step(struct ctx *c, const struct ynode *n, const char *what)
{
    if (!n || n->kind != Y_SCALAR || !n->str)
        return NULL;
    const struct ynode *st = scenario_step_find(c->steps, n->str, NULL);
    if (!st)
        ld_err(c->ld, n, "%s: no step '%s' in client.steps", what, n->str);
    return st;
}

/* The action of the request step named by n, or NULL (reporting a step that is not one). */
static const char *step_action(struct ctx *c, const struct ynode *n, const char *what)
{
    const struct ynode *st = named_step(c, n, what);
    const char *action = st ? scenario_step_action(st) : NULL;
    if (st && !action)
        ld_err(c->ld, n, "%s: step '%s' is not a request step", what, n->str);
    return action;
}

/* The events a step that is not a request fires: do (what it called threw), wait_for (it
 * timed out). */
static bool other_event(const struct ynode *st, const char *type)
{
    if (ymap_get(st, "do"))
        return !strcmp(type, "exception") || !strcmp(type, "return");
    return ymap_get(st, "wait_for") && !strcmp(type, "wait_timeout");
}

/* The field names of an event item (or selector) that the events it can match do not have.
 * Type and value errors were reported by the tables already; with `all` the item was not
 * checked by name yet (a selector is an expected value), so every unknown name is reported;
 * else only those known to the script's table but not to its step's action. */
static void check_event_fields(struct ctx *c, const struct ynode *item, bool all, const char *what,
                               const struct ynode *step)
{
    if (!item || item->kind != Y_MAP || ld_is_matcher(item))
        return;
    const struct key_table *wide = events_table(c->ld->action);
    const struct key_table *narrow = wide;
    if (ymap_get(item, "step"))
        step = ymap_get(item, "step");
    const struct ynode *st = NULL;
    if (c->steps && step && step->kind == Y_SCALAR) {
        st = named_step(c, step, what);
        const char *action = st ? scenario_step_action(st) : NULL;
        if (action)
            narrow = events_table(action);
    } else if (!c->steps && step) {
        ld_err(c->ld, step, "%s: step: only a client script's events have a step", what);
    }
    const struct ynode *type = ymap_get(item, "type");
    if (st && type && type->kind == Y_SCALAR && type->type == YS_STRING) {
        const char *action = scenario_step_action(st);
        if (action ? strcmp(type->str, "exception") && !scenario_step_produces(st, type->str)
                   : !other_event(st, type->str))
            ld_err(c->ld, type, "%s: step '%s' (%s) fires no '%s' event", what, step->str,
                   action                     ? action
                   : ymap_get(st, "do")       ? "do"
                   : ymap_get(st, "wait_for") ? "wait_for"
                                              : "wait",
                   type->str);
    }
    if (!narrow || !wide)
        return;
    for (size_t i = 0; i < item->n; i++) {
        const char *k = item->keys[i]->str;
        if (!k || keys_find(narrow, k))
            continue;
        if (all || keys_find(wide, k))
            ld_err(c->ld, item->keys[i], "%s: '%s' is not a field of %s", what, k, narrow->doc);
    }
}

static void check_events(struct ctx *c, const struct ynode *events)
{
    if (!events || events->kind != Y_SEQ)
        return;
    for (size_t i = 0; i < events->n; i++)
        check_event_fields(c, events->values[i], false, "events", NULL);
}

static void check_selectors(struct ctx *c, const struct ynode *list, const char *what)
{
    if (!list || list->kind != Y_SEQ)
        return;
    for (size_t i = 0; i < list->n; i++) {
        const struct ynode *x = list->values[i];
        if (x->kind != Y_MAP)
            continue;
        const struct ynode *sel = ymap_get(x, "events"), *m = ymap_get(x, "match"),
                           *f = ymap_get(x, "field");
        if (!sel)
            ld_err(c->ld, x, "%s: missing 'events' (which events: fields of an event)", what);
        check_event_fields(c, sel, true, what, NULL);
        /* the match fields are those of the selected step's events */
        check_event_fields(c, m, true, what,
                           sel && sel->kind == Y_MAP ? ymap_get(sel, "step") : NULL);
        if (!strcmp(what, "all") && !m)
            ld_err(c->ld, x, "all: missing 'match' (what every selected event has)");
        if (!strcmp(what, "monotonic")) {
            if (!f)
                ld_err(c->ld, x, "monotonic: missing 'field'");
            else if (f->kind == Y_SCALAR && f->str) {
                const struct key_table *t = events_table(c->ld->action);
                if (t && (!keys_find(t, f->str) || !strcmp(f->str, "strict") ||
                          !strcmp(f->str, "count") || !strcmp(f->str, "when") ||
                          !strcmp(f->str, "level")))
                    ld_err(c->ld, f, "monotonic: '%s' is not a field of %s", f->str, t->doc);
            }
        }
    }
}

static void check_point(struct ctx *c, const struct ynode *p, const char *what)
{
    if (!p || p->kind != Y_MAP)
        return;
    const struct ynode *ev = ymap_get(p, "event"), *j = ymap_get(p, "journal"),
                       *at = ymap_get(p, "at");
    if ((ev != NULL) == (j != NULL))
        ld_err(c->ld, p, "%s: give event or journal, not both or neither", what);
    if (ev) {
        if (ev->kind != Y_MAP)
            ld_err(c->ld, ev, "%s: event: the fields of an event, as a mapping", what);
        check_event_fields(c, ev, true, what, NULL);
    }
    if (at && ev)
        ld_err(c->ld, at, "%s: at goes with journal (an event has one time, t)", what);
    const struct ynode *nth = ymap_get(p, "nth");
    if (nth && nth->kind == Y_SCALAR && nth->type == YS_INT && nth->i == 0)
        ld_err(c->ld, nth, "%s: nth counts from 1 (or from the end: -1 is the last)", what);
    if (j && j->kind == Y_MAP)
        check_route(c->ld, ymap_get(j, "route"));
}

static void check_points(struct ctx *c, const struct ynode *gaps, const struct ynode *timeline)
{
    if (gaps && gaps->kind == Y_SEQ)
        for (size_t i = 0; i < gaps->n; i++) {
            const struct ynode *g = gaps->values[i];
            if (g->kind != Y_MAP)
                continue;
            const struct ynode *from = ymap_get(g, "from"), *to = ymap_get(g, "to");
            if (!from || !to)
                ld_err(c->ld, g, "gaps: give from and to");
            check_point(c, from, "gaps.from");
            check_point(c, to, "gaps.to");
            if (!ymap_get(g, "at_least") && !ymap_get(g, "at_most") && !ymap_get(g, "approx"))
                ld_err(c->ld, g, "gaps: give at_least, at_most or approx");
            const struct ynode *t = ymap_get(g, "tolerance");
            if (t && !ymap_get(g, "approx"))
                ld_err(c->ld, t, "tolerance goes with approx");
        }
    if (timeline && timeline->kind == Y_SEQ) {
        if (timeline->n < 2)
            ld_err(c->ld, timeline, "timeline: at least two points");
        for (size_t i = 0; i < timeline->n; i++)
            check_point(c, timeline->values[i], "timeline");
    }
}

/* expect.client.steps: STEP-ID: the expectations of that step's action. */
static void check_step_expectations(struct ctx *c, const struct ynode *steps)
{
    if (!steps || steps->kind != Y_MAP)
        return;
    for (size_t i = 0; i < steps->n; i++) {
        const char *action = step_action(c, steps->keys[i], "steps");
        const struct ynode *v = steps->values[i];
        if (!action || !ld_is_map(c->ld, v, "a step's expectations"))
            continue;
        const struct ynode *sub = ymap_get(v, "steps");
        if (sub)
            ld_err(c->ld, sub, "steps: a step's expectations have no steps of their own");
        const char *saved = c->ld->action;
        c->ld->action = action;
        ld_table(c->ld, v, client_table(action));
        struct ctx inner = {c->ld, NULL};
        check_events(&inner, ymap_get(v, "events"));
        check_selectors(&inner, ymap_get(v, "all"), "all");
        check_selectors(&inner, ymap_get(v, "monotonic"), "monotonic");
        c->ld->action = saved;
    }
}

static void check_block(struct ctx *c, const struct ynode *block)
{
    const struct ynode *client = ymap_get(block, "client");
    if (client && client->kind == Y_MAP) {
        check_events(c, ymap_get(client, "events"));
        check_selectors(c, ymap_get(client, "all"), "all");
        check_selectors(c, ymap_get(client, "monotonic"), "monotonic");
        if (c->steps)
            check_step_expectations(c, ymap_get(client, "steps"));
    }
    const struct ynode *server = ymap_get(block, "server");
    if (server && server->kind == Y_MAP)
        check_routes(c->ld, server);
    check_points(c, ymap_get(block, "gaps"), ymap_get(block, "timeline"));
}

/* Every `when: {client: ...}` under n names a client of the registry (ld->clients). The
 * values of `equals` and `json` are data, not checks: not walked. */
static void check_when_clients(struct ld *ld, const struct ynode *n)
{
    if (n->kind == Y_SEQ) {
        for (size_t i = 0; i < n->n; i++)
            check_when_clients(ld, n->values[i]);
        return;
    }
    if (n->kind != Y_MAP)
        return;
    for (size_t i = 0; i < n->n; i++) {
        const char *key = n->keys[i]->str;
        const struct ynode *v = n->values[i];
        if (!strcmp(key, "equals") || !strcmp(key, "json"))
            continue;
        const struct ynode *names = !strcmp(key, "when") ? ymap_get(v, "client") : NULL;
        if (!names) {
            check_when_clients(ld, v);
            continue;
        }
        size_t count = names->kind == Y_SEQ ? names->n : 1;
        for (size_t j = 0; j < count; j++) {
            const struct ynode *name = names->kind == Y_SEQ ? names->values[j] : names;
            if (name->kind == Y_SCALAR && name->str && !clientreg_has(ld->clients, name->str))
                ld_err(ld, name, "when.client: no client '%s' in the client registry (%s)",
                       name->str, ld->clients->files ? ld->clients->files : "none read");
        }
    }
}

bool scenario_expect_load(struct ld *ld, const struct ynode *expect, const struct ynode *client)
{
    if (expect->kind == Y_SCALAR && expect->type == YS_NULL)
        return true;
    if (!ld_is_map(ld, expect, "expect"))
        return false;
    size_t before = ld->d->n;
    ld_table(ld, expect, &KEYS_EXPECT);
    struct ctx c = {ld, client ? ymap_get(client, "steps") : NULL};
    check_block(&c, expect);
    const struct ynode *cases = ymap_get(expect, "cases");
    if (cases && cases->kind == Y_SEQ)
        for (size_t i = 0; i < cases->n; i++)
            if (cases->values[i]->kind == Y_MAP) {
                if (!ymap_get(cases->values[i], "when"))
                    ld_err(ld, cases->values[i], "cases: each case says when (which clients)");
                check_block(&c, cases->values[i]);
            }
    if (ld->clients)
        check_when_clients(ld, expect);
    return ld->d->n == before;
}
