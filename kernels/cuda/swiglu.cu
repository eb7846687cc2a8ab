/* swiglu.cu -- SwiGLU over the stacked [gate | up] output of one matmul:
 *     out = silu(g) * u,  silu(g) = g * sigmoid(g)
 * Backward, with sg = sigmoid(g):
 *     dg += dout * u * sg * (1 + g * (1 - sg)),  du += dout * silu(g)
 * fp32 arithmetic, one thread per output element. */
#include "kcuda.h"

__global__ void kcuda_swiglu_fwd_k(bf16 *out, const bf16 *inp, int F, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / (size_t)F, c = i % (size_t)F;
    const bf16 *row = inp + r * 2 * (size_t)F;
    float g = kcuda_f(row[c]), u = kcuda_f(row[c + F]);
    float sg = 1.0f / (1.0f + expf(-g));
    out[i] = kcuda_b(g * sg * u);
}

__global__ void kcuda_swiglu_bwd_k(bf16 *dinp, const bf16 *dout, const bf16 *inp, int F, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / (size_t)F, c = i % (size_t)F;
    const bf16 *row = inp + r * 2 * (size_t)F;
    bf16 *drow = dinp + r * 2 * (size_t)F;
    float g = kcuda_f(row[c]), u = kcuda_f(row[c + F]), dy = kcuda_f(dout[i]);
    float sg = 1.0f / (1.0f + expf(-g));
    drow[c] = kcuda_b(kcuda_f(drow[c]) + dy * u * sg * (1.0f + g * (1.0f - sg)));
    drow[c + F] = kcuda_b(kcuda_f(drow[c + F]) + dy * g * sg);
}

void kcuda_swiglu_fwd(void *out,       /* (N, F) */
                      const void *inp, /* (N, 2F) */
                      int N, int F) {
    size_t n = (size_t)N * (size_t)F;
    if (n == 0) return;
    kcuda_swiglu_fwd_k<<<kcuda_blocks(n, 256), 256, 0, kcuda.stream>>>((bf16 *)out,
                                                                       (const bf16 *)inp, F, n);
    kcuda_launched();
}

void kcuda_swiglu_bwd(void *dinp,       /* (N, 2F) += */
                      const void *dout, /* (N, F) */
                      const void *inp,  /* (N, 2F) */
                      int N, int F) {
    size_t n = (size_t)N * (size_t)F;
    if (n == 0) return;
    kcuda_swiglu_bwd_k<<<kcuda_blocks(n, 256), 256, 0, kcuda.stream>>>(
        (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, F, n);
    kcuda_launched();
}
