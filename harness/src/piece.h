/* piece — a run of bytes sent after a pause: the unit of every paced response body
 * (HTTP streaming chunks, Server-Sent Events items). One piece goes out as one chunk. */
#ifndef HARNESS_PIECE_H
#define HARNESS_PIECE_H

#include <stddef.h>
#include <stdint.h>

struct piece {
    uint64_t after_ms; /* pause before it, counted from the previous piece (or the headers) */
    unsigned char *data;
    size_t len;
};

void pieces_free(struct piece *p, size_t n);

#endif
