/* scenario_load — the parts of the scenario loader, as the file loader (scenario.c) calls
 * them. Internal to the loader. Each part validates its YAML with the readers of ld.h and
 * the tables of keys.h, and frees what it built:
 *
 *   scenario_server.c    server: routes, match conditions, CORS, channels
 *   scenario_response.c  a response: common keys, bodies, and the table of response kinds
 *                        (raw, jsonp, long_poll, stream here; sse and websocket below)
 *   scenario_sse.c       the sse kind
 *   scenario_ws.c        the websocket kind: handshake and script
 *   scenario_client.c    client: one action, kept as JSON
 *   scenario_steps.c     client.steps: a client script's rules (ids, references, events)
 *   scenario_expect.c    expect, kept as JSON
 *
 * Calls go one way: scenario.c → server → response → sse, ws; scenario.c → client, expect.
 */
#ifndef HARNESS_SCENARIO_LOAD_H
#define HARNESS_SCENARIO_LOAD_H

#include <jansson.h>
#include "ld.h"

/* scenario_server.c: fills ld->s->routes and ld->s->channels. */
void scenario_server_load(struct ld *ld, const struct ynode *server);
void scenario_server_free(struct scenario *s);

/* scenario_response.c: r is zeroed by the caller; false if n is not a mapping. */
bool scenario_response_load(struct ld *ld, const struct ynode *n, struct response *r);
/* Frees what r holds (not r itself). NULL is allowed. */
void scenario_response_free(struct response *r);

/* scenario_sse.c, scenario_ws.c: response kinds (r->sse, r->websocket). */
void scenario_sse_load(struct ld *ld, const struct ynode *n, struct response *r);
void scenario_sse_free(struct sse_spec *s);
void scenario_ws_load(struct ld *ld, const struct ynode *n, struct response *r);
void scenario_ws_free(struct ws_spec *w);

/* scenario_client.c, scenario_expect.c: the validated parts as JSON (NULL if invalid); the
 * client part sets ld->action. The JSON is built by the caller (ld_to_json). */
bool scenario_client_load(struct ld *ld, const struct ynode *client);
bool scenario_expect_load(struct ld *ld, const struct ynode *expect, const struct ynode *client);

/* scenario_steps.c: the rules of client.steps; check_request validates each request step's
 * action mapping (what a single action gets). */
void scenario_steps_check(struct ld *ld, const struct ynode *steps,
                          void (*check_request)(struct ld *, const struct ynode *, const char *));
/* The action key of a request step (xhr, fetch, ...), or NULL (borrowed). */
const char *scenario_step_action(const struct ynode *step);
/* The id of the i-th step (0-based): its id, or step-N (N = i + 1) written into buf. */
const char *scenario_step_id(const struct ynode *step, size_t i, char *buf, size_t len);
/* The step of steps with that id (and its index), or NULL. */
const struct ynode *scenario_step_find(const struct ynode *steps, const char *id, size_t *index);
/* True if a request step's object fires events of this type. */
bool scenario_step_produces(const struct ynode *step, const char *event);

#endif
