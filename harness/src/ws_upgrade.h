/* ws_upgrade — a scenario request answered by `websocket:`: the opening handshake (built by
 * ws_handshake.h, with the exchange's template context), then the script on its own thread
 * (ws_session.h), everything recorded in the journal entry's "websocket" object.
 */
#ifndef HARNESS_WS_UPGRADE_H
#define HARNESS_WS_UPGRADE_H

#include <microhttpd.h>
#include "exchange.h"

/* Answer the handshake of a request whose response (ex->resp) is `websocket:`. */
enum MHD_Result ws_upgrade_respond(struct exchange *ex);

#endif
