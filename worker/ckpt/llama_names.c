/* llama_names.c -- the LlamaForCausalLM tensor table (see llama_names.h),
 * config checks, checkpoint cross-check and stacked-weight readers. */
#include "llama_names.h"

#include "base.h"

#include <stdio.h>
#include <string.h>

/* Per-layer entries, in transformers' state_dict order. */
static const struct {
    e2w_llama_kind kind;
    const char *suffix;
} e2w__layer_tab[] = {
    { E2W_LT_Q, "self_attn.q_proj.weight" },
    { E2W_LT_K, "self_attn.k_proj.weight" },
    { E2W_LT_V, "self_attn.v_proj.weight" },
    { E2W_LT_O, "self_attn.o_proj.weight" },
    { E2W_LT_GATE, "mlp.gate_proj.weight" },
    { E2W_LT_UP, "mlp.up_proj.weight" },
    { E2W_LT_DOWN, "mlp.down_proj.weight" },
    { E2W_LT_ATTN_NORM, "input_layernorm.weight" },
    { E2W_LT_MLP_NORM, "post_attention_layernorm.weight" },
};
enum { E2W__PER_LAYER = sizeof e2w__layer_tab / sizeof e2w__layer_tab[0] };

uint32_t e2w_llama_kv_heads(const E2__V1__LlamaConfig *cfg) {
    return cfg->has_num_key_value_heads && cfg->num_key_value_heads > 0 ? cfg->num_key_value_heads
                                                                        : cfg->num_attention_heads;
}

int e2w_llama_config_check(const E2__V1__LlamaConfig *cfg, char *err, size_t errlen) {
    const struct {
        const char *name;
        int has;
        uint32_t v;
    } req[] = {
        { "hidden_size", cfg->has_hidden_size, cfg->hidden_size },
        { "num_hidden_layers", cfg->has_num_hidden_layers, cfg->num_hidden_layers },
        { "num_attention_heads", cfg->has_num_attention_heads, cfg->num_attention_heads },
        { "intermediate_size", cfg->has_intermediate_size, cfg->intermediate_size },
        { "vocab_size", cfg->has_vocab_size, cfg->vocab_size },
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (!req[i].has || req[i].v == 0)
            return e2_errf(err, errlen, "config: %s must be set and > 0", req[i].name);
    uint32_t C = cfg->hidden_size, H = cfg->num_attention_heads;
    uint32_t KVH = e2w_llama_kv_heads(cfg);
    if (C % H != 0)
        return e2_errf(err, errlen,
                       "config: num_attention_heads (%u) must "
                       "divide hidden_size (%u)",
                       H, C);
    if ((C / H) % 2 != 0)
        return e2_errf(err, errlen,
                       "config: head dim hidden_size / "
                       "num_attention_heads = %u must be even for RoPE",
                       C / H);
    if (H % KVH != 0)
        return e2_errf(err, errlen,
                       "config: num_key_value_heads (%u) must "
                       "divide num_attention_heads (%u)",
                       KVH, H);
    if (cfg->has_rms_norm_eps && !(cfg->rms_norm_eps > 0))
        return e2_errf(err, errlen, "config: rms_norm_eps must be > 0 (got %g)", cfg->rms_norm_eps);
    if (cfg->has_rope_theta && !(cfg->rope_theta > 0))
        return e2_errf(err, errlen, "config: rope_theta must be > 0 (got %g)", cfg->rope_theta);
    if (cfg->has_max_position_embeddings && cfg->max_position_embeddings == 0)
        return e2_errf(err, errlen, "config: max_position_embeddings must be > 0");
    return 0;
}

static int e2w__tied(const E2__V1__LlamaConfig *cfg) {
    return cfg->has_tie_word_embeddings && cfg->tie_word_embeddings;
}

size_t e2w_llama_tensor_count(const E2__V1__LlamaConfig *cfg) {
    return 2 + (size_t)E2W__PER_LAYER * cfg->num_hidden_layers + (e2w__tied(cfg) ? 0 : 1);
}

static void e2w__set(e2w_llama_tensor *t, e2w_llama_kind kind, int layer, int64_t rows,
                     int64_t cols) {
    t->kind = kind;
    t->layer = layer;
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 0;
    t->numel = (uint64_t)rows * (uint64_t)(cols > 0 ? cols : 1);
}

void e2w_llama_tensor_at(const E2__V1__LlamaConfig *cfg, size_t i, e2w_llama_tensor *out) {
    int64_t C = cfg->hidden_size, V = cfg->vocab_size;
    int64_t F = cfg->intermediate_size;
    int64_t D = C / cfg->num_attention_heads;
    int64_t HD = D * cfg->num_attention_heads, KD = D * e2w_llama_kv_heads(cfg);
    size_t nl = (size_t)E2W__PER_LAYER * cfg->num_hidden_layers;
    memset(out, 0, sizeof *out);
    if (i == 0) {
        snprintf(out->name, sizeof out->name, "model.embed_tokens.weight");
        e2w__set(out, E2W_LT_EMBED, -1, V, C);
    } else if (i <= nl) {
        int layer = (int)((i - 1) / E2W__PER_LAYER);
        int j = (int)((i - 1) % E2W__PER_LAYER);
        e2w_llama_kind k = e2w__layer_tab[j].kind;
        snprintf(out->name, sizeof out->name, "model.layers.%d.%s", layer,
                 e2w__layer_tab[j].suffix);
        switch (k) {
        case E2W_LT_Q: e2w__set(out, k, layer, HD, C); break;
        case E2W_LT_K:
        case E2W_LT_V: e2w__set(out, k, layer, KD, C); break;
        case E2W_LT_O: e2w__set(out, k, layer, C, HD); break;
        case E2W_LT_GATE:
        case E2W_LT_UP: e2w__set(out, k, layer, F, C); break;
        case E2W_LT_DOWN: e2w__set(out, k, layer, C, F); break;
        default: e2w__set(out, k, layer, C, 0); break;
        }
    } else if (i == nl + 1) {
        snprintf(out->name, sizeof out->name, "model.norm.weight");
        e2w__set(out, E2W_LT_NORM, -1, C, 0);
    } else {
        snprintf(out->name, sizeof out->name, "lm_head.weight");
        e2w__set(out, E2W_LT_LM_HEAD, -1, V, C);
    }
}

long e2w_llama_tensor_find(const E2__V1__LlamaConfig *cfg, const char *name,
                           e2w_llama_tensor *out) {
    size_t n = e2w_llama_tensor_count(cfg);
    e2w_llama_tensor t;
    for (size_t i = 0; i < n; i++) {
        e2w_llama_tensor_at(cfg, i, &t);
        if (strcmp(t.name, name) == 0) {
            if (out) *out = t;
            return (long)i;
        }
    }
    return E2_NOTFOUND;
}

static int e2w__ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static void e2w__fmt_shape(char *buf, size_t len, int ndim, const int64_t *s) {
    if (ndim == 1)
        snprintf(buf, len, "[%lld]", (long long)s[0]);
    else if (ndim == 2)
        snprintf(buf, len, "[%lld, %lld]", (long long)s[0], (long long)s[1]);
    else
        snprintf(buf, len, "(%d dims)", ndim);
}

int e2w_llama_check_ckpt(const e2w_st *st, const E2__V1__LlamaConfig *cfg, char *err,
                         size_t errlen) {
    if (e2w_llama_config_check(cfg, err, errlen) < 0) return E2_ERR;
    size_t n = e2w_llama_tensor_count(cfg);
    e2w_llama_tensor t;
    for (size_t i = 0; i < n; i++) {
        e2w_llama_tensor_at(cfg, i, &t);
        const e2w_st_tensor_info *x = e2w_st_find(st, t.name);
        if (x == NULL) return e2_errf(err, errlen, "checkpoint: missing tensor %s", t.name);
        int same = x->ndim == t.ndim;
        for (int d = 0; same && d < t.ndim; d++) same = x->shape[d] == t.shape[d];
        if (!same) {
            char got[64], want[64];
            e2w__fmt_shape(got, sizeof got, x->ndim, x->shape);
            e2w__fmt_shape(want, sizeof want, t.ndim, t.shape);
            return e2_errf(err, errlen,
                           "%s: tensor %s has shape %s, the config "
                           "implies %s",
                           x->file, t.name, got, want);
        }
    }
    for (size_t i = 0; i < e2w_st_count(st); i++) {
        const e2w_st_tensor_info *x = e2w_st_tensor(st, i);
        if (e2w__ends_with(x->name, ".rotary_emb.inv_freq")) continue;
        if (e2w__tied(cfg) && strcmp(x->name, "lm_head.weight") == 0) {
            /* A copy of the embedding is harmless; anything else would be
             * silently replaced by the embedding (transformers ties over
             * it), so one of the two is not what the user trained. */
            int same;
            if (e2w_st_same_values(st, "lm_head.weight", "model.embed_tokens.weight", &same, err,
                                   errlen) < 0)
                return E2_ERR;
            if (!same)
                return e2_errf(err, errlen,
                               "%s: tie_word_embeddings is true but "
                               "lm_head.weight differs from "
                               "model.embed_tokens.weight: set "
                               "tie_word_embeddings false in config.json to use "
                               "lm_head.weight, or remove lm_head.weight from "
                               "the checkpoint to tie it to the embedding",
                               x->file);
            continue;
        }
        if (e2w_llama_tensor_find(cfg, x->name, NULL) < 0)
            return e2_errf(err, errlen,
                           "%s: unexpected tensor %s (not part of "
                           "a Llama model with this config)",
                           x->file, x->name);
    }
    return 0;
}

/* Reads `count` consecutive per-layer entries starting at kind `first` into
 * dst, one after the other (row-block stacking). */
static int e2w__read_stacked(const e2w_st *st, const E2__V1__LlamaConfig *cfg, int layer,
                             e2w_llama_kind first, int count, float *dst, char *err,
                             size_t errlen) {
    if (layer < 0 || (uint32_t)layer >= cfg->num_hidden_layers)
        return e2_errf(err, errlen, "layer %d out of range 0..%u", layer,
                       cfg->num_hidden_layers - 1);
    int j0 = 0;
    while (e2w__layer_tab[j0].kind != first) j0++;
    e2w_llama_tensor t;
    for (int j = j0; j < j0 + count; j++) {
        e2w_llama_tensor_at(cfg, 1 + (size_t)layer * E2W__PER_LAYER + (size_t)j, &t);
        if (e2w_st_read_f32(st, t.name, t.ndim, t.shape, dst, err, errlen) < 0) return E2_ERR;
        dst += t.numel;
    }
    return 0;
}

int e2w_llama_read_qkv(const e2w_st *st, const E2__V1__LlamaConfig *cfg, int layer, float *dst,
                       char *err, size_t errlen) {
    return e2w__read_stacked(st, cfg, layer, E2W_LT_Q, 3, dst, err, errlen);
}

int e2w_llama_read_gate_up(const e2w_st *st, const E2__V1__LlamaConfig *cfg, int layer, float *dst,
                           char *err, size_t errlen) {
    return e2w__read_stacked(st, cfg, layer, E2W_LT_GATE, 2, dst, err, errlen);
}
