/* clientreg — the client names of the client registry (drivers/clients.yaml, the one list;
 * docs/adapters.md), read from the registry file itself, so that `harness check --clients
 * FILE` can reject a `when: {client: NAME}` that names no client (a typo would otherwise
 * never match, silently). Only the names are read: the keys of the top-level `clients`
 * mapping.
 *
 * Ownership: a struct clientreg owns its names; clientreg_free() releases them.
 */
#ifndef HARNESS_CLIENTREG_H
#define HARNESS_CLIENTREG_H

#include <stdbool.h>
#include <stddef.h>
#include "diag.h"

struct clientreg {
    char **names;
    size_t n;
    char *files; /* the files read, ", "-separated, for messages */
};

void clientreg_init(struct clientreg *r);
/* Add the clients of one registry file. False (with located errors in diags) if it cannot
 * be read or has no `clients` mapping. */
bool clientreg_load(struct clientreg *r, const char *path, struct diag_list *diags);
/* Whether name is a client: a registry name, or NAME@VERSION of one (another version of an
 * npm client). */
bool clientreg_has(const struct clientreg *r, const char *name);
void clientreg_free(struct clientreg *r);

#endif
