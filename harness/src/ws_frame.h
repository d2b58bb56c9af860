/* ws_frame — the WebSocket frame codec of RFC 6455 section 5, with no I/O inside.
 *
 *   ws_encode()        one frame from its fields; any opcode, reserved bits, masking and a
 *                      forced length encoding (7, 16 or 64 bits) are allowed on purpose: the
 *                      server sends malformed frames to see clients reject them
 *   struct ws_parser   incremental parsing: feed any slices (one byte at a time works), take
 *                      complete frames out; a payload over the limit is an error
 *   ws_check_frame()   what a frame from a CLIENT breaks of RFC 6455 (unmasked, reserved
 *                      bits, reserved opcodes, control frame rules, fragmentation order),
 *                      tracked across frames by struct ws_stream
 *   ws_utf8_valid()    strict UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF)
 *   ws_close_code_ok() may this close code appear on the wire (section 7.4)
 */
#ifndef HARNESS_WS_FRAME_H
#define HARNESS_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

struct ws_frame {
    int opcode;
    bool fin, rsv1, rsv2, rsv3, masked;
    uint8_t mask[4];
    unsigned char *payload; /* unmasked; malloc'd by the parser (NUL-terminated) */
    size_t len;
    int length_form; /* as received: 7, 16 or 64 */
};

/* Encode a frame into a new buffer (*out_len bytes). length_form 0 picks the shortest. The
 * payload is masked with mask when masked is set. */
unsigned char *ws_encode(const struct ws_frame *f, const void *payload, size_t len, int length_form,
                         size_t *out_len);
/* A close payload: 2-byte code then the reason. */
unsigned char *ws_close_payload(int code, const void *reason, size_t reason_len, size_t *out_len);

struct ws_parser {
    unsigned char *buf;
    size_t len, cap;
    size_t max_payload;
};

enum ws_parse_result { WS_PARSE_MORE, WS_PARSE_FRAME, WS_PARSE_TOO_BIG };

void ws_parser_init(struct ws_parser *p, size_t max_payload);
void ws_parser_free(struct ws_parser *p);
void ws_parser_feed(struct ws_parser *p, const void *data, size_t len);
/* Take the next complete frame out (WS_PARSE_FRAME; free f->payload), or say that more
 * input is needed, or that the announced payload is over the limit. */
enum ws_parse_result ws_parser_next(struct ws_parser *p, struct ws_frame *f);

/* Fragmentation state across a client's frames. */
struct ws_stream {
    bool in_message;    /* a fragmented message is open */
    int message_opcode; /* its opcode */
};

/* Problems of a client frame, in words, written to why[] (up to max entries); returns how
 * many. Also advances the fragmentation state. */
size_t ws_check_frame(struct ws_stream *st, const struct ws_frame *f, const char **why, size_t max);

bool ws_utf8_valid(const unsigned char *s, size_t len);
bool ws_close_code_ok(int code);

#endif
