/* residual.c -- elementwise add and accumulate for the residual stream. */
#include "cpu.h"

/* Below this many elements a parallel region costs more than it saves. */
#define KCPU_PAR_MIN 16384

void kcpu_add(void *out_, const void *a_, const void *b_, size_t n) {
    float *out = out_;
    const float *a = a_, *b = b_;
#pragma omp parallel for simd schedule(static) if (n >= KCPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void kcpu_accumulate(void *dst_, const void *src_, size_t n) {
    float *dst = dst_;
    const float *src = src_;
#pragma omp parallel for simd schedule(static) if (n >= KCPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
