/* test_gpu_host.c -- the host-side logic of the GPU path, checked without a
 * device (ctest, every build):
 *
 *   attn_check_catches_wrong_dq   grad_check.h's increment comparison (what
 *       gpu_check uses for attention's backward) passes a correct bf16
 *       result and fails a dQ with its tail rows zeroed or 5 % too large,
 *       both of which the former norm-wise check of the accumulated values
 *       let through. The increments are the CPU backend's own attention
 *       backward; the "device" results are built from them.
 *   sr_index_is_global            the optimizer gives every parameter its own
 *       stochastic-rounding index (k_adamw.index0 = the global offset of
 *       the call's first element), for the whole update and for ZeRO-1's
 *       shards alike: the CPU backend's adamw, wrapped to record each call.
 *
 * Usage: test_gpu_host CASE. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grad_check.h"
#include "k.h"
#include "model.h"
#include "train_internal.h"

#include "../expect.h"

static uint64_t rng_state = 0x5eed;

static float rng_uniform(float lo, float hi) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* fp32 -> nearest bf16 (ties to even), as a float. */
static float bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

static float *fill(size_t n, float lo, float hi) {
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = bf16(rng_uniform(lo, hi));
    return x;
}

/* The check gpu_check used before: ||after_gpu - after_cpu|| / ||after_cpu||
 * <= 1e-2. */
static int old_check_passes(const float *g, const float *c, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)g[i] - c[i]) * ((double)g[i] - c[i]);
        den += (double)c[i] * c[i];
    }
    return sqrt(num / den) <= 1e-2;
}

static void test_attn_check_catches_wrong_dq(void) {
    const k_backend *k = k_cpu();
    /* A tail: T = 130 leaves 2 rows after the last 64-row tile. */
    int B = 1, T = 130, H = 4, KVH = 2, D = 64;
    size_t ld = (size_t)(H + 2 * KVH) * D, nq = (size_t)B * T * ld, no = (size_t)B * T * H * D;
    size_t nl = (size_t)B * H * T;
    float *qkv = fill(nq, -1.5f, 1.5f), *dout = fill(no, -1, 1);
    float *before = fill(nq, -1, 1); /* as gpu_check started before: U(-1, 1) */
    float *out = calloc(no, 4), *lse = calloc(nl, 4), *delta = calloc(nl, 4);
    float *cpu = malloc(nq * 4);
    memcpy(cpu, before, nq * 4);
    k->attn_fwd(out, lse, qkv, B, T, H, KVH, D);
    k->attn_bwd(cpu, delta, dout, qkv, out, lse, B, T, H, KVH, D);

    /* A correct device result: the increment in bf16, added in bf16. */
    float *gpu = malloc(nq * 4);
    for (size_t i = 0; i < nq; i++) gpu[i] = bf16(before[i] + bf16(cpu[i] - before[i]));
    grad_check_result r = grad_check_qkv(before, gpu, cpu, B, T, H, KVH, D);
    grad_check_print("correct (bf16)", &r);
    EXPECT(r.ok, "a correct bf16 dqkv fails the increment check");
    CHECK(old_check_passes(gpu, cpu, nq));

    /* dQ of the tail rows (t >= 128) never written. */
    for (size_t i = 0; i < nq; i++) {
        size_t t = (i / ld) % (size_t)T, col = i % ld;
        float inc = cpu[i] - before[i];
        if (col < (size_t)H * D && t >= 128) inc = 0;
        gpu[i] = bf16(before[i] + bf16(inc));
    }
    r = grad_check_qkv(before, gpu, cpu, B, T, H, KVH, D);
    grad_check_print("dq tail zeroed", &r);
    EXPECT(!r.ok, "zeroed tail rows of dq pass the increment check");
    EXPECT(r.worst_part == 0 && r.worst_t >= 128, "worst row d%d t=%d, want dq t>=128",
           r.worst_part, r.worst_t);
    EXPECT(old_check_passes(gpu, cpu, nq), "the old norm check was expected to miss this");

    /* dQ 5 % too large everywhere. */
    for (size_t i = 0; i < nq; i++) {
        float inc = cpu[i] - before[i];
        if (i % ld < (size_t)H * D) inc *= 1.05f;
        gpu[i] = bf16(before[i] + bf16(inc));
    }
    r = grad_check_qkv(before, gpu, cpu, B, T, H, KVH, D);
    grad_check_print("dq 5% too large", &r);
    EXPECT(!r.ok, "a 5%% too large dq passes the increment check");
    EXPECT(r.part_rel[0] > GRAD_TOL_PART && r.part_rel[1] < GRAD_TOL_PART, "dq %.3e dk %.3e",
           r.part_rel[0], r.part_rel[1]);
    EXPECT(old_check_passes(gpu, cpu, nq), "the old norm check was expected to miss this");

    free(qkv), free(dout), free(before), free(out), free(lse), free(delta);
    free(cpu), free(gpu);
}

/* ---- stochastic-rounding index ---- */

static const k_backend *real;
static void *rec_base;
static size_t rec_esz;
enum { MAX_CALLS = 64 };
static struct { size_t at, index0, n; } calls[MAX_CALLS];
static int n_calls;

static void recording_adamw(float *master, void *param, const void *grad, float *m, float *v,
                            size_t n, const k_adamw *hp) {
    if (n_calls < MAX_CALLS) {
        calls[n_calls].at = (size_t)((char *)param - (char *)rec_base) / rec_esz;
        calls[n_calls].index0 = hp->index0;
        calls[n_calls].n = n;
    }
    n_calls++;
    real->adamw(master, param, grad, m, v, n, hp);
}

static int by_index0(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* One optimizer step over [lo, lo + len) of the parameters; every call's
 * index0 must be the global offset of its first element, and the calls
 * must tile the range. */
static void sr_case(const k_backend *k, int world, int rank) {
    e2w_model_config cfg = { .C = 32,
                             .n_layer = 2,
                             .H = 4,
                             .KVH = 2,
                             .D = 8,
                             .F = 64,
                             .V = 50,
                             .max_pos = 64,
                             .eps = 1e-5f,
                             .theta = 10000.0f };
    e2w_model m;
    char err[256];
    CHECK(e2w_model_create(&m, k, &cfg, err, sizeof err) == 0);
    size_t lo, len;
    e2w_train_shard(m.n_params, world, rank, &lo, &len);
    CHECK(e2w_model_alloc_train_shard(&m, lo, len, err, sizeof err) == 0);
    E2__V1__TrainSpec ts;
    e2__v1__train_spec__init(&ts);
    ts.beta1 = 0.9, ts.beta2 = 0.95, ts.adam_eps = 1e-8, ts.weight_decay = 0.1;
    rec_base = m.params;
    rec_esz = m.esz;
    n_calls = 0;
    e2w_train_optimizer_step(&m, &ts, 1, 1e-3, 7);
    EXPECT(n_calls > 1 && n_calls <= MAX_CALLS, "%d adamw calls", n_calls);
    if (n_calls > MAX_CALLS) n_calls = MAX_CALLS;
    size_t covered = 0;
    for (int i = 0; i < n_calls; i++) {
        EXPECT(calls[i].index0 == calls[i].at,
               "world %d rank %d: call %d updates elements from %zu with index0 %zu", world, rank,
               i, calls[i].at, calls[i].index0);
        covered += calls[i].n;
    }
    qsort(calls, (size_t)n_calls, sizeof calls[0], by_index0);
    for (int i = 0; i + 1 < n_calls; i++)
        EXPECT(calls[i].index0 + calls[i].n == calls[i + 1].index0,
               "rounding indices of calls %d and %d overlap or leave a gap", i, i + 1);
    EXPECT(n_calls == 0 || (calls[0].index0 == lo && covered == len),
           "world %d rank %d: indices [%zu, +%zu), want [%zu, +%zu)", world, rank,
           n_calls ? calls[0].index0 : 0, covered, lo, len);
    e2w_model_free(&m);
}

static void test_sr_index_is_global(void) {
    real = k_cpu();
    k_backend rec = *real;
    rec.adamw = recording_adamw;
    sr_case(&rec, 1, 0);
    for (int r = 0; r < 3; r++) sr_case(&rec, 3, r);
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        { "attn_check_catches_wrong_dq", test_attn_check_catches_wrong_dq },
        { "sr_index_is_global", test_sr_index_is_global },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (argc > 1 && strcmp(argv[1], cases[i].name) == 0) {
            cases[i].fn();
            return failures ? 1 : 0;
        }
    fprintf(stderr, "usage: test_gpu_host CASE\n");
    return 2;
}
