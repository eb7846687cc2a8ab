/* test_swiglu.c -- SwiGLU over [gate | up]: forward against a double
 * reference (including saturated gates), backward against finite
 * differences, accumulation. */
#include "check.h"
#include "k.h"

typedef struct {
    int N, F;
} sw_shape;

static const sw_shape shapes[] = { { 1, 5 }, { 3, 64 }, { 17, 67 } };
#define N_SHAPES (int)(sizeof shapes / sizeof shapes[0])

/* in[0] = inp (N, 2F) */
static void sw_ref(void *ctx, double *const *in, double *out) {
    const sw_shape *s = ctx;
    for (int n = 0; n < s->N; n++)
        for (int i = 0; i < s->F; i++) {
            double g = in[0][(size_t)n * 2 * s->F + i];
            double u = in[0][(size_t)n * 2 * s->F + s->F + i];
            out[(size_t)n * s->F + i] = g / (1.0 + exp(-g)) * u;
        }
}

static void swiglu_fwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SHAPES + 1; i++) {
        /* the last run puts gates far into both tails of the sigmoid */
        sw_shape s = i < N_SHAPES ? shapes[i] : (sw_shape){ 8, 67 };
        float lo = i < N_SHAPES ? -4.0f : -120.0f, hi = -lo;
        kc_rng r = kc_seed(90 + i);
        size_t nin = (size_t)s.N * 2 * s.F, nout = (size_t)s.N * s.F;
        float *inp = kc_floats(nin), *out = kc_floats(nout);
        double *din = kc_doubles(nin), *want = kc_doubles(nout);
        kc_fill(inp, nin, lo, hi, &r);
        kc_to_double(din, inp, nin);
        k->swiglu_fwd(out, inp, s.N, s.F);
        double *in[1] = { din };
        sw_ref(&s, in, want);
        char what[64];
        snprintf(what, sizeof what, "out N=%d F=%d range %g", s.N, s.F, (double)hi);
        KC_CLOSE(out, want, nout, 1e-3, 1e-5, what);
        free(inp);
        free(out);
        free(din);
        free(want);
    }
}

static void swiglu_bwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SHAPES; i++) {
        sw_shape s = shapes[i];
        kc_rng r = kc_seed(100 + i);
        size_t nin = (size_t)s.N * 2 * s.F, nout = (size_t)s.N * s.F;
        float *inp = kc_floats(nin), *dout = kc_floats(nout), *dinp = kc_floats(nin);
        double *din = kc_doubles(nin), *ddout = kc_doubles(nout), *fd = kc_doubles(nin);
        kc_fill(inp, nin, -4, 4, &r);
        kc_fill(dout, nout, -1, 1, &r);
        kc_to_double(din, inp, nin);
        kc_to_double(ddout, dout, nout);
        k->swiglu_bwd(dinp, dout, inp, s.N, s.F);
        double *in[1] = { din };
        kc_fd_grad(sw_ref, &s, in, 0, nin, ddout, nout, 1e-4, fd);
        char what[64];
        snprintf(what, sizeof what, "dinp N=%d F=%d", s.N, s.F);
        KC_CLOSE(dinp, fd, nin, 1e-2, 1e-5, what);
        free(inp);
        free(dout);
        free(dinp);
        free(din);
        free(ddout);
        free(fd);
    }
}

static void swiglu_bwd_accumulates(void) {
    const k_backend *k = k_cpu();
    sw_shape s = { 17, 67 };
    kc_rng r = kc_seed(110);
    size_t nin = (size_t)s.N * 2 * s.F, nout = (size_t)s.N * s.F;
    float *inp = kc_floats(nin), *dout = kc_floats(nout);
    float *once = kc_floats(nin), *twice = kc_floats(nin);
    kc_fill(inp, nin, -4, 4, &r);
    kc_fill(dout, nout, -1, 1, &r);
    k->swiglu_bwd(once, dout, inp, s.N, s.F);
    k->swiglu_bwd(twice, dout, inp, s.N, s.F);
    k->swiglu_bwd(twice, dout, inp, s.N, s.F);
    double *want = kc_doubles(nin);
    for (size_t j = 0; j < nin; j++) want[j] = 2.0 * once[j];
    KC_CLOSE(twice, want, nin, 1e-2, 1e-6, "dinp after two calls");
    free(inp);
    free(dout);
    free(once);
    free(twice);
    free(want);
}

/* swiglu_bwd_set overwrites dinp (NaN included) with what swiglu_bwd adds
 * to zeros, bit for bit. */
static void swiglu_bwd_set(void) {
    const k_backend *k = k_cpu();
    KC_EXPECT(k->swiglu_bwd_set != NULL, "the CPU backend has no swiglu_bwd_set");
    sw_shape s = { 17, 67 };
    kc_rng r = kc_seed(130);
    size_t nin = (size_t)s.N * 2 * s.F, nout = (size_t)s.N * s.F;
    float *inp = kc_floats(nin), *dout = kc_floats(nout);
    float *d1 = kc_floats(nin), *d2 = kc_floats(nin);
    kc_fill(inp, nin, -4, 4, &r);
    kc_fill(dout, nout, -1, 1, &r);
    for (size_t j = 0; j < nin; j++) d2[j] = j % 2 ? NAN : 3.0f;
    k->swiglu_bwd(d1, dout, inp, s.N, s.F);
    k->swiglu_bwd_set(d2, dout, inp, s.N, s.F);
    size_t bad = 0;
    for (size_t j = 0; j < nin; j++) bad += !(d1[j] == d2[j]);
    KC_EXPECT(bad == 0, "%zu elements differ from swiglu_bwd on zeros", bad);
    free(inp);
    free(dout);
    free(d1);
    free(d2);
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "swiglu_fwd", swiglu_fwd },
        { "swiglu_bwd", swiglu_bwd },
        { "swiglu_bwd_accumulates", swiglu_bwd_accumulates },
        { "swiglu_bwd_set", swiglu_bwd_set },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
