/* ld — the typed readers of the scenario loader, and the table-driven validator.
 *
 * Every reader takes the YAML node to read and a `what` naming it in messages; on a problem
 * it appends a located message ("file:line:column: what: ...") and returns false/NULL, and
 * the caller goes on with the next key, so a file's errors are all reported in one run.
 * ld_keys() checks a mapping's key names against its table (keys.h); ld_table.h validates
 * values by their types too.
 *
 * Durations have one grammar, here (ld_duration); a duration read is also recorded so that
 * ld_to_json() gives it as a number of milliseconds: the drivers never parse durations.
 *
 * Internal to the loader (scenario*.c). A struct ld lives for one file; ld_done() frees
 * what it recorded.
 */
#ifndef HARNESS_LD_H
#define HARNESS_LD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "keys.h"
#include "rx.h"
#include "scenario_types.h"
#include "strmap.h"
#include "yamldoc.h"

struct clientreg;

/* The largest body_file: a response body is read once and shared by every connection that
 * sends it (the default --max-body of a request body is the same size). Scenario files
 * themselves are capped at FSROOT_MAX_BYTES. */
#define LD_BODY_FILE_MAX ((size_t)64 * 1024 * 1024)

/* The longest duration a scenario may give: one day. */
#define LD_MAX_DURATION_MS 86400000ULL
/* The string form of a duration (ld_duration) as a regular expression, for the JSON Schema
 * (schema.h); tests/test_schema.py holds it to ld_duration on the documented examples. */
#define LD_DURATION_PATTERN "^ *([0-9]+(\\.[0-9]*)?|\\.[0-9]+) *(ms|s|m|min)? *$"

struct ld_value; /* a scalar read as something else (a duration as milliseconds) */

struct ld {
    struct diag_list *d;
    const char *file;
    const char *dir; /* body_file is read from here; NULL: not allowed */
    struct scenario *s;
    const char *action;      /* the client action (xhr, ...), once the client part is read */
    struct ld_value *values; /* sorted by node when ld_to_json needs them */
    size_t n_values, cap_values;
    bool values_sorted;
    struct strmap route_names;       /* name -> struct route *, as routes are read */
    struct strmap channel_names;     /* name -> struct channel * */
    const struct clientreg *clients; /* borrowed: the names when.client may use; NULL: any */
};

void ld_err(struct ld *ld, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ld_done(struct ld *ld);

/* Report every key of map that table t does not list. */
void ld_keys(struct ld *ld, const struct ynode *map, const struct key_table *t);

bool ld_is_map(struct ld *ld, const struct ynode *n, const char *what);
bool ld_is_seq(struct ld *ld, const struct ynode *n, const char *what);
/* A scalar's text (numbers and booleans as written); NULL (with an error) otherwise. */
const char *ld_text(struct ld *ld, const struct ynode *n, const char *what);
/* A string proper (not a number or boolean). */
const char *ld_string(struct ld *ld, const struct ynode *n, const char *what);
bool ld_int(struct ld *ld, const struct ynode *n, long long min, long long max, long long *out,
            const char *what);
bool ld_bool(struct ld *ld, const struct ynode *n, bool *out, const char *what);
/* A duration (docs/scenarios.md, "Values used everywhere"): a YAML number of milliseconds,
 * or a string NUMBER [UNIT] with NUMBER digits with an optional fraction (".5" too) and
 * UNIT ms (the default), s, m or min; rounded to the millisecond; 0 to one day. */
bool ld_duration(struct ld *ld, const struct ynode *n, uint64_t *ms, const char *what);
/* One of the NULL-terminated values; its index in *out. */
bool ld_enum(struct ld *ld, const struct ynode *n, const char *const *values, int *out,
             const char *what);
/* One of the enum values of key in table t (keys.h); its index in *out. The tables list the
 * values in the order of the matching C enums (scenario.h). */
bool ld_choice(struct ld *ld, const struct ynode *n, const struct key_table *t, const char *key,
               int *out, const char *what);
/* Decoded base64 (whitespace ignored) into out (owned by the caller). */
bool ld_base64(struct ld *ld, const struct ynode *n, struct bytes *out, const char *what);
/* A scalar's bytes as written (NULs kept) into out (owned by the caller). */
void ld_bytes_text(const struct ynode *n, struct bytes *out);
struct tmpl *ld_tmpl(struct ld *ld, const struct ynode *n, const char *what);
/* A header list: a mapping, or a sequence of one-entry mappings (order kept). */
void ld_headers(struct ld *ld, const struct ynode *n, struct header_list *out, const char *what);
void ld_free_headers(struct header_list *h);
/* A pattern of the regex dialect (rx.h), compiled into re (owned by the caller). */
bool ld_regex(struct ld *ld, const struct ynode *n, struct rx *re, const char *what);
/* NAME: "value" | {equals|regex|present|absent}; *out (owned) gets *count conditions. */
void ld_matches(struct ld *ld, const struct ynode *n, struct value_match **out, size_t *count,
                const char *what);
void ld_free_matches(struct value_match *m, size_t n);
/* match.body: "text" | {equals|regex|json}: a new condition (owned; ld_free_matches(m, 1)),
 * or NULL after an error. */
struct value_match *ld_body_condition(struct ld *ld, const struct ynode *n, const char *what);
/* chunks: a sequence of {bytes|hex|base64, pause} (a scalar: its bytes) into out (owned;
 * ld_free_chunks). */
void ld_chunks(struct ld *ld, const struct ynode *n, struct raw_chunks *out, const char *what);
void ld_free_chunks(struct raw_chunks *c);
/* end: fin | rst | hang. */
bool ld_conn_end(struct ld *ld, const struct ynode *n, enum conn_end *out, const char *what);
/* body_file: a file inside the scenario's folder, read into out (owned by the caller). */
bool ld_body_file(struct ld *ld, const struct ynode *n, struct bytes *out);
/* A whole file into a malloc'd NUL-terminated buffer; NULL with a reason in err. */
char *ld_read_file(const char *path, size_t *len, char *err, size_t errlen);
/* The same from an open file descriptor, read to its end and closed (steals fd); size is
 * what the file is expected to hold (fstat), so that one buffer is enough, or 0. */
char *ld_read_fd(int fd, size_t size, size_t *len, char *err, size_t errlen);

/* The tree as JSON, with every duration read so far as a number of milliseconds. New
 * reference. */
json_t *ld_to_json(struct ld *ld, const struct ynode *n);

#endif
