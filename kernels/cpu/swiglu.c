/* swiglu.c -- SwiGLU over the stacked [gate | up] output of one matmul:
 *     out = silu(g) * u,  silu(g) = g * sigmoid(g)
 * Backward, with sg = sigmoid(g):
 *     dg += dout * u * sg * (1 + g * (1 - sg))
 *     du += dout * silu(g)
 * Every element is independent: rows in parallel, channels vectorised. */
#include "cpu.h"
#include "kmath.h"

void kcpu_swiglu_fwd(void *out_,       /* (N, F) */
                     const void *inp_, /* (N, 2F): [gate | up] */
                     int N, int F) {
    float *out = out_;
    const float *inp = inp_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        float *y = out + (size_t)n * F;
#pragma omp simd
        for (int i = 0; i < F; i++) {
            float sg = 1.0f / (1.0f + kcpu_expf(-g[i]));
            y[i] = g[i] * sg * u[i];
        }
    }
}

/* acc = 1: dinp += gradient; acc = 0: dinp = gradient. */
static void kcpu_swiglu_bwd_to(float *dinp, const float *dout, const float *inp, int N, int F,
                               int acc) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *g = inp + (size_t)n * 2 * F, *u = g + F;
        const float *dy = dout + (size_t)n * F;
        float *dg = dinp + (size_t)n * 2 * F, *du = dg + F;
        if (acc) {
#pragma omp simd
            for (int i = 0; i < F; i++) {
                float sg = 1.0f / (1.0f + kcpu_expf(-g[i]));
                dg[i] += dy[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
                du[i] += dy[i] * g[i] * sg;
            }
        } else {
#pragma omp simd
            for (int i = 0; i < F; i++) {
                float sg = 1.0f / (1.0f + kcpu_expf(-g[i]));
                dg[i] = dy[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
                du[i] = dy[i] * g[i] * sg;
            }
        }
    }
}

void kcpu_swiglu_bwd(void *dinp,       /* (N, 2F) += */
                     const void *dout, /* (N, F) */
                     const void *inp,  /* (N, 2F) */
                     int N, int F) {
    kcpu_swiglu_bwd_to(dinp, dout, inp, N, F, 1);
}

void kcpu_swiglu_bwd_set(void *dinp,       /* (N, 2F) = */
                         const void *dout, /* (N, F) */
                         const void *inp,  /* (N, 2F) */
                         int N, int F) {
    kcpu_swiglu_bwd_to(dinp, dout, inp, N, F, 0);
}
