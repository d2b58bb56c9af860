/* The precision writers of issue 13: frames whose header announces any length
 * (ws_encode_announced), the forms of each origin in templates, chunks and `end` in plans,
 * handshake variants, and request matching on target, kind and body (route_json_subset). */
#include "test_util.h"
#include "plan.h"
#include "route.h"
#include "tmpl.h"
#include "ws_frame.h"
#include "ws_handshake.h"

#include <stdlib.h>

static void test_announced_lengths(void **state)
{
    (void)state;
    struct ws_frame f = {.opcode = WS_OP_BINARY, .fin = true};
    size_t len;
    /* a 64-bit length with the most significant bit set, and no payload */
    unsigned char *out = ws_encode_announced(&f, "", 0, 64, 0x8000000000000001ull, &len);
    static const unsigned char msb[] = {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0x01};
    assert_int_equal(len, sizeof msb);
    assert_memory_equal(out, msb, sizeof msb);
    free(out);
    /* a non-minimal 16-bit length that lies: says 300, carries 2 */
    out = ws_encode_announced(&f, "ab", 2, 16, 300, &len);
    static const unsigned char lie[] = {0x82, 126, 0x01, 0x2c, 'a', 'b'};
    assert_int_equal(len, sizeof lie);
    assert_memory_equal(out, lie, sizeof lie);
    free(out);
    /* the shortest form for the announced length; a length too big for its form */
    out = ws_encode_announced(&f, "", 0, 0, 70000, &len);
    assert_int_equal(out[1], 127);
    free(out);
    assert_null(ws_encode_announced(&f, "", 0, 7, 126, &len));
    assert_null(ws_encode_announced(&f, "", 0, 16, 65536, &len));
    /* ws_encode is the honest case */
    out = ws_encode(&f, "ab", 2, 64, &len);
    assert_int_equal(len, 12);
    assert_int_equal(out[9], 2);
    free(out);
}

static char *expand(const char *text, const struct tmpl_ctx *ctx)
{
    struct diag_list d;
    diag_init(&d);
    struct tmpl *t =
        tmpl_compile(text, strlen(text), (struct src_loc){.file = "t", .line = 1, .col = 1}, &d);
    assert_non_null(t);
    char *out = tmpl_expand(t, ctx, NULL);
    tmpl_free(t);
    diag_free(&d);
    return out;
}

static void test_origin_forms(void **state)
{
    (void)state;
    struct tmpl_ctx ctx = {.origin_main = "http://127.0.0.1:8080",
                           .origin_cross = "http://127.0.0.1:9090",
                           .origin_alt = "http://localhost:8080",
                           .target = "/p?q=1",
                           .full_target = "/s/abc/p?q=1"};
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"{{port.main}}/{{port.cross}}/{{port.alt}}", "8080/9090/8080"},
        {"{{origin.main.upper}}", "HTTP://127.0.0.1:8080"},
        {"{{origin.alt.upper}}", "HTTP://LOCALHOST:8080"},
        {"{{origin.cross.https}}", "https://127.0.0.1:9090"},
        {"{{origin.main.userinfo}}/x", "http://user:pass@127.0.0.1:8080/x"},
        {"{{request.target}} {{request.full_target}}", "/p?q=1 /s/abc/p?q=1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = expand(cases[i].in, &ctx);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
    struct tmpl_ctx empty = {0};
    char *got = expand("[{{origin.main.upper}}{{port.main}}]", &empty);
    assert_string_equal(got, "[]");
    free(got);
    struct diag_list d;
    diag_init(&d);
    assert_null(tmpl_compile("{{origin.main.ftp}}", 19,
                             (struct src_loc){.file = "t", .line = 3, .col = 5}, &d));
    assert_int_equal(d.n, 1);
    diag_free(&d);
}

static const char *PREC =
    SCENARIO_HEAD "server:\n"
                  "  routes:\n"
                  "    - name: chunks\n"
                  "      match: {path: /c}\n"
                  "      response:\n"
                  "        chunks: [\"HT\", {pause: 5, hex: '54 50'}, {pause: 7}, {base64: Lw==}]\n"
                  "        end: rst\n"
                  "    - name: plain-end\n"
                  "      match: {path: /e}\n"
                  "      response: {body: hi, end: hang}\n"
                  "    - name: body\n"
                  "      match: {path: /b, body: {json: {a: [1, {b: x}]}}, kind: actual}\n"
                  "      response: {body: j}\n"
                  "    - name: target\n"
                  "      match: {target: '/t?x=1', kind: preflight}\n"
                  "      response: {body: t}\n";

static void test_chunks_and_end_in_plans(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PREC);
    struct tmpl_ctx ctx = {0};
    struct plan p = {0};
    plan_base(&s->routes[0].responses[0], &ctx, &p);
    plan_content(&s->routes[0].responses[0], &ctx, &p);
    assert_true(p.manual && p.raw && p.paced);
    assert_int_equal(p.n_pieces, 4);
    assert_int_equal(p.body_len, 5);
    assert_memory_equal(p.body, "HTTP/", 5);
    assert_int_equal(p.pieces[1].after_ms, 5);
    assert_int_equal(p.pieces[2].len, 0);
    assert_int_equal(p.pieces[2].after_ms, 7);
    assert_int_equal(p.fault, FAULT_RESET);
    assert_true(p.fault_has_after && p.fault_after >= p.body_len);
    plan_free(&p);
    memset(&p, 0, sizeof p);
    plan_base(&s->routes[1].responses[0], &ctx, &p);
    plan_content(&s->routes[1].responses[0], &ctx, &p);
    assert_true(p.manual && !p.raw);
    assert_int_equal(p.fault, FAULT_HANG);
    plan_free(&p);
    scenario_free(s);
}

static void test_match_body_target_kind(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PREC);
    struct request r;
    request_init(&r, "POST", "/s/i/b");
    const char *ok = "{\"a\": [1.0, {\"b\": \"x\", \"c\": 2}], \"z\": null}";
    request_append_body(&r, ok, strlen(ok), 1 << 20);
    assert_int_equal(route_find(s, &r, "/b"), 2);
    request_free(&r);
    request_init(&r, "POST", "/s/i/b");
    request_append_body(&r, "{\"a\": [1]}", 10, 1 << 20);
    assert_int_equal(route_find(s, &r, "/b"), -1);
    request_free(&r);
    /* target: the path and the query, and kind: preflight */
    request_init(&r, "OPTIONS", "/s/i/t?x=1");
    assert_int_equal(route_find(s, &r, "/t"), -1);
    request_add_header(&r, "Origin", "http://o.example");
    request_add_header(&r, "Access-Control-Request-Method", "PUT");
    assert_int_equal(route_find(s, &r, "/t"), 3);
    request_free(&r);
    request_init(&r, "OPTIONS", "/s/i/t?x=2");
    request_add_header(&r, "Origin", "http://o.example");
    request_add_header(&r, "Access-Control-Request-Method", "PUT");
    assert_int_equal(route_find(s, &r, "/t"), -1);
    request_free(&r);
    scenario_free(s);
    /* the subset rule itself */
    json_t *want = json_loads("{\"a\": {\"b\": [1, 2]}}", 0, NULL);
    json_t *have = json_loads("{\"a\": {\"b\": [1, 2.0], \"c\": 3}}", 0, NULL);
    json_t *shorter = json_loads("{\"a\": {\"b\": [1]}}", 0, NULL);
    assert_true(route_json_subset(want, have));
    assert_false(route_json_subset(want, shorter));
    assert_false(route_json_subset(have, want));
    json_decref(want);
    json_decref(have);
    json_decref(shorter);
}

static void test_handshake_variants(void **state)
{
    (void)state;
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    struct ws_handshake_spec h = {.status = 101, .upgrade_header = true};
    struct ws_hs_response r;
    size_t len;
    h.accept = WS_ACCEPT_CASE_FLIPPED;
    ws_handshake_response(&h, key, NULL, NULL, &r);
    assert_false(r.session);
    char *raw = ws_handshake_raw(&r, &len);
    assert_non_null(strstr(raw, "Sec-WebSocket-Accept: S3PplmbItXAq9KygZZHzrBk+XoO=\r\n"));
    free(raw);
    ws_hs_response_free(&r);
    h.accept = WS_ACCEPT_PADDED;
    ws_handshake_response(&h, key, NULL, NULL, &r);
    assert_true(r.session && !r.conforming);
    raw = ws_handshake_raw(&r, &len);
    assert_non_null(strstr(raw, "Sec-WebSocket-Accept:  \t s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \t\r\n"));
    free(raw);
    ws_hs_response_free(&r);
    h.accept = WS_ACCEPT_DUPLICATE;
    h.connection = "keep-alive, Upgrade";
    ws_handshake_response(&h, key, NULL, NULL, &r);
    assert_true(r.session && !r.conforming);
    raw = ws_handshake_raw(&r, &len);
    const char *first = strstr(raw, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n");
    assert_non_null(first);
    assert_non_null(strstr(first + 1, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(raw, "Connection: keep-alive, Upgrade\r\n"));
    assert_null(strstr(raw, "Connection: Upgrade\r\n"));
    free(raw);
    ws_hs_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_announced_lengths),
        cmocka_unit_test(test_origin_forms),
        cmocka_unit_test(test_chunks_and_end_in_plans),
        cmocka_unit_test(test_match_body_target_kind),
        cmocka_unit_test(test_handshake_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
