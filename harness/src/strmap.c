/* strmap — see strmap.h. Open addressing with linear probing, FNV-1a hashes, at most half
 * full; a removal moves back the keys after it that it would cut from their hash slot (no
 * tombstones). */
#include "strmap.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "xalloc.h"

static uint64_t hash(const char *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static struct strmap_slot *find(const struct strmap *m, const char *key, size_t len)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)hash(key, len) & mask;; i = (i + 1) & mask) {
        struct strmap_slot *s = &m->slots[i];
        if (!s->key || (s->len == len && !memcmp(s->key, key, len)))
            return s;
    }
}

void strmap_free(struct strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

void *strmap_get(const struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    struct strmap_slot *s = find(m, key, len);
    return s->key ? s->value : NULL;
}

static void grow(struct strmap *m)
{
    struct strmap old = *m;
    m->cap = old.cap ? old.cap * 2 : 16;
    m->slots = xcalloc(m->cap, sizeof *m->slots);
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            *find(m, old.slots[i].key, old.slots[i].len) = old.slots[i];
    free(old.slots);
}

void *strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
    if ((m->n + 1) * 2 > m->cap)
        grow(m);
    struct strmap_slot *s = find(m, key, len);
    if (s->key)
        return s->value;
    *s = (struct strmap_slot){key, len, value};
    m->n++;
    return NULL;
}

void *strmap_del(struct strmap *m, const char *key, size_t len)
{
    if (!m->cap)
        return NULL;
    struct strmap_slot *s = find(m, key, len);
    if (!s->key)
        return NULL;
    void *value = s->value;
    size_t mask = m->cap - 1, hole = (size_t)(s - m->slots);
    for (size_t j = (hole + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
        size_t home = (size_t)hash(m->slots[j].key, m->slots[j].len) & mask;
        /* the key at j stays unless the hole lies between its home slot and j */
        bool stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (struct strmap_slot){0};
    m->n--;
    return value;
}
