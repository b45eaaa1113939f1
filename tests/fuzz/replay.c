/* Runs a fuzz target without libFuzzer: every file of the given corpus directories (or the given
 * files) once through LLVMFuzzerTestOneInput, in name order. The normal test suite uses it so the
 * committed corpus, and with it every past finding, is a regression test in every build. An input
 * that breaks an invariant aborts the process, which fails the test. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 0;
    }
    /* Heap copy of the exact size, as libFuzzer passes it, so ASan sees any overread. */
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || size < 0 || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        free(data);
        return 0;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)size);
    free(data);
    return 1;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (!run_file(argv[i]))
                return 1;
            continue;
        }
        struct dirent **names;
        int n = scandir(argv[i], &names, NULL, by_name);
        if (n < 0) {
            perror(argv[i]);
            return 1;
        }
        int ran = 0, ok = 1;
        for (int k = 0; k < n; k++) {
            if (ok && names[k]->d_name[0] != '.') {
                size_t len = strlen(argv[i]) + strlen(names[k]->d_name) + 2;
                char *path = malloc(len);
                snprintf(path, len, "%s/%s", argv[i], names[k]->d_name);
                ok = run_file(path);
                ran += ok;
                free(path);
            }
            free(names[k]);
        }
        free(names);
        if (!ok)
            return 1;
        /* An empty or missing corpus would make the test pass without testing anything. */
        if (ran == 0) {
            fprintf(stderr, "%s: no inputs\n", argv[i]);
            return 1;
        }
        printf("%s: %d inputs replayed\n", argv[i], ran);
    }
    return 0;
}
