/* main — the `harness` command: dispatches to its subcommands.
 *
 *   harness serve [FILES|DIRS] [--port N] [--cross-port N] [--bind ADDR] ...
 *   harness check FILES|DIRS [--json]
 *   harness keys [--json]
 *   harness regex PATTERN [SUBJECT...]
 *   harness schema
 *   harness --help | --version
 */
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: harness COMMAND [ARGS]\n"
          "\n"
          "Comet Harness: a mock server that replays YAML scenarios for conformance tests of\n"
          "web clients (XHR, CORS, JSONP, image pings, Comet, Server-Sent Events, WebSockets).\n"
          "\n"
          "commands:\n"
          "  serve   serve scenarios over HTTP on a main and a cross-origin port\n"
          "  check   validate scenario files without serving them\n"
          "  keys    the keys a scenario may use, with their types and meanings\n"
          "  regex   try a pattern of the scenario regex dialect on subjects\n"
          "  schema  the JSON Schema of scenario files, for editors\n"
          "\n"
          "`harness COMMAND --help` describes a command. `harness --version` prints the version.\n",
          out);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("harness %s\n", HARNESS_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "keys"))
        return cmd_keys(argc - 1, argv + 1);
    if (!strcmp(cmd, "regex"))
        return cmd_regex(argc - 1, argv + 1);
    if (!strcmp(cmd, "schema"))
        return cmd_schema(argc - 1, argv + 1);
    fprintf(stderr, "harness: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
