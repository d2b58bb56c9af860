/* yamldoc — a YAML file as a small tree of nodes that remember where they were written.
 *
 * libyaml's event parser builds the tree; this module adds what libyaml leaves out: 1-based
 * line:column marks (libyaml's are 0-based), duplicate mapping keys reported as errors
 * (libyaml accepts them silently), and typing of plain scalars by the YAML 1.2 core schema
 * (null, true/false, integers, floats; `yes`/`on` stay strings). Quoted scalars are always
 * strings, and keep NUL bytes from "\0" escapes (lengths, not C strings). Anchors and
 * aliases are refused with a clear error: a scenario says everything where it is used.
 *
 * Limits, so that no input can exhaust the stack, the memory or the time of a loader (the
 * control API loads posted YAML inside the server): a mapping key must be a scalar (a
 * sequence or mapping as a key is an error here, once for every reader); nesting, the
 * number of nodes and the size of the text are bounded by the constants below, each an
 * error at the place it is crossed. Duplicate keys are found with a hash map: parsing is
 * linear in the size of the text.
 *
 * The tree lives in an arena (arena.h) that the caller owns: every node, string and array
 * of it is cut from there, and arena_free() frees the whole tree at once. Nothing of the
 * tree may be kept past that: readers copy what they keep (xstrdup, JSON).
 */
#ifndef HARNESS_YAMLDOC_H
#define HARNESS_YAMLDOC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "arena.h"
#include "diag.h"

/* The deepest nesting of sequences and mappings (the catalogue needs about 12). */
#define YDOC_MAX_DEPTH 64
/* The most nodes (scalars, sequences, mappings) in a document: about 200,000 routes. */
#define YDOC_MAX_NODES 2000000
/* The longest text, in bytes: 16 MiB. */
#define YDOC_MAX_BYTES (16u * 1024u * 1024u)

enum ynode_kind { Y_SCALAR, Y_MAP, Y_SEQ };
enum yscalar_type { YS_STRING, YS_NULL, YS_BOOL, YS_INT, YS_FLOAT };

struct ynode {
    enum ynode_kind kind;
    struct src_loc loc; /* 1-based; file borrowed from the document */
    /* Y_SCALAR */
    char *str; /* NUL-terminated; may contain NUL (see len) */
    size_t len;
    enum yscalar_type type;
    bool quoted; /* single or double quoted, or a block scalar */
    bool exact;  /* the value is its source text character for character (on one line,
                  * after the opening quote if quoted): offsets in it are columns */
    bool b;
    long long i;
    double f;
    /* Y_MAP: keys[i] (scalars) -> values[i]; Y_SEQ: values[i] */
    struct ynode **keys;
    struct ynode **values;
    size_t n;
};

/* Parse one document into arena a (borrowed: the tree is the arena's, freed by arena_free(),
 * which the caller does, on NULL too). NULL on a syntax error or a limit crossed (reported
 * in diags); an empty document gives a Y_SCALAR null node. file is used in messages and must
 * outlive the tree. Duplicate keys are reported in diags but the tree is still returned (the
 * first value wins). */
struct ynode *ydoc_parse(const char *text, size_t len, const char *file, struct arena *a,
                         struct diag_list *diags);

/* The value of a key in a mapping (NULL if absent or n is not a mapping). */
struct ynode *ymap_get(const struct ynode *n, const char *key);
/* The node as JSON with typed scalars (mapping keys are strings). */
json_t *ynode_to_json(const struct ynode *n);
/* The same, where scalar(node, ctx) may give a scalar's JSON instead (a new reference), or
 * NULL for the default. */
json_t *ynode_to_json_with(const struct ynode *n, json_t *(*scalar)(const struct ynode *, void *),
                           void *ctx);
/* "a mapping", "a sequence", "a string", "an integer", ... for messages. */
const char *ynode_kind_name(const struct ynode *n);

#endif
