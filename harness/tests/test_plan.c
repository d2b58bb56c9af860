/* Building plans (plan.h): common parts with templates, bodies of every kind, CORS on
 * preflights and actual responses, JSONP (valid, unsafe, throwing), long-poll bodies and
 * timeouts — pure functions of the response, the request and a template context. */
#include "test_util.h"
#include "plan.h"

static const char *PLANS = SCENARIO_HEAD
    "server:\n"
    "  routes:\n"
    "    - name: plain\n"
    "      match: {path: /plain}\n"
    "      cors: {allow_origin: echo, allow_credentials: true, allow_methods: [PUT],\n"
    "             allow_headers: [X-A], expose_headers: [X-T], max_age: 600}\n"
    "      response:\n"
    "        status: 201\n"
    "        headers: {X-Echo: 'm={{request.method}} q={{request.query.a}}'}\n"
    "        body: 'body {{request.header.X-In}}'\n"
    "        trickle: {bytes: 2, every: 10}\n"
    "    - name: jsonp\n"
    "      match: {path: /j}\n"
    "      response: {jsonp: {data: {a: 1}}}\n"
    "    - name: jsonp-throw\n"
    "      match: {path: /jt}\n"
    "      response: {jsonp: {param: cb, throw: boom}}\n"
    "    - name: stream\n"
    "      match: {path: /s}\n"
    "      response: {stream: [{data: 'a{{request.query.a}}'}, {after: 5, data: b}]}\n"
    "    - name: raw\n"
    "      match: {path: /r}\n"
    "      response: {raw: \"HTTP/1.1 200 OK\\r\\n\\r\\n\"}\n"
    "    - name: poll\n"
    "      match: {path: /p}\n"
    "      response: {long_poll: {channel: news}}\n"
    "    - name: poll-text\n"
    "      match: {path: /pt}\n"
    "      response:\n"
    "        long_poll:\n"
    "          channel: news\n"
    "          format: text\n"
    "          on_timeout: {status: 200, body: 'none {{request.query.a}}'}\n"
    "  channels:\n"
    "    news: {events: [{data: first}]}\n";

static const char *hdr(const struct plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_headers; i++)
        if (!strcasecmp(p->headers[i].name, name))
            return p->headers[i].value;
    return NULL;
}

static const char *ctx_header(void *req, const char *name)
{
    return request_header(req, name);
}

static const char *ctx_query(void *req, const char *name)
{
    return request_param(req, name);
}

static struct tmpl_ctx ctx_for(struct request *r)
{
    return (struct tmpl_ctx){.origins = {[ORIGIN_MAIN] = "http://127.0.0.1:1"},
                             .base = "/s/t",
                             .instance = "t",
                             .method = r->method,
                             .path = r->path,
                             .target = r->target,
                             .body = "",
                             .header = ctx_header,
                             .query = ctx_query,
                             .req = r};
}

static const struct response *resp(const struct scenario *s, size_t route)
{
    return &s->routes[route].responses[0];
}

static void test_base_and_plain_body(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PLANS);
    struct request r;
    request_init(&r, "GET", "/plain?a=1");
    request_add_header(&r, "X-In", "in");
    struct tmpl_ctx ctx = ctx_for(&r);
    struct plan p = {0};
    plan_base(resp(s, 0), &ctx, &p);
    plan_content(resp(s, 0), &ctx, &p);
    assert_int_equal(p.status, 201);
    assert_string_equal(hdr(&p, "X-Echo"), "m=GET q=1");
    assert_int_equal(p.body_len, strlen("body in"));
    assert_memory_equal(p.body, "body in", p.body_len);
    assert_int_equal(p.trickle_bytes, 2);
    assert_int_equal(p.trickle_every_ms, 10);
    assert_false(p.manual);
    plan_free(&p);
    assert_null(p.body);
    assert_int_equal(p.n_headers, 0);
    request_free(&r);
    scenario_free(s);
}

static void test_cors(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PLANS);
    const struct cors_policy *c = s->routes[0].cors;
    struct plan p = {0};
    plan_cors_preflight(c, "http://o.example", &p);
    assert_int_equal(p.status, 204);
    assert_string_equal(hdr(&p, "Access-Control-Allow-Origin"), "http://o.example");
    assert_string_equal(hdr(&p, "Access-Control-Allow-Credentials"), "true");
    assert_string_equal(hdr(&p, "Access-Control-Allow-Methods"), "PUT");
    assert_string_equal(hdr(&p, "Access-Control-Allow-Headers"), "X-A");
    assert_string_equal(hdr(&p, "Access-Control-Max-Age"), "600");
    assert_string_equal(hdr(&p, "Vary"), "Origin");
    assert_null(hdr(&p, "Access-Control-Expose-Headers"));
    plan_free(&p);
    plan_cors_actual(c, NULL, &p); /* no Origin: nothing to echo */
    assert_null(hdr(&p, "Access-Control-Allow-Origin"));
    assert_string_equal(hdr(&p, "Access-Control-Expose-Headers"), "X-T");
    assert_null(hdr(&p, "Access-Control-Allow-Methods"));
    plan_free(&p);
    scenario_free(s);
}

static void test_js_identifier_path(void **state)
{
    (void)state;
    assert_true(plan_js_identifier_path("cb"));
    assert_true(plan_js_identifier_path("a.b.$c_1"));
    assert_false(plan_js_identifier_path(""));
    assert_false(plan_js_identifier_path("a..b"));
    assert_false(plan_js_identifier_path("a."));
    assert_false(plan_js_identifier_path("1a"));
    assert_false(plan_js_identifier_path("alert(1)//"));
    char long_name[130];
    memset(long_name, 'a', 129);
    long_name[129] = 0;
    assert_false(plan_js_identifier_path(long_name));
}

static void test_jsonp(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PLANS);
    const char *param;
    struct request r;
    struct plan p = {0};

    request_init(&r, "GET", "/j?callback=my.cb");
    assert_true(plan_jsonp(resp(s, 1)->jsonp, &r, &p, &param));
    assert_string_equal(param, "callback");
    assert_string_equal((char *)p.body, "my.cb({\"a\":1});\n");
    assert_string_equal(hdr(&p, "Content-Type"), "application/javascript");
    plan_free(&p);
    request_free(&r);

    request_init(&r, "GET", "/j?callback=alert(1)");
    assert_false(plan_jsonp(resp(s, 1)->jsonp, &r, &p, &param));
    assert_int_equal(p.status, 400);
    assert_null(strstr((char *)p.body, "alert"));
    plan_free(&p);
    request_free(&r);

    request_init(&r, "GET", "/jt?cb=x");
    assert_true(plan_jsonp(resp(s, 2)->jsonp, &r, &p, &param));
    assert_string_equal(param, "cb");
    assert_string_equal((char *)p.body, "throw new Error(\"boom\");\n");
    plan_free(&p);
    request_free(&r);
    scenario_free(s);
}

static void test_stream_and_raw(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PLANS);
    struct request r;
    request_init(&r, "GET", "/s?a=1");
    struct tmpl_ctx ctx = ctx_for(&r);
    struct plan p = {0};
    plan_base(resp(s, 3), &ctx, &p);
    plan_content(resp(s, 3), &ctx, &p);
    assert_true(p.paced && p.chunked);
    assert_int_equal(p.n_pieces, 2);
    assert_memory_equal(p.pieces[0].data, "a1", 2);
    assert_int_equal(p.pieces[1].after_ms, 5);
    plan_free(&p);
    plan_base(resp(s, 4), &ctx, &p);
    plan_content(resp(s, 4), &ctx, &p);
    assert_true(p.manual && p.raw);
    assert_string_equal((char *)p.body, "HTTP/1.1 200 OK\r\n\r\n");
    plan_free(&p);
    request_free(&r);
    scenario_free(s);
}

static void test_long_poll_bodies(void **state)
{
    (void)state;
    struct scenario *s = load_ok(PLANS);
    struct channel_event_state ev[2] = {{.data = (unsigned char *)"one", .len = 3},
                                        {.data = (unsigned char *)"{\"x\":2}", .len = 7}};
    struct plan p = {0};
    plan_long_poll_events(resp(s, 5)->long_poll, ev, 0, 2, &p);
    assert_string_equal((char *)p.body, "{\"cursor\":2,\"events\":[{\"id\":0,\"data\":\"one\"},"
                                        "{\"id\":1,\"data\":\"{\\\"x\\\":2}\"}]}");
    assert_string_equal(hdr(&p, "Content-Type"), "application/json");
    plan_free(&p);
    plan_long_poll_events(resp(s, 6)->long_poll, ev, 1, 1, &p);
    assert_string_equal((char *)p.body, "{\"x\":2}");
    assert_string_equal(hdr(&p, "X-Harness-Cursor"), "2");
    plan_free(&p);

    struct request r;
    request_init(&r, "GET", "/pt?a=z");
    struct tmpl_ctx ctx = ctx_for(&r);
    plan_header(&p, "X-Old", "dropped");
    plan_long_poll_timeout(resp(s, 5)->long_poll, &ctx, &p);
    assert_int_equal(p.status, 204);
    assert_int_equal(p.n_headers, 0);
    plan_long_poll_timeout(resp(s, 6)->long_poll, &ctx, &p);
    assert_int_equal(p.status, 200);
    assert_string_equal((char *)p.body, "none z");
    plan_free(&p);
    request_free(&r);
    scenario_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_and_plain_body), cmocka_unit_test(test_cors),
        cmocka_unit_test(test_js_identifier_path),  cmocka_unit_test(test_jsonp),
        cmocka_unit_test(test_stream_and_raw),      cmocka_unit_test(test_long_poll_bodies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
