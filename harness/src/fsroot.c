/* fsroot — reading files confined to folders; see fsroot.h. */
#include "fsroot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "xalloc.h"

void fsroot_init(struct fsroot *r)
{
    r->paths = NULL;
    r->n = 0;
}

bool fsroot_add(struct fsroot *r, const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return false;
    r->paths = xrealloc(r->paths, (r->n + 1) * sizeof *r->paths);
    r->paths[r->n++] = xstrdup(real);
    return true;
}

void fsroot_free(struct fsroot *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->paths[i]);
    free(r->paths);
    fsroot_init(r);
}

bool fsroot_contains(const struct fsroot *r, const char *real)
{
    if (real[0] != '/')
        return false;
    for (size_t i = 0; i < r->n; i++) {
        const char *root = r->paths[i];
        size_t n = strlen(root);
        if (!strcmp(root, "/"))
            return true;
        if (!strncmp(real, root, n) && (real[n] == 0 || real[n] == '/'))
            return true;
    }
    return false;
}

/* The absolute form of path with ".", ".." and repeated slashes removed (no symlink
 * resolved): how a path that does not exist is judged. */
static bool lexical(const char *path, char *out, size_t outlen)
{
    char buf[PATH_MAX * 2];
    if (path[0] == '/') {
        snprintf(buf, sizeof buf, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return false;
        snprintf(buf, sizeof buf, "%s/%s", cwd, path);
    }
    size_t n = 0;
    out[0] = 0;
    for (char *save = NULL, *seg = strtok_r(buf, "/", &save); seg;
         seg = strtok_r(NULL, "/", &save)) {
        if (!strcmp(seg, "."))
            continue;
        if (!strcmp(seg, "..")) {
            while (n > 0 && out[n - 1] != '/')
                n--;
            if (n > 0)
                n--; /* the slash */
            out[n] = 0;
            continue;
        }
        size_t len = strlen(seg);
        if (n + 1 + len + 1 > outlen)
            return false;
        out[n++] = '/';
        memcpy(out + n, seg, len + 1);
        n += len;
    }
    if (n == 0)
        snprintf(out, outlen, "/");
    return true;
}

static void set(struct fsroot_error *e, enum fsroot_status status, int err)
{
    *e = (struct fsroot_error){.status = status, .err = err};
}

/* Resolve path and check that it is inside the roots: its real path in real. */
static bool resolve(const struct fsroot *r, const char *path, char real[PATH_MAX],
                    struct fsroot_error *e)
{
    if (!r || r->n == 0) {
        set(e, FSROOT_NO_ROOTS, 0);
        return false;
    }
    if (!*path) {
        set(e, FSROOT_MISSING, ENOENT);
        return false;
    }
    if (realpath(path, real)) {
        if (fsroot_contains(r, real))
            return true;
        set(e, FSROOT_OUTSIDE, 0);
        return false;
    }
    int err = errno;
    /* judge the missing path by its folder (resolved if it exists), else lexically */
    char lex[PATH_MAX], dir[PATH_MAX];
    bool inside = false;
    if (lexical(path, lex, sizeof lex)) {
        char *slash = strrchr(lex, '/');
        *slash = 0;
        if (realpath(*lex ? lex : "/", dir))
            inside = fsroot_contains(r, dir);
        else {
            *slash = '/';
            inside = fsroot_contains(r, lex);
        }
    }
    set(e, inside ? FSROOT_MISSING : FSROOT_OUTSIDE, inside ? err : 0);
    return false;
}

static const char *kind_of(mode_t m)
{
    return S_ISDIR(m)    ? "a folder"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a file";
}

/* Is the file open on fd (as the kernel names it) still inside the roots? */
static bool still_inside(const struct fsroot *r, int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return errno == ENOENT; /* no /proc: the realpath check stands */
    target[n] = 0;
    return fsroot_contains(r, target);
}

char *fsroot_read(const struct fsroot *r, const char *path, size_t max, size_t *len,
                  struct fsroot_error *e)
{
    char real[PATH_MAX];
    if (!resolve(r, path, real, e))
        return NULL;
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        set(e, errno == ELOOP ? FSROOT_OUTSIDE : FSROOT_UNREADABLE, errno == ELOOP ? 0 : errno);
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        set(e, FSROOT_UNREADABLE, errno);
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        set(e, FSROOT_NOT_REGULAR, 0);
        e->kind = kind_of(st.st_mode);
        close(fd);
        return NULL;
    }
    if (!still_inside(r, fd)) {
        set(e, FSROOT_OUTSIDE, 0);
        close(fd);
        return NULL;
    }
    if ((unsigned long long)st.st_size > max) {
        set(e, FSROOT_TOO_LARGE, 0);
        e->max = max;
        close(fd);
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) { /* it grew since fstat */
            if (n > max)
                break;
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            set(e, FSROOT_UNREADABLE, errno);
            free(buf);
            close(fd);
            return NULL;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (n > max) {
        set(e, FSROOT_TOO_LARGE, 0);
        e->max = max;
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    set(e, FSROOT_OK, 0);
    return buf;
}

char *fsroot_read_under(const char *dir, const char *rel, size_t max, size_t *len,
                        struct fsroot_error *e)
{
    struct fsroot one;
    fsroot_init(&one);
    if (!fsroot_add(&one, dir)) {
        set(e, FSROOT_MISSING, errno);
        return NULL;
    }
    char *path = xmalloc(strlen(dir) + strlen(rel) + 2);
    sprintf(path, "%s/%s", dir, rel);
    char *data = fsroot_read(&one, path, max, len, e);
    free(path);
    fsroot_free(&one);
    return data;
}

char *fsroot_dir(const struct fsroot *r, const char *path, struct fsroot_error *e)
{
    char real[PATH_MAX];
    if (!resolve(r, path, real, e))
        return NULL;
    struct stat st;
    if (stat(real, &st) != 0) {
        set(e, FSROOT_UNREADABLE, errno);
        return NULL;
    }
    if (!S_ISDIR(st.st_mode)) {
        set(e, FSROOT_NOT_FOLDER, 0);
        return NULL;
    }
    set(e, FSROOT_OK, 0);
    return xstrdup(real);
}

void fsroot_describe(const struct fsroot_error *e, char *buf, size_t len)
{
    switch (e->status) {
    case FSROOT_OK:
        snprintf(buf, len, "ok");
        break;
    case FSROOT_MISSING:
        snprintf(buf, len, "cannot open: %s", strerror(e->err ? e->err : ENOENT));
        break;
    case FSROOT_OUTSIDE:
        snprintf(buf, len, "outside the allowed folders");
        break;
    case FSROOT_NOT_REGULAR:
        snprintf(buf, len, "not a regular file (%s)", e->kind ? e->kind : "unknown");
        break;
    case FSROOT_NOT_FOLDER:
        snprintf(buf, len, "not a folder");
        break;
    case FSROOT_TOO_LARGE:
        snprintf(buf, len, "larger than the limit of %zu bytes", e->max);
        break;
    case FSROOT_UNREADABLE:
        snprintf(buf, len, "cannot read: %s", strerror(e->err));
        break;
    case FSROOT_NO_ROOTS:
        snprintf(buf, len,
                 "file access is off (no folders were given to harness serve: "
                 "FILES|DIRS or --root DIR)");
        break;
    }
}
