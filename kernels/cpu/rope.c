/* rope.c -- E² rotary position embedding, in place on a strided tensor.
 *
 * Token m of sequence b sits at pos = m / g[b] (m < n_sink) or
 * (m + t[b] + skip_b(m)) / g[b] (skip_b: PoSE chunk biases, k.h), and channel pair (j, j + D/2) of every head turns by
 * pos * theta^(-2j/D) (rotate_half pairing, as Hugging Face Llama).
 *
 * Angles are exact in double without D/2 sincos per row: a work unit is a
 * block of KCPU_ROPE_ROWS rows of one sequence; cos/sin are evaluated
 * directly at its first row and at the sinks, and every later row steps them
 * by one token's rotation, theta_j / g, with an angle addition in double.
 * After a block the drift is ~1e-14, far below fp32 resolution, and a row
 * costs one complex multiply per pair instead of a sin and a cos. The cos/sin
 * of a row are shared by all nh heads, so a caller that rotates q and k of a
 * fused qkv row in one call (nh = H + KVH) pays for them once.
 *
 * The backward is the inverse rotation (sin negated), in place. */
#include <math.h>

#include "cpu.h"

/* Rows per work unit: one direct sincos per pair per unit. */
#define KCPU_ROPE_ROWS 64
/* Pairs whose cos/sin are held at once (D <= 256 is one pass per row). */
#define KCPU_ROPE_PAIRS 128

/* dir = +1 rotates forward, -1 backward. */
static void kcpu_rope_apply(float *x, /* (B*T rows, row_stride) */
                            int B, int T, int nh, int D, int row_stride, const k_rope *r,
                            double dir) {
    int half = D / 2;
    int blocks = (T + KCPU_ROPE_ROWS - 1) / KCPU_ROPE_ROWS;
    double theta = (double)r->theta;
#pragma omp parallel for schedule(static)
    for (int u = 0; u < B * blocks; u++) {
        int b = u / blocks;
        int m0 = (u % blocks) * KCPU_ROPE_ROWS;
        int m1 = m0 + KCPU_ROPE_ROWS < T ? m0 + KCPU_ROPE_ROWS : T;
        double g = (double)r->g[b], t = (double)r->t[b];
        int32_t skip0 = m0 > 0 ? k_rope_skip(r, b, m0 - 1) : 0;
        for (int j0 = 0; j0 < half; j0 += KCPU_ROPE_PAIRS) {
            int nj = half - j0 < KCPU_ROPE_PAIRS ? half - j0 : KCPU_ROPE_PAIRS;
            double freq[KCPU_ROPE_PAIRS], c[KCPU_ROPE_PAIRS], s[KCPU_ROPE_PAIRS];
            double step_c[KCPU_ROPE_PAIRS], step_s[KCPU_ROPE_PAIRS];
            float cf[KCPU_ROPE_PAIRS], sf[KCPU_ROPE_PAIRS];
            for (int j = 0; j < nj; j++) {
                freq[j] = pow(theta, -2.0 * (double)(j0 + j) / (double)D);
                step_c[j] = cos(freq[j] / g);
                step_s[j] = dir * sin(freq[j] / g);
            }
            int32_t skip = skip0;
            for (int m = m0; m < m1; m++) {
                int32_t sk = r->n_chunks ? k_rope_skip(r, b, m) : 0;
                if (m == m0 || m <= r->n_sink || sk != skip) {
                    /* First row of the block, a sink, the first token
                     * after the sinks (where pos jumps by t / g), or the
                     * first token of a chunk with a new skip bias. */
                    double pos = ((double)m + (m < r->n_sink ? 0.0 : t + (double)sk)) / g;
                    for (int j = 0; j < nj; j++) {
                        c[j] = cos(pos * freq[j]);
                        s[j] = dir * sin(pos * freq[j]);
                    }
                    skip = sk;
                } else {
#pragma omp simd
                    for (int j = 0; j < nj; j++) {
                        double cn = c[j] * step_c[j] - s[j] * step_s[j];
                        s[j] = s[j] * step_c[j] + c[j] * step_s[j];
                        c[j] = cn;
                    }
                }
                for (int j = 0; j < nj; j++) {
                    cf[j] = (float)c[j];
                    sf[j] = (float)s[j];
                }
                float *row = x + ((size_t)b * T + m) * (size_t)row_stride;
                for (int h = 0; h < nh; h++) {
                    float *x1 = row + (size_t)h * D + j0, *x2 = x1 + half;
#pragma omp simd
                    for (int j = 0; j < nj; j++) {
                        float a = x1[j], bb = x2[j];
                        x1[j] = a * cf[j] - bb * sf[j];
                        x2[j] = bb * cf[j] + a * sf[j];
                    }
                }
            }
        }
    }
}

void kcpu_rope_fwd(void *x, int B, int T, int nh, int D, int row_stride, const k_rope *r) {
    kcpu_rope_apply(x, B, T, nh, D, row_stride, r, 1.0);
}

void kcpu_rope_bwd(void *dx, int B, int T, int nh, int D, int row_stride, const k_rope *r) {
    kcpu_rope_apply(dx, B, T, nh, D, row_stride, r, -1.0);
}
