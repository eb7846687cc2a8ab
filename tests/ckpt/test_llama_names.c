/* test_llama_names.c -- the LlamaForCausalLM tensor table: names, shapes
 * and order for GQA and tied/untied heads, lookup, checkpoint cross-check,
 * and reading q/k/v and gate/up into the stacked weights. */
#include "base.h"
#include "ckpt_test.h"
#include "llama_names.h"

static char err[E2_ERRLEN];

/* C 8, H 2 (D 4), KVH 1, F 12, V 16, 2 layers. */
static void tiny(E2__V1__LlamaConfig *c, int tied) {
    e2__v1__llama_config__init(c);
    c->has_hidden_size = 1, c->hidden_size = 8;
    c->has_num_hidden_layers = 1, c->num_hidden_layers = 2;
    c->has_num_attention_heads = 1, c->num_attention_heads = 2;
    c->has_num_key_value_heads = 1, c->num_key_value_heads = 1;
    c->has_intermediate_size = 1, c->intermediate_size = 12;
    c->has_vocab_size = 1, c->vocab_size = 16;
    c->has_tie_word_embeddings = 1, c->tie_word_embeddings = tied;
}

static int expect(const E2__V1__LlamaConfig *c, size_t i, const char *name, int ndim, int64_t r,
                  int64_t k) {
    e2w_llama_tensor t;
    e2w_llama_tensor_at(c, i, &t);
    if (strcmp(t.name, name) != 0 || t.ndim != ndim || t.shape[0] != r ||
        (ndim == 2 && t.shape[1] != k) || t.numel != (uint64_t)r * (uint64_t)(ndim == 2 ? k : 1)) {
        fprintf(stderr, "entry %zu: got %s (%d: %lld, %lld), want %s\n", i, t.name, t.ndim,
                (long long)t.shape[0], (long long)t.shape[1], name);
        return 1;
    }
    return 0;
}

static int test_llama_table_untied(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 0);
    CHECK(e2w_llama_config_check(&c, err, sizeof err) == 0);
    CHECK(e2w_llama_tensor_count(&c) == 21);
    CHECK(expect(&c, 0, "model.embed_tokens.weight", 2, 16, 8) == 0);
    CHECK(expect(&c, 1, "model.layers.0.self_attn.q_proj.weight", 2, 8, 8) == 0);
    CHECK(expect(&c, 2, "model.layers.0.self_attn.k_proj.weight", 2, 4, 8) == 0);
    CHECK(expect(&c, 3, "model.layers.0.self_attn.v_proj.weight", 2, 4, 8) == 0);
    CHECK(expect(&c, 4, "model.layers.0.self_attn.o_proj.weight", 2, 8, 8) == 0);
    CHECK(expect(&c, 5, "model.layers.0.mlp.gate_proj.weight", 2, 12, 8) == 0);
    CHECK(expect(&c, 6, "model.layers.0.mlp.up_proj.weight", 2, 12, 8) == 0);
    CHECK(expect(&c, 7, "model.layers.0.mlp.down_proj.weight", 2, 8, 12) == 0);
    CHECK(expect(&c, 8, "model.layers.0.input_layernorm.weight", 1, 8, 0) == 0);
    CHECK(expect(&c, 9, "model.layers.0.post_attention_layernorm.weight", 1, 8, 0) == 0);
    CHECK(expect(&c, 10, "model.layers.1.self_attn.q_proj.weight", 2, 8, 8) == 0);
    CHECK(expect(&c, 19, "model.norm.weight", 1, 8, 0) == 0);
    CHECK(expect(&c, 20, "lm_head.weight", 2, 16, 8) == 0);
    e2w_llama_tensor t;
    e2w_llama_tensor_at(&c, 16, &t);
    CHECK(t.kind == E2W_LT_DOWN && t.layer == 1);
    e2w_llama_tensor_at(&c, 20, &t);
    CHECK(t.kind == E2W_LT_LM_HEAD && t.layer == -1);
    return 0;
}

static int test_llama_table_tied(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 1);
    CHECK(e2w_llama_tensor_count(&c) == 20);
    CHECK(expect(&c, 19, "model.norm.weight", 1, 8, 0) == 0);
    CHECK(e2w_llama_tensor_find(&c, "lm_head.weight", NULL) == E2_NOTFOUND);
    /* KVH unset means H. */
    c.has_num_key_value_heads = 0;
    CHECK(e2w_llama_kv_heads(&c) == 2);
    CHECK(expect(&c, 2, "model.layers.0.self_attn.k_proj.weight", 2, 8, 8) == 0);
    return 0;
}

static int test_llama_find(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 0);
    e2w_llama_tensor t;
    CHECK(e2w_llama_tensor_find(&c, "model.layers.1.mlp.up_proj.weight", &t) == 15);
    CHECK(t.kind == E2W_LT_UP && t.layer == 1 && t.shape[0] == 12);
    CHECK(e2w_llama_tensor_find(&c, "model.layers.2.mlp.up_proj.weight", &t) == E2_NOTFOUND);
    CHECK(e2w_llama_tensor_find(&c, "model.norm.bias", &t) == E2_NOTFOUND);
    return 0;
}

static int test_llama_config_check_errors(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 0);
    c.has_vocab_size = 0;
    CHECK_ERR(e2w_llama_config_check(&c, err, sizeof err), "vocab_size must be set and > 0");
    tiny(&c, 0);
    c.num_attention_heads = 3;
    CHECK_ERR(e2w_llama_config_check(&c, err, sizeof err),
              "num_attention_heads (3) must divide hidden_size (8)");
    tiny(&c, 0);
    c.num_attention_heads = 8; /* D = 1 */
    c.num_key_value_heads = 8;
    CHECK_ERR(e2w_llama_config_check(&c, err, sizeof err), "must be even");
    tiny(&c, 0);
    c.num_key_value_heads = 3;
    CHECK_ERR(e2w_llama_config_check(&c, err, sizeof err), "num_key_value_heads (3) must divide");
    return 0;
}

/* Writes the tiny model's tensors (entry i filled with i * 1000 + k) to dir,
 * plus `extra` when not NULL, minus entry `skip` (-1: none). */
static float g_data[21][256];

static int write_model(const char *dir, const E2__V1__LlamaConfig *c, long skip,
                       const e2w_st_out *extra) {
    size_t n = e2w_llama_tensor_count(c);
    e2w_st_out out[24];
    static e2w_llama_tensor t[24];
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        e2w_llama_tensor_at(c, i, &t[i]);
        for (uint64_t j = 0; j < t[i].numel; j++) g_data[i][j] = (float)(i * 1000 + j);
        if ((long)i == skip) continue;
        out[k++] = (e2w_st_out){
            t[i].name, g_data[i], t[i].ndim, { t[i].shape[0], t[i].shape[1] }, E2W_DT_F32
        };
    }
    if (extra) out[k++] = *extra;
    return e2w_st_write_dir(dir, out, k, 0, NULL, err, sizeof err);
}

static int test_llama_check_and_stacked_reads(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 0);
    char dir[320];
    snprintf(dir, sizeof dir, "%s/ok", ckpt_scratch("lcheck"));
    CHECK_OK(write_model(dir, &c, -1, NULL));
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK_OK(e2w_llama_check_ckpt(st, &c, err, sizeof err));
    /* Layer 1: q rows 0..7, k rows 8..11, v rows 12..15 of a (16, 8) weight. */
    float qkv[16 * 8], gu[24 * 8];
    CHECK_OK(e2w_llama_read_qkv(st, &c, 1, qkv, err, sizeof err));
    CHECK(qkv[0] == 10000.0f && qkv[63] == 10063.0f);   /* entry 10, q */
    CHECK(qkv[64] == 11000.0f && qkv[95] == 11031.0f);  /* entry 11, k */
    CHECK(qkv[96] == 12000.0f && qkv[127] == 12031.0f); /* entry 12, v */
    CHECK_OK(e2w_llama_read_gate_up(st, &c, 0, gu, err, sizeof err));
    CHECK(gu[0] == 5000.0f && gu[95] == 5095.0f && gu[96] == 6000.0f && gu[191] == 6095.0f);
    CHECK_ERR(e2w_llama_read_qkv(st, &c, 2, qkv, err, sizeof err), "layer 2 out of range");
    /* The same checkpoint is not a model with another width. */
    c.intermediate_size = 16;
    CHECK_ERR(e2w_llama_check_ckpt(st, &c, err, sizeof err),
              "tensor model.layers.0.mlp.gate_proj.weight has shape [12, 8], "
              "the config implies [16, 8]");
    e2w_st_close(st);
    return 0;
}

static int test_llama_check_rejects(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 0);
    char dir[320];
    e2w_st *st;
    snprintf(dir, sizeof dir, "%s/missing", ckpt_scratch("lrej"));
    CHECK_OK(write_model(dir, &c, 19, NULL));
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK_ERR(e2w_llama_check_ckpt(st, &c, err, sizeof err), "missing tensor model.norm.weight");
    e2w_st_close(st);
    static float bias[8];
    e2w_st_out extra = { "model.layers.0.self_attn.q_proj.bias", bias, 1, { 8 }, E2W_DT_F32 };
    snprintf(dir, sizeof dir, "%s/extra", ckpt_scratch("lrej"));
    CHECK_OK(write_model(dir, &c, -1, &extra));
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK_ERR(e2w_llama_check_ckpt(st, &c, err, sizeof err),
              "unexpected tensor model.layers.0.self_attn.q_proj.bias");
    e2w_st_close(st);
    /* Ignored: inv_freq buffers. */
    extra.name = "model.layers.0.self_attn.rotary_emb.inv_freq";
    extra.shape[0] = 2;
    snprintf(dir, sizeof dir, "%s/invfreq", ckpt_scratch("lrej"));
    CHECK_OK(write_model(dir, &c, -1, &extra));
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK_OK(e2w_llama_check_ckpt(st, &c, err, sizeof err));
    e2w_st_close(st);
    return 0;
}

/* A tied config over a file that also holds lm_head.weight: a copy of the
 * embedding (as some exporters write it, here in another dtype) is
 * accepted; a different head is an error naming both tensors. */
static int test_llama_tied_head_conflict(void) {
    E2__V1__LlamaConfig c;
    tiny(&c, 0);
    char dir[320];
    e2w_st *st;
    snprintf(dir, sizeof dir, "%s/differs", ckpt_scratch("ltie"));
    CHECK_OK(write_model(dir, &c, -1, NULL)); /* lm_head = 20000 + j, embed = j */
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    c.tie_word_embeddings = 1;
    CHECK_ERR(e2w_llama_check_ckpt(st, &c, err, sizeof err),
              "tie_word_embeddings is true but lm_head.weight differs from "
              "model.embed_tokens.weight");
    CHECK(strstr(err, "model.safetensors") != NULL);
    e2w_st_close(st);
    /* The head as a bf16 copy of the (bf16-exact) embedding. */
    e2w_st_out head = { "lm_head.weight", g_data[0], 2, { 16, 8 }, E2W_DT_BF16 };
    snprintf(dir, sizeof dir, "%s/copy", ckpt_scratch("ltie"));
    CHECK_OK(write_model(dir, &c, -1, &head)); /* tied: the table has no head */
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK_OK(e2w_llama_check_ckpt(st, &c, err, sizeof err));
    e2w_st_close(st);
    return 0;
}

static const ckpt_case cases[] = {
    { "llama_table_untied", test_llama_table_untied },
    { "llama_table_tied", test_llama_table_tied },
    { "llama_find", test_llama_find },
    { "llama_config_check_errors", test_llama_config_check_errors },
    { "llama_check_and_stacked_reads", test_llama_check_and_stacked_reads },
    { "llama_check_rejects", test_llama_check_rejects },
    { "llama_tied_head_conflict", test_llama_tied_head_conflict },
};

int main(int argc, char **argv) {
    return ckpt_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
