/* The WebSocket frame codec: RFC 6455 section 5.7 examples byte for byte, every length
 * encoding, parsing fed one byte at a time and in random slices, limits, the client-frame
 * checks, strict UTF-8, close codes, and the opening handshake's accept value. */
#include <stdlib.h>
#include "test_util.h"
#include "ws_frame.h"
#include "ws_handshake.h"

static unsigned char *enc(int opcode, bool fin, bool masked, const char *payload, size_t len,
                          int form, size_t *out_len)
{
    struct ws_frame f = {
        .opcode = opcode, .fin = fin, .masked = masked, .mask = {0x37, 0xfa, 0x21, 0x3d}};
    return ws_encode(&f, payload, len, form, out_len);
}

static void test_rfc_examples(void **state)
{
    (void)state;
    size_t n;
    unsigned char *b = enc(WS_OP_TEXT, true, false, "Hello", 5, 0, &n);
    assert_int_equal(n, 7);
    assert_memory_equal(b, "\x81\x05\x48\x65\x6c\x6c\x6f", 7);
    free(b);
    b = enc(WS_OP_TEXT, true, true, "Hello", 5, 0, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(b, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    free(b);
    b = enc(WS_OP_TEXT, false, false, "Hel", 3, 0, &n);
    assert_memory_equal(b, "\x01\x03\x48\x65\x6c", 5);
    free(b);
    b = enc(WS_OP_CONT, true, false, "lo", 2, 0, &n);
    assert_memory_equal(b, "\x80\x02\x6c\x6f", 4);
    free(b);
    b = enc(WS_OP_PING, true, false, "Hello", 5, 0, &n);
    assert_memory_equal(b, "\x89\x05\x48\x65\x6c\x6c\x6f", 7);
    free(b);
    char *big = calloc(65536, 1);
    b = enc(WS_OP_BINARY, true, false, big, 256, 0, &n);
    assert_int_equal(n, 4 + 256);
    assert_memory_equal(b, "\x82\x7E\x01\x00", 4);
    free(b);
    b = enc(WS_OP_BINARY, true, false, big, 65536, 0, &n);
    assert_int_equal(n, 10 + 65536);
    assert_memory_equal(b, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    free(b);
    free(big);
}

static void test_forced_length_forms_round_trip(void **state)
{
    (void)state;
    int forms[] = {7, 16, 64};
    for (int i = 0; i < 3; i++) {
        size_t n;
        unsigned char *b = enc(WS_OP_TEXT, true, true, "abc", 3, forms[i], &n);
        assert_int_equal(n, 2 + (forms[i] == 16 ? 2 : forms[i] == 64 ? 8 : 0) + 4 + 3);
        struct ws_parser p;
        ws_parser_init(&p, 1000);
        ws_parser_feed(&p, b, n);
        struct ws_frame f;
        assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_FRAME);
        assert_int_equal(f.length_form, forms[i]);
        assert_int_equal(f.len, 3);
        assert_memory_equal(f.payload, "abc", 3);
        assert_true(f.masked);
        free(f.payload);
        ws_parser_free(&p);
        free(b);
    }
}

static void test_partial_input(void **state)
{
    (void)state;
    /* three frames, one of them with a 64-bit length, fed one byte at a time and in random
     * slices: the same frames come out */
    size_t n1, n2, n3;
    char *big = malloc(70000);
    for (int i = 0; i < 70000; i++)
        big[i] = (char)('a' + i % 26);
    unsigned char *a = enc(WS_OP_TEXT, false, true, "Hel", 3, 0, &n1);
    unsigned char *b = enc(WS_OP_CONT, true, true, "lo", 2, 0, &n2);
    unsigned char *c = enc(WS_OP_BINARY, true, true, big, 70000, 0, &n3);
    size_t total = n1 + n2 + n3;
    unsigned char *all = malloc(total);
    memcpy(all, a, n1);
    memcpy(all + n1, b, n2);
    memcpy(all + n1 + n2, c, n3);
    srand(7);
    for (int mode = 0; mode < 2; mode++) {
        struct ws_parser p;
        ws_parser_init(&p, 1 << 20);
        struct ws_frame got[3];
        int k = 0;
        size_t off = 0;
        while (off < total) {
            size_t step = mode == 0 ? 1 : 1 + (size_t)rand() % 5000;
            if (step > total - off)
                step = total - off;
            ws_parser_feed(&p, all + off, step);
            off += step;
            while (k < 3 && ws_parser_next(&p, &got[k]) == WS_PARSE_FRAME)
                k++;
        }
        assert_int_equal(k, 3);
        assert_int_equal(got[0].opcode, WS_OP_TEXT);
        assert_false(got[0].fin);
        assert_int_equal(got[1].opcode, WS_OP_CONT);
        assert_memory_equal(got[1].payload, "lo", 2);
        assert_int_equal(got[2].len, 70000);
        assert_int_equal(got[2].length_form, 64 == got[2].length_form ? 64 : 16);
        assert_memory_equal(got[2].payload, big, 70000);
        for (int i = 0; i < 3; i++)
            free(got[i].payload);
        ws_parser_free(&p);
    }
    free(all);
    free(a);
    free(b);
    free(c);
    free(big);
}

static void test_limit(void **state)
{
    (void)state;
    struct ws_parser p;
    ws_parser_init(&p, 100);
    ws_parser_feed(&p, "\x82\x7F\x00\x00\x00\x01\x00\x00\x00\x00", 10);
    struct ws_frame f;
    assert_int_equal(ws_parser_next(&p, &f), WS_PARSE_TOO_BIG);
    ws_parser_free(&p);
}

static size_t check(struct ws_stream *st, int opcode, bool fin, bool masked, bool rsv1,
                    const char *payload, size_t len, const char **why)
{
    struct ws_frame f = {.opcode = opcode,
                         .fin = fin,
                         .masked = masked,
                         .rsv1 = rsv1,
                         .payload = (unsigned char *)payload,
                         .len = len};
    return ws_check_frame(st, &f, why, 8);
}

static void test_client_frame_checks(void **state)
{
    (void)state;
    struct ws_stream st = {0};
    const char *why[8];
    assert_int_equal(check(&st, WS_OP_TEXT, true, true, false, "ok", 2, why), 0);
    assert_int_equal(check(&st, WS_OP_TEXT, true, false, false, "ok", 2, why), 1);
    assert_non_null(strstr(why[0], "unmasked"));
    assert_int_equal(check(&st, WS_OP_TEXT, true, true, true, "ok", 2, why), 1);
    assert_non_null(strstr(why[0], "reserved bit"));
    assert_int_equal(check(&st, 3, true, true, false, "", 0, why), 1);
    assert_non_null(strstr(why[0], "reserved opcode"));
    assert_int_equal(check(&st, 0xB, true, true, false, "", 0, why), 1);
    char big[126] = {0};
    assert_int_equal(check(&st, WS_OP_PING, true, true, false, big, 126, why), 1);
    assert_non_null(strstr(why[0], "over 125"));
    assert_int_equal(check(&st, WS_OP_PING, false, true, false, "", 0, why), 1);
    assert_non_null(strstr(why[0], "fragmented control"));
    assert_int_equal(check(&st, WS_OP_CONT, true, true, false, "x", 1, why), 1);
    assert_non_null(strstr(why[0], "without a message start"));
    assert_int_equal(check(&st, WS_OP_TEXT, false, true, false, "a", 1, why), 0);
    assert_int_equal(check(&st, WS_OP_PING, true, true, false, "", 0, why), 0); /* interleaved */
    assert_int_equal(check(&st, WS_OP_BINARY, true, true, false, "b", 1, why), 1);
    assert_non_null(strstr(why[0], "inside a fragmented message"));
    assert_int_equal(check(&st, WS_OP_CONT, true, true, false, "c", 1, why), 0);
    assert_int_equal(check(&st, WS_OP_CLOSE, true, true, false, "\x03", 1, why), 1);
    assert_int_equal(check(&st, WS_OP_CLOSE, true, true, false, "\x03\xed", 2, why), 1); /* 1005 */
    assert_int_equal(check(&st, WS_OP_CLOSE, true, true, false, "\x03\xe8\xff", 3, why), 1);
    assert_non_null(strstr(why[0], "not UTF-8"));
    assert_int_equal(check(&st, WS_OP_CLOSE, true, true, false, "\x03\xe8ok", 4, why), 0);
}

static void test_utf8(void **state)
{
    (void)state;
    struct {
        const char *s;
        size_t len;
        bool ok;
    } cases[] = {
        {"", 0, true},
        {"hello", 5, true},
        {"\xc2\xa9", 2, true},
        {"\xe2\x82\xac", 3, true},
        {"\xf0\x9f\x98\x80", 4, true},
        {"\xf4\x8f\xbf\xbf", 4, true},  /* U+10FFFF */
        {"\xf4\x90\x80\x80", 4, false}, /* > U+10FFFF */
        {"\xc0\xaf", 2, false},         /* overlong */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xe2\x82", 2, false},         /* truncated */
        {"\x80", 1, false},
        {"\xff", 1, false},
        {"ab\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 13, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (ws_utf8_valid((const unsigned char *)cases[i].s, cases[i].len) != cases[i].ok)
            fail_msg("case %zu", i);
}

static void test_close_codes(void **state)
{
    (void)state;
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
}

static void test_handshake(void **state)
{
    (void)state;
    char accept[29];
    ws_accept_for("dGhlIHNhbXBsZSBub25jZQ==", accept);
    assert_string_equal(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    struct request r;
    request_init(&r, "GET", "/ws");
    const char *why[8];
    assert_int_equal(ws_handshake_problems(&r, why, 8), 4);
    request_add_header(&r, "Upgrade", "WebSocket");
    request_add_header(&r, "Connection", "keep-alive, Upgrade");
    request_add_header(&r, "Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==");
    request_add_header(&r, "Sec-WebSocket-Version", "13");
    request_add_header(&r, "Sec-WebSocket-Protocol", "chat, superchat");
    request_add_header(&r, "Sec-WebSocket-Protocol", "v2");
    assert_int_equal(ws_handshake_problems(&r, why, 8), 0);
    char **offered = ws_offered_protocols(&r);
    assert_string_equal(offered[0], "chat");
    assert_string_equal(offered[1], "superchat");
    assert_string_equal(offered[2], "v2");
    assert_null(offered[3]);
    struct ws_handshake_spec h = {.subprotocol = WS_SUB_FIRST_OFFERED};
    assert_string_equal(ws_choose_protocol(&h, offered), "chat");
    h.subprotocol = WS_SUB_NONE;
    assert_null(ws_choose_protocol(&h, offered));
    h.subprotocol = WS_SUB_NAMED;
    h.subprotocol_name = "other";
    assert_string_equal(ws_choose_protocol(&h, offered), "other");
    ws_free_list(offered);
    request_free(&r);
    request_init(&r, "GET", "/ws");
    request_add_header(&r, "Upgrade", "websocket");
    request_add_header(&r, "Connection", "Upgrade");
    request_add_header(&r, "Sec-WebSocket-Key", "c2hvcnQ=");
    request_add_header(&r, "Sec-WebSocket-Version", "8");
    assert_int_equal(ws_handshake_problems(&r, why, 8), 2);
    request_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_forced_length_forms_round_trip),
        cmocka_unit_test(test_partial_input),
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_client_frame_checks),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_handshake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
