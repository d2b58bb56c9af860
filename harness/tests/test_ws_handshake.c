/* The opening handshake: the RFC 6455 sample key, the client request checks, subprotocol
 * lists and choice, and the response in each accept / upgrade mode, as header pairs and as
 * raw bytes. */
#include <stdlib.h>
#include "test_util.h"
#include "ws_handshake.h"

#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void test_accept(void **state)
{
    (void)state;
    char accept[29];
    ws_accept_for(SAMPLE_KEY, accept);
    assert_string_equal(accept, SAMPLE_ACCEPT); /* RFC 6455 section 1.3 */
    char wrong[29];
    ws_wrong_accept_for(SAMPLE_KEY, wrong);
    assert_int_equal(strlen(wrong), 28);
    assert_string_not_equal(wrong, SAMPLE_ACCEPT);
    assert_int_equal(wrong[27], '='); /* looks like any accept value */
    for (int i = 0; i < 27; i++)
        assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
                           wrong[i]) != NULL);
    ws_wrong_accept_for("x3JJHMbDL1EzLkh9GBhXDw==", accept);
    ws_accept_for("x3JJHMbDL1EzLkh9GBhXDw==", wrong);
    assert_string_not_equal(wrong, accept);
    assert_string_equal(wrong, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="); /* a second known pair */
}

static void test_key_validity(void **state)
{
    (void)state;
    assert_true(ws_key_valid(SAMPLE_KEY));
    assert_true(ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA=="));
    assert_false(ws_key_valid(NULL));
    assert_false(ws_key_valid(""));
    assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ")); /* no padding */
    assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=="
                              "AA"));                       /* too long */
    assert_false(ws_key_valid("c2hvcnQ="));                 /* 5 bytes */
    assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=x")); /* bad padding */
    assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25j*Q==")); /* not base64 */
    assert_false(ws_key_valid("dGhlIHNhbXBsZSBub25j ZQ=")); /* a space */
    assert_false(ws_key_valid("AAAAAAAAAAAAAAAAAAAAAAAA")); /* 18 bytes */
}

static void test_client_checks(void **state)
{
    (void)state;
    const char *why[8];
    struct ws_client_handshake c = {.method = "GET",
                                    .upgrade = "websocket",
                                    .connection = "Upgrade",
                                    .key = SAMPLE_KEY,
                                    .version = "13"};
    assert_int_equal(ws_handshake_check(&c, why, 8), 0);
    c.upgrade = "WebSocket";
    c.connection = "keep-alive, Upgrade";
    assert_int_equal(ws_handshake_check(&c, why, 8), 0);
    c.connection = "keep-alive,upgrade ";
    assert_int_equal(ws_handshake_check(&c, why, 8), 0);
    c.connection = "Upgraded";
    assert_int_equal(ws_handshake_check(&c, why, 8), 1);
    assert_string_equal(why[0], "no 'Connection: Upgrade'");
    c.connection = "Upgrade";
    c.upgrade = "h2c";
    assert_int_equal(ws_handshake_check(&c, why, 8), 1);
    assert_string_equal(why[0], "no 'Upgrade: websocket'");
    c.upgrade = "websocket";
    c.method = "POST";
    assert_int_equal(ws_handshake_check(&c, why, 8), 1);
    c.method = "GET";
    c.key = "c2hvcnQ=";
    c.version = "8";
    assert_int_equal(ws_handshake_check(&c, why, 8), 2);
    assert_string_equal(why[0], "Sec-WebSocket-Key is not 16 bytes in base64");
    assert_string_equal(why[1], "Sec-WebSocket-Version is not 13");
    struct ws_client_handshake none = {0};
    assert_int_equal(ws_handshake_check(&none, why, 8), 5);
    assert_int_equal(ws_handshake_check(&none, why, 2), 2); /* never more than max */

    /* the same through a request; a key given twice is not one key */
    struct request r;
    request_init(&r, "GET", "/ws");
    assert_int_equal(ws_handshake_problems(&r, why, 8), 4);
    request_add_header(&r, "Upgrade", "websocket");
    request_add_header(&r, "Connection", "keep-alive");
    request_add_header(&r, "Connection", "Upgrade");
    request_add_header(&r, "Sec-WebSocket-Key", SAMPLE_KEY);
    request_add_header(&r, "Sec-WebSocket-Version", "13");
    assert_int_equal(ws_handshake_problems(&r, why, 8), 0);
    request_add_header(&r, "Sec-WebSocket-Key", SAMPLE_KEY);
    assert_int_equal(ws_handshake_problems(&r, why, 8), 1);
    request_free(&r);
}

static void test_protocols(void **state)
{
    (void)state;
    const char *values[] = {"chat, superchat", " ,v2 ,, ", "x\t"};
    char **offered = ws_parse_protocols(values, 3);
    assert_string_equal(offered[0], "chat");
    assert_string_equal(offered[1], "superchat");
    assert_string_equal(offered[2], "v2");
    assert_string_equal(offered[3], "x");
    assert_null(offered[4]);
    struct ws_handshake_spec h = {.subprotocol = WS_SUB_FIRST_OFFERED};
    assert_string_equal(ws_choose_protocol(&h, offered), "chat");
    h.subprotocol = WS_SUB_NONE;
    assert_null(ws_choose_protocol(&h, offered));
    h.subprotocol = WS_SUB_NAMED;
    h.subprotocol_name = "other";
    assert_string_equal(ws_choose_protocol(&h, offered), "other");
    ws_free_list(offered);
    offered = ws_parse_protocols(NULL, 0);
    assert_null(offered[0]);
    h.subprotocol = WS_SUB_FIRST_OFFERED;
    assert_null(ws_choose_protocol(&h, offered));
    ws_free_list(offered);

    struct request r;
    request_init(&r, "GET", "/ws");
    request_add_header(&r, "Sec-WebSocket-Protocol", "chat, superchat");
    request_add_header(&r, "Host", "x");
    request_add_header(&r, "sec-websocket-protocol", "v2");
    offered = ws_offered_protocols(&r);
    assert_string_equal(offered[0], "chat");
    assert_string_equal(offered[1], "superchat");
    assert_string_equal(offered[2], "v2");
    assert_null(offered[3]);
    ws_free_list(offered);
    request_free(&r);
}

static const char *get(const struct ws_hs_response *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

static struct tmpl *constant(const char *text)
{
    struct diag_list d;
    diag_init(&d);
    struct tmpl *t = tmpl_compile(text, strlen(text), (struct src_loc){0}, &d);
    assert_non_null(t);
    diag_free(&d);
    return t;
}

static void test_response(void **state)
{
    (void)state;
    const char *values[] = {"chat, v2"};
    char **offered = ws_parse_protocols(values, 1);
    struct ws_handshake_spec h = {.status = 101,
                                  .subprotocol = WS_SUB_FIRST_OFFERED,
                                  .accept = WS_ACCEPT_CORRECT,
                                  .upgrade_header = true};
    struct ws_hs_response r;
    ws_handshake_response(&h, SAMPLE_KEY, offered, NULL, &r);
    assert_true(r.conforming);
    assert_int_equal(r.status, 101);
    assert_int_equal(r.n_headers, 3);
    assert_string_equal(r.headers[0].name, "Upgrade");
    assert_string_equal(r.headers[0].value, "websocket");
    assert_string_equal(get(&r, "Sec-WebSocket-Accept"), SAMPLE_ACCEPT);
    assert_string_equal(r.accept, SAMPLE_ACCEPT);
    assert_string_equal(get(&r, "Sec-WebSocket-Protocol"), "chat");
    assert_string_equal(r.protocol, "chat");
    assert_null(get(&r, "Connection")); /* libmicrohttpd adds it */
    size_t len;
    char *raw = ws_handshake_raw(&r, &len);
    assert_int_equal(strlen(raw), len);
    assert_string_equal(raw, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Upgrade: websocket\r\n"
                             "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                             "Sec-WebSocket-Protocol: chat\r\n"
                             "Connection: Upgrade\r\n"
                             "\r\n");
    free(raw);
    ws_hs_response_free(&r);

    /* wrong accept, no subprotocol, extensions and extra headers */
    struct header extra[2] = {{"X-Test", constant("yes")}, {"Set-Cookie", constant("a=1")}};
    h.accept = WS_ACCEPT_WRONG;
    h.subprotocol = WS_SUB_NONE;
    h.extensions = "permessage-deflate";
    h.headers = (struct header_list){extra, 2};
    ws_handshake_response(&h, SAMPLE_KEY, offered, NULL, &r);
    assert_false(r.conforming);
    char wrong[29];
    ws_wrong_accept_for(SAMPLE_KEY, wrong);
    assert_string_equal(get(&r, "Sec-WebSocket-Accept"), wrong);
    assert_null(get(&r, "Sec-WebSocket-Protocol"));
    assert_null(r.protocol);
    assert_string_equal(get(&r, "Sec-WebSocket-Extensions"), "permessage-deflate");
    assert_string_equal(get(&r, "X-Test"), "yes");
    assert_string_equal(r.headers[r.n_headers - 1].name, "Set-Cookie");
    ws_hs_response_free(&r);

    /* accept omitted, no Upgrade header, a named subprotocol never offered */
    h = (struct ws_handshake_spec){.status = 101,
                                   .subprotocol = WS_SUB_NAMED,
                                   .subprotocol_name = "notoffered",
                                   .accept = WS_ACCEPT_OMIT,
                                   .upgrade_header = false};
    ws_handshake_response(&h, SAMPLE_KEY, offered, NULL, &r);
    assert_false(r.conforming);
    assert_null(get(&r, "Sec-WebSocket-Accept"));
    assert_string_equal(r.accept, "");
    assert_null(get(&r, "Upgrade"));
    assert_string_equal(get(&r, "Sec-WebSocket-Protocol"), "notoffered");
    raw = ws_handshake_raw(&r, &len);
    assert_string_equal(raw, "HTTP/1.1 101 Switching Protocols\r\n"
                             "Sec-WebSocket-Protocol: notoffered\r\n"
                             "Connection: Upgrade\r\n"
                             "\r\n");
    free(raw);
    ws_hs_response_free(&r);

    /* another Upgrade value */
    h = (struct ws_handshake_spec){
        .status = 101, .accept = WS_ACCEPT_CORRECT, .upgrade_header = true, .upgrade_value = "h2c"};
    ws_handshake_response(&h, SAMPLE_KEY, offered, NULL, &r);
    assert_false(r.conforming);
    assert_string_equal(get(&r, "Upgrade"), "h2c");
    ws_hs_response_free(&r);

    /* not upgraded at all: 403, with the connection closed after it */
    h = (struct ws_handshake_spec){.status = 403,
                                   .subprotocol = WS_SUB_NONE,
                                   .accept = WS_ACCEPT_CORRECT,
                                   .upgrade_header = true};
    ws_handshake_response(&h, SAMPLE_KEY, offered, NULL, &r);
    assert_false(r.conforming);
    raw = ws_handshake_raw(&r, &len);
    assert_string_equal(raw, "HTTP/1.1 403 Forbidden\r\n"
                             "Upgrade: websocket\r\n"
                             "Sec-WebSocket-Accept: " SAMPLE_ACCEPT "\r\n"
                             "Content-Length: 0\r\n"
                             "Connection: close\r\n"
                             "\r\n");
    free(raw);
    ws_hs_response_free(&r);

    /* 200 whose headers give their own Connection and Content-Length */
    struct header own[2] = {{"Connection", constant("keep-alive")},
                            {"Content-Length", constant("0")}};
    h = (struct ws_handshake_spec){
        .status = 200, .subprotocol = WS_SUB_NONE, .accept = WS_ACCEPT_OMIT, .headers = {own, 2}};
    ws_handshake_response(&h, SAMPLE_KEY, offered, NULL, &r);
    raw = ws_handshake_raw(&r, &len);
    assert_string_equal(raw, "HTTP/1.1 200 OK\r\n"
                             "Connection: keep-alive\r\n"
                             "Content-Length: 0\r\n"
                             "\r\n");
    free(raw);
    ws_hs_response_free(&r);
    for (int i = 0; i < 2; i++) {
        tmpl_free(extra[i].value);
        tmpl_free(own[i].value);
    }
    ws_free_list(offered);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept),        cmocka_unit_test(test_key_validity),
        cmocka_unit_test(test_client_checks), cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
