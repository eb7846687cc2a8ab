/* registry.c -- picks a backend by name; what a process sets up for the
 * backends before they run. */
#include <string.h>

#include "k.h"
#include "cpu/blas.h"

#ifndef E2_HAVE_CUDA
const k_backend *k_cuda(void) {
    return NULL;
}
#endif

const k_backend *k_get(const char *name) {
    if (name == NULL || strcmp(name, "cpu") == 0) return k_cpu();
    if (strcmp(name, "cuda") == 0) return k_cuda();
    return NULL;
}

const char *k_cpu_coretype_hint(void) {
    return kcpu_blas_coretype_hint();
}
