/* tmpl — the {{...}} placeholders of header values, text bodies, raw text and URLs.
 *
 * A template is compiled once, when the scenario is loaded (so an unknown placeholder is a
 * `harness check` error with its position), and expanded per request against a context that
 * knows the server's origins, the instance and the request being answered.
 *
 * Placeholders: origin.main, origin.cross, origin.alt, base, instance, request.method,
 * request.path, request.target, request.full_target, request.header.NAME,
 * request.query.NAME, request.body, request.count; and forms of each origin X (main, cross,
 * alt): port.X (the port alone), origin.X.upper (the whole origin upper-cased:
 * HTTP://127.0.0.1:P), origin.X.https (the https scheme instead: a scheme mismatch; no TLS
 * is served on it) and origin.X.userinfo (http://user:pass@HOST:PORT). "{{{{" is a literal
 * "{{".
 */
#ifndef HARNESS_TMPL_H
#define HARNESS_TMPL_H

#include <stdbool.h>
#include <stddef.h>
#include "diag.h"

struct tmpl; /* opaque compiled template */

/* The values a template may ask for. Callbacks return NULL for "absent" (expanded as ""). */
struct tmpl_ctx {
    const char *origin_main;  /* "http://127.0.0.1:PORT" */
    const char *origin_cross; /* "http://127.0.0.1:CROSSPORT" */
    const char *origin_alt;   /* "http://localhost:PORT" */
    const char *base;         /* "/s/INSTANCE" */
    const char *instance;
    const char *method;
    const char *path;        /* relative to the instance prefix */
    const char *target;      /* path + "?" + query as received, relative to the prefix */
    const char *full_target; /* the target as received, prefix included */
    const char *body;
    size_t body_len;
    unsigned long count;
    /* header(name): all values of a request header joined with ", ", or NULL. The returned
     * string stays valid until the request ends. */
    const char *(*header)(void *req, const char *name);
    /* query(name): a percent-decoded query parameter, or NULL. */
    const char *(*query)(void *req, const char *name);
    void *req;
};

/* Compile text (len bytes). On error, appends to diags at positions computed from loc (the
 * position of the first character of text in its file; for YAML plain or double-quoted
 * scalars on one line this is exact) and returns NULL. A text without placeholders compiles
 * to a template whose expansion is the text itself. */
struct tmpl *tmpl_compile(const char *text, size_t len, struct src_loc loc,
                          struct diag_list *diags);
void tmpl_free(struct tmpl *t);
/* True if the template contains no placeholder (its expansion never changes). */
bool tmpl_is_constant(const struct tmpl *t);
/* The text of a constant template (NUL-terminated, *len bytes), owned by the template; NULL
 * if it has placeholders. Lets a body that is the same for every request be shared. */
const char *tmpl_constant_text(const struct tmpl *t, size_t *len);
/* Expand into a new malloc'd NUL-terminated buffer; *out_len gets the length (bytes may
 * contain NUL when the body does). Never returns NULL (aborts on out-of-memory). */
char *tmpl_expand(const struct tmpl *t, const struct tmpl_ctx *ctx, size_t *out_len);

#endif
