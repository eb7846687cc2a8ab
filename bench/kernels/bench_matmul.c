/* bench_matmul.c -- how close the CPU backend's matmul comes to this
 * machine's OpenBLAS sgemm, on the layer shapes of a small Llama.
 *
 * For each layer shape (N tokens, C inputs, OC outputs) it times, in the same
 * run: the bare sgemm of the forward, the two bare sgemms of the backward,
 * and k_cpu()'s matmul_fwd and matmul_bwd (dinp and dweight, no bias, as the
 * Llama layers use), taking turns. Each figure is the median of `reps` timed
 * calls after one warm-up call. Prints the configuration and a table; asserts nothing.
 *
 * The "core" line shows which OpenBLAS kernels ran; see kernels/cpu/blas.h.
 *
 * usage: bench_matmul [reps (default 3)] [N tokens (default 2048 = 4 * 512)]
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/blas.h"
#include "k.h"

typedef struct {
    const char *name;
    int C, OC;
} bm_layer;

static double bm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bm_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    int N, C, OC;
    float *inp, *w, *out, *dinp, *dw;
} bm_bufs;

enum { BM_SGEMM_FWD, BM_SGEMM_BWD, BM_K_FWD, BM_K_BWD, BM_KINDS };

static void bm_call(int kind, const bm_bufs *b) {
    const k_backend *k = k_cpu();
    int N = b->N, C = b->C, OC = b->OC;
    switch (kind) {
    case BM_SGEMM_FWD:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, b->inp, C, b->w, C,
                    0.0f, b->out, OC);
        break;
    case BM_SGEMM_BWD: /* out doubles as dout */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, b->out, OC, b->w, C,
                    1.0f, b->dinp, C);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, b->out, OC, b->inp, C,
                    1.0f, b->dw, C);
        break;
    case BM_K_FWD: k->matmul_fwd(b->out, b->inp, b->w, NULL, N, C, OC); break;
    case BM_K_BWD: k->matmul_bwd(b->dinp, b->dw, NULL, b->out, b->inp, b->w, N, C, OC); break;
    }
}

/* Median seconds per call of each kind into t[BM_KINDS]. The kinds take
 * turns within each repetition, so load from other processes on a shared
 * machine hits the bare sgemm and k_cpu() alike. */
static void bm_time(const bm_bufs *b, int reps, double *t) {
    double *s = malloc((size_t)reps * BM_KINDS * sizeof(double));
    if (s == NULL) {
        fprintf(stderr, "bench_matmul: out of memory\n");
        exit(1);
    }
    for (int kind = 0; kind < BM_KINDS; kind++) bm_call(kind, b);
    for (int r = 0; r < reps; r++)
        for (int kind = 0; kind < BM_KINDS; kind++) {
            double t0 = bm_now();
            bm_call(kind, b);
            s[kind * reps + r] = bm_now() - t0;
        }
    for (int kind = 0; kind < BM_KINDS; kind++) {
        qsort(s + kind * reps, (size_t)reps, sizeof(double), bm_cmp);
        t[kind] = s[kind * reps + reps / 2];
    }
    free(s);
}

static float *bm_floats(size_t n) {
    float *p = k_cpu()->alloc(n * sizeof(float));
    if (p == NULL) {
        fprintf(stderr, "bench_matmul: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    int N = argc > 2 ? atoi(argv[2]) : 4 * 512;
    if (reps < 1 || N < 1) {
        fprintf(stderr, "usage: bench_matmul [reps >= 1] [N tokens >= 1]\n");
        return 2;
    }
    const int C = 512, H = 8, KVH = 4, D = C / H, F = 1408, V = 32000;
    const bm_layer layers[] = {
        { "qkv", C, (H + 2 * KVH) * D },
        { "o", H * D, C },
        { "gate_up", C, 2 * F },
        { "down", F, C },
        { "lm_head", C, V },
    };
    const int n_layers = (int)(sizeof layers / sizeof layers[0]);

    printf("bench_matmul: fp32, k_cpu() vs bare OpenBLAS cblas_sgemm\n");
    printf("model: hidden %d, heads %d, kv heads %d, head dim %d, ffn %d, vocab %d\n", C, H, KVH, D,
           F, V);
    printf("tokens N = %d, median of %d calls after 1 warm-up\n", N, reps);
    printf("threads: OpenMP %d, OpenBLAS %d; %s; core %s\n", omp_get_max_threads(),
           openblas_get_num_threads(), openblas_get_config(), kcpu_blas_core());
    const char *hint = kcpu_blas_coretype_hint();
    if (hint != NULL)
        printf("note: OpenBLAS runs %s kernels on a CPU that supports %s ones; "
               "for the machine's real sgemm rate rerun with OPENBLAS_CORETYPE=%s\n",
               kcpu_blas_core(), hint, hint);
    printf("GFLOP/s: fwd = 2*N*C*OC / t, bwd (dinp + dweight) = 4*N*C*OC / t\n\n");
    printf("%-8s %5s %5s | %10s %10s | %10s %10s | %6s %6s\n", "layer", "C", "OC", "sgemm fwd",
           "sgemm bwd", "k fwd", "k bwd", "fwd %", "bwd %");

    double flop_fwd_all = 0, t_sg_all = 0, t_k_all = 0;
    for (int l = 0; l < n_layers; l++) {
        bm_bufs b = { N, layers[l].C, layers[l].OC, NULL, NULL, NULL, NULL, NULL };
        b.inp = bm_floats((size_t)N * b.C);
        b.w = bm_floats((size_t)b.OC * b.C);
        b.out = bm_floats((size_t)N * b.OC);
        b.dinp = bm_floats((size_t)N * b.C);
        b.dw = bm_floats((size_t)b.OC * b.C);
        double t[BM_KINDS];
        bm_time(&b, reps, t);
        double f = 2.0 * N * b.C * b.OC;
        printf("%-8s %5d %5d | %10.1f %10.1f | %10.1f %10.1f | %5.0f%% %5.0f%%\n", layers[l].name,
               b.C, b.OC, f / t[BM_SGEMM_FWD] * 1e-9, 2 * f / t[BM_SGEMM_BWD] * 1e-9,
               f / t[BM_K_FWD] * 1e-9, 2 * f / t[BM_K_BWD] * 1e-9,
               100 * t[BM_SGEMM_FWD] / t[BM_K_FWD], 100 * t[BM_SGEMM_BWD] / t[BM_K_BWD]);
        flop_fwd_all += f;
        t_sg_all += t[BM_SGEMM_FWD] + t[BM_SGEMM_BWD];
        t_k_all += t[BM_K_FWD] + t[BM_K_BWD];
        const k_backend *k = k_cpu();
        k->free(b.inp);
        k->free(b.w);
        k->free(b.out);
        k->free(b.dinp);
        k->free(b.dw);
    }
    printf("\nall layers once, fwd + bwd: sgemm %.1f GFLOP/s, k_cpu %.1f GFLOP/s (%.0f%%)\n",
           3 * flop_fwd_all / t_sg_all * 1e-9, 3 * flop_fwd_all / t_k_all * 1e-9,
           100 * t_sg_all / t_k_all);
    return 0;
}
