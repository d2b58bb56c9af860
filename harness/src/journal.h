/* journal — the bounded record of the requests one instance received.
 *
 * Entries are JSON objects (jansson) in arrival order, in a ring of at most `limit`: when it
 * is full the oldest entry is dropped and counted, so a reader always sees how much is
 * missing. An entry stays mutable after it is appended (the server fills in the response's
 * phases and how the connection ended as they happen); every access goes through the
 * owning instance's lock, which the caller holds.
 *
 * The fields of an entry are listed in docs/control-api.md.
 */
#ifndef HARNESS_JOURNAL_H
#define HARNESS_JOURNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct journal {
    json_t **ring;
    size_t limit;     /* capacity of the ring, >= 1 */
    size_t head;      /* index of the oldest entry */
    size_t n;         /* entries kept */
    uint64_t total;   /* entries ever appended (since the last clear) */
    uint64_t dropped; /* entries dropped because the ring was full */
};

void journal_init(struct journal *j, size_t limit);
void journal_free(struct journal *j);
/* Forget every entry (the counters restart). */
void journal_clear(struct journal *j);
/* Append an entry (the journal takes a new reference) and set its "seq" (1-based, in
 * arrival order). Returns the seq. */
uint64_t journal_append(struct journal *j, json_t *entry);
/* {"total": N, "dropped": D, "limit": L, "entries": [copies of the entries with seq > since]} */
json_t *journal_dump(const struct journal *j, uint64_t since);
/* How many kept entries have this "route" (NULL: every entry). */
size_t journal_count(const struct journal *j, const char *route);

#endif
