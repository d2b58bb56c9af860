/* schema — see schema.h. Walks the export of the key tables (keys_to_json). */
#include "schema.h"

#include <stdio.h>
#include <string.h>
#include "keys.h"
#include "ld.h"

#define REF(id) json_pack("{s:s+}", "$ref", "#/$defs/", id)

/* ------------------------------------------------------------------ rules in code */

/* What the loader checks in code rather than in its tables (scenario*.c), by table id. */
struct rule {
    const char *table;
    enum { AT_MOST_ONE, EXACTLY_ONE, AT_LEAST_ONE, REQUIRED, ONE_KEY, ACTION_OR_SCRIPT } kind;
    const char *keys[10]; /* NULL-terminated */
};

#define CLIENT_BODY(t)                                                                             \
    {                                                                                              \
        t, AT_MOST_ONE,                                                                            \
        {                                                                                          \
            "body", "form", "body_base64", NULL                                                    \
        }                                                                                          \
    }
static const struct rule RULES[] = {
    {"scenario", REQUIRED, {"id", "title", "spec", "client", NULL}}, /* scenario.c */
    {"client", ACTION_OR_SCRIPT, {NULL}}, /* scenario_client.c: one action, or steps */
    {"client.xhr", REQUIRED, {"url", NULL}},
    {"client.fetch", REQUIRED, {"url", NULL}},
    {"client.eventsource", REQUIRED, {"url", NULL}},
    {"client.websocket", REQUIRED, {"url", NULL}},
    {"client.jsonp", REQUIRED, {"url", NULL}},
    {"client.image", REQUIRED, {"url", NULL}},
    {"client.http", REQUIRED, {"url", NULL}},
    CLIENT_BODY("client.xhr"),
    CLIENT_BODY("client.fetch"),
    CLIENT_BODY("client.http"),
    {"client.abort", EXACTLY_ONE, {"on", "after", NULL}},
    {"client.close_after", ONE_KEY, {NULL}},
    {"route", EXACTLY_ONE, {"response", "responses", NULL}}, /* scenario_server.c */
    {"match", AT_MOST_ONE, {"path", "path_regex", NULL}},
    {"response", AT_MOST_ONE, {"body", "body_base64", "body_file", "preset", NULL}},
    {"response",
     AT_MOST_ONE,
     {"raw", "raw_base64", "jsonp", "long_poll", "stream", "sse", "websocket", NULL}},
    {"long_poll", REQUIRED, {"channel", NULL}},
    {"channel.event", REQUIRED, {"data", NULL}},
    {"sse.event",
     AT_LEAST_ONE,
     {"data", "data_size", "id", "event", "retry", "comment", "lines", "raw", "raw_base64",
      NULL}},                            /* scenario_sse.c */
    {"websocket.step", ONE_KEY, {NULL}}, /* scenario_ws.c */
};

static json_t *required(const char *a, const char *b)
{
    return b ? json_pack("{s:[s,s]}", "required", a, b) : json_pack("{s:[s]}", "required", a);
}

static json_t *rule_json(const struct rule *r)
{
    json_t *list = json_array();
    switch (r->kind) {
    case ONE_KEY:
        json_decref(list);
        return json_pack("{s:i, s:i}", "minProperties", 1, "maxProperties", 1);
    case ACTION_OR_SCRIPT: /* a single action, or a client script (steps, deadline) */
        json_decref(list);
        return json_pack("{s:[{s:i, s:i}, {s:[s]}]}", "anyOf", "minProperties", 1, "maxProperties",
                         1, "required", "steps");
    case REQUIRED:
        for (const char *const *k = r->keys; *k; k++)
            json_array_append_new(list, json_string(*k));
        return json_pack("{s:o}", "required", list);
    case AT_LEAST_ONE:
        for (const char *const *k = r->keys; *k; k++)
            json_array_append_new(list, required(*k, NULL));
        return json_pack("{s:o}", "anyOf", list);
    case AT_MOST_ONE:
    case EXACTLY_ONE:
        for (const char *const *a = r->keys; *a; a++)
            for (const char *const *b = a + 1; *b; b++)
                json_array_append_new(list, required(*a, *b));
        json_t *at_most = json_pack("{s:{s:o}}", "not", "anyOf", list);
        if (r->kind == AT_MOST_ONE)
            return at_most;
        json_t *any = json_array();
        for (const char *const *k = r->keys; *k; k++)
            json_array_append_new(any, required(*k, NULL));
        return json_pack("{s:[o,{s:o}]}", "allOf", at_most, "anyOf", any);
    }
    return json_object();
}

/* ------------------------------------------------------------------ types */

static json_t *scalar(void)
{
    return json_pack("{s:[s,s,s]}", "type", "string", "number", "boolean");
}

static json_t *type_json(const char *type, json_t *spec);

/* A value of a type that has no table (list items, map_of values). */
static json_t *item_json(const char *type)
{
    json_t *spec = json_object();
    json_t *s = type_json(type, spec);
    json_decref(spec);
    return s;
}

static json_t *headers(void)
{
    json_t *names = json_pack("{s:s}", "pattern", "^[!-9;-~]+$");
    json_t *map = json_pack("{s:s, s:O, s:o}", "type", "object", "propertyNames", names,
                            "additionalProperties", scalar());
    json_t *one =
        json_pack("{s:s, s:O, s:i, s:i, s:o}", "type", "object", "propertyNames", names,
                  "minProperties", 1, "maxProperties", 1, "additionalProperties", scalar());
    json_decref(names);
    return json_pack("{s:[o,{s:s, s:o}]}", "anyOf", map, "type", "array", "items", one);
}

static json_t *type_json(const char *type, json_t *spec)
{
    const char *table = json_string_value(json_object_get(spec, "table"));
    const char *item = json_string_value(json_object_get(spec, "item"));
    json_t *forms = json_object_get(spec, "forms");
    bool map_form = false, scalar_form = false;
    size_t i;
    json_t *f;
    json_array_foreach(forms, i, f)
    {
        map_form |= !strcmp(json_string_value(f), "map");
        scalar_form |= !strcmp(json_string_value(f), "scalar");
    }
    if (!strcmp(type, "any"))
        return json_object();
    if (!strcmp(type, "expected"))
        return REF("expected");
    if (!strcmp(type, "string"))
        return json_pack("{s:s}", "type", "string");
    if (!strcmp(type, "text") || !strcmp(type, "template") || !strcmp(type, "regex"))
        return scalar();
    if (!strcmp(type, "base64")) {
        json_t *s = scalar();
        json_object_set_new(s, "pattern", json_string("^[A-Za-z0-9+/=\\s]*$"));
        return s;
    }
    if (!strcmp(type, "integer")) {
        json_t *s = json_pack("{s:s}", "type", "integer");
        if (json_object_get(spec, "min"))
            json_object_set(s, "minimum", json_object_get(spec, "min"));
        if (json_object_get(spec, "max"))
            json_object_set(s, "maximum", json_object_get(spec, "max"));
        return s;
    }
    if (!strcmp(type, "number"))
        return json_pack("{s:s}", "type", "number");
    if (!strcmp(type, "boolean"))
        return json_pack("{s:s}", "type", "boolean");
    if (!strcmp(type, "duration"))
        return json_pack("{s:[{s:s, s:i, s:I}, {s:s, s:s}]}", "anyOf", "type", "number", "minimum",
                         0, "maximum", (json_int_t)LD_MAX_DURATION_MS, "type", "string", "pattern",
                         LD_DURATION_PATTERN);
    if (!strcmp(type, "enum"))
        return json_pack("{s:O}", "enum", json_object_get(spec, "values"));
    if (!strcmp(type, "headers"))
        return headers();
    if (!strcmp(type, "matches")) {
        json_t *cond = REF(table);
        json_object_set_new(cond, "minProperties", json_integer(1));
        json_object_set_new(cond, "maxProperties", json_integer(1));
        json_t *plain = json_pack("{s:[s,s,s]}", "type", "string", "number", "boolean");
        return json_pack("{s:s, s:{s:[o,o]}}", "type", "object", "additionalProperties", "anyOf",
                         plain, cond);
    }
    if (!strcmp(type, "map")) {
        json_t *variants = json_object_get(spec, "variants");
        if (!variants)
            return REF(table);
        /* by the client's action: the scenario's rules choose (variant_rules) */
        return json_pack("{s:s}", "type", "object");
    }
    if (!strcmp(type, "list")) {
        json_t *items;
        if (table && !map_form) {
            items = REF(table);
            if (scalar_form)
                items = json_pack("{s:[o,o]}", "anyOf", items, item_json(item));
        } else {
            items = item_json(item ? item : "any");
        }
        return json_pack("{s:s, s:o}", "type", "array", "items", items);
    }
    if (!strcmp(type, "map_of")) {
        json_t *values = table ? json_pack("{s:[o,{s:s}]}", "anyOf", REF(table), "type", "null")
                               : item_json(item ? item : "any");
        return json_pack("{s:s, s:o}", "type", "object", "additionalProperties", values);
    }
    return json_object();
}

/* A key's schema: its type, or one of its other forms (ld_table.c, check_value). */
static json_t *key_json(json_t *spec)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    json_t *any = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(spec, "forms"), i, f)
    {
        const char *form = json_string_value(f);
        if (!strcmp(form, "null"))
            json_array_append_new(any, json_pack("{s:s}", "type", "null"));
        else if (!strcmp(form, "boolean"))
            json_array_append_new(any, json_pack("{s:s}", "type", "boolean"));
        else if (!strcmp(form, "integer"))
            json_array_append_new(any, json_pack("{s:s}", "type", "integer"));
        else if (!strcmp(form, "scalar") && strcmp(type, "list"))
            json_array_append_new(any, scalar());
        else if (!strcmp(form, "map"))
            json_array_append_new(any, REF(json_string_value(json_object_get(spec, "table"))));
        else if (!strcmp(form, "list"))
            json_array_append_new(
                any, json_pack("{s:s, s:o}", "type", "array", "items",
                               item_json(json_string_value(json_object_get(spec, "item")))));
    }
    json_t *main = type_json(type, spec);
    json_t *s;
    if (json_array_size(any)) {
        json_array_insert_new(any, 0, main);
        s = json_pack("{s:o}", "anyOf", any);
    } else {
        json_decref(any);
        s = main;
    }
    json_object_set(s, "description", json_object_get(spec, "doc"));
    return s;
}

static json_t *table_json(const char *id, json_t *table)
{
    json_t *props = json_object();
    const char *key;
    json_t *spec;
    json_object_foreach(json_object_get(table, "keys"), key, spec)
        json_object_set_new(props, key, key_json(spec));
    json_t *t =
        json_pack("{s:s, s:O, s:o, s:b}", "type", "object", "description",
                  json_object_get(table, "doc"), "properties", props, "additionalProperties", 0);
    json_t *all = json_array();
    for (size_t r = 0; r < sizeof RULES / sizeof RULES[0]; r++)
        if (!strcmp(RULES[r].table, id))
            json_array_append_new(all, rule_json(&RULES[r]));
    if (json_array_size(all))
        json_object_set_new(t, "allOf", all);
    else
        json_decref(all);
    return t;
}

/* expect.client by the client's action (the variants of expect.client). */
static json_t *variant_rules(json_t *tables)
{
    json_t *all = json_array();
    json_t *client =
        json_object_get(json_object_get(json_object_get(tables, "expect"), "keys"), "client");
    const char *action;
    json_t *table;
    json_object_foreach(json_object_get(client, "variants"), action, table)
    {
        json_t *expect_client = json_pack("{s:{s:{s:[o,{s:s}]}}}", "properties", "client", "anyOf",
                                          REF(json_string_value(table)), "type", "null");
        json_array_append_new(all,
                              json_pack("{s:{s:[s], s:{s:{s:[s]}}}, s:{s:{s:o}}}", "if", "required",
                                        "client", "properties", "client", "required", action,
                                        "then", "properties", "expect", expect_client));
    }
    return all;
}

/* An expected value: plain (equal), a matcher mapping (any of its keys makes it one), or a
 * list or mapping of expected values (ld_table.c, ld_expected). */
static json_t *expected_json(json_t *tables)
{
    json_t *any = json_array();
    const char *key;
    json_t *spec;
    json_object_foreach(json_object_get(json_object_get(tables, "matcher"), "keys"), key,
                        spec) if (strcmp(key, "strict"))
        json_array_append_new(any, required(key, NULL));
    json_t *plain = json_pack("{s:{s:s}}", "additionalProperties", "$ref", "#/$defs/expected");
    return json_pack(
        "{s:s, s:{s:s, s:o}, s:o, s:o, s:{s:s}}", "description",
        "an expected value: plain (equal), a matcher, or a list or mapping of expected values",
        "if", "type", "object", "anyOf", any, "then", REF("matcher"), "else", plain, "items",
        "$ref", "#/$defs/expected");
}

json_t *schema_json(void)
{
    json_t *keys = keys_to_json();
    json_t *tables = json_object_get(keys, "tables");
    json_t *defs = json_object();
    const char *id;
    json_t *table;
    json_object_foreach(tables, id, table) json_object_set_new(defs, id, table_json(id, table));
    json_object_set_new(defs, "expected", expected_json(tables));
    const char *root = json_string_value(json_object_get(keys, "root"));
    json_t *s =
        json_pack("{s:s, s:s, s:s, s:s, s:[o], s:o}", "$schema",
                  "https://json-schema.org/draft/2020-12/schema", "$id",
                  "https://comet-harness.invalid/scenario.schema.json", "title",
                  "Comet Harness scenario", "description",
                  "A scenario file (docs/scenarios.md). Generated by `harness schema` from the key "
                  "tables of the loader; `harness check` validates values too (regexes, templates, "
                  "files, route names).",
                  "allOf", REF(root), "$defs", defs);
    json_t *variants = variant_rules(tables);
    json_array_extend(json_object_get(s, "allOf"), variants);
    json_decref(variants);
    json_decref(keys);
    return s;
}
