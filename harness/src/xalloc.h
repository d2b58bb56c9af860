/* xalloc — allocation that cannot fail quietly.
 *
 * The server and the loader treat running out of memory as fatal: these wrappers abort
 * instead of returning NULL, so callers need no error paths for it. A zero size allocates
 * one byte, so the result is never NULL.
 */
#ifndef HARNESS_XALLOC_H
#define HARNESS_XALLOC_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
