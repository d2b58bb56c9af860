/* ws_upgrade — placeholder until the WebSocket modules land: answers 501. */
#include "exchange.h"

enum MHD_Result ws_respond(struct exchange *ex)
{
    static const char msg[] = "WebSocket responses are not available in this build\n";
    return queue_simple(ex, 501, "text/plain", msg, sizeof msg - 1);
}
