/* ws_frame — see ws_frame.h. */
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

unsigned char *ws_encode(const struct ws_frame *f, const void *payload, size_t len, int length_form,
                         size_t *out_len)
{
    if (length_form == 0)
        length_form = len < 126 ? 7 : len <= 0xFFFF ? 16 : 64;
    size_t head = 2 + (length_form == 16 ? 2 : length_form == 64 ? 8 : 0) + (f->masked ? 4 : 0);
    unsigned char *out = xmalloc(head + len);
    out[0] = (unsigned char)((f->fin ? 0x80 : 0) | (f->rsv1 ? 0x40 : 0) | (f->rsv2 ? 0x20 : 0) |
                             (f->rsv3 ? 0x10 : 0) | (f->opcode & 0x0F));
    size_t i = 2;
    if (length_form == 7) {
        out[1] = (unsigned char)(len & 0x7F);
    } else if (length_form == 16) {
        out[1] = 126;
        out[i++] = (unsigned char)(len >> 8);
        out[i++] = (unsigned char)len;
    } else {
        out[1] = 127;
        for (int b = 7; b >= 0; b--)
            out[i++] = (unsigned char)((uint64_t)len >> (8 * b));
    }
    if (f->masked) {
        out[1] |= 0x80;
        memcpy(out + i, f->mask, 4);
        i += 4;
    }
    const unsigned char *p = payload;
    for (size_t k = 0; k < len; k++)
        out[i + k] = f->masked ? (unsigned char)(p[k] ^ f->mask[k % 4]) : p[k];
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

void ws_parser_feed(struct ws_parser *p, const void *data, size_t len)
{
    if (p->len + len > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + len)
            cap *= 2;
        p->buf = realloc(p->buf, cap);
        if (!p->buf)
            abort();
        p->cap = cap;
    }
    memcpy(p->buf + p->len, data, len);
    p->len += len;
}

enum ws_parse_result ws_parser_next(struct ws_parser *p, struct ws_frame *f)
{
    if (p->len < 2)
        return WS_PARSE_MORE;
    const unsigned char *b = p->buf;
    size_t need = 2;
    uint64_t len = b[1] & 0x7F;
    int form = 7;
    if (len == 126) {
        need += 2;
        form = 16;
        if (p->len < need)
            return WS_PARSE_MORE;
        len = ((uint64_t)b[2] << 8) | b[3];
    } else if (len == 127) {
        need += 8;
        form = 64;
        if (p->len < need)
            return WS_PARSE_MORE;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | b[2 + i];
    }
    bool masked = b[1] & 0x80;
    size_t mask_at = need;
    if (masked)
        need += 4;
    if (len > p->max_payload)
        return WS_PARSE_TOO_BIG;
    if (p->len < need + len)
        return WS_PARSE_MORE;
    memset(f, 0, sizeof *f);
    f->fin = b[0] & 0x80;
    f->rsv1 = b[0] & 0x40;
    f->rsv2 = b[0] & 0x20;
    f->rsv3 = b[0] & 0x10;
    f->opcode = b[0] & 0x0F;
    f->masked = masked;
    f->length_form = form;
    if (masked)
        memcpy(f->mask, b + mask_at, 4);
    f->len = (size_t)len;
    f->payload = xmalloc(f->len + 1);
    for (size_t i = 0; i < f->len; i++)
        f->payload[i] = masked ? (unsigned char)(b[need + i] ^ f->mask[i % 4]) : b[need + i];
    f->payload[f->len] = 0;
    size_t used = need + f->len;
    memmove(p->buf, p->buf + used, p->len - used);
    p->len -= used;
    return WS_PARSE_FRAME;
}

size_t ws_check_frame(struct ws_stream *st, const struct ws_frame *f, const char **why, size_t max)
{
    size_t n = 0;
#define WHY(text)                                                                                  \
    do {                                                                                           \
        if (n < max)                                                                               \
            why[n++] = (text);                                                                     \
    } while (0)
    if (!f->masked)
        WHY("unmasked client frame (RFC 6455 5.1)");
    if (f->rsv1 || f->rsv2 || f->rsv3)
        WHY("reserved bit set without an extension (RFC 6455 5.2)");
    bool control = f->opcode & 0x8;
    if ((f->opcode >= 3 && f->opcode <= 7) || f->opcode >= 0xB)
        WHY("reserved opcode (RFC 6455 5.2)");
    if (control) {
        if (f->len > 125)
            WHY("control frame payload over 125 bytes (RFC 6455 5.5)");
        if (!f->fin)
            WHY("fragmented control frame (RFC 6455 5.5)");
        if (f->opcode == WS_OP_CLOSE) {
            if (f->len == 1)
                WHY("close payload of one byte (RFC 6455 5.5.1)");
            if (f->len >= 2) {
                int code = (f->payload[0] << 8) | f->payload[1];
                if (!ws_close_code_ok(code))
                    WHY("close code not allowed on the wire (RFC 6455 7.4)");
                if (!ws_utf8_valid(f->payload + 2, f->len - 2))
                    WHY("close reason is not UTF-8 (RFC 6455 5.5.1)");
            }
        }
        return n;
    }
    if (f->opcode == WS_OP_CONT) {
        if (!st->in_message)
            WHY("continuation frame without a message start (RFC 6455 5.4)");
        else if (f->fin)
            st->in_message = false;
    } else if (f->opcode == WS_OP_TEXT || f->opcode == WS_OP_BINARY) {
        if (st->in_message) {
            /* the open message stays open: its continuation is not a second error */
            WHY("new data frame inside a fragmented message (RFC 6455 5.4)");
        } else {
            st->in_message = !f->fin;
            st->message_opcode = f->opcode;
        }
    }
    return n;
#undef WHY
}

bool ws_utf8_valid(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1F;
            min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0F;
            min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (i + n >= len)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

bool ws_close_code_ok(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}
