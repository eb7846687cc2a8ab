/* xent.c -- fused softmax + cross-entropy over the vocabulary.
 *
 * Per row: loss = logsumexp(logits) - logits[target]. The log-sum-exp is
 * found in one read of the row, chunk by chunk: each chunk's max and sum of
 * exponentials are folded into a running (max, sum) pair, so no V-sized
 * buffer is needed and the row is read once from memory. The backward
 * recomputes it and overwrites the logits in place with
 *     dlogits = (softmax(logits) - onehot(target)) * dloss.
 * Rows whose target is ignore_index give loss 0 and gradient 0. Targets are
 * trusted to lie in [0, V) (the data loader checks them). */
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "kmath.h"

#define KCPU_XENT_CHUNK 512 /* logits per chunk: 2 KiB, stays in L1 */

static float kcpu_logsumexp(const float *x, int V) {
    float m = -INFINITY, s = 0.0f;
    for (int v0 = 0; v0 < V; v0 += KCPU_XENT_CHUNK) {
        int nv = V - v0 < KCPU_XENT_CHUNK ? V - v0 : KCPU_XENT_CHUNK;
        const float *c = x + v0;
        float cm = c[0];
#pragma omp simd reduction(max : cm)
        for (int i = 0; i < nv; i++) cm = c[i] > cm ? c[i] : cm;
        float cs = 0.0f;
#pragma omp simd reduction(+ : cs)
        for (int i = 0; i < nv; i++) cs += kcpu_expf(c[i] - cm);
        if (cm > m) {
            s = s * expf(m - cm) + cs;
            m = cm;
        } else {
            s += cs * expf(cm - m);
        }
    }
    return m + logf(s);
}

void kcpu_xent_fwd(float *losses,           /* (N) */
                   const void *logits_,     /* (N, V) */
                   const int32_t *targets,  /* (N) */
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

void kcpu_xent_bwd(void *logits_,           /* (N, V) in: logits, out: grad */
                   const int32_t *targets,  /* (N) */
                   float dloss, int ignore_index, int N, int V) {
    float *logits = logits_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        float *x = logits + (size_t)n * V;
        if (targets[n] == ignore_index) {
            memset(x, 0, (size_t)V * sizeof(float));
            continue;
        }
        float lse = kcpu_logsumexp(x, V);
#pragma omp simd
        for (int v = 0; v < V; v++) x[v] = kcpu_expf(x[v] - lse) * dloss;
        x[targets[n]] -= dloss;
    }
}
