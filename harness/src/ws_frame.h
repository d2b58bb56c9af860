/* ws_frame — the WebSocket frame codec of RFC 6455 section 5, with no I/O inside.
 *
 * Four layers, each usable on its own:
 *
 *   ws_encode()          one frame from its fields into a new buffer. Anything the header can
 *                        express is allowed on purpose (any opcode, reserved bits, a masked
 *                        server frame, a 16- or 64-bit length where 7 bits would do): the
 *                        harness sends malformed frames to see clients reject them. Only a
 *                        length that the chosen form cannot hold is refused.
 *   struct ws_parser     incremental parsing: feed any slices (one byte at a time works) and
 *                        take complete frames out, payload unmasked. A frame announcing more
 *                        than max_payload bytes is an error as soon as its header is in,
 *                        before any of its payload is buffered; the parser stays failed.
 *   ws_check_frame()     what a frame breaks of RFC 6455, as a set of enum ws_violation bits,
 *                        given the stream so far (struct ws_stream: an open fragmented
 *                        message, UTF-8 state across its fragments, a close already seen).
 *                        Checking never changes what is parsed: the harness records problems
 *                        and carries on; the grader decides what they mean.
 *   struct ws_assembler  fragments -> messages (text or binary) under a size limit; it runs
 *                        the checks on every frame it is given.
 *
 * Helpers: ws_close_payload() (code + reason), ws_utf8_feed()/ws_utf8_valid() (strict UTF-8
 * of RFC 3629: no overlongs, no surrogates, nothing over U+10FFFF; incremental, so a text
 * message is checked fragment by fragment and a code point may straddle two frames), and
 * ws_close_code_ok() (RFC 6455 7.4 and the IANA registry).
 *
 * Memory: a parser or assembler owns its buffer (free it with its _free function); a frame
 * or message handed out owns its payload (free() it). No globals; one object per thread.
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

/* The reserved bits as they sit in the first header byte (for ws_stream.rsv_allowed). */
enum { WS_RSV1 = 0x40, WS_RSV2 = 0x20, WS_RSV3 = 0x10 };

struct ws_frame {
    int opcode; /* 0..15 */
    bool fin, rsv1, rsv2, rsv3, masked;
    uint8_t mask[4];
    unsigned char *payload; /* unmasked; from the parser: malloc'd, NUL-terminated */
    size_t len;
    int length_form; /* from the parser: the encoding received, 7, 16 or 64 */
};

/* --- encoding -------------------------------------------------------------------------- */

/* The shortest length encoding of a payload of len bytes: 7, 16 or 64. */
int ws_length_form_for(uint64_t len);
/* Encode a frame into a new buffer of *out_len bytes. length_form 0 picks the shortest; 7, 16
 * or 64 forces that encoding. The payload is masked with f->mask when f->masked is set (the
 * caller's payload is not modified). NULL if length_form is not 0, 7, 16 or 64, or if len
 * does not fit in it (over 125 bytes in 7 bits, over 65535 in 16). */
unsigned char *ws_encode(const struct ws_frame *f, const void *payload, size_t len, int length_form,
                         size_t *out_len);
/* The same, but the header announces `announced` bytes whatever len is (a length that lies:
 * longer or shorter than the payload that follows, or a 64-bit length with its most
 * significant bit set, which RFC 6455 5.2 forbids). length_form 0 picks the shortest form
 * for announced; NULL if announced does not fit the form asked for. */
unsigned char *ws_encode_announced(const struct ws_frame *f, const void *payload, size_t len,
                                   int length_form, uint64_t announced, size_t *out_len);
/* A close payload in a new buffer: the 2-byte code (big-endian, code & 0xFFFF) then the
 * reason bytes as given. */
unsigned char *ws_close_payload(int code, const void *reason, size_t reason_len, size_t *out_len);

/* --- parsing --------------------------------------------------------------------------- */

struct ws_parser {
    unsigned char *buf;
    size_t off, len, cap; /* unread bytes are buf[off..len) */
    size_t max_payload;
    bool failed;        /* a frame was over the limit: the stream cannot be followed */
    uint64_t announced; /* after WS_PARSE_TOO_BIG: the payload length that frame announced */
};

enum ws_parse_result { WS_PARSE_MORE, WS_PARSE_FRAME, WS_PARSE_TOO_BIG };

void ws_parser_init(struct ws_parser *p, size_t max_payload);
void ws_parser_free(struct ws_parser *p);
/* Append bytes (ignored once the parser has failed). */
void ws_parser_feed(struct ws_parser *p, const void *data, size_t len);
/* Take the next complete frame out (WS_PARSE_FRAME: *f is filled, free f->payload), or say
 * that more input is needed, or that a frame announces more than max_payload bytes (then
 * p->announced has the announced length, and every later call says WS_PARSE_TOO_BIG). */
enum ws_parse_result ws_parser_next(struct ws_parser *p, struct ws_frame *f);
/* Bytes fed but not yet taken out as frames. */
size_t ws_parser_pending(const struct ws_parser *p);

/* --- checks ---------------------------------------------------------------------------- */

/* What a frame breaks, one bit each. */
enum ws_violation {
    WS_V_UNMASKED = 1u << 0,            /* a client frame without a mask (5.1) */
    WS_V_MASKED = 1u << 1,              /* a server frame with a mask (5.1) */
    WS_V_RSV = 1u << 2,                 /* a reserved bit no extension negotiated (5.2) */
    WS_V_OPCODE = 1u << 3,              /* a reserved opcode, 3-7 or 11-15 (5.2) */
    WS_V_LENGTH_NOT_MINIMAL = 1u << 4,  /* 16 or 64 bits where fewer would do (5.2) */
    WS_V_CONTROL_TOO_LONG = 1u << 5,    /* a control frame's payload over 125 bytes (5.5) */
    WS_V_CONTROL_FRAGMENTED = 1u << 6,  /* a control frame without FIN (5.5) */
    WS_V_CONT_WITHOUT_START = 1u << 7,  /* a continuation with no message open (5.4) */
    WS_V_DATA_INSIDE_MESSAGE = 1u << 8, /* a text/binary frame while one is open (5.4) */
    WS_V_TEXT_UTF8 = 1u << 9,           /* a text message that is not UTF-8 (5.6, 8.1) */
    WS_V_CLOSE_ONE_BYTE = 1u << 10,     /* a close payload of 1 byte (5.5.1) */
    WS_V_CLOSE_CODE = 1u << 11,         /* a close code not allowed on the wire (7.4) */
    WS_V_CLOSE_REASON_UTF8 = 1u << 12,  /* a close reason that is not UTF-8 (5.5.1) */
    WS_V_AFTER_CLOSE = 1u << 13,        /* any frame after a close frame (5.5.1) */
};
#define WS_V_COUNT 14

/* What makes a control frame invalid (RFC 6455 5.5): a payload over 125 bytes, no FIN. */
#define WS_V_CONTROL_INVALID (WS_V_CONTROL_TOO_LONG | WS_V_CONTROL_FRAGMENTED)
/* May this ping be answered with a pong? Only a valid one: an invalid control frame is a
 * protocol error, and the endpoint that gets one fails the connection (close 1002, RFC 6455
 * 5.5 and 7.4.1) instead of answering it. */
bool ws_ping_answerable(const struct ws_frame *f);

/* One violation bit in words: what ("unmasked client frame") and where the rule is
 * ("RFC 6455 5.1: a client MUST mask every frame it sends"). "?" for anything else. */
const char *ws_violation_what(uint32_t bit);
const char *ws_violation_detail(uint32_t bit);

/* Incremental UTF-8 validation; zero-initialised (or ws_utf8_reset) = nothing seen yet. */
struct ws_utf8 {
    uint8_t need;   /* continuation bytes still expected */
    uint8_t lo, hi; /* the range of the next continuation byte */
    bool bad;       /* sticky */
};
enum ws_utf8_state {
    WS_UTF8_OK,      /* everything so far is valid and complete */
    WS_UTF8_PARTIAL, /* valid so far, but a sequence is unfinished */
    WS_UTF8_BAD,     /* invalid (and stays so) */
};
void ws_utf8_reset(struct ws_utf8 *u);
enum ws_utf8_state ws_utf8_feed(struct ws_utf8 *u, const void *data, size_t len);
bool ws_utf8_valid(const void *s, size_t len);

/* May this close code be sent in a close frame: 1000-1003, 1007-1014, 3000-4999. */
bool ws_close_code_ok(int code);

/* The state of one direction of a connection. Zero-initialise it, then set the options. */
struct ws_stream {
    /* options */
    bool from_server;    /* the frames are a server's (must not be masked); default: a
                          * client's (must be masked) */
    uint8_t rsv_allowed; /* WS_RSV* bits that a negotiated extension gives a meaning */
    /* state */
    bool in_message;    /* a fragmented message is open */
    int message_opcode; /* its opcode */
    struct ws_utf8 utf8;
    bool utf8_failed; /* the open text message was already reported */
    bool closed;      /* a close frame was seen */
};

/* What f breaks of RFC 6455 (a set of WS_V_* bits; 0: nothing), given what came before on
 * the stream; advances the stream's state. A data frame while a fragmented message is open
 * starts a new message (the open one is abandoned). A text message's UTF-8 is checked
 * fragment by fragment: WS_V_TEXT_UTF8 comes with the first frame where it fails (or with
 * the final frame when the last code point is unfinished), once per message. */
uint32_t ws_check_frame(struct ws_stream *st, const struct ws_frame *f);

/* --- messages -------------------------------------------------------------------------- */

struct ws_message {
    int opcode;          /* WS_OP_TEXT or WS_OP_BINARY */
    unsigned char *data; /* malloc'd, NUL-terminated (not counted in len) */
    size_t len;
    bool bad_utf8;   /* a text message that is not valid UTF-8 */
    unsigned frames; /* how many frames it came in */
};

struct ws_assembler {
    struct ws_stream stream; /* the checks (set stream.from_server / rsv_allowed after init) */
    size_t max_message;
    unsigned char *buf;
    size_t len, cap;
    int opcode;
    unsigned frames;
    bool open;       /* assembling a message */
    bool discarding; /* the open message went over the limit: skip it to its end */
};

enum ws_asm_result {
    WS_ASM_NONE,    /* a fragment taken, or a frame that carries no message */
    WS_ASM_MESSAGE, /* a message is complete: *m is filled (free m->data) */
    WS_ASM_CONTROL, /* a control frame (close, ping, pong): the caller acts on the frame */
    WS_ASM_TOO_BIG, /* the message went over max_message: it is dropped (said once) */
};

void ws_assembler_init(struct ws_assembler *a, size_t max_message);
void ws_assembler_free(struct ws_assembler *a);
/* Take one frame (its payload stays the caller's). *violations gets ws_check_frame()'s
 * answer. Frames with a reserved opcode and continuations without a start carry no message
 * (WS_ASM_NONE). */
enum ws_asm_result ws_assembler_add(struct ws_assembler *a, const struct ws_frame *f,
                                    uint32_t *violations, struct ws_message *m);

#endif
