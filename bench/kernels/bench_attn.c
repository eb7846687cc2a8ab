/* bench_attn.c -- speed and memory of the CPU backend's flash attention.
 *
 * For T = 512, 2048, 8192 (B = 1, H = KVH = 8 heads of D = 64, as a small
 * Llama layer) it times attn_fwd and attn_bwd (median of `reps` calls after
 * one warm-up) and reports GFLOP/s under the causal convention
 *     fwd = 2 matmuls * 2 flop * (T^2 / 2) * D * H,   bwd = 2.5 * fwd
 * (the five T x T x D products of the backward, not the ones the backward
 * recomputes). In the same run, taking turns with the attention calls, it
 * times OpenBLAS cblas_sgemm on square 1024 x 1024 matrices (2 * 1024^3
 * flops), the machine's dense-matmul rate, and prints attention fwd+bwd as
 * a share of it. Next to wall-clock rates it prints flops per second of
 * process CPU time (all threads) for both, per-core rates that hold up on a
 * machine shared with other jobs, and their ratio. It also times rope_fwd
 * on q and k together.
 * Then one forward + backward at T = mem_T (default 16384) and the process's
 * peak resident memory (getrusage ru_maxrss), next to the size of the
 * tensors the caller holds and of one T x T fp32 matrix: a peak below the
 * latter shows that no T x T buffer exists. Asserts nothing.
 *
 * When OpenBLAS picked slower kernels than the CPU supports (see
 * kernels/cpu/blas.h), the program sets OPENBLAS_CORETYPE and re-executes
 * itself, as e2worker does, so the sgemm figure is the machine's real one.
 *
 * usage: bench_attn [reps (default 3)] [mem_T (default 16384, 0 skips)]
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cpu/blas.h"
#include "k.h"

/* Side of the square sgemm timed next to attention. */
#define BA_SGEMM_N 1024

typedef struct {
    int T, H, KVH, D;
    float *qkv, *out, *lse, *dout, *dqkv, *delta;
    float *ga, *gb, *gc; /* sgemm operands, BA_SGEMM_N^2 each */
} ba_bufs;

static double ba_clock(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double ba_now(void) {
    return ba_clock(CLOCK_MONOTONIC);
}

static int ba_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void ba_fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / 16777216.0 * 2.0 - 1.0);
    }
}

static size_t ba_bytes(const ba_bufs *b) {
    size_t row = (size_t)(b->H + 2 * b->KVH) * b->D, orow = (size_t)b->H * b->D;
    return ((size_t)b->T * (2 * row + 2 * orow) + 2 * (size_t)b->H * b->T) * sizeof(float);
}

static int ba_alloc(ba_bufs *b, int T, int H, int KVH, int D) {
    const k_backend *k = k_cpu();
    size_t row = (size_t)(H + 2 * KVH) * D, orow = (size_t)H * D;
    b->T = T, b->H = H, b->KVH = KVH, b->D = D;
    b->qkv = k->alloc((size_t)T * row * sizeof(float));
    b->dqkv = k->alloc((size_t)T * row * sizeof(float));
    b->out = k->alloc((size_t)T * orow * sizeof(float));
    b->dout = k->alloc((size_t)T * orow * sizeof(float));
    b->lse = k->alloc((size_t)H * T * sizeof(float));
    b->delta = k->alloc((size_t)H * T * sizeof(float));
    size_t g = (size_t)BA_SGEMM_N * BA_SGEMM_N * sizeof(float);
    b->ga = k->alloc(g);
    b->gb = k->alloc(g);
    b->gc = k->alloc(g);
    if (!b->qkv || !b->dqkv || !b->out || !b->dout || !b->lse || !b->delta || !b->ga || !b->gb ||
        !b->gc)
        return -1;
    ba_fill(b->qkv, (size_t)T * row, 1);
    ba_fill(b->dout, (size_t)T * orow, 2);
    ba_fill(b->ga, (size_t)BA_SGEMM_N * BA_SGEMM_N, 3);
    ba_fill(b->gb, (size_t)BA_SGEMM_N * BA_SGEMM_N, 4);
    return 0;
}

static void ba_free(ba_bufs *b) {
    const k_backend *k = k_cpu();
    k->free(b->qkv);
    k->free(b->dqkv);
    k->free(b->out);
    k->free(b->dout);
    k->free(b->lse);
    k->free(b->delta);
    k->free(b->ga);
    k->free(b->gb);
    k->free(b->gc);
}

static void ba_fwd(const ba_bufs *b) {
    k_cpu()->attn_fwd(b->out, b->lse, b->qkv, 1, b->T, b->H, b->KVH, b->D);
}

static void ba_bwd(const ba_bufs *b) {
    k_cpu()->attn_bwd(b->dqkv, b->delta, b->dout, b->qkv, b->out, b->lse, 1, b->T, b->H, b->KVH,
                      b->D);
}

static void ba_rope(const ba_bufs *b) {
    static const float g = 4.0f;
    static const int32_t t = 1000;
    k_rope r = { 10000.0f, 4, &g, &t, 0, NULL };
    k_cpu()->rope_fwd(b->qkv, 1, b->T, b->H + b->KVH, b->D, (b->H + 2 * b->KVH) * b->D, &r);
}

static void ba_sgemm(const ba_bufs *b) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BA_SGEMM_N, BA_SGEMM_N, BA_SGEMM_N, 1.0f,
                b->ga, BA_SGEMM_N, b->gb, BA_SGEMM_N, 0.0f, b->gc, BA_SGEMM_N);
}

#define BA_MAX_FNS 4

/* Median wall seconds (wall[i]) and process CPU seconds (cpu[i]) of reps
 * calls of each fns[i], after one warm-up call of each. The functions take
 * turns within each repetition, so load from other processes on a shared
 * machine hits all of them alike. */
static void ba_time(void (*const *fns)(const ba_bufs *), int nfn, const ba_bufs *b, int reps,
                    double *wall, double *cpu) {
    double t[BA_MAX_FNS][64], c[BA_MAX_FNS][64];
    for (int f = 0; f < nfn; f++) fns[f](b);
    for (int i = 0; i < reps; i++)
        for (int f = 0; f < nfn; f++) {
            double t0 = ba_now(), c0 = ba_clock(CLOCK_PROCESS_CPUTIME_ID);
            fns[f](b);
            t[f][i] = ba_now() - t0;
            c[f][i] = ba_clock(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
    for (int f = 0; f < nfn; f++) {
        qsort(t[f], (size_t)reps, sizeof(double), ba_cmp);
        qsort(c[f], (size_t)reps, sizeof(double), ba_cmp);
        wall[f] = t[f][reps / 2];
        cpu[f] = c[f][reps / 2];
    }
}

int main(int argc, char **argv) {
    const char *hint = kcpu_blas_coretype_hint();
    if (hint != NULL) {
        setenv("OPENBLAS_CORETYPE", hint, 1);
        execv("/proc/self/exe", argv);
    }
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    int memT = argc > 2 ? atoi(argv[2]) : 16384;
    if (reps < 1 || reps > 64 || memT < 0) {
        fprintf(stderr, "usage: bench_attn [reps 1..64] [mem_T >= 0]\n");
        return 2;
    }
    const int H = 8, KVH = 8, D = 64;
    static const int Ts[] = { 512, 2048, 8192 };
    printf("bench_attn: B=1 H=%d KVH=%d D=%d, %d OpenMP threads, median of %d; OpenBLAS core %s\n",
           H, KVH, D, omp_get_max_threads(), reps, kcpu_blas_core());
    printf("flops (causal): fwd = 4*(T^2/2)*D*H, bwd = 2.5*fwd; sgemm %d^3 = 2*%d^3 flops, "
           "timed in turn with fwd and bwd\n",
           BA_SGEMM_N, BA_SGEMM_N);
    printf("GF/s: wall clock; \"cpu\": per second of process CPU time (all threads)\n");
    printf("%6s %8s %8s %8s %8s %9s %9s %6s %9s %9s %6s %8s\n", "T", "fwd ms", "fwd GF/s", "bwd ms",
           "bwd GF/s", "attn GF/s", "sgemm", "attn/", "attn cpu", "sgemm cpu", "attn/", "rope ms");
    printf("%6s %8s %8s %8s %8s %9s %9s %6s %9s %9s %6s %8s\n", "", "", "", "", "", "fwd+bwd",
           "GF/s", "sgemm", "GF/s", "GF/s", "sgemm", "");
    for (int i = 0; i < (int)(sizeof(Ts) / sizeof(Ts[0])); i++) {
        ba_bufs b;
        if (ba_alloc(&b, Ts[i], H, KVH, D) != 0) {
            fprintf(stderr, "bench_attn: out of memory at T=%d\n", Ts[i]);
            return 1;
        }
        double fl = 4.0 * ((double)Ts[i] * Ts[i] / 2.0) * D * H;
        double gfl = 2.0 * BA_SGEMM_N * BA_SGEMM_N * (double)BA_SGEMM_N;
        void (*const fns[])(const ba_bufs *) = { ba_sgemm, ba_fwd, ba_bwd };
        double w[3], c[3], wr, cr;
        ba_time(fns, 3, &b, reps, w, c);
        void (*const rope[])(const ba_bufs *) = { ba_rope };
        ba_time(rope, 1, &b, reps, &wr, &cr);
        double attn = 3.5 * fl / (w[1] + w[2]) * 1e-9, sg = gfl / w[0] * 1e-9;
        double attn_c = 3.5 * fl / (c[1] + c[2]) * 1e-9, sg_c = gfl / c[0] * 1e-9;
        printf("%6d %8.2f %8.1f %8.2f %8.1f %9.1f %9.1f %5.0f%% %9.1f %9.1f %5.0f%% %8.3f\n", Ts[i],
               1e3 * w[1], fl / w[1] * 1e-9, 1e3 * w[2], 2.5 * fl / w[2] * 1e-9, attn, sg,
               100.0 * attn / sg, attn_c, sg_c, 100.0 * attn_c / sg_c, 1e3 * wr);
        ba_free(&b);
    }
    if (memT > 0) {
        ba_bufs b;
        if (ba_alloc(&b, memT, H, KVH, D) != 0) {
            fprintf(stderr, "bench_attn: out of memory at T=%d\n", memT);
            return 1;
        }
        double t0 = ba_now();
        ba_fwd(&b);
        ba_bwd(&b);
        double el = ba_now() - t0;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double mib = 1.0 / (1024.0 * 1024.0);
        printf("T=%d fwd+bwd once: %.2f s\n", memT, el);
        printf("peak RSS %.1f MiB; caller's tensors (qkv, dqkv, out, dout, lse, "
               "delta) %.1f MiB; one T x T fp32 matrix %.1f MiB\n",
               (double)ru.ru_maxrss / 1024.0, (double)ba_bytes(&b) * mib,
               (double)memT * memT * sizeof(float) * mib);
        ba_free(&b);
    }
    return 0;
}
