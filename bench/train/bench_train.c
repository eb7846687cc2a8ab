/* bench_train.c -- training throughput of the model on the CPU backend,
 * next to OpenBLAS sgemm measured in the same run on the model's own matmul
 * shapes.
 *
 * Model: hidden 512, 8 layers, 8 heads, 4 kv heads, ffn 1408, vocab 32000
 * (untied head), sequences of R = 512 tokens with E² RoPE (random g, t,
 * 4 sinks). One step = zero grads, forward, backward, global grad norm,
 * AdamW: what the trainer does per micro-batch. Figures:
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

/* Seconds for one step's worth of bare sgemms; *flops receives their count. */
static double bt_sgemm_step(int N, const e2w_model_config *c, double *flops) {
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
        double t0 = bt_now();
        for (int r = 0; r < w[i].count; r++) {
            /* out = inp @ W^T; dinp += dout @ W; dW += dout^T @ inp */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, wt, C,
                        0.0f, out, OC);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, out, OC, wt, C,
                        1.0f, dinp, C);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, out, OC, inp, C,
                        1.0f, dw, C);
        }
        t += bt_now() - t0;
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
        double t0 = bt_now();
        k->zero(m.grads, m.n_params * m.esz);
        e2w_acts_set_batch(&a, &m, tok, tgt, MB, R);
        loss = e2w_model_forward(&m, &a, MB, R, &rope, 1) / N;
        e2w_model_backward(&m, &a, MB, R, &rope, 1.0f / (float)N);
        double norm = k->sumsq(m.grads, m.n_params);
        hp.step = i + 2;
        hp.grad_scale = norm > 1.0 ? (float)(1.0 / norm) : 1.0f;
        k->adamw((float *)m.params, m.params, m.grads, m.m, m.v, m.n_params, &hp);
        k->sync();
        if (i >= 0) ts[i] = bt_now() - t0;
    }
    qsort(ts, (size_t)steps, sizeof(double), bt_cmp);
    double step_s = ts[steps / 2], tok_s = N / step_s;
    double gflops = tok_s * e2w_model_flops_per_token(&m, R) * 1e-9;
    double sg_flops, sg_t = bt_sgemm_step(N, &cfg, &sg_flops);
    double sg_rate = sg_flops / sg_t * 1e-9;
    printf("\nloss %.4f (random tokens: about ln V = %.2f)\n", loss, log((double)cfg.V));
    printf("step %.3f s (median of %d) | %.0f tokens/s | model %.1f GFLOP/s (%.1f MFLOP/token)\n",
           step_s, steps, tok_s, gflops, e2w_model_flops_per_token(&m, R) * 1e-6);
    printf("OpenBLAS sgemm on the model's shapes: %.1f GFLOP/s (%.3f s for one step's products)\n",
           sg_rate, sg_t);
    printf("training / sgemm: %.0f%%\n", 100.0 * gflops / sg_rate);
    free(ts);
    free(tok);
    free(tgt);
    free(g);
    free(t);
    e2w_acts_free(&a, &m);
    e2w_model_free(&m);
    return 0;
}
