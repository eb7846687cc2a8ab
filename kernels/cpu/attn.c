/* attn.c -- causal grouped-query attention, flash style (fp32, OpenMP).
 *
 * out_i = sum_{j<=i} softmax_j(q_i . k_j / sqrt(D)) v_j for every query head
 * h, with k and v of kv head h / (H / KVH) of the fused qkv rows (k.h). No
 * T x T matrix exists, not even per head: queries and keys are cut into
 * tiles of KCPU_ATTN_TILE, and the forward walks the key tiles of a query
 * tile with an online softmax, saving only the row log-sum-exp. The
 * backward recomputes the probabilities of a tile from lse:
 *   P = exp(S - lse), dP = dO V^T, dS = P * (dP - delta), delta = rowsum(dO*O)
 *   dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO.
 * It runs in one pass over (key tile, kv head) units, five tile products
 * per tile pair: a unit owns dK and dV of its key tile and adds its share of
 * dQ to each later query tile's sum in key-tile order (a per-tile counter
 * makes a unit wait for the previous key tile's), so every sum has a fixed
 * order and the results are bitwise the same for any number of threads.
 *
 * Each call first copies the heads whose tiles it reads again and again
 * (k and v in the forward, q and dout in the backward) into one contiguous,
 * zero-padded array per head (see "packing"): scratch at most as large as
 * those tensors, O(T). Tile products run on a small register-blocked
 * kernel (GCC vector extensions, explicit FMA where the ISA has it) on
 * those arrays; a transposed operand (Q^T, K^T, V^T) is packed once per
 * work unit and reused over its whole loop; head dims that are not a
 * multiple of 16 are zero-padded (to Dp). Scores are kept in base 2 (the packed Q^T or K^T
 * carries log2(e)/sqrt(D)) so the softmax needs only 2^x, computed by a
 * branch-free polynomial. */
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__AVX512F__) || defined(__FMA__)
#include <immintrin.h>
#endif

#include "cpu.h"

/* Queries per query tile and keys per key tile (equal, so the diagonal tile
 * of a query tile is its last key tile and every row sees a key in it). */
#define KCPU_ATTN_TILE 64

/* Vector width in floats, and the register block of the tile kernel:
 * KCPU_MR rows by KCPU_NV vectors of accumulators. */
#if defined(__AVX512F__)
#define KCPU_VW 16
#define KCPU_NV 4
#elif defined(__AVX__)
#define KCPU_VW 8
#define KCPU_NV 2
#else
#define KCPU_VW 4
#define KCPU_NV 2
#endif
#define KCPU_MR 4

typedef float kcpu_vf __attribute__((vector_size(KCPU_VW * sizeof(float))));
typedef int32_t kcpu_vi __attribute__((vector_size(KCPU_VW * sizeof(float))));
/* The same vector at float alignment, for B rows read in place from qkv. */
typedef float kcpu_vfu __attribute__((vector_size(KCPU_VW * sizeof(float)), aligned(4)));

#define KCPU_LOG2E 1.44269504088896340736
#define KCPU_LN2   0.69314718055994530942

/* a * b + c, fused where the ISA allows (ISO C mode does not contract). */
static inline kcpu_vf kcpu_fma(kcpu_vf a, kcpu_vf b, kcpu_vf c) {
#if defined(__AVX512F__)
    return (kcpu_vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__FMA__)
    return (kcpu_vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    return a * b + c;
#endif
}

/* x in every lane. x - 0 is x for every x (x + 0 is not, for x = -0), so
 * the compiler folds the subtraction away and emits a bare broadcast. */
static inline kcpu_vf kcpu_splat(float x) {
    return x - (kcpu_vf){ 0 };
}

/* 2^x for scores already shifted to x <= ~0; exactly 0 below -125 (masked
 * scores are -inf). x = n + f with |f| <= 1/2, 2^f by its degree-7 Taylor
 * polynomial (relative error < 1e-8), 2^n added to the exponent bits. */
static inline kcpu_vf kcpu_exp2v(kcpu_vf x) {
    const kcpu_vf lo = kcpu_splat(-125.0f);
    kcpu_vi keep = x >= lo;
    x = (kcpu_vf)(((kcpu_vi)x & keep) | ((kcpu_vi)lo & ~keep));
    const kcpu_vf shifter = kcpu_splat(12582912.0f); /* 1.5 * 2^23 */
    kcpu_vf n = (x + shifter) - shifter;             /* round to nearest */
    kcpu_vf f = x - n;
    kcpu_vf p = kcpu_splat(1.5252733804059840e-5f);
    p = kcpu_fma(p, f, kcpu_splat(1.5403530393381606e-4f));
    p = kcpu_fma(p, f, kcpu_splat(1.3333558146428443e-3f));
    p = kcpu_fma(p, f, kcpu_splat(9.6181291076284772e-3f));
    p = kcpu_fma(p, f, kcpu_splat(5.5504108664821580e-2f));
    p = kcpu_fma(p, f, kcpu_splat(2.4022650695910071e-1f));
    p = kcpu_fma(p, f, kcpu_splat(6.9314718055994531e-1f));
    p = kcpu_fma(p, f, kcpu_splat(1.0f));
    kcpu_vi e = __builtin_convertvector(n, kcpu_vi) << 23;
    return (kcpu_vf)(((kcpu_vi)p + e) & keep);
}

/* c (MR, nv*VW) [+]= a (MR, K) . b (K, nv*VW): the register block. */
static inline __attribute__((always_inline)) void kcpu_block(float *c, int ldc, const float *a,
                                                             int ars, int aks, const float *b,
                                                             int ldb, int K, int nv,
                                                             int accumulate) {
    kcpu_vf acc[KCPU_MR][KCPU_NV];
    for (int r = 0; r < KCPU_MR; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = accumulate ? *(const kcpu_vf *)(c + (size_t)r * ldc + v * KCPU_VW)
                                   : kcpu_splat(0.0f);
    for (int k = 0; k < K; k++) {
        const float *bk = b + (size_t)k * ldb;
        kcpu_vf bv[KCPU_NV];
        for (int v = 0; v < nv; v++) bv[v] = *(const kcpu_vfu *)(bk + v * KCPU_VW);
        for (int r = 0; r < KCPU_MR; r++) {
            kcpu_vf av = kcpu_splat(a[(size_t)r * ars + (size_t)k * aks]);
            for (int v = 0; v < nv; v++) acc[r][v] = kcpu_fma(av, bv[v], acc[r][v]);
        }
    }
    for (int r = 0; r < KCPU_MR; r++)
        for (int v = 0; v < nv; v++) *(kcpu_vf *)(c + (size_t)r * ldc + v * KCPU_VW) = acc[r][v];
}

/* c (M, N) [+]= A (M, K) . b (K, N), with A(i, k) = a[i * ars + k * aks]:
 * ars = lda, aks = 1 for a row-major A, ars = 1, aks = lda for A stored
 * transposed. c is a packed tile (64-byte aligned, ldc a multiple of the
 * vector width); M % KCPU_MR == 0 and N % KCPU_VW == 0. */
static void kcpu_tile_gemm(float *c, int ldc, const float *a, int ars, int aks, const float *b,
                           int ldb, int M, int N, int K, int accumulate) {
    for (int i = 0; i < M; i += KCPU_MR) {
        float *ci = c + (size_t)i * ldc;
        const float *ai = a + (size_t)i * ars;
        int j = 0;
        for (; j + KCPU_NV * KCPU_VW <= N; j += KCPU_NV * KCPU_VW)
            kcpu_block(ci + j, ldc, ai, ars, aks, b + j, ldb, K, KCPU_NV, accumulate);
        for (; j < N; j += KCPU_VW)
            kcpu_block(ci + j, ldc, ai, ars, aks, b + j, ldb, K, 1, accumulate);
    }
}

/* ---- packing ---- */

/* Rows of q, k, v and dout sit in fused tensors with a row stride of
 * (H + 2 KVH) D or H D floats (a multiple of 4 KiB for many shapes). Tiles
 * read in place from them put every row on its own page and the rows of a
 * tile into the same few L1 sets, which starved the tile products. So the
 * heads whose tiles a pass reads again and again (k and v in the forward,
 * q and dout in the backward) are first copied, walking the tensors row
 * after row, into one contiguous array per head of nt * TILE rows of Dp
 * floats, zero-padded; a tile read once per work unit (q in the forward, k
 * and v in the backward) is copied into a per-thread tile instead. That
 * scratch is at most as large as the tensors it copies: O(T), no T x T
 * buffer. */

/* Rows this far ahead are prefetched when strided rows are read or written
 * one after another: the hardware prefetchers stay within a 4 KiB page, and
 * every row of a head is on a page of its own. */
#define KCPU_PREFETCH_ROWS 8

static inline void kcpu_prefetch_read(const float *row, int D) {
    for (int d = 0; d < D; d += 16) __builtin_prefetch(row + d, 0, 3);
}

static inline void kcpu_prefetch_write(float *row, int D) {
    for (int d = 0; d < D; d += 16) __builtin_prefetch(row + d, 1, 3);
}

/* dst (TILE, Dp) = rows [0, n) of src (stride ld, D channels), zero padding
 * rows and channels. */
static void kcpu_pack_tile(float *dst, int Dp, const float *src, size_t ld, int n, int D) {
    for (int r = 0; r < KCPU_PREFETCH_ROWS && r < n; r++) kcpu_prefetch_read(src + r * ld, D);
    for (int r = 0; r < KCPU_ATTN_TILE; r++) {
        float *o = dst + (size_t)r * Dp;
        if (r + KCPU_PREFETCH_ROWS < n) kcpu_prefetch_read(src + (r + KCPU_PREFETCH_ROWS) * ld, D);
        if (r < n) {
            memcpy(o, src + r * ld, (size_t)D * sizeof(float));
            memset(o + D, 0, (size_t)(Dp - D) * sizeof(float));
        } else {
            memset(o, 0, (size_t)Dp * sizeof(float));
        }
    }
}

/* Within a parallel region (no barrier at the end): for nh heads of D
 * channels at src[(b*T + i)*ld + j*D] (row stride ld floats),
 * dst[(b*nh + j)*hs + i*Dp + d] = src[(b*T + i)*ld + j*D + d], with rows
 * T.. up to nt * TILE and channels D.. of each head zero; hs = nt * TILE *
 * Dp. Split by (batch, tile). */
static void kcpu_pack_heads(float *dst, const float *src, size_t ld, int nh, int B, int T, int D,
                            int Dp) {
    const int TL = KCPU_ATTN_TILE, nt = (T + TL - 1) / TL;
    const size_t hs = (size_t)nt * TL * Dp;
#pragma omp for schedule(static) nowait
    for (int u = 0; u < B * nt; u++) {
        int b = u / nt, i0 = (u % nt) * TL;
        for (int i = i0; i < i0 + TL; i++) {
            const float *row = src + ((size_t)b * T + i) * ld;
            for (int h = 0; h < nh; h++) {
                float *o = dst + (size_t)(b * nh + h) * hs + (size_t)i * Dp;
                if (i < T) {
                    memcpy(o, row + (size_t)h * D, (size_t)D * sizeof(float));
                    memset(o + D, 0, (size_t)(Dp - D) * sizeof(float));
                } else {
                    memset(o, 0, (size_t)Dp * sizeof(float));
                }
            }
        }
    }
}

/* dst (D, TILE) = mul * src^T for a packed tile (TILE rows, stride Dp). */
static void kcpu_pack_cols(float *dst, const float *src, int Dp, int D, float mul) {
    for (int c = 0; c < KCPU_ATTN_TILE; c++)
        for (int d = 0; d < D; d++) dst[(size_t)d * KCPU_ATTN_TILE + c] = mul * src[c * Dp + d];
}

/* Future keys of a diagonal tile to -inf: key c > query r, with the tile
 * stored by query rows (s[r][c]) or by key rows (s[c][r]). */
static void kcpu_mask_rows(float *s) {
    for (int r = 0; r < KCPU_ATTN_TILE; r++)
        for (int c = r + 1; c < KCPU_ATTN_TILE; c++) s[r * KCPU_ATTN_TILE + c] = -INFINITY;
}

static void kcpu_mask_cols(float *s) {
    for (int c = 1; c < KCPU_ATTN_TILE; c++)
        for (int r = 0; r < c; r++) s[c * KCPU_ATTN_TILE + r] = -INFINITY;
}

static inline kcpu_vf kcpu_vmax(kcpu_vf a, kcpu_vf b) {
    kcpu_vi gt = a > b;
    return (kcpu_vf)(((kcpu_vi)a & gt) | ((kcpu_vi)b & ~gt));
}

#define KCPU_TV (KCPU_ATTN_TILE / KCPU_VW) /* vectors across a tile */

/* 64-byte aligned floats, zeroed if asked: per-thread tiles (a few hundred
 * KiB) or the packed heads (written in full by the packing). The kernel ops
 * have no error path, so running out of memory here ends the process, as
 * llm.c's mallocCheck does. */
static void *kcpu_attn_scratch(size_t bytes, int zero) {
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p == NULL) {
        fprintf(stderr, "kcpu attn: out of memory for %zu bytes of scratch\n", bytes);
        abort();
    }
    if (zero) memset(p, 0, bytes);
    return p;
}

static float *kcpu_attn_floats(size_t n) {
    return kcpu_attn_scratch(n * sizeof(float), 1);
}

static int kcpu_pad_dim(int D) {
    return (D + 15) / 16 * 16;
}

static size_t kcpu_slot(int Dp) {
    return (size_t)KCPU_ATTN_TILE * (size_t)(Dp > KCPU_ATTN_TILE ? Dp : KCPU_ATTN_TILE);
}

/* ---- forward ---- */

/* A query's running max may lag its true max by up to this much (base 2)
 * before it is raised: probabilities then stay below 2^8, harmless in fp32,
 * and the output accumulator is rescaled only when some query's max rises
 * by more than that, which after the first tiles is rare. */
#define KCPU_MAX_SLACK 8.0f

/* Online softmax over one key tile, scores stored by key rows (s[c][r],
 * base 2): raises the running max mx of the queries whose tile max exceeds
 * it by more than the slack, rescales their running sums l, turns s into
 * probabilities relative to mx, and returns in alpha the factor by which
 * each query's output accumulator must shrink; returns whether any alpha is
 * not 1. All vector lanes are queries, so the reductions over keys are
 * plain vector operations. */
static int kcpu_softmax_tile(float *s, float *mx, float *l, float *alpha) {
    kcpu_vf m[KCPU_TV], sum[KCPU_TV];
    for (int v = 0; v < KCPU_TV; v++) m[v] = *(kcpu_vf *)(s + v * KCPU_VW);
    for (int c = 1; c < KCPU_ATTN_TILE; c++)
        for (int v = 0; v < KCPU_TV; v++)
            m[v] = kcpu_vmax(*(kcpu_vf *)(s + c * KCPU_ATTN_TILE + v * KCPU_VW), m[v]);
    kcpu_vi raised = { 0 };
    for (int v = 0; v < KCPU_TV; v++) {
        kcpu_vf old = *(kcpu_vf *)(mx + v * KCPU_VW);
        kcpu_vi up = m[v] > old + kcpu_splat(KCPU_MAX_SLACK);
        m[v] = (kcpu_vf)(((kcpu_vi)m[v] & up) | ((kcpu_vi)old & ~up));
        kcpu_vf a = kcpu_exp2v(old - m[v]);
        a = (kcpu_vf)(((kcpu_vi)a & up) | ((kcpu_vi)kcpu_splat(1.0f) & ~up));
        raised |= up;
        *(kcpu_vf *)(alpha + v * KCPU_VW) = a;
        sum[v] = *(kcpu_vf *)(l + v * KCPU_VW) * a;
        *(kcpu_vf *)(mx + v * KCPU_VW) = m[v];
    }
    for (int c = 0; c < KCPU_ATTN_TILE; c++)
        for (int v = 0; v < KCPU_TV; v++) {
            kcpu_vf *p = (kcpu_vf *)(s + c * KCPU_ATTN_TILE + v * KCPU_VW);
            *p = kcpu_exp2v(*p - m[v]);
            sum[v] += *p;
        }
    for (int v = 0; v < KCPU_TV; v++) *(kcpu_vf *)(l + v * KCPU_VW) = sum[v];
    int any = 0;
    for (int i = 0; i < KCPU_VW; i++) any |= raised[i];
    return any;
}

void kcpu_attn_fwd(void *out_,       /* (B, T, H*D) */
                   float *lse,       /* (B, H, T) */
                   const void *qkv_, /* (B, T, (H+2*KVH)*D) */
                   int B, int T, int H, int KVH, int D) {
    float *out = out_;
    const float *qkv = qkv_;
    if (B <= 0 || T <= 0 || H <= 0) return;
    const int TL = KCPU_ATTN_TILE, Dp = kcpu_pad_dim(D);
    const int group = H / KVH, nt = (T + TL - 1) / TL;
    const size_t ld = (size_t)(H + 2 * KVH) * D, ldo = (size_t)H * D;
    const size_t hs = (size_t)nt * TL * Dp; /* floats per packed head */
    const float qmul = (float)(KCPU_LOG2E / sqrt((double)D));
    const size_t slot = kcpu_slot(Dp);
    /* packed k and v heads of every batch element */
    float *packed = kcpu_attn_scratch((size_t)B * 2 * KVH * hs * sizeof(float), 0);
#pragma omp parallel
    {
        float *ws = kcpu_attn_floats(4 * slot);
        float *Qt = ws, *St = ws + slot, *O = ws + 2 * slot, *Qp = ws + 3 * slot;
        float mx[KCPU_ATTN_TILE] __attribute__((aligned(64)));
        float l[KCPU_ATTN_TILE] __attribute__((aligned(64)));
        float alpha[KCPU_ATTN_TILE] __attribute__((aligned(64)));
        kcpu_pack_heads(packed, qkv + (size_t)H * D, ld, 2 * KVH, B, T, D, Dp);
#pragma omp barrier
        /* (batch, kv head, query tile, head of the group) units: the
         * threads work on the same k and v, which stay in cache, and take
         * each pair's query tiles longest first so that the dynamic
         * schedule ends on short units. */
#pragma omp for schedule(dynamic, 1)
        for (int u = 0; u < nt * B * H; u++) {
            int p = u / (nt * group), r = u % (nt * group);
            int b = p / KVH, kvh = p % KVH, qt = nt - 1 - r / group, h = kvh * group + r % group;
            int i0 = qt * TL;
            int nq = T - i0 < TL ? T - i0 : TL;
            const float *Kb = packed + (size_t)(b * 2 * KVH + kvh) * hs;
            const float *Vb = Kb + (size_t)KVH * hs;
            /* Q^T, pre-scaled so that scores come out in base 2. */
            kcpu_pack_tile(Qp, Dp, qkv + ((size_t)b * T + i0) * ld + (size_t)h * D, ld, nq, D);
            kcpu_pack_cols(Qt, Qp, Dp, D, qmul);
            for (int r = 0; r < TL; r++) {
                mx[r] = -INFINITY;
                l[r] = 0.0f;
            }
            memset(O, 0, (size_t)TL * Dp * sizeof(float));
            for (int kt = 0; kt <= qt; kt++) {
                const float *K = Kb + (size_t)kt * TL * Dp, *V = Vb + (size_t)kt * TL * Dp;
                kcpu_tile_gemm(St, TL, K, Dp, 1, Qt, TL, TL, TL, D, 0);
                if (kt == qt) kcpu_mask_cols(St);
                if (kcpu_softmax_tile(St, mx, l, alpha) && kt > 0)
                    for (int r = 0; r < TL; r++)
                        if (alpha[r] != 1.0f)
                            for (int d = 0; d < Dp; d++) O[(size_t)r * Dp + d] *= alpha[r];
                kcpu_tile_gemm(O, Dp, St, 1, TL, V, Dp, TL, Dp, TL, 1);
            }
            float *o0 = out + ((size_t)b * T + i0) * ldo + (size_t)h * D;
            for (int r = 0; r < KCPU_PREFETCH_ROWS && r < nq; r++)
                kcpu_prefetch_write(o0 + r * ldo, D);
            for (int r = 0; r < nq; r++) {
                float inv = 1.0f / l[r];
                float *o = o0 + r * ldo;
                if (r + KCPU_PREFETCH_ROWS < nq)
                    kcpu_prefetch_write(o + KCPU_PREFETCH_ROWS * ldo, D);
                for (int d = 0; d < D; d++) o[d] = O[(size_t)r * Dp + d] * inv;
                lse[((size_t)b * H + h) * T + i0 + r] =
                    (float)(((double)mx[r] + log2((double)l[r])) * KCPU_LN2);
            }
        }
        free(ws);
    }
    free(packed);
}

/* ---- backward ---- */

/* The base-2 lse and the delta of the query rows of a tile (+inf and 0 on
 * padding rows, so that their probabilities are 0). */
static void kcpu_row_stats(float *lse2, float *dl, const float *lse, const float *delta, int nq) {
    for (int r = 0; r < KCPU_ATTN_TILE; r++) {
        lse2[r] = r < nq ? (float)(lse[r] * KCPU_LOG2E) : INFINITY;
        dl[r] = r < nq ? delta[r] : 0.0f;
    }
}

/* S (base-2 scores) -> P = 2^(S - lse2) in place, dP -> dS = P (dP - delta)
 * in place; tiles stored by query rows (s[r][c]). */
static void kcpu_dscores_rows(float *S, float *dP, const float *lse2, const float *dl) {
    for (int r = 0; r < KCPU_ATTN_TILE; r++) {
        kcpu_vf vl = kcpu_splat(lse2[r]), vd = kcpu_splat(dl[r]);
        for (int v = 0; v < KCPU_TV; v++) {
            kcpu_vf *s = (kcpu_vf *)(S + r * KCPU_ATTN_TILE + v * KCPU_VW);
            kcpu_vf *dp = (kcpu_vf *)(dP + r * KCPU_ATTN_TILE + v * KCPU_VW);
            *s = kcpu_exp2v(*s - vl);
            *dp = *s * (*dp - vd);
        }
    }
}

/* delta[b, h, i] = dout[b, i, h] . out[b, i, h] (double accumulation);
 * within a parallel region, no barrier at the end. */
static void kcpu_attn_delta(float *delta, const float *dout, const float *out, int B, int T, int H,
                            int D) {
#pragma omp for schedule(static) nowait
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        for (int h = 0; h < H; h++) {
            size_t o = (size_t)bt * H * D + (size_t)h * D;
            double acc = 0.0;
            for (int d = 0; d < D; d++) acc += (double)dout[o + d] * out[o + d];
            delta[((size_t)b * H + h) * T + t] = (float)acc;
        }
    }
}

/* (batch, kv head) pairs whose backward units are interleaved (see
 * kcpu_attn_bwd); a fixed number, so the order of the sums never depends
 * on the thread count. */
#define KCPU_BWD_WINDOW 2

/* Strided rows dst[r * ld], r < n, += mul * rows of a packed tile. */
static void kcpu_add_rows(float *dst, size_t ld, const float *tile, int Dp, int n, int D,
                          float mul) {
    for (int r = 0; r < KCPU_PREFETCH_ROWS && r < n; r++) kcpu_prefetch_write(dst + r * ld, D);
    for (int r = 0; r < n; r++) {
        float *o = dst + r * ld;
        if (r + KCPU_PREFETCH_ROWS < n) kcpu_prefetch_write(o + KCPU_PREFETCH_ROWS * ld, D);
        for (int d = 0; d < D; d++) o[d] += mul * tile[(size_t)r * Dp + d];
    }
}

/* Wait until *flag >= want (another thread's release store). Spins
 * briefly, then yields the core: on a machine with more threads than free
 * cores the thread being waited for may need it. */
static void kcpu_wait_for(const int *flag, int want) {
    for (int spins = 0; __atomic_load_n(flag, __ATOMIC_ACQUIRE) < want; spins++) {
        if (spins < 256) {
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        } else {
            sched_yield();
        }
    }
}

void kcpu_attn_bwd(void *dqkv_,       /* (B, T, (H+2*KVH)*D) += */
                   float *delta,      /* (B, H, T) scratch */
                   const void *dout_, /* (B, T, H*D) */
                   const void *qkv_,  /* (B, T, (H+2*KVH)*D) */
                   const void *out_,  /* (B, T, H*D) */
                   const float *lse,  /* (B, H, T) */
                   int B, int T, int H, int KVH, int D) {
    float *dqkv = dqkv_;
    const float *dout = dout_, *qkv = qkv_, *out = out_;
    if (B <= 0 || T <= 0 || H <= 0) return;
    const int TL = KCPU_ATTN_TILE, Dp = kcpu_pad_dim(D);
    const int group = H / KVH, nt = (T + TL - 1) / TL;
    const size_t ld = (size_t)(H + 2 * KVH) * D;
    const size_t hs = (size_t)nt * TL * Dp; /* floats per packed head */
    const size_t tile = (size_t)TL * Dp;    /* floats per packed tile */
    const float scale = (float)(1.0 / sqrt((double)D));
    const float qmul = (float)(KCPU_LOG2E / sqrt((double)D));
    const size_t slot = kcpu_slot(Dp);
    const int nu = B * KVH; /* (batch, kv head) pairs */
    /* packed q heads of every batch element, then dout, then the dQ sums */
    float *packed = kcpu_attn_scratch((size_t)B * 3 * H * hs * sizeof(float), 0);
    float *dOb = packed + (size_t)B * H * hs, *dQb = dOb + (size_t)B * H * hs;
    /* done[p * nt + qt]: key tiles whose dQ share query tile qt of pair p
     * holds; done[nu * nt]: the next unit to take */
    int *done = calloc((size_t)nu * nt + 1, sizeof(int));
    if (done == NULL) {
        fprintf(stderr, "kcpu attn: out of memory\n");
        abort();
    }
#pragma omp parallel
    {
        float *ws = kcpu_attn_floats((size_t)(7 + group) * slot);
        float *Kt = ws, *Vt = ws + slot, *dK = ws + 2 * slot, *dV = ws + 3 * slot;
        float *St = ws + 4 * slot, *dP = ws + 5 * slot, *K = ws + 6 * slot, *dQt = ws + 7 * slot;
        float lse2[KCPU_ATTN_TILE] __attribute__((aligned(64)));
        float dl[KCPU_ATTN_TILE] __attribute__((aligned(64)));
        kcpu_attn_delta(delta, dout, out, B, T, H, D);
        kcpu_pack_heads(packed, qkv, ld, H, B, T, D, Dp);
        kcpu_pack_heads(dOb, dout, (size_t)H * D, H, B, T, D, Dp);
#pragma omp barrier

        /* One unit per (key tile kt, batch b, kv head): dK, dV of the
         * tile, summed over the query heads of the group and the query
         * tiles qt >= kt, and the tile's share dS K of dQ of each of those
         * query tiles. A unit adds its share to the dQ sum of query tile qt
         * only once the unit of key tile kt - 1 of its pair has, so every
         * dQ is summed over kt in the same order whatever the thread
         * count, and is complete, and written out, once the unit of the
         * diagonal tile has added its share. Units are taken in order:
         * pairs in windows of KCPU_BWD_WINDOW, key tile major within a
         * window. The threads thus work on the data of one or two pairs,
         * which stays in cache, and the unit a unit may wait for was taken
         * a window earlier and has a tile more to do, so waits are short
         * or none. */
        for (;;) {
            int u = __atomic_fetch_add(&done[nu * nt], 1, __ATOMIC_RELAXED);
            if (u >= nt * nu) break;
            int p0 = u / (KCPU_BWD_WINDOW * nt) * KCPU_BWD_WINDOW;
            int wn = nu - p0 < KCPU_BWD_WINDOW ? nu - p0 : KCPU_BWD_WINDOW, r = u - p0 * nt;
            int kt = r / wn, p = p0 + r % wn, b = p / KVH, kvh = p % KVH;
            int j0 = kt * TL, nk = T - j0 < TL ? T - j0 : TL;
            const float *k = qkv + ((size_t)b * T + j0) * ld + (size_t)(H + kvh) * D;
            int *dn = done + (size_t)p * nt;
            /* K rows and K^T, V^T of the tile (dP holds V rows till the
             * loop) */
            kcpu_pack_tile(K, Dp, k, ld, nk, D);
            kcpu_pack_tile(dP, Dp, k + (size_t)KVH * D, ld, nk, D);
            kcpu_pack_cols(Kt, K, Dp, D, qmul);
            kcpu_pack_cols(Vt, dP, Dp, D, 1.0f);
            memset(dK, 0, tile * sizeof(float));
            memset(dV, 0, tile * sizeof(float));
            for (int qt = kt; qt < nt; qt++) {
                int i0 = qt * TL, nq = T - i0 < TL ? T - i0 : TL;
                for (int g = 0; g < group; g++) {
                    int h = kvh * group + g;
                    size_t st = ((size_t)b * H + h) * T + i0;
                    const float *Q = packed + (size_t)(b * H + h) * hs + (size_t)i0 * Dp;
                    const float *dO = dOb + (size_t)(b * H + h) * hs + (size_t)i0 * Dp;
                    kcpu_row_stats(lse2, dl, lse + st, delta + st, nq);
                    kcpu_tile_gemm(St, TL, Q, Dp, 1, Kt, TL, TL, TL, D, 0);
                    if (qt == kt) kcpu_mask_rows(St);
                    kcpu_tile_gemm(dP, TL, dO, Dp, 1, Vt, TL, TL, TL, D, 0);
                    kcpu_dscores_rows(St, dP, lse2, dl);
                    kcpu_tile_gemm(dV, Dp, St, 1, TL, dO, Dp, TL, Dp, TL, 1);
                    kcpu_tile_gemm(dK, Dp, dP, 1, TL, Q, Dp, TL, Dp, TL, 1);
                    kcpu_tile_gemm(dQt + (size_t)g * slot, Dp, dP, TL, 1, K, Dp, TL, Dp, TL, 0);
                }
                kcpu_wait_for(&dn[qt], kt);
                for (int g = 0; g < group; g++) {
                    int h = kvh * group + g;
                    float *sum = dQb + (size_t)(b * H + h) * hs + (size_t)i0 * Dp;
                    const float *add = dQt + (size_t)g * slot;
                    if (kt == 0)
                        memcpy(sum, add, tile * sizeof(float));
                    else
                        for (size_t e = 0; e < tile; e++) sum[e] += add[e];
                    if (qt == kt)
                        kcpu_add_rows(dqkv + ((size_t)b * T + i0) * ld + (size_t)h * D, ld, sum, Dp,
                                      nq, D, scale);
                }
                __atomic_store_n(&dn[qt], kt + 1, __ATOMIC_RELEASE);
            }
            float *dk = dqkv + ((size_t)b * T + j0) * ld + (size_t)(H + kvh) * D;
            kcpu_add_rows(dk, ld, dK, Dp, nk, D, scale);
            kcpu_add_rows(dk + (size_t)KVH * D, ld, dV, Dp, nk, D, 1.0f);
        }
        free(ws);
    }
    free(done);
    free(packed);
}
