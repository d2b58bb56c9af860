/* The WebSocket frame codec: the RFC 6455 section 5.7 examples byte for byte, every length
 * form, parsing fed one byte at a time and in random slices, limits, each class of
 * violation, strict UTF-8 (one piece and split across fragments), close codes, and the
 * message assembler. */
#include <stdlib.h>
#include "test_util.h"
#include "ws_frame.h"

static const uint8_t RFC_KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

static unsigned char *enc(int opcode, bool fin, bool masked, const void *payload, size_t len,
                          int form, size_t *out_len)
{
    struct ws_frame f = {.opcode = opcode, .fin = fin, .masked = masked};
    memcpy(f.mask, RFC_KEY, 4);
    return ws_encode(&f, payload, len, form, out_len);
}

/* Parse exactly one frame out of bytes fed at once. */
static void parse_one(const void *bytes, size_t n, struct ws_frame *f)
{
    struct ws_parser p;
    ws_parser_init(&p, 1 << 20);
    ws_parser_feed(&p, bytes, n);
    assert_int_equal(ws_parser_next(&p, f), WS_PARSE_FRAME);
    assert_int_equal(ws_parser_pending(&p), 0);
    ws_parser_free(&p);
}

static void test_rfc_examples_encode(void **state)
{
    (void)state;
    size_t n;
    /* 5.7: a single-frame unmasked text message */
    unsigned char *b = enc(WS_OP_TEXT, true, false, "Hello", 5, 0, &n);
    assert_int_equal(n, 7);
    assert_memory_equal(b, "\x81\x05\x48\x65\x6c\x6c\x6f", 7);
    free(b);
    /* a single-frame masked text message */
    b = enc(WS_OP_TEXT, true, true, "Hello", 5, 0, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(b, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    free(b);
    /* a fragmented unmasked text message */
    b = enc(WS_OP_TEXT, false, false, "Hel", 3, 0, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(b, "\x01\x03\x48\x65\x6c", 5);
    free(b);
    b = enc(WS_OP_CONT, true, false, "lo", 2, 0, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(b, "\x80\x02\x6c\x6f", 4);
    free(b);
    /* unmasked ping, and the masked pong answering it */
    b = enc(WS_OP_PING, true, false, "Hello", 5, 0, &n);
    assert_memory_equal(b, "\x89\x05\x48\x65\x6c\x6c\x6f", 7);
    free(b);
    b = enc(WS_OP_PONG, true, true, "Hello", 5, 0, &n);
    assert_memory_equal(b, "\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    free(b);
    /* 256 bytes of binary in one unmasked frame: 16-bit length */
    unsigned char *big = malloc(65536);
    for (size_t i = 0; i < 65536; i++)
        big[i] = (unsigned char)(i * 7);
    b = enc(WS_OP_BINARY, true, false, big, 256, 0, &n);
    assert_int_equal(n, 4 + 256);
    assert_memory_equal(b, "\x82\x7E\x01\x00", 4);
    assert_memory_equal(b + 4, big, 256);
    free(b);
    /* 64 KiB: 64-bit length */
    b = enc(WS_OP_BINARY, true, false, big, 65536, 0, &n);
    assert_int_equal(n, 10 + 65536);
    assert_memory_equal(b, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_memory_equal(b + 10, big, 65536);
    free(b);
    free(big);
}

static void test_rfc_examples_parse(void **state)
{
    (void)state;
    struct ws_frame f;
    parse_one("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11, &f);
    assert_int_equal(f.opcode, WS_OP_TEXT);
    assert_true(f.fin);
    assert_true(f.masked);
    assert_memory_equal(f.mask, RFC_KEY, 4);
    assert_int_equal(f.len, 5);
    assert_string_equal((char *)f.payload, "Hello");
    assert_int_equal(f.length_form, 7);
    free(f.payload);
    parse_one("\x01\x03\x48\x65\x6c", 5, &f);
    assert_false(f.fin);
    assert_false(f.masked);
    assert_string_equal((char *)f.payload, "Hel");
    free(f.payload);
    parse_one("\x89\x05\x48\x65\x6c\x6c\x6f", 7, &f);
    assert_int_equal(f.opcode, WS_OP_PING);
    free(f.payload);
    /* header bits come out as sent */
    parse_one("\x7f\x00", 2, &f);
    assert_false(f.fin);
    assert_true(f.rsv1 && f.rsv2 && f.rsv3);
    assert_int_equal(f.opcode, 0xF);
    assert_int_equal(f.len, 0);
    assert_non_null(f.payload);
    free(f.payload);
}

static void test_length_forms(void **state)
{
    (void)state;
    struct {
        size_t len;
        int form;
        size_t head; /* 0: refused */
    } cases[] = {
        {0, 0, 2},   {125, 0, 2}, {126, 0, 4},   {65535, 0, 4}, {65536, 0, 10}, {0, 7, 2},
        {125, 7, 2}, {126, 7, 0}, {0, 16, 4},    {5, 16, 4},    {65535, 16, 4}, {65536, 16, 0},
        {0, 64, 10}, {5, 64, 10}, {300, 64, 10}, {5, 8, 0},     {5, 32, 0},     {5, -1, 0},
    };
    unsigned char *payload = calloc(65536, 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int masked = 0; masked < 2; masked++) {
            size_t n = 0;
            unsigned char *b =
                enc(WS_OP_BINARY, true, masked, payload, cases[i].len, cases[i].form, &n);
            if (!cases[i].head) {
                if (b)
                    fail_msg("case %zu: encoded", i);
                continue;
            }
            assert_non_null(b);
            assert_int_equal(n, cases[i].head + (masked ? 4 : 0) + cases[i].len);
            struct ws_frame f;
            parse_one(b, n, &f);
            int want = cases[i].form ? cases[i].form : ws_length_form_for(cases[i].len);
            assert_int_equal(f.length_form, want);
            assert_int_equal(f.len, cases[i].len);
            assert_int_equal(f.masked, masked);
            free(f.payload);
            free(b);
        }
    }
    free(payload);
    assert_int_equal(ws_length_form_for(125), 7);
    assert_int_equal(ws_length_form_for(126), 16);
    assert_int_equal(ws_length_form_for(65536), 64);
}

/* Concatenate frames (text fragments, a ping between, a 70000-byte binary, a 16-bit one,
 * an empty close), then feed them whole, byte by byte and in random slices. */
static void test_partial_input(void **state)
{
    (void)state;
    size_t total = 0, n;
    unsigned char *all = NULL;
    unsigned char *big = malloc(70000);
    for (int i = 0; i < 70000; i++)
        big[i] = (unsigned char)('a' + i % 26);
    struct {
        int op;
        bool fin, masked;
        const void *p;
        size_t len;
    } frames[] = {
        {WS_OP_TEXT, false, true, "Hel", 3},   {WS_OP_PING, true, true, "", 0},
        {WS_OP_CONT, true, true, "lo", 2},     {WS_OP_BINARY, true, true, big, 70000},
        {WS_OP_BINARY, true, false, big, 300}, {WS_OP_CLOSE, true, true, "", 0},
    };
    const size_t nf = sizeof frames / sizeof frames[0];
    for (size_t i = 0; i < nf; i++) {
        unsigned char *b =
            enc(frames[i].op, frames[i].fin, frames[i].masked, frames[i].p, frames[i].len, 0, &n);
        all = realloc(all, total + n);
        memcpy(all + total, b, n);
        total += n;
        free(b);
    }
    srand(7);
    for (int mode = 0; mode < 12; mode++) {
        struct ws_parser p;
        ws_parser_init(&p, 1 << 20);
        size_t k = 0, off = 0;
        while (off < total) {
            size_t step = mode == 0 ? total : mode == 1 ? 1 : 1 + (size_t)rand() % (mode * 997);
            if (step > total - off)
                step = total - off;
            ws_parser_feed(&p, all + off, step);
            off += step;
            struct ws_frame f;
            while (ws_parser_next(&p, &f) == WS_PARSE_FRAME) {
                assert_true(k < nf);
                assert_int_equal(f.opcode, frames[k].op);
                assert_int_equal(f.fin, frames[k].fin);
                assert_int_equal(f.masked, frames[k].masked);
                assert_int_equal(f.len, frames[k].len);
                if (f.len)
                    assert_memory_equal(f.payload, frames[k].p, f.len);
                free(f.payload);
                k++;
            }
        }
        assert_int_equal(k, nf);
        assert_int_equal(ws_parser_pending(&p), 0);
        ws_parser_free(&p);
    }
    free(all);
    free(big);
}

static void test_limits(void **state)
{
    (void)state;
    struct ws_parser p;
    struct ws_frame f;
    /* a 64-bit length over the limit: refused from the header alone */
    ws_parser_init(&p, 100);
    ws_parser_feed(&p, "\x82\x7F\x00\x00\x00\x01\x00\x00\x00\x00", 10);
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_TOO_BIG);
    assert_int_equal(p.announced, 1ull << 32);
    ws_parser_feed(&p, "\x81\x00", 2); /* ignored: the stream is lost */
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_TOO_BIG);
    ws_parser_free(&p);
    /* the most significant bit set (5.2 forbids it) */
    ws_parser_init(&p, 1 << 20);
    ws_parser_feed(&p, "\x82\xFF\x80\x00\x00\x00\x00\x00\x00\x01", 10);
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_TOO_BIG);
    ws_parser_free(&p);
    /* exactly at the limit is fine, one over is not; 16-bit and 7-bit forms too */
    ws_parser_init(&p, 126);
    size_t n;
    unsigned char *zero = calloc(200, 1);
    unsigned char *b = enc(WS_OP_BINARY, true, true, zero, 126, 0, &n);
    ws_parser_feed(&p, b, n);
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_FRAME);
    free(f.payload);
    free(b);
    b = enc(WS_OP_BINARY, true, true, zero, 127, 0, &n);
    ws_parser_feed(&p, b, 4); /* the header is enough to know */
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_TOO_BIG);
    free(b);
    ws_parser_free(&p);
    ws_parser_init(&p, 5);
    ws_parser_feed(&p, "\x81\x06", 2);
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_TOO_BIG);
    ws_parser_free(&p);
    /* incomplete headers wait for more */
    ws_parser_init(&p, 1 << 20);
    const unsigned char hdr[] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3, 4, 9, 9, 9};
    for (size_t i = 0; i < sizeof hdr - 1; i++) {
        ws_parser_feed(&p, hdr + i, 1);
        assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_MORE);
    }
    ws_parser_feed(&p, hdr + sizeof hdr - 1, 1);
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_FRAME);
    assert_int_equal(f.len, 3);
    assert_int_equal(f.length_form, 64);
    assert_memory_equal(f.payload, "\x08\x0b\x0a", 3); /* 9 ^ 1, 9 ^ 2, 9 ^ 3 */
    free(f.payload);
    ws_parser_free(&p);
    free(zero);
}

static uint32_t check(struct ws_stream *st, int opcode, bool fin, bool masked, const void *payload,
                      size_t len)
{
    struct ws_frame f = {.opcode = opcode,
                         .fin = fin,
                         .masked = masked,
                         .payload = (unsigned char *)payload,
                         .len = len,
                         .length_form = ws_length_form_for(len)};
    return ws_check_frame(st, &f);
}

static void test_violations(void **state)
{
    (void)state;
    struct ws_stream st = {0};
    assert_int_equal(check(&st, WS_OP_TEXT, true, true, "ok", 2), 0);
    assert_int_equal(check(&st, WS_OP_BINARY, true, true, "\xff", 1), 0);
    assert_int_equal(check(&st, WS_OP_TEXT, true, false, "ok", 2), WS_V_UNMASKED);
    /* reserved bits, unless negotiated */
    struct ws_frame f = {.opcode = WS_OP_TEXT, .fin = true, .masked = true, .rsv1 = true};
    f.payload = (unsigned char *)"";
    assert_int_equal(ws_check_frame(&st, &f), WS_V_RSV);
    st.rsv_allowed = WS_RSV1;
    assert_int_equal(ws_check_frame(&st, &f), 0);
    f.rsv3 = true;
    assert_int_equal(ws_check_frame(&st, &f), WS_V_RSV);
    st.rsv_allowed = 0;
    /* non-minimal lengths */
    f = (struct ws_frame){
        .opcode = WS_OP_TEXT, .fin = true, .masked = true, .payload = (unsigned char *)"ab"};
    f.len = 2;
    f.length_form = 16;
    assert_int_equal(ws_check_frame(&st, &f), WS_V_LENGTH_NOT_MINIMAL);
    f.length_form = 64;
    assert_int_equal(ws_check_frame(&st, &f), WS_V_LENGTH_NOT_MINIMAL);
    /* reserved opcodes: 3-7, 11-15 */
    for (int op = 0; op < 16; op++) {
        bool reserved = (op >= 3 && op <= 7) || op >= 11;
        struct ws_stream s2 = {0};
        uint32_t v = check(&s2, op, true, true, "", 0);
        assert_int_equal(!!(v & WS_V_OPCODE), reserved);
    }
    /* control frames */
    char big[126] = {0};
    assert_int_equal(check(&st, WS_OP_PING, true, true, big, 125), 0);
    assert_int_equal(check(&st, WS_OP_PING, true, true, big, 126), WS_V_CONTROL_TOO_LONG);
    assert_int_equal(check(&st, WS_OP_PONG, false, true, "", 0), WS_V_CONTROL_FRAGMENTED);
    /* fragmentation order */
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "x", 1), WS_V_CONT_WITHOUT_START);
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, "a", 1), 0);
    assert_int_equal(check(&st, WS_OP_PING, true, true, "", 0), 0); /* interleaved: fine */
    assert_int_equal(check(&st, WS_OP_CONT, false, true, "b", 1), 0);
    assert_int_equal(check(&st, WS_OP_BINARY, false, true, "c", 1), WS_V_DATA_INSIDE_MESSAGE);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "d", 1), 0); /* ends the new one */
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "e", 1), WS_V_CONT_WITHOUT_START);
    /* close frames */
    struct ws_stream c = {0};
    assert_int_equal(check(&c, WS_OP_CLOSE, true, true, "", 0), 0);
    assert_int_equal(check(&c, WS_OP_TEXT, true, true, "late", 4), WS_V_AFTER_CLOSE);
    memset(&c, 0, sizeof c);
    assert_int_equal(check(&c, WS_OP_CLOSE, true, true, "\x03", 1), WS_V_CLOSE_ONE_BYTE);
    memset(&c, 0, sizeof c);
    assert_int_equal(check(&c, WS_OP_CLOSE, true, true, "\x03\xed", 2), WS_V_CLOSE_CODE); /* 1005 */
    memset(&c, 0, sizeof c);
    assert_int_equal(check(&c, WS_OP_CLOSE, true, true, "\x03\xe8\xff", 3), WS_V_CLOSE_REASON_UTF8);
    memset(&c, 0, sizeof c);
    assert_int_equal(check(&c, WS_OP_CLOSE, true, true, "\x03\xe8ok", 4), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(check(&c, WS_OP_CLOSE, true, false, "\x00\x00\xc0\xaf", 4),
                     WS_V_UNMASKED | WS_V_CLOSE_CODE | WS_V_CLOSE_REASON_UTF8);
    /* a server's frames: masking is the fault */
    struct ws_stream sv = {.from_server = true};
    assert_int_equal(check(&sv, WS_OP_TEXT, true, false, "ok", 2), 0);
    assert_int_equal(check(&sv, WS_OP_TEXT, true, true, "ok", 2), WS_V_MASKED);
    /* every bit has words */
    for (unsigned i = 0; i < WS_V_COUNT; i++) {
        assert_string_not_equal(ws_violation_what(1u << i), "?");
        assert_non_null(strstr(ws_violation_detail(1u << i), "RFC 6455"));
    }
    assert_string_equal(ws_violation_what(1u << WS_V_COUNT), "?");
    assert_string_equal(ws_violation_what(WS_V_UNMASKED), "unmasked client frame");
}

static void test_ping_answerable(void **state)
{
    (void)state;
    struct ws_frame f = {.opcode = WS_OP_PING, .fin = true, .len = 125};
    assert_true(ws_ping_answerable(&f));
    f.len = 0;
    assert_true(ws_ping_answerable(&f));
    f.len = 126; /* a control frame over 125 bytes (5.5) */
    assert_false(ws_ping_answerable(&f));
    f.len = 4;
    f.fin = false; /* a fragmented control frame (5.5) */
    assert_false(ws_ping_answerable(&f));
    f.fin = true;
    f.opcode = WS_OP_PONG; /* a pong is never answered */
    assert_false(ws_ping_answerable(&f));
}

static void test_text_utf8_across_fragments(void **state)
{
    (void)state;
    struct ws_stream st = {0};
    /* U+20AC split 1 + 2 bytes over two fragments: valid */
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, "a\xe2", 2), 0);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "\x82\xac", 2), 0);
    /* a 4-byte sequence in four fragments */
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, "\xf0", 1), 0);
    assert_int_equal(check(&st, WS_OP_CONT, false, true, "\x9f", 1), 0);
    assert_int_equal(check(&st, WS_OP_CONT, false, true, "\x98", 1), 0);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "\x80", 1), 0);
    /* cut short at the end of the message */
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, "ok", 2), 0);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "\xe2\x82", 2), WS_V_TEXT_UTF8);
    /* fails fast, in the fragment where it breaks, and is said once */
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, "\xed", 1), 0);
    assert_int_equal(check(&st, WS_OP_CONT, false, true, "\xa0\x80", 2), WS_V_TEXT_UTF8);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "\xff", 1), 0);
    /* a control frame in the middle does not disturb the state */
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, "\xc3", 1), 0);
    assert_int_equal(check(&st, WS_OP_PING, true, true, "\xff", 1), 0);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "\xa9", 1), 0);
    /* binary messages are not checked */
    assert_int_equal(check(&st, WS_OP_BINARY, false, true, "\xe2", 1), 0);
    assert_int_equal(check(&st, WS_OP_CONT, true, true, "\xff", 1), 0);
    /* a new message starts clean */
    assert_int_equal(check(&st, WS_OP_TEXT, true, true, "\xc0\xaf", 2), WS_V_TEXT_UTF8);
    assert_int_equal(check(&st, WS_OP_TEXT, true, true, "fine", 4), 0);
}

static void test_utf8_table(void **state)
{
    (void)state;
    struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"hello", 5, true},
        {"\x00\x7f", 2, true},
        {"\xc2\x80", 2, true}, /* U+0080, the first 2-byte */
        {"\xc2\xa9", 2, true},
        {"\xdf\xbf", 2, true},
        {"\xe0\xa0\x80", 3, true}, /* U+0800 */
        {"\xe2\x82\xac", 3, true},
        {"\xed\x9f\xbf", 3, true}, /* U+D7FF */
        {"\xee\x80\x80", 3, true}, /* U+E000 */
        {"\xef\xbf\xbf", 3, true}, /* U+FFFF */
        {"\xef\xbb\xbf", 3, true}, /* BOM */
        {"\xf0\x90\x80\x80", 4, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"\xf3\xbf\xbf\xbf", 4, true},
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"ab\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 13, true},
        /* overlongs */
        {"\xc0\x80", 2, false},
        {"\xc0\xaf", 2, false},
        {"\xc1\xbf", 2, false},
        {"\xe0\x80\xaf", 3, false},
        {"\xe0\x9f\xbf", 3, false},
        {"\xf0\x80\x80\xaf", 4, false},
        {"\xf0\x8f\xbf\xbf", 4, false},
        /* surrogates */
        {"\xed\xa0\x80", 3, false},
        {"\xed\xbf\xbf", 3, false},
        {"\xed\xa0\xbd\xed\xb2\xa9", 6, false}, /* a CESU-8 pair */
        /* over U+10FFFF */
        {"\xf4\x90\x80\x80", 4, false},
        {"\xf5\x80\x80\x80", 4, false},
        {"\xf7\xbf\xbf\xbf", 4, false},
        {"\xf8\x88\x80\x80\x80", 5, false},
        /* truncated */
        {"\xc2", 1, false},
        {"\xe2\x82", 2, false},
        {"\xf0\x9f\x98", 3, false},
        {"a\xf0", 2, false},
        /* stray continuations and bad bytes */
        {"\x80", 1, false},
        {"\xbf", 1, false},
        {"a\x80z", 3, false},
        {"\xe2\x28\xa1", 3, false},
        {"\xfe", 1, false},
        {"\xff", 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (ws_utf8_valid(cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("case %zu", i);
        /* the same, fed one byte at a time */
        struct ws_utf8 u = {0};
        enum ws_utf8_state r = WS_UTF8_OK;
        for (size_t k = 0; k < cases[i].len; k++)
            r = ws_utf8_feed(&u, cases[i].s + k, 1);
        if ((r == WS_UTF8_OK) != cases[i].ok)
            fail_msg("case %zu, byte by byte", i);
    }
    struct ws_utf8 u = {0};
    assert_int_equal(ws_utf8_feed(&u, "\xe2", 1), WS_UTF8_PARTIAL);
    assert_int_equal(ws_utf8_feed(&u, "\x82", 1), WS_UTF8_PARTIAL);
    assert_int_equal(ws_utf8_feed(&u, "\xac", 1), WS_UTF8_OK);
    assert_int_equal(ws_utf8_feed(&u, "\xff", 1), WS_UTF8_BAD);
    assert_int_equal(ws_utf8_feed(&u, "ok", 2), WS_UTF8_BAD); /* sticky */
    ws_utf8_reset(&u);
    assert_int_equal(ws_utf8_feed(&u, "ok", 2), WS_UTF8_OK);
}

static void test_close_codes(void **state)
{
    (void)state;
    for (int code = -1; code <= 70000; code++) {
        bool want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                    (code >= 3000 && code <= 4999);
        if (ws_close_code_ok(code) != want)
            fail_msg("code %d", code);
    }
    int ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999};
    int bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_true(ws_close_code_ok(ok[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ws_close_code_ok(bad[i]));
    size_t n;
    unsigned char *p = ws_close_payload(1000, "bye", 3, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(p,
                        "\x03\xe8"
                        "bye",
                        5);
    free(p);
    p = ws_close_payload(65535, NULL, 0, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "\xff\xff", 2);
    free(p);
}

static enum ws_asm_result add(struct ws_assembler *a, int opcode, bool fin, const char *payload,
                              uint32_t *v, struct ws_message *m)
{
    struct ws_frame f = {.opcode = opcode,
                         .fin = fin,
                         .masked = true,
                         .payload = (unsigned char *)payload,
                         .len = strlen(payload)};
    return ws_assembler_add(a, &f, v, m);
}

static void test_assembler(void **state)
{
    (void)state;
    struct ws_assembler a;
    ws_assembler_init(&a, 10);
    struct ws_message m;
    uint32_t v;
    /* one frame */
    assert_int_equal(add(&a, WS_OP_TEXT, true, "Hello", &v, &m), WS_ASM_MESSAGE);
    assert_int_equal(v, 0);
    assert_int_equal(m.opcode, WS_OP_TEXT);
    assert_string_equal((char *)m.data, "Hello");
    assert_int_equal(m.frames, 1);
    assert_false(m.bad_utf8);
    free(m.data);
    /* fragments with a ping between */
    assert_int_equal(add(&a, WS_OP_TEXT, false, "Hel", &v, &m), WS_ASM_NONE);
    assert_int_equal(add(&a, WS_OP_PING, true, "p", &v, &m), WS_ASM_CONTROL);
    assert_int_equal(add(&a, WS_OP_CONT, false, "", &v, &m), WS_ASM_NONE);
    assert_int_equal(add(&a, WS_OP_CONT, true, "lo", &v, &m), WS_ASM_MESSAGE);
    assert_int_equal(m.len, 5);
    assert_string_equal((char *)m.data, "Hello");
    assert_int_equal(m.frames, 3);
    free(m.data);
    /* binary, empty */
    assert_int_equal(add(&a, WS_OP_BINARY, true, "", &v, &m), WS_ASM_MESSAGE);
    assert_int_equal(m.opcode, WS_OP_BINARY);
    assert_int_equal(m.len, 0);
    free(m.data);
    /* invalid UTF-8 is delivered, flagged */
    assert_int_equal(add(&a, WS_OP_TEXT, false, "ok\xe2", &v, &m), WS_ASM_NONE);
    assert_int_equal(v, 0);
    assert_int_equal(add(&a, WS_OP_CONT, true, "\x28", &v, &m), WS_ASM_MESSAGE);
    assert_int_equal(v, WS_V_TEXT_UTF8);
    assert_true(m.bad_utf8);
    free(m.data);
    /* a continuation without a start carries nothing */
    assert_int_equal(add(&a, WS_OP_CONT, true, "x", &v, &m), WS_ASM_NONE);
    assert_int_equal(v, WS_V_CONT_WITHOUT_START);
    /* a new message while one is open replaces it */
    assert_int_equal(add(&a, WS_OP_TEXT, false, "old", &v, &m), WS_ASM_NONE);
    assert_int_equal(add(&a, WS_OP_BINARY, false, "ne", &v, &m), WS_ASM_NONE);
    assert_int_equal(v, WS_V_DATA_INSIDE_MESSAGE);
    assert_int_equal(add(&a, WS_OP_CONT, true, "w", &v, &m), WS_ASM_MESSAGE);
    assert_int_equal(m.opcode, WS_OP_BINARY);
    assert_string_equal((char *)m.data, "new");
    free(m.data);
    /* over the limit: said once, the rest of the message skipped */
    assert_int_equal(add(&a, WS_OP_TEXT, false, "123456", &v, &m), WS_ASM_NONE);
    assert_int_equal(add(&a, WS_OP_CONT, false, "78901", &v, &m), WS_ASM_TOO_BIG);
    assert_int_equal(add(&a, WS_OP_CONT, false, "x", &v, &m), WS_ASM_NONE);
    assert_int_equal(add(&a, WS_OP_CONT, true, "y", &v, &m), WS_ASM_NONE);
    assert_int_equal(v, 0);
    assert_int_equal(add(&a, WS_OP_TEXT, true, "12345678901", &v, &m), WS_ASM_TOO_BIG);
    assert_int_equal(add(&a, WS_OP_TEXT, true, "1234567890", &v, &m), WS_ASM_MESSAGE);
    free(m.data);
    /* reserved opcodes carry nothing; close is a control frame */
    assert_int_equal(add(&a, 3, true, "x", &v, &m), WS_ASM_NONE);
    assert_int_equal(v, WS_V_OPCODE);
    assert_int_equal(add(&a, WS_OP_CLOSE, true, "", &v, &m), WS_ASM_CONTROL);
    ws_assembler_free(&a);
}

/* Frames from random slices through the assembler: the messages are the fragments joined. */
static void test_assembler_random(void **state)
{
    (void)state;
    srand(11);
    for (int round = 0; round < 50; round++) {
        struct ws_parser p;
        ws_parser_init(&p, 1 << 16);
        struct ws_assembler a;
        ws_assembler_init(&a, 1 << 20);
        unsigned char *wire = NULL, want[4096];
        size_t wire_len = 0, want_len = (size_t)rand() % sizeof want;
        for (size_t i = 0; i < want_len; i++)
            want[i] = (unsigned char)('a' + rand() % 26);
        size_t off = 0;
        int k = 0;
        while (off < want_len || k == 0) {
            size_t piece = (size_t)rand() % 700;
            if (piece > want_len - off)
                piece = want_len - off;
            size_t n;
            unsigned char *b = enc(k ? WS_OP_CONT : WS_OP_TEXT, off + piece == want_len, true,
                                   want + off, piece, 0, &n);
            wire = realloc(wire, wire_len + n);
            memcpy(wire + wire_len, b, n);
            wire_len += n;
            free(b);
            off += piece;
            k++;
            if (rand() % 3 == 0) { /* a ping between fragments */
                b = enc(WS_OP_PING, true, true, "x", 1, 0, &n);
                wire = realloc(wire, wire_len + n);
                memcpy(wire + wire_len, b, n);
                wire_len += n;
                free(b);
            }
        }
        int messages = 0;
        for (size_t at = 0; at < wire_len;) {
            size_t step = 1 + (size_t)rand() % 64;
            if (step > wire_len - at)
                step = wire_len - at;
            ws_parser_feed(&p, wire + at, step);
            at += step;
            struct ws_frame f;
            while (ws_parser_next(&p, &f) == WS_PARSE_FRAME) {
                uint32_t v;
                struct ws_message m;
                if (ws_assembler_add(&a, &f, &v, &m) == WS_ASM_MESSAGE) {
                    assert_int_equal(m.len, want_len);
                    if (want_len)
                        assert_memory_equal(m.data, want, want_len);
                    free(m.data);
                    messages++;
                }
                assert_int_equal(v, 0);
                free(f.payload);
            }
        }
        assert_int_equal(messages, 1);
        free(wire);
        ws_assembler_free(&a);
        ws_parser_free(&p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples_encode),
        cmocka_unit_test(test_rfc_examples_parse),
        cmocka_unit_test(test_length_forms),
        cmocka_unit_test(test_partial_input),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_violations),
        cmocka_unit_test(test_ping_answerable),
        cmocka_unit_test(test_text_utf8_across_fragments),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_assembler),
        cmocka_unit_test(test_assembler_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
