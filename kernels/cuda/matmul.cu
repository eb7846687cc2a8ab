/* matmul.cu -- the linear layer on cuBLASLt: bf16 operands, fp32
 * accumulation (CUBLAS_COMPUTE_32F), bf16 output.
 *
 * Row-major (N, C) is column-major (C, N), so out = inp @ weight^T is the
 * column-major product out^T (OC, N) = weight^T(op T) . inp^T. The bias rides
 * the epilogue (CUBLASLT_EPILOGUE_BIAS adds a per-row vector of the
 * column-major result, which is per output channel here), so the forward is
 * one pass. The backward's two products accumulate with beta = 1; the
 * weight gradient's into fp32 (k.h: parameter gradients are fp32), with
 * bf16 A and B and fp32 C and D, a type combination cuBLASLt supports. The
 * bias gradient, a column sum, is a separate deterministic reduction into
 * fp32 because it must accumulate (+=), which the BGRAD epilogues do not. */
#include <pthread.h>
#include <string.h>

#include "kcuda.h"

/* Largest power of two (up to 256) that divides the address: cuBLASLt picks
 * kernels that assume the alignment it is told. */
static uint32_t kcuda_align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 2 && (a % al) != 0) al >>= 1;
    return al;
}

/* ---- fallback for shapes cuBLASLt has no kernel for ----
 * (e.g. odd leading dimensions such as a vocabulary of 257). A plain
 * shared-memory tiled product, fp32 accumulation in a fixed order; slow but
 * exact in its contract. Column-major X(r, c) = x[r + c * ldx]. D is bf16 or
 * fp32 (the weight gradients). */
#define KCUDA_GEMM_TILE 16

__device__ __forceinline__ float kcuda_ld(const bf16 *p) {
    return kcuda_f(*p);
}
__device__ __forceinline__ float kcuda_ld(const float *p) {
    return *p;
}
__device__ __forceinline__ void kcuda_st(bf16 *p, float v) {
    *p = kcuda_b(v);
}
__device__ __forceinline__ void kcuda_st(float *p, float v) {
    *p = v;
}

template <typename TD>
__global__ void kcuda_gemm_fallback_k(TD *d, const bf16 *a, const bf16 *b, int m, int n, int k,
                                      int lda, int ldb, int ldd, int ta, int tb, float beta,
                                      const bf16 *bias) {
    __shared__ float As[KCUDA_GEMM_TILE][KCUDA_GEMM_TILE + 1];
    __shared__ float Bs[KCUDA_GEMM_TILE][KCUDA_GEMM_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int r = blockIdx.x * KCUDA_GEMM_TILE + tx, c = blockIdx.y * KCUDA_GEMM_TILE + ty;
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += KCUDA_GEMM_TILE) {
        int ak = k0 + ty, bk = k0 + tx;
        /* As[kk][row] = op(A)(row, kk); Bs[kk][col] = op(B)(kk, col) */
        As[ty][tx] = r < m && ak < k ? kcuda_f(ta ? a[(size_t)ak + (size_t)r * lda]
                                                  : a[(size_t)r + (size_t)ak * lda])
                                     : 0.0f;
        Bs[tx][ty] = c < n && bk < k ? kcuda_f(tb ? b[(size_t)c + (size_t)bk * ldb]
                                                  : b[(size_t)bk + (size_t)c * ldb])
                                     : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < KCUDA_GEMM_TILE; kk++) acc += As[kk][tx] * Bs[kk][ty];
        __syncthreads();
    }
    if (r >= m || c >= n) return;
    TD *dst = d + (size_t)r + (size_t)c * ldd;
    float v = acc + (beta != 0.0f ? beta * kcuda_ld(dst) : 0.0f) + (bias ? kcuda_f(bias[r]) : 0.0f);
    kcuda_st(dst, v);
}

static void kcuda_gemm_fallback(void *d, int d_f32, const void *a, const void *b, int m, int n,
                                int k, int lda, int ldb, int ldd, int ta, int tb, float beta,
                                const void *bias) {
    dim3 block(KCUDA_GEMM_TILE, KCUDA_GEMM_TILE);
    dim3 grid((unsigned)((m + KCUDA_GEMM_TILE - 1) / KCUDA_GEMM_TILE),
              (unsigned)((n + KCUDA_GEMM_TILE - 1) / KCUDA_GEMM_TILE));
    if (d_f32)
        kcuda_gemm_fallback_k<float>
            <<<grid, block, 0, kcuda.stream>>>((float *)d, (const bf16 *)a, (const bf16 *)b, m, n,
                                               k, lda, ldb, ldd, ta, tb, beta, (const bf16 *)bias);
    else
        kcuda_gemm_fallback_k<bf16>
            <<<grid, block, 0, kcuda.stream>>>((bf16 *)d, (const bf16 *)a, (const bf16 *)b, m, n, k,
                                               lda, ldb, ldd, ta, tb, beta, (const bf16 *)bias);
    kcuda_launched();
}

/* ---- cuBLASLt plans, cached by shape ----
 * A plan is everything cublasLtMatmul needs except the pointers: the
 * operation descriptor, the three layouts and the heuristic's algorithm (or
 * the verdict that cuBLASLt has none). Its key is every input the
 * heuristic sees: shape, leading dimensions, transposes, D's type, whether
 * beta is 0, whether there is a bias, and the pointers' alignments. A
 * training step calls a few dozen distinct shapes hundreds of times, so the
 * descriptors and the heuristic run once per shape instead of per call. A
 * plan is never changed after it is made, except the bias pointer, set
 * under the lock right before its launch. When the table is full, plans are
 * made and destroyed per call as before. */
#define KCUDA_PLANS 128

typedef struct {
    int m, n, k, lda, ldb, ldd, ta, tb, d_f32, beta0, has_bias;
    uint32_t al_a, al_b, al_d, al_bias;
} kcuda_plan_key;

typedef struct {
    kcuda_plan_key key;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc, ld;
    cublasLtMatmulAlgo_t algo;
    int have_algo; /* 0: cuBLASLt has no kernel for it, use the fallback */
} kcuda_plan;

static kcuda_plan kcuda_plans[KCUDA_PLANS];
static int kcuda_n_plans;
static pthread_mutex_t kcuda_plan_mu = PTHREAD_MUTEX_INITIALIZER;

/* bias: the first call's bias pointer (NULL without), set before the
 * heuristic runs as in an uncached call; the key holds its alignment. */
static void kcuda_plan_make(kcuda_plan *p, const kcuda_plan_key *key, const void *bias) {
    p->key = *key;
    cublasOperation_t opa = key->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = key->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    cudaDataType_t td = key->d_f32 ? CUDA_R_32F : CUDA_R_16BF;
    kcuda_cublas_check(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    kcuda_cublas_check(
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    kcuda_cublas_check(
        cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (key->has_bias) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = CUDA_R_16BF;
        kcuda_cublas_check(
            cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        kcuda_cublas_check(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                          &bias, sizeof bias));
        kcuda_cublas_check(cublasLtMatmulDescSetAttribute(
            p->op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    int m = key->m, n = key->n, k = key->k;
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_16BF, key->ta ? k : m,
                                                  key->ta ? m : k, key->lda));
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_16BF, key->tb ? n : k,
                                                  key->tb ? k : n, key->ldb));
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&p->lc, td, m, n, key->ldd));
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&p->ld, td, m, n, key->ldd));
    cublasLtMatmulPreference_t pref;
    kcuda_cublas_check(cublasLtMatmulPreferenceCreate(&pref));
    kcuda_cublas_check(
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                             &kcuda.lt_ws_bytes, sizeof kcuda.lt_ws_bytes));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key->al_a, sizeof key->al_a));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key->al_b, sizeof key->al_b));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key->al_d, sizeof key->al_d));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key->al_d, sizeof key->al_d));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(kcuda.lt, p->op, p->la, p->lb, p->lc, p->ld,
                                                       pref, 1, &heur, &found);
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED) kcuda_cublas_check(st);
    p->have_algo = st == CUBLAS_STATUS_SUCCESS && found > 0;
    if (p->have_algo) p->algo = heur.algo;
    kcuda_cublas_check(cublasLtMatmulPreferenceDestroy(pref));
}

static void kcuda_plan_destroy(kcuda_plan *p) {
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(p->ld));
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(p->lc));
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(p->lb));
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(p->la));
    kcuda_cublas_check(cublasLtMatmulDescDestroy(p->op));
}

/* Column-major D (m, n) = op(A) (m, k) . op(B) (k, n) + beta * D [+ bias];
 * D bf16 or (d_f32) fp32, A and B bf16, fp32 accumulation; cuBLASLt when it
 * has a kernel for the shape, else the fallback above. beta is 0 or 1. */
static void kcuda_lt_gemm(void *d, int d_f32, const void *a, const void *b, int m, int n, int k,
                          int lda, int ldb, int ldd, int ta, int tb, float beta, const void *bias) {
    kcuda_plan_key key;
    memset(&key, 0, sizeof key); /* compared with memcmp: no stray padding */
    key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd;
    key.ta = ta, key.tb = tb, key.d_f32 = d_f32, key.beta0 = beta == 0.0f;
    key.has_bias = bias != NULL;
    key.al_a = kcuda_align_of(a), key.al_b = kcuda_align_of(b), key.al_d = kcuda_align_of(d);
    key.al_bias = bias ? kcuda_align_of(bias) : 0;
    pthread_mutex_lock(&kcuda_plan_mu);
    kcuda_plan *p = NULL, once;
    for (int i = 0; i < kcuda_n_plans && !p; i++)
        if (memcmp(&kcuda_plans[i].key, &key, sizeof key) == 0) p = &kcuda_plans[i];
    int cached = 1;
    if (!p && kcuda_n_plans < KCUDA_PLANS) {
        p = &kcuda_plans[kcuda_n_plans++];
        kcuda_plan_make(p, &key, bias);
    } else if (!p) {
        p = &once;
        kcuda_plan_make(p, &key, bias);
        cached = 0;
    }
    cublasStatus_t st = CUBLAS_STATUS_NOT_SUPPORTED;
    if (p->have_algo) {
        float alpha = 1.0f;
        if (bias != NULL)
            kcuda_cublas_check(cublasLtMatmulDescSetAttribute(
                p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        st = cublasLtMatmul(kcuda.lt, p->op, &alpha, a, p->la, b, p->lb, &beta, d, p->lc, d, p->ld,
                            &p->algo, kcuda.lt_ws, kcuda.lt_ws_bytes, kcuda.stream);
        if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
            kcuda_cublas_check(st);
            kcuda_launched();
        }
    }
    if (!cached) kcuda_plan_destroy(p);
    pthread_mutex_unlock(&kcuda_plan_mu);
    /* NOT_SUPPORTED from the heuristic or the launch: nothing was written. */
    if (st == CUBLAS_STATUS_NOT_SUPPORTED)
        kcuda_gemm_fallback(d, d_f32, a, b, m, n, k, lda, ldb, ldd, ta, tb, beta, bias);
}

void kcuda_matmul_fwd(void *out,          /* (N, OC) */
                      const void *inp,    /* (N, C) */
                      const void *weight, /* (OC, C) */
                      const void *bias,   /* (OC) or NULL */
                      int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    /* out^T (OC, N) = weight^T (op T of col-major (C, OC)) . inp^T (C, N) */
    kcuda_lt_gemm(out, 0, weight, inp, OC, N, C, C, C, OC, 1, 0, 0.0f, bias);
}

void kcuda_matmul_bwd(void *dinp,         /* (N, C) += */
                      void *dweight,      /* (OC, C) += */
                      void *dbias,        /* (OC) += */
                      const void *dout,   /* (N, OC) */
                      const void *inp,    /* (N, C) */
                      const void *weight, /* (OC, C) */
                      int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    /* dinp^T (C, N) += weight^T col-major (C, OC) . dout^T (OC, N) */
    if (dinp != NULL) kcuda_lt_gemm(dinp, 0, weight, dout, C, N, OC, C, OC, C, 0, 0, 1.0f, NULL);
    /* dweight^T (C, OC) += inp^T (C, N) . dout (op T of (OC, N)), into the
     * fp32 gradient (C and D fp32): no bf16 rounding per micro-batch */
    if (dweight != NULL) kcuda_lt_gemm(dweight, 1, inp, dout, C, OC, N, C, OC, C, 0, 1, 1.0f, NULL);
    if (dbias != NULL) kcuda_colsum_acc((float *)dbias, (const bf16 *)dout, N, OC);
}

/* ---- bias gradient: deterministic column sums ----
 * Pass 1: row chunk p, column c -> part[p][c] (rows in order). Pass 2: per
 * column, the chunks in order, added to dbias. The chunk count is fixed, so
 * the sum does not depend on the device. */
#define KCUDA_COLSUM_CHUNKS K_CUDA_COLSUM_CHUNKS /* k.h */

__global__ void kcuda_colsum_part_k(float *part, const bf16 *dout, int N, int OC, int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, p = blockIdx.y;
    if (c >= OC) return;
    int r0 = p * rows_per, r1 = min(N, r0 + rows_per);
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) acc += kcuda_f(dout[(size_t)r * OC + c]);
    part[(size_t)p * OC + c] = acc;
}

__global__ void kcuda_colsum_fold_k(float *dst, const float *part, int OC, int parts) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    float acc = 0.0f;
    for (int p = 0; p < parts; p++) acc += part[(size_t)p * OC + c];
    dst[c] += acc;
}

void kcuda_colsum_acc(float *dbias, const bf16 *dout, int N, int OC) {
    int rows_per = (N + KCUDA_COLSUM_CHUNKS - 1) / KCUDA_COLSUM_CHUNKS;
    float *part =
        (float *)kcuda_scratch(KCUDA_SCR_COLSUM, (size_t)KCUDA_COLSUM_CHUNKS * OC * sizeof(float));
    dim3 grid(kcuda_blocks((size_t)OC, 256), KCUDA_COLSUM_CHUNKS);
    kcuda_colsum_part_k<<<grid, 256, 0, kcuda.stream>>>(part, dout, N, OC, rows_per);
    kcuda_launched();
    kcuda_colsum_fold_k<<<kcuda_blocks((size_t)OC, 256), 256, 0, kcuda.stream>>>(
        dbias, part, OC, KCUDA_COLSUM_CHUNKS);
    kcuda_launched();
}
