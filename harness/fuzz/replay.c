/* Replays fuzz inputs through a libFuzzer target without libFuzzer: every file named on the
 * command line, or found directly inside a directory named there, is read whole and handed
 * to LLVMFuzzerTestOneInput once. It is linked with one target at a time
 * (harness/fuzz/fuzz_NAME.c -> build/tests/fuzz_replay_NAME). `make unit-tests` runs each
 * target's checked-in corpus (harness/fuzz/corpus/NAME, inputs that together reach every
 * edge the fuzzer found) this way with gcc, and `make sanitizer-tests` again under
 * ASan/UBSan, so that the targets keep building and the code keeps accepting all of them on
 * machines without clang. Crashes not fixed yet (harness/fuzz/crashers/NAME) are not
 * replayed by make; name one here to reproduce it.
 *
 *   build/tests/fuzz_replay_scenario harness/fuzz/corpus/scenario [more files or dirs]
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads one file and runs it; returns 0, or 1 if it could not be read. */
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    int bad = ferror(f) || !buf;
    fclose(f);
    if (bad) {
        fprintf(stderr, "%s: could not read\n", path);
        free(buf);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int failures = 0;
    long inputs = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            failures++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            failures += replay_file(argv[i]);
            inputs++;
            continue;
        }
        DIR *dir = opendir(argv[i]);
        if (!dir) {
            perror(argv[i]);
            failures++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            failures += replay_file(path);
            inputs++;
        }
        closedir(dir);
    }
    printf("replayed %ld inputs, %d unreadable\n", inputs, failures);
    return failures ? 1 : 0;
}
