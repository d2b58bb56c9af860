/* sse_encode — the bytes of a scenario's `sse:` stream, exactly as they go on the wire.
 *
 * The encoder does what an author asks, including what the HTML standard's parser must
 * cope with: CR, LF, CRLF or mixed line endings, a UTF-8 BOM, `data:` without the space,
 * a last event without its blank line, ids with NUL, invalid retry values, raw lines and
 * raw bytes. No I/O; the server sends each piece after its pause.
 */
#ifndef HARNESS_SSE_ENCODE_H
#define HARNESS_SSE_ENCODE_H

#include "piece.h"
#include "scenario_types.h"

/* One piece per item of spec->items (the BOM joins the first piece; with no items, the BOM
 * alone is one piece). *out is malloc'd; returns the number of pieces. */
size_t sse_encode(const struct sse_spec *spec, struct piece **out);

#endif
