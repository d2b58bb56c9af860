/* libFuzzer target for the WebSocket frame parser, the checks and the assembler: any input,
 * cut into slices whose sizes come from its first byte, must parse without crashing, leaking
 * or reading out of bounds; every frame that comes out must encode back (in the length form
 * it came in) to the same bytes it was parsed from, and the assembler's messages must be
 * exactly the concatenation of their fragments.
 *
 *   make fuzz FUZZ_SECONDS=120
 */
#include <stdlib.h>
#include <string.h>
#include "ws_frame.h"

#define MAX_PAYLOAD (1u << 16)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t slice = 1 + data[0] % 64;
    bool server = data[0] & 0x80;
    data++;
    size--;
    struct ws_parser p;
    ws_parser_init(&p, MAX_PAYLOAD);
    struct ws_assembler a;
    ws_assembler_init(&a, 3 * MAX_PAYLOAD / 2);
    a.stream.from_server = server;
    a.stream.rsv_allowed = (uint8_t)(size ? data[0] & 0x70 : 0);
    /* the parser's input so far, to compare re-encoded frames with */
    size_t consumed = 0, fed = 0;
    unsigned char *msg = NULL;
    size_t msg_len = 0;
    bool msg_open = false;
    for (size_t off = 0; off < size; off += slice) {
        size_t n = size - off < slice ? size - off : slice;
        ws_parser_feed(&p, data + off, n);
        fed += n;
        struct ws_frame f;
        enum ws_parse_result r;
        while ((r = ws_parser_next(&p, &f)) == WS_PARSE_FRAME) {
            /* round trip: the same bytes */
            size_t len;
            unsigned char *again = ws_encode(&f, f.payload, f.len, f.length_form, &len);
            if (!again || len > fed - consumed || memcmp(again, data + consumed, len))
                abort();
            consumed += len;
            if (consumed + ws_parser_pending(&p) != fed)
                abort();
            free(again);
            /* a model of the assembler for well-ordered data frames */
            bool data_frame = f.opcode == WS_OP_TEXT || f.opcode == WS_OP_BINARY;
            if (data_frame || (f.opcode == WS_OP_CONT && msg_open)) {
                if (data_frame)
                    msg_len = 0;
                msg = realloc(msg, msg_len + f.len + 1);
                memcpy(msg + msg_len, f.payload, f.len);
                msg_len += f.len;
                msg_open = !f.fin;
            }
            uint32_t v;
            struct ws_message m;
            enum ws_asm_result ar = ws_assembler_add(&a, &f, &v, &m);
            if (v >> WS_V_COUNT)
                abort();
            if (ar == WS_ASM_MESSAGE) {
                if (m.len != msg_len || memcmp(m.data, msg, msg_len) || m.data[m.len])
                    abort();
                if (m.opcode == WS_OP_TEXT && m.bad_utf8 == ws_utf8_valid(m.data, m.len))
                    abort();
                free(m.data);
            }
            if (ar == WS_ASM_TOO_BIG)
                msg_open = false;
            if ((ar == WS_ASM_CONTROL) != (f.opcode >= 8 && f.opcode <= 10))
                abort();
            free(f.payload);
        }
        if (r == WS_PARSE_TOO_BIG)
            break;
    }
    free(msg);
    ws_assembler_free(&a);
    ws_parser_free(&p);
    return 0;
}
