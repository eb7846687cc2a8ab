/* hf_config.c -- read and write Hugging Face config.json for Llama-family
 * models (see hf_config.h for what is accepted and the window/scaling
 * rule). */
#include "hf_config.h"

#include "base.h"
#include "llama_names.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define E2W_CONFIG_MAX (16u << 20)

void e2w_hf_meta_init(e2w_hf_meta *meta) {
    memset(meta, 0, sizeof *meta);
    meta->rope_scale = 1.0;
    meta->bos_token_id = -1;
    meta->eos_token_id = -1;
}

/* Reads key as an integer in [1, UINT32_MAX] into *out. Absent or null:
 * *out = def when def > 0, else an error (required). */
static int e2w__get_u32(const char *file, json_t *root, const char *key, uint32_t def,
                        uint32_t *out, char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        if (def == 0) return e2_errf(err, errlen, "%s: missing required field %s", file, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX)
        return e2_errf(err, errlen,
                       "%s: %s must be a positive integer below "
                       "2^32",
                       file, key);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int e2w__get_pos_double(const char *file, json_t *root, const char *key, double def,
                               double *out, char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) > 0))
        return e2_errf(err, errlen, "%s: %s must be a positive number", file, key);
    *out = json_number_value(v);
    return 0;
}

/* Absent or null: -1. An integer, or a list whose first element is used. */
static int e2w__get_token(const char *file, json_t *root, const char *key, int64_t *out, char *err,
                          size_t errlen) {
    json_t *v = json_object_get(root, key);
    *out = -1;
    if (v == NULL || json_is_null(v)) return 0;
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return e2_errf(err, errlen,
                       "%s: %s must be a non-negative integer or a "
                       "list of them",
                       file, key);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* A boolean key that must be false (or absent) for the Llama layout. */
static int e2w__must_be_false(const char *file, json_t *root, const char *key, char *err,
                              size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v) || json_is_false(v)) return 0;
    return e2_errf(err, errlen,
                   "%s: %s = true is not supported (e2's Llama "
                   "layers have no biases)",
                   file, key);
}

/* RoPE base and scale. transformers 4 writes rope_theta and rope_scaling
 * (null, or {"rope_type" or "type", "factor"}); transformers 5 writes
 * rope_parameters {"rope_type", "rope_theta", "factor"}, which wins when
 * present. Accepted types: default, and linear with factor >= 1. */
static int e2w__get_rope(const char *file, json_t *root, double *theta, double *g, char *err,
                         size_t errlen) {
    const char *key = "rope_scaling";
    json_t *rs = json_object_get(root, key);
    json_t *rp = json_object_get(root, "rope_parameters");
    *g = 1.0;
    if (e2w__get_pos_double(file, root, "rope_theta", 10000.0, theta, err, errlen) < 0)
        return E2_ERR;
    if (rp != NULL && !json_is_null(rp)) {
        key = "rope_parameters";
        if (!json_is_object(rp))
            return e2_errf(err, errlen, "%s: rope_parameters must be an object", file);
        json_t *th = json_object_get(rp, "rope_theta");
        if (th != NULL && !(json_is_number(th) && json_number_value(th) > 0))
            return e2_errf(err, errlen,
                           "%s: rope_parameters.rope_theta must be "
                           "a positive number",
                           file);
        if (th != NULL) *theta = json_number_value(th);
        rs = rp;
    }
    if (rs == NULL || json_is_null(rs)) return 0;
    if (!json_is_object(rs))
        return e2_errf(err, errlen, "%s: %s must be an object or null", file, key);
    json_t *ty = json_object_get(rs, "rope_type");
    if (ty == NULL) ty = json_object_get(rs, "type");
    if (!json_is_string(ty)) return e2_errf(err, errlen, "%s: %s has no rope_type", file, key);
    const char *t = json_string_value(ty);
    if (strcmp(t, "default") == 0) return 0;
    if (strcmp(t, "linear") != 0)
        return e2_errf(err, errlen,
                       "%s: %s type '%s' is not supported (e2 "
                       "accepts none, default or linear)",
                       file, key, t);
    json_t *f = json_object_get(rs, "factor");
    if (!json_is_number(f) || !(json_number_value(f) >= 1.0) || !isfinite(json_number_value(f)))
        return e2_errf(err, errlen,
                       "%s: %s.factor must be a number >= 1 for "
                       "linear scaling",
                       file, key);
    *g = json_number_value(f);
    return 0;
}

/* Layout checks: model type, activation, biases, head_dim, sliding window. */
static int e2w__check_family(const char *file, json_t *root, uint32_t C, uint32_t H, uint32_t mpe,
                             char *err, size_t errlen) {
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt))
        return e2_errf(err, errlen, "%s: missing model_type (expected \"llama\")", file);
    const char *m = json_string_value(mt);
    int mistral = strcmp(m, "mistral") == 0;
    if (!mistral && strcmp(m, "llama") != 0)
        return e2_errf(err, errlen,
                       "%s: model_type '%s' is not supported (e2 "
                       "trains the Llama layout: llama, mistral)",
                       file, m);
    json_t *act = json_object_get(root, "hidden_act");
    if (act != NULL && !(json_is_string(act) && (strcmp(json_string_value(act), "silu") == 0 ||
                                                 strcmp(json_string_value(act), "swish") == 0)))
        return e2_errf(err, errlen, "%s: hidden_act must be \"silu\" (SwiGLU)", file);
    if (e2w__must_be_false(file, root, "attention_bias", err, errlen) < 0 ||
        e2w__must_be_false(file, root, "mlp_bias", err, errlen) < 0)
        return E2_ERR;
    json_t *hd = json_object_get(root, "head_dim");
    if (hd != NULL && !json_is_null(hd) &&
        !(json_is_integer(hd) && H > 0 && json_integer_value(hd) == C / H))
        return e2_errf(err, errlen,
                       "%s: head_dim must equal hidden_size / "
                       "num_attention_heads (%u)",
                       file, H ? C / H : 0);
    /* transformers' MistralConfig defaults sliding_window to 4096. */
    json_t *sw = json_object_get(root, "sliding_window");
    json_int_t window = sw == NULL ? 4096 : json_is_integer(sw) ? json_integer_value(sw) : -1;
    if (mistral && !json_is_null(sw) && window < (json_int_t)mpe)
        return e2_errf(err, errlen,
                       "%s: sliding_window attention is not "
                       "supported (e2 attends to the full window; need "
                       "sliding_window null or >= max_position_embeddings %u)",
                       file, mpe);
    return 0;
}

static int e2w__config_from_json(const char *file, json_t *root, E2__V1__LlamaConfig *c,
                                 e2w_hf_meta *meta, char *err, size_t errlen) {
    if (!json_is_object(root)) return e2_errf(err, errlen, "%s: not a JSON object", file);
    if (e2w__get_u32(file, root, "hidden_size", 0, &c->hidden_size, err, errlen) ||
        e2w__get_u32(file, root, "num_hidden_layers", 0, &c->num_hidden_layers, err, errlen) ||
        e2w__get_u32(file, root, "num_attention_heads", 0, &c->num_attention_heads, err, errlen) ||
        e2w__get_u32(file, root, "num_key_value_heads", c->num_attention_heads,
                     &c->num_key_value_heads, err, errlen) ||
        e2w__get_u32(file, root, "intermediate_size", 0, &c->intermediate_size, err, errlen) ||
        e2w__get_u32(file, root, "vocab_size", 0, &c->vocab_size, err, errlen) ||
        e2w__get_u32(file, root, "max_position_embeddings", 2048, &meta->max_position, err,
                     errlen) ||
        e2w__get_pos_double(file, root, "rms_norm_eps", 1e-6, &c->rms_norm_eps, err, errlen) ||
        e2w__get_rope(file, root, &c->rope_theta, &meta->rope_scale, err, errlen) ||
        e2w__get_token(file, root, "bos_token_id", &meta->bos_token_id, err, errlen) ||
        e2w__get_token(file, root, "eos_token_id", &meta->eos_token_id, err, errlen))
        return E2_ERR;
    if (e2w__check_family(file, root, c->hidden_size, c->num_attention_heads, meta->max_position,
                          err, errlen) < 0)
        return E2_ERR;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie != NULL && !json_is_boolean(tie) && !json_is_null(tie))
        return e2_errf(err, errlen,
                       "%s: tie_word_embeddings must be true or "
                       "false",
                       file);
    c->tie_word_embeddings = json_is_true(tie);
    json_t *dt = json_object_get(root, "torch_dtype");
    if (dt == NULL) dt = json_object_get(root, "dtype");
    if (json_is_string(dt))
        snprintf(meta->torch_dtype, sizeof meta->torch_dtype, "%s", json_string_value(dt));
    double L = round(meta->max_position / meta->rope_scale);
    c->max_position_embeddings = L >= 1 ? (uint32_t)L : 1;
    c->has_hidden_size = c->has_num_hidden_layers = 1;
    c->has_num_attention_heads = c->has_num_key_value_heads = 1;
    c->has_intermediate_size = c->has_vocab_size = 1;
    c->has_rms_norm_eps = c->has_rope_theta = 1;
    c->has_max_position_embeddings = c->has_tie_word_embeddings = 1;
    char why[E2_ERRLEN];
    if (e2w_llama_config_check(c, why, sizeof why) < 0)
        return e2_errf(err, errlen, "%s: %s", file, why);
    return 0;
}

int e2w_hf_config_read(const char *path, E2__V1__LlamaConfig *cfg, e2w_hf_meta *meta, char *err,
                       size_t errlen) {
    e2__v1__llama_config__init(cfg);
    e2w_hf_meta local;
    if (meta == NULL) meta = &local;
    e2w_hf_meta_init(meta);
    char file[4096], *text;
    size_t len;
    if (e2_read_config_json(path, E2W_CONFIG_MAX, file, sizeof file, &text, &len, err, errlen) < 0)
        return E2_ERR;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (root == NULL) /* Line and column only: jansson's text quotes the file. */
        return e2_errf(err, errlen, "%s: not valid JSON (line %d, column %d)", file, je.line,
                       je.column);
    int rc = e2w__config_from_json(file, root, cfg, meta, err, errlen);
    json_decref(root);
    return rc;
}

/* ---- writing ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} e2w__out;

static void e2w__put(e2w__out *o, const char *s, size_t n) {
    if (o->failed) return;
    if (o->len + n + 2 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (o->len + n + 2 > cap) cap *= 2;
        char *b = realloc(o->buf, cap);
        if (b == NULL) {
            o->failed = 1;
            return;
        }
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void e2w__puts(e2w__out *o, const char *s) {
    e2w__put(o, s, strlen(s));
}

/* x as Python's repr() prints a float, which is how transformers writes
 * config.json: the fewest significant digits that read back exactly,
 * positional notation for decimal exponents -4 .. 15 with at least one
 * decimal ("10000.0", "0.02": a float stays a float, which transformers
 * 4.31-4.42 insist on for rope_scaling.factor), else "1e-05". */
static void e2w__put_real(e2w__out *o, double x) {
    char buf[64];
    int p = 1;
    for (; p < 17; p++) {
        snprintf(buf, sizeof buf, "%.*e", p - 1, x);
        if (strtod(buf, NULL) == x) break;
    }
    snprintf(buf, sizeof buf, "%.*e", p - 1, x);
    int exp10 = atoi(strchr(buf, 'e') + 1);
    if (exp10 >= -4 && exp10 < 16) {
        int decimals = p - 1 - exp10;
        snprintf(buf, sizeof buf, "%.*f", decimals > 0 ? decimals : 0, x);
        if (decimals <= 0) strcat(buf, ".0");
    }
    e2w__puts(o, buf);
}

/* JSON text of v, indented by 2 per level like transformers' own
 * config.json; keys in the object's order. */
static void e2w__emit(e2w__out *o, json_t *v, int depth) {
    char pad[2 * 64 + 2];
    int n = depth + 1 < 64 ? depth + 1 : 64;
    pad[0] = '\n';
    memset(pad + 1, ' ', (size_t)(2 * n));
    if (json_is_object(v) && json_object_size(v) > 0) {
        const char *key;
        json_t *x;
        int first = 1;
        e2w__puts(o, "{");
        json_object_foreach(v, key, x) {
            if (!first) e2w__puts(o, ",");
            first = 0;
            e2w__put(o, pad, (size_t)(1 + 2 * n));
            json_t *k = json_string(key);
            char *ks = k ? json_dumps(k, JSON_ENCODE_ANY) : NULL;
            if (ks == NULL)
                o->failed = 1;
            else
                e2w__puts(o, ks);
            free(ks);
            json_decref(k);
            e2w__puts(o, ": ");
            e2w__emit(o, x, depth + 1);
        }
        e2w__put(o, pad, (size_t)(1 + 2 * (n - 1)));
        e2w__puts(o, "}");
    } else if (json_is_array(v) && json_array_size(v) > 0) {
        e2w__puts(o, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) e2w__puts(o, ",");
            e2w__put(o, pad, (size_t)(1 + 2 * n));
            e2w__emit(o, json_array_get(v, i), depth + 1);
        }
        e2w__put(o, pad, (size_t)(1 + 2 * (n - 1)));
        e2w__puts(o, "]");
    } else if (json_is_real(v)) {
        e2w__put_real(o, json_real_value(v));
    } else {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        if (t == NULL)
            o->failed = 1;
        else
            e2w__puts(o, t);
        free(t);
    }
}

/* rope_scaling for a linear RoPE scale g (null when g == 1), in the form
 * asked for; a transformers 5 rope_parameters already in the config gets
 * the same type and factor, its rope_theta kept. The one place that
 * decides how a position scheme's scaling is written. */
static void e2w__set_rope_scaling(json_t *o, double g, int form, const char *type) {
    json_t *rs;
    if (!(g > 1.0))
        rs = json_null();
    else if (form == E2W_ROPE_SCALING_MODERN)
        rs = json_pack("{s:s, s:f}", "rope_type", type, "factor", g);
    else
        rs = json_pack("{s:s, s:f}", "type", type, "factor", g);
    json_object_set_new(o, "rope_scaling", rs);
    json_t *rp = json_object_get(o, "rope_parameters");
    if (json_is_object(rp)) {
        json_object_del(rp, "type");
        json_object_set_new(rp, "rope_type", json_string(g > 1.0 ? type : "default"));
        if (g > 1.0)
            json_object_set_new(rp, "factor", json_real(g));
        else
            json_object_del(rp, "factor");
    }
}

/* Sets key to v unless the config already has it (v is consumed). */
static void e2w__set_default(json_t *o, const char *key, json_t *v) {
    if (json_object_get(o, key) == NULL)
        json_object_set_new(o, key, v);
    else
        json_decref(v);
}

int e2w_hf_config_write(const char *dir, const E2__V1__LlamaConfig *cfg, const e2w_hf_meta *meta,
                        char *err, size_t errlen) {
    char why[E2_ERRLEN];
    if (e2w_llama_config_check(cfg, why, sizeof why) < 0)
        return e2_errf(err, errlen, "%s/config.json: %s", dir, why);
    e2w_hf_meta defaults;
    if (meta == NULL) {
        e2w_hf_meta_init(&defaults);
        meta = &defaults;
    }
    double g = meta->rope_scale;
    if (!(g >= 1.0) || !isfinite(g))
        return e2_errf(err, errlen,
                       "%s/config.json: rope scale g must be >= 1 "
                       "(got %g)",
                       dir, g);
    uint32_t L = cfg->has_max_position_embeddings && cfg->max_position_embeddings
                     ? cfg->max_position_embeddings
                     : 2048;
    double mpe = meta->max_position ? (double)meta->max_position : round(g * L);
    if (mpe > (double)UINT32_MAX)
        return e2_errf(err, errlen,
                       "%s/config.json: max_position_embeddings "
                       "g * L = %.0f does not fit 32 bits",
                       dir, mpe);
    /* The source, read before dir is touched (dir may be its directory). */
    json_t *o = NULL;
    if (meta->source != NULL) {
        struct stat sb;
        char file[4096];
        if (stat(meta->source, &sb) == 0 && S_ISDIR(sb.st_mode))
            snprintf(file, sizeof file, "%s/config.json", meta->source);
        else
            snprintf(file, sizeof file, "%s", meta->source);
        char *text;
        size_t len;
        if (e2_read_file(file, E2W_CONFIG_MAX, &text, &len, err, errlen) < 0) return E2_ERR;
        json_error_t je;
        o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        free(text);
        if (!json_is_object(o)) {
            json_decref(o);
            return e2_errf(err, errlen, "%s: not a JSON object", file);
        }
    } else {
        o = json_object();
    }
    if (e2_mkdir_p(dir, 0755, err, errlen) < 0) {
        json_decref(o);
        return E2_ERR;
    }
    json_object_set_new(o, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(o, "model_type", json_string("llama"));
    json_object_set_new(o, "hidden_size", json_integer(cfg->hidden_size));
    json_object_set_new(o, "intermediate_size", json_integer(cfg->intermediate_size));
    json_object_set_new(o, "num_hidden_layers", json_integer(cfg->num_hidden_layers));
    json_object_set_new(o, "num_attention_heads", json_integer(cfg->num_attention_heads));
    json_object_set_new(o, "num_key_value_heads", json_integer(e2w_llama_kv_heads(cfg)));
    json_object_set_new(o, "vocab_size", json_integer(cfg->vocab_size));
    e2w__set_default(o, "hidden_act", json_string("silu"));
    /* The numbers as the source wrote them: cfg may hold them rounded
     * (the model keeps eps in fp32). */
    e2w__set_default(o, "rms_norm_eps",
                     json_real(cfg->has_rms_norm_eps ? cfg->rms_norm_eps : 1e-5));
    e2w__set_default(o, "rope_theta", json_real(cfg->has_rope_theta ? cfg->rope_theta : 1e4));
    json_object_set_new(o, "max_position_embeddings", json_integer((json_int_t)mpe));
    json_object_set_new(o, "tie_word_embeddings",
                        json_boolean(cfg->has_tie_word_embeddings && cfg->tie_word_embeddings));
    e2w__set_default(o, "attention_bias", json_false());
    e2w__set_default(o, "mlp_bias", json_false());
    if (json_object_get(o, "dtype") == NULL)
        e2w__set_default(o, "torch_dtype",
                         json_string(meta->torch_dtype[0] ? meta->torch_dtype : "float32"));
    if (meta->bos_token_id >= 0)
        e2w__set_default(o, "bos_token_id", json_integer(meta->bos_token_id));
    if (meta->eos_token_id >= 0)
        e2w__set_default(o, "eos_token_id", json_integer(meta->eos_token_id));
    e2w__set_rope_scaling(o, g, meta->rope_scaling_form,
                          meta->rope_type ? meta->rope_type : "linear");
    e2w__set_default(o, "use_cache", json_true());
    e2w__out out = { 0 };
    e2w__emit(&out, o, 0);
    e2w__put(&out, "\n", 1);
    json_decref(o);
    if (out.failed) {
        free(out.buf);
        return e2_errf(err, errlen, "%s/config.json: out of memory", dir);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = e2_write_file_atomic(path, out.buf, out.len, err, errlen);
    free(out.buf);
    return rc;
}
