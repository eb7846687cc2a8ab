/* matmul.cu -- the linear layer on cuBLASLt: bf16 operands, fp32
 * accumulation (CUBLAS_COMPUTE_32F), bf16 output.
 *
 * Row-major (N, C) is column-major (C, N), so out = inp @ weight^T is the
 * column-major product out^T (OC, N) = weight^T(op T) . inp^T. The bias rides
 * the epilogue (CUBLASLT_EPILOGUE_BIAS adds a per-row vector of the
 * column-major result, which is per output channel here), so the forward is
 * one pass. The backward's two products accumulate with beta = 1. The bias
 * gradient, a column sum, is a separate deterministic reduction because it
 * must accumulate (+=), which the BGRAD epilogues do not. */
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
 * exact in its contract. Column-major X(r, c) = x[r + c * ldx]. */
#define KCUDA_GEMM_TILE 16

__global__ void kcuda_gemm_fallback_k(bf16 *d, const bf16 *a, const bf16 *b, int m, int n,
                                      int k, int lda, int ldb, int ldd, int ta, int tb,
                                      float beta, const bf16 *bias) {
    __shared__ float As[KCUDA_GEMM_TILE][KCUDA_GEMM_TILE + 1];
    __shared__ float Bs[KCUDA_GEMM_TILE][KCUDA_GEMM_TILE + 1];
    int tx = threadIdx.x, ty = threadIdx.y;
    int r = blockIdx.x * KCUDA_GEMM_TILE + tx, c = blockIdx.y * KCUDA_GEMM_TILE + ty;
    float acc = 0.0f;
    for (int k0 = 0; k0 < k; k0 += KCUDA_GEMM_TILE) {
        int ak = k0 + ty, bk = k0 + tx;
        /* As[kk][row] = op(A)(row, kk); Bs[kk][col] = op(B)(kk, col) */
        As[ty][tx] = r < m && ak < k
                         ? kcuda_f(ta ? a[(size_t)ak + (size_t)r * lda] : a[(size_t)r + (size_t)ak * lda])
                         : 0.0f;
        Bs[tx][ty] = c < n && bk < k
                         ? kcuda_f(tb ? b[(size_t)c + (size_t)bk * ldb] : b[(size_t)bk + (size_t)c * ldb])
                         : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < KCUDA_GEMM_TILE; kk++) acc += As[kk][tx] * Bs[kk][ty];
        __syncthreads();
    }
    if (r >= m || c >= n) return;
    bf16 *dst = d + (size_t)r + (size_t)c * ldd;
    float v = acc + (beta != 0.0f ? beta * kcuda_f(*dst) : 0.0f) + (bias ? kcuda_f(bias[r]) : 0.0f);
    *dst = kcuda_b(v);
}

static void kcuda_gemm_fallback(void *d, const void *a, const void *b, int m, int n, int k,
                                int lda, int ldb, int ldd, int ta, int tb, float beta,
                                const void *bias) {
    dim3 block(KCUDA_GEMM_TILE, KCUDA_GEMM_TILE);
    dim3 grid((unsigned)((m + KCUDA_GEMM_TILE - 1) / KCUDA_GEMM_TILE),
              (unsigned)((n + KCUDA_GEMM_TILE - 1) / KCUDA_GEMM_TILE));
    kcuda_gemm_fallback_k<<<grid, block, 0, kcuda.stream>>>(
        (bf16 *)d, (const bf16 *)a, (const bf16 *)b, m, n, k, lda, ldb, ldd, ta, tb, beta,
        (const bf16 *)bias);
    kcuda_launched();
}

/* Column-major D (m, n) = op(A) (m, k) . op(B) (k, n) + beta * D [+ bias];
 * cuBLASLt when it has a kernel for the shape, else the fallback above. */
static void kcuda_lt_gemm(void *d, const void *a, const void *b, int m, int n,
                          int k, int lda, int ldb, int ldd, int ta, int tb,
                          float beta, const void *bias) {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulPreference_t pref;
    cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    kcuda_cublas_check(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    kcuda_cublas_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    kcuda_cublas_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (bias != NULL) {
        cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        cudaDataType_t bt = CUDA_R_16BF;
        kcuda_cublas_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        kcuda_cublas_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias));
        kcuda_cublas_check(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
    }
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, ta ? k : m, ta ? m : k, lda));
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, tb ? n : k, tb ? k : n, ldb));
    kcuda_cublas_check(cublasLtMatrixLayoutCreate(&ld, CUDA_R_16BF, m, n, ldd));
    kcuda_cublas_check(cublasLtMatmulPreferenceCreate(&pref));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &kcuda.lt_ws_bytes, sizeof kcuda.lt_ws_bytes));
    uint32_t al_a = kcuda_align_of(a), al_b = kcuda_align_of(b), al_d = kcuda_align_of(d);
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
    kcuda_cublas_check(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(kcuda.lt, op, la, lb, ld, ld, pref, 1,
                                                       &heur, &found);
    if (st == CUBLAS_STATUS_SUCCESS && found > 0) {
        float alpha = 1.0f;
        st = cublasLtMatmul(kcuda.lt, op, &alpha, a, la, b, lb, &beta, d, ld, d, ld, &heur.algo,
                            kcuda.lt_ws, kcuda.lt_ws_bytes, kcuda.stream);
        if (st != CUBLAS_STATUS_NOT_SUPPORTED) kcuda_cublas_check(st);
    } else if (st == CUBLAS_STATUS_SUCCESS) {
        st = CUBLAS_STATUS_NOT_SUPPORTED; /* no algorithm found */
    } else if (st != CUBLAS_STATUS_NOT_SUPPORTED) {
        kcuda_cublas_check(st);
    }
    /* NOT_SUPPORTED from the heuristic or the launch: nothing was written. */
    if (st == CUBLAS_STATUS_NOT_SUPPORTED)
        kcuda_gemm_fallback(d, a, b, m, n, k, lda, ldb, ldd, ta, tb, beta, bias);
    kcuda_cublas_check(cublasLtMatmulPreferenceDestroy(pref));
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(ld));
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(lb));
    kcuda_cublas_check(cublasLtMatrixLayoutDestroy(la));
    kcuda_cublas_check(cublasLtMatmulDescDestroy(op));
}

void kcuda_matmul_fwd(void *out,          /* (N, OC) */
                      const void *inp,    /* (N, C) */
                      const void *weight, /* (OC, C) */
                      const void *bias,   /* (OC) or NULL */
                      int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    /* out^T (OC, N) = weight^T (op T of col-major (C, OC)) . inp^T (C, N) */
    kcuda_lt_gemm(out, weight, inp, OC, N, C, C, C, OC, 1, 0, 0.0f, bias);
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
    if (dinp != NULL) kcuda_lt_gemm(dinp, weight, dout, C, N, OC, C, OC, C, 0, 0, 1.0f, NULL);
    /* dweight^T (C, OC) += inp^T (C, N) . dout (op T of (OC, N)) */
    if (dweight != NULL) kcuda_lt_gemm(dweight, inp, dout, C, OC, N, C, OC, C, 0, 1, 1.0f, NULL);
    if (dbias != NULL) kcuda_colsum_acc((bf16 *)dbias, (const bf16 *)dout, N, OC);
}

/* ---- bias gradient: deterministic column sums ----
 * Pass 1: row chunk p, column c -> part[p][c] (rows in order). Pass 2: per
 * column, the chunks in order, added to dbias. The chunk count is fixed, so
 * the sum does not depend on the device. */
#define KCUDA_COLSUM_CHUNKS 64

__global__ void kcuda_colsum_part_k(float *part, const bf16 *dout, int N, int OC,
                                    int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, p = blockIdx.y;
    if (c >= OC) return;
    int r0 = p * rows_per, r1 = min(N, r0 + rows_per);
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) acc += kcuda_f(dout[(size_t)r * OC + c]);
    part[(size_t)p * OC + c] = acc;
}

__global__ void kcuda_colsum_fold_k(bf16 *dst, const float *part, int OC, int parts) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= OC) return;
    float acc = 0.0f;
    for (int p = 0; p < parts; p++) acc += part[(size_t)p * OC + c];
    dst[c] = kcuda_b(kcuda_f(dst[c]) + acc);
}

void kcuda_colsum_acc(bf16 *dbias, const bf16 *dout, int N, int OC) {
    int rows_per = (N + KCUDA_COLSUM_CHUNKS - 1) / KCUDA_COLSUM_CHUNKS;
    float *part = (float *)kcuda_scratch(KCUDA_SCR_COLSUM,
                                         (size_t)KCUDA_COLSUM_CHUNKS * OC * sizeof(float));
    dim3 grid(kcuda_blocks((size_t)OC, 256), KCUDA_COLSUM_CHUNKS);
    kcuda_colsum_part_k<<<grid, 256, 0, kcuda.stream>>>(part, dout, N, OC, rows_per);
    kcuda_launched();
    kcuda_colsum_fold_k<<<kcuda_blocks((size_t)OC, 256), 256, 0, kcuda.stream>>>(
        dbias, part, OC, KCUDA_COLSUM_CHUNKS);
    kcuda_launched();
}
