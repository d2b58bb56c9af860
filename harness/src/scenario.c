/* scenario — loading a scenario file (see scenario.h, docs/scenarios.md), and freeing it.
 *
 * The YAML tree (yamldoc.h) is walked once, part by part (scenario_load.h): identity here,
 * then server, client and expect. Every check that fails appends a located message and the
 * walk goes on, so one run reports every error of a file. The JSON forms (client, expect,
 * the whole doc) are made at the end, with every duration read as milliseconds (ld.h).
 */
#include "scenario.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "arena.h"
#include "scenario_load.h"
#include "xalloc.h"
#include "yamldoc.h"

static bool id_ok(const char *id)
{
    if (!*id || !((*id >= 'a' && *id <= 'z') || (*id >= '0' && *id <= '9')))
        return false;
    for (const char *c = id; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '-' ||
              *c == '_'))
            return false;
    return true;
}

static void identity(struct ld *ld, const struct ynode *root)
{
    struct scenario *s = ld->s;
    const struct ynode *n;
    if (!(n = ymap_get(root, "id"))) {
        ld_err(ld, root, "missing 'id' (a unique dotted name such as xhr.timeout.basic)");
    } else if (ld_string(ld, n, "id")) {
        if (!id_ok(n->str))
            ld_err(ld, n,
                   "id '%s': use lower-case letters, digits, '.', '-' and '_', starting "
                   "with a letter or digit",
                   n->str);
        s->id = xstrdup(n->str);
    }
    if (!(n = ymap_get(root, "title")))
        ld_err(ld, root, "missing 'title' (one line: what the scenario checks)");
    else if (ld_text(ld, n, "title"))
        s->title = xstrdup(n->str);
    if (!(n = ymap_get(root, "spec"))) {
        ld_err(ld, root, "missing 'spec' (the URL of the spec section it checks)");
    } else if (ld_string(ld, n, "spec")) {
        if (strncmp(n->str, "https://", 8) && strncmp(n->str, "http://", 7))
            ld_err(ld, n, "spec: expected the URL of a spec section, got '%s'", n->str);
        s->spec = xstrdup(n->str);
    }
    if ((n = ymap_get(root, "tls")))
        ld_bool(ld, n, &s->tls, "tls");
    int site;
    if ((n = ymap_get(root, "site")) && ld_choice(ld, n, &KEYS_SCENARIO, "site", &site, "site"))
        s->site = (enum origin_site)(site + 1);
    if ((n = ymap_get(root, "description")) && ld_text(ld, n, "description"))
        s->description = xstrdup(n->str);
    if ((n = ymap_get(root, "tags")) && ld_is_seq(ld, n, "tags")) {
        s->tags = xcalloc(n->n, sizeof *s->tags);
        for (size_t i = 0; i < n->n; i++)
            if (ld_string(ld, n->values[i], "a tag"))
                s->tags[s->n_tags++] = xstrdup(n->values[i]->str);
    }
}

static void load_parts(struct ld *ld, const struct ynode *root, bool want_doc)
{
    struct scenario *s = ld->s;
    ld_keys(ld, root, &KEYS_SCENARIO);
    identity(ld, root);
    scenario_server_load(ld, ymap_get(root, "server"));
    const struct ynode *client = ymap_get(root, "client");
    bool client_ok = false, expect_ok = true;
    if (!client)
        ld_err(ld, root, "missing 'client' (what the client under test is asked to do)");
    else
        client_ok = scenario_client_load(ld, client);
    const struct ynode *expect = ymap_get(root, "expect");
    if (expect)
        expect_ok = scenario_expect_load(ld, expect, client);
    /* the JSON forms, durations as milliseconds */
    if (client_ok)
        s->client = ld_to_json(ld, client);
    if (expect_ok && expect)
        s->expect = expect->kind == Y_MAP ? ld_to_json(ld, expect) : json_object();
    if (want_doc)
        s->doc = ld_to_json(ld, root);
}

/* scenario_use_clients(): set by `harness check --clients`, read by every load after it */
static const struct clientreg *use_clients;

void scenario_use_clients(const struct clientreg *clients)
{
    use_clients = clients;
}

static struct scenario *load_tree(struct ynode *root, const char *file, const char *dir,
                                  struct diag_list *diags, bool want_doc)
{
    size_t before = diags->n;
    struct scenario *s = xcalloc(1, sizeof *s);
    s->file = xstrdup(file);
    s->dir = dir ? xstrdup(dir) : NULL;
    struct ld ld = {.d = diags, .file = s->file, .dir = dir, .s = s, .clients = use_clients};
    if (root->kind != Y_MAP) {
        ld_err(&ld, root,
               "a scenario is a mapping with id, title, spec, server, client and "
               "expect; got %s",
               ynode_kind_name(root));
    } else {
        load_parts(&ld, root, want_doc);
        if (s->doc)
            json_object_set_new(s->doc, "file", json_string(file));
    }
    ld_done(&ld);
    if (diags->n > before) {
        scenario_free(s);
        return NULL;
    }
    return s;
}

static struct scenario *load_text(const char *text, size_t len, const char *name,
                                  const char *base_dir, struct diag_list *diags, bool want_doc)
{
    /* the file name must outlive the tree for its locations: use the scenario's copy */
    char *file = xstrdup(name);
    size_t before = diags->n;
    struct arena tree; /* the YAML tree: nothing of it is kept past the load */
    arena_init(&tree);
    struct ynode *root = ydoc_parse(text, len, file, &tree, diags);
    struct scenario *s = NULL;
    if (root && diags->n == before)
        s = load_tree(root, file, base_dir, diags, want_doc);
    else if (root)
        scenario_free(load_tree(root, file, base_dir, diags, false)); /* report the rest too */
    arena_free(&tree);
    free(file);
    return s;
}

struct scenario *scenario_load_text(const char *text, size_t len, const char *name,
                                    const char *base_dir, struct diag_list *diags)
{
    return load_text(text, len, name, base_dir, diags, true);
}

/* The folder whose realpath() was taken last, and that real path ("" if it failed): the
 * files of a folder are loaded one after another. (Files are loaded by path only when
 * check and serve start; a folder renamed or a link changed later in the same process
 * would be seen late. The control API reads its files through fsroot, not here.) */
static pthread_mutex_t real_lock = PTHREAD_MUTEX_INITIALIZER;
static char real_dir_of[PATH_MAX], real_dir[PATH_MAX];

/* realpath(path, out), with the folder resolved once for all its files: when the last
 * component of path is a file that is not a symbolic link (readlink() says EINVAL), its real
 * path is its folder's followed by its name. Anything else is left to realpath(). */
static bool real_path(const char *path, char out[PATH_MAX])
{
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    size_t dir_len = slash ? (size_t)(slash - path) + (slash == path) : 1;
    char link;
    if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || dir_len >= PATH_MAX ||
        readlink(path, &link, 1) >= 0 || errno != EINVAL)
        return realpath(path, out) != NULL;
    pthread_mutex_lock(&real_lock);
    if (strlen(real_dir_of) != dir_len || memcmp(real_dir_of, slash ? path : ".", dir_len)) {
        memcpy(real_dir_of, slash ? path : ".", dir_len);
        real_dir_of[dir_len] = 0;
        if (!realpath(real_dir_of, real_dir))
            real_dir[0] = 0;
    }
    size_t real_len = strlen(real_dir), name_len = strlen(name);
    bool root = real_len == 1; /* "/" */
    bool ok = real_len && real_len + !root + name_len < PATH_MAX;
    if (ok) {
        memcpy(out, real_dir, real_len);
        out[real_len] = '/';
        memcpy(out + real_len + !root, name, name_len + 1);
    }
    pthread_mutex_unlock(&real_lock);
    return ok || realpath(path, out) != NULL;
}

static struct scenario *load_file(const char *path, struct diag_list *diags, bool want_doc)
{
    char err[256];
    size_t len = 0;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC), open_err = errno;
    bool regular = (fd >= 0 ? fstat(fd, &st) : stat(path, &st)) == 0 && S_ISREG(st.st_mode);
    if (regular && (uintmax_t)st.st_size > YDOC_MAX_BYTES) {
        /* not read at all: yamldoc would refuse it */
        if (fd >= 0)
            close(fd);
        diag_add(diags, (struct src_loc){path, 1, 1},
                 "the file is %ju bytes: a scenario is at most %u bytes (16 MiB)",
                 (uintmax_t)st.st_size, YDOC_MAX_BYTES);
        return NULL;
    }
    char *text = NULL;
    if (fd < 0)
        snprintf(err, sizeof err, "%s", strerror(open_err));
    else
        text = ld_read_fd(fd, regular ? (size_t)st.st_size : 0, &len, err, sizeof err);
    if (!text) {
        diag_add(diags, (struct src_loc){path, 0, 0}, "cannot read the file: %s", err);
        return NULL;
    }
    char real[PATH_MAX];
    const char *abs = real_path(path, real) ? real : path;
    char *dir = xstrdup(abs);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    struct scenario *s = load_text(text, len, path, dir, diags, want_doc);
    if (s && s->doc)
        json_object_set_new(s->doc, "file", json_string(abs));
    free(dir);
    free(text);
    return s;
}

struct scenario *scenario_load(const char *path, struct diag_list *diags)
{
    return load_file(path, diags, true);
}

struct scenario *scenario_load_lean(const char *path, struct diag_list *diags)
{
    return load_file(path, diags, false);
}

void scenario_free(struct scenario *s)
{
    if (!s)
        return;
    scenario_server_free(s);
    for (size_t t = 0; t < s->n_tags; t++)
        free(s->tags[t]);
    free(s->tags);
    json_decref(s->client);
    json_decref(s->expect);
    json_decref(s->doc);
    free(s->file);
    free(s->dir);
    free(s->id);
    free(s->title);
    free(s->spec);
    free(s->description);
    free(s);
}

const char *scenario_reason_phrase(int status)
{
    return MHD_get_reason_phrase_for((unsigned)status);
}
