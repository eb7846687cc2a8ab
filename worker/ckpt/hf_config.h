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
    /* Write only: the form of rope_scaling (e2w_rope_scaling_form). */
    int rope_scaling_form;
    /* Write only: a config.json (or the directory holding it) to start
     * from, NULL for none. Every field of it is kept as written (token ids,
     * rms_norm_eps and every other number to the digit, fields e2 does not
     * know); e2 sets architectures ["LlamaForCausalLM"], model_type "llama",
     * the LlamaConfig sizes (the same model: cfg must have been read from
     * it), max_position_embeddings and rope_scaling (and rope_parameters,
     * when the source has that transformers 5 key). torch_dtype and token
     * ids come from meta only where the source has none. */
    const char *source;
    /* Write only: the rope_scaling type written when rope_scale > 1; NULL
     * = "linear". Set from a position scheme's export
     * (common/pos, e2_pos_hf_rope_scaling). */
    const char *rope_type;
} e2w_hf_meta;

/* How rope_scaling is written when g > 1.
 * LEGACY {"type": "linear", "factor": g}: what transformers 4.31 .. 4.42
 *   demand (exactly these two keys, factor a float > 1), and what 4.43 and
 *   later (5.x included) still read as rope_type linear. The default: it
 *   loads everywhere.
 * MODERN {"rope_type": "linear", "factor": g}: transformers >= 4.43 only
 *   (4.31-4.42 reject it). */
typedef enum {
    E2W_ROPE_SCALING_LEGACY = 0,
    E2W_ROPE_SCALING_MODERN = 1,
} e2w_rope_scaling_form;

/* rope_scale 1, max_position 0, ids -1, torch_dtype "", form LEGACY,
 * source NULL. */
void e2w_hf_meta_init(e2w_hf_meta *meta);

/* Reads path (a checkpoint directory holding config.json, or the file
 * itself) into cfg (initialised here) and meta (may be NULL). */
int e2w_hf_config_read(const char *path, E2__V1__LlamaConfig *cfg, e2w_hf_meta *meta, char *err,
                       size_t errlen);

/* Writes dir/config.json atomically: a transformers-loadable
 * LlamaForCausalLM config (architectures, model_type "llama", hidden_act
 * "silu", no biases, the LlamaConfig fields, torch_dtype, token ids when
 * known, rope_scaling per meta), on top of meta->source when given. Every
 * real number is printed with the fewest digits that read back exactly
 * (1e-05 stays 1e-05) and keeps a decimal point (10000.0, 4.0).
 * cfg must pass e2w_llama_config_check; meta may be NULL (no scaling,
 * float32, no source). dir may be meta->source's directory. */
int e2w_hf_config_write(const char *dir, const E2__V1__LlamaConfig *cfg, const e2w_hf_meta *meta,
                        char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
