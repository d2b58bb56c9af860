/* scenario — the in-memory form of one scenario file.
 *
 * scenario_load() reads a YAML file (see docs/scenarios.md), validates every part and
 * builds these plain structs; the server only ever reads them. The `client` and `expect`
 * parts are validated here but kept as JSON (jansson) for the drivers, which receive them
 * through `harness check --json` and the control API.
 *
 * Ownership: a struct scenario owns everything it points to; scenario_free() releases it.
 * A loaded scenario is immutable and may be shared by many instances and threads.
 */
#ifndef HARNESS_SCENARIO_H
#define HARNESS_SCENARIO_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "diag.h"
#include "tmpl.h"

enum match_op { MATCH_EQUALS, MATCH_REGEX, MATCH_PRESENT, MATCH_ABSENT };

/* One query-parameter or header condition of a route. */
struct value_match {
    char *name;
    enum match_op op;
    char *value; /* MATCH_EQUALS: the value; MATCH_REGEX: the source of re */
    regex_t re;  /* compiled when op == MATCH_REGEX (REG_EXTENDED|REG_NOSUB) */
};

struct header {
    char *name;
    struct tmpl *value;
};

struct header_list {
    struct header *items;
    size_t n;
};

enum transfer { TRANSFER_LENGTH, TRANSFER_CHUNKED };
enum fault_action { FAULT_NONE, FAULT_CLOSE, FAULT_RESET, FAULT_HANG };
enum body_kind {
    BODY_NONE,
    BODY_TEXT,  /* body_tmpl: text with placeholders */
    BODY_BYTES, /* body/body_len: exact bytes (body_base64, body_file) */
};

struct response {
    struct src_loc loc; /* where this response is written */
    int status;         /* 100..999, default 200 */
    char *reason;       /* NULL: the standard phrase */
    struct header_list headers;

    enum body_kind body_kind;
    struct tmpl *body_tmpl;
    unsigned char *body;
    size_t body_len;

    /* raw: the whole response as exact bytes (raw_tmpl for `raw`, body/body_len for
     * `raw_base64`); status, reason, headers and body are unused then. */
    bool raw;
    struct tmpl *raw_tmpl;

    uint64_t delay_ms;      /* before the status line */
    uint64_t body_delay_ms; /* after the headers, before the first body byte */
    size_t trickle_bytes;   /* 0: no trickle, the whole body at once */
    uint64_t trickle_every_ms;
    enum transfer transfer;

    enum fault_action fault;
    bool fault_has_after; /* false: fault before anything is sent */
    size_t fault_after_bytes;
};

enum after_last { AFTER_REPEAT, AFTER_CYCLE, AFTER_NOT_FOUND };

struct route {
    struct src_loc loc;
    char *name;     /* given, or "route-N" */
    char **methods; /* NULL/0: any method */
    size_t n_methods;
    char *path; /* exact path, or NULL */
    bool has_path_re;
    regex_t path_re;
    char *path_re_src;
    struct value_match *query;
    size_t n_query;
    struct value_match *headers;
    size_t n_headers;
    struct response *responses; /* n_responses >= 1 */
    size_t n_responses;
    enum after_last after_last;
};

struct scenario {
    char *file; /* the path it was loaded from (or "<posted>") */
    char *dir;  /* its folder: body_file is resolved here and may not leave it */
    char *id, *title, *spec, *description;
    char **tags;
    size_t n_tags;
    struct route *routes;
    size_t n_routes;
    json_t *client; /* validated `client` part as JSON, or NULL */
    json_t *expect; /* validated `expect` part as JSON, or NULL */
    json_t *doc;    /* the whole file as JSON (identity + client + expect + server) */
};

/* Load and validate a scenario file. Returns NULL and appends every problem to diags (at
 * least one) if the file is not valid. */
struct scenario *scenario_load(const char *path, struct diag_list *diags);
/* The same for YAML text in memory (the control API's posted scenarios). name is used in
 * messages; base_dir is where body_file is resolved (NULL: body_file is an error). */
struct scenario *scenario_load_text(const char *text, size_t len, const char *name,
                                    const char *base_dir, struct diag_list *diags);
void scenario_free(struct scenario *s);

/* Collect scenario files: each argument is a file, or a folder searched recursively for
 * *.yaml / *.yml (sorted, so runs are reproducible). Returns a NULL-terminated malloc'd
 * array of malloc'd paths; problems (a missing path) go to diags. */
char **scenario_find_files(char *const *args, int nargs, struct diag_list *diags);
void scenario_free_files(char **files);

#endif
