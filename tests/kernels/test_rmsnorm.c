/* test_rmsnorm.c -- RMSNorm forward (out and saved rstd) against a double
 * reference; backward (dinp and dweight) against finite differences;
 * accumulation; dweight independent of the number of threads. */
#include <omp.h>

#include "check.h"
#include "k.h"

#define EPS 1e-5f

typedef struct {
    int N, C;
} rn_shape;

static const rn_shape shapes[] = { { 1, 5 }, { 3, 64 }, { 17, 67 }, { 4, 300 } };
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

static double rn_rstd(const double *x, int C) {
    double ss = 0.0;
    for (int c = 0; c < C; c++) ss += x[c] * x[c];
    return 1.0 / sqrt(ss / C + (double)EPS);
}

/* in[0] = inp (N, C), in[1] = weight (C) */
static void rn_ref(void *ctx, double *const *in, double *out) {
    const rn_shape *s = ctx;
    for (int n = 0; n < s->N; n++) {
        const double *x = in[0] + (size_t)n * s->C;
        double r = rn_rstd(x, s->C);
        for (int c = 0; c < s->C; c++) out[n * s->C + c] = x[c] * r * in[1][c];
    }
}

typedef struct {
    float *inp, *w, *dout;
    double *din, *dw, *ddout;
} rn_data;

static rn_data rn_make(rn_shape s, uint64_t seed) {
    kc_rng r = kc_seed(seed);
    size_t nx = (size_t)s.N * s.C;
    rn_data d = { kc_floats(nx),  kc_floats(s.C),  kc_floats(nx),
                  kc_doubles(nx), kc_doubles(s.C), kc_doubles(nx) };
    kc_fill(d.inp, nx, -2, 2, &r);
    kc_fill(d.w, s.C, 0.5f, 1.5f, &r);
    kc_fill(d.dout, nx, -1, 1, &r);
    kc_to_double(d.din, d.inp, nx);
    kc_to_double(d.dw, d.w, s.C);
    kc_to_double(d.ddout, d.dout, nx);
    return d;
}

static void rn_free(rn_data *d) {
    free(d->inp);
    free(d->w);
    free(d->dout);
    free(d->din);
    free(d->dw);
    free(d->ddout);
}

static void rmsnorm_fwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SHAPES; i++) {
        rn_shape s = shapes[i];
        rn_data d = rn_make(s, 50 + i);
        size_t nx = (size_t)s.N * s.C;
        float *out = kc_floats(nx), *rstd = kc_floats(s.N);
        double *want = kc_doubles(nx), *want_r = kc_doubles(s.N);
        k->rmsnorm_fwd(out, rstd, d.inp, d.w, EPS, s.N, s.C);
        double *in[2] = { d.din, d.dw };
        rn_ref(&s, in, want);
        for (int n = 0; n < s.N; n++) want_r[n] = rn_rstd(d.din + (size_t)n * s.C, s.C);
        char what[64];
        snprintf(what, sizeof what, "out N=%d C=%d", s.N, s.C);
        KC_CLOSE(out, want, nx, 1e-3, 1e-5, what);
        snprintf(what, sizeof what, "rstd N=%d C=%d", s.N, s.C);
        KC_CLOSE(rstd, want_r, s.N, 1e-3, 1e-5, what);
        free(out);
        free(rstd);
        free(want);
        free(want_r);
        rn_free(&d);
    }
}

static void rn_backward(const k_backend *k, rn_shape s, rn_data *d, float *gin, float *gw) {
    float *out = kc_floats((size_t)s.N * s.C), *rstd = kc_floats(s.N);
    k->rmsnorm_fwd(out, rstd, d->inp, d->w, EPS, s.N, s.C);
    k->rmsnorm_bwd(gin, gw, d->dout, d->inp, d->w, rstd, s.N, s.C);
    free(out);
    free(rstd);
}

static void rmsnorm_bwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SHAPES; i++) {
        rn_shape s = shapes[i];
        rn_data d = rn_make(s, 60 + i);
        size_t nx = (size_t)s.N * s.C;
        float *gin = kc_floats(nx), *gw = kc_floats(s.C);
        double *fd = kc_doubles(nx);
        rn_backward(k, s, &d, gin, gw);
        double *in[2] = { d.din, d.dw };
        char what[64];
        kc_fd_grad(rn_ref, &s, in, 0, nx, d.ddout, nx, 1e-4, fd);
        snprintf(what, sizeof what, "dinp N=%d C=%d", s.N, s.C);
        KC_CLOSE(gin, fd, nx, 1e-1, 2e-5, what);
        kc_fd_grad(rn_ref, &s, in, 1, s.C, d.ddout, nx, 1e-4, fd);
        snprintf(what, sizeof what, "dweight N=%d C=%d", s.N, s.C);
        KC_CLOSE(gw, fd, s.C, 1e-1, 2e-5, what);
        free(gin);
        free(gw);
        free(fd);
        rn_free(&d);
    }
}

static void rmsnorm_bwd_accumulates(void) {
    const k_backend *k = k_cpu();
    rn_shape s = { 17, 67 };
    rn_data d = rn_make(s, 70);
    size_t nx = (size_t)s.N * s.C;
    float *gin1 = kc_floats(nx), *gw1 = kc_floats(s.C);
    float *gin2 = kc_floats(nx), *gw2 = kc_floats(s.C);
    rn_backward(k, s, &d, gin1, gw1);
    rn_backward(k, s, &d, gin2, gw2);
    rn_backward(k, s, &d, gin2, gw2);
    double *want = kc_doubles(nx);
    for (size_t j = 0; j < nx; j++) want[j] = 2.0 * gin1[j];
    KC_CLOSE(gin2, want, nx, 1e-1, 1e-6, "dinp after two calls");
    for (int c = 0; c < s.C; c++) want[c] = 2.0 * gw1[c];
    KC_CLOSE(gw2, want, s.C, 1e-1, 1e-6, "dweight after two calls");
    free(gin1);
    free(gw1);
    free(gin2);
    free(gw2);
    free(want);
    rn_free(&d);
}

static void rmsnorm_bwd_threads(void) {
    const k_backend *k = k_cpu();
    rn_shape s = { 512, 130 };
    rn_data d = rn_make(s, 80);
    size_t nx = (size_t)s.N * s.C;
    float *gin[2], *gw[2];
    for (int t = 0; t < 2; t++) {
        gin[t] = kc_floats(nx);
        gw[t] = kc_floats(s.C);
        omp_set_num_threads(t + 1);
        rn_backward(k, s, &d, gin[t], gw[t]);
    }
    KC_EXPECT(memcmp(gw[0], gw[1], s.C * sizeof(float)) == 0, "dweight: 1 vs 2 threads differ");
    KC_EXPECT(memcmp(gin[0], gin[1], nx * sizeof(float)) == 0, "dinp: 1 vs 2 threads differ");
    for (int t = 0; t < 2; t++) {
        free(gin[t]);
        free(gw[t]);
    }
    rn_free(&d);
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "rmsnorm_fwd", rmsnorm_fwd },
        { "rmsnorm_bwd", rmsnorm_bwd },
        { "rmsnorm_bwd_accumulates", rmsnorm_bwd_accumulates },
        { "rmsnorm_bwd_threads", rmsnorm_bwd_threads },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
