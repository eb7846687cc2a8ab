/* check: the few macros the spec tests share. One binary holds many named
 * cases; ctest runs each case as its own test (`test_x <case>`). */
#ifndef E2_TEST_CHECK_H
#define E2_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

/* The error text must contain `want`. */
#define CHECK_MSG(err, want)                                                                 \
    do {                                                                                     \
        if (strstr((err), (want)) == NULL) {                                                 \
            fprintf(stderr, "%s:%d: error \"%s\" lacks \"%s\"\n", __FILE__, __LINE__, (err), \
                    (want));                                                                 \
            return 1;                                                                        \
        }                                                                                    \
    } while (0)

typedef struct {
    const char *name;
    int (*fn)(void);
} check_case;

/* Runs the case named argv[1], or every case when none is named. */
static inline int check_main(const check_case *cases, int argc, char **argv) {
    int failed = 0, ran = 0;
    for (const check_case *c = cases; c->name; c++) {
        if (argc > 1 && strcmp(argv[1], c->name) != 0) continue;
        ran++;
        int rc = c->fn();
        fprintf(stderr, "%s %s\n", rc ? "FAIL" : "ok  ", c->name);
        failed += rc != 0;
    }
    if (ran == 0) {
        fprintf(stderr, "no case named %s\n", argc > 1 ? argv[1] : "(any)");
        return 2;
    }
    return failed ? 1 : 0;
}

#endif
