/* diag — a list of located error messages.
 *
 * Every problem found in a scenario file becomes one entry "file:line:column: message"
 * (1-based line and column). Loading never stops at the first problem: each stage appends
 * to the list and goes on, so an author sees all errors of a file at once.
 */
#ifndef HARNESS_DIAG_H
#define HARNESS_DIAG_H

#include <stdarg.h>
#include <stdio.h>
#include <stddef.h>

/* A place in a source file. line/col are 1-based; 0 means unknown. */
struct src_loc {
    const char *file; /* borrowed: owned by whoever loaded the file */
    int line;
    int col;
};

struct diag {
    char *file; /* owned copy */
    int line;
    int col;
    char *message; /* owned */
};

struct diag_list {
    struct diag *items;
    size_t n, cap;
};

void diag_init(struct diag_list *d);
void diag_free(struct diag_list *d);
/* Append a message at loc (printf-style). Never fails silently: aborts on out-of-memory. */
void diag_add(struct diag_list *d, struct src_loc loc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a va_list. */
void diag_addv(struct diag_list *d, struct src_loc loc, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* Print every entry as "file:line:column: message\n". */
void diag_print(const struct diag_list *d, FILE *out);

#endif
