/* ctl_load — loading a scenario for the control API (POST /_harness/instances) on a thread
 * of its own, so that the request thread goes on serving every other request meanwhile.
 *
 * The control handler reads the file (through its sandbox) or takes the posted text,
 * starts a job and returns with its exchange suspended; the job loads the text (scenario.h), then
 * resumes the exchange, and the handler, entered again, takes the result and registers the
 * instance. A 100,000-route scenario takes about a second to load: without this every other request
 * would wait for it.
 *
 * Jobs are found by their exchange (a small list under a lock): the exchange needs no
 * field for them. A job whose exchange was entered before it finished (the server stopping)
 * is freed by its thread; one whose exchange ended without being entered again (the server
 * stopped) stays listed until the process exits.
 */
#ifndef HARNESS_CTL_LOAD_H
#define HARNESS_CTL_LOAD_H

#include <stdbool.h>
#include "diag.h"
#include "exchange.h"
#include "scenario.h"

/* Starts loading text (len bytes; stolen) named name in messages, with dir the folder of
 * its body_file references (NULL: none allowed) and real_file, if not NULL, the path its
 * JSON document gives as "file"; id (may be NULL) is kept for the handler. The strings are
 * copied. Suspends ex (the caller is its access handler and returns MHD_YES) and sets
 * ex->state to EX_HOLDING. */
void ctl_load_start(struct exchange *ex, char *text, size_t len, const char *name, const char *dir,
                    const char *real_file, const char *id);
/* Whether a job of ex is under way or done (ex was entered again for it). */
bool ctl_load_pending(struct exchange *ex);
/* The finished job of ex: the scenario (owned by the caller; NULL if it did not load, with
 * its errors moved into *diags, which the caller frees) and the id given (owned, or NULL).
 * false if the job is not finished (the caller answers 503). */
bool ctl_load_take(struct exchange *ex, struct scenario **s, struct diag_list *diags, char **id);

#endif
