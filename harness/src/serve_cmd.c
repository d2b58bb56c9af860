/* serve_cmd — `harness serve`: load scenarios, listen, print the ready line, run until
 * SIGINT or SIGTERM, then stop cleanly (exit 0).
 *
 * The ready line is one JSON object on stdout, printed once every port listens:
 *   {"event":"ready","main":"http://127.0.0.1:P","cross":"http://127.0.0.1:Q",
 *    "alt":"http://localhost:P","control":"http://127.0.0.1:C","token":T,"pid":N,
 *    "instances":[IDS],"main_tls":"https://127.0.0.1:S","cross_tls":…,"alt_tls":…,
 *    "cert_expired":"https://127.0.0.1:E",…,"ca":"/tmp/comet-harness-XXXXXX/ca.pem"}
 * TLS (docs/tls.md): a local CA and a leaf for every name the origins use are made at
 * start (tls_cert.h), or brought (--cert/--key/--ca, and --ca-key for the flawed leaves);
 * the CA's PEM goes to a file of a private temporary folder, removed at exit, whose path
 * is the ready line's "ca". The CA's key never leaves memory.
 * The control API's token is generated (ctlauth.h) unless given (--token, --token-file,
 * HARNESS_TOKEN); off loopback it must be given. The control API reads files only under
 * the FILES|DIRS served and the --root folders (fsroot.h).
 * Signals are blocked in every thread and taken with sigwait() by the main thread, so no
 * handler ever runs inside libmicrohttpd.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "commands.h"
#include "ctlauth.h"
#include "fsroot.h"
#include "caps.h"
#include "origins.h"
#include "tls_cert.h"
#include "xalloc.h"
#include "scenario.h"
#include "server.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: harness serve [FILES|DIRS] [--port N] [--cross-port N] [--control-port N]\n"
          "                     [--bind ADDR] [--public-host NAME] [--root DIR]...\n"
          "                     [--token TEXT | --token-file FILE] [--journal-limit N]\n"
          "                     [--tls-port N] [--tls-cross-port N]\n"
          "                     [--cert FILE --key FILE --ca FILE [--ca-key FILE]]\n"
          "                     [LIMITS] [--quiet]\n"
          "\n"
          "Serve scenarios: each file (or every *.yaml under a folder) is loaded as an instance\n"
          "named by its id, at /s/ID/ on both ports. More are loaded through the control API\n"
          "(POST /_harness/instances on the control port, see docs/control-api.md).\n"
          "\n"
          "  --port N           the main port (default 0: any free port)\n"
          "  --cross-port N     the second port, another origin for CORS (default 0: any)\n"
          "  --control-port N   the control API's port (default 0: any free port)\n"
          "  --bind ADDR        the IPv4 address to listen on (default 127.0.0.1); off\n"
          "                     loopback a token must be given\n"
          "  --public-host NAME the host name (or address) in every origin and URL handed\n"
          "                     to clients (default: the --bind address)\n"
          "  --root DIR         the control API may read scenario files and base_dir under\n"
          "                     DIR (repeatable; the FILES|DIRS served are roots too)\n"
          "  --token TEXT       the control API's token (default: HARNESS_TOKEN, else 32\n"
          "                     random bytes in hex); 16 to 256 characters\n"
          "  --token-file FILE  the token is the first line of FILE\n"
          "  --journal-limit N  entries kept per instance journal (default 10000)\n"
          "  --tls-port N       main's https twin (default 0: any free port)\n"
          "  --tls-cross-port N cross's https twin (default 0: any free port)\n"
          "  --cert FILE        serve https with this certificate (PEM, chain after it)\n"
          "  --key FILE         and its private key (PEM, not encrypted)\n"
          "  --ca FILE          the CA clients are to trust (the ready line's \"ca\")\n"
          "  --ca-key FILE      the CA's key: it signs the deliberately wrong certificates\n"
          "                     (without it, the cert_* origins are not served)\n"
          "                     Without --cert, a local CA and certificate are made at start.\n"
          "  --quiet            no log line per request on stderr\n"
          "\n"
          "Limits (docs/control-api.md, \"Limits\"); BYTES may end in K, M or G:\n",
          out);
    caps_usage(out);
    fputs("\n"
          "Once listening it prints one JSON line on stdout:\n"
          "  {\"event\":\"ready\",\"main\":URL,\"cross\":URL,\"alt\":URL,\"control\":URL,\n"
          "   \"token\":TOKEN,\"pid\":N,\"main_tls\":URL,...,\"ca\":PATH,...}\n"
          "Every control request but GET /_harness/health carries X-Harness-Token: TOKEN.\n"
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

/* The token of a --token-file: its first line, without the newline. */
static bool read_token_file(const char *path, char token[CTLAUTH_TOKEN_MAX + 1])
{
    struct fsroot one;
    fsroot_init(&one);
    struct fsroot_error fe = {.status = FSROOT_MISSING, .err = errno};
    size_t len = 0;
    char *text = fsroot_add(&one, path) ? fsroot_read(&one, path, 4096, &len, &fe) : NULL;
    if (!text && fe.status == FSROOT_MISSING)
        fe.err = errno ? errno : fe.err;
    fsroot_free(&one);
    if (!text) {
        char why[200];
        fsroot_describe(&fe, why, sizeof why);
        fprintf(stderr, "harness serve: --token-file %s: %s\n", path, why);
        return false;
    }
    text[strcspn(text, "\r\n")] = 0;
    snprintf(token, CTLAUTH_TOKEN_MAX + 1, "%s", text);
    bool fits = strlen(text) <= CTLAUTH_TOKEN_MAX;
    free(text);
    if (!fits)
        fprintf(stderr, "harness serve: --token-file %s: the token is too long\n", path);
    return fits;
}

/* Descriptors kept for everything but connections: scenario and body files, the journal
 * API's clients, libmicrohttpd's own. */
#define FD_RESERVE 64u

/* Raise the descriptor limit to the hard one; if max_connections does not fit under it,
 * lower max_connections (said on stderr): at the descriptor limit a server accepts nothing
 * and answers nobody, while under max_connections it refuses the extra ones only. */
static void fit_fd_limit(struct caps *lim)
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

/* ---------------------------------------------------------------- TLS */

struct tls_files {
    const char *cert, *key, *ca, *ca_key; /* --cert, --key, --ca, --ca-key (borrowed) */
};

/* The certificates of a run, and the CA file clients are given. */
struct tls_setup {
    struct tls_cert *ca; /* with its key: signs the flawed leaves (NULL: none are made) */
    struct tls_cert *leaf;
    struct tls_cert *flawed[ORIGIN_N_FLAWED];
    char dir[PATH_MAX - 16]; /* the temporary folder of ca.pem, or "" */
    char ca_path[PATH_MAX];  /* the ready line's "ca" */
};

static void tls_setup_free(struct tls_setup *t)
{
    tls_cert_free(t->ca);
    tls_cert_free(t->leaf);
    for (int f = 0; f < ORIGIN_N_FLAWED; f++)
        tls_cert_free(t->flawed[f]);
    if (t->dir[0]) {
        unlink(t->ca_path);
        rmdir(t->dir);
    }
    memset(t, 0, sizeof *t);
}

/* Print err ("FILE: what is wrong") and free it. */
static bool tls_fail(char *err)
{
    fprintf(stderr, "harness serve: %s\n", err ? err : "TLS setup failed");
    free(err);
    return false;
}

/* Make (or load) the certificates for the names the origins use (server_hosts()); write
 * the made CA to a private temporary folder. False after printing why. */
static bool tls_setup_make(const struct server_config *cfg, const struct tls_files *files,
                           struct tls_setup *t)
{
    memset(t, 0, sizeof *t);
    char *err = NULL;
    const char *public_host, *alt_host;
    server_hosts(cfg, &public_host, &alt_host);
    const char *names[ORIGIN_MAX_HOSTS];
    size_t n = origins_cert_names(public_host, alt_host, names);
    time_t now = time(NULL);
    if (files->cert) {
        if (!(t->leaf = tls_cert_load(files->cert, files->key, &err)))
            return tls_fail(err);
        char *pem = tls_cert_load_ca(files->ca, &err);
        if (!pem)
            return tls_fail(err);
        free(pem);
        if (!realpath(files->ca, t->ca_path))
            snprintf(t->ca_path, sizeof t->ca_path, "%s", files->ca);
        if (files->ca_key) {
            if (!(t->ca = tls_cert_load(files->ca, files->ca_key, &err)))
                return tls_fail(err);
            if (!tls_cert_is_ca(t->ca)) {
                fprintf(stderr, "harness serve: --ca %s: not a CA (basic constraints)\n",
                        files->ca);
                return false;
            }
        }
    } else {
        t->ca = tls_cert_ca_new("Comet Harness local CA", now);
        if (!(t->leaf = tls_cert_leaf_new(t->ca, names, n, TLS_CERT_GOOD, now, &err)))
            return tls_fail(err);
        const char *tmp = getenv("TMPDIR");
        snprintf(t->dir, sizeof t->dir, "%s/comet-harness-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(t->dir)) {
            fprintf(stderr, "harness serve: cannot make a folder for the CA (%s): %s\n", t->dir,
                    strerror(errno));
            t->dir[0] = 0;
            return false;
        }
        snprintf(t->ca_path, sizeof t->ca_path, "%s/ca.pem", t->dir);
        if (!tls_cert_write(t->ca_path, tls_cert_pem(t->ca), false, &err))
            return tls_fail(err);
    }
    if (t->ca)
        for (int f = 0; f < ORIGIN_N_FLAWED; f++)
            if (!(t->flawed[f] = tls_cert_leaf_new(
                      t->ca, names, n, (enum tls_cert_flaw)(TLS_CERT_EXPIRED + f), now, &err)))
                return tls_fail(err);
    return true;
}

/* getopt_long's value for the i-th option of CAPS_OPTIONS. */
#define LIMIT_OPT 1000

static int serve(const struct server_config *cfg, struct caps *limits, const struct tls_files *tls,
                 int nargs, char **args);

int cmd_serve(int argc, char **argv)
{
    static const struct option base[] = {
        {"port", required_argument, NULL, 'p'},
        {"cross-port", required_argument, NULL, 'c'},
        {"control-port", required_argument, NULL, 'C'},
        {"bind", required_argument, NULL, 'b'},
        {"public-host", required_argument, NULL, 'H'},
        {"root", required_argument, NULL, 'r'},
        {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'T'},
        {"journal-limit", required_argument, NULL, 'j'},
        {"tls-port", required_argument, NULL, 's'},
        {"tls-cross-port", required_argument, NULL, 'S'},
        {"cert", required_argument, NULL, 'e'},
        {"key", required_argument, NULL, 'k'},
        {"ca", required_argument, NULL, 'a'},
        {"ca-key", required_argument, NULL, 'K'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
    };
    size_t n_base = sizeof base / sizeof base[0];
    struct option *opts = xcalloc(n_base + CAPS_N_OPTIONS + 1, sizeof *opts);
    memcpy(opts, base, sizeof base);
    for (size_t i = 0; i < CAPS_N_OPTIONS; i++)
        opts[n_base + i] =
            (struct option){CAPS_OPTIONS[i].name, required_argument, NULL, LIMIT_OPT + (int)i};
    struct caps limits = CAPS_DEFAULT;
    struct server_config cfg = {
        .bind = "127.0.0.1", .journal_limit = 10000, .log = stderr, .limits = &limits};
    struct tls_files tls = {0};
    char token[CTLAUTH_TOKEN_MAX + 1] = "";
    const char *token_text = NULL, *token_file = NULL;
    const char **root_dirs = xcalloc((size_t)argc + 1, sizeof *root_dirs);
    size_t n_root_dirs = 0;
    int status = 2;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:c:b:j:qhV", opts, NULL)) != -1) {
        if (c >= LIMIT_OPT && c < LIMIT_OPT + (int)CAPS_N_OPTIONS) {
            const struct caps_option *o = &CAPS_OPTIONS[c - LIMIT_OPT];
            if (!caps_set(&limits, o, optarg) ||
                (!strcmp(o->name, "max-connections") && !limits.max_connections)) {
                fprintf(stderr, "harness serve: bad --%s '%s'\n", o->name, optarg);
                goto out;
            }
            continue;
        }
        switch (c) {
        case 'p':
        case 'c':
        case 'C':
        case 's':
        case 'S':
            if (!parse_port(optarg, c == 'p'   ? &cfg.port
                                    : c == 'c' ? &cfg.cross_port
                                    : c == 's' ? &cfg.tls_port
                                    : c == 'S' ? &cfg.tls_cross_port
                                               : &cfg.control_port)) {
                fprintf(stderr, "harness serve: bad port '%s'\n", optarg);
                goto out;
            }
            break;
        case 'b':
            cfg.bind = optarg;
            break;
        case 'e':
            tls.cert = optarg;
            break;
        case 'k':
            tls.key = optarg;
            break;
        case 'a':
            tls.ca = optarg;
            break;
        case 'K':
            tls.ca_key = optarg;
            break;
        case 'H':
            if (!*optarg || strpbrk(optarg, "/:@ \t\r\n")) {
                fprintf(stderr,
                        "harness serve: bad --public-host '%s' (a host name or an IPv4 "
                        "address)\n",
                        optarg);
                goto out;
            }
            cfg.public_host = optarg;
            break;
        case 'r':
            root_dirs[n_root_dirs++] = optarg;
            break;
        case 't':
            token_text = optarg;
            break;
        case 'T':
            token_file = optarg;
            break;
        case 'j': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v == 0) {
                fprintf(stderr, "harness serve: bad --journal-limit '%s'\n", optarg);
                goto out;
            }
            cfg.journal_limit = v;
            break;
        }
        case 'q':
            cfg.log = NULL;
            break;
        case 'h':
            usage(stdout);
            status = 0;
            goto out;
        case 'V':
            printf("harness %s\n", HARNESS_VERSION);
            status = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    free(opts);
    opts = NULL;

    if ((tls.cert || tls.key || tls.ca || tls.ca_key) && !(tls.cert && tls.key && tls.ca)) {
        fprintf(stderr, "harness serve: bring --cert, --key and --ca together (and --ca-key "
                        "for the deliberately wrong certificates), or none of them\n");
        goto out;
    }

    /* The token: given (--token, --token-file, HARNESS_TOKEN), else random; off loopback
     * it must be given, since whoever reaches the port could otherwise guess nothing but
     * also be told nothing of it. */
    if (token_text && token_file) {
        fprintf(stderr, "harness serve: give --token or --token-file, not both\n");
        goto out;
    }
    if (!token_text && !token_file && getenv("HARNESS_TOKEN") && *getenv("HARNESS_TOKEN"))
        token_text = getenv("HARNESS_TOKEN");
    if (token_file && !read_token_file(token_file, token))
        goto out;
    if (token_text)
        snprintf(token, sizeof token, "%s", token_text);
    if (token_text || token_file) {
        char why[120];
        if (strlen(token_text ? token_text : token) > CTLAUTH_TOKEN_MAX ||
            !ctlauth_token_ok(token, why, sizeof why)) {
            fprintf(stderr, "harness serve: bad token: %s\n",
                    strlen(token) > CTLAUTH_TOKEN_MAX ? "too long" : why);
            goto out;
        }
    } else if (!ctlauth_is_loopback(cfg.bind)) {
        fprintf(stderr,
                "harness serve: --bind %s is not a loopback address: give the control "
                "API a token (--token, --token-file or HARNESS_TOKEN)\n",
                cfg.bind);
        goto out;
    } else if (!ctlauth_new_token(token)) {
        fprintf(stderr, "harness serve: no randomness for the token: %s\n", strerror(errno));
        status = 1;
        goto out;
    }
    cfg.token = token;

    /* The roots of the control API's file access: the --root folders and what is served. */
    struct fsroot roots;
    fsroot_init(&roots);
    cfg.roots = &roots;
    for (size_t i = 0; i < n_root_dirs; i++) {
        struct stat st;
        errno = 0;
        if (stat(root_dirs[i], &st) != 0 || !S_ISDIR(st.st_mode) ||
            !fsroot_add(&roots, root_dirs[i])) {
            fprintf(stderr, "harness serve: --root %s: %s\n", root_dirs[i],
                    errno ? strerror(errno) : "not a folder");
            fsroot_free(&roots);
            goto out;
        }
    }
    for (int i = optind; i < argc; i++)
        fsroot_add(&roots, argv[i]); /* a missing one is reported below */
    free(root_dirs);
    root_dirs = NULL;
    status = serve(&cfg, &limits, &tls, argc - optind, argv + optind);
    fsroot_free(&roots);
out:
    free(opts);
    free(root_dirs);
    return status;
}

/* Load, listen, print the ready line, wait for a signal, stop. */
static int serve(const struct server_config *cfg_in, struct caps *limits,
                 const struct tls_files *tls_files, int nargs, char **args)
{
    struct server_config cfg = *cfg_in;

    /* Load everything first: a broken scenario stops the start, with every error shown. */
    struct diag_list diags;
    diag_init(&diags);
    char **files = scenario_find_files(args, nargs, &diags);
    size_t n_files = 0;
    while (files && files[n_files])
        n_files++;
    struct scenario **loaded = xcalloc(n_files + 1, sizeof *loaded);
    for (size_t i = 0; i < n_files; i++)
        loaded[i] = scenario_load_lean(files[i], &diags);
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

    fit_fd_limit(limits);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct tls_setup tls;
    bool tls_ok = tls_setup_make(&cfg, tls_files, &tls);
    cfg.tls_leaf = tls.leaf;
    for (int f = 0; f < ORIGIN_N_FLAWED; f++)
        cfg.tls_flawed[f] = tls.flawed[f];
    char err[256];
    struct server *srv = tls_ok ? server_start(&cfg, err, sizeof err) : NULL;
    if (!srv) {
        if (tls_ok)
            fprintf(stderr, "harness serve: %s\n", err);
        tls_setup_free(&tls);
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
        tls_setup_free(&tls);
        return status;
    }

    json_t *ready =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:s}", "event", "ready", "main",
                  server_origin(srv, 0), "cross", server_origin(srv, 1), "alt",
                  server_origin(srv, 2), "control", server_control_url(srv), "token", cfg.token,
                  "pid", (int)getpid(), "instances", ids, "version", HARNESS_VERSION);
    /* the https origins (origins.h; the *_http twins are main, cross, alt) and the CA */
    for (int i = ORIGIN_MAIN_TLS; i < ORIGIN_N; i++)
        if ((i < ORIGIN_MAIN_HTTP || i > ORIGIN_ALT_HTTP) && *server_origin(srv, i))
            json_object_set_new(ready, ORIGIN_NAMES[i], json_string(server_origin(srv, i)));
    json_object_set_new(ready, "ca", json_string(tls.ca_path));
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
    tls_setup_free(&tls);
    return 0;
}
