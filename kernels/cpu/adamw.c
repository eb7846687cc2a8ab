/* adamw.c -- the optimizer step and the gradient norm it is clipped with.
 *
 * sumsq: the gradient's squared norm, reduced in double over a fixed
 * partition into KCPU_SUMSQ_PARTS parts that depends on n only; the parts are
 * added in order. The result is therefore bit-identical for any number of
 * threads, which keeps clipping (and so training) reproducible.
 * Within a part, KCPU_LANES partial sums (fixed lanes, not an omp simd
 * reduction, which GCC spills to memory every iteration) keep it at memory
 * speed.
 *
 * adamw: decoupled weight decay with bias correction (step is 1-based):
 *     g = grad * grad_scale
 *     m = beta1 * m + (1 - beta1) * g
 *     v = beta2 * v + (1 - beta2) * g^2
 *     master -= lr * ( (m / (1 - beta1^step)) /
 *                      (sqrt(v / (1 - beta2^step)) + eps)
 *                      + weight_decay * master )
 *     param = master
 * On the CPU the forward may read master directly (param == master); each
 * element is read before it is written, so aliasing is safe. */
#include <math.h>

#include "cpu.h"

#define KCPU_SUMSQ_PARTS 64
#define KCPU_LANES       16 /* partial sums per part, kept in vector registers */

/* Sum of squares of x[lo, hi) in double, in KCPU_LANES lanes combined in a
 * fixed order. */
static double kcpu_sumsq_range(const float *x, size_t lo, size_t hi) {
    double lane[KCPU_LANES] = { 0 };
    size_t i = lo;
    for (; i + KCPU_LANES <= hi; i += KCPU_LANES)
#pragma omp simd
        for (int j = 0; j < KCPU_LANES; j++) lane[j] += (double)x[i + j] * (double)x[i + j];
    double acc = 0.0;
    for (int j = 0; j < KCPU_LANES; j++) acc += lane[j];
    for (; i < hi; i++) acc += (double)x[i] * (double)x[i];
    return acc;
}

double kcpu_sumsq(const void *x_, size_t n) {
    const float *x = x_;
    double part[KCPU_SUMSQ_PARTS];
    size_t per = (n + KCPU_SUMSQ_PARTS - 1) / KCPU_SUMSQ_PARTS;
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int p = 0; p < KCPU_SUMSQ_PARTS; p++) {
        size_t lo = (size_t)p * per, hi = lo + per;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        part[p] = kcpu_sumsq_range(x, lo, hi);
    }
    double total = 0.0;
    for (int p = 0; p < KCPU_SUMSQ_PARTS; p++) total += part[p];
    return total;
}

void kcpu_adamw(float *master,      /* (n) */
                void *param_,       /* (n), may equal master */
                const void *grad_,  /* (n) */
                float *m, float *v, /* (n) */
                size_t n, const k_adamw *hp) {
    float *param = param_;
    const float *grad = grad_;
    const float lr = hp->lr, b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    const float wd = hp->weight_decay, gs = hp->grad_scale;
    const float inv_bc1 = (float)(1.0 / (1.0 - pow(hp->beta1, hp->step)));
    const float inv_bc2 = (float)(1.0 / (1.0 - pow(hp->beta2, hp->step)));
#pragma omp parallel for simd schedule(static) if (n >= 16384)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * gs;
        float mi = b1 * m[i] + (1.0f - b1) * g;
        float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        float w = master[i];
        w -= lr * ((mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps) + wd * w);
        master[i] = w;
        param[i] = w;
    }
}
