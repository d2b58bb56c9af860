/* journal — see journal.h. A ring buffer of json_t references. */
#include "journal.h"
#include "xalloc.h"

#include <stdlib.h>
#include <string.h>

void journal_init(struct journal *j, size_t limit)
{
    memset(j, 0, sizeof *j);
    j->limit = limit ? limit : 1;
    j->ring = xcalloc(j->limit, sizeof *j->ring);
}

void journal_clear(struct journal *j)
{
    for (size_t i = 0; i < j->n; i++)
        json_decref(j->ring[(j->head + i) % j->limit]);
    j->head = j->n = 0;
    j->total = j->dropped = 0;
}

void journal_free(struct journal *j)
{
    journal_clear(j);
    free(j->ring);
    j->ring = NULL;
}

uint64_t journal_append(struct journal *j, json_t *entry)
{
    uint64_t seq = ++j->total;
    json_object_set_new(entry, "seq", json_integer((json_int_t)seq));
    if (j->n == j->limit) {
        json_decref(j->ring[j->head]);
        j->ring[j->head] = NULL;
        j->head = (j->head + 1) % j->limit;
        j->n--;
        j->dropped++;
    }
    j->ring[(j->head + j->n) % j->limit] = json_incref(entry);
    j->n++;
    return seq;
}

json_t *journal_dump(const struct journal *j, uint64_t since)
{
    json_t *entries = json_array();
    for (size_t i = 0; i < j->n; i++) {
        json_t *e = j->ring[(j->head + i) % j->limit];
        json_int_t seq = json_integer_value(json_object_get(e, "seq"));
        if ((uint64_t)seq > since)
            json_array_append_new(entries, json_deep_copy(e));
    }
    return json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)j->total, "dropped",
                     (json_int_t)j->dropped, "limit", (json_int_t)j->limit, "entries", entries);
}

size_t journal_count(const struct journal *j, const char *route)
{
    size_t count = 0;
    for (size_t i = 0; i < j->n; i++) {
        json_t *e = j->ring[(j->head + i) % j->limit];
        if (!route) {
            count++;
            continue;
        }
        const char *r = json_string_value(json_object_get(e, "route"));
        if (r && !strcmp(r, route))
            count++;
    }
    return count;
}
