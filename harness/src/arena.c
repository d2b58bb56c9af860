/* arena — see arena.h. Chunks grow with the arena (the next is as big as all before it,
 * from 4 KiB to 1 MiB), so a small document costs one malloc and a big one a few dozen;
 * a piece bigger than a quarter of a chunk gets a chunk of its own. */
#include "arena.h"

#include <stdalign.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xalloc.h"

#define ARENA_FIRST (4u * 1024u)
#define ARENA_MAX (1024u * 1024u)
#define ALIGN (alignof(max_align_t))

struct arena_chunk {
    struct arena_chunk *next;
    size_t size, used; /* of data */
    alignas(max_align_t) unsigned char data[];
};

void arena_init(struct arena *a)
{
    a->head = NULL;
    a->bytes = 0;
}

void arena_free(struct arena *a)
{
    for (struct arena_chunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    arena_init(a);
}

/* A new chunk with room for n bytes: the current one if n is small (it stays the one
 * pieces are cut from), else behind it (the current one keeps its free space). */
static struct arena_chunk *add_chunk(struct arena *a, size_t n)
{
    size_t size = a->bytes < ARENA_FIRST ? ARENA_FIRST
                  : a->bytes > ARENA_MAX ? ARENA_MAX
                                         : a->bytes;
    bool own = n > size / 4;
    if (own)
        size = n;
    if (size > SIZE_MAX - sizeof(struct arena_chunk))
        abort();
    struct arena_chunk *c = xmalloc(sizeof *c + size);
    c->size = size;
    c->used = 0;
    a->bytes += size;
    if (own && a->head) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return c;
}

static void *cut(struct arena *a, size_t n, size_t align)
{
    struct arena_chunk *c = a->head;
    if (c) {
        size_t at = (c->used + align - 1) & ~(align - 1);
        if (at <= c->size && n <= c->size - at) {
            c->used = at + n;
            return c->data + at;
        }
    }
    c = add_chunk(a, n);
    c->used = n; /* a fresh chunk: its data is aligned for anything */
    return c->data;
}

void *arena_alloc(struct arena *a, size_t n)
{
    return cut(a, n ? n : 1, ALIGN);
}

void *arena_calloc(struct arena *a, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        abort();
    void *p = arena_alloc(a, n * size);
    memset(p, 0, n * size);
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        abort();
    char *d = cut(a, n + 1, 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}
