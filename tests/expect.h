/* expect.h -- EXPECT and CHECK for the C tests of whole modules (header only): a
 * failed expectation prints file, line and a printf-style message, counts
 * in `failures` and lets the case go on, so one run shows every broken
 * property; main returns non-zero when failures > 0. */
#ifndef E2_TESTS_EXPECT_H
#define E2_TESTS_EXPECT_H

#include <stdio.h>
#include <string.h>

static int failures;

#define EXPECT(cond, ...)                                         \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            failures++;                                           \
        }                                                         \
    } while (0)

/* EXPECT with the condition's text as the message. */
#define CHECK(cond) EXPECT(cond, "CHECK failed: %s", #cond)

/* One named case of a test program. */
typedef struct {
    const char *name;
    void (*fn)(void);
} expect_case;

/* main's body: runs the case named by argv[1] (every case without one);
 * 2 for an unknown name, else 1 when an expectation failed. */
static inline int expect_main(const char *prog, const expect_case *cases, size_t n, int argc,
                              char **argv) {
    int ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        cases[i].fn();
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "%s: unknown case %s\n", prog, argv[1]);
        return 2;
    }
    return failures ? 1 : 0;
}

#endif
