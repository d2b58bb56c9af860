/* diag — see diag.h. */
#include "diag.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void diag_init(struct diag_list *d)
{
    memset(d, 0, sizeof *d);
}

void diag_free(struct diag_list *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].file);
        free(d->items[i].message);
    }
    free(d->items);
    memset(d, 0, sizeof *d);
}

void diag_addv(struct diag_list *d, struct src_loc loc, const char *fmt, va_list ap)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 8;
        d->items = realloc(d->items, d->cap * sizeof *d->items);
        if (!d->items)
            abort();
    }
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0)
        abort();
    struct diag *it = &d->items[d->n++];
    it->file = strdup(loc.file ? loc.file : "<input>");
    if (!it->file)
        abort();
    it->line = loc.line;
    it->col = loc.col;
    it->message = msg;
}

void diag_add(struct diag_list *d, struct src_loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_addv(d, loc, fmt, ap);
    va_end(ap);
}

void diag_print(const struct diag_list *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++)
        fprintf(out, "%s:%d:%d: %s\n", d->items[i].file, d->items[i].line, d->items[i].col,
                d->items[i].message);
}
