/* bench_train.c -- training throughput of the model on the CPU backend,
 * next to OpenBLAS sgemm measured in the same run on the model's own matmul
 * shapes.
 *
 * Model: hidden 512, 8 layers, 8 heads, 4 kv heads, ffn 1408, vocab 32000
 * (untied head), sequences of R = 512 tokens with E² RoPE (random g, t,
 * 4 sinks). One step = zero grads, forward + backward (e2w_model_step), global
 * grad norm, AdamW: what the trainer does per micro-batch. Figures:
 *   tokens/s   = micro_batch * R / step time
 *   GFLOP/s    = tokens/s * (6 * matmul params + 6 * layers * H * D * R)
 *                (e2w_model_flops_per_token: the model's FLOPs, not the
 *                recomputation flash attention adds in its backward)
 *   sgemm      = every forward and backward product of one step (per layer
 *                qkv, o, gate|up, down; the lm head once) as bare
 *                cblas_sgemm calls on buffers of the same shapes: 6*N*C*OC
 *                flops per weight over their total time.
 * Median of `steps` timed steps after one warm-up. Asserts nothing.
 *
 * When OpenBLAS picked slower kernels than the CPU supports (see
 * kernels/cpu/blas.h), the program sets OPENBLAS_CORETYPE and re-executes
 * itself, as e2worker does, so both figures use the same fast kernels.
 *
 * With E2_BENCH_PHASES=1 it also prints where a step's time goes, op by op
 * (bt_profiled below).
 *
 * usage: bench_train [steps (default 3)] [micro_batch (default 4)]
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cpu/blas.h"
#include "model.h"

static double bt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bt_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static uint64_t bt_rand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static float *bt_floats(size_t n, uint64_t seed) {
    float *x = malloc(n * sizeof(float));
    if (x == NULL) {
        fprintf(stderr, "bench_train: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((double)bt_rand(&seed) / 2147483648.0 - 1.0) * 0.1f;
    return x;
}

/* ---- phase breakdown (E2_BENCH_PHASES=1) ----
 * The model runs on a copy of the CPU backend's table whose operations are
 * wrapped: each wrapper times the real operation and adds the seconds to
 * its phase. matmuls are told apart by their shape (the model's five weight
 * kinds have distinct (C, OC) here) and the backward is timed as its two
 * products (dinp, then dweight: the same calls the op makes). Wall time
 * that no op accounts for is printed as "other". */
enum {
    PH_MM_FWD,
    PH_MM_DINP = PH_MM_FWD + 5,
    PH_MM_DW = PH_MM_DINP + 5,
    PH_ATTN_FWD = PH_MM_DW + 5,
    PH_ATTN_BWD,
    PH_RMS_FWD,
    PH_RMS_BWD,
    PH_ROPE,
    PH_SWIGLU_FWD,
    PH_SWIGLU_BWD,
    PH_RESIDUAL,
    PH_XENT_FWD,
    PH_XENT_BWD,
    PH_XENT_FUSED,
    PH_EMBED,
    PH_ZERO,
    PH_SUMSQ,
    PH_ADAMW,
    PH_DATA,
    PH_COUNT
};
static const char *const bt_mm_name[5] = { "qkv", "o", "gate|up", "down", "lm head" };
static const char *const bt_ph_name[PH_COUNT - PH_ATTN_FWD] = {
    "attention fwd",
    "attention bwd",
    "rmsnorm fwd",
    "rmsnorm bwd",
    "rope fwd+bwd",
    "swiglu fwd",
    "swiglu bwd",
    "residual add",
    "xent fwd",
    "xent bwd",
    "xent fwd+bwd (fused)",
    "embedding",
    "zero (grads, scratch)",
    "grad norm (clip)",
    "adamw",
    "data upload",
};
static double bt_ph[PH_COUNT];     /* this step's seconds per phase */
static double bt_ph_min[PH_COUNT]; /* the least over the timed steps */
static double bt_ph_sum[PH_COUNT]; /* their sum */
static int bt_ph_on;
static const k_backend *bt_real;
static int bt_mm_c[5], bt_mm_oc[5];

static int bt_mm_kind(int C, int OC) {
    for (int i = 0; i < 5; i++)
        if (bt_mm_c[i] == C && bt_mm_oc[i] == OC) return i;
    fprintf(stderr, "bench_train: unexpected matmul shape %d x %d\n", C, OC);
    exit(1);
}

#define BT_TIMED(ph, call)                         \
    do {                                           \
        double t0_ = bt_now();                     \
        call;                                      \
        if (bt_ph_on) bt_ph[ph] += bt_now() - t0_; \
    } while (0)

static void bt_matmul_fwd(void *out, const void *inp, const void *w, const void *bias, int N, int C,
                          int OC) {
    BT_TIMED(PH_MM_FWD + bt_mm_kind(C, OC), bt_real->matmul_fwd(out, inp, w, bias, N, C, OC));
}
static void bt_matmul_bwd(void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                          const void *w, int N, int C, int OC) {
    int kd = bt_mm_kind(C, OC);
    if (dinp)
        BT_TIMED(PH_MM_DINP + kd, bt_real->matmul_bwd(dinp, NULL, NULL, dout, inp, w, N, C, OC));
    if (dw || dbias)
        BT_TIMED(PH_MM_DW + kd, bt_real->matmul_bwd(NULL, dw, dbias, dout, inp, w, N, C, OC));
}
static void bt_matmul_bwd_set(void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                              const void *w, int N, int C, int OC) {
    int kd = bt_mm_kind(C, OC);
    if (dinp)
        BT_TIMED(PH_MM_DINP + kd,
                 bt_real->matmul_bwd_set(dinp, NULL, NULL, dout, inp, w, N, C, OC));
    if (dw || dbias)
        BT_TIMED(PH_MM_DW + kd, bt_real->matmul_bwd(NULL, dw, dbias, dout, inp, w, N, C, OC));
}
static void bt_attn_fwd(void *out, float *lse, const void *qkv, int B, int T, int H, int KVH,
                        int D) {
    BT_TIMED(PH_ATTN_FWD, bt_real->attn_fwd(out, lse, qkv, B, T, H, KVH, D));
}
static void bt_attn_bwd(void *dqkv, float *delta, const void *dout, const void *qkv,
                        const void *out, const float *lse, int B, int T, int H, int KVH, int D) {
    BT_TIMED(PH_ATTN_BWD, bt_real->attn_bwd(dqkv, delta, dout, qkv, out, lse, B, T, H, KVH, D));
}
static void bt_rms_fwd(void *out, float *rstd, const void *inp, const void *w, float eps, int N,
                       int C) {
    BT_TIMED(PH_RMS_FWD, bt_real->rmsnorm_fwd(out, rstd, inp, w, eps, N, C));
}
static void bt_rms_bwd(void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                       const float *rstd, int N, int C) {
    BT_TIMED(PH_RMS_BWD, bt_real->rmsnorm_bwd(dinp, dw, dout, inp, w, rstd, N, C));
}
static void bt_rope_fwd(void *x, int B, int T, int nh, int D, int rs, const k_rope *r) {
    BT_TIMED(PH_ROPE, bt_real->rope_fwd(x, B, T, nh, D, rs, r));
}
static void bt_rope_bwd(void *x, int B, int T, int nh, int D, int rs, const k_rope *r) {
    BT_TIMED(PH_ROPE, bt_real->rope_bwd(x, B, T, nh, D, rs, r));
}
static void bt_swiglu_fwd(void *out, const void *inp, int N, int F) {
    BT_TIMED(PH_SWIGLU_FWD, bt_real->swiglu_fwd(out, inp, N, F));
}
static void bt_swiglu_bwd(void *dinp, const void *dout, const void *inp, int N, int F) {
    BT_TIMED(PH_SWIGLU_BWD, bt_real->swiglu_bwd(dinp, dout, inp, N, F));
}
static void bt_swiglu_bwd_set(void *dinp, const void *dout, const void *inp, int N, int F) {
    BT_TIMED(PH_SWIGLU_BWD, bt_real->swiglu_bwd_set(dinp, dout, inp, N, F));
}
static void bt_add(void *out, const void *a, const void *b, size_t n) {
    BT_TIMED(PH_RESIDUAL, bt_real->add(out, a, b, n));
}
static void bt_accumulate(void *dst, const void *src, size_t n) {
    BT_TIMED(PH_RESIDUAL, bt_real->accumulate(dst, src, n));
}
static void bt_xent_fwd(float *losses, const void *logits, const int32_t *tg, int ig, int N,
                        int V) {
    BT_TIMED(PH_XENT_FWD, bt_real->xent_fwd(losses, logits, tg, ig, N, V));
}
static void bt_xent_bwd(void *logits, const int32_t *tg, float dloss, int ig, int N, int V) {
    BT_TIMED(PH_XENT_BWD, bt_real->xent_bwd(logits, tg, dloss, ig, N, V));
}
static void bt_xent_fwd_bwd(float *losses, void *logits, const int32_t *tg, float dloss, int ig,
                            int N, int V) {
    BT_TIMED(PH_XENT_FUSED, bt_real->xent_fwd_bwd(losses, logits, tg, dloss, ig, N, V));
}
static void bt_embed_fwd(void *out, const int32_t *tok, const void *wte, int N, int C) {
    BT_TIMED(PH_EMBED, bt_real->embed_fwd(out, tok, wte, N, C));
}
static void bt_embed_bwd(void *dwte, const void *dout, const int32_t *tok, int N, int C) {
    BT_TIMED(PH_EMBED, bt_real->embed_bwd(dwte, dout, tok, N, C));
}
static void bt_zero(void *p, size_t bytes) {
    BT_TIMED(PH_ZERO, bt_real->zero(p, bytes));
}
static void bt_upload_raw(void *dst, const void *src, size_t bytes) {
    BT_TIMED(PH_DATA, bt_real->upload_raw(dst, src, bytes));
}
static double bt_sumsq(const void *x, size_t n) {
    double r;
    BT_TIMED(PH_SUMSQ, r = bt_real->sumsq(x, n));
    return r;
}
static void bt_adamw(float *master, void *param, const void *grad, float *m, float *v, size_t n,
                     const k_adamw *hp) {
    BT_TIMED(PH_ADAMW, bt_real->adamw(master, param, grad, m, v, n, hp));
}

/* The CPU backend with every operation the step uses timed. */
static const k_backend *bt_profiled(const k_backend *real, const e2w_model_config *c) {
    static k_backend b;
    bt_real = real;
    const int cs[5] = { c->C, c->H * c->D, c->C, c->F, c->C };
    const int ocs[5] = { (c->H + 2 * c->KVH) * c->D, c->C, 2 * c->F, c->C, c->V };
    memcpy(bt_mm_c, cs, sizeof cs);
    memcpy(bt_mm_oc, ocs, sizeof ocs);
    b = *real;
    b.matmul_fwd = bt_matmul_fwd;
    b.matmul_bwd = bt_matmul_bwd;
    b.matmul_bwd_set = real->matmul_bwd_set ? bt_matmul_bwd_set : NULL;
    b.swiglu_bwd_set = real->swiglu_bwd_set ? bt_swiglu_bwd_set : NULL;
    b.attn_fwd = bt_attn_fwd;
    b.attn_bwd = bt_attn_bwd;
    b.rmsnorm_fwd = bt_rms_fwd;
    b.rmsnorm_bwd = bt_rms_bwd;
    b.rope_fwd = bt_rope_fwd;
    b.rope_bwd = bt_rope_bwd;
    b.swiglu_fwd = bt_swiglu_fwd;
    b.swiglu_bwd = bt_swiglu_bwd;
    b.add = bt_add;
    b.accumulate = bt_accumulate;
    b.xent_fwd = bt_xent_fwd;
    b.xent_bwd = bt_xent_bwd;
    b.xent_fwd_bwd = real->xent_fwd_bwd ? bt_xent_fwd_bwd : NULL;
    b.embed_fwd = bt_embed_fwd;
    b.embed_bwd = bt_embed_bwd;
    b.zero = bt_zero;
    b.upload_raw = bt_upload_raw;
    b.sumsq = bt_sumsq;
    b.adamw = bt_adamw;
    return &b;
}

/* Ends a timed step: folds its phase times into the least and the sum. */
static void bt_phases_step(int first) {
    for (int i = 0; i < PH_COUNT; i++) {
        bt_ph_min[i] = first || bt_ph[i] < bt_ph_min[i] ? bt_ph[i] : bt_ph_min[i];
        bt_ph_sum[i] += bt_ph[i];
        bt_ph[i] = 0;
    }
}

/* Each phase's least seconds over the timed steps (on a loaded machine the
 * least is the undisturbed figure; the mean is given too), beside the bare
 * sgemm time of the same products (sg: fwd, dinp, dw per kind). */
static void bt_print_phases(int steps, double step_s, const double sg[15], int N,
                            const e2w_model_config *c) {
    printf("\nphases (least s over the %d timed steps, %% of their sum, mean s):\n", steps);
    double sum = 0, sum_mean = 0;
    for (int i = 0; i < PH_COUNT; i++) sum += bt_ph_min[i];
    (void)step_s;
    double total = sum;
    sum = 0;
    const char *part[3] = { "fwd", "bwd dinp", "bwd dW" };
    for (int p = 0; p < 3; p++)
        for (int i = 0; i < 5; i++) {
            double t = bt_ph_min[PH_MM_FWD + p * 5 + i];
            double fl = 2.0 * N * (double)bt_mm_c[i] * bt_mm_oc[i] * (i < 4 ? c->n_layer : 1);
            sum += t;
            sum_mean += bt_ph_sum[PH_MM_FWD + p * 5 + i] / steps;
            printf("  matmul %-8s %-9s %7.3f s %5.1f%% %7.3f s %6.1f GFLOP/s (bare sgemm %.3f s)\n",
                   bt_mm_name[i], part[p], t, 100 * t / total,
                   bt_ph_sum[PH_MM_FWD + p * 5 + i] / steps, fl / t * 1e-9, sg[p * 5 + i]);
        }
    printf("  %-28s %7.3f s %5.1f%% %7.3f s\n", "all matmuls", sum, 100 * sum / total, sum_mean);
    for (int i = PH_ATTN_FWD; i < PH_COUNT; i++) {
        double t = bt_ph_min[i];
        printf("  %-28s %7.3f s %5.1f%% %7.3f s\n", bt_ph_name[i - PH_ATTN_FWD], t, 100 * t / total,
               bt_ph_sum[i] / steps);
    }
    printf("  %-28s %7.3f s\n", "sum of the phases", total);
}

/* Seconds for one step's worth of bare sgemms; *flops receives their count
 * and part[p * 5 + i] the seconds of product p (forward, dinp, dW) of
 * weight kind i (qkv, o, gate|up, down, lm head). */
static double bt_sgemm_step(int N, const e2w_model_config *c, double *flops, double part[15]) {
    const struct {
        int C, OC, count;
    } w[] = {
        { c->C, (c->H + 2 * c->KVH) * c->D, c->n_layer },
        { c->H * c->D, c->C, c->n_layer },
        { c->C, 2 * c->F, c->n_layer },
        { c->F, c->C, c->n_layer },
        { c->C, c->V, 1 },
    };
    double t = 0;
    *flops = 0;
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        int C = w[i].C, OC = w[i].OC;
        float *inp = bt_floats((size_t)N * C, 1), *wt = bt_floats((size_t)OC * C, 2);
        float *out = bt_floats((size_t)N * OC, 3), *dinp = bt_floats((size_t)N * C, 4);
        float *dw = bt_floats((size_t)OC * C, 5);
        part[i] = part[5 + i] = part[10 + i] = 0;
        for (int r = 0; r < w[i].count; r++) {
            /* out = inp @ W^T; dinp += dout @ W; dW += dout^T @ inp */
            double t0 = bt_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, wt, C,
                        0.0f, out, OC);
            double t1 = bt_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, out, OC, wt, C,
                        1.0f, dinp, C);
            double t2 = bt_now();
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, out, OC, inp, C,
                        1.0f, dw, C);
            double t3 = bt_now();
            part[i] += t1 - t0;
            part[5 + i] += t2 - t1;
            part[10 + i] += t3 - t2;
            t += t3 - t0;
        }
        *flops += 6.0 * N * (double)C * OC * w[i].count;
        free(inp);
        free(wt);
        free(out);
        free(dinp);
        free(dw);
    }
    return t;
}

int main(int argc, char **argv) {
    const char *hint = kcpu_blas_coretype_hint();
    if (hint != NULL) {
        setenv("OPENBLAS_CORETYPE", hint, 1);
        execv("/proc/self/exe", argv);
    }
    int steps = argc > 1 ? atoi(argv[1]) : 3, MB = argc > 2 ? atoi(argv[2]) : 4;
    if (steps < 1 || MB < 1) {
        fprintf(stderr, "usage: bench_train [steps >= 1] [micro_batch >= 1]\n");
        return 2;
    }
    const int R = 512;
    e2w_model_config cfg = { .C = 512,
                             .n_layer = 8,
                             .H = 8,
                             .KVH = 4,
                             .D = 64,
                             .F = 1408,
                             .V = 32000,
                             .max_pos = 4096,
                             .eps = 1e-5f,
                             .theta = 10000.0f,
                             .tied = 0 };
    const k_backend *k = k_get("cpu");
    const char *phases_env = getenv("E2_BENCH_PHASES");
    int phases = phases_env != NULL && strcmp(phases_env, "0") != 0;
    if (phases) k = bt_profiled(k, &cfg);
    char err[512];
    e2w_model m;
    e2w_acts a;
    if (e2w_model_create(&m, k, &cfg, err, sizeof err) < 0 ||
        e2w_model_alloc_train(&m, err, sizeof err) < 0 ||
        e2w_acts_create(&a, &m, MB, R, 1, 0, err, sizeof err) < 0) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    e2w_model_init(&m, 1);
    int N = MB * R;
    int32_t *tok = malloc((size_t)N * sizeof(int32_t)), *tgt = malloc((size_t)N * sizeof(int32_t));
    float *g = malloc((size_t)MB * sizeof(float));
    int32_t *t = malloc((size_t)MB * sizeof(int32_t));
    uint64_t s = 7;
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)(bt_rand(&s) % (uint64_t)cfg.V);
        tgt[i] = (int32_t)(bt_rand(&s) % (uint64_t)cfg.V);
    }
    for (int b = 0; b < MB; b++) {
        g[b] = (float)(1 + bt_rand(&s) % 20);
        t[b] = (int32_t)(bt_rand(&s) % (uint64_t)(g[b] * cfg.max_pos - R + 1));
    }
    k_rope rope = { .theta = cfg.theta, .n_sink = 4, .g = g, .t = t };
    k_adamw hp = { .lr = 1e-5f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .grad_scale = 1.0f };

    printf("bench_train: fp32 CPU backend, forward + backward + AdamW per step\n");
    printf("model: hidden %d, layers %d, heads %d, kv heads %d, ffn %d, vocab %d, untied\n", cfg.C,
           cfg.n_layer, cfg.H, cfg.KVH, cfg.F, cfg.V);
    printf("params %zu (matmul %zu); R %d, micro_batch %d (N = %d tokens/step), E2 RoPE, 4 sinks\n",
           m.n_params, e2w_model_matmul_params(&m), R, MB, N);
    printf("memory MiB: params %.1f, grads %.1f, optimizer %.1f, activations %.1f\n",
           m.n_params * 4 / 1048576.0, m.n_params * 4 / 1048576.0, m.n_params * 8 / 1048576.0,
           a.bytes / 1048576.0);
    const char *core_env = getenv("OPENBLAS_CORETYPE");
    printf("threads: OpenMP %d, OpenBLAS %d; core %s (OPENBLAS_CORETYPE=%s)\n",
           omp_get_max_threads(), openblas_get_num_threads(), kcpu_blas_core(),
           core_env ? core_env : "unset");

    double *ts = malloc((size_t)steps * sizeof(double)), loss = 0;
    for (int i = -1; i < steps; i++) {
        bt_ph_on = i >= 0;
        double t0 = bt_now();
        k->zero(m.grads, m.n_params * m.esz);
        e2w_acts_set_batch(&a, &m, tok, tgt, MB, R);
        loss = e2w_model_step(&m, &a, MB, R, &rope, 1.0f / (float)N, NULL, NULL) / N;
        double norm = k->sumsq(m.grads, m.n_params);
        hp.step = i + 2;
        hp.grad_scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
        k->adamw((float *)m.params, m.params, m.grads, m.m, m.v, m.n_params, &hp);
        k->sync();
        if (i >= 0) ts[i] = bt_now() - t0;
        if (phases && i >= 0) bt_phases_step(i == 0);
    }
    double mean_s = 0;
    for (int i = 0; i < steps; i++) mean_s += ts[i] / steps;
    qsort(ts, (size_t)steps, sizeof(double), bt_cmp);
    double step_s = ts[steps / 2], tok_s = N / step_s;
    double gflops = tok_s * e2w_model_flops_per_token(&m, R) * 1e-9;
    bt_ph_on = 0;
    double sg_flops, sg_part[15], sg_t = bt_sgemm_step(N, &cfg, &sg_flops, sg_part);
    double sg_rate = sg_flops / sg_t * 1e-9;
    printf("\nloss %.4f (random tokens: about ln V = %.2f)\n", loss, log((double)cfg.V));
    printf("step %.3f s (median of %d) | %.0f tokens/s | model %.1f GFLOP/s (%.1f MFLOP/token)\n",
           step_s, steps, tok_s, gflops, e2w_model_flops_per_token(&m, R) * 1e-6);
    printf("OpenBLAS sgemm on the model's shapes: %.1f GFLOP/s (%.3f s for one step's products)\n",
           sg_rate, sg_t);
    printf("training / sgemm: %.0f%%\n", 100.0 * gflops / sg_rate);
    if (phases) bt_print_phases(steps, mean_s, sg_part, N, &cfg);
    free(ts);
    free(tok);
    free(tgt);
    free(g);
    free(t);
    e2w_acts_free(&a, &m);
    e2w_model_free(&m);
    return 0;
}
