/* gpu_check.c -- the CUDA backend against the CPU backend, op by op, then a
 * short training run on both, then the figures of tests/gpu/run.sh.
 *
 *   gpu_check list    the op groups, one per line (run.sh runs each group in
 *                     a process of its own: a CUDA fault ends only its group)
 *   gpu_check ops [GROUP...]
 *                     every k.h op (of the groups named; all without) on fresh
 *                     random inputs: act (bf16) outputs within a norm-wise
 *                     relative error of 1e-2 of the CPU's, fp32 outputs (lse,
 *                     rstd, losses, sumsq, AdamW master and moments) within
 *                     1e-5, no NaN; backward ops start from non-zero
 *                     gradients (they accumulate); attention's dqkv is
 *                     compared by its increments, part by part and row by
 *                     row (grad_check.h); the reductions that must be
 *                     reproducible are run twice and compared bit for bit.
 *                     Group "accum": the fp32 parameter gradients keep
 *                     contributions far below bf16's resolution over many
 *                     micro-batches, op by op and for a whole model.
 *   gpu_check train   20 AdamW steps of a small Llama on both backends from
 *                     the same initial weights and batches; the loss curves
 *                     must agree within 2% per step and both must descend.
 *   gpu_check bench [JSON]
 *                     bf16 GEMM rate through cuBLASLt (8192^3 and the ~1B
 *                     model's shapes); attention fwd+bwd TFLOP/s at T = 4096
 *                     and 16384 (32 heads, 8 kv heads, head dim 128);
 *                     training tokens/s, MFU (against the GEMM rate measured
 *                     here) and device memory of a ~1B Llama at R = 4096
 *                     against e2worker plan's prediction; its evaluation
 *                     tokens/s at 16x the window. Figures only, never a
 *                     failure; also written as one JSON object to the file
 *                     JSON when given.
 *
 * Inputs of both backends are identical: random fp32 values are uploaded to
 * the GPU (rounded to bf16) and the rounded values read back are what the
 * CPU gets. Exit status: 0 all checks passed, 1 a check failed, 2 usage or
 * no CUDA device. Device-only: not registered with ctest. With
 * E2_CUDA_SYNC=1 the backend waits after every launch, so a faulting
 * kernel is named by file and line. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>

#include "grad_check.h"
#include "e2/v1/job.pb-c.h"
#include "k.h"
#include "model.h"
#include "plan.h"

#define TOL_BF16 1e-2
#define TOL_F32  1e-5

static const k_backend *C, *G;
static int failures;

/* ---- random inputs (splitmix64) ---- */
static uint64_t rng_state = 0x5eed;

static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static float rng_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(rng_next() >> 40) * (1.0f / 16777216.0f);
}

static void *xmalloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (p == NULL) {
        fprintf(stderr, "gpu_check: out of host memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- a tensor on both backends ----
 * act = 1: act dtype (bf16 on the GPU, fp32 on the CPU); act = 0: fp32 on
 * both. h holds what both backends were given. */
typedef struct {
    size_t n;
    int act;
    float *h;
    void *c, *g;
} dual;

static void *dev_alloc(const k_backend *k, size_t bytes) {
    void *p = k->alloc(bytes);
    if (p == NULL) {
        fprintf(stderr, "gpu_check: %s alloc of %zu bytes failed\n", k->name, bytes);
        exit(2);
    }
    return p;
}

static void dual_set(dual *t, const float *src) {
    if (t->act) {
        G->upload(t->g, src, t->n);
        G->download(t->h, t->g, t->n); /* the bf16-rounded values */
    } else {
        memcpy(t->h, src, t->n * sizeof(float));
        G->upload_raw(t->g, src, t->n * sizeof(float));
    }
    C->upload(t->c, t->h, t->n);
}

static dual dual_new(size_t n, int act, float lo, float hi) {
    dual t = { n, act, xmalloc(n * sizeof(float)), NULL, NULL };
    t.c = dev_alloc(C, n * sizeof(float));
    t.g = dev_alloc(G, n * (act ? 2 : 4));
    float *src = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) src[i] = rng_uniform(lo, hi);
    dual_set(&t, src);
    free(src);
    return t;
}

static void dual_free(dual *t) {
    C->free(t->c);
    G->free(t->g);
    free(t->h);
}

/* Norm-wise relative error ||gpu - cpu|| / ||cpu||; NaN counts as failure. */
static void check_arrays(const char *op, const char *what, const float *gv, const float *cv,
                         size_t n, double tol) {
    double num = 0.0, den = 0.0;
    size_t nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(gv[i]) || isnan(cv[i])) nan++;
        double d = (double)gv[i] - (double)cv[i];
        num += d * d;
        den += (double)cv[i] * (double)cv[i];
    }
    double rel = den > 0.0 ? sqrt(num / den) : sqrt(num);
    int ok = nan == 0 && rel <= tol;
    if (!ok) failures++;
    printf("  %-18s %-8s rel.err %.2e  (tol %.0e)%s  %s\n", op, what, rel, tol, nan ? "  NaN!" : "",
           ok ? "ok" : "FAIL");
}

static void check(const char *op, const char *what, dual *t, double tol) {
    float *gv = xmalloc(t->n * sizeof(float)), *cv = xmalloc(t->n * sizeof(float));
    if (t->act)
        G->download(gv, t->g, t->n);
    else
        G->download_raw(gv, t->g, t->n * sizeof(float));
    C->download(cv, t->c, t->n);
    check_arrays(op, what, gv, cv, t->n, tol);
    free(gv);
    free(cv);
}

/* Bitwise equality of two device buffers of the GPU backend. */
static void check_same_bits(const char *op, const void *a, const void *b, size_t bytes) {
    unsigned char *x = xmalloc(bytes), *y = xmalloc(bytes);
    G->download_raw(x, a, bytes);
    G->download_raw(y, b, bytes);
    int ok = memcmp(x, y, bytes) == 0;
    if (!ok) failures++;
    printf("  %-18s %-8s bitwise repeat  %s\n", op, "det.", ok ? "ok" : "FAIL");
    free(x);
    free(y);
}

static void tokens_new(int32_t **h, int32_t **c, int32_t **g, int n, int V, int ignore_every) {
    *h = xmalloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++)
        (*h)[i] = ignore_every && i % ignore_every == 3 ? -1 : (int32_t)(rng_next() % (uint64_t)V);
    *c = dev_alloc(C, (size_t)n * 4);
    *g = dev_alloc(G, (size_t)n * 4);
    C->upload_raw(*c, *h, (size_t)n * 4);
    G->upload_raw(*g, *h, (size_t)n * 4);
}

static void tokens_free(int32_t *h, int32_t *c, int32_t *g) {
    free(h);
    C->free(c);
    G->free(g);
}

/* ---- op checks ---- */

static void check_matmul(int N, int Cin, int OC, int with_bias) {
    dual inp = dual_new((size_t)N * Cin, 1, -1, 1), w = dual_new((size_t)OC * Cin, 1, -0.2f, 0.2f);
    dual bias = dual_new((size_t)OC, 1, -1, 1), out = dual_new((size_t)N * OC, 1, 0, 0);
    C->matmul_fwd(out.c, inp.c, w.c, with_bias ? bias.c : NULL, N, Cin, OC);
    G->matmul_fwd(out.g, inp.g, w.g, with_bias ? bias.g : NULL, N, Cin, OC);
    check(with_bias ? "matmul_fwd+bias" : "matmul_fwd", "out", &out, TOL_BF16);
    dual dout = dual_new((size_t)N * OC, 1, -1, 1);
    /* parameter gradients are fp32 on both backends (k.h grad_dtype) */
    dual dinp = dual_new((size_t)N * Cin, 1, -1, 1), dw = dual_new((size_t)OC * Cin, 0, -1, 1);
    dual db = dual_new((size_t)OC, 0, -1, 1);
    C->matmul_bwd(dinp.c, dw.c, db.c, dout.c, inp.c, w.c, N, Cin, OC);
    G->matmul_bwd(dinp.g, dw.g, db.g, dout.g, inp.g, w.g, N, Cin, OC);
    check("matmul_bwd", "dinp", &dinp, TOL_BF16);
    check("matmul_bwd", "dweight", &dw, TOL_BF16);
    check("matmul_bwd", "dbias", &db, TOL_BF16);
    dual *all[] = { &inp, &w, &bias, &out, &dout, &dinp, &dw, &db };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

static void check_embed(void) {
    int N = 300, Cc = 96, V = 50;
    int32_t *th, *tc, *tg;
    tokens_new(&th, &tc, &tg, N, V, 0);
    dual wte = dual_new((size_t)V * Cc, 1, -1, 1), out = dual_new((size_t)N * Cc, 1, 0, 0);
    C->embed_fwd(out.c, tc, wte.c, N, Cc);
    G->embed_fwd(out.g, tg, wte.g, N, Cc);
    check("embed_fwd", "out", &out, TOL_BF16);
    dual dout = dual_new((size_t)N * Cc, 1, -1, 1), dwte = dual_new((size_t)V * Cc, 0, -1, 1);
    C->embed_bwd(dwte.c, dout.c, tc, N, Cc);
    G->embed_bwd(dwte.g, dout.g, tg, N, Cc);
    check("embed_bwd", "dwte", &dwte, TOL_BF16);
    void *d2 = dev_alloc(G, (size_t)V * Cc * 4);
    G->embed_bwd(d2, dout.g, tg, N, Cc);
    G->zero(dwte.g, (size_t)V * Cc * 4);
    G->embed_bwd(dwte.g, dout.g, tg, N, Cc);
    check_same_bits("embed_bwd", d2, dwte.g, (size_t)V * Cc * 4);
    G->free(d2);
    tokens_free(th, tc, tg);
    dual *all[] = { &wte, &out, &dout, &dwte };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

static void check_rmsnorm(void) {
    int N = 130, Cc = 320;
    dual inp = dual_new((size_t)N * Cc, 1, -2, 2), w = dual_new((size_t)Cc, 1, 0.5f, 1.5f);
    dual out = dual_new((size_t)N * Cc, 1, 0, 0), rstd = dual_new((size_t)N, 0, 0, 0);
    C->rmsnorm_fwd(out.c, rstd.c, inp.c, w.c, 1e-5f, N, Cc);
    G->rmsnorm_fwd(out.g, rstd.g, inp.g, w.g, 1e-5f, N, Cc);
    check("rmsnorm_fwd", "out", &out, TOL_BF16);
    check("rmsnorm_fwd", "rstd", &rstd, TOL_F32);
    dual dout = dual_new((size_t)N * Cc, 1, -1, 1), dinp = dual_new((size_t)N * Cc, 1, -1, 1);
    dual dw = dual_new((size_t)Cc, 0, -1, 1);
    C->rmsnorm_bwd(dinp.c, dw.c, dout.c, inp.c, w.c, rstd.c, N, Cc);
    G->rmsnorm_bwd(dinp.g, dw.g, dout.g, inp.g, w.g, rstd.g, N, Cc);
    check("rmsnorm_bwd", "dinp", &dinp, TOL_BF16);
    check("rmsnorm_bwd", "dweight", &dw, TOL_BF16);
    void *a = dev_alloc(G, (size_t)Cc * 4), *b = dev_alloc(G, (size_t)Cc * 4);
    void *scr = dev_alloc(G, (size_t)N * Cc * 2);
    G->rmsnorm_bwd(scr, a, dout.g, inp.g, w.g, rstd.g, N, Cc);
    G->rmsnorm_bwd(scr, b, dout.g, inp.g, w.g, rstd.g, N, Cc);
    check_same_bits("rmsnorm_bwd", a, b, (size_t)Cc * 4);
    G->free(a);
    G->free(b);
    G->free(scr);
    dual *all[] = { &inp, &w, &out, &rstd, &dout, &dinp, &dw };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

static void check_rope(void) {
    int B = 3, T = 70, H = 4, KVH = 2, D = 32, ld = (H + 2 * KVH) * D;
    float g[3] = { 1.0f, 2.5f, 16.0f };
    int32_t t[3] = { 0, 137, 60000 };
    k_rope r = { .theta = 10000.0f, .n_sink = 4, .g = g, .t = t };
    dual x = dual_new((size_t)B * T * ld, 1, -1, 1);
    C->rope_fwd(x.c, B, T, H + KVH, D, ld, &r);
    G->rope_fwd(x.g, B, T, H + KVH, D, ld, &r);
    check("rope_fwd", "qkv", &x, TOL_BF16);
    dual dx = dual_new((size_t)B * T * ld, 1, -1, 1);
    C->rope_bwd(dx.c, B, T, H + KVH, D, ld, &r);
    G->rope_bwd(dx.g, B, T, H + KVH, D, ld, &r);
    check("rope_bwd", "dqkv", &dx, TOL_BF16);
    dual_free(&x);
    dual_free(&dx);
    /* PoSE chunk skip biases (k_rope.chunks): 3 chunks per sequence. */
    int32_t ck[3 * 3 * 2] = { 0, 0, 20, 300, 41, 900, 0, 7, 5, 7, 69, 4000, 0, 1, 1, 2, 2, 3 };
    k_rope rc = { .theta = 10000.0f, .n_sink = 0, .g = g, .t = t, .n_chunks = 3, .chunks = ck };
    dual y = dual_new((size_t)B * T * ld, 1, -1, 1);
    C->rope_fwd(y.c, B, T, H + KVH, D, ld, &rc);
    G->rope_fwd(y.g, B, T, H + KVH, D, ld, &rc);
    check("rope_fwd pose chunks", "qkv", &y, TOL_BF16);
    C->rope_bwd(y.c, B, T, H + KVH, D, ld, &rc);
    G->rope_bwd(y.g, B, T, H + KVH, D, ld, &rc);
    check("rope_bwd pose chunks", "qkv", &y, TOL_BF16);
    dual_free(&y);
}

static void check_attn(int B, int T, int H, int KVH, int D) {
    char name[64];
    size_t ld = (size_t)(H + 2 * KVH) * D, nq = (size_t)B * T * ld, no = (size_t)B * T * H * D;
    size_t nl = (size_t)B * H * T;
    dual qkv = dual_new(nq, 1, -1.5f, 1.5f), out = dual_new(no, 1, 0, 0),
         lse = dual_new(nl, 0, 0, 0);
    C->attn_fwd(out.c, lse.c, qkv.c, B, T, H, KVH, D);
    G->attn_fwd(out.g, lse.g, qkv.g, B, T, H, KVH, D);
    snprintf(name, sizeof name, "attn_fwd D=%d T=%d", D, T);
    check(name, "out", &out, TOL_BF16);
    check(name, "lse", &lse, TOL_F32);
    /* The backward reads out and lse: give both backends the GPU's (the CPU
     * computing from its own would test the forward twice). */
    float *o = xmalloc(no * sizeof(float)), *l = xmalloc(nl * sizeof(float));
    G->download(o, out.g, no);
    G->download_raw(l, lse.g, nl * sizeof(float));
    dual_set(&out, o);
    dual_set(&lse, l);
    free(o);
    free(l);
    /* "before" small: the rounding of the accumulated bf16 value is noise in
     * the increment (grad_check.h) */
    dual dout = dual_new(no, 1, -1, 1), dqkv = dual_new(nq, 1, -0.25f, 0.25f);
    dual delta = dual_new(nl, 0, 0, 0);
    C->attn_bwd(dqkv.c, delta.c, dout.c, qkv.c, out.c, lse.c, B, T, H, KVH, D);
    G->attn_bwd(dqkv.g, delta.g, dout.g, qkv.g, out.g, lse.g, B, T, H, KVH, D);
    snprintf(name, sizeof name, "attn_bwd D=%d T=%d", D, T);
    /* By the increments (dqkv.h holds "before"): the attention's own part
     * is only a quarter of the accumulated norm (grad_check.h). */
    float *ga = xmalloc(nq * sizeof(float)), *ca = xmalloc(nq * sizeof(float));
    G->download(ga, dqkv.g, nq);
    C->download(ca, dqkv.c, nq);
    grad_check_result gr = grad_check_qkv(dqkv.h, ga, ca, B, T, H, KVH, D);
    grad_check_print(name, &gr);
    if (!gr.ok) failures++;
    free(ga);
    free(ca);
    void *a = dev_alloc(G, nq * 2), *b = dev_alloc(G, nq * 2);
    G->attn_bwd(a, delta.g, dout.g, qkv.g, out.g, lse.g, B, T, H, KVH, D);
    G->attn_bwd(b, delta.g, dout.g, qkv.g, out.g, lse.g, B, T, H, KVH, D);
    check_same_bits(name, a, b, nq * 2);
    G->free(a);
    G->free(b);
    dual *all[] = { &qkv, &out, &lse, &dout, &dqkv, &delta };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

static void check_swiglu(void) {
    int N = 77, F = 200;
    dual inp = dual_new((size_t)N * 2 * F, 1, -4, 4), out = dual_new((size_t)N * F, 1, 0, 0);
    C->swiglu_fwd(out.c, inp.c, N, F);
    G->swiglu_fwd(out.g, inp.g, N, F);
    check("swiglu_fwd", "out", &out, TOL_BF16);
    dual dout = dual_new((size_t)N * F, 1, -1, 1), dinp = dual_new((size_t)N * 2 * F, 1, -1, 1);
    C->swiglu_bwd(dinp.c, dout.c, inp.c, N, F);
    G->swiglu_bwd(dinp.g, dout.g, inp.g, N, F);
    check("swiglu_bwd", "dinp", &dinp, TOL_BF16);
    dual *all[] = { &inp, &out, &dout, &dinp };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

static void check_residual(void) {
    size_t n = 100003;
    dual a = dual_new(n, 1, -1, 1), b = dual_new(n, 1, -1, 1), out = dual_new(n, 1, 0, 0);
    C->add(out.c, a.c, b.c, n);
    G->add(out.g, a.g, b.g, n);
    check("add", "out", &out, TOL_BF16);
    C->accumulate(a.c, b.c, n);
    G->accumulate(a.g, b.g, n);
    check("accumulate", "dst", &a, TOL_BF16);
    dual_free(&a);
    dual_free(&b);
    dual_free(&out);
}

static void check_xent(int N, int V) {
    int32_t *th, *tc, *tg;
    tokens_new(&th, &tc, &tg, N, V, 5);
    dual logits = dual_new((size_t)N * V, 1, -6, 6), losses = dual_new((size_t)N, 0, 0, 0);
    char name[64];
    snprintf(name, sizeof name, "xent V=%d", V);
    C->xent_fwd(losses.c, logits.c, tc, -1, N, V);
    G->xent_fwd(losses.g, logits.g, tg, -1, N, V);
    check(name, "losses", &losses, TOL_F32);
    C->xent_bwd(logits.c, tc, 0.37f, -1, N, V);
    G->xent_bwd(logits.g, tg, 0.37f, -1, N, V);
    check(name, "dlogits", &logits, TOL_BF16);
    tokens_free(th, tc, tg);
    dual_free(&logits);
    dual_free(&losses);
}

static void check_optimizer(void) {
    size_t n = 1000003;
    dual grad = dual_new(n, 0, -0.1f, 0.1f); /* fp32 gradients (k.h grad_dtype) */
    double sc = C->sumsq(grad.c, n), sg = G->sumsq(grad.g, n), sg2 = G->sumsq(grad.g, n);
    float fc = (float)sc, fg = (float)sg;
    check_arrays("sumsq", "norm^2", &fg, &fc, 1, TOL_F32);
    if (sg != sg2) failures++;
    printf("  %-18s %-8s bitwise repeat  %s\n", "sumsq", "det.", sg == sg2 ? "ok" : "FAIL");
    dual master = dual_new(n, 0, -1, 1), m = dual_new(n, 0, -0.01f, 0.01f);
    dual v = dual_new(n, 0, 0, 1e-4f), param = dual_new(n, 1, 0, 0);
    k_adamw hp = { .lr = 1e-3f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = 0.1f,
                   .step = 7,
                   .grad_scale = 0.5f,
                   .seed = 42 };
    C->adamw(master.c, param.c, grad.c, m.c, v.c, n, &hp);
    G->adamw(master.g, param.g, grad.g, m.g, v.g, n, &hp);
    check("adamw", "master", &master, TOL_F32);
    check("adamw", "m", &m, TOL_F32);
    check("adamw", "v", &v, TOL_F32);
    check("adamw", "param", &param, TOL_BF16);
    /* Stochastic rounding: each bf16 param is one of the two bf16 neighbours
     * of its fp32 master. */
    float *pm = xmalloc(n * sizeof(float)), *pp = xmalloc(n * sizeof(float));
    G->download_raw(pm, master.g, n * sizeof(float));
    G->download(pp, param.g, n);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &pm[i], 4);
        uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
        float flo, fhi;
        memcpy(&flo, &lo, 4);
        memcpy(&fhi, &hi, 4);
        if (pp[i] != flo && pp[i] != fhi) bad++;
    }
    if (bad) failures++;
    printf("  %-18s %-8s %zu of %zu params not a bf16 neighbour of master  %s\n", "adamw",
           "rounding", bad, n, bad ? "FAIL" : "ok");
    free(pm);
    free(pp);
    dual *all[] = { &grad, &master, &m, &v, &param };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

/* ---- training on both backends ---- */

typedef struct trainee {
    const k_backend *k;
    e2w_model m;
    e2w_acts a;
} trainee;

static void trainee_free(trainee *t) {
    e2w_acts_free(&t->a, &t->m);
    e2w_model_free(&t->m);
}

/* A learnable stream: token i+1 = (3 * token i + 1) mod V, random starts. */
static void make_stream(int32_t *tok, int32_t *tgt, int B, int T, int V) {
    for (int b = 0; b < B; b++) {
        int32_t x = (int32_t)(rng_next() % (uint64_t)V);
        for (int i = 0; i < T; i++) {
            tok[b * T + i] = x;
            x = (3 * x + 1) % V;
            tgt[b * T + i] = x;
        }
    }
}

static void trainee_make(trainee *t, const k_backend *k, const e2w_model_config *cfg, int B, int T,
                         int recompute) {
    char err[256];
    t->k = k;
    if (e2w_model_create(&t->m, k, cfg, err, sizeof err) < 0 ||
        e2w_acts_create(&t->a, &t->m, B, T, 1, recompute, err, sizeof err) < 0) {
        fprintf(stderr, "gpu_check: %s: %s\n", k->name, err);
        exit(2);
    }
}

static void trainee_opt(trainee *t) {
    char err[256];
    if (e2w_model_alloc_train(&t->m, err, sizeof err) < 0) {
        fprintf(stderr, "gpu_check: %s: %s\n", t->k->name, err);
        exit(2);
    }
}

/* ---- fp32 gradient accumulation over many micro-batches ----
 * Each gradient starts near 1 (bf16's step there is 2^-7) and receives 64
 * contributions of about 1e-3 each: held in bf16, every one of them would
 * round away. The increments must match the CPU's. */
#define ACCUM_MICRO 64

static void check_increment(const char *op, const char *what, dual *t) {
    float *gv = xmalloc(t->n * sizeof(float)), *cv = xmalloc(t->n * sizeof(float));
    if (t->act)
        G->download(gv, t->g, t->n);
    else
        G->download_raw(gv, t->g, t->n * sizeof(float));
    C->download(cv, t->c, t->n);
    for (size_t i = 0; i < t->n; i++) {
        gv[i] -= t->h[i];
        cv[i] -= t->h[i];
    }
    check_arrays(op, what, gv, cv, t->n, TOL_BF16);
    free(gv);
    free(cv);
}

static void check_accum_ops(void) {
    int N = 32, Cin = 64, OC = 48, V = 20;
    dual inp = dual_new((size_t)N * Cin, 1, -1, 1), w = dual_new((size_t)OC * Cin, 1, -1, 1);
    dual dout = dual_new((size_t)N * OC, 1, -1e-3f / N, 1e-3f / N);
    dual dw = dual_new((size_t)OC * Cin, 0, 0.9f, 1.1f), db = dual_new((size_t)OC, 0, 0.9f, 1.1f);
    dual rin = dual_new((size_t)N * Cin, 1, -1, 1), rw = dual_new((size_t)Cin, 1, 0.5f, 1.5f);
    dual rout = dual_new((size_t)N * Cin, 1, 0, 0), rstd = dual_new((size_t)N, 0, 0, 0);
    dual rdout = dual_new((size_t)N * Cin, 1, -1e-3f / N, 1e-3f / N);
    dual rdw = dual_new((size_t)Cin, 0, 0.9f, 1.1f), scr = dual_new((size_t)N * Cin, 1, 0, 0);
    dual dwte = dual_new((size_t)V * Cin, 0, 0.9f, 1.1f);
    int32_t *th, *tc, *tg;
    tokens_new(&th, &tc, &tg, N, V, 0);
    C->rmsnorm_fwd(rout.c, rstd.c, rin.c, rw.c, 1e-5f, N, Cin);
    G->rmsnorm_fwd(rout.g, rstd.g, rin.g, rw.g, 1e-5f, N, Cin);
    float *r = xmalloc((size_t)N * sizeof(float));
    G->download_raw(r, rstd.g, (size_t)N * sizeof(float));
    dual_set(&rstd, r); /* the same statistics for both */
    free(r);
    for (int mb = 0; mb < ACCUM_MICRO; mb++) {
        const k_backend *ks[2] = { C, G };
        for (int j = 0; j < 2; j++) {
            const k_backend *k = ks[j];
            int gpu = k == G;
            k->matmul_bwd(NULL, gpu ? dw.g : dw.c, gpu ? db.g : db.c, gpu ? dout.g : dout.c,
                          gpu ? inp.g : inp.c, gpu ? w.g : w.c, N, Cin, OC);
            k->rmsnorm_bwd(gpu ? scr.g : scr.c, gpu ? rdw.g : rdw.c, gpu ? rdout.g : rdout.c,
                           gpu ? rin.g : rin.c, gpu ? rw.g : rw.c, gpu ? rstd.g : rstd.c, N, Cin);
            k->embed_bwd(gpu ? dwte.g : dwte.c, gpu ? rdout.g : rdout.c, gpu ? tg : tc, N, Cin);
        }
    }
    check_increment("accum x64 matmul", "dweight", &dw);
    check_increment("accum x64 matmul", "dbias", &db);
    check_increment("accum x64 rmsnorm", "dweight", &rdw);
    check_increment("accum x64 embed", "dwte", &dwte);
    tokens_free(th, tc, tg);
    dual *all[] = { &inp, &w, &dout, &dw, &db, &rin, &rw, &rout, &rstd, &rdout, &rdw, &scr, &dwte };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) dual_free(all[i]);
}

/* A whole model: ACCUM_MICRO micro-batches of one sequence, each weighted
 * 1 / (all tokens), into one gradient; the gradient must match the CPU's
 * (the trainer's gradient accumulation, with E² RoPE and a tied head). */
static void check_accum_model(void) {
    e2w_model_config cfg = { .C = 64,
                             .n_layer = 2,
                             .H = 4,
                             .KVH = 2,
                             .D = 16,
                             .F = 128,
                             .V = 128,
                             .max_pos = 128,
                             .eps = 1e-5f,
                             .theta = 10000.0f,
                             .tied = 1 };
    int B = 1, T = 64;
    trainee tc, tg;
    trainee_make(&tc, C, &cfg, B, T, 0);
    trainee_make(&tg, G, &cfg, B, T, 0);
    e2w_model_init(&tg.m, 11);
    float *w = xmalloc(tg.m.n_params * sizeof(float));
    e2w_model_download(&tg.m, 0, w, tg.m.n_params);
    e2w_model_upload(&tc.m, 0, w, tc.m.n_params);
    free(w);
    trainee_opt(&tc);
    trainee_opt(&tg);
    int32_t *tok = xmalloc((size_t)B * T * 4), *tgt = xmalloc((size_t)B * T * 4);
    float g[1] = { 2.0f };
    int32_t t[1] = { 17 };
    k_rope r = { .theta = cfg.theta, .n_sink = 4, .g = g, .t = t };
    trainee *ts[2] = { &tc, &tg };
    for (int j = 0; j < 2; j++) ts[j]->k->zero(ts[j]->m.grads, ts[j]->m.n_params * ts[j]->m.gesz);
    for (int mb = 0; mb < ACCUM_MICRO; mb++) {
        make_stream(tok, tgt, B, T, cfg.V);
        for (int j = 0; j < 2; j++) {
            e2w_acts_set_batch(&ts[j]->a, &ts[j]->m, tok, tgt, B, T);
            (void)e2w_model_forward(&ts[j]->m, &ts[j]->a, B, T, &r, 1);
            e2w_model_backward(&ts[j]->m, &ts[j]->a, B, T, &r, 1.0f / (float)(B * T * ACCUM_MICRO));
        }
    }
    size_t n = tc.m.n_params;
    float *gc = xmalloc(n * sizeof(float)), *gg = xmalloc(n * sizeof(float));
    e2w_model_download_grad(&tc.m, 0, gc, n);
    e2w_model_download_grad(&tg.m, 0, gg, n);
    /* A whole bf16 forward and backward per micro-batch: looser than one
     * op. The discriminating check of the fp32 accumulation is
     * check_accum_ops (values near 1, increments far below bf16's step). */
    check_arrays("accum x64 model", "grads", gg, gc, n, 5e-2);
    free(gc);
    free(gg);
    free(tok);
    free(tgt);
    trainee_free(&tc);
    trainee_free(&tg);
}

static void group_matmul(void) {
    check_matmul(67, 96, 80, 0);
    check_matmul(64, 256, 192, 1);
    check_matmul(50, 40, 257, 1); /* odd leading dimensions (a 257-token vocabulary) */
}
static void group_attn(void) {
    check_attn(2, 100, 4, 2, 16);
    check_attn(1, 130, 4, 1, 64);
    check_attn(2, 200, 8, 2, 128);
    check_attn(1, 64, 2, 2, 256);
}
static void group_xent(void) {
    check_xent(37, 1000);
    check_xent(9, 32000);
}
static void group_accum(void) {
    check_accum_ops();
    check_accum_model();
}

static const struct {
    const char *name;
    void (*run)(void);
} groups[] = {
    { "matmul", group_matmul },     { "embed", check_embed }, { "rmsnorm", check_rmsnorm },
    { "rope", check_rope },         { "attn", group_attn },   { "swiglu", check_swiglu },
    { "residual", check_residual }, { "xent", group_xent },   { "optimizer", check_optimizer },
    { "accum", group_accum },
};
#define N_GROUPS (int)(sizeof groups / sizeof groups[0])

/* names: the groups to run (all when n == 0). Returns -1 on an unknown name. */
static int run_ops(char **names, int n) {
    for (int i = 0; i < n; i++) {
        int j = 0;
        while (j < N_GROUPS && strcmp(groups[j].name, names[i])) j++;
        if (j == N_GROUPS) {
            fprintf(stderr, "gpu_check: unknown op group %s (gpu_check list)\n", names[i]);
            return -1;
        }
    }
    printf("== ops: CUDA vs CPU (act tol %.0e, fp32 tol %.0e)\n", TOL_BF16, TOL_F32);
    for (int j = 0; j < N_GROUPS; j++) {
        int want = n == 0;
        for (int i = 0; i < n; i++) want = want || !strcmp(groups[j].name, names[i]);
        if (!want) continue;
        printf("-- %s\n", groups[j].name);
        fflush(stdout);
        groups[j].run();
        fflush(stdout);
    }
    return failures;
}

/* One optimizer step on one micro-batch; returns the mean loss. */
static double trainee_step(trainee *t, const int32_t *tok, const int32_t *tgt, int B, int T,
                           const k_rope *r, int step) {
    const k_backend *k = t->k;
    e2w_model *m = &t->m;
    k->zero(m->grads, m->n_params * m->gesz);
    e2w_acts_set_batch(&t->a, m, tok, tgt, B, T);
    double loss = e2w_model_forward(m, &t->a, B, T, r, 1) / (double)(B * T);
    e2w_model_backward(m, &t->a, B, T, r, 1.0f / (float)(B * T));
    double norm = sqrt(k->sumsq(m->grads, m->n_params));
    k_adamw hp = { .lr = 2e-3f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = 0.0f,
                   .step = step,
                   .seed = 1234u + (uint64_t)step };
    hp.grad_scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
    float *master = m->master ? m->master : (float *)m->params;
    k->adamw(master, m->params, m->grads, m->m, m->v, m->n_params, &hp);
    return loss;
}

static int run_train(void) {
    e2w_model_config cfg = { .C = 128,
                             .n_layer = 2,
                             .H = 4,
                             .KVH = 2,
                             .D = 32,
                             .F = 256,
                             .V = 512,
                             .max_pos = 256,
                             .eps = 1e-5f,
                             .theta = 10000.0f,
                             .tied = 0 };
    int B = 2, T = 128, steps = 20;
    printf("== train: %d steps, C=%d L=%d H=%d KVH=%d F=%d V=%d, B=%d T=%d, E2 rope\n", steps,
           cfg.C, cfg.n_layer, cfg.H, cfg.KVH, cfg.F, cfg.V, B, T);
    trainee tc, tg;
    trainee_make(&tc, C, &cfg, B, T, 0);
    trainee_make(&tg, G, &cfg, B, T, 0);
    /* Same starting weights: the GPU's bf16 rounding of the seeded init. */
    e2w_model_init(&tg.m, 7);
    float *w = xmalloc(tg.m.n_params * sizeof(float));
    e2w_model_download(&tg.m, 0, w, tg.m.n_params);
    e2w_model_upload(&tc.m, 0, w, tc.m.n_params);
    free(w);
    trainee_opt(&tc);
    trainee_opt(&tg);
    int32_t *tok = xmalloc((size_t)B * T * 4), *tgt = xmalloc((size_t)B * T * 4);
    float g[2] = { 1.0f, 4.0f };
    int32_t t[2] = { 0, 300 };
    k_rope r = { .theta = cfg.theta, .n_sink = 4, .g = g, .t = t };
    double first[2] = { 0, 0 }, last[2] = { 0, 0 }, worst = 0.0;
    int nan = 0;
    for (int s = 1; s <= steps; s++) {
        make_stream(tok, tgt, B, T, cfg.V);
        double lc = trainee_step(&tc, tok, tgt, B, T, &r, s);
        double lg = trainee_step(&tg, tok, tgt, B, T, &r, s);
        double rel = fabs(lg - lc) / fabs(lc);
        if (rel > worst) worst = rel;
        if (isnan(lg)) nan = 1;
        if (s == 1) first[0] = lc, first[1] = lg;
        last[0] = lc, last[1] = lg;
        printf("  step %2d  loss cpu %.5f  cuda %.5f  rel.diff %.2e\n", s, lc, lg, rel);
    }
    int ok = !nan && worst <= 2e-2 && last[0] < first[0] && last[1] < first[1];
    printf(
        "  loss curves: worst rel.diff %.2e (tol 2e-02), cpu %.4f -> %.4f, cuda %.4f -> %.4f  %s\n",
        worst, first[0], last[0], first[1], last[1], ok ? "ok" : "FAIL");
    if (!ok) failures++;
    free(tok);
    free(tgt);
    trainee_free(&tc);
    trainee_free(&tg);
    return failures;
}

/* ---- figures ---- */

/* The figures, printed as they come and kept for the JSON file. */
enum { MAX_FIGS = 48 };
static struct {
    char name[64];
    double value;
    const char *unit;
} figs[MAX_FIGS];
static int n_figs;

static void figure(const char *name, double value, const char *unit) {
    if (n_figs == MAX_FIGS) return;
    snprintf(figs[n_figs].name, sizeof figs[n_figs].name, "%s", name);
    figs[n_figs].value = value;
    figs[n_figs].unit = unit;
    n_figs++;
}

static void write_json(const char *path, const char *device, double seconds) {
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "gpu_check: cannot write %s\n", path);
        return;
    }
    fprintf(f, "{\"device\": \"%s\", \"bench_seconds\": %.1f, \"figures\": {", device, seconds);
    for (int i = 0; i < n_figs; i++)
        fprintf(f, "%s\n  \"%s\": {\"value\": %.6g, \"unit\": \"%s\"}", i ? "," : "", figs[i].name,
                isfinite(figs[i].value) ? figs[i].value : -1.0, figs[i].unit);
    fprintf(f, "\n}}\n");
    fclose(f);
}

/* out (N, OC) = inp (N, C) . w^T: the forward GEMM of one linear layer. */
static double gemm_rate(int N, int Cin, int OC, int iters) {
    void *a = dev_alloc(G, (size_t)N * Cin * 2), *b = dev_alloc(G, (size_t)OC * Cin * 2);
    void *c = dev_alloc(G, (size_t)N * OC * 2);
    size_t na = (size_t)N * Cin, nb = (size_t)OC * Cin, nmax = na > nb ? na : nb;
    float *h = xmalloc(nmax * sizeof(float));
    for (size_t i = 0; i < nmax; i++) h[i] = rng_uniform(-1, 1);
    G->upload(a, h, na);
    G->upload(b, h, nb);
    free(h);
    for (int i = 0; i < 3; i++) G->matmul_fwd(c, a, b, NULL, N, Cin, OC);
    G->sync();
    double t0 = now();
    for (int i = 0; i < iters; i++) G->matmul_fwd(c, a, b, NULL, N, Cin, OC);
    G->sync();
    double dt = (now() - t0) / iters;
    G->free(a);
    G->free(b);
    G->free(c);
    return 2.0 * N * (double)Cin * OC / dt;
}

static double bench_gemm(void) {
    int n = 8192;
    double rate = gemm_rate(n, n, n, 20);
    printf("  bf16 GEMM (cuBLASLt) %dx%dx%d            %8.1f TFLOP/s\n", n, n, n, rate * 1e-12);
    figure("gemm_8192_tflops", rate * 1e-12, "TFLOP/s");
    /* The ~1B model's linear layers at R = 4096 tokens. */
    static const struct {
        const char *name;
        int C, OC;
    } shapes[] = { { "qkv", 2048, 2560 },
                   { "wo", 2048, 2048 },
                   { "gate_up", 2048, 11264 },
                   { "down", 5632, 2048 },
                   { "head", 2048, 32000 } };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double r = gemm_rate(4096, shapes[i].C, shapes[i].OC, 20);
        char name[64];
        printf("  bf16 GEMM %-8s N=4096 C=%-5d OC=%-5d     %8.1f TFLOP/s\n", shapes[i].name,
               shapes[i].C, shapes[i].OC, r * 1e-12);
        snprintf(name, sizeof name, "gemm_1b_%s_tflops", shapes[i].name);
        figure(name, r * 1e-12, "TFLOP/s");
    }
    return rate;
}

static void bench_attn(int T, double gemm) {
    int B = 1, H = 32, KVH = 8, D = 128;
    size_t ld = (size_t)(H + 2 * KVH) * D, nq = (size_t)B * T * ld, no = (size_t)B * T * H * D;
    void *qkv = dev_alloc(G, nq * 2), *dqkv = dev_alloc(G, nq * 2), *out = dev_alloc(G, no * 2);
    void *dout = dev_alloc(G, no * 2);
    float *lse = dev_alloc(G, (size_t)B * H * T * 4), *delta = dev_alloc(G, (size_t)B * H * T * 4);
    float *h = xmalloc(nq * sizeof(float));
    for (size_t i = 0; i < nq; i++) h[i] = rng_uniform(-1, 1);
    G->upload(qkv, h, nq);
    G->upload(dout, h, no);
    free(h);
    G->attn_fwd(out, lse, qkv, B, T, H, KVH, D);
    G->attn_bwd(dqkv, delta, dout, qkv, out, lse, B, T, H, KVH, D);
    G->sync();
    int iters = T <= 4096 ? 5 : 2;
    double t0 = now();
    for (int i = 0; i < iters; i++) G->attn_fwd(out, lse, qkv, B, T, H, KVH, D);
    G->sync();
    double tf = (now() - t0) / iters;
    t0 = now();
    for (int i = 0; i < iters; i++) G->attn_bwd(dqkv, delta, dout, qkv, out, lse, B, T, H, KVH, D);
    G->sync();
    double tb = (now() - t0) / iters;
    /* Causal: half of the 4*T*T*D*H multiply-adds of QK^T and PV; the
     * backward does 2.5 times the forward's products. */
    double ffwd = 2.0 * (double)T * T * D * H * B, fall = 3.5 * ffwd;
    double rate = fall / (tf + tb);
    printf("  attention fwd+bwd T=%-5d H=32 KVH=8 D=128 %8.1f TFLOP/s  (%.1f%% of GEMM; fwd %.2f "
           "ms, bwd %.2f ms)\n",
           T, rate * 1e-12, 100.0 * rate / gemm, tf * 1e3, tb * 1e3);
    char name[64];
    snprintf(name, sizeof name, "attn_T%d_tflops", T);
    figure(name, rate * 1e-12, "TFLOP/s");
    snprintf(name, sizeof name, "attn_T%d_pct_of_gemm", T);
    figure(name, 100.0 * rate / gemm, "%");
    snprintf(name, sizeof name, "attn_T%d_fwd_ms", T);
    figure(name, tf * 1e3, "ms");
    snprintf(name, sizeof name, "attn_T%d_bwd_ms", T);
    figure(name, tb * 1e3, "ms");
    G->free(qkv);
    G->free(dqkv);
    G->free(out);
    G->free(dout);
    G->free(lse);
    G->free(delta);
}

static double used_bytes(void) {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return -1;
    return (double)(total_b - free_b);
}

static void bench_train(double gemm) {
    /* TinyLlama-1.1B's shape: a ~1B Llama with grouped-query attention. */
    e2w_model_config cfg = { .C = 2048,
                             .n_layer = 22,
                             .H = 32,
                             .KVH = 4,
                             .D = 64,
                             .F = 5632,
                             .V = 32000,
                             .max_pos = 4096,
                             .eps = 1e-5f,
                             .theta = 10000.0f,
                             .tied = 0 };
    int B = 1, T = 4096, steps = 3;
    G->sync();
    double base = used_bytes();
    trainee t;
    trainee_make(&t, G, &cfg, B, T, 0);
    float *w = xmalloc(t.m.n_params * sizeof(float));
    for (size_t i = 0; i < t.m.n_params; i++) w[i] = rng_uniform(-0.02f, 0.02f);
    e2w_model_upload(&t.m, 0, w, t.m.n_params);
    free(w);
    trainee_opt(&t);
    int32_t *tok = xmalloc((size_t)B * T * 4), *tgt = xmalloc((size_t)B * T * 4);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)(rng_next() % (uint64_t)cfg.V);
        tgt[i] = (int32_t)(rng_next() % (uint64_t)cfg.V);
    }
    float g[1] = { 4.0f };
    int32_t off[1] = { 1000 };
    k_rope r = { .theta = cfg.theta, .n_sink = 4, .g = g, .t = off };
    trainee_step(&t, tok, tgt, B, T, &r, 1);
    G->sync();
    double t0 = now();
    for (int s = 2; s < 2 + steps; s++) trainee_step(&t, tok, tgt, B, T, &r, s);
    G->sync();
    double dt = (now() - t0) / steps, tps = (double)B * T / dt;
    double flops = e2w_model_flops_per_token(&t.m, T) * tps;
    /* Everything the process holds beyond what it held before the model
     * (cudaMalloc'd buffers, not the allocator's internal peak): compare
     * with `e2worker plan` for the same shape. */
    double held = used_bytes() - base;
    printf("  train ~1B Llama (C=2048 L=22 H=32 KVH=4 F=5632 V=32000, %.2fB params) B=%d R=%d\n",
           (double)t.m.n_params * 1e-9, B, T);
    printf(
        "      %.0f tokens/s, %.2f s/step, %.1f TFLOP/s model, MFU %.1f%% of measured GEMM rate\n",
        tps, dt, flops * 1e-12, 100.0 * flops / gemm);
    printf("      device memory held by the model, optimizer, activations and scratch: %.2f GiB\n",
           held / (1 << 30));
    figure("train_1b_R4096_tokens_per_s", tps, "tokens/s");
    figure("train_1b_R4096_s_per_step", dt, "s");
    figure("train_1b_R4096_model_tflops", flops * 1e-12, "TFLOP/s");
    figure("train_1b_R4096_mfu_pct_of_gemm", 100.0 * flops / gemm, "%");
    figure("train_1b_R4096_device_gib", held / (1 << 30), "GiB");
    /* e2worker plan's prediction for the same job, less its runtime
     * reserve (the CUDA context, not a cudaMalloc of ours) and the cuBLASLt
     * workspace (allocated before base was taken). */
    E2__V1__LlamaConfig pc = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config_to_proto(&cfg, &pc);
    e2w_plan_opts po = { .gpus = 1, .micro_batch = B, .seq = T, .act_bytes = 2 };
    e2w_plan plan;
    char err[256];
    if (e2w_plan_compute(&plan, &pc, &po, err, sizeof err) == 0) {
        double pred = (double)(plan.total - plan.reserve) - (double)(32u << 20);
        printf("      e2worker plan predicts %.2f GiB of the same (measured/predicted %.3f)\n",
               pred / (1 << 30), held / pred);
        figure("plan_1b_R4096_predicted_gib", pred / (1 << 30), "GiB");
        figure("plan_1b_R4096_measured_over_predicted", held / pred, "ratio");
    } else {
        printf("      e2worker plan: %s\n", err);
    }
    free(tok);
    free(tgt);
    /* Evaluation at 16x the window (the same weights): one forward with
     * targets over R = 16 * 4096 tokens, the activations of an evaluation
     * (no backward buffers, the head in chunks), E2 scale g = 16. */
    e2w_acts_free(&t.a, &t.m);
    int TE = 16 * cfg.max_pos;
    e2w_acts ea;
    if (e2w_acts_create(&ea, &t.m, 1, TE, 0, 0, err, sizeof err) == 0) {
        int32_t *et = xmalloc((size_t)TE * 4), *eg = xmalloc((size_t)TE * 4);
        for (int i = 0; i < TE; i++) {
            et[i] = (int32_t)(rng_next() % (uint64_t)cfg.V);
            eg[i] = (int32_t)(rng_next() % (uint64_t)cfg.V);
        }
        float ge[1] = { 16.0f };
        int32_t te[1] = { 0 };
        k_rope re = { .theta = cfg.theta, .n_sink = 4, .g = ge, .t = te };
        e2w_acts_set_batch(&ea, &t.m, et, eg, 1, TE);
        (void)e2w_model_forward(&t.m, &ea, 1, TE, &re, 1); /* warm-up */
        G->sync();
        double e0 = now();
        (void)e2w_model_forward(&t.m, &ea, 1, TE, &re, 1);
        G->sync();
        double de = now() - e0;
        printf("  eval ~1B Llama at %d tokens (16x the window %d): %.0f tokens/s (%.2f s)\n", TE,
               cfg.max_pos, TE / de, de);
        figure("eval_1b_T65536_tokens_per_s", TE / de, "tokens/s");
        e2w_acts_free(&ea, &t.m);
        free(et);
        free(eg);
    } else {
        printf("  eval at %d tokens: %s\n", TE, err);
    }
    e2w_model_free(&t.m);
}

static void run_bench(const char *json) {
    struct cudaDeviceProp p;
    int dev = 0;
    char device[300] = "unknown";
    double t0 = now();
    if (cudaGetDevice(&dev) == cudaSuccess && cudaGetDeviceProperties(&p, dev) == cudaSuccess) {
        snprintf(device, sizeof device, "%s (sm_%d%d, %.0f GiB)", p.name, p.major, p.minor,
                 (double)p.totalGlobalMem / (1 << 30));
        for (char *c = device; *c; c++)
            if (*c == '"' || *c == '\\') *c = ' ';
    }
    printf("== figures on %s\n", device);
    fflush(stdout);
    double gemm = bench_gemm();
    if (json) write_json(json, device, now() - t0); /* what came so far, in case of a timeout */
    fflush(stdout);
    bench_attn(4096, gemm);
    bench_attn(16384, gemm);
    if (json) write_json(json, device, now() - t0);
    fflush(stdout);
    bench_train(gemm);
    if (json) write_json(json, device, now() - t0);
}

int main(int argc, char **argv) {
    const char *what = argc > 1 ? argv[1] : "all";
    if (!strcmp(what, "list")) {
        for (int j = 0; j < N_GROUPS; j++) printf("%s\n", groups[j].name);
        return 0;
    }
    if (strcmp(what, "ops") && strcmp(what, "train") && strcmp(what, "bench") &&
        strcmp(what, "all")) {
        fprintf(stderr, "usage: gpu_check list | ops [GROUP...] | train | bench [JSON] | all\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0); /* a crash keeps the lines before it */
    C = k_cpu();
    G = k_cuda();
    if (G == NULL) {
        fprintf(stderr, "gpu_check: no CUDA device: the CUDA backend is unavailable\n");
        return 2;
    }
    if (!strcmp(what, "ops") && run_ops(argv + 2, argc - 2) < 0) return 2;
    if (!strcmp(what, "all")) run_ops(NULL, 0);
    if (!strcmp(what, "train") || !strcmp(what, "all")) run_train();
    if (!strcmp(what, "bench") || !strcmp(what, "all"))
        run_bench(!strcmp(what, "bench") && argc > 2 ? argv[2] : NULL);
    if (failures)
        printf("gpu_check: %d check(s) FAILED\n", failures);
    else if (strcmp(what, "bench"))
        printf("gpu_check: all checks passed\n");
    return failures ? 1 : 0;
}
