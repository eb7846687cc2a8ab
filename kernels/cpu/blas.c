/* blas.c -- whether OpenBLAS runs kernels that match this CPU (see blas.h). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"

const char *kcpu_blas_core(void) {
    return openblas_get_corename();
}

static int kcpu_core_is(const char *core, const char *const *names) {
    for (; *names != NULL; names++)
        if (strcmp(core, *names) == 0) return 1;
    return 0;
}

const char *kcpu_blas_coretype_hint(void) {
    if (getenv("OPENBLAS_CORETYPE") != NULL) return NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    static const char *const avx512[] = { "SkylakeX", "Cooperlake", "SapphireRapids", NULL };
    static const char *const avx2[] = { "Haswell",        "Zen", "SkylakeX", "Cooperlake",
                                        "SapphireRapids", NULL };
    const char *core = kcpu_blas_core();
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        !kcpu_core_is(core, avx512))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
        !kcpu_core_is(core, avx2))
        return "Haswell";
#endif
    return NULL;
}
