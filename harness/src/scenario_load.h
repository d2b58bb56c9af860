/* scenario_load — the shared readers of the scenario loader (scenario.c) and its parts
 * (scenario_server.c, scenario_client.c). Internal to the loader.
 *
 * Every reader takes the node to read and a `what` naming it in messages; on a problem it
 * appends a located message and returns false/NULL, and the caller goes on with the next
 * key, so a file's errors are all reported in one run.
 */
#ifndef HARNESS_SCENARIO_LOAD_H
#define HARNESS_SCENARIO_LOAD_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stdint.h>
#include "scenario.h"
#include "yamldoc.h"

struct ld {
    struct diag_list *d;
    const char *file;
    const char *dir; /* body_file is read from here; NULL: not allowed */
    struct scenario *s;
};

void ld_err(struct ld *ld, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void *ld_alloc(size_t n, size_t size);
char *ld_strdup(const char *s);
/* Report every key of map not in the NULL-terminated allowed list. */
void ld_keys(struct ld *ld, const struct ynode *map, const char *const *allowed, const char *where);
bool ld_is_map(struct ld *ld, const struct ynode *n, const char *what);
bool ld_is_seq(struct ld *ld, const struct ynode *n, const char *what);
const char *ld_text(struct ld *ld, const struct ynode *n, const char *what);
const char *ld_string(struct ld *ld, const struct ynode *n, const char *what);
bool ld_int(struct ld *ld, const struct ynode *n, long long min, long long max, long long *out,
            const char *what);
bool ld_bool(struct ld *ld, const struct ynode *n, bool *out, const char *what);
bool ld_duration(struct ld *ld, const struct ynode *n, uint64_t *ms, const char *what);
bool ld_base64(struct ld *ld, const struct ynode *n, struct bytes *out, const char *what);
void ld_bytes_text(const struct ynode *n, struct bytes *out);
struct tmpl *ld_tmpl(struct ld *ld, const struct ynode *n, const char *what);
void ld_headers(struct ld *ld, const struct ynode *n, struct header_list *out, const char *what);
bool ld_regex(struct ld *ld, const struct ynode *n, regex_t *re, const char *what);
void ld_matches(struct ld *ld, const struct ynode *n, struct value_match **out, size_t *count,
                const char *what);
bool ld_body_file(struct ld *ld, const struct ynode *n, struct bytes *out);

/* scenario_server.c */
void load_server(struct ld *ld, const struct ynode *server);
/* scenario_client.c: the validated parts as JSON (NULL if absent) */
json_t *load_client(struct ld *ld, const struct ynode *client);
json_t *load_expect(struct ld *ld, const struct ynode *expect);

#endif
