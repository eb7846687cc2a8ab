/* k.h -- the one kernel interface of e2.
 *
 * The model (worker/model) is written once against this table of operations
 * and never learns which device runs it. Each backend fills a k_backend:
 * kernels/cpu (fp32, OpenBLAS + OpenMP) and kernels/cuda (bf16 activations,
 * fp32 master weights, cuBLASLt).
 *
 * Conventions, for every operation:
 *  - Tensors are device pointers. "act" tensors (activations, parameters used
 *    by the forward, gradients) hold elements of the backend's act_dtype
 *    (fp32 on the CPU, bf16 on CUDA). Tensors typed float * are always fp32
 *    (norm statistics, log-sum-exps, losses, master weights, AdamW moments).
 *    Token ids are int32.
 *  - Shapes are given in a comment after each argument, row-major, last index
 *    fastest: (N, C) means N rows of C contiguous elements.
 *  - Parameter gradients (matmul_bwd's dweight and dbias, embed_bwd's dwte,
 *    rmsnorm_bwd's dweight, and what sumsq and adamw's grad read) hold
 *    elements of the backend's grad_dtype: fp32 on both backends, so that
 *    accumulating many micro-batches into them loses nothing to bf16's
 *    8-bit mantissa. Activation gradients are act tensors.
 *  - Every gradient output ACCUMULATES (+=); the caller zeroes it when it must.
 *    This makes gradient accumulation over micro-batches free and lets two
 *    consumers of one tensor (residual stream, tied embeddings) add into the
 *    same buffer.
 *  - Host-side arguments (k_rope, k_adamw) are plain host memory; the backend
 *    copies what it needs.
 *  - Operations are asynchronous with respect to the host on devices that are
 *    (CUDA); download() and sync() wait.
 *
 * Fused QKV layout. The attention input is the output of one matmul whose
 * weight stacks W_q, W_k, W_v: a row of qkv, for token (b, t), is
 *     [ q: H * D | k: KVH * D | v: KVH * D ]
 * so its row stride is (H + 2 * KVH) * D. Query head h reads key/value head
 * h / (H / KVH) (grouped-query attention) without copying K or V.
 */
#ifndef E2_KERNELS_K_H
#define E2_KERNELS_K_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { K_F32 = 0, K_BF16 = 1 } k_dtype;

/* RoPE positions for one batch, per e2-method.md sections 2-3 and 6.
 * Sequence b, token m (0-based within the sequence) gets the position
 *     pos = m / g[b]                           for m <  n_sink
 *     pos = (m + t[b] + skip_b(m)) / g[b]      for m >= n_sink
 * where skip_b(m) is 0 without chunks (n_chunks = 0) and otherwise the skip
 * bias of the last chunk c of sequence b whose first token is <= m (PoSE's
 * skip-wise positions: chunks[(b * n_chunks + c) * 2] is the first token of
 * chunk c, chunks[... + 1] its skip bias >= 0; 0 if no chunk starts <= m).
 * Channel pair (j, j + D/2) (rotate_half) is rotated by pos * theta_j,
 * theta_j = theta^(-2j / D). The angle is computed from pos in fp32 or better
 * (CPU: double), never from an integer table. */
#define K_ROPE_MAX_CHUNKS 4
typedef struct {
    float theta;           /* rope_theta, e.g. 10000 */
    int n_sink;            /* leading tokens that keep offset 0 */
    const float *g;        /* (B) scale, g >= 1 */
    const int32_t *t;      /* (B) offset in raw token units, t >= 0 */
    int n_chunks;          /* 0..K_ROPE_MAX_CHUNKS; 0 = no skip biases */
    const int32_t *chunks; /* (B, n_chunks, 2) first token, skip bias; NULL if n_chunks = 0 */
} k_rope;

/* skip_b(m) of the comment above (host reference, used by the backends). */
static inline int32_t k_rope_skip(const k_rope *r, int b, int m) {
    int32_t s = 0;
    for (int c = 0; c < r->n_chunks; c++) {
        const int32_t *e = r->chunks + ((size_t)b * (size_t)r->n_chunks + (size_t)c) * 2;
        if (e[0] <= m) s = e[1];
    }
    return s;
}

/* AdamW hyper-parameters for one update (decoupled weight decay, bias
 * correction with the 1-based step). */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int step;         /* 1-based */
    float grad_scale; /* multiplies every gradient first (clipping, 1/accum) */
    uint64_t seed;    /* for stochastic rounding into a low-precision param */
    size_t index0;    /* element 0's index in the rounding's (seed, index)
                           stream: an update split into pieces (ZeRO-1's
                           shards) rounds exactly as the whole would */
} k_adamw;

typedef struct k_backend {
    const char *name;   /* "cpu", "cuda" */
    k_dtype act_dtype;  /* element type of act tensors */
    k_dtype grad_dtype; /* element type of parameter gradients (K_F32, the
                             zero value, on both backends) */

    /* ---- memory ---- */
    void *(*alloc)(size_t bytes); /* zeroed; NULL on failure */
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    /* Convert between fp32 host arrays and act tensors of n elements. */
    void (*upload)(void *dst, const float *src, size_t n);
    void (*download)(float *dst, const void *src, size_t n);
    /* Raw copies of bytes (int32 tokens, fp32 tensors). */
    void (*upload_raw)(void *dst, const void *src, size_t bytes);
    void (*download_raw)(void *dst, const void *src, size_t bytes);
    void (*sync)(void);
    /* The queue the kernels run on, for devices that have one (a
     * cudaStream_t: collectives order themselves after it); NULL on the
     * CPU, where every operation has finished when it returns. */
    void *(*stream)(void);

    /* ---- matmul: out = inp @ weight^T + bias ---- */
    void (*matmul_fwd)(void *out,          /* (N, OC) */
                       const void *inp,    /* (N, C) */
                       const void *weight, /* (OC, C) */
                       const void *bias,   /* (OC) or NULL */
                       int N, int C, int OC);
    /* Any of dinp, dweight, dbias may be NULL to skip that product. */
    void (*matmul_bwd)(void *dinp,         /* (N, C) += */
                       void *dweight,      /* (OC, C) += grad dtype */
                       void *dbias,        /* (OC) += grad dtype */
                       const void *dout,   /* (N, OC) */
                       const void *inp,    /* (N, C) */
                       const void *weight, /* (OC, C) */
                       int N, int C, int OC);

    /* ---- token embedding ---- */
    void (*embed_fwd)(void *out,             /* (N, C) */
                      const int32_t *tokens, /* (N) device */
                      const void *wte,       /* (V, C) */
                      int N, int C);
    void (*embed_bwd)(void *dwte,            /* (V, C) += scatter-add, grad dtype */
                      const void *dout,      /* (N, C) */
                      const int32_t *tokens, /* (N) device */
                      int N, int C);

    /* ---- RMSNorm: out = inp / rms(inp) * weight ---- */
    void (*rmsnorm_fwd)(void *out,          /* (N, C) */
                        float *rstd,        /* (N) saved for backward */
                        const void *inp,    /* (N, C) */
                        const void *weight, /* (C) */
                        float eps, int N, int C);
    void (*rmsnorm_bwd)(void *dinp,         /* (N, C) += */
                        void *dweight,      /* (C) += grad dtype */
                        const void *dout,   /* (N, C) */
                        const void *inp,    /* (N, C) */
                        const void *weight, /* (C) */
                        const float *rstd,  /* (N) */
                        int N, int C);

    /* ---- RoPE, in place on q and k of a fused qkv tensor ----
     * x points at the first head to rotate in row 0; rows are B*T, row_stride
     * elements apart; nh heads of D channels are rotated per row. */
    void (*rope_fwd)(void *x, int B, int T, int nh, int D, int row_stride, const k_rope *r);
    /* Backward of a rotation is the inverse rotation, applied in place to the
     * gradient (no accumulation: dx is overwritten by its rotated self). */
    void (*rope_bwd)(void *dx, int B, int T, int nh, int D, int row_stride, const k_rope *r);

    /* ---- causal grouped-query attention, flash style ----
     * Extra memory is O(B*H*T): only the row log-sum-exp is saved. */
    void (*attn_fwd)(void *out,       /* (B, T, H*D) */
                     float *lse,      /* (B, H, T) */
                     const void *qkv, /* (B, T, (H+2*KVH)*D) */
                     int B, int T, int H, int KVH, int D);
    void (*attn_bwd)(void *dqkv,       /* (B, T, (H+2*KVH)*D) += */
                     float *delta,     /* (B, H, T) scratch */
                     const void *dout, /* (B, T, H*D) */
                     const void *qkv,  /* (B, T, (H+2*KVH)*D) */
                     const void *out,  /* (B, T, H*D) */
                     const float *lse, /* (B, H, T) */
                     int B, int T, int H, int KVH, int D);

    /* ---- SwiGLU: out = silu(inp[:, :F]) * inp[:, F:] ----
     * inp is the output of one matmul with W_gate stacked over W_up. */
    void (*swiglu_fwd)(void *out,       /* (N, F) */
                       const void *inp, /* (N, 2F) */
                       int N, int F);
    void (*swiglu_bwd)(void *dinp,       /* (N, 2F) += */
                       const void *dout, /* (N, F) */
                       const void *inp,  /* (N, 2F) */
                       int N, int F);

    /* ---- residual ---- */
    void (*add)(void *out, const void *a, const void *b, size_t n); /* out = a + b */
    void (*accumulate)(void *dst, const void *src, size_t n);       /* dst += src */

    /* ---- fused softmax + cross-entropy over the vocabulary ----
     * Rows whose target equals ignore_index get loss 0 and gradient 0. */
    void (*xent_fwd)(float *losses,          /* (N) */
                     const void *logits,     /* (N, V) */
                     const int32_t *targets, /* (N) device */
                     int ignore_index, int N, int V);
    /* Overwrites logits with dloss/dlogits * dloss, in place: no second
     * V-sized buffer per token. */
    void (*xent_bwd)(void *logits,           /* (N, V) in: logits, out: grad */
                     const int32_t *targets, /* (N) device */
                     float dloss,            /* d(total loss)/d(each row loss) */
                     int ignore_index, int N, int V);
    /* ---- optional variants (NULL: the caller composes them from the ops
     * above, with the same results) ---- */
    /* matmul_bwd with dinp OVERWRITTEN (=) instead of accumulated (dweight
     * and dbias still accumulate): saves zeroing a dinp that has one
     * producer. NULL: zero dinp, then matmul_bwd. */
    void (*matmul_bwd_set)(void *dinp,         /* (N, C) = */
                           void *dweight,      /* (OC, C) += grad dtype */
                           void *dbias,        /* (OC) += grad dtype */
                           const void *dout,   /* (N, OC) */
                           const void *inp,    /* (N, C) */
                           const void *weight, /* (OC, C) */
                           int N, int C, int OC);
    /* swiglu_bwd with dinp overwritten. NULL: zero dinp, then swiglu_bwd. */
    void (*swiglu_bwd_set)(void *dinp,       /* (N, 2F) = */
                           const void *dout, /* (N, F) */
                           const void *inp,  /* (N, 2F) */
                           int N, int F);
    /* Optional (NULL: xent_fwd then xent_bwd, which give the same results):
     * both at once, for training, where the loss and its gradient are wanted
     * together; each row is read from memory once. */
    void (*xent_fwd_bwd)(float *losses,          /* (N) */
                         void *logits,           /* (N, V) in: logits, out: grad */
                         const int32_t *targets, /* (N) device */
                         float dloss, int ignore_index, int N, int V);

    /* ---- optimizer ---- */
    /* Sum of squares of n grad-dtype elements, reduced deterministically. */
    double (*sumsq)(const void *x, size_t n);
    /* master (fp32) and moments are updated; param (act dtype, what the
     * forward reads) receives the new master, rounded. On the CPU param may
     * equal master. */
    void (*adamw)(float *master,      /* (n) */
                  void *param,        /* (n) */
                  const void *grad,   /* (n) grad dtype */
                  float *m, float *v, /* (n) */
                  size_t n, const k_adamw *hp);
} k_backend;

/* Backends compiled into this build. k_cuda() returns NULL when e2 was built
 * without CUDA or no device is usable. */
const k_backend *k_cpu(void);
const k_backend *k_cuda(void);
/* "cpu" or "cuda"; NULL when unknown or unavailable. */
const k_backend *k_get(const char *name);

/* Process start, before a backend runs: the OPENBLAS_CORETYPE value to set
 * (then re-execute the process) when OpenBLAS chose slower kernels than
 * this CPU supports, else NULL (kernels/cpu/blas.h says why). */
const char *k_cpu_coretype_hint(void);

/* Device memory the CUDA backend keeps beside the model's buffers, stated
 * once here for the backend (kernels/cuda) and for the memory plan
 * (common/layout: e2_layout_cuda_scratch_bytes):
 *  - the cuBLASLt workspace, what Hopper's fastest bf16 kernels ask for;
 *  - the column-sum partials of matmul_bwd's dbias and rmsnorm_bwd's
 *    dweight: K_CUDA_COLSUM_CHUNKS row chunks x C fp32;
 *  - the gradient-norm partials of sumsq: K_CUDA_SUMSQ_BLOCKS doubles. */
#define K_CUDA_LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define K_CUDA_COLSUM_CHUNKS      64
#define K_CUDA_SUMSQ_BLOCKS       1024

#ifdef __cplusplus
}
#endif
#endif
