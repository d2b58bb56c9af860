/* The scenario loader: values of every key family land in the structs, YAML typing, and
 * errors with their exact positions (all of them, not only the first). */
#include <stdlib.h>
#include "test_util.h"
#include "keys.h"
#include "yamldoc.h"

static size_t load_errors(const char *yaml, struct diag_list *d)
{
    diag_init(d);
    struct scenario *s = scenario_load_text(yaml, strlen(yaml), "t.yaml", ".", d);
    assert_null(s);
    return d->n;
}

static void test_core_response(void **state)
{
    (void)state;
    struct scenario *s = load_ok(SCENARIO_HEAD "server:\n  routes:\n"
                                               "    - name: r\n"
                                               "      match: {path: /x}\n"
                                               "      responses:\n"
                                               "        - status: 201\n"
                                               "          reason: Made\n"
                                               "          headers: [{A: '1'}, {A: '2'}]\n"
                                               "          body: 'x {{request.query.q}}'\n"
                                               "          delay: 1.5s\n"
                                               "          body_delay: '200ms'\n"
                                               "          trickle: {bytes: 3, every: 100}\n"
                                               "          transfer: chunked\n"
                                               "          fault: {action: reset, after_bytes: 7}\n"
                                               "        - body_base64: AAEC\n"
                                               "      after_last: cycle\n");
    assert_int_equal(s->n_routes, 1);
    const struct route *rt = &s->routes[0];
    assert_string_equal(rt->name, "r");
    assert_int_equal(rt->n_responses, 2);
    assert_int_equal(rt->after_last, AFTER_CYCLE);
    const struct response *r = &rt->responses[0];
    assert_int_equal(r->status, 201);
    assert_string_equal(r->reason, "Made");
    assert_int_equal(r->headers.n, 2);
    assert_string_equal(r->headers.items[1].name, "A");
    assert_int_equal(r->delay_ms, 1500);
    assert_int_equal(r->body_delay_ms, 200);
    assert_int_equal(r->trickle_bytes, 3);
    assert_int_equal(r->trickle_every_ms, 100);
    assert_int_equal(r->transfer, TRANSFER_CHUNKED);
    assert_int_equal(r->fault, FAULT_RESET);
    assert_true(r->fault_has_after);
    assert_int_equal(r->fault_after_bytes, 7);
    assert_int_equal(r->body_kind, BODY_TEXT);
    assert_false(tmpl_is_constant(r->body_tmpl));
    const struct response *r2 = &rt->responses[1];
    assert_int_equal(r2->body_kind, BODY_BYTES);
    assert_int_equal(r2->body.len, 3);
    assert_memory_equal(r2->body.data, "\x00\x01\x02", 3);
    scenario_free(s);
}

static void test_behaviour_keys(void **state)
{
    (void)state;
    struct scenario *s = load_ok(
        SCENARIO_HEAD
        "server:\n"
        "  channels:\n    news: {events: [{after: 100, data: hi}, {data: {a: 1}}]}\n"
        "  routes:\n"
        "    - match: {path: /c}\n"
        "      cors: {allow_origin: '*', allow_credentials: 'TRUE', allow_methods: "
        "[PUT, DELETE], max_age: 60, vary_origin: false, preflight: {status: 500}}\n"
        "      response: {preset: gif}\n"
        "    - match: {path: /j}\n"
        "      response: {jsonp: {param: cb, data: {x: [1, true]}}}\n"
        "    - match: {path: /p}\n"
        "      response: {long_poll: {channel: news, hold_timeout: 2s, format: text}}\n"
        "    - match: {path: /s}\n"
        "      response: {stream: [{data: a}, {after: 50, data_base64: Yg==}], then: hang}\n"
        "    - match: {path: /e}\n"
        "      response:\n"
        "        require: {headers: {Last-Event-ID: '3'}}\n"
        "        sse: {line_ending: cr, bom: true, data_space: false, "
        "final_blank_line: false, then: reset, events: [{id: \"a\\0b\", data: x}, "
        "{data_size: 5}, {lines: ['data: y', '']}, {raw_base64: /w==}]}\n"
        "    - match: {path: /w}\n"
        "      response:\n"
        "        websocket:\n"
        "          handshake: {subprotocol: chat, accept: wrong}\n"
        "          script: [{send: hi}, {send: {binary_base64: AAE=, fragments: 2}}, "
        "{ping: p}, {wait: 10}, {receive: 1s}, {echo: {count: 2}}, {frame: "
        "{opcode: 9, payload: x, rsv1: true, length_form: 64}}, {close: {code: "
        "1005, reason: bye}}, {drop: true}]\n");
    assert_int_equal(s->n_channels, 1);
    assert_int_equal(s->channels[0].n_events, 2);
    assert_int_equal(s->channels[0].events[0].after_ms, 100);
    assert_string_equal((char *)s->channels[0].events[1].data.data, "{\"a\":1}");
    const struct cors_policy *c = s->routes[0].cors;
    assert_int_equal(c->allow_origin, ACAO_STAR);
    assert_string_equal(c->allow_credentials, "TRUE");
    assert_string_equal(c->allow_methods, "PUT, DELETE");
    assert_int_equal(c->max_age, 60);
    assert_false(c->vary_origin);
    assert_int_equal(c->preflight, PREFLIGHT_SCRIPTED);
    assert_int_equal(c->preflight_response->status, 500);
    assert_int_equal(s->routes[0].responses[0].body.len, 43);
    assert_string_equal(s->routes[0].responses[0].preset_type, "image/gif");
    const struct response *j = &s->routes[1].responses[0];
    assert_int_equal(j->kind, RESP_JSONP);
    assert_string_equal(j->jsonp->param, "cb");
    assert_string_equal(j->jsonp->data_json, "{\"x\":[1,true]}");
    const struct response *p = &s->routes[2].responses[0];
    assert_int_equal(p->kind, RESP_LONG_POLL);
    assert_int_equal(p->long_poll->hold_timeout_ms, 2000);
    assert_int_equal(p->long_poll->format, LP_TEXT);
    const struct response *st = &s->routes[3].responses[0];
    assert_int_equal(st->kind, RESP_STREAM);
    assert_int_equal(st->n_stream, 2);
    assert_int_equal(st->stream[1].after_ms, 50);
    assert_int_equal(st->stream_then, END_HANG);
    const struct response *e = &s->routes[4].responses[0];
    assert_int_equal(e->kind, RESP_SSE);
    assert_int_equal(e->n_require_headers, 1);
    assert_int_equal(e->sse->line_ending, SSE_CR);
    assert_true(e->sse->bom);
    assert_false(e->sse->data_space);
    assert_false(e->sse->final_blank_line);
    assert_int_equal(e->sse->then, END_RESET);
    assert_int_equal(e->sse->n_items, 4);
    assert_int_equal(e->sse->items[0].id.len, 3); /* the NUL survives */
    assert_memory_equal(e->sse->items[0].id.data, "a\0b", 3);
    assert_int_equal(e->sse->items[1].data.len, 5);
    assert_int_equal(e->sse->items[2].kind, SSE_LINES);
    assert_int_equal(e->sse->items[3].kind, SSE_RAW);
    const struct ws_spec *w = s->routes[5].responses[0].websocket;
    assert_int_equal(w->handshake.subprotocol, WS_SUB_NAMED);
    assert_int_equal(w->handshake.accept, WS_ACCEPT_WRONG);
    assert_int_equal(w->n_steps, 9);
    assert_int_equal(w->steps[1].kind, WS_SEND);
    assert_true(w->steps[1].binary);
    assert_int_equal(w->steps[1].fragments, 2);
    assert_int_equal(w->steps[4].ms, 1000);
    assert_int_equal(w->steps[5].count, 2);
    assert_int_equal(w->steps[6].opcode, 9);
    assert_true(w->steps[6].rsv1);
    assert_int_equal(w->steps[6].length_form, 64);
    assert_int_equal(w->steps[7].code, 1005);
    assert_int_equal(w->steps[8].kind, WS_DROP);
    scenario_free(s);
}

static void test_all_errors_with_positions(void **state)
{
    (void)state;
    struct diag_list d;
    size_t n = load_errors("id: A b\ntitle: t\nspec: nope\nclient: {xhr: {}}\nextra: 1\n"
                           "server: {routes: [{match: {path: /x}, response: {delay: -1, "
                           "fault: boom}}]}\n",
                           &d);
    assert_int_equal(n, 6);
    const char *want[6][3] = {
        {"1", "5", "id 'A b'"},
        {"3", "7", "spec: expected the URL"},
        {"5", "1", "unknown key 'extra'"},
        {"6", "57", "delay: a duration cannot be negative"},
        {"6", "68", "unknown fault 'boom'"},
        {"4", "15", "missing 'url'"},
    };
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (int w = 0; w < 6 && !found; w++)
            found = d.items[i].line == atoi(want[w][0]) && d.items[i].col == atoi(want[w][1]) &&
                    strstr(d.items[i].message, want[w][2]);
        if (!found)
            fail_msg("unexpected %d:%d: %s", d.items[i].line, d.items[i].col, d.items[i].message);
    }
    diag_free(&d);
}

static void test_duplicate_keys_and_typing(void **state)
{
    (void)state;
    struct diag_list d;
    diag_init(&d);
    const char *y = "a: 1\nb: {x: yes, y: 'true', z: true, n: ~, f: 1.5, h: 0x10}\na: 2\n";
    struct arena tree;
    arena_init(&tree);
    struct ynode *root = ydoc_parse(y, strlen(y), "d.yaml", &tree, &d);
    assert_non_null(root);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.items[0].line, 3);
    assert_int_equal(d.items[0].col, 1);
    assert_non_null(strstr(d.items[0].message, "duplicate key 'a' (first at line 1, column 1)"));
    json_t *j = ynode_to_json(root);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"a\":1,\"b\":{\"f\":1.5,\"h\":16,\"n\":null,\"x\":\"yes\","
                              "\"y\":\"true\",\"z\":true}}");
    free(text);
    json_decref(j);
    arena_free(&tree);
    diag_free(&d);
}

static void test_templates(void **state)
{
    (void)state;
    struct diag_list d;
    diag_init(&d);
    const char *t = "{{origin.cross}}|{{ base }}|{{request.count}}|{{{{lit}}";
    struct tmpl *tp = tmpl_compile(t, strlen(t), (struct src_loc){"f", 1, 1}, &d);
    assert_non_null(tp);
    struct tmpl_ctx ctx = {.origins = {[ORIGIN_CROSS] = "http://c"}, .base = "/s/i", .count = 7};
    size_t len;
    char *out = tmpl_expand(tp, &ctx, &len);
    assert_string_equal(out, "http://c|/s/i|7|{{lit}}");
    assert_int_equal(len, strlen(out));
    free(out);
    tmpl_free(tp);
    const char *bad = "ab\ncd {{nope}} {{x";
    assert_null(tmpl_compile(bad, strlen(bad), (struct src_loc){"f", 4, 3}, &d));
    assert_int_equal(d.n, 2); /* every problem, each at its place */
    assert_int_equal(d.items[0].line, 5);
    assert_int_equal(d.items[0].col, 4);
    assert_non_null(strstr(d.items[0].message, "unknown placeholder '{{nope}}'"));
    assert_int_equal(d.items[1].line, 5);
    assert_int_equal(d.items[1].col, 13);
    assert_non_null(strstr(d.items[1].message, "unclosed placeholder"));
    diag_free(&d);
}

static void test_duration_units(void **state)
{
    (void)state;
    struct scenario *s =
        load_ok("id: t.unit\ntitle: unit\nspec: https://example.org/\n"
                "client:\n  http: {url: /, timeout: .5s, deadline: 2min}\n"
                "server:\n  routes:\n    - match: {path: /x}\n"
                "      response: {delay: .5s, body_delay: 2min, stream: [{after: 2m, data: a}, "
                "{after: ' 20 ms ', data: b}, {after: 0.4, data: c}]}\n");
    const struct response *r = &s->routes[0].responses[0];
    assert_int_equal(r->delay_ms, 500);
    assert_int_equal(r->body_delay_ms, 120000);
    assert_int_equal(r->stream[0].after_ms, 120000);
    assert_int_equal(r->stream[1].after_ms, 20);
    assert_int_equal(r->stream[2].after_ms, 0); /* rounded to the millisecond */
    /* the JSON the drivers read: milliseconds */
    json_t *http = json_object_get(s->client, "http");
    assert_int_equal(json_integer_value(json_object_get(http, "timeout")), 500);
    assert_int_equal(json_integer_value(json_object_get(http, "deadline")), 120000);
    json_t *doc_http = json_object_get(json_object_get(s->doc, "client"), "http");
    assert_int_equal(json_integer_value(json_object_get(doc_http, "timeout")), 500);
    scenario_free(s);
}

static void test_regex_dialect_in_routes(void **state)
{
    (void)state;
    struct scenario *s = load_ok(SCENARIO_HEAD "server:\n  routes:\n"
                                               "    - match:\n"
                                               "        path_regex: '(?i)^/items/\\d+$'\n"
                                               "        headers: {Accept: {regex: '^(?!text/)'}}\n"
                                               "      response: {body: x}\n");
    const struct route *rt = &s->routes[0];
    assert_true(rt->has_path_re);
    assert_true(rx_search(&rt->path_re, "/ITEMS/42", 9, NULL, NULL));
    assert_false(rx_search(&rt->path_re, "/items/x", 8, NULL, NULL));
    assert_int_equal(rt->n_headers, 1);
    assert_true(rx_search(&rt->headers[0].re, "image/png", 9, NULL, NULL));
    assert_false(rx_search(&rt->headers[0].re, "text/html", 9, NULL, NULL));
    scenario_free(s);
}

static void test_keys_from_tables(void **state)
{
    (void)state;
    struct diag_list d;
    size_t n = load_errors(SCENARIO_HEAD "expect:\n  client:\n    event_mode: contains\n"
                                         "    events: [{type: error, nam: x}]\n"
                                         "  server:\n    requests: [{target: /x, tagret: /y}]\n",
                           &d);
    assert_int_equal(n, 3);
    assert_int_equal(d.items[0].line, 8);
    assert_int_equal(d.items[0].col, 5);
    assert_non_null(strstr(d.items[0].message, "unknown key 'event_mode' in expect.client.http"));
    assert_non_null(strstr(d.items[1].message, "unknown key 'nam' in an expected event"));
    assert_non_null(strstr(d.items[2].message, "unknown key 'tagret' in an expected request"));
    diag_free(&d);
    /* every table is reachable from the export, with its keys */
    json_t *keys = keys_to_json();
    json_t *tables = json_object_get(keys, "tables");
    assert_non_null(json_object_get(tables, "response"));
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(json_object_get(tables, "route"), "keys"), "response"),
            "table")),
        "response");
    json_decref(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_response),
        cmocka_unit_test(test_behaviour_keys),
        cmocka_unit_test(test_all_errors_with_positions),
        cmocka_unit_test(test_duplicate_keys_and_typing),
        cmocka_unit_test(test_templates),
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_regex_dialect_in_routes),
        cmocka_unit_test(test_keys_from_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
