/* matmul.c -- the linear layer, out = inp @ weight^T + bias, on OpenBLAS.
 *
 * The forward is one sgemm (the bias is broadcast into out first and sgemm
 * adds onto it with beta = 1); the backward is two sgemms that accumulate
 * into dinp and dweight (matmul_bwd_set: beta = 0 for dinp), plus a column
 * sum of dout for dbias. Nothing else touches the big tensors, so the layer
 * runs at the machine's sgemm rate.
 *
 * Threads: every other CPU kernel runs on the OpenMP team, and OpenBLAS
 * (pthreads build) has a pool of its own. With two pools on as many cores
 * as threads, the idle pool's threads go on spinning for a while after
 * their last work (libgomp's after each parallel region, OpenBLAS's after
 * each sgemm) and take cycles from the other pool's threads; and
 * OpenBLAS's threads synchronise with each other inside every sgemm, so a
 * thread that loses its core stalls the other. The layer matmuls are short
 * (5-30 ms) and each follows an OpenMP kernel. So the sgemms here run on
 * the OpenMP team too (kcpu_sgemm): the output is cut into one block of
 * rows or columns per thread, and each thread runs a single-threaded sgemm
 * on its block, with no synchronisation inside. Every element is the same
 * dot product in the same order as in one sgemm over the whole output, so
 * results do not depend on the number of threads (test matmul_threads). */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu.h"

/* Products with fewer multiply-adds than this run on one thread (OpenBLAS's
 * own threshold for threading, SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD). */
#define KCPU_SGEMM_SPLIT_MIN (1 << 18)
/* Block edges are multiples of this many rows or columns: whole
 * micro-kernel tiles, 64-byte aligned column offsets. */
#define KCPU_SGEMM_ALIGN 16

/* Row-major c (m, n; ldc) = op(a) (m, k) @ op(b) (k, n) + beta c, alpha 1,
 * on the OpenMP team: the larger of m and n is cut in one block per thread
 * (each thread reads the whole of the other operand, the smaller one), and
 * each block is a single-threaded sgemm. OpenBLAS's own thread count is set
 * to 1 for the call and restored after, so sgemms outside this file (the
 * benches' bare figures) still use OpenBLAS's threads. */
static void kcpu_sgemm(int ta, int tb, int m, int n, int k, const float *a, int lda, const float *b,
                       int ldb, float beta, float *c, int ldc) {
    enum CBLAS_TRANSPOSE cta = ta ? CblasTrans : CblasNoTrans, ctb = tb ? CblasTrans : CblasNoTrans;
    int blas_threads = openblas_get_num_threads();
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    int split_rows = m >= n, len = split_rows ? m : n;
    int tiles = (len + KCPU_SGEMM_ALIGN - 1) / KCPU_SGEMM_ALIGN;
    if ((double)m * n * k < KCPU_SGEMM_SPLIT_MIN) nt = 1;
    if (nt > tiles) nt = tiles;
    if (blas_threads != 1) openblas_set_num_threads(1);
    if (nt <= 1) {
        cblas_sgemm(CblasRowMajor, cta, ctb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), ntm = omp_get_num_threads();
            int i0 = (int)((long)tiles * t / ntm) * KCPU_SGEMM_ALIGN;
            int i1 = (int)((long)tiles * (t + 1) / ntm) * KCPU_SGEMM_ALIGN;
            if (i1 > len) i1 = len;
            if (i1 > i0) {
                if (split_rows) /* rows i0..i1 of c and of op(a) */
                    cblas_sgemm(CblasRowMajor, cta, ctb, i1 - i0, n, k, 1.0f,
                                ta ? a + i0 : a + (size_t)i0 * lda, lda, b, ldb, beta,
                                c + (size_t)i0 * ldc, ldc);
                else /* columns i0..i1 of c and of op(b) */
                    cblas_sgemm(CblasRowMajor, cta, ctb, m, i1 - i0, k, 1.0f, a, lda,
                                tb ? b + (size_t)i0 * ldb : b + i0, ldb, beta, c + i0, ldc);
            }
        }
    }
    if (blas_threads != 1) openblas_set_num_threads(blas_threads);
}

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
    kcpu_sgemm(0, 1, N, OC, C, inp, C, weight, C, beta, out, OC);
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
    if (dinp != NULL) kcpu_sgemm(0, 0, N, C, OC, dout, OC, weight, C, dinp_beta, dinp, C);
    /* dweight (OC, C) += dout^T (OC, N) @ inp (N, C) */
    if (dweight != NULL) kcpu_sgemm(1, 0, OC, C, N, dout, OC, inp, C, 1.0f, dweight, C);
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
