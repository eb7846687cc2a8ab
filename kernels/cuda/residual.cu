/* residual.cu -- elementwise add and accumulate of bf16 tensors (fp32 sum,
 * one rounding). */
#include "kcuda.h"

__global__ void kcuda_add_k(bf16 *out, const bf16 *a, const bf16 *b, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = kcuda_b(kcuda_f(a[i]) + kcuda_f(b[i]));
}

void kcuda_add(void *out, const void *a, const void *b, size_t n) {
    if (n == 0) return;
    kcuda_add_k<<<kcuda_blocks(n, 256), 256, 0, kcuda.stream>>>((bf16 *)out, (const bf16 *)a,
                                                                (const bf16 *)b, n);
    kcuda_launched();
}

void kcuda_accumulate(void *dst, const void *src, size_t n) {
    kcuda_add(dst, dst, src, n);
}
