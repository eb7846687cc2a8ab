/* grad_check.h -- how gpu_check compares an accumulating backward (attention's
 * dqkv) with the CPU's: by the increments, part by part, row by row.
 *
 * Backward ops accumulate (+=) into a gradient that already holds values, so
 * the check starts both backends from the same non-zero "before". Comparing
 * the "after" values by norm hides the op's own contribution behind
 * "before": for attention it is only about a quarter of that norm, so a dQ
 * with its tail rows zeroed, or 5 % too large, stayed within a 1e-2
 * norm-wise tolerance. Here the increments (after - before) of the device
 * and the CPU are compared separately for the Q, K and V parts of the fused
 * qkv rows, norm-wise and per row (one head of D channels of one token); the
 * worst row is reported. A row's error is measured against its own norm, or
 * the part's rms row norm when that is larger (the first query row's dQ is
 * exactly zero, so a relative error of a tiny row means nothing).
 *
 * Plain C on host arrays: tests/gpu/test_gpu_host.c checks, without a
 * device, that this catches what the norm check missed. */
#ifndef E2_TESTS_GPU_GRAD_CHECK_H
#define E2_TESTS_GPU_GRAD_CHECK_H

#include <math.h>
#include <stddef.h>
#include <stdio.h>

/* Tolerances of the increments: bf16 attention plus the rounding of the
 * accumulated bf16 value (|before| <= 1 gives up to 2^-9 absolute). */
#define GRAD_TOL_PART 2e-2
#define GRAD_TOL_ROW  6e-2

typedef struct {
    double part_rel[3]; /* norm-wise relative error of the Q, K, V increments */
    double worst_row;   /* largest row error (see above) */
    int worst_part;     /* 0 Q, 1 K, 2 V */
    int worst_b, worst_t, worst_head;
    size_t nan; /* NaN or inf in the device's values */
    int ok;
} grad_check_result;

/* before, gpu_after, cpu_after: (B, T, (H + 2 KVH) D) host arrays. */
static inline grad_check_result grad_check_qkv(const float *before, const float *gpu_after,
                                               const float *cpu_after, int B, int T, int H, int KVH,
                                               int D) {
    grad_check_result r = { { 0, 0, 0 }, 0, 0, 0, 0, 0, 0, 0 };
    size_t ld = (size_t)(H + 2 * KVH) * (size_t)D;
    int heads[3] = { H, KVH, KVH }, first[3] = { 0, H, H + KVH };
    for (int p = 0; p < 3; p++) {
        double num = 0, den = 0;
        size_t rows = (size_t)B * (size_t)T * (size_t)heads[p];
        for (size_t bt = 0; bt < (size_t)B * (size_t)T; bt++)
            for (int h = 0; h < heads[p]; h++) {
                size_t o = bt * ld + (size_t)(first[p] + h) * (size_t)D;
                for (int d = 0; d < D; d++) {
                    double g = (double)gpu_after[o + (size_t)d] - before[o + (size_t)d];
                    double c = (double)cpu_after[o + (size_t)d] - before[o + (size_t)d];
                    if (!isfinite(gpu_after[o + (size_t)d])) r.nan++;
                    num += (g - c) * (g - c);
                    den += c * c;
                }
            }
        r.part_rel[p] = den > 0 ? sqrt(num / den) : sqrt(num);
        double floor2 = rows ? den / (double)rows : 0; /* rms row norm, squared */
        for (size_t bt = 0; bt < (size_t)B * (size_t)T; bt++)
            for (int h = 0; h < heads[p]; h++) {
                size_t o = bt * ld + (size_t)(first[p] + h) * (size_t)D;
                double e2 = 0, n2 = 0;
                for (int d = 0; d < D; d++) {
                    double g = (double)gpu_after[o + (size_t)d] - before[o + (size_t)d];
                    double c = (double)cpu_after[o + (size_t)d] - before[o + (size_t)d];
                    e2 += (g - c) * (g - c);
                    n2 += c * c;
                }
                double ref = n2 > floor2 ? n2 : floor2;
                double e = ref > 0 ? sqrt(e2 / ref) : sqrt(e2);
                if (e > r.worst_row) {
                    r.worst_row = e;
                    r.worst_part = p;
                    r.worst_b = (int)(bt / (size_t)T);
                    r.worst_t = (int)(bt % (size_t)T);
                    r.worst_head = h;
                }
            }
    }
    r.ok = r.nan == 0 && r.worst_row <= GRAD_TOL_ROW;
    for (int p = 0; p < 3; p++) r.ok = r.ok && r.part_rel[p] <= GRAD_TOL_PART;
    return r;
}

/* One line per check, as gpu_check prints its others. */
static inline void grad_check_print(const char *op, const grad_check_result *r) {
    static const char part[3] = { 'q', 'k', 'v' };
    printf("  %-18s %-8s increments rel.err dq %.2e dk %.2e dv %.2e (tol %.0e); worst row "
           "%.2e at d%c b=%d t=%d head=%d (tol %.0e)%s  %s\n",
           op, "dqkv", r->part_rel[0], r->part_rel[1], r->part_rel[2], GRAD_TOL_PART, r->worst_row,
           part[r->worst_part], r->worst_b, r->worst_t, r->worst_head, GRAD_TOL_ROW,
           r->nan ? "  NaN!" : "", r->ok ? "ok" : "FAIL");
}

#endif
