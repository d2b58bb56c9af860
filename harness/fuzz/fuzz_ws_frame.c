/* libFuzzer target for the WebSocket frame parser and the client-frame checks: any input,
 * cut into slices by its first byte, must parse without crashing, leaking or reading out of
 * bounds, and every frame that comes out must encode back to a frame that parses the same.
 *
 *   make fuzz FUZZ_SECONDS=120
 */
#include <stdlib.h>
#include <string.h>
#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t slice = 1 + data[0] % 64;
    data++;
    size--;
    struct ws_parser p;
    ws_parser_init(&p, 1 << 16);
    struct ws_stream st = {0};
    for (size_t off = 0; off < size; off += slice) {
        size_t n = size - off < slice ? size - off : slice;
        ws_parser_feed(&p, data + off, n);
        struct ws_frame f;
        enum ws_parse_result r;
        while ((r = ws_parser_next(&p, &f)) == WS_PARSE_FRAME) {
            const char *why[8];
            ws_check_frame(&st, &f, why, 8);
            ws_utf8_valid(f.payload, f.len);
            size_t len;
            unsigned char *again = ws_encode(&f, f.payload, f.len, f.length_form, &len);
            struct ws_parser q;
            ws_parser_init(&q, 1 << 16);
            ws_parser_feed(&q, again, len);
            struct ws_frame g;
            if (ws_parser_next(&q, &g) != WS_PARSE_FRAME || g.len != f.len ||
                g.opcode != f.opcode || memcmp(g.payload, f.payload, f.len))
                abort();
            free(g.payload);
            ws_parser_free(&q);
            free(again);
            free(f.payload);
        }
        if (r == WS_PARSE_TOO_BIG)
            break;
    }
    ws_parser_free(&p);
    return 0;
}
