/* hf_config.h -- Hugging Face config.json <-> e2.v1.LlamaConfig.
 *
 * Part of e2w_ckpt.
 *
 * Reading accepts model_type "llama", and "mistral" (same tensors and
 * maths) when it has no effective sliding window. Rejected, with the key
 * named: other model types; hidden_act other than "silu"; attention_bias or
 * mlp_bias true; a head_dim other than hidden_size / num_attention_heads;
 * a rope_scaling other than null, {"rope_type"/"type": "default"} or
 * {"rope_type"/"type": "linear", "factor": g >= 1} (dynamic, yarn, llama3,
 * longrope, ... change the RoPE frequencies, which e2's kernels do not do).
 * transformers 5's rope_parameters {"rope_type", "rope_theta", "factor"}
 * is read the same way and takes precedence over rope_theta/rope_scaling.
 *
 * Fields absent from the file get transformers' LlamaConfig defaults
 * (num_key_value_heads = heads, rms_norm_eps 1e-6, rope_theta 10000,
 * max_position_embeddings 2048, tie_word_embeddings false); hidden_size,
 * num_hidden_layers, num_attention_heads, intermediate_size and vocab_size
 * are required. Every field of the returned LlamaConfig is set.
 *
 * Windows and scaling (e2-method.md section 4). An exported model that
 * serves a window L' = g L carries rope_scaling linear with factor g and
 * max_position_embeddings = L' (the target window): transformers' linear
 * RoPE divides positions by the factor whatever max_position_embeddings
 * says, so that field only tells generate() and users how long the model
 * may run, and L' is the true answer. Reading inverts this: with a linear
 * factor g, LlamaConfig.max_position_embeddings (the ORIGINAL window L) is
 * round(file value / g), and the meta gives g and the file value. This also
 * reads published PI checkpoints right (e.g. 32768 with factor 8 -> L 4096).
 */
#ifndef E2W_CKPT_HF_CONFIG_H
#define E2W_CKPT_HF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What config.json says beyond LlamaConfig. */
typedef struct {
    /* Read: the linear rope_scaling factor, 1 when none. Write: g; > 1
     * writes rope_scaling linear with this factor. */
    double rope_scale;
    /* Read: max_position_embeddings exactly as in the file. Write: the value
     * to write; 0 = round(rope_scale * cfg->max_position_embeddings). */
    uint32_t max_position;
    /* Token ids; -1 = absent (read) / omitted (write). A list-valued
     * eos_token_id reads as its first element. */
    int64_t bos_token_id;
    int64_t eos_token_id;
    /* "float32", "bfloat16", ...; "" = absent (read) / "float32" (write). */
    char torch_dtype[16];
    /* Write only. 0 (default): rope_scaling carries both "rope_type" and the
     * legacy "type" key (transformers >= 4.43 reads either). 1: only
     * {"type", "factor"}, for transformers 4.31-4.42, which insist on
     * exactly those two keys. */
    int legacy_rope_scaling;
    /* Write only: the rope_scaling type written when rope_scale > 1; NULL
     * = "linear". Set from a position scheme's export
     * (common/pos, e2_pos_hf_rope_scaling). */
    const char *rope_type;
} e2w_hf_meta;

/* rope_scale 1, max_position 0, ids -1, torch_dtype "", legacy 0. */
void e2w_hf_meta_init(e2w_hf_meta *meta);

/* Reads path (a checkpoint directory holding config.json, or the file
 * itself) into cfg (initialised here) and meta (may be NULL). */
int e2w_hf_config_read(const char *path, E2__V1__LlamaConfig *cfg,
                       e2w_hf_meta *meta, char *err, size_t errlen);

/* Writes dir/config.json atomically: a transformers-loadable
 * LlamaForCausalLM config (architectures, model_type "llama", hidden_act
 * "silu", no biases, the LlamaConfig fields, torch_dtype, token ids when
 * known, rope_scaling per meta). cfg must pass e2w_llama_config_check;
 * meta may be NULL (no scaling, float32). */
int e2w_hf_config_write(const char *dir, const E2__V1__LlamaConfig *cfg,
                        const e2w_hf_meta *meta, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
