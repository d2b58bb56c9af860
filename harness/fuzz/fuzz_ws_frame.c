/* libFuzzer target for the WebSocket frame parser, the checks and the assembler: any input,
 * cut into slices whose sizes come from its first byte, must parse without crashing, leaking
 * or reading out of bounds; every frame that comes out must encode back (in the length form
 * it came in) to the same bytes it was parsed from, and the assembler's messages must be
 * exactly the concatenation of their fragments. The UTF-8 validator is checked against a
 * plain decoder (a different algorithm: decode, then reject overlongs, surrogates and code
 * points over U+10FFFF), whole and fed in two pieces.
 *
 *   make fuzz FUZZ_SECONDS=120
 */
#include <stdlib.h>
#include <string.h>
#include "ws_frame.h"

#define MAX_PAYLOAD (1u << 16)

static bool reference_utf8(const unsigned char *s, size_t n)
{
    static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1;
            cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2;
            cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i <= k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min[k] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += k + 1;
    }
    return true;
}

static void check_utf8(const unsigned char *s, size_t n, size_t cut)
{
    bool want = reference_utf8(s, n);
    if (ws_utf8_valid(s, n) != want)
        abort();
    if (cut > n)
        cut = n;
    struct ws_utf8 u = {0};
    ws_utf8_feed(&u, s, cut);
    if ((ws_utf8_feed(&u, s + cut, n - cut) == WS_UTF8_OK) != want)
        abort();
}

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
            check_utf8(f.payload, f.len, slice);
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
