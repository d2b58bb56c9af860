/* The SSE encoder writes exactly the bytes asked for: field order, line endings (LF, CR,
 * CRLF, mixed), BOM, data without the space, the missing final blank line, raw lines. */
#include <stdlib.h>
#include "sse_encode.h"
#include "test_util.h"

static char *encode(const char *events_yaml, const char *options, size_t *len)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             SCENARIO_HEAD "server:\n  routes:\n    - match: {path: /e}\n      response:\n"
                           "        sse: {%s events: %s}\n",
             options, events_yaml);
    struct scenario *s = load_ok(yaml);
    struct piece *p;
    size_t n = sse_encode(s->routes[0].responses[0].sse, &p);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += p[i].len;
    char *out = calloc(total + 1, 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(out + o, p[i].data, p[i].len);
        o += p[i].len;
    }
    pieces_free(p, n);
    scenario_free(s);
    *len = total;
    return out;
}

static void expect_bytes(const char *events, const char *options, const char *want, size_t want_len)
{
    size_t len;
    char *got = encode(events, options, &len);
    if (len != want_len || memcmp(got, want, len))
        fail_msg("encoded %zu bytes: [%s], wanted [%s]", len, got, want);
    free(got);
}

#define EXPECT(events, options, lit) expect_bytes(events, options, lit, sizeof lit - 1)

static void test_fields_and_order(void **state)
{
    (void)state;
    EXPECT("[{data: \"a\\nb\", id: '7', event: up, retry: 100, comment: c}]", "",
           ":c\nevent: up\nid: 7\nretry: 100\ndata: a\ndata: b\n\n");
    EXPECT("[{data: x}, {data: y, after: 10}]", "", "data: x\n\ndata: y\n\n");
    EXPECT("[{data: ''}]", "", "data: \n\n");
}

static void test_line_endings(void **state)
{
    (void)state;
    EXPECT("[{data: x, id: '1'}]", "line_ending: cr,", "id: 1\rdata: x\r\r");
    EXPECT("[{data: x}]", "line_ending: crlf,", "data: x\r\n\r\n");
    EXPECT("[{data: x, id: '1'}, {data: y}]", "line_ending: mixed,",
           "id: 1\ndata: x\r\r\ndata: y\n\r");
}

static void test_malformed_on_purpose(void **state)
{
    (void)state;
    EXPECT("[{data: x}]", "bom: true, data_space: false,",
           "\xEF\xBB\xBF"
           "data:x\n\n");
    EXPECT("[{data: x}, {data: y}]", "final_blank_line: false,", "data: x\n\ndata: y\n");
    EXPECT("[{data: x, blank_line: false}, {data: y}]", "", "data: x\ndata: y\n\n");
    EXPECT("[{lines: ['data', 'data:z', '']}]", "line_ending: crlf,", "data\r\ndata:z\r\n\r\n");
    EXPECT("[{raw_base64: 'ZGF0YTog/w0K'}]", "", "data: \xff\r\n");
    EXPECT("[{id: \"a\\0b\", data: x}]", "", "id: a\0b\ndata: x\n\n");
    EXPECT("[{retry: soon, data: x}]", "", "retry: soon\ndata: x\n\n");
    EXPECT("[{data_size: 4}]", "", "data: xxxx\n\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_order),
        cmocka_unit_test(test_line_endings),
        cmocka_unit_test(test_malformed_on_purpose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
