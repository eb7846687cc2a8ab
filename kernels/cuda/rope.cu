/* rope.cu -- E² rotary position embedding, in place on a strided tensor.
 *
 * Token m of sequence b sits at pos = m / g[b] (m < n_sink) or
 * (m + t[b] + skip_b(m)) / g[b] (skip_b: PoSE chunk biases, k.h); channel
 * pair (j, j + D/2) of each head turns by pos * theta^(-2j/D) (rotate_half, as Hugging Face Llama). The angle and its
 * sine and cosine are computed in double, as the CPU reference does: at
 * positions of tens of thousands an fp32 angle would already be off by
 * 1e-2 rad. One thread per (row, pair) evaluates them once and rotates the
 * pair in all nh heads of the row, so rotating q and k of a fused qkv row in
 * one call (nh = H + KVH) pays for them once.
 *
 * The per-sequence (g, t) and chunk tables travel as kernel arguments (host
 * memory in k_rope; no copy to the device, no synchronisation; 2.5 KiB of
 * the 4 KiB of kernel parameters), KCUDA_ROPE_SEQS sequences per launch. The backward is the inverse rotation (sin negated). */
#include "kcuda.h"

#define KCUDA_ROPE_SEQS 64

typedef struct {
    float g[KCUDA_ROPE_SEQS];
    int t[KCUDA_ROPE_SEQS];
    int ck[KCUDA_ROPE_SEQS][K_ROPE_MAX_CHUNKS][2]; /* PoSE chunks (k.h) */
} kcuda_rope_seqs;

__global__ void kcuda_rope_k(bf16 *x, kcuda_rope_seqs seqs, int T, int nh, int D, int row_stride,
                             double theta, int n_sink, int n_chunks, double dir, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    int half = D / 2;
    size_t row = i / (size_t)half;
    int j = (int)(i % (size_t)half);
    int b = (int)(row / (size_t)T), m = (int)(row % (size_t)T);
    double g = (double)seqs.g[b], t = (double)seqs.t[b];
    int skip = 0;
    for (int c = 0; c < n_chunks; c++)
        if (seqs.ck[b][c][0] <= m) skip = seqs.ck[b][c][1];
    double pos = ((double)m + (m < n_sink ? 0.0 : t + (double)skip)) / g;
    double freq = pow(theta, -2.0 * (double)j / (double)D);
    double s, c;
    sincos(pos * freq, &s, &c);
    float cf = (float)c, sf = (float)(dir * s);
    bf16 *r = x + row * (size_t)row_stride;
    for (int h = 0; h < nh; h++) {
        bf16 *x1 = r + (size_t)h * D + j, *x2 = x1 + half;
        float a = kcuda_f(*x1), bb = kcuda_f(*x2);
        *x1 = kcuda_b(a * cf - bb * sf);
        *x2 = kcuda_b(bb * cf + a * sf);
    }
}

static void kcuda_rope_apply(void *x, int B, int T, int nh, int D, int row_stride, const k_rope *r,
                             double dir) {
    if (B <= 0 || T <= 0 || nh <= 0 || D < 2) return;
    for (int b0 = 0; b0 < B; b0 += KCUDA_ROPE_SEQS) {
        int nb = B - b0 < KCUDA_ROPE_SEQS ? B - b0 : KCUDA_ROPE_SEQS;
        kcuda_rope_seqs seqs;
        for (int b = 0; b < KCUDA_ROPE_SEQS; b++) {
            seqs.g[b] = b < nb ? r->g[b0 + b] : 1.0f;
            seqs.t[b] = b < nb ? r->t[b0 + b] : 0;
            for (int c = 0; c < K_ROPE_MAX_CHUNKS; c++)
                for (int e = 0; e < 2; e++)
                    seqs.ck[b][c][e] = b < nb && c < r->n_chunks
                                           ? r->chunks[((size_t)(b0 + b) * r->n_chunks + c) * 2 + e]
                                           : 0;
        }
        size_t n = (size_t)nb * (size_t)T * (size_t)(D / 2);
        bf16 *xb = (bf16 *)x + (size_t)b0 * T * (size_t)row_stride;
        kcuda_rope_k<<<kcuda_blocks(n, 256), 256, 0, kcuda.stream>>>(
            xb, seqs, T, nh, D, row_stride, (double)r->theta, r->n_sink, r->n_chunks, dir, n);
        kcuda_launched();
    }
}

void kcuda_rope_fwd(void *x, int B, int T, int nh, int D, int row_stride, const k_rope *r) {
    kcuda_rope_apply(x, B, T, nh, D, row_stride, r, 1.0);
}

void kcuda_rope_bwd(void *dx, int B, int T, int nh, int D, int row_stride, const k_rope *r) {
    kcuda_rope_apply(dx, B, T, nh, D, row_stride, r, -1.0);
}
