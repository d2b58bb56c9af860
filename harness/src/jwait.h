/* jwait — the journal wait: a request held until an instance's journal holds N entries (of
 * one route), or until its timeout. One implementation behind two doors:
 *
 *   the control API   GET /_harness/instances/ID/wait?count=N&route=NAME&timeout=MS
 *                     (control port, token; control.c)
 *   the instance      GET /s/ID/_harness/wait?count=N&route=NAME&timeout=MS
 *                     (the scenario ports: what a client script's wait_for: {journal} asks,
 *                     from a page, a Node or a Python process, which have no token)
 *
 * The answer is {"count": C, "wanted": N}: 200 once C >= N, 408 at the timeout, 404 for an
 * instance that is not (or no longer) loaded. Only counts, never journal content. On the
 * instance door the wait is read-only, never journaled itself, sees only its own instance,
 * carries no CORS header (a page asks its own origin), takes GET only and its timeout is
 * at most JWAIT_MAX_TIMEOUT_MS. docs/control-api.md, "Waiting for the journal".
 */
#ifndef HARNESS_JWAIT_H
#define HARNESS_JWAIT_H

#include <microhttpd.h>
#include <stdbool.h>
#include "exchange.h"

#define JWAIT_DEFAULT_TIMEOUT_MS 5000u
#define JWAIT_MAX_TIMEOUT_MS 60000u /* the instance door's bound */
/* The reserved path under an instance's prefix (/s/ID + this): no route ever sees it. */
#define JWAIT_INSTANCE_PATH "/_harness/wait"

enum jwait_door { JWAIT_CONTROL, JWAIT_INSTANCE };

/* The control door: wait on in (borrowed reference, which the exchange keeps until it is
 * freed; NULL when the held wait comes back). */
enum MHD_Result jwait_control(struct exchange *ex, struct instance *in);

/* Whether a scenario-port path is an instance's wait (/s/ID/_harness/wait exactly). */
bool jwait_is_instance_path(const char *path);
/* The instance door: the path is one for which jwait_is_instance_path() holds. Called again
 * when the held wait comes back. */
enum MHD_Result jwait_instance(struct exchange *ex);

#endif
