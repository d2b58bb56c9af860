/* serve_cmd — `harness serve`: load scenarios, listen, print the ready line, run until
 * SIGINT or SIGTERM, then stop cleanly (exit 0).
 *
 * The ready line is one JSON object on stdout, printed once both ports listen:
 *   {"event":"ready","main":"http://127.0.0.1:P","cross":"http://127.0.0.1:Q",
 *    "alt":"http://localhost:P","pid":N,"instances":[IDS]}
 * Signals are blocked in every thread and taken with sigwait() by the main thread, so no
 * handler ever runs inside libmicrohttpd.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "commands.h"
#include "limits.h"
#include "xalloc.h"
#include "scenario.h"
#include "server.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: harness serve [FILES|DIRS] [--port N] [--cross-port N] [--bind ADDR]\n"
          "                     [--journal-limit N] [LIMITS] [--quiet]\n"
          "\n"
          "Serve scenarios: each file (or every *.yaml under a folder) is loaded as an instance\n"
          "named by its id, at /s/ID/ on both ports. More are loaded through the control API\n"
          "(POST /_harness/instances, see docs/control-api.md).\n"
          "\n"
          "  --port N           the main port (default 0: any free port)\n"
          "  --cross-port N     the second port, another origin for CORS (default 0: any)\n"
          "  --bind ADDR        the IPv4 address to listen on (default 127.0.0.1)\n"
          "  --journal-limit N  entries kept per instance journal (default 10000)\n"
          "  --quiet            no log line per request on stderr\n"
          "\n"
          "Limits (docs/control-api.md, \"Limits\"); BYTES may end in K, M or G:\n",
          out);
    limits_usage(out);
    fputs("\n"
          "Once listening it prints one JSON line on stdout:\n"
          "  {\"event\":\"ready\",\"main\":URL,\"cross\":URL,\"alt\":URL,\"pid\":N,...}\n"
          "SIGINT or SIGTERM stop it cleanly (exit status 0).\n",
          out);
}

static bool parse_port(const char *s, uint16_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* Descriptors kept for everything but connections: scenario and body files, the journal
 * API's clients, libmicrohttpd's own. */
#define FD_RESERVE 64u

/* Raise the descriptor limit to the hard one; if max_connections does not fit under it,
 * lower max_connections (said on stderr): at the descriptor limit a server accepts nothing
 * and answers nobody, while under max_connections it refuses the extra ones only. */
static void fit_fd_limit(struct limits *lim)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)lim->max_connections + FD_RESERVE > rl.rlim_cur) {
        unsigned fit = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE) : 1;
        fprintf(stderr,
                "harness serve: --max-connections %u does not fit the descriptor limit %llu: "
                "%u\n",
                lim->max_connections, (unsigned long long)rl.rlim_cur, fit);
        lim->max_connections = fit;
    }
}

/* getopt_long's value for the i-th option of LIMITS_OPTIONS. */
#define LIMIT_OPT 1000

int cmd_serve(int argc, char **argv)
{
    static const struct option base[] = {
        {"port", required_argument, NULL, 'p'}, {"cross-port", required_argument, NULL, 'c'},
        {"bind", required_argument, NULL, 'b'}, {"journal-limit", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},      {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
    };
    size_t n_base = sizeof base / sizeof base[0];
    struct option *opts = xcalloc(n_base + LIMITS_N_OPTIONS + 1, sizeof *opts);
    memcpy(opts, base, sizeof base);
    for (size_t i = 0; i < LIMITS_N_OPTIONS; i++)
        opts[n_base + i] =
            (struct option){LIMITS_OPTIONS[i].name, required_argument, NULL, LIMIT_OPT + (int)i};
    struct limits limits = LIMITS_DEFAULT;
    struct server_config cfg = {
        .bind = "127.0.0.1", .journal_limit = 10000, .log = stderr, .limits = &limits};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:c:b:j:qhV", opts, NULL)) != -1) {
        if (c >= LIMIT_OPT && c < LIMIT_OPT + (int)LIMITS_N_OPTIONS) {
            const struct limits_option *o = &LIMITS_OPTIONS[c - LIMIT_OPT];
            if (!limits_set(&limits, o, optarg) ||
                (!strcmp(o->name, "max-connections") && !limits.max_connections)) {
                fprintf(stderr, "harness serve: bad --%s '%s'\n", o->name, optarg);
                free(opts);
                return 2;
            }
            continue;
        }
        switch (c) {
        case 'p':
        case 'c':
            if (!parse_port(optarg, c == 'p' ? &cfg.port : &cfg.cross_port)) {
                fprintf(stderr, "harness serve: bad port '%s'\n", optarg);
                free(opts);
                return 2;
            }
            break;
        case 'b':
            cfg.bind = optarg;
            break;
        case 'j': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v == 0) {
                fprintf(stderr, "harness serve: bad --journal-limit '%s'\n", optarg);
                free(opts);
                return 2;
            }
            cfg.journal_limit = v;
            break;
        }
        case 'q':
            cfg.log = NULL;
            break;
        case 'h':
            usage(stdout);
            free(opts);
            return 0;
        case 'V':
            printf("harness %s\n", HARNESS_VERSION);
            free(opts);
            return 0;
        default:
            usage(stderr);
            free(opts);
            return 2;
        }
    }
    free(opts);

    /* Load everything first: a broken scenario stops the start, with every error shown. */
    struct diag_list diags;
    diag_init(&diags);
    char **files = scenario_find_files(argv + optind, argc - optind, &diags);
    size_t n_files = 0;
    while (files && files[n_files])
        n_files++;
    struct scenario **loaded = xcalloc(n_files + 1, sizeof *loaded);
    for (size_t i = 0; i < n_files; i++)
        loaded[i] = scenario_load(files[i], &diags);
    if (diags.n) {
        diag_print(&diags, stderr);
        fprintf(stderr, "harness serve: %zu error%s: not serving\n", diags.n,
                diags.n == 1 ? "" : "s");
        for (size_t i = 0; i < n_files; i++)
            if (loaded[i])
                scenario_free(loaded[i]);
        free(loaded);
        scenario_free_files(files);
        diag_free(&diags);
        return 1;
    }
    diag_free(&diags);

    fit_fd_limit(&limits);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[256];
    struct server *srv = server_start(&cfg, err, sizeof err);
    if (!srv) {
        fprintf(stderr, "harness serve: %s\n", err);
        for (size_t i = 0; i < n_files; i++)
            scenario_free(loaded[i]);
        free(loaded);
        scenario_free_files(files);
        return 1;
    }
    json_t *ids = json_array();
    int status = 0;
    for (size_t i = 0; i < n_files; i++) {
        struct instance *in = NULL;
        const char *sid = loaded[i]->id;
        char *want = sid ? xstrdup(sid) : NULL;
        if (registry_add(server_registry(srv), loaded[i], want, &in) != REG_OK) {
            fprintf(stderr, "%s: the scenario id '%s' is used by another file\n", files[i],
                    want ? want : "");
            status = 1;
        } else {
            json_array_append_new(ids, json_string(in->id));
            instance_unref(server_registry(srv), in);
        }
        free(want);
    }
    free(loaded);
    scenario_free_files(files);
    if (status) {
        json_decref(ids);
        server_stop(srv);
        return status;
    }

    char origin[3][80];
    snprintf(origin[0], sizeof origin[0], "http://%s:%u", cfg.bind, server_port(srv, 0));
    snprintf(origin[1], sizeof origin[1], "http://%s:%u", cfg.bind, server_port(srv, 1));
    snprintf(origin[2], sizeof origin[2], "http://localhost:%u", server_port(srv, 0));
    json_t *ready = json_pack("{s:s, s:s, s:s, s:s, s:i, s:o, s:s}", "event", "ready", "main",
                              origin[0], "cross", origin[1], "alt", origin[2], "pid", (int)getpid(),
                              "instances", ids, "version", HARNESS_VERSION);
    char *line = json_dumps(ready, JSON_COMPACT);
    json_decref(ready);
    printf("%s\n", line);
    fflush(stdout);
    free(line);

    int sig = 0;
    sigwait(&set, &sig);
    if (cfg.log)
        fprintf(cfg.log, "harness serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    server_stop(srv);
    return 0;
}
