/* matmul.c -- the linear layer, out = inp @ weight^T + bias, on OpenBLAS.
 *
 * The forward is one sgemm (the bias is broadcast into out first and sgemm
 * adds onto it with beta = 1); the backward is two sgemms that accumulate
 * into dinp and dweight (matmul_bwd_set: beta = 0 for dinp), plus a column
 * sum of dout for dbias. Nothing else
 * touches the big tensors, so the layer runs at the machine's sgemm rate. */
#include <cblas.h>
#include <string.h>

#include "cpu.h"

/* Columns of dout summed per task in the bias gradient: the accumulator is a
 * few vectors that stay in registers/L1 while the rows stream past. */
#define KCPU_BIAS_BLOCK 64

void kcpu_matmul_fwd(void *out_,          /* (N, OC) */
                     const void *inp_,    /* (N, C) */
                     const void *weight_, /* (OC, C) */
                     const void *bias_,   /* (OC) or NULL */
                     int N, int C, int OC) {
    float *out = out_;
    const float *inp = inp_, *weight = weight_, *bias = bias_;
    if (N <= 0 || OC <= 0 || C <= 0) return; /* empty shapes: nothing to do */
    float beta = 0.0f;
    if (bias != NULL) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta,
                out, OC);
}

/* dbias (OC) += sum over rows of dout (N, OC). Each task owns a block of
 * columns and walks the rows in order, so the sum does not depend on the
 * number of threads. */
static void kcpu_bias_grad(float *dbias, const float *dout, int N, int OC) {
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < OC; c0 += KCPU_BIAS_BLOCK) {
        int nc = OC - c0 < KCPU_BIAS_BLOCK ? OC - c0 : KCPU_BIAS_BLOCK;
        float acc[KCPU_BIAS_BLOCK] = { 0 };
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC + c0;
#pragma omp simd
            for (int c = 0; c < nc; c++) acc[c] += row[c];
        }
        for (int c = 0; c < nc; c++) dbias[c0 + c] += acc[c];
    }
}

/* dinp = dinp_beta * dinp + dout @ weight (0: overwrite, 1: accumulate). */
static void kcpu_matmul_bwd_beta(float *dinp, float dinp_beta, float *dweight, float *dbias,
                                 const float *dout, const float *inp, const float *weight, int N,
                                 int C, int OC) {
    if (N <= 0 || OC <= 0 || C <= 0) return;
    /* dinp (N, C) = beta dinp + dout (N, OC) @ weight (OC, C) */
    if (dinp != NULL)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                    dinp_beta, dinp, C);
    /* dweight (OC, C) += dout^T (OC, N) @ inp (N, C) */
    if (dweight != NULL)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                    dweight, C);
    if (dbias != NULL) kcpu_bias_grad(dbias, dout, N, OC);
}

void kcpu_matmul_bwd(void *dinp,         /* (N, C) += */
                     void *dweight,      /* (OC, C) += */
                     void *dbias,        /* (OC) += */
                     const void *dout,   /* (N, OC) */
                     const void *inp,    /* (N, C) */
                     const void *weight, /* (OC, C) */
                     int N, int C, int OC) {
    kcpu_matmul_bwd_beta(dinp, 1.0f, dweight, dbias, dout, inp, weight, N, C, OC);
}

void kcpu_matmul_bwd_set(void *dinp,         /* (N, C) = */
                         void *dweight,      /* (OC, C) += */
                         void *dbias,        /* (OC) += */
                         const void *dout,   /* (N, OC) */
                         const void *inp,    /* (N, C) */
                         const void *weight, /* (OC, C) */
                         int N, int C, int OC) {
    if (dinp != NULL && (OC <= 0 || C <= 0) && N > 0 && C > 0)
        memset(dinp, 0, (size_t)N * (size_t)C * sizeof(float)); /* empty product: 0 */
    kcpu_matmul_bwd_beta(dinp, 0.0f, dweight, dbias, dout, inp, weight, N, C, OC);
}
