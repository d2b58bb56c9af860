/* arena — memory handed out in pieces and given back all at once.
 *
 * For data that dies together, such as the YAML tree of one document (yamldoc.h): a piece
 * costs a pointer bump, and freeing the arena frees every piece with a few free() calls
 * instead of one per piece. The chunks come from xmalloc (xalloc.h), so running out of
 * memory aborts as everywhere else; a piece is never NULL and never freed on its own.
 *
 * Ownership: the arena owns every piece it hands out; arena_free() frees them all, after
 * which no pointer into them may be used. A zeroed struct arena (or arena_init()) is an
 * empty arena; it is not safe to share between threads.
 */
#ifndef HARNESS_ARENA_H
#define HARNESS_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head; /* the chunk pieces are cut from; older chunks follow it */
    size_t bytes;             /* the bytes of all chunks, for the size of the next one */
};

void arena_init(struct arena *a);
/* Frees every piece; the arena is empty again (and may be used again). */
void arena_free(struct arena *a);
/* n bytes, aligned for any type (max_align_t), uninitialized. */
void *arena_alloc(struct arena *a, size_t n);
/* n * size bytes, aligned for any type, zeroed; aborts if the product overflows. */
void *arena_calloc(struct arena *a, size_t n, size_t size);
/* A copy of the n bytes at s with a NUL after them (s may contain NULs), unaligned. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

#endif
