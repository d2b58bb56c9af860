/* control — the control API under /_harness/ on the main port (docs/control-api.md). */
#ifndef HARNESS_CONTROL_H
#define HARNESS_CONTROL_H

#include <microhttpd.h>
#include "exchange.h"

/* Answer a request under /_harness/ (called again after a held wait resumes). */
enum MHD_Result control_handle(struct exchange *ex);

#endif
