/* plan_config.c -- the few config.json fields a memory plan needs, read
 * without the checkpoint code (plan.h: e2_plan_config_read). Error lines
 * name the file and the field, never the file's content. */
#include "plan.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

/* The worker's reader takes config.json files up to this size too. */
#define PLAN_CONFIG_MAX (16u << 20)

/* A positive integer below 2^32 at key; def when absent (0: required). */
static int plan_u32(const char *file, json_t *root, const char *key, uint32_t def, uint32_t *out,
                    char *err, size_t errlen) {
    json_t *v = json_object_get(root, key);
    if (v == NULL || json_is_null(v)) {
        if (def == 0) return e2_errf(err, errlen, "%s: missing required field %s", file, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 1 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX)
        return e2_errf(err, errlen, "%s: %s must be a positive integer below 2^32", file, key);
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

static int plan_config_json(const char *file, json_t *root, E2__V1__LlamaConfig *c, char *err,
                            size_t errlen) {
    if (!json_is_object(root)) return e2_errf(err, errlen, "%s: not a JSON object", file);
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt) || (strcmp(json_string_value(mt), "llama") != 0 &&
                                strcmp(json_string_value(mt), "mistral") != 0))
        return e2_errf(err, errlen, "%s: model_type must be \"llama\" or \"mistral\"", file);
    if (plan_u32(file, root, "hidden_size", 0, &c->hidden_size, err, errlen) < 0 ||
        plan_u32(file, root, "num_hidden_layers", 0, &c->num_hidden_layers, err, errlen) < 0 ||
        plan_u32(file, root, "num_attention_heads", 0, &c->num_attention_heads, err, errlen) < 0 ||
        plan_u32(file, root, "num_key_value_heads", c->num_attention_heads, &c->num_key_value_heads,
                 err, errlen) < 0 ||
        plan_u32(file, root, "intermediate_size", 0, &c->intermediate_size, err, errlen) < 0 ||
        plan_u32(file, root, "vocab_size", 0, &c->vocab_size, err, errlen) < 0)
        return E2_ERR;
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie != NULL && !json_is_boolean(tie) && !json_is_null(tie))
        return e2_errf(err, errlen, "%s: tie_word_embeddings must be true or false", file);
    c->tie_word_embeddings = json_is_true(tie);
    c->has_hidden_size = c->has_num_hidden_layers = 1;
    c->has_num_attention_heads = c->has_num_key_value_heads = 1;
    c->has_intermediate_size = c->has_vocab_size = 1;
    c->has_tie_word_embeddings = 1;
    return 0;
}

int e2_plan_config_read(const char *path, E2__V1__LlamaConfig *cfg, char *err, size_t errlen) {
    e2__v1__llama_config__init(cfg);
    char file[4096], *text;
    size_t len;
    if (e2_read_config_json(path, PLAN_CONFIG_MAX, file, sizeof file, &text, &len, err, errlen) < 0)
        return E2_ERR;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (root == NULL) /* Line and column only: jansson's text quotes the file. */
        return e2_errf(err, errlen, "%s: not valid JSON (line %d, column %d)", file, je.line,
                       je.column);
    int rc = plan_config_json(file, root, cfg, err, errlen);
    json_decref(root);
    return rc < 0 ? E2_ERR : 0;
}
