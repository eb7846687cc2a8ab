/* test_hf_config.c -- config.json <-> LlamaConfig: round trips with and
 * without RoPE scaling, reading real-looking transformers configs with their
 * defaults, and rejecting what is not the Llama layout. */
#include "ckpt_test.h"
#include "hf_config.h"

#include <jansson.h>
#include <math.h>

static char err[E2_ERRLEN];

static void tiny_config(E2__V1__LlamaConfig *c) {
    e2__v1__llama_config__init(c);
    c->has_hidden_size = 1, c->hidden_size = 64;
    c->has_num_hidden_layers = 1, c->num_hidden_layers = 3;
    c->has_num_attention_heads = 1, c->num_attention_heads = 8;
    c->has_num_key_value_heads = 1, c->num_key_value_heads = 2;
    c->has_intermediate_size = 1, c->intermediate_size = 176;
    c->has_vocab_size = 1, c->vocab_size = 256;
    c->has_rms_norm_eps = 1, c->rms_norm_eps = 1e-5;
    c->has_rope_theta = 1, c->rope_theta = 500000.0;
    c->has_max_position_embeddings = 1, c->max_position_embeddings = 4096;
    c->has_tie_word_embeddings = 1, c->tie_word_embeddings = 1;
}

static int same_config(const E2__V1__LlamaConfig *a, const E2__V1__LlamaConfig *b) {
    CHECK(a->hidden_size == b->hidden_size);
    CHECK(a->num_hidden_layers == b->num_hidden_layers);
    CHECK(a->num_attention_heads == b->num_attention_heads);
    CHECK(a->num_key_value_heads == b->num_key_value_heads);
    CHECK(a->intermediate_size == b->intermediate_size);
    CHECK(a->vocab_size == b->vocab_size);
    CHECK(a->rms_norm_eps == b->rms_norm_eps);
    CHECK(a->rope_theta == b->rope_theta);
    CHECK(a->max_position_embeddings == b->max_position_embeddings);
    CHECK(!a->tie_word_embeddings == !b->tie_word_embeddings);
    return 0;
}

static json_t *load_config(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    return json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
}

static int test_config_roundtrip_plain(void) {
    E2__V1__LlamaConfig c, r;
    tiny_config(&c);
    e2w_hf_meta m, rm;
    e2w_hf_meta_init(&m);
    m.bos_token_id = 1, m.eos_token_id = 2;
    snprintf(m.torch_dtype, sizeof m.torch_dtype, "bfloat16");
    const char *dir = ckpt_scratch("cfg_plain");
    CHECK_OK(e2w_hf_config_write(dir, &c, &m, err, sizeof err));
    CHECK_OK(e2w_hf_config_read(dir, &r, &rm, err, sizeof err));
    CHECK(same_config(&c, &r) == 0);
    CHECK(rm.rope_scale == 1.0 && rm.max_position == 4096);
    CHECK(rm.bos_token_id == 1 && rm.eos_token_id == 2);
    CHECK(strcmp(rm.torch_dtype, "bfloat16") == 0);
    json_t *j = load_config(dir);
    CHECK(j != NULL);
    CHECK(strcmp(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)),
                 "LlamaForCausalLM") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "model_type")), "llama") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "hidden_act")), "silu") == 0);
    CHECK(json_is_null(json_object_get(j, "rope_scaling")));
    json_decref(j);
    return 0;
}

/* g = 4 on L = 4096: rope_scaling {"type": "linear", "factor": 4.0} (the
 * form transformers 4.31 .. 5.x all load), max_position_embeddings 16384;
 * reading gives back L and g. */
static int test_config_roundtrip_scaled(void) {
    E2__V1__LlamaConfig c, r;
    tiny_config(&c);
    e2w_hf_meta m, rm;
    e2w_hf_meta_init(&m);
    m.rope_scale = 4.0;
    const char *dir = ckpt_scratch("cfg_scaled");
    CHECK_OK(e2w_hf_config_write(dir, &c, &m, err, sizeof err));
    json_t *j = load_config(dir);
    CHECK(j != NULL);
    json_t *rs = json_object_get(j, "rope_scaling");
    CHECK(json_object_size(rs) == 2);
    CHECK(strcmp(json_string_value(json_object_get(rs, "type")), "linear") == 0);
    CHECK(json_is_real(json_object_get(rs, "factor"))); /* 4.0, not 4 */
    CHECK(json_real_value(json_object_get(rs, "factor")) == 4.0);
    CHECK(json_integer_value(json_object_get(j, "max_position_embeddings")) == 16384);
    CHECK(strcmp(json_string_value(json_object_get(j, "torch_dtype")), "float32") == 0);
    CHECK(json_object_get(j, "bos_token_id") == NULL);
    json_decref(j);
    CHECK_OK(e2w_hf_config_read(dir, &r, &rm, err, sizeof err));
    CHECK(same_config(&c, &r) == 0);
    CHECK(rm.rope_scale == 4.0 && rm.max_position == 16384);
    return 0;
}

/* Modern form: exactly {"rope_type", "factor"}; an explicit target window. */
static int test_config_modern_rope_scaling(void) {
    E2__V1__LlamaConfig c, r;
    tiny_config(&c);
    e2w_hf_meta m, rm;
    e2w_hf_meta_init(&m);
    m.rope_scale = 2.5;
    m.max_position = 10000;
    m.rope_scaling_form = E2W_ROPE_SCALING_MODERN;
    const char *dir = ckpt_scratch("cfg_modern");
    CHECK_OK(e2w_hf_config_write(dir, &c, &m, err, sizeof err));
    json_t *j = load_config(dir);
    CHECK(j != NULL);
    json_t *rs = json_object_get(j, "rope_scaling");
    CHECK(json_object_size(rs) == 2);
    CHECK(strcmp(json_string_value(json_object_get(rs, "rope_type")), "linear") == 0);
    CHECK(json_number_value(json_object_get(rs, "factor")) == 2.5);
    CHECK(json_integer_value(json_object_get(j, "max_position_embeddings")) == 10000);
    json_decref(j);
    CHECK_OK(e2w_hf_config_read(dir, &r, &rm, err, sizeof err));
    CHECK(rm.rope_scale == 2.5 && rm.max_position == 10000);
    CHECK(r.max_position_embeddings == 4000);
    return 0;
}

static const char *write_text(const char *tag, const char *json) {
    const char *dir = ckpt_scratch(tag);
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (e2_write_file_atomic(path, json, strlen(json), err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return dir;
}

/* meta-llama/Llama-2-7b-hf's config.json, as published. */
static const char *llama2_7b =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"bos_token_id\": 1,"
    " \"eos_token_id\": 2, \"hidden_act\": \"silu\", \"hidden_size\": 4096,"
    " \"initializer_range\": 0.02, \"intermediate_size\": 11008,"
    " \"max_position_embeddings\": 4096, \"model_type\": \"llama\","
    " \"num_attention_heads\": 32, \"num_hidden_layers\": 32,"
    " \"num_key_value_heads\": 32, \"pretraining_tp\": 1,"
    " \"rms_norm_eps\": 1e-05, \"rope_scaling\": null,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"float16\","
    " \"transformers_version\": \"4.31.0.dev0\", \"use_cache\": true,"
    " \"vocab_size\": 32000}";

static int test_config_reads_llama2(void) {
    E2__V1__LlamaConfig c;
    e2w_hf_meta m;
    CHECK_OK(e2w_hf_config_read(write_text("cfg_l2", llama2_7b), &c, &m, err, sizeof err));
    CHECK(c.hidden_size == 4096 && c.num_hidden_layers == 32);
    CHECK(c.num_attention_heads == 32 && c.num_key_value_heads == 32);
    CHECK(c.intermediate_size == 11008 && c.vocab_size == 32000);
    CHECK(c.rms_norm_eps == 1e-5 && c.rope_theta == 10000.0);
    CHECK(c.max_position_embeddings == 4096 && !c.tie_word_embeddings);
    CHECK(m.bos_token_id == 1 && m.eos_token_id == 2 && m.rope_scale == 1.0);
    CHECK(strcmp(m.torch_dtype, "float16") == 0);
    return 0;
}

/* Absent fields take transformers' defaults; eos as a list reads its first
 * element; a LongChat-style PI config gives the original window. */
static int test_config_defaults_and_lists(void) {
    E2__V1__LlamaConfig c;
    e2w_hf_meta m;
    CHECK_OK(e2w_hf_config_read(
        write_text("cfg_def",
                   "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                   " \"num_attention_heads\": 4, \"intermediate_size\": 100,"
                   " \"vocab_size\": 50, \"eos_token_id\": [7, 8],"
                   " \"rope_scaling\": {\"type\": \"linear\", \"factor\": 8.0},"
                   " \"max_position_embeddings\": 32768}"),
        &c, &m, err, sizeof err));
    CHECK(c.num_key_value_heads == 4 && c.rms_norm_eps == 1e-6);
    CHECK(c.rope_theta == 10000.0 && !c.tie_word_embeddings);
    CHECK(c.has_tie_word_embeddings && c.has_rms_norm_eps);
    CHECK(m.eos_token_id == 7 && m.bos_token_id == -1);
    CHECK(m.rope_scale == 8.0 && m.max_position == 32768);
    CHECK(c.max_position_embeddings == 4096);
    CHECK_OK(e2w_hf_config_read(
        write_text("cfg_def2",
                   "{\"model_type\": \"llama\", \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                   " \"num_attention_heads\": 4, \"intermediate_size\": 100,"
                   " \"vocab_size\": 50}"),
        &c, &m, err, sizeof err));
    CHECK(c.max_position_embeddings == 2048);
    return 0;
}

static int test_config_accepts_mistral(void) {
    E2__V1__LlamaConfig c;
    CHECK_OK(e2w_hf_config_read(
        write_text("cfg_mis",
                   "{\"model_type\": \"mistral\", \"architectures\": [\"MistralForCausalLM\"],"
                   " \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                   " \"num_attention_heads\": 4, \"num_key_value_heads\": 2,"
                   " \"intermediate_size\": 100, \"vocab_size\": 50,"
                   " \"max_position_embeddings\": 32768, \"sliding_window\": null,"
                   " \"rope_theta\": 1000000.0}"),
        &c, NULL, err, sizeof err));
    CHECK(c.num_key_value_heads == 2 && c.rope_theta == 1e6);
    return 0;
}

/* A minimal valid config with one key replaced or added. */
static int expect_config_reject(const char *tag, const char *extra, const char *want) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"hidden_size\": 64, \"num_hidden_layers\": 2,"
             " \"num_attention_heads\": 4, \"intermediate_size\": 100,"
             " \"vocab_size\": 50, %s}",
             extra);
    E2__V1__LlamaConfig c;
    CHECK_ERR(e2w_hf_config_read(write_text(tag, json), &c, NULL, err, sizeof err), want);
    CHECK(strstr(err, "config.json") != NULL);
    return 0;
}

/* transformers 5 form: rope_parameters carries theta and scaling. */
static int test_config_reads_rope_parameters(void) {
    E2__V1__LlamaConfig c;
    e2w_hf_meta m;
    CHECK_OK(e2w_hf_config_read(
        write_text("cfg_rp", "{\"model_type\": \"llama\", \"hidden_size\": 64,"
                             " \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                             " \"intermediate_size\": 100, \"vocab_size\": 50,"
                             " \"max_position_embeddings\": 16384, \"rope_parameters\":"
                             " {\"rope_type\": \"linear\", \"rope_theta\": 500000.0,"
                             " \"factor\": 4.0}}"),
        &c, &m, err, sizeof err));
    CHECK(c.rope_theta == 500000.0 && m.rope_scale == 4.0);
    CHECK(c.max_position_embeddings == 4096);
    CHECK(expect_config_reject("rj_rp",
                               "\"model_type\": \"llama\", "
                               "\"rope_parameters\": {\"rope_type\": \"yarn\", "
                               "\"rope_theta\": 10000.0, \"factor\": 4}",
                               "rope_parameters type 'yarn' is not supported") == 0);
    return 0;
}

static int test_config_rejects_other_models(void) {
    CHECK(expect_config_reject("rj_qwen", "\"model_type\": \"qwen2\"",
                               "model_type 'qwen2' is not supported") == 0);
    CHECK(expect_config_reject("rj_nomt", "\"rope_theta\": 1e4", "missing model_type") == 0);
    CHECK(expect_config_reject("rj_act",
                               "\"model_type\": \"llama\", "
                               "\"hidden_act\": \"gelu\"",
                               "hidden_act") == 0);
    CHECK(expect_config_reject("rj_bias",
                               "\"model_type\": \"llama\", "
                               "\"attention_bias\": true",
                               "attention_bias = true is not supported") == 0);
    CHECK(expect_config_reject("rj_hd",
                               "\"model_type\": \"llama\", "
                               "\"head_dim\": 32",
                               "head_dim") == 0);
    CHECK(expect_config_reject("rj_sw",
                               "\"model_type\": \"mistral\", "
                               "\"max_position_embeddings\": 8192, "
                               "\"sliding_window\": 4096",
                               "sliding_window attention is not supported") == 0);
    CHECK(expect_config_reject("rj_sw0",
                               "\"model_type\": \"mistral\", "
                               "\"max_position_embeddings\": 8192",
                               "sliding_window attention is not supported") == 0);
    return 0;
}

static int test_config_rejects_rope_scaling(void) {
    CHECK(expect_config_reject("rj_yarn",
                               "\"model_type\": \"llama\", "
                               "\"rope_scaling\": {\"rope_type\": \"yarn\", "
                               "\"factor\": 4}",
                               "rope_scaling type 'yarn' is not supported") == 0);
    CHECK(expect_config_reject("rj_dyn",
                               "\"model_type\": \"llama\", "
                               "\"rope_scaling\": {\"type\": \"dynamic\", "
                               "\"factor\": 2}",
                               "rope_scaling type 'dynamic' is not supported") == 0);
    CHECK(expect_config_reject("rj_l3",
                               "\"model_type\": \"llama\", "
                               "\"rope_scaling\": {\"rope_type\": \"llama3\", "
                               "\"factor\": 8}",
                               "'llama3'") == 0);
    CHECK(expect_config_reject("rj_fac",
                               "\"model_type\": \"llama\", "
                               "\"rope_scaling\": {\"rope_type\": \"linear\", "
                               "\"factor\": 0.5}",
                               "rope_scaling.factor must be a number >= 1") == 0);
    return 0;
}

static int test_config_rejects_bad_fields(void) {
    CHECK(expect_config_reject("rj_kvh",
                               "\"model_type\": \"llama\", "
                               "\"num_key_value_heads\": 3",
                               "num_key_value_heads (3) must divide "
                               "num_attention_heads (4)") == 0);
    CHECK(expect_config_reject("rj_neg",
                               "\"model_type\": \"llama\", "
                               "\"rms_norm_eps\": -1",
                               "rms_norm_eps must be a positive number") == 0);
    CHECK(expect_config_reject("rj_real",
                               "\"model_type\": \"llama\", "
                               "\"max_position_embeddings\": 4096.5",
                               "max_position_embeddings must be a positive "
                               "integer") == 0);
    E2__V1__LlamaConfig c;
    CHECK_ERR(e2w_hf_config_read(
                  write_text("rj_miss", "{\"model_type\": \"llama\", \"num_hidden_layers\": 2}"),
                  &c, NULL, err, sizeof err),
              "missing required field hidden_size");
    CHECK_ERR(
        e2w_hf_config_read(write_text("rj_json", "{\"model_type\": "), &c, NULL, err, sizeof err),
        "not valid JSON");
    CHECK_ERR(e2w_hf_config_read(ckpt_scratch("rj_none"), &c, NULL, err, sizeof err),
              "No such file");
    return 0;
}

static int test_config_write_rejects_invalid(void) {
    E2__V1__LlamaConfig c;
    tiny_config(&c);
    c.num_attention_heads = 7;
    CHECK_ERR(e2w_hf_config_write(ckpt_scratch("wbad"), &c, NULL, err, sizeof err),
              "num_attention_heads (7) must divide hidden_size (64)");
    tiny_config(&c);
    e2w_hf_meta m;
    e2w_hf_meta_init(&m);
    m.rope_scale = 0.5;
    CHECK_ERR(e2w_hf_config_write(ckpt_scratch("wbad"), &c, &m, err, sizeof err),
              "rope scale g must be >= 1");
    return 0;
}

/* A source config with token ids (eos a list), pad, numbers that fp32
 * would change and fields e2 does not know: written back over it with
 * g = 2, every source field is kept (same JSON value, same text for the
 * numbers) except max_position_embeddings and rope_scaling. */
static const char *source_cfg =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\","
    " \"hidden_size\": 64, \"num_hidden_layers\": 3, \"num_attention_heads\": 8,"
    " \"num_key_value_heads\": 2, \"intermediate_size\": 176, \"vocab_size\": 256,"
    " \"max_position_embeddings\": 4096, \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 100000.0, \"initializer_range\": 0.02,"
    " \"bos_token_id\": 11, \"eos_token_id\": [12, 13], \"pad_token_id\": 14,"
    " \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\","
    " \"attention_dropout\": 0.0, \"pretraining_tp\": 1,"
    " \"transformers_version\": \"4.40.2\", \"rope_scaling\": null,"
    " \"custom_block\": {\"a\": [1, 2.5, \"x\\u00e9\"], \"b\": {}},"
    " \"tiny_real\": 0.30000000000000004}";

static int test_config_keeps_source_fields(void) {
    char src[256]; /* ckpt_scratch's buffer is reused */
    snprintf(src, sizeof src, "%s", write_text("cfg_src", source_cfg));
    E2__V1__LlamaConfig c;
    e2w_hf_meta m;
    CHECK_OK(e2w_hf_config_read(src, &c, &m, err, sizeof err));
    CHECK(m.bos_token_id == 11 && m.eos_token_id == 12);
    /* What the trainer hands back: eps through the model's fp32. */
    c.rms_norm_eps = (double)(float)c.rms_norm_eps;
    m.rope_scale = 2.0;
    m.max_position = 8192;
    m.source = src;
    const char *dir = ckpt_scratch("cfg_keep");
    CHECK_OK(e2w_hf_config_write(dir, &c, &m, err, sizeof err));
    json_t *in = json_loads(source_cfg, 0, NULL), *out = load_config(dir);
    CHECK(in != NULL && out != NULL);
    const char *key;
    json_t *v;
    json_object_foreach(in, key, v) {
        if (strcmp(key, "max_position_embeddings") == 0 || strcmp(key, "rope_scaling") == 0)
            continue;
        if (!json_equal(v, json_object_get(out, key))) {
            fprintf(stderr, "field %s changed\n", key);
            return 1;
        }
    }
    CHECK(json_integer_value(json_object_get(out, "max_position_embeddings")) == 8192);
    json_t *rs = json_object_get(out, "rope_scaling");
    CHECK(json_real_value(json_object_get(rs, "factor")) == 2.0);
    json_decref(in);
    json_decref(out);
    char path[512], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(e2_read_file(path, 1 << 20, &text, &len, err, sizeof err));
    int ok = strstr(text, "\"rms_norm_eps\": 1e-05,") != NULL &&
             strstr(text, "\"rope_theta\": 100000.0,") != NULL &&
             strstr(text, "\"initializer_range\": 0.02,") != NULL &&
             strstr(text, "\"tiny_real\": 0.30000000000000004") != NULL &&
             strstr(text, "\"pad_token_id\": 14,") != NULL;
    if (!ok) fprintf(stderr, "%s", text);
    free(text);
    CHECK(ok);
    /* Written over its own source: reads back the same model. */
    E2__V1__LlamaConfig r;
    e2w_hf_meta rm;
    CHECK_OK(e2w_hf_config_read(dir, &r, &rm, err, sizeof err));
    CHECK(r.max_position_embeddings == 4096 && rm.rope_scale == 2.0);
    CHECK(r.rms_norm_eps == 1e-5 && rm.bos_token_id == 11);
    return 0;
}

/* Without a source, eps and theta print with the fewest digits that read
 * back: 1e-05, not 1.0000000000000001e-05. */
static int test_config_eps_printed_exactly(void) {
    E2__V1__LlamaConfig c;
    tiny_config(&c);
    c.rms_norm_eps = 1e-6;
    const char *dir = ckpt_scratch("cfg_eps");
    CHECK_OK(e2w_hf_config_write(dir, &c, NULL, err, sizeof err));
    char path[512], *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config.json", dir);
    CHECK_OK(e2_read_file(path, 1 << 20, &text, &len, err, sizeof err));
    int ok = strstr(text, "\"rms_norm_eps\": 1e-06,") != NULL &&
             strstr(text, "\"rope_theta\": 500000.0,") != NULL;
    if (!ok) fprintf(stderr, "%s", text);
    free(text);
    CHECK(ok);
    return 0;
}

/* A transformers 5 source (rope_parameters, no top-level rope_theta):
 * rope_parameters gets type linear and the factor, keeps its theta; the
 * top-level rope_theta is added for transformers 4. */
static int test_config_updates_rope_parameters(void) {
    char src[256];
    snprintf(src, sizeof src, "%s",
             write_text("cfg_rp5", "{\"model_type\": \"llama\", \"hidden_size\": 64,"
                                   " \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
                                   " \"intermediate_size\": 100, \"vocab_size\": 50,"
                                   " \"max_position_embeddings\": 1024, \"dtype\": \"float32\","
                                   " \"rope_parameters\": {\"rope_type\": \"default\","
                                   " \"rope_theta\": 500000.0}}"));
    E2__V1__LlamaConfig c;
    e2w_hf_meta m;
    CHECK_OK(e2w_hf_config_read(src, &c, &m, err, sizeof err));
    m.rope_scale = 4.0;
    m.max_position = 4096;
    m.source = src;
    const char *dir = ckpt_scratch("cfg_rp5_out");
    CHECK_OK(e2w_hf_config_write(dir, &c, &m, err, sizeof err));
    json_t *j = load_config(dir);
    CHECK(j != NULL);
    json_t *rp = json_object_get(j, "rope_parameters");
    CHECK(strcmp(json_string_value(json_object_get(rp, "rope_type")), "linear") == 0);
    CHECK(json_real_value(json_object_get(rp, "factor")) == 4.0);
    CHECK(json_real_value(json_object_get(rp, "rope_theta")) == 500000.0);
    CHECK(json_real_value(json_object_get(j, "rope_theta")) == 500000.0);
    CHECK(json_object_get(j, "torch_dtype") == NULL); /* dtype kept instead */
    json_decref(j);
    E2__V1__LlamaConfig r;
    e2w_hf_meta rm;
    CHECK_OK(e2w_hf_config_read(dir, &r, &rm, err, sizeof err));
    CHECK(r.max_position_embeddings == 1024 && rm.rope_scale == 4.0);
    return 0;
}

static const ckpt_case cases[] = {
    { "config_roundtrip_plain", test_config_roundtrip_plain },
    { "config_roundtrip_scaled", test_config_roundtrip_scaled },
    { "config_modern_rope_scaling", test_config_modern_rope_scaling },
    { "config_keeps_source_fields", test_config_keeps_source_fields },
    { "config_eps_printed_exactly", test_config_eps_printed_exactly },
    { "config_updates_rope_parameters", test_config_updates_rope_parameters },
    { "config_reads_llama2", test_config_reads_llama2 },
    { "config_defaults_and_lists", test_config_defaults_and_lists },
    { "config_accepts_mistral", test_config_accepts_mistral },
    { "config_reads_rope_parameters", test_config_reads_rope_parameters },
    { "config_rejects_other_models", test_config_rejects_other_models },
    { "config_rejects_rope_scaling", test_config_rejects_rope_scaling },
    { "config_rejects_bad_fields", test_config_rejects_bad_fields },
    { "config_write_rejects_invalid", test_config_write_rejects_invalid },
};

int main(int argc, char **argv) {
    return ckpt_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
