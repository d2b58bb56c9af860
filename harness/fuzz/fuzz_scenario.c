/* libFuzzer target for the scenario loader, from text: any input is handed to
 * scenario_load_text() (YAML parse, validation, templates, regexes, the JSON document) and
 * everything is freed again; it must not crash, leak, overflow or run away. Properties:
 * a rejected input has at least one diagnostic, and every diagnostic names the input and a
 * line/column inside it (line 0 only with column 0, "unknown"), so `harness check` never
 * points an author past the end of the file. A loaded scenario's JSON document must dump.
 *
 *   make fuzz FUZZ_SECONDS=120      (seeds: harness/fuzz/corpus/scenario, scenario.dict)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "diag.h"
#include "scenario.h"

#define NAME "fuzz.yaml"

/* An upper bound on the lines libyaml can count in the input: it breaks lines on LF, CR,
 * CRLF, NEL and the Unicode LS/PS, in UTF-8 or (after a BOM) UTF-16. Every byte that could
 * be part of such a break counts as one. */
static long max_lines(const unsigned char *s, size_t n)
{
    long lines = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\n' || s[i] == '\r' || s[i] == 0x85 || s[i] == 0x28 || s[i] == 0x29 ||
            s[i] == 0xa8 || s[i] == 0xa9)
            lines++;
    return lines;
}

/* An upper bound on a column: the longest run of bytes without LF or CR, plus one (libyaml
 * counts characters, never more than bytes; the end of a line is one past its last). */
static long max_col(const unsigned char *s, size_t n)
{
    size_t longest = 0, run = 0;
    for (size_t i = 0; i < n; i++) {
        run = (s[i] == '\n' || s[i] == '\r') ? 0 : run + 1;
        if (run > longest)
            longest = run;
    }
    return (long)longest + 1;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    struct diag_list diags;
    diag_init(&diags);
    struct scenario *s = scenario_load_text((const char *)data, size, NAME, NULL, &diags);
    if (!s && diags.n == 0)
        abort(); /* rejected without saying why */
    long lines = max_lines(data, size), cols = max_col(data, size);
    for (size_t i = 0; i < diags.n; i++) {
        const struct diag *d = &diags.items[i];
        if (!d->message || !*d->message || !d->file || strcmp(d->file, NAME))
            abort();
        if (d->line == 0 && d->col == 0)
            continue;
        if (d->line < 1 || d->line > lines || d->col < 1 || d->col > cols) {
            fprintf(stderr, "diagnostic outside the input (at most %ld lines, %ld columns):\n",
                    lines, cols);
            diag_print(&diags, stderr);
            abort();
        }
    }
    if (s) {
        char *doc = json_dumps(s->doc, JSON_COMPACT);
        if (!doc)
            abort();
        free(doc);
    }
    scenario_free(s);
    diag_free(&diags);
    return 0;
}
