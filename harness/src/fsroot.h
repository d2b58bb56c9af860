/* fsroot — reading files confined to folders ("roots"): the control API's `file` and
 * `base_dir` (roots: the FILES|DIRS and --root of `harness serve`), and a scenario's
 * body_file (root: the scenario's folder).
 *
 * A path is allowed when its real path (every symlink and `..` resolved) is a root or lies
 * under one. The file is opened with O_NOFOLLOW | O_NONBLOCK (opening a FIFO does not
 * block), must be a regular file (fstat: not a FIFO, a device, a socket or a folder) of at
 * most `max` bytes, and what was opened is checked again through /proc/self/fd, so a path
 * swapped for a symlink between the check and the open is refused too. A path that does
 * not exist is judged on its lexical form: a missing file outside the roots is "outside",
 * so the answers tell nothing about what exists elsewhere.
 *
 * Errors are a status (struct fsroot_error); fsroot_describe() words one, never with
 * anything read from a file, nor the resolved path (only the caller knows what it asked).
 */
#ifndef HARNESS_FSROOT_H
#define HARNESS_FSROOT_H

#include <stdbool.h>
#include <stddef.h>

/* The largest file read (a scenario or a body_file): 16 MiB. */
#define FSROOT_MAX_BYTES ((size_t)16 * 1024 * 1024)

enum fsroot_status {
    FSROOT_OK,
    FSROOT_MISSING,     /* no such file inside the roots (err: the errno) */
    FSROOT_OUTSIDE,     /* outside every root */
    FSROOT_NOT_REGULAR, /* a folder, FIFO, device or socket (kind says which) */
    FSROOT_NOT_FOLDER,  /* fsroot_dir(): not a folder */
    FSROOT_TOO_LARGE,   /* more than max bytes */
    FSROOT_UNREADABLE,  /* open or read failed (err: the errno) */
    FSROOT_NO_ROOTS,    /* no roots at all: file access is off */
};

struct fsroot_error {
    enum fsroot_status status;
    int err;          /* errno for MISSING and UNREADABLE */
    const char *kind; /* NOT_REGULAR: "a FIFO", "a character device", ... (static) */
    size_t max;       /* TOO_LARGE: the limit */
};

/* A set of roots: real paths of folders (or single files), owned. */
struct fsroot {
    char **paths;
    size_t n;
};

void fsroot_init(struct fsroot *r);
/* Add a root (a folder, or a single file); false with errno if it cannot be resolved. */
bool fsroot_add(struct fsroot *r, const char *path);
void fsroot_free(struct fsroot *r);
/* Is the real path `real` a root or under one? */
bool fsroot_contains(const struct fsroot *r, const char *real);

/* Read the regular file at path (absolute, or relative to the working directory) if it is
 * inside the roots and at most max bytes: a malloc'd buffer with a NUL after its *len bytes
 * (owned by the caller), or NULL with *e filled in. */
char *fsroot_read(const struct fsroot *r, const char *path, size_t max, size_t *len,
                  struct fsroot_error *e);
/* The same with one root: the folder dir, rel being relative to it (the loader's
 * body_file). */
char *fsroot_read_under(const char *dir, const char *rel, size_t max, size_t *len,
                        struct fsroot_error *e);
/* The real path of the folder at path if it is inside the roots (malloc'd, owned by the
 * caller), or NULL with *e filled in (the control API's base_dir). */
char *fsroot_dir(const struct fsroot *r, const char *path, struct fsroot_error *e);

/* Words for an error, e.g. "not a regular file (a FIFO)" or "outside the allowed folders". */
void fsroot_describe(const struct fsroot_error *e, char *buf, size_t len);

#endif
