/* bench_ops.c -- time of the CPU backend's non-matmul ops on the shapes of
 * one training step of a small Llama, next to the matmuls of one layer, to
 * show how much of a step they take. Each op is timed twice: alone, and
 * right after an sgemm (OpenBLAS's pthreads may still be spinning when the
 * OpenMP threads start). Figures are medians of `reps` calls; GB/s counts
 * the bytes each op must read and write once. Asserts nothing.
 *
 * usage: bench_ops [reps (default 5)] [N tokens (default 2048 = 4 * 512)]
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/blas.h"
#include "k.h"

static double bo_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bo_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum {
    OP_RMS_F,
    OP_RMS_B,
    OP_SWI_F,
    OP_SWI_B,
    OP_ADD,
    OP_ACC,
    OP_EMB_F,
    OP_EMB_B,
    OP_XENT_F,
    OP_XENT_B,
    OP_SUMSQ,
    OP_ADAMW,
    OP_MM_F,
    OP_MM_B,
    N_OPS
};

static const char *const op_name[N_OPS] = {
    "rmsnorm_fwd", "rmsnorm_bwd", "swiglu_fwd",         "swiglu_bwd",        "add",
    "accumulate",  "embed_fwd",   "embed_bwd",          "xent_fwd",          "xent_bwd",
    "sumsq",       "adamw",       "matmul_fwd gate_up", "matmul_bwd gate_up"
};

typedef struct {
    int N, C, F, V;
    size_t P; /* parameters in the adamw/sumsq call */
    float *x, *y, *dy, *w, *dw, *rstd, *h, *dh, *g, *logits, *loss, *big, *m, *v, *wg;
    int32_t *tok;
} bo_bufs;

static void bo_run(int op, bo_bufs *b) {
    const k_backend *k = k_cpu();
    int N = b->N, C = b->C, F = b->F, V = b->V;
    k_adamw hp = { 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 10, 1.0f, 0, 0 };
    switch (op) {
    case OP_RMS_F: k->rmsnorm_fwd(b->y, b->rstd, b->x, b->w, 1e-5f, N, C); break;
    case OP_RMS_B: k->rmsnorm_bwd(b->dy, b->dw, b->y, b->x, b->w, b->rstd, N, C); break;
    case OP_SWI_F: k->swiglu_fwd(b->g, b->h, N, F); break;
    case OP_SWI_B: k->swiglu_bwd(b->dh, b->g, b->h, N, F); break;
    case OP_ADD: k->add(b->y, b->x, b->dy, (size_t)N * C); break;
    case OP_ACC: k->accumulate(b->dy, b->x, (size_t)N * C); break;
    case OP_EMB_F: k->embed_fwd(b->y, b->tok, b->big, N, C); break;
    case OP_EMB_B: k->embed_bwd(b->big, b->x, b->tok, N, C); break;
    case OP_XENT_F: k->xent_fwd(b->loss, b->logits, b->tok, -1, N, V); break;
    case OP_XENT_B: k->xent_bwd(b->logits, b->tok, 1.0f / N, -1, N, V); break;
    case OP_SUMSQ: (void)k->sumsq(b->wg, b->P); break;
    case OP_ADAMW: k->adamw(b->big, b->big, b->wg, b->m, b->v, b->P, &hp); break;
    case OP_MM_F: k->matmul_fwd(b->h, b->x, b->big, NULL, N, C, 2 * F); break;
    case OP_MM_B:
        k->matmul_bwd(b->dy, b->big + (size_t)V * C, NULL, b->h, b->x, b->big, N, C, 2 * F);
        break;
    }
}

/* Bytes an op must move at least once. */
static double bo_bytes(int op, const bo_bufs *b) {
    double nc = (double)b->N * b->C, nf = (double)b->N * b->F, nv = (double)b->N * b->V;
    const double per_op[N_OPS] = { 2 * nc, 4 * nc, 3 * nf, 6 * nf, 3 * nc,       3 * nc,
                                   2 * nc, 3 * nc, nv,     2 * nv, (double)b->P, 6.0 * (double)b->P,
                                   0,      0 };
    return 4.0 * per_op[op];
}

static double bo_time(int op, bo_bufs *b, int reps, int after_sgemm) {
    double *t = malloc((size_t)reps * sizeof(double)), med;
    if (t == NULL) return 0.0;
    bo_run(op, b);
    for (int r = 0; r < reps; r++) {
        if (after_sgemm) bo_run(OP_MM_F, b);
        double t0 = bo_now();
        bo_run(op, b);
        t[r] = bo_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), bo_cmp);
    med = t[reps / 2];
    free(t);
    return med;
}

static float *bo_floats(size_t n, float scale) {
    float *p = k_cpu()->alloc(n * sizeof(float));
    if (p == NULL) {
        fprintf(stderr, "bench_ops: out of memory (%zu floats)\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = scale * ((float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f);
    return p;
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    int N = argc > 2 ? atoi(argv[2]) : 4 * 512;
    if (reps < 1 || N < 1) {
        fprintf(stderr, "usage: bench_ops [reps >= 1] [N tokens >= 1]\n");
        return 2;
    }
    bo_bufs b = { .N = N, .C = 512, .F = 1408, .V = 32000 };
    b.P = (size_t)b.V * b.C + 8 * ((size_t)b.C * 2048 + 3 * (size_t)b.C * b.F); /* 8 layers */
    size_t nc = (size_t)N * b.C, nf = (size_t)N * b.F;
    b.x = bo_floats(nc, 2);
    b.y = bo_floats(nc, 1);
    b.dy = bo_floats(nc, 1);
    b.w = bo_floats(b.C, 1);
    b.dw = bo_floats(b.C, 1);
    b.rstd = bo_floats(N, 1);
    b.h = bo_floats(2 * nf, 4);
    b.dh = bo_floats(2 * nf, 1);
    b.g = bo_floats(nf, 1);
    b.logits = bo_floats((size_t)N * b.V, 10);
    b.loss = bo_floats(N, 1);
    b.big = bo_floats(b.P, 0.1f);
    b.m = bo_floats(b.P, 0.01f);
    b.v = bo_floats(b.P, 0.0001f);
    b.wg = bo_floats(b.P, 0.01f);
    b.tok = malloc((size_t)N * sizeof(int32_t));
    if (b.tok == NULL) return 1;
    for (int i = 0; i < N; i++) b.tok[i] = (int32_t)((i * 7919u) % (unsigned)b.V);

    printf("bench_ops: fp32 k_cpu() ops, N = %d tokens, hidden %d, ffn %d, vocab %d, "
           "adamw/sumsq over %zu params; median of %d\n",
           N, b.C, b.F, b.V, b.P, reps);
    printf("threads: OpenMP %d; OpenBLAS core %s\n\n", omp_get_max_threads(), kcpu_blas_core());
    printf("%-20s %10s %8s %16s\n", "op", "ms", "GB/s", "ms after sgemm");
    for (int op = 0; op < N_OPS; op++) {
        double t = bo_time(op, &b, reps, 0);
        double t2 = op < OP_MM_F ? bo_time(op, &b, reps, 1) : t;
        double gbs = bo_bytes(op, &b) / t * 1e-9;
        if (op == OP_XENT_B) /* the backward overwrote the logits: refill them */
            for (size_t i = 0; i < (size_t)N * b.V; i++) b.logits[i] = (float)(i % 17);
        printf("%-20s %10.3f %8.1f %16.3f\n", op_name[op], 1e3 * t, gbs, 1e3 * t2);
    }
    return 0;
}
