/* check_cmd — `harness check`: validate scenario files without serving them.
 *
 * Every error of every file is printed as "file:line:column: message" on stderr, then a
 * summary; the exit status is 1 if there was any error. Scenario ids must be unique across
 * the files checked together. With --json, stdout gets one JSON object:
 *   {"scenarios": [the valid scenarios as JSON, each with "file"], "errors": [{file, line,
 *    col, message}]}
 * which is how the drivers read scenarios (one parser for everyone). --clients REGISTRY (the
 * client registry, drivers/clients.yaml, read as it is: clientreg.h) makes a
 * `when: {client: NAME}` naming no client of it an error at the name.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clientreg.h"
#include "commands.h"
#include "scenario.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: harness check [--json] [--quiet] [--clients REGISTRY]... FILES|DIRS\n"
          "\n"
          "Validate scenario files (every *.yaml / *.yml under a folder) without serving them:\n"
          "YAML syntax, unknown keys, wrong types, duplicate keys, bad values, missing files.\n"
          "Each error is printed as file:line:column: message; the exit status is 1 on any\n"
          "error, 0 otherwise.\n"
          "\n"
          "  --json    print {\"scenarios\": [...], \"errors\": [...]} on stdout\n"
          "  --quiet   no summary line\n"
          "  --clients REGISTRY\n"
          "            a client registry (drivers/clients.yaml; repeatable): every\n"
          "            `when: {client: NAME}` must name one of its clients\n",
          out);
}

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},          {"quiet", no_argument, NULL, 'q'},
        {"clients", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
    };
    bool json = false, quiet = false, use_clients = false;
    struct clientreg clients;
    clientreg_init(&clients);
    struct diag_list diags;
    diag_init(&diags);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jqhVc:", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            clientreg_load(&clients, optarg, &diags);
            use_clients = true;
            break;
        case 'j':
            json = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("harness %s\n", HARNESS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fputs("harness check: give scenario files or folders\n", stderr);
        usage(stderr);
        return 2;
    }
    if (use_clients)
        scenario_use_clients(&clients);
    char **files = scenario_find_files(argv + optind, argc - optind, &diags);
    json_t *scenarios = json_array();
    size_t n_files = 0;
    /* ids seen so far, with where they were declared */
    json_t *ids = json_object();
    for (char **f = files; f && *f; f++) {
        n_files++;
        struct scenario *s = json ? scenario_load(*f, &diags) : scenario_load_lean(*f, &diags);
        if (!s)
            continue;
        json_t *first = json_object_get(ids, s->id);
        if (first) {
            diag_add(&diags, (struct src_loc){*f, 1, 1}, "duplicate scenario id '%s' (also in %s)",
                     s->id, json_string_value(first));
        } else {
            json_object_set_new(ids, s->id, json_string(*f));
            if (s->doc)
                json_array_append(scenarios, s->doc);
        }
        scenario_free(s);
    }
    json_decref(ids);
    diag_print(&diags, stderr);
    if (!quiet)
        fprintf(stderr, "checked %zu file%s: %zu error%s\n", n_files, n_files == 1 ? "" : "s",
                diags.n, diags.n == 1 ? "" : "s");
    if (json) {
        json_t *errors = json_array();
        for (size_t i = 0; i < diags.n; i++)
            json_array_append_new(errors,
                                  json_pack("{s:s, s:i, s:i, s:s}", "file", diags.items[i].file,
                                            "line", diags.items[i].line, "col", diags.items[i].col,
                                            "message", diags.items[i].message));
        json_t *doc = json_pack("{s:o, s:o}", "scenarios", scenarios, "errors", errors);
        char *text = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        puts(text);
        free(text);
    } else {
        json_decref(scenarios);
    }
    int status = diags.n ? 1 : 0;
    diag_free(&diags);
    scenario_free_files(files);
    scenario_use_clients(NULL);
    clientreg_free(&clients);
    return status;
}
