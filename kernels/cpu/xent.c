/* xent.c -- fused softmax + cross-entropy over the vocabulary.
 *
 * Per row: loss = logsumexp(logits) - logits[target]. The log-sum-exp is
 * found in one read of the row, chunk by chunk: each chunk's max and sum of
 * exponentials are folded into a running (max, sum) pair, so no V-sized
 * buffer is needed and the row is read once from memory. The backward
 * recomputes it and overwrites the logits in place with
 *     dlogits = (softmax(logits) - onehot(target)) * dloss.
 * xent_fwd_bwd does both for training: the log-sum-exp pass reads the row
 * from memory, the gradient pass finds it in L2 (a row is V * 4 bytes,
 * 125 KiB at V = 32000); losses and gradients are those of xent_fwd and
 * xent_bwd, bit for bit.
 * Rows whose target is ignore_index give loss 0 and gradient 0. Targets are
 * trusted to lie in [0, V) (the data loader checks them). */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "kmath.h"

#define KCPU_XENT_CHUNK 512 /* logits per chunk: 2 KiB, stays in L1 */
#define KCPU_LANES      16  /* independent partial results: one AVX-512 vector */

/* max and sum of exp(x - max) over one chunk of n <= KCPU_XENT_CHUNK logits.
 * The partial results live in KCPU_LANES lanes that the compiler keeps in
 * vector registers (an `omp simd reduction` goes through memory on every
 * iteration with GCC); the lanes are combined in a fixed order. */
static void kcpu_chunk_max_sumexp(const float *c, int n, float *max, float *sum) {
    float lm[KCPU_LANES], ls[KCPU_LANES];
    int full = n / KCPU_LANES * KCPU_LANES;
    for (int j = 0; j < KCPU_LANES; j++) lm[j] = c[0];
    for (int i = 0; i < full; i += KCPU_LANES)
#pragma omp simd
        for (int j = 0; j < KCPU_LANES; j++) lm[j] = c[i + j] > lm[j] ? c[i + j] : lm[j];
    float m = c[0];
    for (int j = 0; j < KCPU_LANES; j++) m = lm[j] > m ? lm[j] : m;
    for (int i = full; i < n; i++) m = c[i] > m ? c[i] : m;
    for (int j = 0; j < KCPU_LANES; j++) ls[j] = 0.0f;
    for (int i = 0; i < full; i += KCPU_LANES)
#pragma omp simd
        for (int j = 0; j < KCPU_LANES; j++) ls[j] += kcpu_expf(c[i + j] - m);
    float s = 0.0f;
    for (int j = 0; j < KCPU_LANES; j++) s += ls[j];
    for (int i = full; i < n; i++) s += kcpu_expf(c[i] - m);
    *max = m;
    *sum = s;
}

static float kcpu_logsumexp(const float *x, int V) {
    float m = -INFINITY, s = 0.0f;
    for (int v0 = 0; v0 < V; v0 += KCPU_XENT_CHUNK) {
        int nv = V - v0 < KCPU_XENT_CHUNK ? V - v0 : KCPU_XENT_CHUNK;
        float cm, cs;
        kcpu_chunk_max_sumexp(x + v0, nv, &cm, &cs);
        if (cm > m) {
            s = s * expf(m - cm) + cs;
            m = cm;
        } else {
            s += cs * expf(cm - m);
        }
    }
    return m + logf(s);
}

void kcpu_xent_fwd(float *losses,          /* (N) */
                   const void *logits_,    /* (N, V) */
                   const int32_t *targets, /* (N) */
                   int ignore_index, int N, int V) {
    const float *logits = logits_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        if (targets[n] == ignore_index) {
            losses[n] = 0.0f;
            continue;
        }
        const float *x = logits + (size_t)n * V;
        losses[n] = kcpu_logsumexp(x, V) - x[targets[n]];
    }
}

/* Row x: overwritten with (softmax(x) - onehot(target)) * dloss, given its
 * log-sum-exp. */
static void kcpu_xent_grad_row(float *x, float lse, int32_t target, float dloss, int V) {
#pragma omp simd
    for (int v = 0; v < V; v++) x[v] = kcpu_expf(x[v] - lse) * dloss;
    x[target] -= dloss;
}

void kcpu_xent_bwd(void *logits_,          /* (N, V) in: logits, out: grad */
                   const int32_t *targets, /* (N) */
                   float dloss, int ignore_index, int N, int V) {
    float *logits = logits_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = logits + (size_t)n * V;
        if (targets[n] == ignore_index) {
            memset(x, 0, (size_t)V * sizeof(float));
            continue;
        }
        kcpu_xent_grad_row(x, kcpu_logsumexp(x, V), targets[n], dloss, V);
    }
}

void kcpu_xent_fwd_bwd(float *losses,          /* (N) */
                       void *logits_,          /* (N, V) in: logits, out: grad */
                       const int32_t *targets, /* (N) */
                       float dloss, int ignore_index, int N, int V) {
    float *logits = logits_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = logits + (size_t)n * V;
        if (targets[n] == ignore_index) {
            losses[n] = 0.0f;
            memset(x, 0, (size_t)V * sizeof(float));
            continue;
        }
        float lse = kcpu_logsumexp(x, V);
        losses[n] = lse - x[targets[n]];
        kcpu_xent_grad_row(x, lse, targets[n], dloss, V);
    }
}
