/* test_matmul.c -- matmul_fwd against a double reference; matmul_bwd against
 * central finite differences, with and without bias, NULL outputs skipped,
 * gradients that accumulate, and a bias gradient that does not depend on the
 * number of threads; products big enough to be cut between threads give the
 * same bits with 1, 2 and 3 threads. */
#include <omp.h>

#include "check.h"
#include "k.h"

typedef struct {
    int N, C, OC, has_bias;
} mm_shape;

static const mm_shape shapes[] = {
    { 1, 5, 7, 1 }, { 3, 64, 17, 0 }, { 3, 64, 17, 1 }, { 17, 67, 33, 1 }, { 17, 67, 5, 0 },
};
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

/* in[0] = inp (N, C), in[1] = weight (OC, C), in[2] = bias (OC) or NULL */
static void mm_ref(void *ctx, double *const *in, double *out) {
    const mm_shape *s = ctx;
    for (int n = 0; n < s->N; n++)
        for (int o = 0; o < s->OC; o++) {
            double acc = in[2] ? in[2][o] : 0.0;
            for (int c = 0; c < s->C; c++) acc += in[0][n * s->C + c] * in[1][o * s->C + c];
            out[n * s->OC + o] = acc;
        }
}

typedef struct {
    mm_shape s;
    float *inp, *w, *b, *dout;
    double *din, *dw, *db, *ddout;
} mm_case;

static mm_case mm_make(mm_shape s, uint64_t seed) {
    kc_rng r = kc_seed(seed);
    mm_case m = { .s = s };
    size_t nin = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C, nout = (size_t)s.N * s.OC;
    m.inp = kc_floats(nin);
    m.w = kc_floats(nw);
    m.b = kc_floats(s.OC);
    m.dout = kc_floats(nout);
    kc_fill(m.inp, nin, -1, 1, &r);
    kc_fill(m.w, nw, -1, 1, &r);
    kc_fill(m.b, s.OC, -1, 1, &r);
    kc_fill(m.dout, nout, -1, 1, &r);
    m.din = kc_doubles(nin);
    m.dw = kc_doubles(nw);
    m.db = kc_doubles(s.OC);
    m.ddout = kc_doubles(nout);
    kc_to_double(m.din, m.inp, nin);
    kc_to_double(m.dw, m.w, nw);
    kc_to_double(m.db, m.b, s.OC);
    kc_to_double(m.ddout, m.dout, nout);
    return m;
}

static void mm_free(mm_case *m) {
    free(m->inp);
    free(m->w);
    free(m->b);
    free(m->dout);
    free(m->din);
    free(m->dw);
    free(m->db);
    free(m->ddout);
}

static void matmul_fwd(void) {
    const k_backend *k = k_cpu();
    const mm_shape big[] = { { 64, 128, 259, 1 }, { 64, 128, 259, 0 } };
    for (int i = 0; i < N_SHAPES + 2; i++) {
        mm_shape s = i < N_SHAPES ? shapes[i] : big[i - N_SHAPES];
        mm_case m = mm_make(s, 100 + i);
        size_t nout = (size_t)s.N * s.OC;
        float *out = kc_floats(nout);
        double *want = kc_doubles(nout);
        for (size_t j = 0; j < nout; j++) out[j] = 1e9f; /* must be overwritten */
        k->matmul_fwd(out, m.inp, m.w, s.has_bias ? m.b : NULL, s.N, s.C, s.OC);
        double *in[3] = { m.din, m.dw, s.has_bias ? m.db : NULL };
        mm_ref(&s, in, want);
        char what[64];
        snprintf(what, sizeof what, "out N=%d C=%d OC=%d bias=%d", s.N, s.C, s.OC, s.has_bias);
        KC_CLOSE(out, want, nout, 1.0, 1e-5, what);
        free(out);
        free(want);
        mm_free(&m);
    }
}

static void matmul_bwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SHAPES; i++) {
        mm_shape s = shapes[i];
        mm_case m = mm_make(s, 200 + i);
        size_t nin = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C, nout = (size_t)s.N * s.OC;
        float *gin = kc_floats(nin), *gw = kc_floats(nw), *gb = kc_floats(s.OC);
        k->matmul_bwd(gin, gw, s.has_bias ? gb : NULL, m.dout, m.inp, m.w, s.N, s.C, s.OC);
        double *in[3] = { m.din, m.dw, s.has_bias ? m.db : NULL };
        double *fd = kc_doubles(nin > nw ? nin : nw);
        char what[96];
        kc_fd_grad(mm_ref, &s, in, 0, nin, m.ddout, nout, 1e-3, fd);
        snprintf(what, sizeof what, "dinp N=%d C=%d OC=%d", s.N, s.C, s.OC);
        KC_CLOSE(gin, fd, nin, 1.0, 1e-5, what);
        kc_fd_grad(mm_ref, &s, in, 1, nw, m.ddout, nout, 1e-3, fd);
        snprintf(what, sizeof what, "dweight N=%d C=%d OC=%d", s.N, s.C, s.OC);
        KC_CLOSE(gw, fd, nw, 1.0, 1e-5, what);
        if (s.has_bias) {
            kc_fd_grad(mm_ref, &s, in, 2, s.OC, m.ddout, nout, 1e-3, fd);
            snprintf(what, sizeof what, "dbias N=%d C=%d OC=%d", s.N, s.C, s.OC);
            KC_CLOSE(gb, fd, s.OC, 1.0, 1e-5, what);
        }
        free(gin);
        free(gw);
        free(gb);
        free(fd);
        mm_free(&m);
    }
}

/* A NULL gradient skips its product and the others are still computed. */
static void matmul_bwd_null_outputs(void) {
    const k_backend *k = k_cpu();
    mm_shape s = { 17, 67, 33, 1 };
    mm_case m = mm_make(s, 300);
    size_t nin = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C;
    float *all_in = kc_floats(nin), *all_w = kc_floats(nw), *all_b = kc_floats(s.OC);
    k->matmul_bwd(all_in, all_w, all_b, m.dout, m.inp, m.w, s.N, s.C, s.OC);
    float *g = kc_floats(nw);
    k->matmul_bwd(g, NULL, NULL, m.dout, m.inp, m.w, s.N, s.C, s.OC);
    KC_EXPECT(memcmp(g, all_in, nin * sizeof(float)) == 0, "dinp alone differs");
    memset(g, 0, nw * sizeof(float));
    k->matmul_bwd(NULL, g, NULL, m.dout, m.inp, m.w, s.N, s.C, s.OC);
    KC_EXPECT(memcmp(g, all_w, nw * sizeof(float)) == 0, "dweight alone differs");
    memset(g, 0, nw * sizeof(float));
    k->matmul_bwd(NULL, NULL, g, m.dout, m.inp, m.w, s.N, s.C, s.OC);
    KC_EXPECT(memcmp(g, all_b, s.OC * sizeof(float)) == 0, "dbias alone differs");
    free(all_in);
    free(all_w);
    free(all_b);
    free(g);
    mm_free(&m);
}

/* Backward twice from zero gives twice the gradient (+=, not =). */
static void matmul_bwd_accumulates(void) {
    const k_backend *k = k_cpu();
    mm_shape s = { 17, 67, 33, 1 };
    mm_case m = mm_make(s, 400);
    size_t nin = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C;
    float *g1[3] = { kc_floats(nin), kc_floats(nw), kc_floats(s.OC) };
    float *g2[3] = { kc_floats(nin), kc_floats(nw), kc_floats(s.OC) };
    size_t len[3] = { nin, nw, (size_t)s.OC };
    k->matmul_bwd(g1[0], g1[1], g1[2], m.dout, m.inp, m.w, s.N, s.C, s.OC);
    for (int r = 0; r < 2; r++)
        k->matmul_bwd(g2[0], g2[1], g2[2], m.dout, m.inp, m.w, s.N, s.C, s.OC);
    const char *names[3] = { "dinp", "dweight", "dbias" };
    for (int t = 0; t < 3; t++) {
        double *twice = kc_doubles(len[t]);
        for (size_t j = 0; j < len[t]; j++) twice[j] = 2.0 * g1[t][j];
        KC_CLOSE(g2[t], twice, len[t], 1.0, 1e-6, names[t]);
        free(twice);
        free(g1[t]);
        free(g2[t]);
    }
    mm_free(&m);
}

/* matmul_bwd_set overwrites dinp (whatever it held, NaN included) with
 * what matmul_bwd adds to a zeroed dinp; dweight and dbias still
 * accumulate. */
static void matmul_bwd_set(void) {
    const k_backend *k = k_cpu();
    KC_EXPECT(k->matmul_bwd_set != NULL, "the CPU backend has no matmul_bwd_set");
    mm_shape s = { 17, 67, 33, 1 };
    mm_case m = mm_make(s, 410);
    size_t nin = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C;
    float *g1[3] = { kc_floats(nin), kc_floats(nw), kc_floats(s.OC) };
    float *g2[3] = { kc_floats(nin), kc_floats(nw), kc_floats(s.OC) };
    for (size_t j = 0; j < nin; j++) g2[0][j] = j % 3 ? NAN : 5.0f;
    for (size_t j = 0; j < nw; j++) g1[1][j] = g2[1][j] = 0.25f;
    for (int j = 0; j < s.OC; j++) g1[2][j] = g2[2][j] = -1.0f;
    k->matmul_bwd(g1[0], g1[1], g1[2], m.dout, m.inp, m.w, s.N, s.C, s.OC);
    k->matmul_bwd_set(g2[0], g2[1], g2[2], m.dout, m.inp, m.w, s.N, s.C, s.OC);
    const char *names[3] = { "dinp", "dweight", "dbias" };
    size_t len[3] = { nin, nw, (size_t)s.OC };
    for (int t = 0; t < 3; t++) {
        size_t bad = 0;
        for (size_t j = 0; j < len[t]; j++) bad += !(g1[t][j] == g2[t][j]);
        KC_EXPECT(bad == 0, "%s: %zu elements differ from matmul_bwd on zeros", names[t], bad);
        free(g1[t]);
        free(g2[t]);
    }
    mm_free(&m);
}

/* dbias is our own reduction (the sgemms are OpenBLAS's): bit-identical for
 * 1, 2 and 3 threads. */
static void matmul_bwd_bias_threads(void) {
    const k_backend *k = k_cpu();
    mm_shape s = { 1024, 3, 200, 1 };
    mm_case m = mm_make(s, 500);
    float *gb[3];
    for (int t = 0; t < 3; t++) {
        gb[t] = kc_floats(s.OC);
        omp_set_num_threads(t + 1);
        k->matmul_bwd(NULL, NULL, gb[t], m.dout, m.inp, m.w, s.N, s.C, s.OC);
    }
    KC_EXPECT(memcmp(gb[0], gb[1], s.OC * sizeof(float)) == 0, "1 vs 2 threads differ");
    KC_EXPECT(memcmp(gb[0], gb[2], s.OC * sizeof(float)) == 0, "1 vs 3 threads differ");
    for (int t = 0; t < 3; t++) free(gb[t]);
    mm_free(&m);
}

/* The sgemms run on the OpenMP team, cut in one block of rows or columns
 * of the output per thread (kernels/cpu/matmul.c): with 2 and 3 threads the
 * forward, dinp (overwritten and accumulated), dweight and dbias equal the
 * 1-thread results bit for bit. The shapes cut rows and columns of every
 * product (and blocks that are not whole 16-wide tiles); the 1-thread
 * forward is also checked against the double reference. */
static void matmul_threads(void) {
    const k_backend *k = k_cpu();
    const mm_shape sh[] = { { 300, 96, 260, 1 }, { 70, 80, 900, 0 }, { 517, 203, 45, 1 } };
    int saved = omp_get_max_threads();
    for (int i = 0; i < (int)(sizeof sh / sizeof sh[0]); i++) {
        mm_shape s = sh[i];
        mm_case m = mm_make(s, 700 + (uint64_t)i);
        size_t nin = (size_t)s.N * s.C, nw = (size_t)s.OC * s.C, nout = (size_t)s.N * s.OC;
        float *out[3], *gi[3], *gs[3], *gw[3], *gb[3];
        for (int t = 0; t < 3; t++) {
            omp_set_num_threads(t + 1);
            out[t] = kc_floats(nout);
            k->matmul_fwd(out[t], m.inp, m.w, s.has_bias ? m.b : NULL, s.N, s.C, s.OC);
            gi[t] = kc_floats(nin);
            gs[t] = kc_floats(nin);
            gw[t] = kc_floats(nw);
            gb[t] = kc_floats(s.OC);
            for (size_t j = 0; j < nin; j++) gi[t][j] = 0.25f, gs[t][j] = NAN;
            for (size_t j = 0; j < nw; j++) gw[t][j] = -0.5f;
            for (int j = 0; j < s.OC; j++) gb[t][j] = 0.125f;
            k->matmul_bwd(gi[t], gw[t], s.has_bias ? gb[t] : NULL, m.dout, m.inp, m.w, s.N, s.C,
                          s.OC);
            k->matmul_bwd_set(gs[t], gw[t], NULL, m.dout, m.inp, m.w, s.N, s.C, s.OC);
        }
        for (int t = 1; t < 3; t++) {
            KC_EXPECT(memcmp(out[0], out[t], nout * sizeof(float)) == 0,
                      "shape %d: forward, 1 vs %d threads differ", i, t + 1);
            KC_EXPECT(memcmp(gi[0], gi[t], nin * sizeof(float)) == 0,
                      "shape %d: dinp (+=), 1 vs %d threads differ", i, t + 1);
            KC_EXPECT(memcmp(gs[0], gs[t], nin * sizeof(float)) == 0,
                      "shape %d: dinp (=), 1 vs %d threads differ", i, t + 1);
            KC_EXPECT(memcmp(gw[0], gw[t], nw * sizeof(float)) == 0,
                      "shape %d: dweight, 1 vs %d threads differ", i, t + 1);
            KC_EXPECT(memcmp(gb[0], gb[t], s.OC * sizeof(float)) == 0,
                      "shape %d: dbias, 1 vs %d threads differ", i, t + 1);
        }
        double *ref = kc_doubles(nout);
        double *in[3] = { m.din, m.dw, s.has_bias ? m.db : NULL };
        mm_ref(&s, in, ref);
        size_t bad = 0;
        for (size_t j = 0; j < nout; j++)
            if (fabs(out[2][j] - ref[j]) > 1e-4 * (1.0 + fabs(ref[j]))) bad++;
        KC_EXPECT(bad == 0, "shape %d: %zu forward elements off the reference", i, bad);
        free(ref);
        for (int t = 0; t < 3; t++) {
            free(out[t]);
            free(gi[t]);
            free(gs[t]);
            free(gw[t]);
            free(gb[t]);
        }
        mm_free(&m);
    }
    omp_set_num_threads(saved);
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "matmul_fwd", matmul_fwd },
        { "matmul_bwd", matmul_bwd },
        { "matmul_bwd_null_outputs", matmul_bwd_null_outputs },
        { "matmul_bwd_accumulates", matmul_bwd_accumulates },
        { "matmul_bwd_bias_threads", matmul_bwd_bias_threads },
        { "matmul_bwd_set", matmul_bwd_set },
        { "matmul_threads", matmul_threads },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
