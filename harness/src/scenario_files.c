/* scenario_files — finding scenario files: the arguments of `check` and `serve`, each a
 * file or a folder searched recursively for *.yaml / *.yml (see scenario.h). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "scenario.h"
#include "xalloc.h"

struct file_list {
    char **items; /* NULL-terminated */
    size_t n, cap;
};

static void push(struct file_list *l, const char *p)
{
    if (l->n + 2 > l->cap) {
        l->cap = l->cap ? l->cap * 2 : 16;
        l->items = xrealloc(l->items, l->cap * sizeof *l->items);
    }
    l->items[l->n++] = xstrdup(p);
    l->items[l->n] = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool yaml_name(const char *name)
{
    size_t n = strlen(name);
    return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static void walk(struct file_list *l, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        /* the entry's type as stat() would tell it, without a stat() when readdir() knows it
         * (not for a symbolic link: stat() follows it) */
        bool dir = e->d_type == DT_DIR, reg = e->d_type == DT_REG;
        struct stat st;
        if (!dir && !reg) {
            if (stat(path, &st))
                continue;
            dir = S_ISDIR(st.st_mode);
            reg = S_ISREG(st.st_mode);
        }
        if (dir)
            walk(l, path);
        else if (reg && yaml_name(e->d_name))
            push(l, path);
    }
    closedir(d);
}

char **scenario_find_files(char *const *args, int nargs, struct diag_list *diags)
{
    struct file_list l = {.items = xcalloc(1, sizeof(char *)), .cap = 1};
    for (int i = 0; i < nargs; i++) {
        struct stat st;
        if (stat(args[i], &st)) {
            diag_add(diags, (struct src_loc){args[i], 0, 0}, "%s", strerror(errno));
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            size_t from = l.n;
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%s", args[i]);
            size_t dl = strlen(dir);
            while (dl > 1 && dir[dl - 1] == '/')
                dir[--dl] = 0;
            walk(&l, dir);
            qsort(l.items + from, l.n - from, sizeof *l.items, cmp_str);
        } else {
            push(&l, args[i]);
        }
    }
    return l.items;
}

void scenario_free_files(char **files)
{
    if (!files)
        return;
    for (char **f = files; *f; f++)
        free(*f);
    free(files);
}
