/* check.h -- shared helpers of the kernel tests (header only).
 *
 * - kc_rng: a seeded splitmix64 generator, so every test input is
 *   reproducible; kc_fill / kc_fill_tokens draw from it.
 * - kc_max_rel_err: the largest |got - want| / max(|want|, floor) over an
 *   array; floor keeps elements that should be ~0 from dominating.
 * - kc_fd_grad: central finite differences, in double precision, of the
 *   scalar loss L = sum_k out_k * w_k through a double-precision reference
 *   forward written by the test. Since the reference runs in double, the
 *   finite difference is not limited by fp32 rounding, and the analytic
 *   backward of a kernel (called with dout = w) can be held to a tight
 *   tolerance.
 * - kc_main: runs the named cases of a test binary (one ctest entry per case:
 *   `binary case_name`, or every case when no name is given).
 */
#ifndef E2_TESTS_KERNELS_CHECK_H
#define E2_TESTS_KERNELS_CHECK_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failures ----
 * KC_EXPECT records a failure with file and line and lets the case go on, so
 * one run shows every broken property. */
static int kc_failures;

#define KC_EXPECT(cond, ...)                                      \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            kc_failures++;                                        \
        }                                                         \
    } while (0)

/* ---- memory: tests abort on allocation failure ---- */
static inline void *kc_xmalloc(size_t bytes) {
    void *p = calloc(bytes ? bytes : 1, 1);
    if (p == NULL) {
        fprintf(stderr, "check: out of memory (%zu bytes)\n", bytes);
        abort();
    }
    return p;
}
#define kc_floats(n)  ((float *)kc_xmalloc((size_t)(n) * sizeof(float)))
#define kc_doubles(n) ((double *)kc_xmalloc((size_t)(n) * sizeof(double)))
#define kc_ints(n)    ((int32_t *)kc_xmalloc((size_t)(n) * sizeof(int32_t)))

/* ---- random numbers ---- */
typedef struct {
    uint64_t s;
} kc_rng;

static inline kc_rng kc_seed(uint64_t seed) {
    kc_rng r = { seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull };
    return r;
}

static inline uint64_t kc_next(kc_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 random bits: exactly representable as a float. */
static inline float kc_uniform(kc_rng *r) {
    return (float)(kc_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* x[i] uniform in [lo, hi). */
static inline void kc_fill(float *x, size_t n, float lo, float hi, kc_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * kc_uniform(r);
}

/* Token ids uniform in [0, V). */
static inline void kc_fill_tokens(int32_t *t, size_t n, int V, kc_rng *r) {
    for (size_t i = 0; i < n; i++) t[i] = (int32_t)(kc_next(r) % (uint64_t)V);
}

static inline void kc_to_double(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

/* ---- comparisons ---- */
static inline double kc_max_rel_err(const float *got, const double *want, size_t n, double floor) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        double s = fabs(want[i]) > floor ? fabs(want[i]) : floor;
        double e = d / s;
        if (e > worst || e != e) worst = e != e ? INFINITY : e;
    }
    return worst;
}

/* Same for two float arrays (e.g. one backend against another). */
static inline double kc_max_rel_err_f(const float *got, const float *want, size_t n, double floor) {
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double s = fabs((double)want[i]) > floor ? fabs((double)want[i]) : floor;
        double e = d / s;
        if (e > worst || e != e) worst = e != e ? INFINITY : e;
    }
    return worst;
}

/* Records a failure when the max relative error exceeds tol. With the
 * environment variable KC_VERBOSE set, every comparison prints its error, to
 * see how much room a tolerance leaves. */
#define KC_CLOSE(got, want, n, floor, tol, what)                                                  \
    do {                                                                                          \
        double kc_e_ = kc_max_rel_err((got), (want), (n), (floor));                               \
        if (getenv("KC_VERBOSE"))                                                                 \
            fprintf(stderr, "  %s: max rel err %.3g (tol %.3g)\n", (what), kc_e_, (double)(tol)); \
        KC_EXPECT(kc_e_ <= (tol), "%s: max rel err %.3g > tol %.3g", (what), kc_e_,               \
                  (double)(tol));                                                                 \
    } while (0)

/* ---- finite differences ----
 * fwd(ctx, in, out): the op's forward in double. in[i] is input i; out has
 * out_n elements. The driver perturbs in[which][j] by +h and -h (restoring
 * it) and writes dL/d in[which][j] into grad[j], with L = sum_k out_k * w_k.
 * Inputs that are not differentiated (token ids, shapes) travel in ctx. */
typedef void (*kc_fwd_fn)(void *ctx, double *const *in, double *out);

static inline double kc_loss(kc_fwd_fn fwd, void *ctx, double *const *in, const double *w,
                             double *out, size_t out_n) {
    fwd(ctx, in, out);
    double L = 0.0;
    for (size_t k = 0; k < out_n; k++) L += out[k] * w[k];
    return L;
}

static inline void kc_fd_grad(kc_fwd_fn fwd, void *ctx, double *const *in, int which, size_t in_n,
                              const double *w, size_t out_n, double h, double *grad) {
    double *out = kc_doubles(out_n);
    double *x = in[which];
    for (size_t j = 0; j < in_n; j++) {
        double x0 = x[j];
        x[j] = x0 + h;
        double Lp = kc_loss(fwd, ctx, in, w, out, out_n);
        x[j] = x0 - h;
        double Lm = kc_loss(fwd, ctx, in, w, out, out_n);
        x[j] = x0;
        grad[j] = (Lp - Lm) / (2.0 * h);
    }
    free(out);
}

/* ---- named cases ---- */
typedef struct {
    const char *name;
    void (*fn)(void);
} kc_case;

/* argv[1], when given, names the one case to run. Exit status is non-zero
 * when any expectation failed or the name is unknown. */
static inline int kc_main(int argc, char **argv, const kc_case *cases, int n) {
    int ran = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        int before = kc_failures;
        cases[i].fn();
        fprintf(stderr, "%s %s\n", kc_failures == before ? "ok  " : "FAIL", cases[i].name);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "%s: no case named '%s'\n", argv[0], argv[1]);
        return 2;
    }
    return kc_failures ? 1 : 0;
}

#endif
