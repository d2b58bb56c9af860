/* strmap — a hash map from byte strings to pointers, for the loader's lookups by name
 * (duplicate mapping keys, route and channel names), so that loading stays linear in the
 * size of the file however many keys or routes it has.
 *
 * Keys are borrowed: each key's bytes must outlive the map (they are the YAML tree's or the
 * scenario's strings). Values are borrowed too. A zeroed struct strmap is an empty map;
 * strmap_free() frees the table only.
 */
#ifndef HARNESS_STRMAP_H
#define HARNESS_STRMAP_H

#include <stddef.h>

struct strmap_slot {
    const char *key; /* NULL: empty */
    size_t len;
    void *value;
};

struct strmap {
    struct strmap_slot *slots;
    size_t cap, n; /* cap: 0 or a power of two */
};

void strmap_free(struct strmap *m);
/* The value stored for key (len bytes, NULs allowed), or NULL. */
void *strmap_get(const struct strmap *m, const char *key, size_t len);
/* Stores value (not NULL) for key unless the key is there already: then returns the value
 * stored first and changes nothing. NULL when the key was added. */
void *strmap_put(struct strmap *m, const char *key, size_t len, void *value);
/* Removes key: its value, or NULL if it was not there. */
void *strmap_del(struct strmap *m, const char *key, size_t len);

#endif
