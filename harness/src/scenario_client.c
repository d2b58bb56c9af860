/* scenario_client — the `client` part: exactly one action (xhr, fetch, eventsource,
 * websocket, jsonp, image, http) whose keys are the ones adapters act on (docs/adapters.md),
 * or a client script (steps, with the rules of scenario_steps.c).
 * Validated from the key tables (ld_table.h) plus the rules a table cannot state; kept as
 * JSON for the drivers, with durations in milliseconds.
 */
#include <string.h>
#include "ld_table.h"
#include "scenario_load.h"

static void check_abort(struct ld *ld, const struct ynode *v)
{
    const struct ynode *on = ymap_get(v, "on"), *after = ymap_get(v, "after");
    if ((on != NULL) == (after != NULL))
        ld_err(ld, v, "abort: give on (an event name) or after (ms), not both or neither");
}

/* What the tables cannot say about one action. */
static void check_rules(struct ld *ld, const struct ynode *action, const char *where)
{
    const struct ynode *v;
    if (!ymap_get(action, "url"))
        ld_err(ld, action, "%s: missing 'url'", where);
    const struct ynode *b = ymap_get(action, "body"), *f = ymap_get(action, "form"),
                       *b64 = ymap_get(action, "body_base64");
    if ((b != NULL) + (f != NULL) + (b64 != NULL) > 1)
        ld_err(ld, b ? b : f, "give one of body, form and body_base64");
    if ((v = ymap_get(action, "abort")) && v->kind == Y_MAP)
        check_abort(ld, v);
    if ((v = ymap_get(action, "close_after")) && v->kind == Y_MAP && v->n != 1)
        ld_err(ld, v, "close_after: one of messages, events or ms");
}

/* client: {steps: [...], deadline}: a client script (scenario_steps.c). */
static void load_steps(struct ld *ld, const struct ynode *client)
{
    for (size_t a = 0; a < client->n; a++) {
        const char *name = client->keys[a]->str;
        if (strcmp(name, "steps") && strcmp(name, "deadline"))
            ld_err(ld, client->keys[a],
                   "client: '%s' beside steps (a script's requests are its steps)", name);
    }
    ld->action = "steps";
    ld_table(ld, client, &KEYS_CLIENT);
    scenario_steps_check(ld, ymap_get(client, "steps"), check_rules);
}

bool scenario_client_load(struct ld *ld, const struct ynode *client)
{
    if (!ld_is_map(ld, client, "client"))
        return false;
    size_t before = ld->d->n;
    if (ymap_get(client, "steps")) {
        load_steps(ld, client);
        return ld->d->n == before;
    }
    const struct ynode *deadline = ymap_get(client, "deadline");
    if (deadline)
        ld_err(ld, deadline, "client.deadline goes with steps (an action has its own deadline)");
    if (client->n != 1) {
        ld_err(ld, client,
               "client: exactly one action key (xhr, fetch, eventsource, websocket, "
               "jsonp, image or http), or steps, got %zu",
               client->n);
        if (client->n == 0)
            return false;
    }
    for (size_t a = 0; a < client->n; a++) {
        const char *name = client->keys[a]->str;
        const struct key_spec *k = keys_find(&KEYS_CLIENT, name);
        if (!strcmp(name, "deadline"))
            continue;
        if (!k) {
            ld_err(ld, client->keys[a],
                   "client: unknown action '%s' (xhr, fetch, eventsource, "
                   "websocket, jsonp, image, http, or steps)",
                   name);
            continue;
        }
        if (client->n == 1)
            ld->action = k->key;
        const struct ynode *action = client->values[a];
        if (!ld_is_map(ld, action, k->table->what))
            continue;
        ld_table(ld, action, k->table);
        check_rules(ld, action, k->table->what);
    }
    return ld->d->n == before;
}
