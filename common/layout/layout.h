/* layout.h -- the model's memory layout, as one table: what each named
 * tensor of a Llama-family model holds and how big it is, computed from the
 * config alone (llm.c's fill_in_parameter_sizes / fill_in_activation_sizes,
 * kept apart from the allocation).
 *
 * Two users, one table:
 *   worker/model allocates by it (one allocation each for parameters,
 *     gradients, optimizer state and activations) and points the named
 *     tensors into those allocations at the table's offsets;
 *   common/plan computes a job's memory per GPU from it before the job runs
 *     (e2d's admission check, `e2worker plan`).
 * Adding a tensor to the model means adding a row here; both follow.
 *
 * No allocation, no I/O, no dependency beyond libc: e2d links it.
 */
#ifndef E2_COMMON_LAYOUT_H
#define E2_COMMON_LAYOUT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The architecture in plain integers (e2.v1.LlamaConfig's values, defaults
 * applied): hidden C, layers, heads H, kv heads KVH, head dim D = C / H,
 * intermediate F, vocab V, lm_head tied to the embeddings. */
typedef struct {
    int C, n_layer, H, KVH, D, F, V, tied;
} e2_layout_dims;

/* ---- parameters (and so gradients and optimizer moments) ---- */

/* Parameter tensors, in buffer order. Each kind is stored for all layers
 * together, so every Hugging Face tensor is a contiguous slice. */
enum {
    E2_LAYOUT_P_WTE,  /* (V, C)               embed_tokens */
    E2_LAYOUT_P_LN1,  /* (L, C)               input_layernorm */
    E2_LAYOUT_P_QKV,  /* (L, (H+2KVH)*D, C)   q_proj | k_proj | v_proj */
    E2_LAYOUT_P_WO,   /* (L, C, H*D)          o_proj */
    E2_LAYOUT_P_LN2,  /* (L, C)               post_attention_layernorm */
    E2_LAYOUT_P_GU,   /* (L, 2F, C)           gate_proj | up_proj */
    E2_LAYOUT_P_DOWN, /* (L, C, F)            down_proj */
    E2_LAYOUT_P_LNF,  /* (C)                  norm */
    E2_LAYOUT_P_HEAD, /* (V, C)               lm_head; 0 elements when tied */
    E2_LAYOUT_P_COUNT
};

typedef struct {
    const char *name[E2_LAYOUT_P_COUNT];
    size_t numel[E2_LAYOUT_P_COUNT];  /* elements per tensor kind */
    size_t offset[E2_LAYOUT_P_COUNT]; /* element offset in the buffer */
    size_t n_params;                  /* elements in all */
} e2_layout_params;

/* Fills p from d (d's fields >= 1, D = C / H). */
void e2_layout_params_fill(e2_layout_params *p, const e2_layout_dims *d);

/* fp32 values the optimizer keeps per parameter it owns: AdamW's m and v,
 * plus the fp32 master copy when the act dtype is not fp32 (master != 0). */
size_t e2_layout_optim_floats(int master);

/* ---- activations ---- */

/* Forward-only activations keep the logits of this many rows at a time, so
 * evaluation memory does not grow with T * V (the head runs chunk by
 * chunk). */
#define E2_LAYOUT_LOGIT_CHUNK 256

/* Every activation region starts on this many bytes. */
#define E2_LAYOUT_ALIGN 64

/* One block's activations (a "layer set"), in order. */
enum {
    E2_LAYOUT_L_LN1,   /* (N, C) act */
    E2_LAYOUT_L_RSTD1, /* (N) fp32 */
    E2_LAYOUT_L_QKV,   /* (N, (H+2KVH)*D) act */
    E2_LAYOUT_L_ATTY,  /* (N, H*D) act */
    E2_LAYOUT_L_LSE,   /* (N, H) fp32 */
    E2_LAYOUT_L_MID,   /* (N, C) act */
    E2_LAYOUT_L_LN2,   /* (N, C) act */
    E2_LAYOUT_L_RSTD2, /* (N) fp32 */
    E2_LAYOUT_L_FCH,   /* (N, 2F) act */
    E2_LAYOUT_L_SWI,   /* (N, F) act */
    E2_LAYOUT_L_COUNT
};

/* The activation allocation, in order. */
enum {
    E2_LAYOUT_A_TOKENS,  /* (N) int32 */
    E2_LAYOUT_A_TARGETS, /* (N) int32 */
    E2_LAYOUT_A_LOSSES,  /* (N) fp32 */
    E2_LAYOUT_A_RES,     /* (L+1, N, C) act: residual stream at each block input */
    E2_LAYOUT_A_LNF,     /* (N, C) act */
    E2_LAYOUT_A_RSTDF,   /* (N) fp32 */
    E2_LAYOUT_A_LOGITS,  /* (logit_rows, V) act */
    E2_LAYOUT_A_LAYERS,  /* nsets layer sets of layer_bytes each */
    /* backward scratch: 0 bytes without backward */
    E2_LAYOUT_A_DRES,  /* (N, C) act */
    E2_LAYOUT_A_DLN,   /* (N, C) act */
    E2_LAYOUT_A_DQKV,  /* (N, (H+2KVH)*D) act */
    E2_LAYOUT_A_DATTY, /* (N, H*D) act */
    E2_LAYOUT_A_DFCH,  /* (N, 2F) act */
    E2_LAYOUT_A_DSWI,  /* (N, F) act */
    E2_LAYOUT_A_DELTA, /* (B, H, T) fp32 */
    E2_LAYOUT_A_COUNT
};

/* One named region: numel elements of esz bytes (the act dtype's size, or 4
 * for fp32 and int32), taking bytes (numel * esz rounded up to
 * E2_LAYOUT_ALIGN; the layer sets: nsets * layer_bytes) at byte offset. */
typedef struct {
    const char *name;
    size_t numel, esz, bytes, offset;
} e2_layout_region;

typedef struct {
    int B, T;
    int backward;      /* gradient scratch included */
    int recompute;     /* one layer set, shared by the blocks: asked for, or
                          forward-only (always so without backward) */
    size_t N;          /* B * T rows */
    size_t logit_rows; /* N with backward, else min(N, E2_LAYOUT_LOGIT_CHUNK) */
    size_t nsets;      /* layer sets: 1 when recompute, else n_layer */
    e2_layout_region layer[E2_LAYOUT_L_COUNT]; /* offsets inside one set */
    size_t layer_bytes;                        /* one set */
    e2_layout_region a[E2_LAYOUT_A_COUNT];     /* offsets in the allocation */
    size_t bytes;                              /* the allocation */
} e2_layout_acts;

/* Fills a for micro-batches of B sequences of T tokens, act elements of esz
 * bytes (4 fp32, 2 bf16), with or without the backward's scratch and
 * recomputation. */
void e2_layout_acts_fill(e2_layout_acts *a, const e2_layout_dims *d, int B, int T, size_t esz,
                         int backward, int recompute);

/* ---- what the CUDA backend keeps beside the model's buffers ---- */

/* Bytes of device memory the CUDA backend allocates for itself when it
 * trains micro-batches of N rows of width C: the cuBLASLt workspace, the
 * column-sum partials (K_CUDA_COLSUM_CHUNKS x C fp32), the embedding
 * backward's token groups ((3N + 1) int32) and the gradient-norm partials
 * (K_CUDA_SUMSQ_BLOCKS doubles); the constants live in kernels/k.h, which
 * the backend reads too. */
size_t e2_layout_cuda_scratch_bytes(size_t N, size_t C);

#ifdef __cplusplus
}
#endif
#endif
