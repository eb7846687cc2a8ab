/* test_model.c -- the whole model against itself: analytic gradients vs
 * central finite differences (with E² scale g > 1, offset t > 0 and attention
 * sinks), recomputation bit-identical to stored activations, and the Hugging
 * Face slice view covering every parameter exactly once.
 *
 * Run as `test_model CASE` (one ctest entry per case). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2/v1/job.pb-c.h"
#include "model.h"

#include "../expect.h"

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) {
    return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

enum { B = 2, T = 9 };

static e2w_model_config tiny(int tied) {
    e2w_model_config c = { .C = 16,
                           .n_layer = 2,
                           .H = 4,
                           .KVH = 2,
                           .D = 4,
                           .F = 24,
                           .V = 11,
                           .max_pos = 64,
                           .eps = 1e-5f,
                           .theta = 10000.0f,
                           .tied = tied };
    return c;
}

/* A model whose weights are large enough (uniform +-0.5, norms around 1)
 * that every gradient is well above fp32 finite-difference noise. */
static void make_model(e2w_model *m, int tied) {
    char err[256];
    e2w_model_config c = tiny(tied);
    if (e2w_model_create(m, k_get("cpu"), &c, err, sizeof err) < 0 ||
        e2w_model_alloc_train(m, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    float *w = malloc(m->n_params * sizeof(float));
    uint64_t s = 7;
    for (size_t i = 0; i < m->n_params; i++) w[i] = (float)(rng_unif(&s) - 0.5);
    const int norms[3] = { E2W_P_LN1, E2W_P_LN2, E2W_P_LNF };
    for (int n = 0; n < 3; n++)
        for (size_t i = 0; i < m->psize[norms[n]]; i++)
            w[m->poff[norms[n]] + i] = (float)(0.8 + 0.4 * rng_unif(&s));
    e2w_model_upload(m, 0, w, m->n_params);
    free(w);
}

typedef struct {
    int32_t tokens[B * T], targets[B * T];
    float g[B];
    int32_t t[B];
    k_rope rope;
} batch;

static void make_batch(batch *b) {
    uint64_t s = 11;
    for (int i = 0; i < B * T; i++) {
        b->tokens[i] = (int32_t)(rng_next(&s) % 11);
        b->targets[i] = (int32_t)(rng_next(&s) % 11);
    }
    b->targets[3] = -1; /* one ignored row */
    b->g[0] = 2.5f;
    b->g[1] = 7.0f;
    b->t[0] = 5;
    b->t[1] = 13;
    b->rope.theta = 10000.0f;
    b->rope.n_sink = 3;
    b->rope.g = b->g;
    b->rope.t = b->t;
    b->rope.n_chunks = 0; /* no PoSE chunks */
    b->rope.chunks = NULL;
}

static double loss_of(e2w_model *m, e2w_acts *a, batch *b) {
    e2w_acts_set_batch(a, m, b->tokens, b->targets, B, T);
    return e2w_model_forward(m, a, B, T, &b->rope, 1) / (B * T);
}

/* grads_of's path: forward then backward, or e2w_model_step (the fused
 * training micro-batch) when set. */
static int use_step;

static float *grads_of(e2w_model *m, e2w_acts *a, batch *b) {
    m->k->zero(m->grads, m->n_params * m->esz);
    if (use_step) {
        e2w_acts_set_batch(a, m, b->tokens, b->targets, B, T);
        e2w_model_step(m, a, B, T, &b->rope, 1.0f / (B * T), NULL, NULL);
    } else {
        loss_of(m, a, b);
        e2w_model_backward(m, a, B, T, &b->rope, 1.0f / (B * T));
    }
    float *g = malloc(m->n_params * sizeof(float));
    e2w_model_download_grad(m, 0, g, m->n_params);
    return g;
}

/* The model, the batch and training activations for B x T. */
static void make_all(e2w_model *m, e2w_acts *a, batch *b, int tied, int recompute) {
    char err[256];
    make_model(m, tied);
    make_batch(b);
    if (e2w_acts_create(a, m, B, T, 1, recompute, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
}

static void check_fd(int tied, int recompute) {
    e2w_model m;
    e2w_acts a;
    batch b;
    make_all(&m, &a, &b, tied, recompute);
    float *g = grads_of(&m, &a, &b);
    float *w = malloc(m.n_params * sizeof(float));
    e2w_model_download(&m, 0, w, m.n_params);
    uint64_t s = 3;
    const double h = 1e-2;
    int checked = 0;
    for (int p = 0; p < E2W_P_COUNT; p++) {
        for (int r = 0; r < 4 && m.psize[p] > 0; r++) {
            size_t i = m.poff[p] + rng_next(&s) % m.psize[p];
            float w0 = w[i];
            /* (L(w+h) - L(w-h)) / 2h in double from fp32 forwards; the step
             * is exact in fp32 since w0 +- h is re-read below. */
            float wp = w0 + (float)h, wm = w0 - (float)h;
            e2w_model_upload(&m, i, &wp, 1);
            double lp = loss_of(&m, &a, &b);
            e2w_model_upload(&m, i, &wm, 1);
            double lm = loss_of(&m, &a, &b);
            e2w_model_upload(&m, i, &w0, 1);
            double fd = (lp - lm) / ((double)wp - (double)wm);
            EXPECT(fabs(fd - g[i]) <= 2e-4 + 2e-2 * fabs(fd),
                   "tensor %d elem %zu: analytic %.6g vs finite difference %.6g", p, i - m.poff[p],
                   g[i], fd);
            checked++;
        }
    }
    /* Directional derivative along the whole gradient: every parameter at
     * once, so a gradient missing anywhere shows. */
    double gn = 0;
    for (size_t i = 0; i < m.n_params; i++) gn += (double)g[i] * g[i];
    gn = sqrt(gn);
    const double eps = 1e-2;
    float *x = malloc(m.n_params * sizeof(float));
    for (size_t i = 0; i < m.n_params; i++) x[i] = w[i] + (float)(eps * g[i] / gn);
    e2w_model_upload(&m, 0, x, m.n_params);
    double lp = loss_of(&m, &a, &b);
    for (size_t i = 0; i < m.n_params; i++) x[i] = w[i] - (float)(eps * g[i] / gn);
    e2w_model_upload(&m, 0, x, m.n_params);
    double lm = loss_of(&m, &a, &b);
    double dd = (lp - lm) / (2 * eps);
    EXPECT(fabs(dd - gn) <= 2e-2 * gn, "directional derivative %.6g vs |grad| %.6g", dd, gn);
    EXPECT(checked >= 4 * (E2W_P_COUNT - (tied ? 1 : 0)), "too few elements checked (%d)", checked);
    free(x);
    free(w);
    free(g);
    e2w_acts_free(&a, &m);
    e2w_model_free(&m);
}

static void test_grad_fd(void) {
    check_fd(0, 0);
}
static void test_grad_fd_tied(void) {
    check_fd(1, 0);
}
static void test_grad_fd_recompute(void) {
    check_fd(0, 1);
}

static void test_grad_fd_step(void) {
    use_step = 1;
    check_fd(0, 0);
}

/* Recomputation must change memory, never numbers. */
static void test_recompute_bitwise(void) {
    e2w_model m;
    e2w_acts a0, a1;
    char err[256];
    batch b;
    make_model(&m, 0);
    make_batch(&b);
    if (e2w_acts_create(&a0, &m, B, T, 1, 0, err, sizeof err) < 0 ||
        e2w_acts_create(&a1, &m, B, T, 1, 1, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    EXPECT(a1.bytes < a0.bytes, "recompute should use less memory (%zu vs %zu)", a1.bytes,
           a0.bytes);
    float *g0 = grads_of(&m, &a0, &b);
    float *g1 = grads_of(&m, &a1, &b);
    EXPECT(memcmp(g0, g1, m.n_params * sizeof(float)) == 0, "gradients differ with recompute");
    free(g0);
    free(g1);
    e2w_acts_free(&a0, &m);
    e2w_acts_free(&a1, &m);
    e2w_model_free(&m);
}

/* What the backward announced: each range's gradient at the moment it was
 * announced, and how often each element was. */
typedef struct {
    e2w_model *m;
    float *at_ready;
    unsigned char *seen;
    int groups;
    size_t first, last; /* offset of the first and last group's first range */
} ready_log;

static void on_ready(void *ud, const e2w_grad_range *r, int nr) {
    ready_log *l = ud;
    EXPECT(nr >= 1 && nr <= 6, "group of %d ranges", nr);
    if (l->groups++ == 0) l->first = r[0].offset;
    l->last = r[0].offset;
    for (int i = 0; i < nr; i++) {
        e2w_model_download_grad(l->m, r[i].offset, l->at_ready + r[i].offset, r[i].n);
        for (size_t j = 0; j < r[i].n; j++) l->seen[r[i].offset + j]++;
    }
}

/* The groups the backward announces partition the gradient buffer, in the
 * documented order (head and final norm first, embeddings last, one group
 * per block), each already final when announced; announcing changes no
 * number. */
static void test_grads_ready(void) {
    for (int tied = 0; tied < 2; tied++) {
        e2w_model m;
        e2w_acts a;
        batch b;
        make_all(&m, &a, &b, tied, 0);
        float *plain = grads_of(&m, &a, &b);
        ready_log l = { &m, calloc(m.n_params, sizeof(float)), calloc(m.n_params, 1), 0, 0, 0 };
        m.k->zero(m.grads, m.n_params * m.esz);
        loss_of(&m, &a, &b);
        e2w_model_backward_notify(&m, &a, B, T, &b.rope, 1.0f / (B * T), on_ready, &l);
        float *g = malloc(m.n_params * sizeof(float));
        e2w_model_download_grad(&m, 0, g, m.n_params);
        EXPECT(memcmp(g, plain, m.n_params * sizeof(float)) == 0, "notify changed the gradients");
        EXPECT(memcmp(g, l.at_ready, m.n_params * sizeof(float)) == 0,
               "a range changed after it was announced (tied=%d)", tied);
        for (size_t j = 0; j < m.n_params; j++)
            if (l.seen[j] != 1) {
                EXPECT(0, "element %zu announced %d times (tied=%d)", j, l.seen[j], tied);
                break;
            }
        EXPECT(l.groups == m.cfg.n_layer + 2, "%d groups for %d layers", l.groups, m.cfg.n_layer);
        EXPECT(l.first == m.poff[E2W_P_LNF] && l.last == m.poff[E2W_P_WTE],
               "order: first group at %zu, last at %zu", l.first, l.last);
        free(g);
        free(plain);
        free(l.at_ready);
        free(l.seen);
        e2w_acts_free(&a, &m);
        e2w_model_free(&m);
    }
}

/* e2w_model_step against forward + backward on a batch of several head
 * chunks (4 x 130 rows: chunks of 256, 256 and 8), tied and untied: the
 * same loss and gradients, and the announced groups still partition the
 * gradient buffer. */
static void test_step_matches(void) {
    enum { B2 = 4, T2 = 130, N2 = B2 * T2 };
    for (int tied = 0; tied < 2; tied++) {
        e2w_model m;
        e2w_acts a;
        char err[256];
        make_model(&m, tied);
        if (e2w_acts_create(&a, &m, B2, T2, 1, 0, err, sizeof err) < 0) {
            fprintf(stderr, "%s\n", err);
            exit(1);
        }
        static int32_t tok[N2], tgt[N2];
        uint64_t s = 21;
        for (int i = 0; i < N2; i++) {
            tok[i] = (int32_t)(rng_next(&s) % 11);
            tgt[i] = i % 37 == 5 ? -1 : (int32_t)(rng_next(&s) % 11);
        }
        float g[B2] = { 1.0f, 2.5f, 4.0f, 7.0f };
        int32_t t[B2] = { 0, 3, 17, 40 };
        k_rope rope = { .theta = 10000.0f, .n_sink = 2, .g = g, .t = t };
        const float dloss = 1.0f / N2;
        e2w_acts_set_batch(&a, &m, tok, tgt, B2, T2);
        m.k->zero(m.grads, m.n_params * m.gesz);
        double l0 = e2w_model_forward(&m, &a, B2, T2, &rope, 1);
        e2w_model_backward(&m, &a, B2, T2, &rope, dloss);
        float *g0 = malloc(m.n_params * sizeof(float)), *g1 = malloc(m.n_params * sizeof(float));
        e2w_model_download_grad(&m, 0, g0, m.n_params);
        ready_log l = { &m, calloc(m.n_params, sizeof(float)), calloc(m.n_params, 1), 0, 0, 0 };
        m.k->zero(m.grads, m.n_params * m.gesz);
        double l1 = e2w_model_step(&m, &a, B2, T2, &rope, dloss, on_ready, &l);
        e2w_model_download_grad(&m, 0, g1, m.n_params);
        EXPECT(fabs(l1 - l0) <= 1e-6 * fabs(l0), "tied=%d: loss %.9g vs %.9g", tied, l1, l0);
        size_t bad = 0, worst = 0;
        for (size_t i = 0; i < m.n_params; i++)
            if (fabsf(g1[i] - g0[i]) > 1e-6f + 1e-5f * fabsf(g0[i])) {
                if (bad++ == 0) worst = i;
            }
        EXPECT(bad == 0, "tied=%d: %zu gradients differ, first at %zu: %g vs %g", tied, bad, worst,
               g1[worst], g0[worst]);
        EXPECT(memcmp(g1, l.at_ready, m.n_params * sizeof(float)) == 0,
               "tied=%d: a range changed after it was announced", tied);
        size_t seen_bad = 0;
        for (size_t j = 0; j < m.n_params; j++) seen_bad += l.seen[j] != 1;
        EXPECT(seen_bad == 0 && l.groups == m.cfg.n_layer + 2,
               "tied=%d: %zu elements not announced exactly once, %d groups", tied, seen_bad,
               l.groups);
        free(g0);
        free(g1);
        free(l.at_ready);
        free(l.seen);
        e2w_acts_free(&a, &m);
        e2w_model_free(&m);
    }
}

/* Each HF tensor is a distinct slice and together they cover the buffer. */
static void test_hf_view_covers_params(void) {
    for (int tied = 0; tied < 2; tied++) {
        e2w_model m;
        char err[256];
        e2w_model_config c = tiny(tied);
        if (e2w_model_create(&m, k_get("cpu"), &c, err, sizeof err) < 0) exit(1);
        unsigned char *seen = calloc(m.n_params, 1);
        int n = e2w_model_hf_count(&m);
        for (int i = 0; i < n; i++) {
            e2w_model_hf_tensor t;
            e2w_model_hf_tensor_at(&m, i, &t);
            size_t want = (size_t)t.shape[0] * (size_t)(t.ndim == 2 ? t.shape[1] : 1);
            EXPECT(t.numel == want, "%s: numel %zu vs shape %zu", t.name, t.numel, want);
            for (size_t j = 0; j < t.numel; j++) seen[t.offset + j]++;
            EXPECT(strncmp(t.name, "model.", 6) == 0 || strcmp(t.name, "lm_head.weight") == 0,
                   "unexpected name %s", t.name);
        }
        for (size_t j = 0; j < m.n_params; j++)
            if (seen[j] != 1) {
                EXPECT(0, "element %zu covered %d times (tied=%d)", j, seen[j], tied);
                break;
            }
        EXPECT(n == 2 + 9 * 2 + !tied, "tensor count %d", n);
        free(seen);
        e2w_model_free(&m);
    }
}

/* The seeded init is a pure function of the seed, with norms at 1 and the
 * residual projections at the smaller scale. */
static void test_init_seeded(void) {
    e2w_model m;
    char err[256];
    e2w_model_config c = tiny(0);
    c.C = 64;
    c.H = 4;
    c.KVH = 2;
    c.D = 16;
    c.F = 128;
    c.V = 97;
    if (e2w_model_create(&m, k_get("cpu"), &c, err, sizeof err) < 0) exit(1);
    float *w0 = malloc(m.n_params * sizeof(float)), *w1 = malloc(m.n_params * sizeof(float));
    e2w_model_init(&m, 42);
    e2w_model_download(&m, 0, w0, m.n_params);
    e2w_model_init(&m, 42);
    e2w_model_download(&m, 0, w1, m.n_params);
    EXPECT(memcmp(w0, w1, m.n_params * sizeof(float)) == 0, "init is not a function of the seed");
    e2w_model_init(&m, 43);
    e2w_model_download(&m, 0, w1, m.n_params);
    EXPECT(memcmp(w0, w1, m.n_params * sizeof(float)) != 0, "different seeds give the same init");
    EXPECT(w0[m.poff[E2W_P_LN1]] == 1.0f && w0[m.poff[E2W_P_LNF] + 3] == 1.0f, "norms not 1");
    double s2 = 0, d2 = 0;
    for (size_t i = 0; i < m.psize[E2W_P_QKV]; i++)
        s2 += (double)w0[m.poff[E2W_P_QKV] + i] * w0[m.poff[E2W_P_QKV] + i];
    for (size_t i = 0; i < m.psize[E2W_P_DOWN]; i++)
        d2 += (double)w0[m.poff[E2W_P_DOWN] + i] * w0[m.poff[E2W_P_DOWN] + i];
    double sd = sqrt(s2 / m.psize[E2W_P_QKV]), dd = sqrt(d2 / m.psize[E2W_P_DOWN]);
    EXPECT(fabs(sd - 0.02) < 0.002, "qkv std %.4f, want 0.02", sd);
    EXPECT(fabs(dd - 0.01) < 0.001, "down std %.4f, want 0.02/sqrt(4)", dd);
    free(w0);
    free(w1);
    e2w_model_free(&m);
}

static void test_config_errors(void) {
    e2w_model_config c;
    char err[256] = "";
    E2__V1__LlamaConfig p = E2__V1__LLAMA_CONFIG__INIT;
    EXPECT(e2w_model_config_from_proto(&c, &p, err, sizeof err) < 0, "empty config accepted");
    EXPECT(strstr(err, "hidden_size") != NULL, "error does not name the field: %s", err);
    p.has_hidden_size = 1;
    p.hidden_size = 30;
    p.has_num_hidden_layers = 1;
    p.num_hidden_layers = 1;
    p.has_num_attention_heads = 1;
    p.num_attention_heads = 4;
    p.has_intermediate_size = 1;
    p.intermediate_size = 8;
    p.has_vocab_size = 1;
    p.vocab_size = 8;
    p.has_max_position_embeddings = 1;
    p.max_position_embeddings = 8;
    EXPECT(e2w_model_config_from_proto(&c, &p, err, sizeof err) < 0, "C %% H != 0 accepted");
    EXPECT(strstr(err, "num_attention_heads") != NULL, "error does not name the field: %s", err);
    p.hidden_size = 32;
    EXPECT(e2w_model_config_from_proto(&c, &p, err, sizeof err) == 0, "valid config refused: %s",
           err);
    EXPECT(c.KVH == 4 && c.D == 8 && fabsf(c.eps - 1e-5f) < 1e-12f && c.theta == 10000.0f,
           "defaults not applied");
}

/* import -> export -> import is the identity, for one file and for shards;
 * a bf16 export reads back as the bf16 rounding of every weight. */
static void test_hf_roundtrip(void) {
    char root[256], one[300], many[300], bf[300], err[512];
    snprintf(root, sizeof root, "%s/e2-model-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(root) == NULL) exit(1);
    snprintf(one, sizeof one, "%s/one", root);
    snprintf(many, sizeof many, "%s/many", root);
    snprintf(bf, sizeof bf, "%s/bf16", root);
    for (int tied = 0; tied < 2; tied++) {
        e2w_model a, b;
        e2w_model_config c = tiny(tied);
        if (e2w_model_create(&a, k_get("cpu"), &c, err, sizeof err) < 0 ||
            e2w_model_create(&b, k_get("cpu"), &c, err, sizeof err) < 0)
            exit(1);
        e2w_model_init(&a, 9);
        float *wa = malloc(a.n_params * sizeof(float)), *wb = malloc(a.n_params * sizeof(float));
        e2w_model_download(&a, 0, wa, a.n_params);
        EXPECT(e2w_model_save_hf(&a, one, 0, 0, err, sizeof err) == 0, "save: %s", err);
        EXPECT(e2w_model_load_hf(&b, one, err, sizeof err) == 0, "load: %s", err);
        e2w_model_download(&b, 0, wb, b.n_params);
        EXPECT(memcmp(wa, wb, a.n_params * sizeof(float)) == 0,
               "single file round trip differs (tied=%d)", tied);
        /* Shards of at most 2 KiB: many files, same weights. */
        memset(wb, 0, a.n_params * sizeof(float));
        e2w_model_upload(&b, 0, wb, b.n_params);
        EXPECT(e2w_model_save_hf(&a, many, 0, 2048, err, sizeof err) == 0, "save sharded: %s", err);
        char idx[400];
        struct stat st;
        snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", many);
        EXPECT(stat(idx, &st) == 0, "no shard index written");
        EXPECT(e2w_model_load_hf(&b, many, err, sizeof err) == 0, "load sharded: %s", err);
        e2w_model_download(&b, 0, wb, b.n_params);
        EXPECT(memcmp(wa, wb, a.n_params * sizeof(float)) == 0,
               "sharded round trip differs (tied=%d)", tied);
        /* Export of the re-imported model, imported again: still identical. */
        EXPECT(e2w_model_save_hf(&b, one, 0, 0, err, sizeof err) == 0, "re-save: %s", err);
        EXPECT(e2w_model_load_hf(&a, one, err, sizeof err) == 0, "re-load: %s", err);
        e2w_model_download(&a, 0, wa, a.n_params);
        EXPECT(memcmp(wa, wb, a.n_params * sizeof(float)) == 0, "second round trip differs");
        /* bf16: every weight within half a bf16 ulp (2^-8 relative). */
        EXPECT(e2w_model_save_hf(&a, bf, 1, 0, err, sizeof err) == 0, "save bf16: %s", err);
        EXPECT(e2w_model_load_hf(&b, bf, err, sizeof err) == 0, "load bf16: %s", err);
        e2w_model_download(&b, 0, wb, b.n_params);
        size_t bad = 0, same = 0;
        for (size_t i = 0; i < a.n_params; i++) {
            if (fabsf(wb[i] - wa[i]) > fabsf(wa[i]) * (1.0f / 256.0f)) bad++;
            if (wb[i] == wa[i]) same++;
        }
        EXPECT(bad == 0, "%zu weights off by more than a bf16 rounding", bad);
        EXPECT(same < a.n_params, "bf16 export stored fp32 values");
        /* A checkpoint of another shape is refused, naming a tensor. */
        e2w_model_config c2 = c;
        c2.F = 32;
        e2w_model d;
        if (e2w_model_create(&d, k_get("cpu"), &c2, err, sizeof err) < 0) exit(1);
        err[0] = '\0';
        EXPECT(e2w_model_load_hf(&d, one, err, sizeof err) < 0, "mismatched checkpoint accepted");
        EXPECT(strstr(err, "proj") != NULL, "error does not name the tensor: %s", err);
        e2w_model_free(&d);
        free(wa);
        free(wb);
        e2w_model_free(&a);
        e2w_model_free(&b);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
}

/* Forward-only acts compute the head in chunks of rows: the same losses
 * and last-row logits as the training acts, in less memory. */
static void test_forward_only_chunked(void) {
    e2w_model m;
    e2w_acts full, fwd;
    char err[256];
    make_model(&m, 0);
    const int T2 = 2 * E2W_LOGIT_CHUNK + 37;
    if (e2w_acts_create(&full, &m, 1, T2, 1, 0, err, sizeof err) < 0 ||
        e2w_acts_create(&fwd, &m, 1, T2, 0, 0, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    EXPECT(fwd.bytes < full.bytes / 2, "forward-only acts %zu vs %zu bytes", fwd.bytes, full.bytes);
    int32_t *tok = malloc((size_t)T2 * sizeof(int32_t)),
            *tgt = malloc((size_t)T2 * sizeof(int32_t));
    uint64_t s = 5;
    for (int i = 0; i < T2; i++) {
        tok[i] = (int32_t)(rng_next(&s) % 11);
        tgt[i] = (int32_t)(rng_next(&s) % 11);
    }
    float g = 3.0f;
    int32_t t0 = 0;
    k_rope rope = { .theta = 10000.0f, .n_sink = 0, .g = &g, .t = &t0 };
    e2w_acts_set_batch(&full, &m, tok, tgt, 1, T2);
    e2w_acts_set_batch(&fwd, &m, tok, tgt, 1, T2);
    double l0 = e2w_model_forward(&m, &full, 1, T2, &rope, 1);
    double l1 = e2w_model_forward(&m, &fwd, 1, T2, &rope, 1);
    EXPECT(fabs(l0 - l1) <= 1e-5 * fabs(l0), "loss %.9g (full) vs %.9g (chunked)", l0, l1);
    float a[11], b[11];
    e2w_model_forward(&m, &fwd, 1, T2, &rope, 0);
    EXPECT(fwd.logits_row0 == 2 * E2W_LOGIT_CHUNK, "last chunk starts at %d", fwd.logits_row0);
    m.k->download(a, (char *)full.logits + (size_t)(T2 - 1) * 11 * m.esz, 11);
    m.k->download(b, (char *)fwd.logits + (size_t)(T2 - 1 - fwd.logits_row0) * 11 * m.esz, 11);
    for (int v = 0; v < 11; v++)
        EXPECT(fabsf(a[v] - b[v]) <= 1e-4f * (1.0f + fabsf(a[v])), "last-row logit %d: %g vs %g", v,
               a[v], b[v]);
    free(tok);
    free(tgt);
    e2w_acts_free(&full, &m);
    e2w_acts_free(&fwd, &m);
    e2w_model_free(&m);
}

/* ---- double-precision reference of the whole model ----
 * Written from model.h's equations and e2-method.md's RoPE (pos = m/g for
 * sinks, (m+t)/g after them, rotate_half pairs), independently of the
 * kernels: its loss is the truth for the fp32 model, and its finite
 * differences (in double, step 1e-6) hold the analytic gradients to a tight
 * tolerance. Loss = sum of token losses / (B*T), targets of -1 ignored. */
static void ref_rmsnorm(double *out, const double *x, const double *w, int C, double eps) {
    double ss = 0;
    for (int i = 0; i < C; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / C + eps);
    for (int i = 0; i < C; i++) out[i] = x[i] * r * w[i];
}

static void ref_linear(double *out, const double *x, const double *W, int C, int OC) {
    for (int o = 0; o < OC; o++) {
        double a = 0;
        for (int i = 0; i < C; i++) a += x[i] * W[(size_t)o * C + i];
        out[o] = a;
    }
}

static double ref_loss(const e2w_model *m, const double *w, const batch *b) {
    const e2w_model_config *c = &m->cfg;
    int C = c->C, H = c->H, KVH = c->KVH, D = c->D, F = c->F, V = c->V, L = c->n_layer;
    int QKV = (H + 2 * KVH) * D, N = B * T;
    double *x = calloc((size_t)N * C, sizeof(double)), *ln = calloc((size_t)C, sizeof(double));
    double *qkv = calloc((size_t)N * QKV, sizeof(double)),
           *att = calloc((size_t)N * H * D, sizeof(double));
    double *tmp = calloc((size_t)(2 * F + V + C), sizeof(double)),
           *p = calloc((size_t)T, sizeof(double));
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++)
            x[(size_t)n * C + i] = w[m->poff[E2W_P_WTE] + (size_t)b->tokens[n] * C + i];
    for (int l = 0; l < L; l++) {
        const double *ln1 = w + m->poff[E2W_P_LN1] + (size_t)l * C,
                     *ln2 = w + m->poff[E2W_P_LN2] + (size_t)l * C;
        const double *Wq = w + m->poff[E2W_P_QKV] + (size_t)l * QKV * C;
        const double *Wo = w + m->poff[E2W_P_WO] + (size_t)l * C * H * D;
        const double *Wgu = w + m->poff[E2W_P_GU] + (size_t)l * 2 * F * C;
        const double *Wd = w + m->poff[E2W_P_DOWN] + (size_t)l * C * F;
        for (int n = 0; n < N; n++) {
            ref_rmsnorm(ln, x + (size_t)n * C, ln1, C, c->eps);
            ref_linear(qkv + (size_t)n * QKV, ln, Wq, C, QKV);
            int bb = n / T, mpos = n % T;
            double g = b->g[bb];
            double pos = mpos < b->rope.n_sink ? mpos / g : (mpos + (double)b->t[bb]) / g;
            for (int h = 0; h < H + KVH; h++) {
                double *v = qkv + (size_t)n * QKV + (size_t)h * D;
                for (int j = 0; j < D / 2; j++) {
                    double ang = pos * pow(b->rope.theta, -2.0 * j / D), x1 = v[j],
                           x2 = v[j + D / 2];
                    v[j] = x1 * cos(ang) - x2 * sin(ang);
                    v[j + D / 2] = x2 * cos(ang) + x1 * sin(ang);
                }
            }
        }
        for (int bb = 0; bb < B; bb++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    const double *q = qkv + ((size_t)bb * T + t) * QKV + (size_t)h * D;
                    int kh = h / (H / KVH);
                    double mx = -1e300, z = 0;
                    for (int u = 0; u <= t; u++) {
                        const double *k = qkv + ((size_t)bb * T + u) * QKV + (size_t)(H + kh) * D;
                        double d = 0;
                        for (int j = 0; j < D; j++) d += q[j] * k[j];
                        p[u] = d / sqrt((double)D);
                        if (p[u] > mx) mx = p[u];
                    }
                    for (int u = 0; u <= t; u++) z += (p[u] = exp(p[u] - mx));
                    double *o = att + ((size_t)bb * T + t) * H * D + (size_t)h * D;
                    for (int j = 0; j < D; j++) o[j] = 0;
                    for (int u = 0; u <= t; u++) {
                        const double *v =
                            qkv + ((size_t)bb * T + u) * QKV + (size_t)(H + KVH + kh) * D;
                        for (int j = 0; j < D; j++) o[j] += p[u] / z * v[j];
                    }
                }
        for (int n = 0; n < N; n++) {
            double *xn = x + (size_t)n * C;
            ref_linear(tmp, att + (size_t)n * H * D, Wo, H * D, C);
            for (int i = 0; i < C; i++) xn[i] += tmp[i];
            ref_rmsnorm(ln, xn, ln2, C, c->eps);
            ref_linear(tmp, ln, Wgu, C, 2 * F);
            for (int i = 0; i < F; i++) tmp[2 * F + i] = tmp[i] / (1.0 + exp(-tmp[i])) * tmp[F + i];
            ref_linear(tmp, tmp + 2 * F, Wd, F, C);
            for (int i = 0; i < C; i++) xn[i] += tmp[i];
        }
    }
    const double *head = w + (c->tied ? m->poff[E2W_P_WTE] : m->poff[E2W_P_HEAD]);
    double sum = 0;
    for (int n = 0; n < N; n++) {
        if (b->targets[n] < 0) continue;
        ref_rmsnorm(ln, x + (size_t)n * C, w + m->poff[E2W_P_LNF], C, c->eps);
        ref_linear(tmp, ln, head, C, V);
        double mx = -1e300, z = 0;
        for (int v = 0; v < V; v++) mx = tmp[v] > mx ? tmp[v] : mx;
        for (int v = 0; v < V; v++) z += exp(tmp[v] - mx);
        sum += mx + log(z) - tmp[b->targets[n]];
    }
    free(x);
    free(ln);
    free(qkv);
    free(att);
    free(tmp);
    free(p);
    return sum / N;
}

/* fp32 model vs the double reference: loss, and analytic gradients vs the
 * reference's central differences on four elements of every tensor. */
static void check_vs_double(int tied) {
    e2w_model m;
    e2w_acts a;
    char err[256];
    batch b;
    make_model(&m, tied);
    make_batch(&b);
    if (e2w_acts_create(&a, &m, B, T, 1, 0, err, sizeof err) < 0) exit(1);
    float *g = grads_of(&m, &a, &b);
    double l32 = loss_of(&m, &a, &b);
    float *wf = malloc(m.n_params * sizeof(float));
    double *w = malloc(m.n_params * sizeof(double));
    e2w_model_download(&m, 0, wf, m.n_params);
    for (size_t i = 0; i < m.n_params; i++) w[i] = wf[i];
    double l64 = ref_loss(&m, w, &b);
    EXPECT(fabs(l32 - l64) <= 1e-5 * fabs(l64), "loss fp32 %.9g vs double reference %.9g", l32,
           l64);
    uint64_t s = 17;
    for (int p = 0; p < E2W_P_COUNT; p++) {
        for (int r = 0; r < 4 && m.psize[p] > 0; r++) {
            size_t i = m.poff[p] + rng_next(&s) % m.psize[p];
            double w0 = w[i], h = 1e-6;
            w[i] = w0 + h;
            double lp = ref_loss(&m, w, &b);
            w[i] = w0 - h;
            double lm = ref_loss(&m, w, &b);
            w[i] = w0;
            double fd = (lp - lm) / (2 * h);
            EXPECT(fabs(fd - g[i]) <= 2e-5 + 2e-3 * fabs(fd),
                   "tensor %d elem %zu: analytic %.8g vs double finite difference %.8g", p,
                   i - m.poff[p], g[i], fd);
        }
    }
    free(w);
    free(wf);
    free(g);
    e2w_acts_free(&a, &m);
    e2w_model_free(&m);
}

static void test_vs_double(void) {
    check_vs_double(0);
}
static void test_vs_double_tied(void) {
    check_vs_double(1);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    { "vs_double", test_vs_double },
    { "vs_double_tied", test_vs_double_tied },
    { "forward_only_chunked", test_forward_only_chunked },
    { "hf_roundtrip", test_hf_roundtrip },
    { "grad_fd", test_grad_fd },
    { "grad_fd_tied", test_grad_fd_tied },
    { "grad_fd_recompute", test_grad_fd_recompute },
    { "recompute_bitwise", test_recompute_bitwise },
    { "hf_view_covers_params", test_hf_view_covers_params },
    { "grads_ready", test_grads_ready },
    { "grad_fd_step", test_grad_fd_step },
    { "step_matches", test_step_matches },
    { "init_seeded", test_init_seeded },
    { "config_errors", test_config_errors },
};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        cases[i].fn();
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "test_model: no case named %s\n", argc > 1 ? argv[1] : "?");
        return 2;
    }
    if (failures) fprintf(stderr, "test_model: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
