/* clientreg — the client names of the registry file; see clientreg.h. */
#include "clientreg.h"

#include <stdlib.h>
#include <string.h>
#include "arena.h"
#include "ld.h"
#include "xalloc.h"
#include "yamldoc.h"

void clientreg_init(struct clientreg *r)
{
    memset(r, 0, sizeof *r);
}

static void add_file(struct clientreg *r, const char *path)
{
    size_t old = r->files ? strlen(r->files) : 0;
    r->files = xrealloc(r->files, old + strlen(path) + 3);
    if (old)
        strcpy(r->files + old, ", ");
    strcpy(r->files + (old ? old + 2 : 0), path);
}

bool clientreg_load(struct clientreg *r, const char *path, struct diag_list *diags)
{
    char err[256];
    size_t len = 0;
    char *text = ld_read_file(path, &len, err, sizeof err);
    if (!text) {
        diag_add(diags, (struct src_loc){path, 0, 0}, "cannot read the client registry: %s", err);
        return false;
    }
    size_t before = diags->n;
    struct arena tree;
    arena_init(&tree);
    struct ynode *root = ydoc_parse(text, len, path, &tree, diags);
    free(text);
    const struct ynode *clients = root ? ymap_get(root, "clients") : NULL;
    bool ok = clients && clients->kind == Y_MAP && diags->n == before;
    if (root && !ok && diags->n == before)
        diag_add(diags, root->loc,
                 "a client registry has a `clients` mapping (drivers/clients.yaml)");
    if (ok) {
        r->names = xrealloc(r->names, (r->n + clients->n) * sizeof *r->names);
        for (size_t i = 0; i < clients->n; i++)
            r->names[r->n++] = xstrdup(clients->keys[i]->str);
        add_file(r, path);
    }
    arena_free(&tree);
    return ok;
}

bool clientreg_has(const struct clientreg *r, const char *name)
{
    size_t len = strcspn(name, "@");
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->names[i], name) ||
            (name[len] == '@' && strlen(r->names[i]) == len && !strncmp(r->names[i], name, len)))
            return true;
    return false;
}

void clientreg_free(struct clientreg *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->names[i]);
    free(r->names);
    free(r->files);
    clientreg_init(r);
}
