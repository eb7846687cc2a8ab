/* driver.c -- main() of a fuzz target outside libFuzzer: runs the target
 * once on each file named on the command line, or on each regular file of
 * a named folder, and exits 0 when every input returned (a crash, an ASan
 * or UBSan report or an abort ends the process with a failure status). */
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    size_t n = 0, cap = 0, r;
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", path);
        return -1;
    }
    do {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            if (!(buf = realloc(buf, cap))) abort();
        }
        r = fread(buf + n, 1, cap - n, f);
        n += r;
    } while (r > 0);
    fclose(f);
    /* An exact-size copy, so ASan sees a read past the input's end. */
    uint8_t *in = malloc(n ? n : 1);
    if (!in) abort();
    memcpy(in, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(in, n);
    free(in);
    return 0;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            fprintf(stderr, "%s: no such file or folder\n", argv[i]);
            return 2;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) < 0) return 2;
            runs++;
            continue;
        }
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, NULL);
        char **names = calloc(n > 0 ? (size_t)n : 1, sizeof *names);
        int m = 0;
        for (int k = 0; k < n; k++) {
            if (ents[k]->d_name[0] != '.') names[m++] = strdup(ents[k]->d_name);
            free(ents[k]);
        }
        free(ents);
        qsort(names, (size_t)m, sizeof *names, cmp);
        for (int k = 0; k < m; k++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], names[k]);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(p) < 0) return 2;
                runs++;
            }
            free(names[k]);
        }
        free(names);
    }
    printf("%s: %d inputs ran\n", argv[0], runs);
    return runs > 0 ? 0 : 2;
}
