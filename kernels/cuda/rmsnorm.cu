/* rmsnorm.cu -- RMSNorm, out = inp * rstd * weight,
 * rstd = 1 / sqrt(mean(inp^2) + eps) (fp32, saved for the backward).
 *
 * Forward and dinp: one block per row, fp32 sums in a fixed tree order.
 * dweight_c += sum over rows of dout_c * inp_c * rstd: rows are cut into a
 * fixed number of chunks, each chunk summed in order into an fp32 partial,
 * then the partials folded in order: deterministic, no atomics. */
#include "kcuda.h"

#define KCUDA_RMS_THREADS 256
#define KCUDA_RMS_CHUNKS  K_CUDA_COLSUM_CHUNKS /* k.h: shares the column-sum scratch */

__global__ void kcuda_rmsnorm_fwd_k(bf16 *out, float *rstd, const bf16 *inp, const bf16 *weight,
                                    float eps, int C) {
    size_t n = blockIdx.x;
    const bf16 *x = inp + n * C;
    bf16 *y = out + n * C;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = kcuda_f(x[c]);
        ss += v * v;
    }
    ss = kcuda_block_sum(ss);
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    if (threadIdx.x == 0) rstd[n] = r;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        y[c] = kcuda_b(kcuda_f(x[c]) * r * kcuda_f(weight[c]));
}

__global__ void kcuda_rmsnorm_dinp_k(bf16 *dinp, const bf16 *dout, const bf16 *inp,
                                     const bf16 *weight, const float *rstd, int C) {
    size_t n = blockIdx.x;
    const bf16 *x = inp + n * C, *dy = dout + n * C;
    bf16 *dx = dinp + n * C;
    float r = rstd[n], s = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        s += kcuda_f(dy[c]) * kcuda_f(weight[c]) * kcuda_f(x[c]);
    s = kcuda_block_sum(s);
    float k = r * r * r * s / (float)C;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dx[c] =
            kcuda_b(kcuda_f(dx[c]) + r * kcuda_f(weight[c]) * kcuda_f(dy[c]) - kcuda_f(x[c]) * k);
}

__global__ void kcuda_rmsnorm_dw_part_k(float *part, const bf16 *dout, const bf16 *inp,
                                        const float *rstd, int N, int C, int rows_per) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, p = blockIdx.y;
    if (c >= C) return;
    int r0 = p * rows_per, r1 = min(N, r0 + rows_per);
    float acc = 0.0f;
    for (int r = r0; r < r1; r++) {
        size_t i = (size_t)r * C + c;
        acc += kcuda_f(dout[i]) * kcuda_f(inp[i]) * rstd[r];
    }
    part[(size_t)p * C + c] = acc;
}

__global__ void kcuda_rmsnorm_dw_fold_k(float *dweight, const float *part, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int p = 0; p < KCUDA_RMS_CHUNKS; p++) acc += part[(size_t)p * C + c];
    dweight[c] += acc;
}

void kcuda_rmsnorm_fwd(void *out,          /* (N, C) */
                       float *rstd,        /* (N) */
                       const void *inp,    /* (N, C) */
                       const void *weight, /* (C) */
                       float eps, int N, int C) {
    if (N <= 0 || C <= 0) return;
    kcuda_rmsnorm_fwd_k<<<N, KCUDA_RMS_THREADS, 0, kcuda.stream>>>(
        (bf16 *)out, rstd, (const bf16 *)inp, (const bf16 *)weight, eps, C);
    kcuda_launched();
}

void kcuda_rmsnorm_bwd(void *dinp,         /* (N, C) += */
                       void *dweight,      /* (C) += fp32 */
                       const void *dout,   /* (N, C) */
                       const void *inp,    /* (N, C) */
                       const void *weight, /* (C) */
                       const float *rstd,  /* (N) */
                       int N, int C) {
    if (N <= 0 || C <= 0) return;
    kcuda_rmsnorm_dinp_k<<<N, KCUDA_RMS_THREADS, 0, kcuda.stream>>>(
        (bf16 *)dinp, (const bf16 *)dout, (const bf16 *)inp, (const bf16 *)weight, rstd, C);
    kcuda_launched();
    int rows_per = (N + KCUDA_RMS_CHUNKS - 1) / KCUDA_RMS_CHUNKS;
    float *part =
        (float *)kcuda_scratch(KCUDA_SCR_COLSUM, (size_t)KCUDA_RMS_CHUNKS * C * sizeof(float));
    dim3 grid(kcuda_blocks((size_t)C, 256), KCUDA_RMS_CHUNKS);
    kcuda_rmsnorm_dw_part_k<<<grid, 256, 0, kcuda.stream>>>(
        part, (const bf16 *)dout, (const bf16 *)inp, rstd, N, C, rows_per);
    kcuda_launched();
    kcuda_rmsnorm_dw_fold_k<<<kcuda_blocks((size_t)C, 256), 256, 0, kcuda.stream>>>(
        (float *)dweight, part, C);
    kcuda_launched();
}
