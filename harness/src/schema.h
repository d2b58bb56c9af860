/* schema — a JSON Schema (draft 2020-12) of scenario files, generated from the loader's
 * own key tables (keys.h, through keys_to_json) so that it cannot drift from them.
 *
 * Every table becomes a $defs entry (an object with exactly its keys), every key type and
 * other form a schema (durations by their grammar, LD_DURATION_PATTERN; integers by their
 * ranges; header lists; match conditions; expected values and matchers). The few rules the
 * loader states in code rather than in its tables (one body, one response kind, one client
 * action, the keys a scenario requires, expect.client by the client's action) are listed
 * here once, beside the generator; tests/test_schema.py holds the schema to the loader:
 * every catalogue scenario validates, and every fixture `harness check` rejects for a shape
 * reason the schema rejects too.
 *
 * For editors: yaml-language-server reads it from a modeline (docs/scenarios.md).
 */
#ifndef HARNESS_SCHEMA_H
#define HARNESS_SCHEMA_H

#include <jansson.h>

/* The schema. New reference. */
json_t *schema_json(void);

#endif
