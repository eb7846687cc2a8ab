/* expect.h -- EXPECT and CHECK for the C tests of whole modules (header only): a
 * failed expectation prints file, line and a printf-style message, counts
 * in `failures` and lets the case go on, so one run shows every broken
 * property; main returns non-zero when failures > 0. */
#ifndef E2_TESTS_EXPECT_H
#define E2_TESTS_EXPECT_H

#include <stdio.h>

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

#endif
