/* scenario_steps — client scripts (`client.steps`, docs/scenarios.md "Client scripts"): the
 * rules the key tables cannot state. Every step is one of a request (an action key, as a
 * single-action client has), `wait`, `wait_for` or `do`; step ids are unique (default
 * step-N, N from 1); every reference (do's step, on.step, wait_for.event.step) names a
 * request step, earlier in the script unless it is a listener (`on`), and every event named
 * is one that step's action produces. Errors are located at the offending node.
 */
#include <stdio.h>
#include <string.h>
#include "ld_table.h"
#include "scenario_load.h"

#define MAX_STEPS 1000

/* The events each action's object fires (drivers/schema/adapter-protocol.schema.json,
 * event.ACTION: tests/test_check.py holds the two equal), and the objects do acts on. */
static const struct {
    const char *action;
    const char *events; /* space-separated, with a space at each end */
    bool ready_state;   /* the object has a readyState */
    const char *verbs;  /* the do verbs it takes; call/set need an object */
    bool object;
} ACTIONS[] = {
    {"xhr",
     " readystatechange loadstart progress load error abort timeout loadend upload.loadstart "
     "upload.progress upload.load upload.error upload.abort upload.timeout upload.loadend ",
     true, " abort send ", true},
    {"fetch", " response chunk done error ", false, " abort ", false},
    {"http", " response chunk done error ", false, " abort ", false},
    {"eventsource", " open message error ", true, " close ", true},
    {"websocket", " open message error close ", true, " close send ", true},
    {"jsonp", " callback load error ", false, " ", true},
    {"image", " load error ", false, " ", true},
};

static int action_index(const char *name)
{
    for (size_t i = 0; i < sizeof ACTIONS / sizeof ACTIONS[0]; i++)
        if (!strcmp(ACTIONS[i].action, name))
            return (int)i;
    return -1;
}

static bool in_list(const char *list, const char *word)
{
    char w[128];
    if (strlen(word) + 3 > sizeof w || strchr(word, ' '))
        return false;
    snprintf(w, sizeof w, " %s ", word);
    return strstr(list, w) != NULL;
}

const char *scenario_step_action(const struct ynode *step)
{
    if (!step || step->kind != Y_MAP)
        return NULL;
    for (size_t i = 0; i < step->n; i++)
        if (step->keys[i]->str && action_index(step->keys[i]->str) >= 0)
            return step->keys[i]->str;
    return NULL;
}

/* The id of step i (1-based N in step-N), written into buf. */
const char *scenario_step_id(const struct ynode *step, size_t i, char *buf, size_t len)
{
    const struct ynode *id = ymap_get(step, "id");
    if (id && id->kind == Y_SCALAR && id->type != YS_NULL && id->str)
        return id->str;
    snprintf(buf, len, "step-%zu", i + 1);
    return buf;
}

const struct ynode *scenario_step_find(const struct ynode *steps, const char *id, size_t *index)
{
    if (!steps || steps->kind != Y_SEQ || !id)
        return NULL;
    for (size_t i = 0; i < steps->n; i++) {
        char buf[32];
        if (!strcmp(scenario_step_id(steps->values[i], i, buf, sizeof buf), id)) {
            if (index)
                *index = i;
            return steps->values[i];
        }
    }
    return NULL;
}

bool scenario_step_produces(const struct ynode *step, const char *event)
{
    const char *action = scenario_step_action(step);
    int a = action ? action_index(action) : -1;
    if (a < 0)
        return false;
    if (in_list(ACTIONS[a].events, event))
        return true;
    /* an EventSource also fires the event types it listens to */
    const struct ynode *spec = ymap_get(step, action);
    const struct ynode *types = spec ? ymap_get(spec, "event_types") : NULL;
    if (types && types->kind == Y_SEQ)
        for (size_t i = 0; i < types->n; i++)
            if (types->values[i]->kind == Y_SCALAR && !strcmp(types->values[i]->str, event))
                return true;
    return false;
}

/* The step named by the scalar ref: a request step (earlier than `before`, unless
 * before is SIZE_MAX). Reports and returns NULL otherwise. */
static const struct ynode *resolve(struct ld *ld, const struct ynode *steps,
                                   const struct ynode *ref, size_t before, const char *what)
{
    if (!ref || ref->kind != Y_SCALAR || !ref->str)
        return NULL; /* a type error, reported by the tables */
    size_t at = 0;
    const struct ynode *step = scenario_step_find(steps, ref->str, &at);
    if (!step) {
        ld_err(ld, ref, "%s: no step '%s' in client.steps", what, ref->str);
        return NULL;
    }
    if (!scenario_step_action(step)) {
        ld_err(ld, ref,
               "%s: step '%s' is not a request step (xhr, fetch, eventsource, websocket, "
               "jsonp, image or http)",
               what, ref->str);
        return NULL;
    }
    if (before != SIZE_MAX && at >= before) {
        ld_err(ld, ref, "%s: step '%s' comes later in the script (refer to an earlier step)", what,
               ref->str);
        return NULL;
    }
    return step;
}

/* on: / wait_for.event: {step, event, readyState, nth}. */
static const struct ynode *check_event_ref(struct ld *ld, const struct ynode *steps,
                                           const struct ynode *on, size_t before, const char *what)
{
    if (!on || on->kind != Y_MAP)
        return NULL;
    const struct ynode *ref = ymap_get(on, "step"), *event = ymap_get(on, "event");
    if (!ref)
        ld_err(ld, on, "%s: missing 'step' (the step whose object fires the event)", what);
    if (!event)
        ld_err(ld, on, "%s: missing 'event' (an event type)", what);
    const struct ynode *step = resolve(ld, steps, ref, before, what);
    if (!step)
        return NULL;
    const char *action = scenario_step_action(step);
    if (event && event->kind == Y_SCALAR && event->str && !scenario_step_produces(step, event->str))
        ld_err(ld, event, "%s: step '%s' (%s) fires no '%s' event", what, ref->str, action,
               event->str);
    const struct ynode *rs = ymap_get(on, "readyState");
    if (rs && !ACTIONS[action_index(action)].ready_state)
        ld_err(ld, rs, "%s: step '%s' (%s) has no readyState", what, ref->str, action);
    return step;
}

static void check_do(struct ld *ld, const struct ynode *steps, const struct ynode *st, size_t i)
{
    const struct ynode *d = ymap_get(st, "do"), *on = ymap_get(st, "on"),
                       *ref = ymap_get(st, "step");
    const struct ynode *target = NULL;
    if (on)
        target = check_event_ref(ld, steps, on, SIZE_MAX, "on");
    if (ref) {
        target = resolve(ld, steps, ref, on ? SIZE_MAX : i, "step");
    } else if (!on) {
        ld_err(ld, st, "do: missing 'step' (the step whose object it acts on) or 'on'");
        return;
    }
    const char *verb = NULL;
    if (d->kind == Y_SCALAR)
        verb = d->str;
    else if (d->kind == Y_MAP) {
        static const char *const one[] = {"call", "set", "send", "close"};
        const struct ynode *first = NULL;
        for (size_t k = 0; k < 4; k++) {
            const struct ynode *v = ymap_get(d, one[k]);
            if (!v)
                continue;
            if (first)
                ld_err(ld, v, "do: one of call, set, send and close");
            else
                first = v, verb = one[k];
        }
        if (!first)
            ld_err(ld, d, "do: give one of call, set, send and close");
        const struct ynode *args = ymap_get(d, "args"), *value = ymap_get(d, "value");
        if (args && !ymap_get(d, "call"))
            ld_err(ld, args, "do: args go with call");
        if (value && !ymap_get(d, "set"))
            ld_err(ld, value, "do: value goes with set");
        if (ymap_get(d, "set") && !value)
            ld_err(ld, d, "do: set needs a value");
    }
    if (!target || !verb)
        return;
    const char *action = scenario_step_action(target);
    int a = action_index(action);
    bool ok = (!strcmp(verb, "call") || !strcmp(verb, "set")) ? ACTIONS[a].object
                                                              : in_list(ACTIONS[a].verbs, verb);
    if (!ok)
        ld_err(ld, d, "do: '%s' does not apply to %s steps", verb, action);
}

static void check_wait_for(struct ld *ld, const struct ynode *steps, const struct ynode *w,
                           size_t i)
{
    if (!w || w->kind != Y_MAP)
        return;
    const struct ynode *ev = ymap_get(w, "event"), *j = ymap_get(w, "journal");
    if ((ev != NULL) == (j != NULL))
        ld_err(ld, w, "wait_for: give event or journal, not both or neither");
    if (ev)
        check_event_ref(ld, steps, ev, i, "wait_for.event");
    if (j && j->kind == Y_MAP) {
        const struct ynode *route = ymap_get(j, "route");
        if (!ymap_get(j, "count"))
            ld_err(ld, j, "wait_for.journal: missing 'count'");
        if (route && route->kind == Y_SCALAR && route->type != YS_NULL) {
            bool found = false;
            for (size_t k = 0; k < ld->s->n_routes; k++)
                found |= ld->s->routes[k].name && !strcmp(ld->s->routes[k].name, route->str);
            if (!found)
                ld_err(ld, route, "wait_for.journal: no route named '%s' in server.routes",
                       route->str);
        }
    }
}

/* The kind keys of a step: exactly one. */
static void check_kind(struct ld *ld, const struct ynode *st)
{
    static const char *const kinds[] = {"wait", "wait_for", "do"};
    size_t n = 0;
    const struct ynode *second = NULL;
    for (size_t k = 0; k < st->n; k++) {
        const char *key = st->keys[k]->str;
        bool kind = key && action_index(key) >= 0;
        for (size_t x = 0; x < 3 && !kind; x++)
            kind = key && !strcmp(key, kinds[x]);
        if (kind && ++n == 2)
            second = st->keys[k];
    }
    if (n == 0)
        ld_err(ld, st,
               "a step is one of a request (xhr, fetch, eventsource, websocket, jsonp, image, "
               "http), wait, wait_for or do");
    else if (second)
        ld_err(ld, second, "a step does one thing: '%s' beside another kind of step", second->str);
    if (!ymap_get(st, "do")) {
        const struct ynode *x = ymap_get(st, "on") ? ymap_get(st, "on") : ymap_get(st, "step");
        if (x)
            ld_err(ld, x, "on and step go with do");
    }
}

void scenario_steps_check(struct ld *ld, const struct ynode *steps,
                          void (*check_request)(struct ld *, const struct ynode *, const char *))
{
    if (!steps || steps->kind != Y_SEQ)
        return;
    if (steps->n == 0)
        ld_err(ld, steps, "steps: at least one step");
    if (steps->n > MAX_STEPS)
        ld_err(ld, steps, "steps: at most %d steps", MAX_STEPS);
    for (size_t i = 0; i < steps->n; i++) {
        const struct ynode *st = steps->values[i];
        if (st->kind != Y_MAP)
            continue; /* reported by the tables */
        char buf[32];
        const char *id = scenario_step_id(st, i, buf, sizeof buf);
        const struct ynode *idn = ymap_get(st, "id");
        if (idn && idn->kind == Y_SCALAR && idn->str) {
            bool good = idn->str[0] != 0;
            for (const char *c = idn->str; *c; c++)
                good &= (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                        (*c >= '0' && *c <= '9') || *c == '-' || *c == '_' || *c == '.';
            if (!good)
                ld_err(ld, idn, "id '%s': use letters, digits, '-', '_' and '.'", idn->str);
        }
        for (size_t k = 0; k < i; k++) {
            char other[32];
            if (!strcmp(scenario_step_id(steps->values[k], k, other, sizeof other), id)) {
                ld_err(ld, idn ? idn : st, "step id '%s' is used twice in client.steps", id);
                break;
            }
        }
        check_kind(ld, st);
        const char *action = scenario_step_action(st);
        const struct ynode *v;
        if (action && (v = ymap_get(st, action)) && v->kind == Y_MAP) {
            char where[64];
            snprintf(where, sizeof where, "client.steps[%zu].%s", i + 1, action);
            check_request(ld, v, where);
            if ((v = ymap_get(v, "deadline")))
                ld_err(ld, v, "deadline: give it once, as client.deadline, in a script");
        }
        if ((v = ymap_get(st, "do")))
            check_do(ld, steps, st, i);
        check_wait_for(ld, steps, ymap_get(st, "wait_for"), i);
    }
}
