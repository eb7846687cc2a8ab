/* adamw.cu -- the optimizer step and the squared gradient norm, both over
 * the fp32 gradients (k.h's grad_dtype).
 *
 * sumsq: a fixed grid (KCUDA_SUMSQ_BLOCKS x 256 threads, independent of the
 * device) walks x in a fixed stride; each thread sums in double, each block
 * reduces its threads in a fixed tree, and the block partials are added on
 * the host in order. The result is bit-identical run to run.
 *
 * adamw: the CPU reference's update (decoupled weight decay, bias correction
 * with the 1-based step) on the fp32 master and moments; the new master is
 * written to the bf16 param with stochastic rounding: a 16-bit random number,
 * a pure function of (seed, index0 + element index), is added to the fp32 bits below
 * bf16's mantissa before truncation, so the rounding is unbiased and small
 * updates are not lost to round-to-nearest. */
#include <math.h>
#include <stdlib.h>

#include "kcuda.h"

#define KCUDA_SUMSQ_BLOCKS  K_CUDA_SUMSQ_BLOCKS /* k.h */
#define KCUDA_SUMSQ_THREADS 256

__global__ void kcuda_sumsq_k(double *part, const float *x, size_t n) {
    __shared__ double sh[KCUDA_SUMSQ_THREADS];
    double acc = 0.0;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        double v = (double)x[i];
        acc += v * v;
    }
    sh[threadIdx.x] = acc;
    __syncthreads();
    for (int s = KCUDA_SUMSQ_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}

double kcuda_sumsq(const void *x, size_t n) {
    if (n == 0) return 0.0;
    double *part = (double *)kcuda_scratch(KCUDA_SCR_SUMSQ, KCUDA_SUMSQ_BLOCKS * sizeof(double));
    kcuda_sumsq_k<<<KCUDA_SUMSQ_BLOCKS, KCUDA_SUMSQ_THREADS, 0, kcuda.stream>>>(
        part, (const float *)x, n);
    kcuda_launched();
    double host[KCUDA_SUMSQ_BLOCKS];
    kcuda_download_raw(host, part, sizeof host);
    double total = 0.0;
    for (int i = 0; i < KCUDA_SUMSQ_BLOCKS; i++) total += host[i];
    return total;
}

/* splitmix64 finaliser: a well-mixed 64-bit hash of (seed, index). */
__device__ __forceinline__ uint64_t kcuda_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

__device__ __forceinline__ bf16 kcuda_round_stochastic(float w, uint64_t seed, size_t i) {
    if (!isfinite(w)) return kcuda_b(w);
    uint32_t u = __float_as_uint(w);
    uint32_t r = (uint32_t)kcuda_mix(seed + 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1)) & 0xffffu;
    uint32_t t = (u + r) & 0xffff0000u;
    /* A carry into the exponent of the largest finite values would give inf:
     * keep those truncated. */
    if (((t >> 23) & 0xffu) == 0xffu) t = u & 0xffff0000u;
    return __ushort_as_bfloat16((unsigned short)(t >> 16));
}

__global__ void kcuda_adamw_k(float *master, bf16 *param, const float *grad, float *m, float *v,
                              size_t n, float lr, float b1, float b2, float eps, float wd, float gs,
                              float inv_bc1, float inv_bc2, uint64_t seed, size_t index0) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float g = grad[i] * gs;
    float mi = b1 * m[i] + (1.0f - b1) * g;
    float vi = b2 * v[i] + (1.0f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    float w = master[i];
    w -= lr * ((mi * inv_bc1) / (sqrtf(vi * inv_bc2) + eps) + wd * w);
    master[i] = w;
    param[i] = kcuda_round_stochastic(w, seed, index0 + i);
}

void kcuda_adamw(float *master,      /* (n) */
                 void *param,        /* (n) bf16 */
                 const void *grad,   /* (n) fp32 */
                 float *m, float *v, /* (n) */
                 size_t n, const k_adamw *hp) {
    if (n == 0) return;
    float inv_bc1 = (float)(1.0 / (1.0 - pow(hp->beta1, hp->step)));
    float inv_bc2 = (float)(1.0 / (1.0 - pow(hp->beta2, hp->step)));
    kcuda_adamw_k<<<kcuda_blocks(n, 256), 256, 0, kcuda.stream>>>(
        master, (bf16 *)param, (const float *)grad, m, v, n, hp->lr, hp->beta1, hp->beta2, hp->eps,
        hp->weight_decay, hp->grad_scale, inv_bc1, inv_bc2, hp->seed, hp->index0);
    kcuda_launched();
}
