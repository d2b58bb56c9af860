/* ld_table — validating a mapping entirely from its key table (keys.h).
 *
 * Key names first (ld_keys), then each value by its key's type and other forms: nested
 * mappings and lists recursively, durations recorded as milliseconds for the JSON (ld.h),
 * and expected values (KT_EXPECTED) as plain values or matcher mappings (KEYS_MATCHER).
 * The `client` and `expect` parts are validated by this alone; what a table cannot say
 * (one of body/form/body_base64, a route name that exists) stays with their loaders.
 * Internal to the loader.
 */
#ifndef HARNESS_LD_TABLE_H
#define HARNESS_LD_TABLE_H

#include "ld.h"

void ld_table(struct ld *ld, const struct ynode *map, const struct key_table *t);
/* An expected value: plain (nested mappings and lists too) or a matcher. */
void ld_expected(struct ld *ld, const struct ynode *n, const char *what);
/* True if n is a mapping with a matcher key (then all its keys must be matcher keys). */
bool ld_is_matcher(const struct ynode *n);

#endif
