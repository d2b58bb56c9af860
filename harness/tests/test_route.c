/* Route matching (method, path, path_regex, query, headers), preflight routing and the
 * sequence index rules (repeat, cycle, not_found). */
#include "test_util.h"
#include "route.h"

static const char *ROUTES =
    SCENARIO_HEAD "server:\n"
                  "  routes:\n"
                  "    - name: get-a\n"
                  "      match: {method: GET, path: /a}\n"
                  "      response: {body: a}\n"
                  "    - name: items\n"
                  "      match: {method: [PUT, POST], path_regex: '^/items/[0-9]+$'}\n"
                  "      response: {body: i}\n"
                  "    - name: q\n"
                  "      match: {path: /q, query: {k: v, r: {regex: '^x+$'}, z: {absent: true}}}\n"
                  "      response: {body: q}\n"
                  "    - name: h\n"
                  "      match: {path: /h, headers: {X-Key: {present: true}, Accept: text/plain}}\n"
                  "      response: {body: h}\n"
                  "    - name: cors\n"
                  "      match: {method: PUT, path: /c}\n"
                  "      cors: {allow_methods: PUT}\n"
                  "      response: {body: c}\n";

static long find(const struct scenario *s, const char *method, const char *target, const char *h1,
                 const char *v1)
{
    struct request r;
    request_init(&r, method, target);
    if (h1)
        request_add_header(&r, h1, v1);
    long i = route_find(s, &r, r.path);
    request_free(&r);
    return i;
}

static void test_match(void **state)
{
    (void)state;
    struct scenario *s = load_ok(ROUTES);
    assert_int_equal(find(s, "GET", "/a", NULL, NULL), 0);
    assert_int_equal(find(s, "POST", "/a", NULL, NULL), -1);
    assert_int_equal(find(s, "PUT", "/items/42", NULL, NULL), 1);
    assert_int_equal(find(s, "PUT", "/items/x", NULL, NULL), -1);
    assert_int_equal(find(s, "GET", "/q?k=v&r=xxx", NULL, NULL), 2);
    assert_int_equal(find(s, "GET", "/q?r=xxx&k=v", NULL, NULL), 2);
    assert_int_equal(find(s, "GET", "/q?k=v&r=xxy", NULL, NULL), -1);
    assert_int_equal(find(s, "GET", "/q?k=v&r=x&z=1", NULL, NULL), -1);
    assert_int_equal(find(s, "GET", "/q?k=%76&r=x", NULL, NULL), 2); /* percent-decoded */
    assert_int_equal(find(s, "GET", "/h", "x-key", "1"), -1);        /* Accept missing */
    scenario_free(s);
}

static void test_headers_case_and_repeats(void **state)
{
    (void)state;
    struct scenario *s = load_ok(ROUTES);
    struct request r;
    request_init(&r, "GET", "/h");
    request_add_header(&r, "x-KEY", "");
    request_add_header(&r, "Accept", "text/html");
    request_add_header(&r, "accept", "text/plain");
    assert_int_equal(route_find(s, &r, r.path), 3);
    assert_string_equal(request_header(&r, "ACCEPT"), "text/html, text/plain");
    assert_int_equal(request_header_count(&r, "accept"), 2);
    request_free(&r);
    scenario_free(s);
}

static void test_preflight(void **state)
{
    (void)state;
    struct scenario *s = load_ok(ROUTES);
    struct request r;
    request_init(&r, "OPTIONS", "/c");
    assert_false(request_is_preflight(&r));
    request_add_header(&r, "Origin", "http://o");
    request_add_header(&r, "Access-Control-Request-Method", "PUT");
    assert_true(request_is_preflight(&r));
    assert_int_equal(route_find_preflight(s, &r, r.path), 4);
    assert_int_equal(route_find(s, &r, r.path), -1); /* OPTIONS is not a route of its own */
    request_free(&r);
    request_init(&r, "OPTIONS", "/a");
    request_add_header(&r, "Origin", "http://o");
    request_add_header(&r, "Access-Control-Request-Method", "GET");
    assert_int_equal(route_find_preflight(s, &r, r.path), -1); /* no cors policy */
    request_free(&r);
    scenario_free(s);
}

static void test_sequences(void **state)
{
    (void)state;
    struct response rs[3];
    struct route rt = {.responses = rs, .n_responses = 3};
    rt.after_last = AFTER_REPEAT;
    long expect_repeat[] = {0, 1, 2, 2, 2};
    for (int i = 0; i < 5; i++)
        assert_int_equal(route_response_index(&rt, (unsigned long)i + 1), expect_repeat[i]);
    rt.after_last = AFTER_CYCLE;
    long expect_cycle[] = {0, 1, 2, 0, 1, 2, 0};
    for (int i = 0; i < 7; i++)
        assert_int_equal(route_response_index(&rt, (unsigned long)i + 1), expect_cycle[i]);
    rt.after_last = AFTER_NOT_FOUND;
    long expect_nf[] = {0, 1, 2, -1, -1};
    for (int i = 0; i < 5; i++)
        assert_int_equal(route_response_index(&rt, (unsigned long)i + 1), expect_nf[i]);
    assert_int_equal(route_response_index(&rt, 0), -1);
}

static void test_url_decode(void **state)
{
    (void)state;
    char *s = url_decode("a%20b+c%zz%4", 12, true);
    assert_string_equal(s, "a b c%zz%4");
    free(s);
    struct request r;
    request_init(&r, "GET", "/p?x=1&y&x=2&=e#frag");
    assert_string_equal(r.path, "/p");
    assert_string_equal(r.query, "x=1&y&x=2&=e");
    assert_string_equal(request_param(&r, "x"), "1");
    assert_string_equal(request_param(&r, "y"), "");
    assert_null(request_param(&r, "z"));
    request_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match),      cmocka_unit_test(test_headers_case_and_repeats),
        cmocka_unit_test(test_preflight),  cmocka_unit_test(test_sequences),
        cmocka_unit_test(test_url_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
