/* xent.cu -- fused softmax + cross-entropy over the vocabulary.
 *
 * One block per row. Each thread folds its strided share of the row into a
 * running (max, sum of exp) pair in fp32; the pairs are combined in a fixed
 * tree order, so the row's log-sum-exp is found in one read with no V-sized
 * buffer. loss = lse - logit[target]. The backward recomputes lse and
 * overwrites the logits in place with (softmax - onehot(target)) * dloss.
 * Rows whose target is ignore_index give loss 0 and gradient 0. */
#include <math.h>

#include "kcuda.h"

#define KCUDA_XENT_THREADS 512

/* (m, s) <- (m, s) (+) (m2, s2): sum of exponentials relative to the max. */
__device__ __forceinline__ void kcuda_lse_fold(float *m, float *s, float m2, float s2) {
    if (m2 == -INFINITY) return;
    if (*m == -INFINITY) {
        *m = m2;
        *s = s2;
    } else if (m2 > *m) {
        *s = *s * expf(*m - m2) + s2;
        *m = m2;
    } else {
        *s += s2 * expf(m2 - *m);
    }
}

__device__ float kcuda_row_lse(const bf16 *x, int V) {
    __shared__ float sm[KCUDA_XENT_THREADS / 32], ss[KCUDA_XENT_THREADS / 32];
    float m = -INFINITY, s = 0.0f;
    for (int v = threadIdx.x; v < V; v += blockDim.x) kcuda_lse_fold(&m, &s, kcuda_f(x[v]), 1.0f);
    for (int o = 16; o > 0; o >>= 1) {
        float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
        kcuda_lse_fold(&m, &s, m2, s2);
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    if (lane == 0) {
        sm[w] = m;
        ss[w] = s;
    }
    __syncthreads();
    m = -INFINITY;
    s = 0.0f;
    for (int i = 0; i < nw; i++) kcuda_lse_fold(&m, &s, sm[i], ss[i]);
    return m + logf(s);
}

__global__ void kcuda_xent_fwd_k(float *losses, const bf16 *logits, const int32_t *targets,
                                 int ignore_index, int V) {
    size_t n = blockIdx.x;
    int tg = targets[n];
    if (tg == ignore_index) {
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const bf16 *x = logits + n * (size_t)V;
    float lse = kcuda_row_lse(x, V);
    if (threadIdx.x == 0) losses[n] = lse - kcuda_f(x[tg]);
}

__global__ void kcuda_xent_bwd_k(bf16 *logits, const int32_t *targets, float dloss,
                                 int ignore_index, int V) {
    size_t n = blockIdx.x;
    int tg = targets[n];
    bf16 *x = logits + n * (size_t)V;
    if (tg == ignore_index) {
        for (int v = threadIdx.x; v < V; v += blockDim.x) x[v] = kcuda_b(0.0f);
        return;
    }
    float lse = kcuda_row_lse(x, V);
    /* Every thread has read its logits inside kcuda_row_lse (and the block
     * has met at its barrier) before any is overwritten. */
    for (int v = threadIdx.x; v < V; v += blockDim.x) {
        float p = expf(kcuda_f(x[v]) - lse);
        x[v] = kcuda_b((p - (v == tg ? 1.0f : 0.0f)) * dloss);
    }
}

void kcuda_xent_fwd(float *losses,          /* (N) */
                    const void *logits,     /* (N, V) */
                    const int32_t *targets, /* (N) device */
                    int ignore_index, int N, int V) {
    if (N <= 0 || V <= 0) return;
    kcuda_xent_fwd_k<<<N, KCUDA_XENT_THREADS, 0, kcuda.stream>>>(losses, (const bf16 *)logits,
                                                                 targets, ignore_index, V);
    kcuda_launched();
}

void kcuda_xent_bwd(void *logits,           /* (N, V) in: logits, out: grad */
                    const int32_t *targets, /* (N) device */
                    float dloss, int ignore_index, int N, int V) {
    if (N <= 0 || V <= 0) return;
    kcuda_xent_bwd_k<<<N, KCUDA_XENT_THREADS, 0, kcuda.stream>>>((bf16 *)logits, targets, dloss,
                                                                 ignore_index, V);
    kcuda_launched();
}
