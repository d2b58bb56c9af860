/* respond — answering a request for a scenario instance (/s/ID/...): find the instance, the
 * route (or a CORS preflight) and the response of its sequence, journal the request, wait
 * out `delay`, build the plan (plan.h; a long poll with nothing to say is held) and hand it
 * to the sending stage (deliver.h) or to the WebSocket upgrade (ws_upgrade.h).
 */
#ifndef HARNESS_RESPOND_H
#define HARNESS_RESPOND_H

#include <microhttpd.h>
#include "exchange.h"

/* Answer a scenario request (the path starts with /s/); called again after every resume. */
enum MHD_Result respond_scenario(struct exchange *ex);
/* The end of an exchange (completion): fill in the journal entry. */
void respond_completed(struct exchange *ex, enum MHD_RequestTerminationCode code);

#endif
