/* rmsnorm.c -- RMSNorm, out = inp * rstd * weight with
 * rstd = 1 / sqrt(mean(inp^2) + eps) per row; rstd is saved for the backward.
 *
 * Backward, per row with s = sum_c dout_c * weight_c * inp_c:
 *     dinp_c    += rstd * weight_c * dout_c - inp_c * rstd^3 * s / C
 *     dweight_c += sum over rows of dout_c * inp_c * rstd
 * The backward reads dout and inp once: chunks of rows in parallel, each
 * with its own dweight partial; the partials are added in chunk order, so
 * dweight is race-free and independent of the number of threads. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

#define KCPU_RMS_BLOCK 64 /* channels per task in the dweight reduction */
#define KCPU_RMS_ROWS  64 /* rows per dweight partial in the backward */

void kcpu_rmsnorm_fwd(void *out_,          /* (N, C) */
                      float *rstd,         /* (N) */
                      const void *inp_,    /* (N, C) */
                      const void *weight_, /* (C) */
                      float eps, int N, int C) {
    float *out = out_;
    const float *inp = inp_, *weight = weight_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        rstd[n] = r;
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
    }
}

/* Fallback when the partials cannot be allocated: dinp by rows, then
 * dweight by blocks of channels that walk all rows in order. */
static void kcpu_rmsnorm_bwd_2pass(float *dinp, float *dweight, const float *dout, const float *inp,
                                   const float *weight, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n], s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < C; c++) s += dy[c] * weight[c] * x[c];
        float k = r * r * r * s / (float)C;
#pragma omp simd
        for (int c = 0; c < C; c++) dx[c] += r * weight[c] * dy[c] - x[c] * k;
    }
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += KCPU_RMS_BLOCK) {
        int nc = C - c0 < KCPU_RMS_BLOCK ? C - c0 : KCPU_RMS_BLOCK;
        float acc[KCPU_RMS_BLOCK] = { 0 };
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C + c0;
            const float *dy = dout + (size_t)n * C + c0;
            float r = rstd[n];
#pragma omp simd
            for (int c = 0; c < nc; c++) acc[c] += dy[c] * x[c] * r;
        }
        for (int c = 0; c < nc; c++) dweight[c0 + c] += acc[c];
    }
}

void kcpu_rmsnorm_bwd(void *dinp_,         /* (N, C) += */
                      void *dweight_,      /* (C) += */
                      const void *dout_,   /* (N, C) */
                      const void *inp_,    /* (N, C) */
                      const void *weight_, /* (C) */
                      const float *rstd,   /* (N) */
                      int N, int C) {
    float *dinp = dinp_, *dweight = dweight_;
    const float *dout = dout_, *inp = inp_, *weight = weight_;
    if (N <= 0 || C <= 0) return;
    /* One pass over dout and inp: each chunk of KCPU_RMS_ROWS rows writes its
     * rows' dinp and its own partial dweight, summed over its rows in order;
     * the partials are then added chunk by chunk in order. The chunks depend
     * on N only, so dweight does not depend on the number of threads. */
    int nch = (N + KCPU_RMS_ROWS - 1) / KCPU_RMS_ROWS;
    float *part = malloc((size_t)nch * (size_t)C * sizeof(float));
    if (part == NULL) {
        kcpu_rmsnorm_bwd_2pass(dinp, dweight, dout, inp, weight, rstd, N, C);
        return;
    }
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int ch = 0; ch < nch; ch++) {
            float *pw = part + (size_t)ch * C;
            for (int c = 0; c < C; c++) pw[c] = 0.0f;
            int n1 = (ch + 1) * KCPU_RMS_ROWS < N ? (ch + 1) * KCPU_RMS_ROWS : N;
            for (int n = ch * KCPU_RMS_ROWS; n < n1; n++) {
                const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
                float *dx = dinp + (size_t)n * C;
                float r = rstd[n], s = 0.0f;
#pragma omp simd reduction(+ : s)
                for (int c = 0; c < C; c++) s += dy[c] * weight[c] * x[c];
                float k = r * r * r * s / (float)C;
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    dx[c] += r * weight[c] * dy[c] - x[c] * k;
                    pw[c] += dy[c] * x[c] * r;
                }
            }
        }
#pragma omp for schedule(static)
        for (int c0 = 0; c0 < C; c0 += KCPU_RMS_BLOCK) {
            int nc = C - c0 < KCPU_RMS_BLOCK ? C - c0 : KCPU_RMS_BLOCK;
            float acc[KCPU_RMS_BLOCK] = { 0 };
            for (int ch = 0; ch < nch; ch++) {
                const float *pw = part + (size_t)ch * C + c0;
#pragma omp simd
                for (int c = 0; c < nc; c++) acc[c] += pw[c];
            }
            for (int c = 0; c < nc; c++) dweight[c0 + c] += acc[c];
        }
    }
    free(part);
}
