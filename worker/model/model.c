/* model.c -- the model's memory: config, the parameter, gradient,
 * optimizer and activation allocations (sized and laid out by the layout
 * table, common/layout), initialisation, and the
 * Hugging Face view of the parameter buffer. The passes live in pass.c. */
#include "model.h"
#include "base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2/v1/job.pb-c.h"
#include "llama_names.h"

int e2w_model_config_from_proto(e2w_model_config *c, const E2__V1__LlamaConfig *p, char *err,
                                size_t errlen) {
    memset(c, 0, sizeof *c);
    if (p == NULL) {
        snprintf(err, errlen, "model.config is missing: give model.hf_dir or model.config");
        return E2_ERR;
    }
    c->C = (int)p->hidden_size;
    c->n_layer = (int)p->num_hidden_layers;
    c->H = (int)p->num_attention_heads;
    c->KVH = p->has_num_key_value_heads ? (int)p->num_key_value_heads : c->H;
    c->F = (int)p->intermediate_size;
    c->V = (int)p->vocab_size;
    c->max_pos = (int)p->max_position_embeddings;
    c->eps = p->has_rms_norm_eps ? (float)p->rms_norm_eps : 1e-5f;
    c->theta = p->has_rope_theta ? (float)p->rope_theta : 10000.0f;
    c->tied = p->has_tie_word_embeddings && p->tie_word_embeddings;
    const struct {
        const char *name;
        int v;
    } req[] = {
        { "hidden_size", c->C },
        { "num_hidden_layers", c->n_layer },
        { "num_attention_heads", c->H },
        { "num_key_value_heads", c->KVH },
        { "intermediate_size", c->F },
        { "vocab_size", c->V },
        { "max_position_embeddings", c->max_pos },
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        if (req[i].v <= 0) {
            snprintf(err, errlen, "model.config.%s must be >= 1 (got %d)", req[i].name, req[i].v);
            return E2_ERR;
        }
    }
    if (c->C % c->H != 0) {
        snprintf(err, errlen,
                 "model.config.hidden_size (%d) must be a multiple of num_attention_heads (%d)",
                 c->C, c->H);
        return E2_ERR;
    }
    if (c->H % c->KVH != 0) {
        snprintf(
            err, errlen,
            "model.config.num_attention_heads (%d) must be a multiple of num_key_value_heads (%d)",
            c->H, c->KVH);
        return E2_ERR;
    }
    c->D = c->C / c->H;
    if (c->D % 2 != 0) {
        snprintf(err, errlen,
                 "model.config: head dimension hidden_size/num_attention_heads must be even for "
                 "RoPE (got %d)",
                 c->D);
        return E2_ERR;
    }
    if (!(c->eps > 0.0f) || !(c->theta > 0.0f)) {
        snprintf(err, errlen, "model.config.rms_norm_eps and rope_theta must be > 0");
        return E2_ERR;
    }
    return 0;
}

void e2w_model_config_to_proto(const e2w_model_config *c, E2__V1__LlamaConfig *p) {
    p->has_hidden_size = 1;
    p->hidden_size = (uint32_t)c->C;
    p->has_num_hidden_layers = 1;
    p->num_hidden_layers = (uint32_t)c->n_layer;
    p->has_num_attention_heads = 1;
    p->num_attention_heads = (uint32_t)c->H;
    p->has_num_key_value_heads = 1;
    p->num_key_value_heads = (uint32_t)c->KVH;
    p->has_intermediate_size = 1;
    p->intermediate_size = (uint32_t)c->F;
    p->has_vocab_size = 1;
    p->vocab_size = (uint32_t)c->V;
    p->has_rms_norm_eps = 1;
    p->rms_norm_eps = c->eps;
    p->has_rope_theta = 1;
    p->rope_theta = c->theta;
    p->has_max_position_embeddings = 1;
    p->max_position_embeddings = (uint32_t)c->max_pos;
    p->has_tie_word_embeddings = 1;
    p->tie_word_embeddings = c->tied != 0;
}

/* The model's dims in the layout table's terms. */
static e2_layout_dims model_dims(const e2w_model_config *c) {
    e2_layout_dims d = { c->C, c->n_layer, c->H, c->KVH, c->D, c->F, c->V, c->tied };
    return d;
}

/* Sizes and offsets of the parameter tensors: the layout table's. */
static void model_size_table(e2w_model *m) {
    e2_layout_dims d = model_dims(&m->cfg);
    e2_layout_params p;
    e2_layout_params_fill(&p, &d);
    for (int i = 0; i < E2W_P_COUNT; i++) {
        m->psize[i] = p.numel[i];
        m->poff[i] = p.offset[i];
    }
    m->n_params = p.n_params;
}

int e2w_model_create(e2w_model *m, const k_backend *k, const e2w_model_config *cfg, char *err,
                     size_t errlen) {
    memset(m, 0, sizeof *m);
    m->k = k;
    m->cfg = *cfg;
    m->esz = k->act_dtype == K_F32 ? 4 : 2;
    m->gesz = k->grad_dtype == K_F32 ? 4 : 2;
    model_size_table(m);
    m->params = k->alloc(m->n_params * m->esz);
    if (m->params == NULL) {
        snprintf(err, errlen, "model: cannot allocate %.1f MiB of parameters",
                 (double)(m->n_params * m->esz) / 1048576.0);
        return E2_ENOMEM;
    }
    return 0;
}

int e2w_model_alloc_train(e2w_model *m, char *err, size_t errlen) {
    return e2w_model_alloc_train_shard(m, 0, m->n_params, err, errlen);
}

int e2w_model_alloc_train_shard(e2w_model *m, size_t lo, size_t n, char *err, size_t errlen) {
    const k_backend *k = m->k;
    int need_master = k->act_dtype != K_F32;
    size_t per = e2_layout_optim_floats(need_master); /* m, v (, master) */
    m->grads = k->alloc(m->n_params * m->gesz);
    m->opt = k->alloc((n ? n : 1) * sizeof(float) * per);
    if (m->grads == NULL || m->opt == NULL) {
        snprintf(err, errlen, "model: cannot allocate %.1f MiB of gradients and optimizer state",
                 (double)(m->n_params * m->gesz + n * 4 * per) / 1048576.0);
        return E2_ENOMEM;
    }
    m->opt_lo = lo;
    m->opt_n = n;
    m->m = m->opt;
    m->v = m->opt + n;
    if (need_master) {
        m->master = m->opt + 2 * n;
        float *host = malloc((n ? n : 1) * sizeof(float));
        if (host == NULL) {
            snprintf(err, errlen, "model: out of host memory for the master copy");
            return E2_ERR;
        }
        k->download(host, (const char *)m->params + lo * m->esz, n);
        k->upload_raw(m->master, host, n * sizeof(float));
        free(host);
    }
    return 0;
}

void e2w_model_free(e2w_model *m) {
    if (m->k == NULL) return;
    if (m->params) m->k->free(m->params);
    if (m->grads) m->k->free(m->grads);
    if (m->opt) m->k->free(m->opt);
    memset(m, 0, sizeof *m);
}

/* splitmix64: a tiny seeded generator; one stream for the whole init so the
 * weights are a pure function of (config, seed). */
static uint64_t init_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double init_uniform(uint64_t *s) {
    return ((double)(init_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static void init_normal(float *x, size_t n, double std, uint64_t *s) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = init_uniform(s), u2 = init_uniform(s);
        double r = sqrt(-2.0 * log(u1)) * std;
        x[i] = (float)(r * cos(2.0 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2.0 * M_PI * u2));
    }
}

void e2w_model_init(e2w_model *m, uint64_t seed) {
    float *host = malloc(m->n_params * sizeof(float));
    if (host == NULL) abort();
    uint64_t s = seed;
    double std = 0.02, res_std = 0.02 / sqrt(2.0 * m->cfg.n_layer);
    for (int i = 0; i < E2W_P_COUNT; i++) {
        float *x = host + m->poff[i];
        size_t n = m->psize[i];
        if (i == E2W_P_LN1 || i == E2W_P_LN2 || i == E2W_P_LNF) {
            for (size_t j = 0; j < n; j++) x[j] = 1.0f;
        } else {
            init_normal(x, n, (i == E2W_P_WO || i == E2W_P_DOWN) ? res_std : std, &s);
        }
    }
    e2w_model_upload(m, 0, host, m->n_params);
    free(host);
}

size_t e2w_model_matmul_params(const e2w_model *m) {
    return m->psize[E2W_P_QKV] + m->psize[E2W_P_WO] + m->psize[E2W_P_GU] + m->psize[E2W_P_DOWN] +
           (size_t)m->cfg.V * (size_t)m->cfg.C;
}

double e2w_model_flops_per_token(const e2w_model *m, int T) {
    const e2w_model_config *c = &m->cfg;
    return 6.0 * (double)e2w_model_matmul_params(m) + 6.0 * c->n_layer * (double)c->H * c->D * T;
}

void e2w_model_upload(e2w_model *m, size_t offset, const float *src, size_t n) {
    m->k->upload((char *)m->params + offset * m->esz, src, n);
    if (m->master == NULL) return;
    size_t lo = offset > m->opt_lo ? offset : m->opt_lo;
    size_t hi = offset + n < m->opt_lo + m->opt_n ? offset + n : m->opt_lo + m->opt_n;
    if (hi > lo)
        m->k->upload_raw(m->master + (lo - m->opt_lo), src + (lo - offset),
                         (hi - lo) * sizeof(float));
}

void e2w_model_download(const e2w_model *m, size_t offset, float *dst, size_t n) {
    m->k->download(dst, (const char *)m->params + offset * m->esz, n);
}

void e2w_model_download_grad(const e2w_model *m, size_t offset, float *dst, size_t n) {
    const char *g = (const char *)m->grads + offset * m->gesz;
    if (m->k->grad_dtype == K_F32)
        m->k->download_raw(dst, g, n * sizeof(float));
    else
        m->k->download(dst, g, n);
}

/* ---- activations ---- */

int e2w_acts_create(e2w_acts *a, const e2w_model *m, int B, int T, int backward, int recompute,
                    char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    e2_layout_dims d = model_dims(&m->cfg);
    e2_layout_acts t;
    e2_layout_acts_fill(&t, &d, B, T, m->esz, backward, recompute);
    a->B = B;
    a->T = T;
    a->backward = backward;
    a->recompute = t.recompute;
    const e2_layout_region *l = t.layer;
    a->ll = (e2w_layer_layout){
        .ln1 = l[E2_LAYOUT_L_LN1].offset,
        .rstd1 = l[E2_LAYOUT_L_RSTD1].offset,
        .qkv = l[E2_LAYOUT_L_QKV].offset,
        .atty = l[E2_LAYOUT_L_ATTY].offset,
        .lse = l[E2_LAYOUT_L_LSE].offset,
        .mid = l[E2_LAYOUT_L_MID].offset,
        .ln2 = l[E2_LAYOUT_L_LN2].offset,
        .rstd2 = l[E2_LAYOUT_L_RSTD2].offset,
        .fch = l[E2_LAYOUT_L_FCH].offset,
        .swi = l[E2_LAYOUT_L_SWI].offset,
        .total = t.layer_bytes,
    };
    a->bytes = t.bytes;
    size_t N = t.N;
    char *p = m->k->alloc(t.bytes);
    a->host_losses = malloc(N * sizeof(float));
    if (p == NULL || a->host_losses == NULL) {
        if (p) m->k->free(p);
        free(a->host_losses);
        a->host_losses = NULL;
        snprintf(err, errlen, "model: cannot allocate %.1f MiB of activations for B=%d T=%d",
                 (double)t.bytes / 1048576.0, B, T);
        return E2_ENOMEM;
    }
    const e2_layout_region *r = t.a;
    a->mem = p;
    a->tokens = (int32_t *)(p + r[E2_LAYOUT_A_TOKENS].offset);
    a->targets = (int32_t *)(p + r[E2_LAYOUT_A_TARGETS].offset);
    a->losses = (float *)(p + r[E2_LAYOUT_A_LOSSES].offset);
    a->res = p + r[E2_LAYOUT_A_RES].offset;
    a->lnf = p + r[E2_LAYOUT_A_LNF].offset;
    a->rstdf = (float *)(p + r[E2_LAYOUT_A_RSTDF].offset);
    a->logits = p + r[E2_LAYOUT_A_LOGITS].offset;
    a->logit_rows = (int)t.logit_rows;
    a->layers = p + r[E2_LAYOUT_A_LAYERS].offset;
    if (backward) {
        a->dres = p + r[E2_LAYOUT_A_DRES].offset;
        a->dln = p + r[E2_LAYOUT_A_DLN].offset;
        a->dqkv = p + r[E2_LAYOUT_A_DQKV].offset;
        a->datty = p + r[E2_LAYOUT_A_DATTY].offset;
        a->dfch = p + r[E2_LAYOUT_A_DFCH].offset;
        a->dswi = p + r[E2_LAYOUT_A_DSWI].offset;
        a->delta = (float *)(p + r[E2_LAYOUT_A_DELTA].offset);
    }
    return 0;
}

void e2w_acts_free(e2w_acts *a, const e2w_model *m) {
    if (a->mem) m->k->free(a->mem);
    free(a->host_losses);
    memset(a, 0, sizeof *a);
}

void e2w_acts_set_batch(e2w_acts *a, const e2w_model *m, const int32_t *tokens,
                        const int32_t *targets, int B, int T) {
    size_t n = (size_t)B * (size_t)T * sizeof(int32_t);
    m->k->upload_raw(a->tokens, tokens, n);
    if (targets) m->k->upload_raw(a->targets, targets, n);
}

/* ---- Hugging Face view ---- */

int e2w_model_hf_count(const e2w_model *m) {
    E2__V1__LlamaConfig p = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config_to_proto(&m->cfg, &p);
    return (int)e2w_llama_tensor_count(&p);
}

/* Element offset of one transformers tensor inside the parameter buffer. */
static size_t hf_offset(const e2w_model *m, const e2w_llama_tensor *lt) {
    const e2w_model_config *c = &m->cfg;
    size_t C = (size_t)c->C, D = (size_t)c->D, F = (size_t)c->F;
    size_t HD = (size_t)c->H * D, KD = (size_t)c->KVH * D;
    size_t l = lt->layer < 0 ? 0 : (size_t)lt->layer;
    size_t qkv0 = m->poff[E2W_P_QKV] + l * (HD + 2 * KD) * C;
    size_t gu0 = m->poff[E2W_P_GU] + l * 2 * F * C;
    switch (lt->kind) {
    case E2W_LT_EMBED: return m->poff[E2W_P_WTE];
    case E2W_LT_Q: return qkv0;
    case E2W_LT_K: return qkv0 + HD * C;
    case E2W_LT_V: return qkv0 + (HD + KD) * C;
    case E2W_LT_O: return m->poff[E2W_P_WO] + l * C * HD;
    case E2W_LT_GATE: return gu0;
    case E2W_LT_UP: return gu0 + F * C;
    case E2W_LT_DOWN: return m->poff[E2W_P_DOWN] + l * C * F;
    case E2W_LT_ATTN_NORM: return m->poff[E2W_P_LN1] + l * C;
    case E2W_LT_MLP_NORM: return m->poff[E2W_P_LN2] + l * C;
    case E2W_LT_NORM: return m->poff[E2W_P_LNF];
    case E2W_LT_LM_HEAD: return m->poff[E2W_P_HEAD];
    }
    return 0;
}

void e2w_model_hf_tensor_at(const e2w_model *m, int i, e2w_model_hf_tensor *t) {
    E2__V1__LlamaConfig p = E2__V1__LLAMA_CONFIG__INIT;
    e2w_llama_tensor lt;
    e2w_model_config_to_proto(&m->cfg, &p);
    e2w_llama_tensor_at(&p, (size_t)i, &lt);
    snprintf(t->name, sizeof t->name, "%s", lt.name);
    t->ndim = lt.ndim;
    t->shape[0] = lt.shape[0];
    t->shape[1] = lt.ndim == 2 ? lt.shape[1] : 0;
    t->numel = (size_t)lt.numel;
    t->offset = hf_offset(m, &lt);
}
