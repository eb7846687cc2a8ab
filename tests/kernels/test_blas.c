/* test_blas.c -- kcpu_blas_coretype_hint: when it names a core, setting
 * OPENBLAS_CORETYPE to it really makes OpenBLAS load that core (checked in a
 * re-executed copy of this test, since the core is chosen at load time);
 * with the variable set, it names nothing. */
#include <unistd.h>

#include "check.h"
#include "cpu/blas.h"

static char **kc_argv;

static void blas_hint_is_honoured(void) {
    const char *want = getenv("KC_EXPECT_CORE");
    if (want != NULL) { /* the re-executed child */
        KC_EXPECT(strcmp(kcpu_blas_core(), want) == 0, "OPENBLAS_CORETYPE=%s loaded core %s", want,
                  kcpu_blas_core());
        KC_EXPECT(kcpu_blas_coretype_hint() == NULL, "hint given although the variable is set");
        return;
    }
    const char *hint = kcpu_blas_coretype_hint();
    fprintf(stderr, "OpenBLAS core %s, hint %s\n", kcpu_blas_core(), hint ? hint : "(none)");
    if (hint == NULL) {
        KC_EXPECT(getenv("OPENBLAS_CORETYPE") != NULL ||
                      strcmp(kcpu_blas_core(), "Prescott") != 0 || !__builtin_cpu_supports("avx2"),
                  "no hint although an AVX2 CPU runs Prescott kernels");
        return;
    }
    setenv("OPENBLAS_CORETYPE", hint, 1);
    setenv("KC_EXPECT_CORE", hint, 1);
    char *args[] = { kc_argv[0], "blas_hint_is_honoured", NULL };
    execv("/proc/self/exe", args);
    KC_EXPECT(0, "execv /proc/self/exe failed");
}

int main(int argc, char **argv) {
    kc_argv = argv;
    const kc_case cases[] = { { "blas_hint_is_honoured", blas_hint_is_honoured } };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
