/* keys — the scenario vocabulary: every mapping a scenario file may contain, as declarative
 * tables of {key, type, table or enum values, description}.
 *
 * One table per kind of mapping (a route, a response, an xhr action, a matcher, ...). The
 * loader checks key names against these tables everywhere, and validates the `client` and
 * `expect` parts entirely from them (ld_table in ld.h); `harness keys --json` exports them,
 * and the grader's tests compare its vocabulary with the export (drivers/tests/
 * test_grader.py), so a key the grader does not understand is a `harness check` error. The
 * types and shapes are rich enough to generate a JSON Schema from (a later `harness schema`).
 *
 * All tables are static data: nothing to free, safe from any thread.
 */
#ifndef HARNESS_KEYS_H
#define HARNESS_KEYS_H

#include <jansson.h>
#include <stddef.h>

enum key_type {
    KT_ANY,      /* any YAML value, taken as is */
    KT_EXPECTED, /* an expected value: plain (equal), a matcher mapping, or nested ones */
    KT_STRING,   /* a string (not a number or boolean) */
    KT_TEXT,     /* a scalar's text: strings, and numbers or booleans as written */
    KT_TEMPLATE, /* text with {{...}} placeholders (tmpl.h) */
    KT_INT,      /* an integer in [min, max] */
    KT_NUMBER,   /* an integer or a float */
    KT_BOOL,
    KT_DURATION, /* milliseconds: a number, or a string with a unit (ld_duration) */
    KT_ENUM,     /* a string among values */
    KT_REGEX,    /* a pattern of the regex dialect (rx.h) */
    KT_BASE64,
    KT_HEADERS, /* a header list: a mapping, or a list of one-entry mappings */
    KT_MATCHES, /* NAME: a value or a match condition (table) */
    KT_MAP,     /* a mapping with the keys of table (or of a variant, see below) */
    KT_LIST,    /* a sequence; items are mappings of table, or of type item */
    KT_MAP_OF,  /* NAME: a mapping of table */
};

/* Other shapes a value may take besides its type (a shorthand), as bit flags. */
enum key_form {
    KF_NULL = 1,   /* null */
    KF_BOOL = 2,   /* true / false */
    KF_SCALAR = 4, /* a scalar (text, number); for a KT_LIST: items may be scalars of item */
    KF_MAP = 8,    /* a mapping of table */
    KF_LIST = 16,  /* a sequence of item */
    KF_INT = 32,   /* an integer */
};

struct key_table;

/* A mapping whose keys depend on the scenario's client action (expect.client). */
struct key_variant {
    const char *action;
    const struct key_table *table;
};

struct key_spec {
    const char *key;
    enum key_type type;
    const struct key_table *table;      /* KT_MAP, KT_LIST of mappings (unless KF_MAP: then
                                         * the mapping form's), KT_MAP_OF, KF_MAP */
    const char *const *values;          /* KT_ENUM: NULL-terminated */
    const char *doc;                    /* one line: what it means */
    unsigned forms;                     /* enum key_form */
    enum key_type item;                 /* KT_LIST without table, KF_LIST: the items' type */
    long long min, max;                 /* KT_INT (0, 0: any) */
    const struct key_variant *variants; /* KT_MAP by client action, NULL-terminated */
};

struct key_table {
    const char *id;   /* unique, dotted: "response", "client.xhr", "expect.client.xhr" */
    const char *what; /* in messages: "a response", "client.xhr" */
    const char *doc;
    const struct key_spec *keys;
    size_t n;
};

/* The key spec of key in table, or NULL. */
const struct key_spec *keys_find(const struct key_table *t, const char *key);
/* "a, b, c": the keys of a table (for messages), into buf (truncated to len); returns buf. */
const char *keys_list(const struct key_table *t, char *buf, size_t len);
/* The type's name in the export ("duration", "map", ...). */
const char *keys_type_name(enum key_type type);
/* Every table as JSON: {"version": 1, "root": "scenario", "tables": {ID: {"what", "doc",
 * "keys": {KEY: {"type", "doc", "table"?, "values"?, "forms"?, "item"?, "min"?, "max"?,
 * "variants"?: {ACTION: TABLE-ID}}}}}}. New reference. */
json_t *keys_to_json(void);

/* The tables (keys.c). The root of a scenario file: */
extern const struct key_table KEYS_SCENARIO;
/* server */
extern const struct key_table KEYS_SERVER, KEYS_ROUTE, KEYS_MATCH, KEYS_CONDITION, KEYS_RESPONSE,
    KEYS_CHUNK, KEYS_TRICKLE, KEYS_FAULT, KEYS_REQUIRE, KEYS_JSONP, KEYS_LONG_POLL,
    KEYS_STREAM_ITEM, KEYS_SSE, KEYS_SSE_EVENT, KEYS_WEBSOCKET, KEYS_HANDSHAKE, KEYS_WS_STEP,
    KEYS_WS_SEND, KEYS_WS_PING, KEYS_WS_RECEIVE, KEYS_WS_ECHO, KEYS_WS_FRAME, KEYS_WS_CLOSE,
    KEYS_CORS, KEYS_CHANNEL, KEYS_CHANNEL_EVENT;
/* client */
extern const struct key_table KEYS_CLIENT;
/* expect */
extern const struct key_table KEYS_EXPECT, KEYS_MATCHER, KEYS_EXPECT_SERVER, KEYS_EXPECT_REQUEST,
    KEYS_EXPECT_WEBSOCKET;

#endif
