/* keys_cmd — `harness keys`: the scenario vocabulary (keys.h), for people and programs.
 *
 *   harness keys           every table: its keys, their types and meanings, as text
 *   harness keys --json    the same as JSON (keys_to_json), which the grader's tests read
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "keys.h"

int cmd_keys(int argc, char **argv)
{
    bool as_json = argc > 1 && !strcmp(argv[1], "--json");
    if ((argc > 1 && !as_json) || argc > 2) {
        bool help = !strcmp(argv[1], "--help");
        fputs("usage: harness keys [--json]\n"
              "\n"
              "The keys a scenario may use, mapping by mapping, with their types and meanings.\n",
              help ? stdout : stderr);
        return help ? 0 : 2;
    }
    json_t *doc = keys_to_json();
    if (as_json) {
        char *text = json_dumps(doc, JSON_COMPACT);
        puts(text);
        free(text);
    } else {
        const char *id;
        json_t *table;
        json_object_foreach(json_object_get(doc, "tables"), id, table)
        {
            printf("%s — %s\n", id, json_string_value(json_object_get(table, "doc")));
            const char *key;
            json_t *spec;
            json_object_foreach(json_object_get(table, "keys"), key, spec)
            {
                json_t *sub = json_object_get(spec, "table");
                printf("  %-20s %-9s %s%s%s\n", key,
                       json_string_value(json_object_get(spec, "type")),
                       json_string_value(json_object_get(spec, "doc")), sub ? " → " : "",
                       sub ? json_string_value(sub) : "");
            }
        }
    }
    json_decref(doc);
    return 0;
}
