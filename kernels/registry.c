/* registry.c -- picks a backend by name. */
#include <string.h>

#include "k.h"

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
