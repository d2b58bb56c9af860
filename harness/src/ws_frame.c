/* ws_frame — the WebSocket frame codec (RFC 6455 section 5); see ws_frame.h for the contract.
 *
 * Frame layout (5.2): byte 0 = FIN, RSV1-3, opcode; byte 1 = MASK, 7-bit length (126: a
 * 16-bit length follows, 127: a 64-bit one); then the 4-byte masking key if MASK; then the
 * payload, XORed with key[i % 4] when masked.
 *
 * The parser keeps unread input in one buffer and only looks at it when asked for a frame,
 * so feeding is a copy and parsing restarts from the header each time: simple, and cheap
 * enough for a test server (a header is at most 14 bytes). Consumed bytes are dropped
 * lazily, when they are more than half of the buffer.
 */
#include "ws_frame.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------- encoding */

int ws_length_form_for(uint64_t len)
{
    return len <= 125 ? 7 : len <= 0xFFFF ? 16 : 64;
}

unsigned char *ws_encode(const struct ws_frame *f, const void *payload, size_t len, int length_form,
                         size_t *out_len)
{
    if (length_form == 64 && (uint64_t)len > INT64_MAX)
        return NULL;
    return ws_encode_announced(f, payload, len, length_form, len, out_len);
}

unsigned char *ws_encode_announced(const struct ws_frame *f, const void *payload, size_t len,
                                   int length_form, uint64_t announced, size_t *out_len)
{
    if (length_form == 0)
        length_form = ws_length_form_for(announced);
    if ((length_form == 7 && announced > 125) || (length_form == 16 && announced > 0xFFFF) ||
        (length_form != 7 && length_form != 16 && length_form != 64))
        return NULL;
    size_t head = 2 + (length_form == 16 ? 2 : length_form == 64 ? 8 : 0) + (f->masked ? 4 : 0);
    if (len > SIZE_MAX - head)
        return NULL;
    unsigned char *out = xmalloc(head + len);
    out[0] =
        (unsigned char)((f->fin ? 0x80 : 0) | (f->rsv1 ? WS_RSV1 : 0) | (f->rsv2 ? WS_RSV2 : 0) |
                        (f->rsv3 ? WS_RSV3 : 0) | (f->opcode & 0x0F));
    size_t i = 2;
    if (length_form == 7) {
        out[1] = (unsigned char)announced;
    } else if (length_form == 16) {
        out[1] = 126;
        out[i++] = (unsigned char)(announced >> 8);
        out[i++] = (unsigned char)announced;
    } else {
        out[1] = 127;
        for (int b = 7; b >= 0; b--)
            out[i++] = (unsigned char)(announced >> (8 * b));
    }
    if (f->masked) {
        out[1] |= 0x80;
        memcpy(out + i, f->mask, 4);
        i += 4;
    }
    const unsigned char *p = payload;
    if (f->masked) {
        for (size_t k = 0; k < len; k++)
            out[i + k] = (unsigned char)(p[k] ^ f->mask[k & 3]);
    } else if (len) {
        memcpy(out + i, p, len);
    }
    *out_len = head + len;
    return out;
}

unsigned char *ws_close_payload(int code, const void *reason, size_t reason_len, size_t *out_len)
{
    unsigned char *out = xmalloc(2 + reason_len);
    out[0] = (unsigned char)((code >> 8) & 0xFF);
    out[1] = (unsigned char)(code & 0xFF);
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    *out_len = 2 + reason_len;
    return out;
}

/* ----------------------------------------------------------------------------- parsing */

void ws_parser_init(struct ws_parser *p, size_t max_payload)
{
    memset(p, 0, sizeof *p);
    p->max_payload = max_payload;
}

void ws_parser_free(struct ws_parser *p)
{
    free(p->buf);
    memset(p, 0, sizeof *p);
}

size_t ws_parser_pending(const struct ws_parser *p)
{
    return p->len - p->off;
}

void ws_parser_feed(struct ws_parser *p, const void *data, size_t len)
{
    if (p->failed || len == 0)
        return;
    if (p->off && (p->off == p->len || p->off > p->cap / 2)) {
        memmove(p->buf, p->buf + p->off, p->len - p->off);
        p->len -= p->off;
        p->off = 0;
    }
    if (len > p->cap - p->len) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap - p->len < len)
            cap *= 2;
        p->buf = xrealloc(p->buf, cap);
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
}

enum ws_parse_result ws_parser_next(struct ws_parser *p, struct ws_frame *f)
{
    if (p->failed)
        return WS_PARSE_TOO_BIG;
    size_t avail = p->len - p->off;
    const unsigned char *b = p->buf + p->off;
    if (avail < 2)
        return WS_PARSE_MORE;
    size_t need = 2;
    uint64_t len = b[1] & 0x7F;
    int form = 7;
    if (len == 126) {
        need += 2;
        form = 16;
        if (avail < need)
            return WS_PARSE_MORE;
        len = ((uint64_t)b[2] << 8) | b[3];
    } else if (len == 127) {
        need += 8;
        form = 64;
        if (avail < need)
            return WS_PARSE_MORE;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | b[2 + i];
    }
    if (len > p->max_payload) {
        p->failed = true;
        p->announced = len;
        return WS_PARSE_TOO_BIG;
    }
    bool masked = b[1] & 0x80;
    size_t mask_at = need;
    if (masked)
        need += 4;
    if (avail < need || avail - need < len)
        return WS_PARSE_MORE;
    memset(f, 0, sizeof *f);
    f->fin = b[0] & 0x80;
    f->rsv1 = b[0] & WS_RSV1;
    f->rsv2 = b[0] & WS_RSV2;
    f->rsv3 = b[0] & WS_RSV3;
    f->opcode = b[0] & 0x0F;
    f->masked = masked;
    f->length_form = form;
    if (masked)
        memcpy(f->mask, b + mask_at, 4);
    f->len = (size_t)len;
    f->payload = xmalloc(f->len + 1);
    const unsigned char *src = b + need;
    if (masked) {
        for (size_t i = 0; i < f->len; i++)
            f->payload[i] = (unsigned char)(src[i] ^ f->mask[i & 3]);
    } else if (f->len) {
        memcpy(f->payload, src, f->len);
    }
    f->payload[f->len] = 0;
    p->off += need + f->len;
    if (p->off == p->len)
        p->off = p->len = 0;
    return WS_PARSE_FRAME;
}

/* ------------------------------------------------------------------------------- UTF-8 */

void ws_utf8_reset(struct ws_utf8 *u)
{
    memset(u, 0, sizeof *u);
}

/* RFC 3629 section 4: the well-formed byte sequences. The lead byte fixes how many
 * continuation bytes follow and the range of the first one (which is what excludes
 * overlongs, surrogates and code points over U+10FFFF); later ones are always 80..BF. */
enum ws_utf8_state ws_utf8_feed(struct ws_utf8 *u, const void *data, size_t len)
{
    const unsigned char *s = data;
    for (size_t i = 0; i < len && !u->bad; i++) {
        unsigned c = s[i];
        if (u->need) {
            if (c < u->lo || c > u->hi) {
                u->bad = true;
                break;
            }
            u->need--;
            u->lo = 0x80;
            u->hi = 0xBF;
            continue;
        }
        if (c < 0x80)
            continue;
        u->lo = 0x80;
        u->hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            u->need = 1;
        } else if (c == 0xE0) {
            u->need = 2;
            u->lo = 0xA0; /* no overlongs */
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            u->need = 2;
        } else if (c == 0xED) {
            u->need = 2;
            u->hi = 0x9F; /* no surrogates D800..DFFF */
        } else if (c == 0xF0) {
            u->need = 3;
            u->lo = 0x90; /* no overlongs */
        } else if (c >= 0xF1 && c <= 0xF3) {
            u->need = 3;
        } else if (c == 0xF4) {
            u->need = 3;
            u->hi = 0x8F; /* nothing over U+10FFFF */
        } else {
            u->bad = true; /* 80..C1 as a lead byte, F5..FF */
        }
    }
    return u->bad ? WS_UTF8_BAD : u->need ? WS_UTF8_PARTIAL : WS_UTF8_OK;
}

bool ws_utf8_valid(const void *s, size_t len)
{
    struct ws_utf8 u = {0};
    return ws_utf8_feed(&u, s, len) == WS_UTF8_OK;
}

/* -------------------------------------------------------------------------------- checks */

bool ws_close_code_ok(int code)
{
    /* 7.4.1: 1004 reserved, 1005/1006/1015 never on the wire; 1012-1014 registered with
     * IANA since (service restart, try again later, bad gateway); 1016-2999 reserved for
     * future protocol use; 3000-3999 registered, 4000-4999 private. */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static const struct {
    uint32_t bit;
    const char *what, *detail;
} VIOLATIONS[WS_V_COUNT] = {
    {WS_V_UNMASKED, "unmasked client frame", "RFC 6455 5.1: a client MUST mask every frame"},
    {WS_V_MASKED, "masked server frame", "RFC 6455 5.1: a server MUST NOT mask any frame"},
    {WS_V_RSV, "reserved bit set",
     "RFC 6455 5.2: RSV1-3 MUST be 0 unless an extension gives them a meaning"},
    {WS_V_OPCODE, "reserved opcode", "RFC 6455 5.2: opcodes 3-7 and 11-15 are reserved"},
    {WS_V_LENGTH_NOT_MINIMAL, "length not minimally encoded",
     "RFC 6455 5.2: the minimal number of bytes MUST be used to encode the length"},
    {WS_V_CONTROL_TOO_LONG, "control frame over 125 bytes",
     "RFC 6455 5.5: control frames MUST have a payload of 125 bytes or less"},
    {WS_V_CONTROL_FRAGMENTED, "fragmented control frame",
     "RFC 6455 5.5: control frames MUST NOT be fragmented"},
    {WS_V_CONT_WITHOUT_START, "continuation without a start",
     "RFC 6455 5.4: a continuation frame with no fragmented message open"},
    {WS_V_DATA_INSIDE_MESSAGE, "data frame inside a fragmented message",
     "RFC 6455 5.4: fragments of one message MUST NOT be interleaved with another message"},
    {WS_V_TEXT_UTF8, "invalid UTF-8 in a text message",
     "RFC 6455 5.6 and 8.1: a text message MUST be UTF-8"},
    {WS_V_CLOSE_ONE_BYTE, "close payload of one byte",
     "RFC 6455 5.5.1: a close body, if any, starts with a 2-byte code"},
    {WS_V_CLOSE_CODE, "close code not allowed",
     "RFC 6455 7.4: allowed on the wire are 1000-1003, 1007-1014 and 3000-4999"},
    {WS_V_CLOSE_REASON_UTF8, "invalid UTF-8 in a close reason",
     "RFC 6455 5.5.1: the close reason MUST be UTF-8"},
    {WS_V_AFTER_CLOSE, "frame after close", "RFC 6455 5.5.1: nothing is sent after a close frame"},
};

const char *ws_violation_what(uint32_t bit)
{
    for (size_t i = 0; i < WS_V_COUNT; i++)
        if (VIOLATIONS[i].bit == bit)
            return VIOLATIONS[i].what;
    return "?";
}

const char *ws_violation_detail(uint32_t bit)
{
    for (size_t i = 0; i < WS_V_COUNT; i++)
        if (VIOLATIONS[i].bit == bit)
            return VIOLATIONS[i].detail;
    return "?";
}

static bool known_opcode(int op)
{
    return op == WS_OP_CONT || op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CLOSE ||
           op == WS_OP_PING || op == WS_OP_PONG;
}

bool ws_ping_answerable(const struct ws_frame *f)
{
    return f->opcode == WS_OP_PING && f->fin && f->len <= 125;
}

uint32_t ws_check_frame(struct ws_stream *st, const struct ws_frame *f)
{
    uint32_t v = 0;
    if (st->from_server ? f->masked : !f->masked)
        v |= st->from_server ? WS_V_MASKED : WS_V_UNMASKED;
    unsigned rsv = (f->rsv1 ? WS_RSV1 : 0) | (f->rsv2 ? WS_RSV2 : 0) | (f->rsv3 ? WS_RSV3 : 0);
    if (rsv & ~(unsigned)st->rsv_allowed)
        v |= WS_V_RSV;
    if (f->length_form && f->length_form != ws_length_form_for(f->len))
        v |= WS_V_LENGTH_NOT_MINIMAL;
    if (st->closed)
        v |= WS_V_AFTER_CLOSE;
    if (!known_opcode(f->opcode))
        return v | WS_V_OPCODE; /* no meaning: the stream's state is left as it was */
    if (f->opcode & 0x8) {
        if (f->len > 125)
            v |= WS_V_CONTROL_TOO_LONG;
        if (!f->fin)
            v |= WS_V_CONTROL_FRAGMENTED;
        if (f->opcode == WS_OP_CLOSE) {
            st->closed = true;
            if (f->len == 1)
                v |= WS_V_CLOSE_ONE_BYTE;
            if (f->len >= 2) {
                if (!ws_close_code_ok((f->payload[0] << 8) | f->payload[1]))
                    v |= WS_V_CLOSE_CODE;
                if (!ws_utf8_valid(f->payload + 2, f->len - 2))
                    v |= WS_V_CLOSE_REASON_UTF8;
            }
        }
        return v;
    }
    if (f->opcode == WS_OP_CONT) {
        if (!st->in_message)
            return v | WS_V_CONT_WITHOUT_START;
    } else {
        if (st->in_message)
            v |= WS_V_DATA_INSIDE_MESSAGE;
        st->in_message = true;
        st->message_opcode = f->opcode;
        ws_utf8_reset(&st->utf8);
        st->utf8_failed = false;
    }
    if (st->message_opcode == WS_OP_TEXT && !st->utf8_failed) {
        enum ws_utf8_state u = ws_utf8_feed(&st->utf8, f->payload, f->len);
        if (u == WS_UTF8_BAD || (f->fin && u == WS_UTF8_PARTIAL)) {
            v |= WS_V_TEXT_UTF8;
            st->utf8_failed = true;
        }
    }
    if (f->fin)
        st->in_message = false;
    return v;
}

/* ------------------------------------------------------------------------------ messages */

void ws_assembler_init(struct ws_assembler *a, size_t max_message)
{
    memset(a, 0, sizeof *a);
    a->max_message = max_message;
}

void ws_assembler_free(struct ws_assembler *a)
{
    free(a->buf);
    a->buf = NULL;
    a->len = a->cap = 0;
    a->open = a->discarding = false;
}

static void drop_message(struct ws_assembler *a)
{
    a->len = 0;
    a->frames = 0;
    a->open = false;
}

enum ws_asm_result ws_assembler_add(struct ws_assembler *a, const struct ws_frame *f,
                                    uint32_t *violations, struct ws_message *m)
{
    *violations = ws_check_frame(&a->stream, f);
    if (!known_opcode(f->opcode))
        return WS_ASM_NONE;
    if (f->opcode & 0x8)
        return WS_ASM_CONTROL;
    if (f->opcode == WS_OP_CONT) {
        if (!a->open && !a->discarding)
            return WS_ASM_NONE; /* without a start: nothing to add it to */
    } else {
        drop_message(a); /* a message still open is abandoned (WS_V_DATA_INSIDE_MESSAGE) */
        a->discarding = false;
        a->open = true;
        a->opcode = f->opcode;
    }
    if (a->discarding) {
        if (f->fin)
            a->discarding = false;
        return WS_ASM_NONE;
    }
    if (f->len > a->max_message || a->len > a->max_message - f->len) {
        drop_message(a);
        a->discarding = !f->fin;
        return WS_ASM_TOO_BIG;
    }
    if (a->len + f->len + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->len + f->len + 1)
            cap *= 2;
        a->buf = xrealloc(a->buf, cap);
        a->cap = cap;
    }
    if (f->len)
        memcpy(a->buf + a->len, f->payload, f->len);
    a->len += f->len;
    a->frames++;
    if (!f->fin)
        return WS_ASM_NONE;
    memset(m, 0, sizeof *m);
    m->opcode = a->opcode;
    m->len = a->len;
    m->data = xmalloc(a->len + 1);
    memcpy(m->data, a->buf, a->len);
    m->data[a->len] = 0;
    m->bad_utf8 = a->opcode == WS_OP_TEXT && a->stream.utf8_failed;
    m->frames = a->frames;
    drop_message(a);
    if (a->cap > 1u << 20) { /* do not keep a big buffer for the rest of the session */
        free(a->buf);
        a->buf = NULL;
        a->cap = 0;
    }
    return WS_ASM_MESSAGE;
}
