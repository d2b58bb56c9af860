/* strmap: puts, gets and removals against a plain array that knows the answer, through
 * growth and the long probe chains of a small table (removal moves keys back, so every key
 * stays reachable), with keys that contain NULs. */
#include "strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include "test_util.h"

#define N 600

static void test_against_reference(void **state)
{
    (void)state;
    static char keys[N][16];
    static size_t lens[N];
    static bool in[N];
    for (size_t i = 0; i < N; i++) {
        lens[i] = (size_t)snprintf(keys[i], sizeof keys[i], "k%zu", i) + 1; /* with its NUL */
        keys[i][lens[i] - 1] = 0;
        if (i % 7 == 0)
            keys[i][lens[i]++] = 'x'; /* "kN\0x": differs from "kN\0" after the NUL */
    }
    struct strmap m = {0};
    assert_null(strmap_get(&m, "k1", 3));
    assert_null(strmap_del(&m, "k1", 3));
    srand(7);
    for (int round = 0; round < 20000; round++) {
        size_t i = (size_t)rand() % N;
        if (rand() % 3) {
            void *was = strmap_put(&m, keys[i], lens[i], &in[i]);
            assert_ptr_equal(was, in[i] ? &in[i] : NULL);
            in[i] = true;
        } else {
            assert_ptr_equal(strmap_del(&m, keys[i], lens[i]), in[i] ? &in[i] : NULL);
            in[i] = false;
        }
        if (round % 500 == 0) {
            size_t count = 0;
            for (size_t k = 0; k < N; k++) {
                assert_ptr_equal(strmap_get(&m, keys[k], lens[k]), in[k] ? &in[k] : NULL);
                count += in[k];
            }
            assert_int_equal(m.n, count);
        }
    }
    for (size_t k = 0; k < N; k++)
        if (in[k])
            assert_ptr_equal(strmap_del(&m, keys[k], lens[k]), &in[k]);
    assert_int_equal(m.n, 0);
    for (size_t s = 0; s < m.cap; s++)
        assert_null(m.slots[s].key);
    strmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
