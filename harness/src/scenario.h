/* scenario — the in-memory form of one scenario file.
 *
 * scenario_load() reads a YAML file (see docs/scenarios.md), validates every part and
 * builds these plain structs; the server only ever reads them. The `client` and `expect`
 * parts are validated here but kept as JSON (jansson) for the drivers, which receive them
 * through `harness check --json` and the control API, with every duration as a number of
 * milliseconds.
 *
 * Ownership: a struct scenario owns everything it points to; scenario_free() releases it.
 * A loaded scenario is immutable and may be shared by many instances and threads.
 *
 * Byte strings (struct bytes) may contain NUL: YAML "\0" and base64 both produce them.
 */
#ifndef HARNESS_SCENARIO_H
#define HARNESS_SCENARIO_H

#include <stddef.h>
#include "diag.h"
#include "scenario_types.h"

/* Load and validate a scenario file. Returns NULL and appends every problem to diags (at
 * least one) if the file is not valid. */
struct scenario *scenario_load(const char *path, struct diag_list *diags);
/* The same without s->doc (NULL): building the whole file as JSON, and freeing it, was a
 * third of loading a scenario, and only `check --json` shows it. */
struct scenario *scenario_load_lean(const char *path, struct diag_list *diags);
/* The same for YAML text in memory (the control API's posted scenarios). name is used in
 * messages; base_dir is where body_file is resolved (NULL: body_file is an error). */
struct scenario *scenario_load_text(const char *text, size_t len, const char *name,
                                    const char *base_dir, struct diag_list *diags);
void scenario_free(struct scenario *s);

struct clientreg;
/* The client registry the loads that follow check `when: {client: NAME}` against
 * (borrowed; `harness check --clients FILE`); NULL (the default): names are not checked.
 * Set it before loading, from one thread. */
void scenario_use_clients(const struct clientreg *clients);

/* Collect scenario files: each argument is a file, or a folder searched recursively for
 * *.yaml / *.yml (sorted, so runs are reproducible). Returns a NULL-terminated malloc'd
 * array of malloc'd paths; problems (a missing path) go to diags. */
char **scenario_find_files(char *const *args, int nargs, struct diag_list *diags);
void scenario_free_files(char **files);

/* The standard reason phrase of a status ("OK", "Not Found"), or "Unknown". */
const char *scenario_reason_phrase(int status);

#endif
