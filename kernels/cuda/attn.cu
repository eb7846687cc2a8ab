/* attn.cu -- causal grouped-query attention, flash style, bf16 in and out,
 * fp32 arithmetic.
 *
 * out_i = sum_{j<=i} softmax_j(q_i . k_j / sqrt(D)) v_j for every query head
 * h, with k and v read in place from kv head h / (H / KVH) of the fused qkv
 * rows (k.h): no repeated K/V and no T x T matrix, only the row
 * log-sum-exp (natural log, (B, H, T)) is saved.
 *
 * Forward: a block of 4 warps owns 16 query rows of one (b, h); it walks the
 * key tiles of 32 keys up to the diagonal through shared memory with an
 * online softmax. For scores, lane l of a warp computes key l of the tile
 * against the warp's 4 rows (K padded by one float per row: no bank
 * conflicts); for P.V, lane l owns channels l, l+32, ... of the output.
 * Scores are kept in base 2 (q is pre-scaled by log2(e)/sqrt(D)).
 *
 * Backward, with P = exp(S - lse), dP = dO V^T, delta = rowsum(dO * O),
 * dS = P * (dP - delta):
 *   dQ = dS K / sqrt(D), dK = dS^T Q / sqrt(D), dV = P^T dO.
 * Three kernels, each the sole writer of what it writes, so the result is
 * deterministic without atomics: delta; dK/dV per (b, kv head, 16 keys),
 * looping over the group's query heads and every later query tile; dQ per
 * (b, h, 16 queries) over the key tiles up to the diagonal. Scores are
 * recomputed in both (as the CPU backend does).
 *
 * Head dims 64 and 128 (with 16-byte aligned tensors) run on tensor cores
 * (attn_tc.cu); these kernels, on the CUDA cores in fp32, take every other
 * even D <= 256 (channels per lane DC = 1, 2, 4 or 8 by template). */
#include <math.h>

#include "kcuda.h"

#define KCUDA_ATTN_WARPS   4
#define KCUDA_ATTN_RW      4                                  /* rows per warp */
#define KCUDA_ATTN_BR      (KCUDA_ATTN_WARPS * KCUDA_ATTN_RW) /* rows per block */
#define KCUDA_ATTN_BC      32                                 /* keys per tile */
#define KCUDA_ATTN_THREADS (KCUDA_ATTN_WARPS * 32)
#define KCUDA_LOG2E        1.4426950408889634f
#define KCUDA_LN2          0.6931471805599453f

/* Rows r0 .. r0+n-1 of two heads (a, b: row 0's first channel, rows lda /
 * ldb apart, D channels each) into fp32 smem tiles of row stride sa / sb;
 * rows past T are zero. */
__device__ __forceinline__ void kcuda_attn_load2(float *A, int sa, const bf16 *a, size_t lda,
                                                 float *B, int sb, const bf16 *b, size_t ldb,
                                                 int r0, int n, int T, int D) {
    for (int x = threadIdx.x; x < n * D; x += blockDim.x) {
        int r = x / D, d = x % D, i = r0 + r;
        bool in = i < T;
        A[r * sa + d] = in ? kcuda_f(a[(size_t)i * lda + d]) : 0.0f;
        B[r * sb + d] = in ? kcuda_f(b[(size_t)i * ldb + d]) : 0.0f;
    }
}

/* ---- forward ---- */

template <int DC>
__global__ void __launch_bounds__(KCUDA_ATTN_THREADS)
    kcuda_attn_fwd_k(bf16 *out, float *lse, const bf16 *qkv, int T, int H, int KVH, int D,
                     float qscale) {
    extern __shared__ float sm[];
    const int DP = D + 1;
    float *Qs = sm;                      /* (BR, D)  scaled q rows */
    float *Ks = Qs + KCUDA_ATTN_BR * D;  /* (BC, DP) */
    float *Vs = Ks + KCUDA_ATTN_BC * DP; /* (BC, D) */
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int qt = gridDim.x - 1 - blockIdx.x; /* longest rows first */
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * ld;
    const bf16 *kb = base + (size_t)(H + kvh) * D, *vb = base + (size_t)(H + KVH + kvh) * D;
    const int i0 = qt * KCUDA_ATTN_BR;

    for (int x = threadIdx.x; x < KCUDA_ATTN_BR * D; x += blockDim.x) {
        int r = x / D, d = x % D, i = i0 + r;
        Qs[x] = i < T ? kcuda_f(base[(size_t)i * ld + (size_t)h * D + d]) * qscale : 0.0f;
    }
    float o[KCUDA_ATTN_RW][DC], mx[KCUDA_ATTN_RW], l[KCUDA_ATTN_RW];
    for (int r = 0; r < KCUDA_ATTN_RW; r++) {
        mx[r] = -INFINITY;
        l[r] = 0.0f;
        for (int c = 0; c < DC; c++) o[r][c] = 0.0f;
    }
    const int kend = min(T, i0 + KCUDA_ATTN_BR);
    for (int j0 = 0; j0 < kend; j0 += KCUDA_ATTN_BC) {
        __syncthreads();
        kcuda_attn_load2(Ks, DP, kb, ld, Vs, D, vb, ld, j0, KCUDA_ATTN_BC, T, D);
        __syncthreads();
        float s[KCUDA_ATTN_RW];
        for (int r = 0; r < KCUDA_ATTN_RW; r++) s[r] = 0.0f;
        const float *kr = Ks + lane * DP;
        const float *qw = Qs + (w * KCUDA_ATTN_RW) * D;
        for (int d = 0; d < D; d++) {
            float kv = kr[d];
            for (int r = 0; r < KCUDA_ATTN_RW; r++) s[r] += qw[r * D + d] * kv;
        }
        float p[KCUDA_ATTN_RW];
        for (int r = 0; r < KCUDA_ATTN_RW; r++) {
            int i = i0 + w * KCUDA_ATTN_RW + r, j = j0 + lane;
            float sr = (j <= i && i < T) ? s[r] : -INFINITY;
            float mnew = fmaxf(mx[r], kcuda_warp_max(sr));
            if (mnew == -INFINITY) { /* a padding row past T: nothing to see */
                p[r] = 0.0f;
                continue;
            }
            float alpha = exp2f(mx[r] - mnew);
            p[r] = exp2f(sr - mnew);
            l[r] = l[r] * alpha + kcuda_warp_sum(p[r]);
            mx[r] = mnew;
            for (int c = 0; c < DC; c++) o[r][c] *= alpha;
        }
        for (int jj = 0; jj < KCUDA_ATTN_BC; jj++) {
            const float *vr = Vs + jj * D;
            for (int r = 0; r < KCUDA_ATTN_RW; r++) {
                float pj = __shfl_sync(0xffffffffu, p[r], jj);
                for (int c = 0; c < DC; c++) {
                    int d = lane + 32 * c;
                    if (d < D) o[r][c] += pj * vr[d];
                }
            }
        }
    }
    for (int r = 0; r < KCUDA_ATTN_RW; r++) {
        int i = i0 + w * KCUDA_ATTN_RW + r;
        if (i >= T) continue;
        float inv = 1.0f / l[r];
        bf16 *orow = out + ((size_t)b * T + i) * (size_t)H * D + (size_t)h * D;
        for (int c = 0; c < DC; c++) {
            int d = lane + 32 * c;
            if (d < D) orow[d] = kcuda_b(o[r][c] * inv);
        }
        if (lane == 0) lse[((size_t)b * H + h) * T + i] = (mx[r] + log2f(l[r])) * KCUDA_LN2;
    }
}

/* ---- backward ---- */

/* delta[b, h, i] = dout[b, i, h, :] . out[b, i, h, :]; one warp per row. */
__global__ void kcuda_attn_delta_k(float *delta, const bf16 *dout, const bf16 *out, int T, int H,
                                   int D, size_t rows) {
    size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (row >= rows) return;
    /* row = (b * T + i) * H + h */
    size_t h = row % (size_t)H, bi = row / (size_t)H;
    size_t b = bi / (size_t)T, i = bi % (size_t)T;
    const bf16 *x = dout + row * D, *y = out + row * D;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc += kcuda_f(x[d]) * kcuda_f(y[d]);
    acc = kcuda_warp_sum(acc);
    if (lane == 0) delta[(b * H + h) * T + i] = acc;
}

/* dK, dV for 16 keys of one (b, kv head): lane l takes query l of each tile
 * of 32 queries for the scores; lane l owns channels l, l+32, ... of the
 * 4 keys of its warp for the sums. */
template <int DC>
__global__ void __launch_bounds__(KCUDA_ATTN_THREADS)
    kcuda_attn_dkv_k(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                     const float *delta, int T, int H, int KVH, int D, float qscale, float scale) {
    extern __shared__ float sm[];
    const int DP = D + 1;
    float *Ks = sm;                      /* (BR, D) keys of this block */
    float *Vs = Ks + KCUDA_ATTN_BR * D;  /* (BR, D) */
    float *Qs = Vs + KCUDA_ATTN_BR * D;  /* (BC, DP) query tile */
    float *Os = Qs + KCUDA_ATTN_BC * DP; /* (BC, DP) dout tile */
    float *L2 = Os + KCUDA_ATTN_BC * DP; /* (BC) lse in base 2 */
    float *Dl = L2 + KCUDA_ATTN_BC;      /* (BC) delta */
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int kt = gridDim.x - 1 - blockIdx.x;
    const int kvh = blockIdx.y, b = blockIdx.z, G = H / KVH;
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * ld;
    const bf16 *dob = dout + (size_t)b * T * H * D;
    const int k0 = kt * KCUDA_ATTN_BR;
    kcuda_attn_load2(Ks, D, base + (size_t)(H + kvh) * D, ld, Vs, D,
                     base + (size_t)(H + KVH + kvh) * D, ld, k0, KCUDA_ATTN_BR, T, D);
    float dk[KCUDA_ATTN_RW][DC], dv[KCUDA_ATTN_RW][DC];
    for (int r = 0; r < KCUDA_ATTN_RW; r++)
        for (int c = 0; c < DC; c++) dk[r][c] = dv[r][c] = 0.0f;
    for (int h = kvh * G; h < (kvh + 1) * G; h++) {
        const float *lh = lse + ((size_t)b * H + h) * T, *dh = delta + ((size_t)b * H + h) * T;
        for (int i0 = k0; i0 < T; i0 += KCUDA_ATTN_BC) {
            __syncthreads();
            kcuda_attn_load2(Qs, DP, base + (size_t)h * D, ld, Os, DP, dob + (size_t)h * D,
                             (size_t)H * D, i0, KCUDA_ATTN_BC, T, D);
            if (threadIdx.x < KCUDA_ATTN_BC) {
                int i = i0 + threadIdx.x;
                L2[threadIdx.x] = i < T ? lh[i] * KCUDA_LOG2E : INFINITY;
                Dl[threadIdx.x] = i < T ? dh[i] : 0.0f;
            }
            __syncthreads();
            float s[KCUDA_ATTN_RW], dp[KCUDA_ATTN_RW];
            for (int r = 0; r < KCUDA_ATTN_RW; r++) s[r] = dp[r] = 0.0f;
            const float *qr = Qs + lane * DP, *orow = Os + lane * DP;
            const float *kw = Ks + (w * KCUDA_ATTN_RW) * D, *vw = Vs + (w * KCUDA_ATTN_RW) * D;
            for (int d = 0; d < D; d++) {
                float qv = qr[d], ov = orow[d];
                for (int r = 0; r < KCUDA_ATTN_RW; r++) {
                    s[r] += qv * kw[r * D + d];
                    dp[r] += ov * vw[r * D + d];
                }
            }
            float p[KCUDA_ATTN_RW], ds[KCUDA_ATTN_RW];
            const int i = i0 + lane;
            for (int r = 0; r < KCUDA_ATTN_RW; r++) {
                int j = k0 + w * KCUDA_ATTN_RW + r;
                bool keep = j <= i && i < T && j < T;
                p[r] = keep ? exp2f(s[r] * qscale - L2[lane]) : 0.0f;
                ds[r] = p[r] * (dp[r] - Dl[lane]);
            }
            for (int ii = 0; ii < KCUDA_ATTN_BC; ii++) {
                const float *qi = Qs + ii * DP, *oi = Os + ii * DP;
                for (int r = 0; r < KCUDA_ATTN_RW; r++) {
                    float pi = __shfl_sync(0xffffffffu, p[r], ii);
                    float dsi = __shfl_sync(0xffffffffu, ds[r], ii);
                    for (int c = 0; c < DC; c++) {
                        int d = lane + 32 * c;
                        if (d < D) {
                            dv[r][c] += pi * oi[d];
                            dk[r][c] += dsi * qi[d];
                        }
                    }
                }
            }
        }
    }
    bf16 *db = dqkv + (size_t)b * T * ld;
    for (int r = 0; r < KCUDA_ATTN_RW; r++) {
        int j = k0 + w * KCUDA_ATTN_RW + r;
        if (j >= T) continue;
        bf16 *dkr = db + (size_t)j * ld + (size_t)(H + kvh) * D;
        bf16 *dvr = db + (size_t)j * ld + (size_t)(H + KVH + kvh) * D;
        for (int c = 0; c < DC; c++) {
            int d = lane + 32 * c;
            if (d < D) {
                dkr[d] = kcuda_b(kcuda_f(dkr[d]) + dk[r][c] * scale);
                dvr[d] = kcuda_b(kcuda_f(dvr[d]) + dv[r][c]);
            }
        }
    }
}

/* dQ for 16 queries of one (b, h): the forward's layout (lane = key of the
 * tile for the scores, lane = channels for the sums). */
template <int DC>
__global__ void __launch_bounds__(KCUDA_ATTN_THREADS)
    kcuda_attn_dq_k(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                    const float *delta, int T, int H, int KVH, int D, float qscale, float scale) {
    extern __shared__ float sm[];
    const int DP = D + 1;
    float *Qs = sm;                      /* (BR, D) */
    float *Os = Qs + KCUDA_ATTN_BR * D;  /* (BR, D) dout rows */
    float *Ks = Os + KCUDA_ATTN_BR * D;  /* (BC, DP) */
    float *Vs = Ks + KCUDA_ATTN_BC * DP; /* (BC, DP) */
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const int qt = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * ld;
    const bf16 *kb = base + (size_t)(H + kvh) * D, *vb = base + (size_t)(H + KVH + kvh) * D;
    const bf16 *dob = dout + (size_t)b * T * H * D;
    const int i0 = qt * KCUDA_ATTN_BR;
    kcuda_attn_load2(Qs, D, base + (size_t)h * D, ld, Os, D, dob + (size_t)h * D, (size_t)H * D, i0,
                     KCUDA_ATTN_BR, T, D);
    float l2[KCUDA_ATTN_RW], dl[KCUDA_ATTN_RW], dq[KCUDA_ATTN_RW][DC];
    for (int r = 0; r < KCUDA_ATTN_RW; r++) {
        int i = i0 + w * KCUDA_ATTN_RW + r;
        size_t st = ((size_t)b * H + h) * T + i;
        l2[r] = i < T ? lse[st] * KCUDA_LOG2E : INFINITY;
        dl[r] = i < T ? delta[st] : 0.0f;
        for (int c = 0; c < DC; c++) dq[r][c] = 0.0f;
    }
    const int kend = min(T, i0 + KCUDA_ATTN_BR);
    for (int j0 = 0; j0 < kend; j0 += KCUDA_ATTN_BC) {
        __syncthreads();
        kcuda_attn_load2(Ks, DP, kb, ld, Vs, DP, vb, ld, j0, KCUDA_ATTN_BC, T, D);
        __syncthreads();
        float s[KCUDA_ATTN_RW], dp[KCUDA_ATTN_RW];
        for (int r = 0; r < KCUDA_ATTN_RW; r++) s[r] = dp[r] = 0.0f;
        const float *kr = Ks + lane * DP, *vr = Vs + lane * DP;
        const float *qw = Qs + (w * KCUDA_ATTN_RW) * D, *ow = Os + (w * KCUDA_ATTN_RW) * D;
        for (int d = 0; d < D; d++) {
            float kv = kr[d], vv = vr[d];
            for (int r = 0; r < KCUDA_ATTN_RW; r++) {
                s[r] += qw[r * D + d] * kv;
                dp[r] += ow[r * D + d] * vv;
            }
        }
        float ds[KCUDA_ATTN_RW];
        const int j = j0 + lane;
        for (int r = 0; r < KCUDA_ATTN_RW; r++) {
            int i = i0 + w * KCUDA_ATTN_RW + r;
            bool keep = j <= i && i < T;
            float p = keep ? exp2f(s[r] * qscale - l2[r]) : 0.0f;
            ds[r] = p * (dp[r] - dl[r]);
        }
        for (int jj = 0; jj < KCUDA_ATTN_BC; jj++) {
            const float *kj = Ks + jj * DP;
            for (int r = 0; r < KCUDA_ATTN_RW; r++) {
                float dsj = __shfl_sync(0xffffffffu, ds[r], jj);
                for (int c = 0; c < DC; c++) {
                    int d = lane + 32 * c;
                    if (d < D) dq[r][c] += dsj * kj[d];
                }
            }
        }
    }
    bf16 *db = dqkv + (size_t)b * T * ld;
    for (int r = 0; r < KCUDA_ATTN_RW; r++) {
        int i = i0 + w * KCUDA_ATTN_RW + r;
        if (i >= T) continue;
        bf16 *dqr = db + (size_t)i * ld + (size_t)h * D;
        for (int c = 0; c < DC; c++) {
            int d = lane + 32 * c;
            if (d < D) dqr[d] = kcuda_b(kcuda_f(dqr[d]) + dq[r][c] * scale);
        }
    }
}

/* ---- launchers ---- */

static int kcuda_attn_dc(int D) {
    if (D % 2 != 0 || D > 256)
        kcuda_fail("attention head dim must be even and <= 256", __FILE__, __LINE__);
    int need = (D + 31) / 32;
    return need <= 1 ? 1 : need <= 2 ? 2 : need <= 4 ? 4 : 8;
}

/* Dynamic shared memory beyond 48 KiB must be asked for per kernel. */
template <typename F> static void kcuda_attn_smem(F *kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        kcuda_check(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int DC>
static void kcuda_attn_fwd_launch(void *out, float *lse, const void *qkv, int B, int T, int H,
                                  int KVH, int D) {
    size_t smem =
        ((size_t)KCUDA_ATTN_BR * D + (size_t)KCUDA_ATTN_BC * (D + 1) + (size_t)KCUDA_ATTN_BC * D) *
        sizeof(float);
    kcuda_attn_smem(kcuda_attn_fwd_k<DC>, smem);
    dim3 grid((T + KCUDA_ATTN_BR - 1) / KCUDA_ATTN_BR, H, B);
    float qscale = KCUDA_LOG2E / sqrtf((float)D);
    kcuda_attn_fwd_k<DC><<<grid, KCUDA_ATTN_THREADS, smem, kcuda.stream>>>(
        (bf16 *)out, lse, (const bf16 *)qkv, T, H, KVH, D, qscale);
    kcuda_launched();
}

template <int DC>
static void kcuda_attn_bwd_launch(void *dqkv, const float *delta, const void *dout, const void *qkv,
                                  const float *lse, int B, int T, int H, int KVH, int D) {
    float scale = 1.0f / sqrtf((float)D), qscale = KCUDA_LOG2E * scale;
    size_t smem_kv =
        ((size_t)2 * KCUDA_ATTN_BR * D + (size_t)2 * KCUDA_ATTN_BC * (D + 1) + 2 * KCUDA_ATTN_BC) *
        sizeof(float);
    kcuda_attn_smem(kcuda_attn_dkv_k<DC>, smem_kv);
    dim3 gkv((T + KCUDA_ATTN_BR - 1) / KCUDA_ATTN_BR, KVH, B);
    kcuda_attn_dkv_k<DC><<<gkv, KCUDA_ATTN_THREADS, smem_kv, kcuda.stream>>>(
        (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, delta, T, H, KVH, D, qscale,
        scale);
    kcuda_launched();
    size_t smem_q =
        ((size_t)2 * KCUDA_ATTN_BR * D + (size_t)2 * KCUDA_ATTN_BC * (D + 1)) * sizeof(float);
    kcuda_attn_smem(kcuda_attn_dq_k<DC>, smem_q);
    dim3 gq((T + KCUDA_ATTN_BR - 1) / KCUDA_ATTN_BR, H, B);
    kcuda_attn_dq_k<DC><<<gq, KCUDA_ATTN_THREADS, smem_q, kcuda.stream>>>(
        (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, delta, T, H, KVH, D, qscale,
        scale);
    kcuda_launched();
}

void kcuda_attn_fwd(void *out,       /* (B, T, H*D) */
                    float *lse,      /* (B, H, T) */
                    const void *qkv, /* (B, T, (H+2*KVH)*D) */
                    int B, int T, int H, int KVH, int D) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    if (kcuda_attn_tc_fwd(out, lse, qkv, B, T, H, KVH, D)) return;
    switch (kcuda_attn_dc(D)) {
    case 1: kcuda_attn_fwd_launch<1>(out, lse, qkv, B, T, H, KVH, D); break;
    case 2: kcuda_attn_fwd_launch<2>(out, lse, qkv, B, T, H, KVH, D); break;
    case 4: kcuda_attn_fwd_launch<4>(out, lse, qkv, B, T, H, KVH, D); break;
    default: kcuda_attn_fwd_launch<8>(out, lse, qkv, B, T, H, KVH, D); break;
    }
}

void kcuda_attn_bwd(void *dqkv,       /* (B, T, (H+2*KVH)*D) += */
                    float *delta,     /* (B, H, T) scratch */
                    const void *dout, /* (B, T, H*D) */
                    const void *qkv,  /* (B, T, (H+2*KVH)*D) */
                    const void *out,  /* (B, T, H*D) */
                    const float *lse, /* (B, H, T) */
                    int B, int T, int H, int KVH, int D) {
    if (B <= 0 || T <= 0 || H <= 0) return;
    size_t rows = (size_t)B * T * H;
    kcuda_attn_delta_k<<<kcuda_blocks(rows * 32, 256), 256, 0, kcuda.stream>>>(
        delta, (const bf16 *)dout, (const bf16 *)out, T, H, D, rows);
    kcuda_launched();
    if (kcuda_attn_tc_bwd(dqkv, delta, dout, qkv, lse, B, T, H, KVH, D)) return;
    switch (kcuda_attn_dc(D)) {
    case 1: kcuda_attn_bwd_launch<1>(dqkv, delta, dout, qkv, lse, B, T, H, KVH, D); break;
    case 2: kcuda_attn_bwd_launch<2>(dqkv, delta, dout, qkv, lse, B, T, H, KVH, D); break;
    case 4: kcuda_attn_bwd_launch<4>(dqkv, delta, dout, qkv, lse, B, T, H, KVH, D); break;
    default: kcuda_attn_bwd_launch<8>(dqkv, delta, dout, qkv, lse, B, T, H, KVH, D); break;
    }
}
