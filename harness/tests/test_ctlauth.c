/* ctlauth: the Host, Origin and token checks of the control API (DNS rebinding, foreign
 * pages, missing or wrong tokens), the tokens generated and accepted. */
#include "ctlauth.h"
#include "test_util.h"

static const struct ctlauth AUTH = {.token = "0123456789abcdef0123456789abcdef",
                                    .public_host = "127.0.0.1",
                                    .bind = "127.0.0.1",
                                    .port = 4000};
#define TOKEN "0123456789abcdef0123456789abcdef"

static enum ctlauth_verdict check(const struct ctlauth *a, const char *host, const char *origin,
                                  const char *token, const char *authz, const char *local)
{
    struct ctlauth_request r = {
        .host = host, .origin = origin, .token = token, .authorization = authz, .local_ip = local};
    return ctlauth_check(a, &r);
}

static void test_host(void **state)
{
    (void)state;
    assert_int_equal(check(&AUTH, "127.0.0.1:4000", NULL, TOKEN, NULL, "127.0.0.1"), CTLAUTH_OK);
    assert_int_equal(check(&AUTH, "localhost:4000", NULL, TOKEN, NULL, "127.0.0.1"), CTLAUTH_OK);
    assert_int_equal(check(&AUTH, "LocalHost:4000", NULL, TOKEN, NULL, "127.0.0.1"), CTLAUTH_OK);
    /* DNS rebinding: the attacker's name, on the right address and port */
    assert_int_equal(check(&AUTH, "evil.example:4000", NULL, TOKEN, NULL, "127.0.0.1"),
                     CTLAUTH_BAD_HOST);
    assert_int_equal(check(&AUTH, "127.0.0.1:4001", NULL, TOKEN, NULL, "127.0.0.1"),
                     CTLAUTH_BAD_HOST);
    assert_int_equal(check(&AUTH, "127.0.0.1", NULL, TOKEN, NULL, "127.0.0.1"), CTLAUTH_BAD_HOST);
    assert_int_equal(check(&AUTH, "127.0.0.1:", NULL, TOKEN, NULL, "127.0.0.1"), CTLAUTH_BAD_HOST);
    assert_int_equal(check(&AUTH, "127.0.0.1:4000x", NULL, TOKEN, NULL, "127.0.0.1"),
                     CTLAUTH_BAD_HOST);
    assert_int_equal(check(&AUTH, "127.0.0.1:4000, evil:4000", NULL, TOKEN, NULL, "127.0.0.1"),
                     CTLAUTH_BAD_HOST);
    assert_int_equal(check(&AUTH, NULL, NULL, TOKEN, NULL, "127.0.0.1"), CTLAUTH_BAD_HOST);
    /* localhost only where the connection reached a loopback address */
    struct ctlauth pub = AUTH;
    pub.public_host = "harness.lan";
    pub.bind = "0.0.0.0";
    assert_int_equal(check(&pub, "harness.lan:4000", NULL, TOKEN, NULL, "10.0.0.5"), CTLAUTH_OK);
    assert_int_equal(check(&pub, "10.0.0.5:4000", NULL, TOKEN, NULL, "10.0.0.5"), CTLAUTH_OK);
    assert_int_equal(check(&pub, "localhost:4000", NULL, TOKEN, NULL, "10.0.0.5"),
                     CTLAUTH_BAD_HOST);
    assert_int_equal(check(&pub, "0.0.0.0:4000", NULL, TOKEN, NULL, "10.0.0.5"), CTLAUTH_BAD_HOST);
}

static void test_origin(void **state)
{
    (void)state;
    const char *h = "127.0.0.1:4000", *ip = "127.0.0.1";
    assert_int_equal(check(&AUTH, h, "http://evil.example", TOKEN, NULL, ip),
                     CTLAUTH_FOREIGN_ORIGIN);
    /* a scenario page: same host, another port */
    assert_int_equal(check(&AUTH, h, "http://127.0.0.1:4001", TOKEN, NULL, ip),
                     CTLAUTH_FOREIGN_ORIGIN);
    assert_int_equal(check(&AUTH, h, "null", TOKEN, NULL, ip), CTLAUTH_FOREIGN_ORIGIN);
    assert_int_equal(check(&AUTH, h, "https://127.0.0.1:4000", TOKEN, NULL, ip),
                     CTLAUTH_FOREIGN_ORIGIN);
    assert_int_equal(check(&AUTH, h, "http://127.0.0.1:4000", TOKEN, NULL, ip), CTLAUTH_OK);
    /* refused before the token is looked at, even for the health probe */
    struct ctlauth_request r = {
        .host = h, .origin = "http://evil.example", .local_ip = ip, .token_exempt = true};
    assert_int_equal(ctlauth_check(&AUTH, &r), CTLAUTH_FOREIGN_ORIGIN);
    assert_int_equal(ctlauth_status(CTLAUTH_FOREIGN_ORIGIN), 403);
}

static void test_token(void **state)
{
    (void)state;
    const char *h = "127.0.0.1:4000", *ip = "127.0.0.1";
    assert_int_equal(check(&AUTH, h, NULL, NULL, NULL, ip), CTLAUTH_NO_TOKEN);
    assert_int_equal(check(&AUTH, h, NULL, "0123456789abcdef0123456789abcdeF", NULL, ip),
                     CTLAUTH_BAD_TOKEN);
    assert_int_equal(check(&AUTH, h, NULL, "0123456789abcdef", NULL, ip), CTLAUTH_BAD_TOKEN);
    assert_int_equal(check(&AUTH, h, NULL, TOKEN "0", NULL, ip), CTLAUTH_BAD_TOKEN);
    assert_int_equal(check(&AUTH, h, NULL, "", NULL, ip), CTLAUTH_BAD_TOKEN);
    assert_int_equal(check(&AUTH, h, NULL, NULL, "Bearer " TOKEN, ip), CTLAUTH_OK);
    assert_int_equal(check(&AUTH, h, NULL, NULL, "bearer " TOKEN, ip), CTLAUTH_OK);
    assert_int_equal(check(&AUTH, h, NULL, NULL, "Basic " TOKEN, ip), CTLAUTH_NO_TOKEN);
    struct ctlauth_request r = {.host = h, .local_ip = ip, .token_exempt = true};
    assert_int_equal(ctlauth_check(&AUTH, &r), CTLAUTH_OK);
    assert_int_equal(ctlauth_status(CTLAUTH_NO_TOKEN), 401);
}

static void test_tokens_made_and_given(void **state)
{
    (void)state;
    char a[CTLAUTH_TOKEN_MAX + 1], b[CTLAUTH_TOKEN_MAX + 1], why[120];
    assert_true(ctlauth_new_token(a));
    assert_true(ctlauth_new_token(b));
    assert_int_equal(strlen(a), CTLAUTH_TOKEN_HEX);
    assert_int_equal(strspn(a, "0123456789abcdef"), CTLAUTH_TOKEN_HEX);
    assert_string_not_equal(a, b);
    assert_true(ctlauth_token_ok(a, why, sizeof why));
    assert_false(ctlauth_token_ok("short", why, sizeof why));
    assert_false(ctlauth_token_ok("sixteen chars ok", why, sizeof why)); /* spaces */
    assert_true(ctlauth_token_ok("sixteen-chars-ok", why, sizeof why));
    assert_true(ctlauth_is_loopback("127.0.0.1") && ctlauth_is_loopback("127.1.2.3"));
    assert_false(ctlauth_is_loopback("0.0.0.0") || ctlauth_is_loopback("10.0.0.1") ||
                 ctlauth_is_loopback("localhost") || ctlauth_is_loopback(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_origin),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_tokens_made_and_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
