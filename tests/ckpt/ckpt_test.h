/* ckpt_test.h -- the small harness shared by the e2w_ckpt tests: CHECK
 * macros, named cases run one per ctest test (`<binary> <case>`), scratch
 * directories and a seeded RNG. */
#ifndef E2_TESTS_CKPT_TEST_H
#define E2_TESTS_CKPT_TEST_H

#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

/* CHECK_OK(call with err): the call returns >= 0, else print err. */
#define CHECK_OK(call)                                                                 \
    do {                                                                               \
        if ((call) < 0) {                                                              \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call, err); \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

/* CHECK_ERR(call, substring): the call fails and err contains substring. */
#define CHECK_ERR(call, sub)                                                                       \
    do {                                                                                           \
        err[0] = '\0';                                                                             \
        if ((call) >= 0) {                                                                         \
            fprintf(stderr, "%s:%d: %s unexpectedly succeeded\n", __FILE__, __LINE__, #call);      \
            return 1;                                                                              \
        }                                                                                          \
        if (strstr(err, (sub)) == NULL || strchr(err, '\n') != NULL) {                             \
            fprintf(stderr, "%s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, err, (sub)); \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

typedef struct {
    const char *name;
    int (*fn)(void);
} ckpt_case;

/* Scratch directories made by this process; removed when a case passes,
 * kept for inspection when it fails. */
static char ckpt_scratch_dirs[16][256];
static int ckpt_n_scratch;

static inline int ckpt_rm_entry(const char *path, const struct stat *sb, int flag,
                                struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

/* Runs the case named argv[1]. */
static inline int ckpt_main(int argc, char **argv, const ckpt_case *cases, size_t n) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <case>\n", argv[0]);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(argv[1], cases[i].name) != 0) continue;
        int rc = cases[i].fn();
        for (int k = 0; rc == 0 && k < ckpt_n_scratch; k++)
            nftw(ckpt_scratch_dirs[k], ckpt_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return rc;
    }
    fprintf(stderr, "%s: unknown case %s\n", argv[0], argv[1]);
    return 2;
}

/* A fresh directory "ckpt_scratch_<tag>_<pid>" in the working directory. */
static inline const char *ckpt_scratch(const char *tag) {
    static char dir[256];
    char err[E2_ERRLEN];
    snprintf(dir, sizeof dir, "ckpt_scratch_%s_%ld", tag, (long)getpid());
    int seen = 0;
    for (int k = 0; k < ckpt_n_scratch; k++) seen |= strcmp(ckpt_scratch_dirs[k], dir) == 0;
    if (!seen && ckpt_n_scratch < 16) memcpy(ckpt_scratch_dirs[ckpt_n_scratch++], dir, sizeof dir);
    if (e2_mkdir_p(dir, 0755, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return dir;
}

/* xorshift64*: deterministic test data. */
static inline uint64_t ckpt_rand(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [-1, 1) scaled by 2^(random exponent in -8..8). */
static inline float ckpt_randf(uint64_t *s) {
    double u = (double)(ckpt_rand(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0;
    int e = (int)(ckpt_rand(s) % 17) - 8;
    return (float)(u * (double)(1 << 8) / (double)(1 << (8 - e)));
}

#endif
