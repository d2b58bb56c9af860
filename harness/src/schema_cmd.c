/* schema_cmd — `harness schema`: the JSON Schema (draft 2020-12) of scenario files
 * (schema.h), for editors (yaml-language-server) and other tools.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "commands.h"
#include "schema.h"

int cmd_schema(int argc, char **argv)
{
    if (argc > 1) {
        bool help = !strcmp(argv[1], "--help");
        fputs("usage: harness schema\n"
              "\n"
              "Print the JSON Schema (draft 2020-12) of scenario files, generated from the\n"
              "loader's key tables. Editors validate with it as they type; `harness check`\n"
              "validates values too (regexes, templates, files, route names).\n",
              help ? stdout : stderr);
        return help ? 0 : 2;
    }
    json_t *doc = schema_json();
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text);
    free(text);
    json_decref(doc);
    return 0;
}
