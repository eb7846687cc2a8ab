/* model.h -- the Llama-family model of e2, written once against k_backend.
 *
 * Block l (pre-norm, as in Hugging Face transformers' LlamaModel):
 *     ln1  = rmsnorm(res[l]) * ln1_w
 *     qkv  = ln1 @ Wqkv^T            Wqkv = [W_q; W_k; W_v] stacked by rows
 *     rope(q, k) with per-sequence (g, t) and n_sink (k_rope)
 *     atty = causal GQA attention(qkv)
 *     mid  = res[l] + atty @ Wo^T
 *     ln2  = rmsnorm(mid) * ln2_w
 *     fch  = ln2 @ Wgu^T             Wgu = [W_gate; W_up] stacked by rows
 *     res[l+1] = mid + swiglu(fch) @ Wdown^T
 * then logits = rmsnorm(res[L]) * lnf_w @ head^T (head = embed_tokens when
 * tied) and a fused cross-entropy.
 *
 * Memory (llm.c style): parameters, gradients, optimizer state (AdamW m, v
 * and, when the backend's act dtype is not fp32, an fp32 master copy) and
 * activations are each ONE backend allocation, sized up front from the
 * config and (B, T) by the layout table (common/layout: sizes apart from
 * allocation, the same table the memory planner reads); the named tensors
 * point into it at the table's offsets and nothing is allocated per step.
 *
 * Parameter layout: each kind of tensor is stored for all layers together
 * (wte, ln1 (L, C), qkv (L, QKV, C), ...). Every Hugging Face tensor is then a
 * contiguous slice of the parameter buffer (q_proj, k_proj and v_proj are
 * consecutive row blocks of one layer's Wqkv; gate_proj and up_proj of Wgu),
 * so import and export are plain uploads and downloads of slices.
 */
#ifndef E2_WORKER_MODEL_H
#define E2_WORKER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "k.h"
#include "layout.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct E2__V1__LlamaConfig E2__V1__LlamaConfig;

/* Architecture in plain integers; D = C / H is the head dimension. */
typedef struct {
    int C, n_layer, H, KVH, D, F, V;
    int max_pos; /* original window L */
    float eps;   /* rms_norm_eps */
    float theta; /* rope_theta */
    int tied;    /* lm_head shares embed_tokens */
} e2w_model_config;

/* Fills c from the proto, applying the proto's documented defaults
 * (num_key_value_heads = H, rms_norm_eps 1e-5, rope_theta 10000). Returns 0,
 * or -1 with one line in err naming the bad field. */
int e2w_model_config_from_proto(e2w_model_config *c, const E2__V1__LlamaConfig *p, char *err,
                                size_t errlen);
/* The reverse: writes every field of p (p must be initialised). */
void e2w_model_config_to_proto(const e2w_model_config *c, E2__V1__LlamaConfig *p);

/* Parameter tensors, in buffer order: the rows of the layout table
 * (common/layout/layout.h), which gives their shapes. */
enum {
    E2W_P_WTE = E2_LAYOUT_P_WTE,
    E2W_P_LN1 = E2_LAYOUT_P_LN1,
    E2W_P_QKV = E2_LAYOUT_P_QKV,
    E2W_P_WO = E2_LAYOUT_P_WO,
    E2W_P_LN2 = E2_LAYOUT_P_LN2,
    E2W_P_GU = E2_LAYOUT_P_GU,
    E2W_P_DOWN = E2_LAYOUT_P_DOWN,
    E2W_P_LNF = E2_LAYOUT_P_LNF,
    E2W_P_HEAD = E2_LAYOUT_P_HEAD,
    E2W_P_COUNT = E2_LAYOUT_P_COUNT
};

typedef struct e2w_model {
    const k_backend *k;
    e2w_model_config cfg;
    size_t esz;                /* bytes per act element */
    size_t gesz;               /* bytes per gradient element (the
                                       backend's grad_dtype: fp32, 4) */
    size_t psize[E2W_P_COUNT]; /* elements per tensor kind */
    size_t poff[E2W_P_COUNT];  /* element offset in the buffers */
    size_t n_params;
    void *params; /* (n_params) act dtype */
    void *grads;  /* (n_params) grad dtype, NULL until train */
    /* The optimizer state covers parameters [opt_lo, opt_lo + opt_n): all
     * of them (0, n_params), or one rank's shard under ZeRO-1. Parameter
     * i's moments are m[i - opt_lo], v[i - opt_lo]. */
    size_t opt_lo, opt_n;
    float *opt;    /* m | v | master, one allocation */
    float *m, *v;  /* (opt_n) AdamW moments */
    float *master; /* (opt_n) fp32 master, or NULL (fp32 act) */
} e2w_model;

/* Byte offsets of one block's activations inside a layer set (from the
 * layout table's layer regions). */
typedef struct {
    size_t ln1, rstd1, qkv, atty, lse, mid, ln2, rstd2, fch, swi, total;
} e2w_layer_layout;

/* Forward-only activations keep the logits of this many rows at a time, so
 * evaluation memory does not grow with T * V (the layout's constant). */
#define E2W_LOGIT_CHUNK E2_LAYOUT_LOGIT_CHUNK

/* Activations for micro-batches of up to B sequences of up to T tokens. */
typedef struct e2w_acts {
    int B, T;
    int backward;  /* gradient scratch allocated */
    int recompute; /* one set of block activations, shared by the blocks
                         (rebuilt before each block's backward); always so
                         for forward-only acts */
    size_t bytes;
    void *mem;          /* the one allocation */
    int32_t *tokens;    /* (B*T) device */
    int32_t *targets;   /* (B*T) device */
    float *losses;      /* (B*T) per-token loss */
    float *host_losses; /* (B*T) host copy, for the sum */
    void *res;          /* (L+1, B*T, C) residual stream at each block input */
    void *lnf;          /* (B*T, C) */
    float *rstdf;       /* (B*T) */
    int logit_rows;     /* rows of logits held: B*T when backward, else at
                         most E2W_LOGIT_CHUNK (the head runs chunk by chunk) */
    int logits_row0;    /* first token row whose logits a->logits holds */
    void *logits;       /* (logit_rows, V); after backward: d logits */
    void *layers;       /* block activations, L sets (or 1 when recompute) */
    e2w_layer_layout ll;
    /* backward scratch (NULL when !backward) */
    void *dres, *dln, *dqkv, *datty, *dfch, *dswi;
    float *delta; /* (B, H, T) */
} e2w_acts;

/* Creates the model with its parameter buffer (zeroed). Returns 0,
 * E2_ENOMEM when the device cannot hold it, or E2_ERR (base.h). */
int e2w_model_create(e2w_model *m, const k_backend *k, const e2w_model_config *cfg, char *err,
                     size_t errlen);
/* Adds gradients and AdamW state (moments; fp32 master when needed, filled
 * from the current parameters); E2_ENOMEM when the device cannot hold them. */
int e2w_model_alloc_train(e2w_model *m, char *err, size_t errlen);
/* The same with the optimizer state of parameters [lo, lo + n) only
 * (ZeRO-1's shard; lo + n <= n_params); the gradients stay whole. */
int e2w_model_alloc_train_shard(e2w_model *m, size_t lo, size_t n, char *err, size_t errlen);
void e2w_model_free(e2w_model *m);

/* From-scratch initialisation, a pure function of (config, seed):
 * every matrix ~ normal(0, 0.02) (Box-Muller over splitmix64), the two
 * residual projections (o_proj, down_proj) additionally scaled by
 * 1/sqrt(2 * n_layer) (GPT-2's rule, keeps the residual stream's variance
 * independent of depth), RMSNorm weights 1. */
void e2w_model_init(e2w_model *m, uint64_t seed);

/* Parameters that take part in a matmul (per token, forward + backward cost
 * 6 * matmul_params; the embedding lookup is free, a tied head counts once
 * as the head). */
size_t e2w_model_matmul_params(const e2w_model *m);
/* Model FLOPs per trained token at sequence length T (forward + backward):
 * 6 * matmul_params + 6 * n_layer * H * D * T (causal attention: the QK^T
 * and AV products over T/2 keys on average, times 3 for the backward). */
double e2w_model_flops_per_token(const e2w_model *m, int T);

/* Activations for up to B x T tokens: with backward (training) or without
 * (evaluation: no gradient scratch, one set of block activations, the head
 * in chunks), with or without recomputation. Returns 0, E2_ENOMEM when the
 * device cannot hold them, or E2_ERR (base.h). */
int e2w_acts_create(e2w_acts *a, const e2w_model *m, int B, int T, int backward, int recompute,
                    char *err, size_t errlen);
void e2w_acts_free(e2w_acts *a, const e2w_model *m);

/* Uploads a micro-batch: tokens (B*T) host int32 and targets (B*T) or NULL. */
void e2w_acts_set_batch(e2w_acts *a, const e2w_model *m, const int32_t *tokens,
                        const int32_t *targets, int B, int T);

/* Forward over the batch set by e2w_acts_set_batch. With targets, per-token
 * losses land in a->losses and the function returns their sum (host double,
 * rows whose target is -1 ignored); without, 0 is returned. Either way
 * a->logits holds the logits of rows [a->logits_row0, B*T): all rows when
 * the acts have backward buffers, the last chunk of rows otherwise. */
double e2w_model_forward(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope,
                         int with_targets);
/* Backward of the last forward (with targets): gradients ACCUMULATE into
 * m->grads, each row's loss weighted by dloss (1 / tokens of the global
 * batch makes the sum over micro-batches the mean). */
void e2w_model_backward(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope, float dloss);

/* A range of the gradient buffer, in elements. */
typedef struct {
    size_t offset, n;
} e2w_grad_range;

/* Called during a backward each time a group of gradient ranges is final
 * (nothing later in this backward adds to them), in this order: the head
 * and final norm; then each block from the last to the first (its six
 * per-layer slices); then the token embeddings (which hold the head too
 * when tied). The groups partition the gradient buffer; on a device the
 * kernels that wrote them may still be queued (order after k->stream). */
typedef void (*e2w_grads_ready)(void *ud, const e2w_grad_range *r, int nr);

/* e2w_model_backward, announcing each finished group to ready (data-parallel
 * training sums a layer's gradients over the ranks while the backward of the
 * layers below it still runs). */
void e2w_model_backward_notify(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope,
                               float dloss, e2w_grads_ready ready, void *ud);

/* Rows of the head (lm head + cross-entropy) per chunk in e2w_model_step:
 * 256 x V logits (32 MiB at V = 32000) stay in the last-level cache between
 * the product that writes them, the loss and the product that reads them. */
#define E2W_HEAD_CHUNK 256

/* One training micro-batch: e2w_model_forward with targets followed by
 * e2w_model_backward_notify, the same gradients (accumulated) and the same
 * loss sum returned, with the head fused: chunk by chunk of rows, the
 * logits, the loss and its gradient (k->xent_fwd_bwd when the backend has
 * it) and d lnf, while the chunk is in cache. The acts must have backward
 * buffers. Afterwards a->logits holds d logits of every row. */
double e2w_model_step(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope, float dloss,
                      e2w_grads_ready ready, void *ud);

/* Hugging Face tensors, in the order of ckpt's name table (llama_names.h):
 * the i-th one (0 <= i < e2w_model_hf_count) has a transformers name, a 1-
 * or 2-d shape and a contiguous element range of the parameter (and
 * gradient) buffer. */
typedef struct {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t offset, numel;
} e2w_model_hf_tensor;
int e2w_model_hf_count(const e2w_model *m);
void e2w_model_hf_tensor_at(const e2w_model *m, int i, e2w_model_hf_tensor *t);

/* Loads every tensor of the model from a safetensors checkpoint (a
 * directory with model.safetensors or a sharded index, or one file); shapes
 * must match the config exactly; bf16/fp16 are widened exactly. */
int e2w_model_load_hf(e2w_model *m, const char *path, char *err, size_t errlen);
/* Writes the weights as transformers tensors into dir (fp32, or bf16 when
 * bf16 != 0), one file or shards of at most max_shard_bytes (0 = one file).
 * config.json is written by the caller (ckpt). */
int e2w_model_save_hf(const e2w_model *m, const char *dir, int bf16, uint64_t max_shard_bytes,
                      char *err, size_t errlen);

/* Copies between fp32 host arrays and the parameter buffer (also the fp32
 * master, when present, on upload: the part of [offset, offset + n) that it
 * covers). */
void e2w_model_upload(e2w_model *m, size_t offset, const float *src, size_t n);
void e2w_model_download(const e2w_model *m, size_t offset, float *dst, size_t n);
void e2w_model_download_grad(const e2w_model *m, size_t offset, float *dst, size_t n);

#ifdef __cplusplus
}
#endif
#endif
