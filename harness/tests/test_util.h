/* test_util — helpers shared by the cmocka unit tests. */
#ifndef HARNESS_TEST_UTIL_H
#define HARNESS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* cmocka needs the headers above first */
#include <cmocka.h>
#include "scenario.h"

/* Load a scenario from YAML text; fails the test (printing the errors) if it does not load. */
static inline struct scenario *load_ok(const char *yaml)
{
    struct diag_list d;
    diag_init(&d);
    struct scenario *s = scenario_load_text(yaml, strlen(yaml), "test.yaml", ".", &d);
    if (!s || d.n) {
        diag_print(&d, stderr);
        fail_msg("the scenario did not load");
    }
    diag_free(&d);
    return s;
}

#define SCENARIO_HEAD                                                                              \
    "id: t.unit\ntitle: unit\nspec: https://example.org/\nclient:\n  http: {url: /}\n"

#endif
