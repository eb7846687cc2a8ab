/* attn_tc.cu -- causal GQA attention on tensor cores (bf16 mma.sync
 * m16n8k16, fp32 accumulation) for head dims 64 and 128; attn.cu calls it
 * when the shapes and pointers allow and falls back to its CUDA-core
 * kernels otherwise. Same maths, layouts and determinism as attn.cu:
 *
 * Forward: a block of 4 warps owns 64 query rows of one (b, h), a warp 16
 * of them; key/value tiles of 64 rows are staged in shared memory (rows
 * padded by 8 bf16, so every fragment load below is free of bank
 * conflicts). S = Q K^T stays in registers, the online softmax rescales the
 * output accumulators, and P is re-packed from the S accumulators into the
 * A operand of O += P V without touching shared memory (the accumulator
 * layout of m16n8k16 is the A layout of the next product).
 *
 * Backward (delta comes from attn.cu): dQ per (b, h, 64 queries) over the
 * key tiles up to the diagonal, dS = P * (dO V^T - delta), dQ += dS K; dK,
 * dV per (b, kv head, 64 keys) over the group's query heads and every later
 * query tile, with the transposed products S^T = K Q^T and dP^T = V dO^T,
 * dV += P^T dO, dK += dS^T Q. Each kernel is the only writer of what it
 * writes: no atomics, bitwise reproducible. P and dS are rounded to bf16
 * as the A operand of the second product (as FlashAttention-2 does). */
#include <math.h>

#include "kcuda.h"

#define TC_ROWS    64 /* query rows (or keys) per block, 16 per warp */
#define TC_KEYS    64 /* keys (or queries) per staged tile */
#define TC_THREADS 128
#define TC_LOG2E   1.4426950408889634f
#define TC_LN2     0.6931471805599453f

/* ---- fragments of mma.m16n8k16 (g = lane / 4, t = lane % 4) ----
 * A (16 x 16, row-major): r0 (g, 2t..2t+1), r1 (g+8, 2t..), r2 (g, 2t+8..),
 * r3 (g+8, 2t+8..). B (16 x 8): r0 (k 2t..2t+1, n g), r1 (k 2t+8.., n g).
 * C (16 x 8 fp32): c0, c1 (g, 2t..2t+1), c2, c3 (g+8, 2t..2t+1). */
__device__ __forceinline__ void tc_mma(float c[4], const uint32_t a[4], const uint32_t b[2]) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

__device__ __forceinline__ uint32_t tc_pack(bf16 lo, bf16 hi) {
    return (uint32_t)__bfloat16_as_ushort(lo) | ((uint32_t)__bfloat16_as_ushort(hi) << 16);
}

__device__ __forceinline__ uint32_t tc_packf(float lo, float hi) {
    return tc_pack(__float2bfloat16_rn(lo), __float2bfloat16_rn(hi));
}

/* Fragments come from shared memory through ldmatrix: thread l gives the
 * address of row l % 8 of 8x8 matrix l / 8, and receives (row l/4, columns
 * 2(l%4), 2(l%4)+1) of each matrix, or with .trans (rows 2(l%4), 2(l%4)+1,
 * column l/4): exactly the mma operand layouts above. Rows are 16-byte
 * aligned (the padded row of D + 8 bf16 is a multiple of 16 bytes). */
__device__ __forceinline__ uint32_t tc_saddr(const bf16 *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* A from a row-major smem tile: rows r0.., columns c0.. */
template <int SD>
__device__ __forceinline__ void tc_frag_a(uint32_t a[4], const bf16 *s, int r0, int c0, int lane) {
    const bf16 *p = s + (r0 + (lane & 7) + ((lane >> 3) & 1) * 8) * SD + c0 + (lane >> 4) * 8;
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(tc_saddr(p)));
}

/* B[k][n] = s[n0 + n][k0 + k]: the tile's rows are B's columns (K in Q K^T). */
template <int SD>
__device__ __forceinline__ void tc_frag_b_rows(uint32_t b[2], const bf16 *s, int n0, int k0,
                                               int lane) {
    const bf16 *p = s + (n0 + (lane & 7)) * SD + k0 + ((lane >> 3) & 1) * 8;
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(b[0]), "=r"(b[1])
                 : "r"(tc_saddr(p)));
}

/* B[k][n] = s[k0 + k][n0 + n]: the tile's rows are B's rows (V in P V). */
template <int SD>
__device__ __forceinline__ void tc_frag_b_cols(uint32_t b[2], const bf16 *s, int k0, int n0,
                                               int lane) {
    const bf16 *p = s + (k0 + ((lane >> 3) & 1) * 8 + (lane & 7)) * SD + n0;
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(b[0]), "=r"(b[1])
                 : "r"(tc_saddr(p)));
}

/* The A operand of a second product from two C accumulators (16 x 8 each)
 * that sit side by side: columns 0..7 from c0, 8..15 from c1. */
__device__ __forceinline__ void tc_frag_a_acc(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = tc_packf(c0[0], c0[1]);
    a[1] = tc_packf(c0[2], c0[3]);
    a[2] = tc_packf(c1[0], c1[1]);
    a[3] = tc_packf(c1[2], c1[3]);
}

/* The paired products of the backward kernels over one tile, sharing the
 * k loop: s = A1 B1^T and dp = A2 B2^T, A rows a_row..a_row+15 of the warp,
 * B rows 0..8*NT-1, both over D = 16*KS channels (fp32 accumulators). */
template <int SD, int KS, int NT>
__device__ __forceinline__ void tc_mma_pair(float s[NT][4], float dp[NT][4], const bf16 *A1,
                                            const bf16 *B1, const bf16 *A2, const bf16 *B2,
                                            int a_row, int lane) {
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.0f;
#pragma unroll
    for (int ks = 0; ks < KS; ks++) {
        uint32_t a1[4], a2[4];
        tc_frag_a<SD>(a1, A1, a_row, ks * 16, lane);
        tc_frag_a<SD>(a2, A2, a_row, ks * 16, lane);
#pragma unroll
        for (int n = 0; n < NT; n++) {
            uint32_t b1[2], b2[2];
            tc_frag_b_rows<SD>(b1, B1, n * 8, ks * 16, lane);
            tc_frag_b_rows<SD>(b2, B2, n * 8, ks * 16, lane);
            tc_mma(s[n], a1, b1);
            tc_mma(dp[n], a2, b2);
        }
    }
}

/* acc += P B over one key tile: P the warp's 16 x TC_KEYS fp32 accumulators
 * (rounded to bf16 as A fragments), B a TC_KEYS x 8*DN smem tile (row
 * stride SD). */
template <int SD, int DN>
__device__ __forceinline__ void tc_mma_pb(float acc[DN][4], const float p[][4], const bf16 *B,
                                          int lane) {
#pragma unroll
    for (int kk = 0; kk < TC_KEYS / 16; kk++) {
        uint32_t a[4];
        tc_frag_a_acc(a, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
        for (int dn = 0; dn < DN; dn++) {
            uint32_t bf[2];
            tc_frag_b_cols<SD>(bf, B, kk * 16, dn * 8, lane);
            tc_mma(acc[dn], a, bf);
        }
    }
}

/* rows r0 .. r0+63 of one head (src = row 0's first channel, rows ld apart)
 * into a padded smem tile; rows past T are zero. 16-byte loads. */
template <int D>
__device__ __forceinline__ void tc_load(bf16 *dst, const bf16 *src, size_t ld, int r0, int T) {
    constexpr int CH = D / 8, SD = D + 8;
    for (int x = threadIdx.x; x < TC_KEYS * CH; x += blockDim.x) {
        int r = x / CH, c = x % CH, i = r0 + r;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (i < T) v = *(const uint4 *)(src + (size_t)i * ld + c * 8);
        *(uint4 *)(dst + r * SD + c * 8) = v;
    }
}

/* ---- forward ---- */

template <int D>
__global__ void __launch_bounds__(TC_THREADS)
    kcuda_attn_tc_fwd_k(bf16 *out, float *lse, const bf16 *qkv, int T, int H, int KVH,
                        float qscale) {
    constexpr int SD = D + 8, KS = D / 16, DN = D / 8, NT = TC_KEYS / 8;
    extern __shared__ uint4 tc_smem[];
    bf16 *Qs = (bf16 *)tc_smem, *Ks = Qs + TC_ROWS * SD, *Vs = Ks + TC_KEYS * SD;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int qt = gridDim.x - 1 - blockIdx.x; /* longest rows first */
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * ld;
    const int i0 = qt * TC_ROWS, iw = i0 + w * 16;
    tc_load<D>(Qs, base + (size_t)h * D, ld, i0, T);
    __syncthreads();
    uint32_t qf[KS][4];
#pragma unroll
    for (int ks = 0; ks < KS; ks++) tc_frag_a<SD>(qf[ks], Qs, w * 16, ks * 16, lane);
    float o[DN][4], m[2] = { -INFINITY, -INFINITY }, l[2] = { 0.0f, 0.0f };
#pragma unroll
    for (int dn = 0; dn < DN; dn++) o[dn][0] = o[dn][1] = o[dn][2] = o[dn][3] = 0.0f;
    const int kend = min(T, i0 + TC_ROWS);
    for (int j0 = 0; j0 < kend; j0 += TC_KEYS) {
        __syncthreads();
        tc_load<D>(Ks, base + (size_t)(H + kvh) * D, ld, j0, T);
        tc_load<D>(Vs, base + (size_t)(H + KVH + kvh) * D, ld, j0, T);
        __syncthreads();
        float s[NT][4];
#pragma unroll
        for (int n = 0; n < NT; n++) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (int ks = 0; ks < KS; ks++) {
                uint32_t bk[2];
                tc_frag_b_rows<SD>(bk, Ks, n * 8, ks * 16, lane);
                tc_mma(s[n], qf[ks], bk);
            }
        }
        const bool edge = j0 + TC_KEYS > iw || j0 + TC_KEYS > T;
        float mx[2] = { m[0], m[1] };
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float v = s[n][e] * qscale;
                if (edge) {
                    int row = iw + g + (e >> 1) * 8, key = j0 + n * 8 + 2 * t + (e & 1);
                    if (key > row || key >= T) v = -INFINITY;
                }
                s[n][e] = v;
                mx[e >> 1] = fmaxf(mx[e >> 1], v);
            }
        float ref[2], alpha[2], rs[2] = { 0.0f, 0.0f };
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            ref[r] = mx[r] == -INFINITY ? 0.0f : mx[r]; /* a row past T: all masked */
            alpha[r] = exp2f(m[r] - ref[r]);
            m[r] = mx[r];
        }
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                float p = exp2f(s[n][e] - ref[e >> 1]);
                s[n][e] = p;
                rs[e >> 1] += p;
            }
#pragma unroll
        for (int r = 0; r < 2; r++) l[r] = l[r] * alpha[r] + rs[r];
#pragma unroll
        for (int dn = 0; dn < DN; dn++) {
            o[dn][0] *= alpha[0];
            o[dn][1] *= alpha[0];
            o[dn][2] *= alpha[1];
            o[dn][3] *= alpha[1];
        }
        tc_mma_pb<SD, DN>(o, s, Vs, lane);
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        int row = iw + g + r * 8;
        if (row >= T) continue;
        float inv = 1.0f / l[r];
        bf16 *orow = out + ((size_t)b * T + row) * (size_t)H * D + (size_t)h * D + 2 * t;
#pragma unroll
        for (int dn = 0; dn < DN; dn++)
            *(uint32_t *)(orow + dn * 8) = tc_packf(o[dn][2 * r] * inv, o[dn][2 * r + 1] * inv);
        if (t == 0) lse[((size_t)b * H + h) * T + row] = (m[r] + log2f(l[r])) * TC_LN2;
    }
}

/* ---- backward: dQ ---- */

template <int D>
__global__ void __launch_bounds__(TC_THREADS)
    kcuda_attn_tc_dq_k(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                       const float *delta, int T, int H, int KVH, float qscale, float scale) {
    constexpr int SD = D + 8, KS = D / 16, DN = D / 8, NT = TC_KEYS / 8;
    extern __shared__ uint4 tc_smem[];
    bf16 *Qs = (bf16 *)tc_smem, *Os = Qs + TC_ROWS * SD, *Ks = Os + TC_ROWS * SD;
    bf16 *Vs = Ks + TC_KEYS * SD;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int qt = gridDim.x - 1 - blockIdx.x;
    const int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KVH);
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * ld;
    const int i0 = qt * TC_ROWS, iw = i0 + w * 16;
    tc_load<D>(Qs, base + (size_t)h * D, ld, i0, T);
    tc_load<D>(Os, dout + (size_t)b * T * H * D + (size_t)h * D, (size_t)H * D, i0, T);
    float l2[2], dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = iw + g + r * 8;
        size_t st = ((size_t)b * H + h) * T + row;
        l2[r] = row < T ? lse[st] * TC_LOG2E : INFINITY;
        dl[r] = row < T ? delta[st] : 0.0f;
    }
    float dq[DN][4];
#pragma unroll
    for (int dn = 0; dn < DN; dn++) dq[dn][0] = dq[dn][1] = dq[dn][2] = dq[dn][3] = 0.0f;
    const int kend = min(T, i0 + TC_ROWS);
    for (int j0 = 0; j0 < kend; j0 += TC_KEYS) {
        __syncthreads();
        tc_load<D>(Ks, base + (size_t)(H + kvh) * D, ld, j0, T);
        tc_load<D>(Vs, base + (size_t)(H + KVH + kvh) * D, ld, j0, T);
        __syncthreads();
        float s[NT][4], dp[NT][4];
        tc_mma_pair<SD, KS, NT>(s, dp, Qs, Ks, Os, Vs, w * 16, lane);
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int row = iw + g + (e >> 1) * 8, key = j0 + n * 8 + 2 * t + (e & 1);
                bool keep = key <= row && key < T && row < T;
                float p = keep ? exp2f(s[n][e] * qscale - l2[e >> 1]) : 0.0f;
                s[n][e] = p * (dp[n][e] - dl[e >> 1]);
            }
        tc_mma_pb<SD, DN>(dq, s, Ks, lane);
    }
    bf16 *db = dqkv + (size_t)b * T * ld + (size_t)h * D + 2 * t;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int row = iw + g + r * 8;
        if (row >= T) continue;
        bf16 *dqr = db + (size_t)row * ld;
#pragma unroll
        for (int dn = 0; dn < DN; dn++) {
            bf16 *p = dqr + dn * 8;
            *(uint32_t *)p = tc_packf(kcuda_f(p[0]) + dq[dn][2 * r] * scale,
                                      kcuda_f(p[1]) + dq[dn][2 * r + 1] * scale);
        }
    }
}

/* ---- backward: dK, dV ---- */

template <int D>
__global__ void __launch_bounds__(TC_THREADS)
    kcuda_attn_tc_dkv_k(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                        const float *delta, int T, int H, int KVH, float qscale, float scale) {
    constexpr int SD = D + 8, KS = D / 16, DN = D / 8, NT = TC_KEYS / 8;
    extern __shared__ uint4 tc_smem[];
    bf16 *Ks = (bf16 *)tc_smem, *Vs = Ks + TC_ROWS * SD, *Qs = Vs + TC_ROWS * SD;
    bf16 *Os = Qs + TC_KEYS * SD;
    float *L2 = (float *)(Os + TC_KEYS * SD), *Dl = L2 + TC_KEYS;
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int kt = gridDim.x - 1 - blockIdx.x;
    const int kvh = blockIdx.y, b = blockIdx.z, G = H / KVH;
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const bf16 *base = qkv + (size_t)b * T * ld;
    const bf16 *dob = dout + (size_t)b * T * H * D;
    const int k0 = kt * TC_ROWS, kw = k0 + w * 16;
    tc_load<D>(Ks, base + (size_t)(H + kvh) * D, ld, k0, T);
    tc_load<D>(Vs, base + (size_t)(H + KVH + kvh) * D, ld, k0, T);
    float dk[DN][4], dv[DN][4];
#pragma unroll
    for (int dn = 0; dn < DN; dn++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[dn][e] = dv[dn][e] = 0.0f;
    for (int h = kvh * G; h < (kvh + 1) * G; h++) {
        const float *lh = lse + ((size_t)b * H + h) * T, *dh = delta + ((size_t)b * H + h) * T;
        for (int i0 = k0; i0 < T; i0 += TC_KEYS) {
            __syncthreads();
            tc_load<D>(Qs, base + (size_t)h * D, ld, i0, T);
            tc_load<D>(Os, dob + (size_t)h * D, (size_t)H * D, i0, T);
            if (threadIdx.x < TC_KEYS) {
                int i = i0 + threadIdx.x;
                L2[threadIdx.x] = i < T ? lh[i] * TC_LOG2E : INFINITY;
                Dl[threadIdx.x] = i < T ? dh[i] : 0.0f;
            }
            __syncthreads();
            float s[NT][4], dp[NT][4]; /* S^T and dP^T: keys x queries */
            tc_mma_pair<SD, KS, NT>(s, dp, Ks, Qs, Vs, Os, w * 16, lane);
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int key = kw + g + (e >> 1) * 8, qi = n * 8 + 2 * t + (e & 1), q = i0 + qi;
                    bool keep = key <= q && q < T && key < T;
                    float p = keep ? exp2f(s[n][e] * qscale - L2[qi]) : 0.0f;
                    s[n][e] = p;
                    dp[n][e] = p * (dp[n][e] - Dl[qi]);
                }
            tc_mma_pb<SD, DN>(dv, s, Os, lane);
            tc_mma_pb<SD, DN>(dk, dp, Qs, lane);
        }
    }
    bf16 *db = dqkv + (size_t)b * T * ld + 2 * t;
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int key = kw + g + r * 8;
        if (key >= T) continue;
        bf16 *dkr = db + (size_t)key * ld + (size_t)(H + kvh) * D;
        bf16 *dvr = db + (size_t)key * ld + (size_t)(H + KVH + kvh) * D;
#pragma unroll
        for (int dn = 0; dn < DN; dn++) {
            bf16 *pk = dkr + dn * 8, *pv = dvr + dn * 8;
            *(uint32_t *)pk = tc_packf(kcuda_f(pk[0]) + dk[dn][2 * r] * scale,
                                       kcuda_f(pk[1]) + dk[dn][2 * r + 1] * scale);
            *(uint32_t *)pv =
                tc_packf(kcuda_f(pv[0]) + dv[dn][2 * r], kcuda_f(pv[1]) + dv[dn][2 * r + 1]);
        }
    }
}

/* ---- launchers ---- */

static bool kcuda_attn_tc_ok(int D, const void *a, const void *b, const void *c) {
    return (D == 64 || D == 128) && ((uintptr_t)a % 16) == 0 && ((uintptr_t)b % 16) == 0 &&
           ((uintptr_t)c % 16) == 0;
}

template <typename F> static void kcuda_attn_tc_smem(F *kernel, size_t bytes) {
    if (bytes > 48 * 1024)
        kcuda_check(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int D>
static void kcuda_attn_tc_fwd_launch(void *out, float *lse, const void *qkv, int B, int T, int H,
                                     int KVH) {
    size_t smem = (size_t)3 * TC_ROWS * (D + 8) * sizeof(bf16);
    kcuda_attn_tc_smem(kcuda_attn_tc_fwd_k<D>, smem);
    dim3 grid((T + TC_ROWS - 1) / TC_ROWS, H, B);
    kcuda_attn_tc_fwd_k<D><<<grid, TC_THREADS, smem, kcuda.stream>>>(
        (bf16 *)out, lse, (const bf16 *)qkv, T, H, KVH, TC_LOG2E / sqrtf((float)D));
    kcuda_launched();
}

template <int D>
static void kcuda_attn_tc_bwd_launch(void *dqkv, const float *delta, const void *dout,
                                     const void *qkv, const float *lse, int B, int T, int H,
                                     int KVH) {
    float scale = 1.0f / sqrtf((float)D), qscale = TC_LOG2E * scale;
    size_t smem_q = (size_t)4 * TC_ROWS * (D + 8) * sizeof(bf16);
    kcuda_attn_tc_smem(kcuda_attn_tc_dq_k<D>, smem_q);
    dim3 gq((T + TC_ROWS - 1) / TC_ROWS, H, B);
    kcuda_attn_tc_dq_k<D><<<gq, TC_THREADS, smem_q, kcuda.stream>>>(
        (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, delta, T, H, KVH, qscale, scale);
    kcuda_launched();
    size_t smem_kv = smem_q + (size_t)2 * TC_KEYS * sizeof(float);
    kcuda_attn_tc_smem(kcuda_attn_tc_dkv_k<D>, smem_kv);
    dim3 gkv((T + TC_ROWS - 1) / TC_ROWS, KVH, B);
    kcuda_attn_tc_dkv_k<D><<<gkv, TC_THREADS, smem_kv, kcuda.stream>>>(
        (bf16 *)dqkv, (const bf16 *)dout, (const bf16 *)qkv, lse, delta, T, H, KVH, qscale, scale);
    kcuda_launched();
}

int kcuda_attn_tc_fwd(void *out, float *lse, const void *qkv, int B, int T, int H, int KVH, int D) {
    if (!kcuda_attn_tc_ok(D, out, qkv, qkv)) return 0;
    if (D == 64)
        kcuda_attn_tc_fwd_launch<64>(out, lse, qkv, B, T, H, KVH);
    else
        kcuda_attn_tc_fwd_launch<128>(out, lse, qkv, B, T, H, KVH);
    return 1;
}

int kcuda_attn_tc_bwd(void *dqkv, const float *delta, const void *dout, const void *qkv,
                      const float *lse, int B, int T, int H, int KVH, int D) {
    if (!kcuda_attn_tc_ok(D, dqkv, dout, qkv)) return 0;
    if (D == 64)
        kcuda_attn_tc_bwd_launch<64>(dqkv, delta, dout, qkv, lse, B, T, H, KVH);
    else
        kcuda_attn_tc_bwd_launch<128>(dqkv, delta, dout, qkv, lse, B, T, H, KVH);
    return 1;
}
