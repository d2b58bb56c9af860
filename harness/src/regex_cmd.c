/* regex_cmd — `harness regex`: try a pattern of the scenario regex dialect (rx.h).
 *
 *   harness regex PATTERN [SUBJECT...]
 *
 * prints one JSON object on stdout: {"ok": true, "matches": [M, ...]} where M is the text
 * the search found in each subject (null: no match), or {"ok": false, "error": MESSAGE,
 * "offset": N} (N: the 0-based byte offset in PATTERN). Exit status 0 if the pattern is in
 * the dialect, 1 if not. tests/test_regex_dialect.py holds it and Python's re to one corpus.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "rx.h"

int cmd_regex(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fputs("usage: harness regex PATTERN [SUBJECT...]\n"
              "\n"
              "Check a pattern against the scenario regex dialect (Python re syntax, run by\n"
              "PCRE2) and search each subject; prints JSON: {\"ok\", \"matches\"|\"error\"}.\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    struct rx rx;
    char err[200];
    size_t off = 0;
    json_t *doc;
    int status = 0;
    if (!rx_compile(&rx, argv[1], strlen(argv[1]), err, sizeof err, &off)) {
        doc = json_pack("{s:b, s:s, s:I}", "ok", 0, "error", err, "offset", (json_int_t)off);
        status = 1;
    } else {
        json_t *matches = json_array();
        for (int i = 2; i < argc; i++) {
            size_t start, end;
            if (rx_search(&rx, argv[i], strlen(argv[i]), &start, &end))
                json_array_append_new(matches, json_stringn(argv[i] + start, end - start));
            else
                json_array_append_new(matches, json_null());
        }
        rx_free(&rx);
        doc = json_pack("{s:b, s:o}", "ok", 1, "matches", matches);
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    puts(text);
    free(text);
    json_decref(doc);
    return status;
}
