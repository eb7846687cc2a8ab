/* check.h -- the assertion macro of the daemon's C tests: a failed check
 * prints file:line and the condition, and fails the case. */
#ifndef E2D_TEST_CHECK_H
#define E2D_TEST_CHECK_H
#include <stdio.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)
#endif
