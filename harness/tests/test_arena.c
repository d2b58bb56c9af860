/* arena: pieces aligned for any type, zeroed by arena_calloc, copies with their NULs, big
 * pieces beside small ones, everything freed at once (the sanitizer run checks no leak),
 * and the arena usable again after arena_free. */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include "test_util.h"

static void test_alignment_and_contents(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a);
    char *prev = NULL;
    for (size_t i = 0; i < 5000; i++) {
        /* odd-sized strings between the pieces, so that alignment has work to do */
        char *s = arena_strndup(&a, "abc\0def", 7);
        assert_memory_equal(s, "abc\0def", 8);
        long long *p = arena_alloc(&a, sizeof *p * (1 + i % 5));
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        *p = (long long)i;
        unsigned char *z = arena_calloc(&a, 3 + i % 40, 3);
        assert_int_equal((uintptr_t)z % alignof(max_align_t), 0);
        for (size_t k = 0; k < (3 + i % 40) * 3; k++)
            assert_int_equal(z[k], 0);
        memset(z, 0xAA, (3 + i % 40) * 3);
        assert_true(s != prev);
        prev = s;
    }
    arena_free(&a);
    assert_null(a.head);
    /* usable again, and a zero-sized piece is a piece */
    assert_non_null(arena_alloc(&a, 0));
    assert_string_equal(arena_strndup(&a, "", 0), "");
    arena_free(&a);
}

static void test_big_pieces_beside_small(void **state)
{
    (void)state;
    struct arena a = {0};
    char *small1 = arena_strndup(&a, "first", 5);
    size_t big_n = 3u << 20; /* bigger than any chunk: its own */
    unsigned char *big = arena_calloc(&a, big_n, 1);
    big[0] = 1;
    big[big_n - 1] = 2;
    /* the small pieces still come from the chunk before the big one */
    char *small2 = arena_strndup(&a, "second", 6);
    assert_ptr_equal(small2, small1 + 6);
    assert_string_equal(small1, "first");
    assert_string_equal(small2, "second");
    assert_int_equal(big[0] + big[big_n - 1], 3);
    for (int i = 0; i < 100; i++) {
        size_t n = 1000 + (size_t)i * 997;
        unsigned char *p = arena_alloc(&a, n);
        memset(p, i, n);
    }
    arena_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alignment_and_contents),
        cmocka_unit_test(test_big_pieces_beside_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
