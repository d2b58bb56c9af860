/* fsroot: files read only inside the roots, regular and capped, whatever the path does
 * (`..`, symlinks out, FIFOs, devices, oversized files), with errors that say no content. */
#include "fsroot.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "test_util.h"

static char top[256]; /* a temporary folder: root/ inside, outside.txt beside it */

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", top, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *at(const char *rel)
{
    static char path[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof path[i], "%s/%s", top, rel);
    return path[i];
}

static int setup(void **state)
{
    (void)state;
    snprintf(top, sizeof top, "/tmp/fsroot-test-XXXXXX");
    if (!mkdtemp(top))
        return -1;
    mkdir(at("root"), 0700);
    mkdir(at("root/sub"), 0700);
    put("root/ok.txt", "inside");
    put("outside.txt", "SECRET-LINE\n");
    if (symlink(at("outside.txt"), at("root/escape")) || symlink("sub", at("root/link-in")) ||
        symlink("/dev/zero", at("root/zero")) || mkfifo(at("root/fifo"), 0600))
        return -1;
    int fd = open(at("root/big"), O_CREAT | O_WRONLY, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)FSROOT_MAX_BYTES + 1))
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    return system(cmd);
}

static enum fsroot_status read_status(const struct fsroot *r, const char *path, char *why)
{
    struct fsroot_error e;
    size_t len = 0;
    char *data = fsroot_read(r, path, FSROOT_MAX_BYTES, &len, &e);
    free(data);
    fsroot_describe(&e, why, 200);
    assert_null(strstr(why, "SECRET"));
    return e.status;
}

static void test_confinement(void **state)
{
    (void)state;
    struct fsroot r;
    fsroot_init(&r);
    assert_true(fsroot_add(&r, at("root")));
    char why[200];
    size_t len = 0;
    struct fsroot_error e;
    char *data = fsroot_read(&r, at("root/ok.txt"), FSROOT_MAX_BYTES, &len, &e);
    assert_non_null(data);
    assert_int_equal(len, 6);
    assert_string_equal(data, "inside");
    free(data);
    assert_int_equal(read_status(&r, at("outside.txt"), why), FSROOT_OUTSIDE);
    assert_string_equal(why, "outside the allowed folders");
    assert_int_equal(read_status(&r, at("root/../outside.txt"), why), FSROOT_OUTSIDE);
    assert_int_equal(read_status(&r, at("root/escape"), why), FSROOT_OUTSIDE);
    assert_int_equal(read_status(&r, at("root/zero"), why), FSROOT_OUTSIDE);
    assert_int_equal(read_status(&r, "/etc/hostname", why), FSROOT_OUTSIDE);
    /* a missing file: outside says nothing of what exists there */
    assert_int_equal(read_status(&r, "/etc/no-such-file", why), FSROOT_OUTSIDE);
    assert_int_equal(read_status(&r, at("root/no-such-file"), why), FSROOT_MISSING);
    assert_string_equal(why, "cannot open: No such file or directory");
    assert_int_equal(read_status(&r, at("root/link-in/../ok.txt"), why), FSROOT_OK);
    assert_int_equal(read_status(&r, at("root/fifo"), why), FSROOT_NOT_REGULAR);
    assert_string_equal(why, "not a regular file (a FIFO)");
    assert_int_equal(read_status(&r, at("root/sub"), why), FSROOT_NOT_REGULAR);
    assert_int_equal(read_status(&r, at("root/big"), why), FSROOT_TOO_LARGE);
    assert_non_null(strstr(why, "larger than the limit of 16777216 bytes"));
    /* a root that is a prefix of another name is not its parent */
    assert_false(fsroot_contains(&r, at("rootx/a")));
    assert_true(fsroot_contains(&r, at("root")));
    fsroot_free(&r);
    /* no roots: no file access */
    fsroot_init(&r);
    assert_int_equal(read_status(&r, at("root/ok.txt"), why), FSROOT_NO_ROOTS);
    assert_int_equal(read_status(NULL, at("root/ok.txt"), why), FSROOT_NO_ROOTS);
}

static void test_devices_with_root_everywhere(void **state)
{
    (void)state;
    struct fsroot r;
    fsroot_init(&r);
    assert_true(fsroot_add(&r, "/"));
    char why[200];
    assert_int_equal(read_status(&r, "/dev/zero", why), FSROOT_NOT_REGULAR);
    assert_string_equal(why, "not a regular file (a character device)");
    assert_int_equal(read_status(&r, at("root/fifo"), why), FSROOT_NOT_REGULAR);
    fsroot_free(&r);
}

static void test_under_and_dir(void **state)
{
    (void)state;
    struct fsroot_error e;
    size_t len = 0;
    char *data = fsroot_read_under(at("root"), "sub/../ok.txt", 100, &len, &e);
    assert_non_null(data);
    free(data);
    assert_null(fsroot_read_under(at("root"), "../outside.txt", 100, &len, &e));
    assert_int_equal(e.status, FSROOT_OUTSIDE);
    assert_null(fsroot_read_under(at("root"), "ok.txt", 3, &len, &e));
    assert_int_equal(e.status, FSROOT_TOO_LARGE);
    assert_null(fsroot_read_under(at("root"), "fifo", 100, &len, &e));
    assert_int_equal(e.status, FSROOT_NOT_REGULAR);
    struct fsroot r;
    fsroot_init(&r);
    assert_true(fsroot_add(&r, at("root")));
    char *dir = fsroot_dir(&r, at("root/link-in"), &e);
    assert_non_null(dir);
    assert_string_equal(dir, at("root/sub"));
    free(dir);
    assert_null(fsroot_dir(&r, top, &e));
    assert_int_equal(e.status, FSROOT_OUTSIDE);
    assert_null(fsroot_dir(&r, "/etc", &e));
    assert_int_equal(e.status, FSROOT_OUTSIDE);
    assert_null(fsroot_dir(&r, at("root/ok.txt"), &e));
    assert_int_equal(e.status, FSROOT_NOT_FOLDER);
    fsroot_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_confinement),
        cmocka_unit_test(test_devices_with_root_everywhere),
        cmocka_unit_test(test_under_and_dir),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
