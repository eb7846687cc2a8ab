/* llama_names.h -- the tensor table of transformers' LlamaForCausalLM.
 *
 * Part of e2w_ckpt. One table, shared by import, export and
 * `e2worker inspect` (which prints grad.<name>), so that the three agree on
 * names and shapes. With C = hidden_size, H = num_attention_heads,
 * KVH = num_key_value_heads, D = C / H, F = intermediate_size,
 * V = vocab_size, the table is, in transformers' state_dict order:
 *
 *   model.embed_tokens.weight                         (V, C)
 *   for each layer i:
 *     model.layers.{i}.self_attn.q_proj.weight        (H * D, C)
 *     model.layers.{i}.self_attn.k_proj.weight        (KVH * D, C)
 *     model.layers.{i}.self_attn.v_proj.weight        (KVH * D, C)
 *     model.layers.{i}.self_attn.o_proj.weight        (C, H * D)
 *     model.layers.{i}.mlp.gate_proj.weight           (F, C)
 *     model.layers.{i}.mlp.up_proj.weight             (F, C)
 *     model.layers.{i}.mlp.down_proj.weight           (C, F)
 *     model.layers.{i}.input_layernorm.weight         (C)
 *     model.layers.{i}.post_attention_layernorm.weight (C)
 *   model.norm.weight                                 (C)
 *   lm_head.weight                                    (V, C), absent when tied
 *
 * Weights are (out_features, in_features), row-major, as torch.nn.Linear
 * stores them. The model keeps q, k, v stacked as one ((H + 2 KVH) D, C)
 * weight and gate, up as one (2F, C) weight: stacking row blocks of
 * row-major matrices is concatenation, so q starts at row 0, k at row H*D,
 * v at row (H + KVH) D (gate at row 0, up at row F). Export can therefore
 * point e2w_st_out.data straight into the stacked weight; import uses
 * e2w_llama_read_qkv / e2w_llama_read_gate_up.
 */
#ifndef E2W_CKPT_LLAMA_NAMES_H
#define E2W_CKPT_LLAMA_NAMES_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    E2W_LT_EMBED = 0,
    E2W_LT_Q,
    E2W_LT_K,
    E2W_LT_V,
    E2W_LT_O,
    E2W_LT_GATE,
    E2W_LT_UP,
    E2W_LT_DOWN,
    E2W_LT_ATTN_NORM, /* input_layernorm */
    E2W_LT_MLP_NORM,  /* post_attention_layernorm */
    E2W_LT_NORM,      /* model.norm, the final norm */
    E2W_LT_LM_HEAD,
} e2w_llama_kind;

#define E2W_LLAMA_NAME_MAX 96

typedef struct {
    char name[E2W_LLAMA_NAME_MAX];
    e2w_llama_kind kind;
    int layer; /* block index; -1 for embed, norm, lm_head */
    int ndim;  /* 1 or 2 */
    int64_t shape[2];
    uint64_t numel;
} e2w_llama_tensor;

/* Checks a LlamaConfig for what the model needs: hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size, vocab_size set
 * and > 0; C % H == 0; an even head dim D (rotate_half RoPE); H % KVH == 0;
 * rms_norm_eps, rope_theta, max_position_embeddings > 0 when set.
 * Errors name the field: "config: num_attention_heads (12) must divide
 * hidden_size (1000)". */
int e2w_llama_config_check(const E2__V1__LlamaConfig *cfg, char *err, size_t errlen);

/* KVH: num_key_value_heads, or H when unset or 0. */
uint32_t e2w_llama_kv_heads(const E2__V1__LlamaConfig *cfg);

/* Number of tensors: 2 + 9 * layers, + 1 when the head is not tied.
 * cfg must have passed e2w_llama_config_check. */
size_t e2w_llama_tensor_count(const E2__V1__LlamaConfig *cfg);

/* Entry i (0 <= i < count) of the table, in the order above. */
void e2w_llama_tensor_at(const E2__V1__LlamaConfig *cfg, size_t i, e2w_llama_tensor *out);

/* Looks a name up in the table; returns the index, or E2_NOTFOUND (base.h). */
long e2w_llama_tensor_find(const E2__V1__LlamaConfig *cfg, const char *name, e2w_llama_tensor *out);

/* Checks that a checkpoint holds exactly the Llama tensors of cfg with the
 * right shapes. Ignored: rotary_emb.inv_freq buffers (old checkpoints) and,
 * when the head is tied, an lm_head.weight equal to the embedding; a tied
 * config with a different lm_head.weight is an error naming both tensors
 * (transformers would silently tie over it). Errors
 * name the tensor: "checkpoint /m: missing tensor model.norm.weight",
 * "... unexpected tensor model.layers.0.self_attn.q_proj.bias (not part of
 * a Llama model)". */
int e2w_llama_check_ckpt(const e2w_st *st, const E2__V1__LlamaConfig *cfg, char *err,
                         size_t errlen);

/* Reads q, k, v of layer into the stacked weight dst ((H + 2 KVH) D, C). */
int e2w_llama_read_qkv(const e2w_st *st, const E2__V1__LlamaConfig *cfg, int layer, float *dst,
                       char *err, size_t errlen);

/* Reads gate, up of layer into the stacked weight dst (2F, C). */
int e2w_llama_read_gate_up(const e2w_st *st, const E2__V1__LlamaConfig *cfg, int layer, float *dst,
                           char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
