/* The journal: records and their JSON, the bounds (count and bytes) with a visible dropped
 * count, since=, counting by route, clearing, finding an entry again.
 *
 * Equivalence: the JSON of a journal read must be the same, key for key and in the same
 * order, as the one the server built per request before the records (a jansson object per
 * request, set field by field as the request went). REF_* below is that old code, kept here
 * as the reference: every story (the life of one request of a kind the catalogue makes) is
 * played on both, and the dumps are compared as text, at every step. */
#include "journal.h"
#include "test_util.h"

#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- the reference (old code) */

static json_t *ref_ms(uint64_t base, uint64_t t)
{
    double ms = t >= base ? (double)(t - base) / 1000.0 : 0.0;
    return json_real((double)(long long)(ms * 1000.0 + 0.5) / 1000.0);
}

/* ex_entry_new() and dispatch() of before */
static json_t *ref_new(const struct journal_request *r, uint64_t base)
{
    json_t *e = json_object();
    json_object_set_new(e, "port", json_integer(r->port));
    json_object_set_new(e, "origin",
                        json_string(r->origin  ? r->origin
                                    : r->cross ? "cross"
                                               : "main"));
    json_object_set_new(e, "tls", json_boolean(r->tls));
    if (r->sni)
        json_object_set_new(e, "sni", json_string(r->sni));
    json_object_set_new(e, "remote", json_string(r->remote));
    json_object_set_new(e, "method", json_string(r->method));
    json_object_set_new(e, "target", json_string(r->target));
    json_object_set_new(e, "path", json_string(r->path));
    json_object_set_new(e, "query", json_string(r->query));
    json_object_set_new(e, "http_version", json_string(r->http_version));
    /* the request head as sent (docs/control-api.md) */
    json_object_set_new(e, "request_line",
                        json_sprintf("%s %s %s", r->method, r->target, r->http_version));
    json_t *list = json_array(), *names = json_array();
    for (size_t i = 0; i < r->n_headers; i++) {
        json_array_append_new(list, json_pack("[s,s]", r->headers[i].name, r->headers[i].value));
        json_array_append_new(names, json_string(r->headers[i].name));
    }
    json_object_set_new(e, "headers", list);
    json_object_set_new(e, "header_names", names);
    json_t *body =
        json_stringn((const char *)(r->body ? r->body : (const unsigned char *)""), r->body_len);
    if (body) {
        json_object_set_new(e, "body", body);
    } else {
        char *out = malloc(BASE64_ENCODE_RAW_LENGTH(r->body_len) + 1);
        base64_encode_raw(out, r->body_len, r->body);
        out[BASE64_ENCODE_RAW_LENGTH(r->body_len)] = 0;
        json_object_set_new(e, "body_base64", json_string(out));
        free(out);
    }
    json_object_set_new(e, "body_len", json_integer((json_int_t)r->body_len));
    json_object_set_new(e, "arrived", ref_ms(base, r->arrived_us));
    json_object_set_new(e, "phases", json_object());
    json_object_set_new(e, "bytes_sent", json_integer(0));
    json_object_set_new(e, "end", json_null());
    json_object_set_new(e, "kind", json_string(r->preflight ? "preflight" : "actual"));
    if (r->route_name) {
        json_object_set_new(e, "route", json_string(r->route_name));
        if (r->preflight) {
            json_object_set_new(e, "response_index", json_null());
        } else {
            json_object_set_new(e, "response_index",
                                r->response_index >= 0 ? json_integer(r->response_index)
                                                       : json_null());
            json_object_set_new(e, "count", json_integer((json_int_t)r->count));
        }
    } else {
        json_object_set_new(e, "route", json_null());
        json_object_set_new(e, "response_index", json_null());
    }
    if (r->preflight)
        json_object_set_new(e, "cors",
                            json_pack("{s:s?, s:s?, s:s?}", "origin", r->cors_origin,
                                      "request_method", r->cors_method, "request_headers",
                                      r->cors_headers));
    return e;
}

static void ref_phase(json_t *e, const char *name, uint64_t base, uint64_t t)
{
    json_t *phases = json_object_get(e, "phases");
    if (!json_object_get(phases, name))
        json_object_set_new(phases, name, ref_ms(base, t));
}

/* ex_entry_end() of before */
static void ref_end(json_t *e, const char *end, uint64_t base, uint64_t now, uint64_t sent)
{
    json_object_set_new(e, "end", json_string(end));
    json_object_set_new(e, "ended", ref_ms(base, now));
    json_object_set_new(e, "bytes_sent", json_integer((json_int_t)sent));
    if (!strcmp(end, "complete"))
        ref_phase(e, "body_done", base, now);
}

/* ---------------------------------------------------------------- both at once */

struct both {
    struct journal j;
    json_t *ref; /* the old journal's entries */
    uint64_t base;
    uint64_t id; /* the record's */
    json_t *old; /* the old entry */
};

static void both_init(struct both *b)
{
    b->base = 1000000;
    journal_init(&b->j, 100, 0, 4, b->base);
    b->ref = json_array();
}

static void both_free(struct both *b)
{
    journal_free(&b->j);
    json_decref(b->ref);
}

static char *dump_text(json_t *doc)
{
    char *s = json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(15));
    json_decref(doc);
    return s;
}

/* The two journals read the same, now. */
static void same(struct both *b)
{
    json_t *ref = json_pack("{s:I, s:I, s:I, s:O}", "total", (json_int_t)json_array_size(b->ref),
                            "dropped", (json_int_t)0, "limit", (json_int_t)100, "entries", b->ref);
    char *want = dump_text(ref);
    char *got = dump_text(journal_dump(&b->j, 0));
    if (strcmp(want, got))
        fail_msg("journal JSON differs:\n old: %s\n new: %s", want, got);
    free(want);
    free(got);
}

static void append(struct both *b, const struct journal_request *r)
{
    b->old = ref_new(r, b->base);
    json_object_set_new(b->old, "seq", json_integer((json_int_t)json_array_size(b->ref) + 1));
    json_array_append_new(b->ref, b->old);
    b->id = journal_append(&b->j, r);
    same(b);
}

static struct journal_entry *rec(struct both *b)
{
    return journal_find(&b->j, b->id);
}

static void status(struct both *b, int st)
{
    json_object_set_new(b->old, "status", st > 0 ? json_integer(st) : json_null());
    journal_set_status(rec(b), st);
    same(b);
}

static const char *const PHASES[] = {"headers_sent", "body_first_byte", "body_done"};

static void phase(struct both *b, enum journal_phase p, uint64_t t)
{
    ref_phase(b->old, PHASES[p], b->base, t);
    journal_set_phase(rec(b), p, t);
    same(b);
}

static void end(struct both *b, const char *name, uint64_t t, uint64_t sent)
{
    ref_end(b->old, name, b->base, t, sent);
    struct journal_entry *e = rec(b);
    journal_set_end(e, name);
    journal_set_ended(e, t);
    journal_set_bytes_sent(e, sent);
    if (!strcmp(name, "complete"))
        journal_set_phase(e, JOURNAL_BODY_DONE, t);
    same(b);
}

static const char *const EXTRAS[] = {"require", "jsonp", "long_poll", "websocket", "warnings"};

static void extra(struct both *b, enum journal_extra x, json_t *v)
{
    json_object_set_new(b->old, EXTRAS[x], json_deep_copy(v));
    journal_set_extra(rec(b), x, v);
    same(b);
}

static const struct name_value HEADERS[] = {
    {"Host", "127.0.0.1:41234"}, {"User-Agent", "curl/7.88.1"}, {"Accept", "*/*"}, {"X-Dup", "a"},
    {"X-Dup", "b, c"},
};

static struct journal_request get_req(void)
{
    return (struct journal_request){
        .port = 41234,
        .remote = "127.0.0.1:50000",
        .method = "GET",
        .target = "/s/t.unit/hello?x=1&y=%20",
        .path = "/hello",
        .query = "x=1&y=%20",
        .http_version = "HTTP/1.1",
        .headers = HEADERS,
        .n_headers = 5,
        .arrived_us = 1001234,
        .route = 0,
        .route_name = "hello",
        .response_index = 0,
        .has_count = true,
        .count = 1,
    };
}

/* ---------------------------------------------------------------- the stories */

static void test_plain_get(void **state)
{
    (void)state;
    struct both b;
    both_init(&b);
    struct journal_request r = get_req();
    append(&b, &r);
    status(&b, 200);
    phase(&b, JOURNAL_HEADERS_SENT, 1001500);
    phase(&b, JOURNAL_BODY_FIRST_BYTE, 1001600);
    end(&b, "complete", 1001700, 13);
    /* a second request of the route: its count, the next response */
    r.count = 2;
    r.response_index = 1;
    r.arrived_us = 2000000;
    append(&b, &r);
    status(&b, 204);
    phase(&b, JOURNAL_HEADERS_SENT, 2000001);
    end(&b, "complete", 2000002, 0);
    both_free(&b);
}

static void test_bodies(void **state)
{
    (void)state;
    struct both b;
    both_init(&b);
    struct journal_request r = get_req();
    r.method = "POST";
    r.body = (const unsigned char *)"{\"é\": \"\\u0000\"}";
    r.body_len = strlen((const char *)r.body);
    append(&b, &r);
    static const unsigned char bin[] = {0xff, 0x00, 0xfe, 'a', 0x80};
    r.body = bin;
    r.body_len = sizeof bin;
    append(&b, &r);
    static const unsigned char nul[] = {'a', 0, 'b'};
    r.body = nul;
    r.body_len = sizeof nul;
    append(&b, &r);
    r.body = NULL;
    r.body_len = 0;
    r.n_headers = 0;
    r.query = "";
    append(&b, &r);
    both_free(&b);
}

static void test_preflight_and_no_route(void **state)
{
    (void)state;
    struct both b;
    both_init(&b);
    struct journal_request r = get_req();
    r.method = "OPTIONS";
    r.preflight = true;
    r.response_index = -1;
    r.has_count = false;
    r.count = 0;
    r.cross = true;
    r.origin = "cross_tls";
    r.tls = true;
    r.sni = "b.localhost";
    r.cors_origin = "http://127.0.0.1:41234";
    r.cors_method = "PUT";
    append(&b, &r);
    status(&b, 204);
    phase(&b, JOURNAL_HEADERS_SENT, 1002000);
    end(&b, "complete", 1002001, 0);
    r = get_req();
    r.route = -1;
    r.route_name = NULL;
    r.response_index = -1;
    r.has_count = false;
    append(&b, &r);
    status(&b, 404);
    phase(&b, JOURNAL_HEADERS_SENT, 1003000);
    phase(&b, JOURNAL_BODY_FIRST_BYTE, 1003001);
    end(&b, "client_closed", 1003002, 20);
    /* the sequence is over: a route, no response */
    r = get_req();
    r.response_index = -1;
    r.count = 3;
    append(&b, &r);
    status(&b, 404);
    both_free(&b);
}

static void test_extras(void **state)
{
    (void)state;
    struct both b;
    both_init(&b);
    struct journal_request r = get_req();
    /* require and jsonp, then warnings before the status (queue_plan's order) */
    append(&b, &r);
    extra(&b, JOURNAL_REQUIRE, json_pack("{s:b, s:[s]}", "met", 0, "failed", "X-Token"));
    extra(&b, JOURNAL_JSONP, json_pack("{s:s, s:b}", "param", "callback", "callback_valid", 1));
    extra(&b, JOURNAL_WARNINGS, json_pack("[s]", "libmicrohttpd refused the header X: use raw"));
    status(&b, 200);
    phase(&b, JOURNAL_HEADERS_SENT, 1001300);
    end(&b, "complete", 1001400, 7);
    /* a held long poll: require set twice (each make_plan), then the answer */
    append(&b, &r);
    extra(&b, JOURNAL_REQUIRE, json_pack("{s:b, s:[]}", "met", 1, "failed"));
    extra(&b, JOURNAL_REQUIRE, json_pack("{s:b, s:[]}", "met", 1, "failed"));
    extra(&b, JOURNAL_LONG_POLL,
          json_pack("{s:b, s:I, s:I}", "timed_out", 0, "cursor", (json_int_t)0, "delivered",
                    (json_int_t)2));
    status(&b, 200);
    phase(&b, JOURNAL_HEADERS_SENT, 1005000);
    end(&b, "complete", 1005100, 40);
    both_free(&b);
}

static void test_faults_and_manual(void **state)
{
    (void)state;
    struct both b;
    both_init(&b);
    struct journal_request r = get_req();
    /* a fault before the status line */
    append(&b, &r);
    status(&b, 0);
    end(&b, "fault_reset", 1001500, 0);
    /* written by hand: the status, then headers_sent at the first send */
    append(&b, &r);
    status(&b, 299);
    phase(&b, JOURNAL_HEADERS_SENT, 1001600);
    phase(&b, JOURNAL_BODY_DONE, 1001700);
    end(&b, "complete", 1001800, 120);
    /* a stream cut by a fault after some pieces */
    append(&b, &r);
    status(&b, 200);
    phase(&b, JOURNAL_HEADERS_SENT, 1002000);
    phase(&b, JOURNAL_BODY_FIRST_BYTE, 1002100);
    end(&b, "fault_close", 1003000, 55);
    /* the server stopped during a delay: no status */
    append(&b, &r);
    end(&b, "server_stopped", 1004000, 0);
    both_free(&b);
}

static void test_websocket(void **state)
{
    (void)state;
    struct both b;
    both_init(&b);
    struct journal_request r = get_req();
    append(&b, &r);
    json_t *ws = json_pack("{s:s, s:s, s:s?, s:[], s:n, s:[], s:[], s:n}", "key",
                           "dGhlIHNhbXBsZQ==", "version", "13", "origin", NULL, "offered_protocols",
                           "offered_extensions", "problems", "events", "end");
    extra(&b, JOURNAL_WEBSOCKET, ws);
    /* the record is then changed in place (the upgrade, the session's events) */
    json_t *mine = journal_extra(rec(&b), JOURNAL_WEBSOCKET);
    json_t *old = json_object_get(b.old, "websocket");
    json_t *changes[] = {mine, old};
    for (int i = 0; i < 2; i++) {
        json_object_set_new(changes[i], "accept_sent", json_string("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        json_object_set_new(changes[i], "protocol_sent", json_null());
    }
    same(&b);
    status(&b, 101);
    for (int i = 0; i < 2; i++) {
        json_object_set_new(changes[i], "upgraded", json_true());
        json_array_append_new(json_object_get(changes[i], "events"),
                              json_pack("{s:s, s:s}", "dir", "in", "text", "hi"));
    }
    same(&b);
    /* the session's own end */
    for (int i = 0; i < 2; i++)
        json_object_set_new(changes[i], "end", json_string("closed_by_client"));
    json_object_set_new(b.old, "end", json_string("closed_by_client"));
    journal_set_end(rec(&b), "closed_by_client");
    same(&b);
    /* a refused handshake: the record, then 400 */
    append(&b, &r);
    extra(&b, JOURNAL_WEBSOCKET, json_pack("{s:[s]}", "problems", "no Upgrade"));
    status(&b, 400);
    phase(&b, JOURNAL_HEADERS_SENT, 1002000);
    end(&b, "complete", 1002001, 30);
    both_free(&b);
}

/* ---------------------------------------------------------------- the ring */

static void test_bounds(void **state)
{
    (void)state;
    struct journal j;
    journal_init(&j, 3, 0, 2, 0);
    struct journal_request r = get_req();
    uint64_t ids[5];
    for (int i = 0; i < 5; i++) {
        r.route = i % 2;
        r.route_name = i % 2 ? "odd" : "even";
        ids[i] = journal_append(&j, &r);
        assert_true(ids[i] != 0);
    }
    assert_null(journal_find(&j, ids[0]));
    assert_null(journal_find(&j, ids[1]));
    assert_int_equal(journal_find(&j, ids[2])->seq, 3);
    assert_int_equal(journal_find(&j, ids[4])->seq, 5);
    json_t *d = journal_dump(&j, 0);
    assert_int_equal(json_integer_value(json_object_get(d, "total")), 5);
    assert_int_equal(json_integer_value(json_object_get(d, "dropped")), 2);
    assert_int_equal(json_integer_value(json_object_get(d, "limit")), 3);
    json_t *entries = json_object_get(d, "entries");
    assert_int_equal(json_array_size(entries), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(entries, 0), "seq")), 3);
    json_decref(d);
    d = journal_dump(&j, 4);
    assert_int_equal(json_array_size(json_object_get(d, "entries")), 1);
    json_decref(d);
    d = journal_dump(&j, 1);
    assert_int_equal(json_array_size(json_object_get(d, "entries")), 3);
    json_decref(d);
    d = journal_dump(&j, 99);
    assert_int_equal(json_array_size(json_object_get(d, "entries")), 0);
    json_decref(d);
    assert_int_equal(journal_count(&j, 0), 2);
    assert_int_equal(journal_count(&j, 1), 1);
    assert_int_equal(journal_count(&j, -1), 3);
    assert_int_equal(journal_count(&j, 7), 0);
    /* a clear: seqs restart, old ids find nothing, new ids are new */
    journal_clear(&j, 10);
    assert_int_equal(journal_count(&j, -1), 0);
    assert_int_equal(journal_count(&j, 0), 0);
    assert_null(journal_find(&j, ids[4]));
    uint64_t id = journal_append(&j, &r);
    assert_true(id > ids[4]);
    assert_int_equal(journal_find(&j, id)->seq, 1);
    journal_set_status(journal_find(&j, ids[3]), 200); /* gone: nothing happens */
    journal_free(&j);
}

static void test_bytes_bound(void **state)
{
    (void)state;
    static unsigned char big[10000];
    struct journal j;
    journal_init(&j, 1000, 25000, 1, 0);
    struct journal_request r = get_req();
    r.body = big;
    r.body_len = sizeof big;
    for (int i = 0; i < 10; i++)
        journal_append(&j, &r);
    assert_true(j.bytes <= 25000);
    assert_int_equal(j.n, 2);
    assert_int_equal(j.dropped, 8);
    assert_int_equal(j.total, 10);
    /* one entry over the bound alone is kept */
    r.body_len = 0;
    journal_append(&j, &r);
    static unsigned char huge[40000];
    r.body = huge;
    r.body_len = sizeof huge;
    uint64_t id = journal_append(&j, &r);
    assert_int_equal(j.n, 1);
    assert_non_null(journal_find(&j, id));
    journal_free(&j);
}

/* The ring grows as entries come: nothing is allocated for an empty journal. */
static void test_grows(void **state)
{
    (void)state;
    struct journal j;
    journal_init(&j, 10000, 0, 0, 0);
    assert_null(j.ring);
    struct journal_request r = get_req();
    r.route = -1;
    r.route_name = NULL;
    uint64_t first = journal_append(&j, &r);
    assert_true(j.cap < 100);
    for (int i = 0; i < 99; i++)
        journal_append(&j, &r);
    assert_true(j.cap >= 100 && j.cap < 1000);
    assert_int_equal(journal_find(&j, first)->seq, 1);
    assert_int_equal(journal_find(&j, first + 99)->seq, 100);
    journal_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_get),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_preflight_and_no_route),
        cmocka_unit_test(test_extras),
        cmocka_unit_test(test_faults_and_manual),
        cmocka_unit_test(test_websocket),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_bytes_bound),
        cmocka_unit_test(test_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
