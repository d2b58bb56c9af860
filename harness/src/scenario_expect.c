/* scenario_expect — the `expect` part, graded by drivers/comet_harness/grader.py: validated
 * from the key tables (ld_table.h: expect.client by the client's action, expect.server,
 * matchers) plus what a table cannot say (a named route exists); kept as JSON.
 */
#include <string.h>
#include "ld_table.h"
#include "scenario_load.h"

static void check_routes(struct ld *ld, const struct ynode *server)
{
    const struct ynode *requests = ymap_get(server, "requests");
    if (!requests || requests->kind != Y_SEQ)
        return;
    for (size_t i = 0; i < requests->n; i++) {
        const struct ynode *x = ymap_get(requests->values[i], "route");
        if (!x || x->kind != Y_SCALAR || x->type == YS_NULL)
            continue;
        if (!strmap_get(&ld->route_names, x->str, strlen(x->str)))
            ld_err(ld, x, "route: no route named '%s' in server.routes", x->str);
    }
}

bool scenario_expect_load(struct ld *ld, const struct ynode *expect)
{
    if (expect->kind == Y_SCALAR && expect->type == YS_NULL)
        return true;
    if (!ld_is_map(ld, expect, "expect"))
        return false;
    size_t before = ld->d->n;
    ld_table(ld, expect, &KEYS_EXPECT);
    const struct ynode *server = ymap_get(expect, "server");
    if (server && server->kind == Y_MAP)
        check_routes(ld, server);
    return ld->d->n == before;
}
