/* The journal ring: sequence numbers, bounded size with a visible dropped count, since=,
 * counting by route, clearing. */
#include "journal.h"
#include "test_util.h"

static void test_ring(void **state)
{
    (void)state;
    struct journal j;
    journal_init(&j, 3);
    for (int i = 0; i < 5; i++) {
        json_t *e = json_pack("{s:s}", "route", i % 2 ? "odd" : "even");
        assert_int_equal(journal_append(&j, e), (uint64_t)i + 1);
        json_decref(e);
    }
    json_t *d = journal_dump(&j, 0);
    assert_int_equal(json_integer_value(json_object_get(d, "total")), 5);
    assert_int_equal(json_integer_value(json_object_get(d, "dropped")), 2);
    json_t *entries = json_object_get(d, "entries");
    assert_int_equal(json_array_size(entries), 3);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(entries, 0), "seq")), 3);
    json_decref(d);
    d = journal_dump(&j, 4);
    assert_int_equal(json_array_size(json_object_get(d, "entries")), 1);
    json_decref(d);
    assert_int_equal(journal_count(&j, "even"), 2);
    assert_int_equal(journal_count(&j, "odd"), 1);
    assert_int_equal(journal_count(&j, NULL), 3);
    journal_clear(&j);
    assert_int_equal(journal_count(&j, NULL), 0);
    json_t *e = json_object();
    assert_int_equal(journal_append(&j, e), 1);
    json_decref(e);
    journal_free(&j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_ring)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
