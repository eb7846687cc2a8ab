/* test_xent.c -- fused softmax + cross-entropy: forward losses against a
 * double reference (ignore rows, logits far from 0, vocabularies larger than
 * one chunk, logits whose exp overflows fp32), the in-place backward against finite differences, ignore
 * rows left exactly zero, and the fused forward + backward equal to the two. */
#include "check.h"
#include "k.h"

typedef struct {
    int N, V, ignore;
    const int32_t *tgt;
} xe_shape;

/* in[0] = logits (N, V); out = losses (N) */
static void xe_ref(void *ctx, double *const *in, double *out) {
    const xe_shape *s = ctx;
    for (int n = 0; n < s->N; n++) {
        const double *x = in[0] + (size_t)n * s->V;
        if (s->tgt[n] == s->ignore) {
            out[n] = 0.0;
            continue;
        }
        double m = x[0], sum = 0.0;
        for (int v = 1; v < s->V; v++) m = x[v] > m ? x[v] : m;
        for (int v = 0; v < s->V; v++) sum += exp(x[v] - m);
        out[n] = m + log(sum) - x[s->tgt[n]];
    }
}

typedef struct {
    int N, V, ignore, ignored_rows;
    float lo, hi;
} xe_dims;

/* ignored_rows: rows 0, 3, 6, ... up to that many get target = ignore. */
static const xe_dims dims[] = {
    { 1, 7, -1, 0, -3, 3 }, { 3, 259, -1, 1, -3, 3 },  { 17, 259, -100, 6, -3, 3 },
    { 5, 7, 2, 2, -3, 3 },  { 3, 1031, -1, 1, -5, 5 }, { 4, 67, -1, 1, 100, 110 },
};
#define N_DIMS (int)(sizeof dims / sizeof dims[0])

typedef struct {
    xe_shape s;
    int32_t *tgt;
    float *logits;
    double *dlogits;
} xe_data;

static xe_data xe_make(xe_dims d, uint64_t seed) {
    kc_rng r = kc_seed(seed);
    size_t nx = (size_t)d.N * d.V;
    xe_data x = { { d.N, d.V, d.ignore, NULL }, kc_ints(d.N), kc_floats(nx), kc_doubles(nx) };
    kc_fill_tokens(x.tgt, d.N, d.V, &r);
    for (int n = 0; n < d.N; n++)
        if (x.tgt[n] == d.ignore) x.tgt[n] = (x.tgt[n] + 1) % d.V; /* only chosen rows */
    for (int i = 0; i < d.ignored_rows && 3 * i < d.N; i++) x.tgt[3 * i] = d.ignore;
    kc_fill(x.logits, nx, d.lo, d.hi, &r);
    kc_to_double(x.dlogits, x.logits, nx);
    x.s.tgt = x.tgt;
    return x;
}

static void xe_free(xe_data *x) {
    free(x->tgt);
    free(x->logits);
    free(x->dlogits);
}

static void xent_fwd(void) {
    const k_backend *k = k_cpu();
    xe_dims all[N_DIMS + 1];
    memcpy(all, dims, sizeof dims);
    all[N_DIMS] = (xe_dims){ 3, 32000, -1, 1, -10, 10 };
    for (int i = 0; i < N_DIMS + 1; i++) {
        xe_data x = xe_make(all[i], 150 + i);
        float *loss = kc_floats(x.s.N);
        double *want = kc_doubles(x.s.N);
        for (int n = 0; n < x.s.N; n++) loss[n] = -1.0f; /* must be overwritten */
        k->xent_fwd(loss, x.logits, x.tgt, x.s.ignore, x.s.N, x.s.V);
        double *in[1] = { x.dlogits };
        xe_ref(&x.s, in, want);
        char what[64];
        snprintf(what, sizeof what, "losses N=%d V=%d", x.s.N, x.s.V);
        KC_CLOSE(loss, want, x.s.N, 1.0, 1e-5, what);
        for (int n = 0; n < x.s.N; n++)
            if (x.tgt[n] == x.s.ignore)
                KC_EXPECT(loss[n] == 0.0f, "ignored row %d has loss %g", n, (double)loss[n]);
        free(loss);
        free(want);
        xe_free(&x);
    }
}

static void xent_bwd(void) {
    const k_backend *k = k_cpu();
    const float dloss = 0.37f;
    for (int i = 0; i < N_DIMS; i++) {
        xe_data x = xe_make(dims[i], 160 + i);
        size_t nx = (size_t)x.s.N * x.s.V;
        double *w = kc_doubles(x.s.N), *fd = kc_doubles(nx);
        for (int n = 0; n < x.s.N; n++) w[n] = (double)dloss;
        double *in[1] = { x.dlogits };
        kc_fd_grad(xe_ref, &x.s, in, 0, nx, w, x.s.N, 1e-4, fd);
        k->xent_bwd(x.logits, x.tgt, dloss, x.s.ignore, x.s.N, x.s.V);
        char what[64];
        snprintf(what, sizeof what, "dlogits N=%d V=%d", x.s.N, x.s.V);
        KC_CLOSE(x.logits, fd, nx, 1e-3, 3e-5, what);
        free(w);
        free(fd);
        xe_free(&x);
    }
}

/* A vocabulary of 32000 (many chunks) against the closed form
 * (softmax - onehot) * dloss in double. */
static void xent_bwd_large_vocab(void) {
    const k_backend *k = k_cpu();
    xe_data x = xe_make((xe_dims){ 3, 32000, -1, 1, -10, 10 }, 170);
    size_t nx = (size_t)3 * 32000;
    double *want = kc_doubles(nx), *loss = kc_doubles(3);
    double *in[1] = { x.dlogits };
    xe_ref(&x.s, in, loss);
    for (int n = 0; n < 3; n++) {
        const double *l = x.dlogits + (size_t)n * 32000;
        double *g = want + (size_t)n * 32000;
        if (x.tgt[n] == x.s.ignore) continue;
        double lse = loss[n] + l[x.tgt[n]];
        for (int v = 0; v < 32000; v++) g[v] = exp(l[v] - lse) * 2.0;
        g[x.tgt[n]] -= 2.0;
    }
    k->xent_bwd(x.logits, x.tgt, 2.0f, x.s.ignore, 3, 32000);
    KC_CLOSE(x.logits, want, nx, 1e-4, 1e-5, "dlogits V=32000");
    free(want);
    free(loss);
    xe_free(&x);
}

static void xent_bwd_ignore_rows_zero(void) {
    const k_backend *k = k_cpu();
    xe_data x = xe_make((xe_dims){ 17, 259, -100, 6, -3, 3 }, 180);
    k->xent_bwd(x.logits, x.tgt, 1.0f, -100, 17, 259);
    int ignored = 0;
    for (int n = 0; n < 17; n++) {
        if (x.tgt[n] != -100) continue;
        ignored++;
        size_t bad = 0;
        for (int v = 0; v < 259; v++) {
            float g = x.logits[(size_t)n * 259 + v];
            bad += g != 0.0f || signbit(g);
        }
        KC_EXPECT(bad == 0, "ignored row %d: %zu gradient elements are not +0", n, bad);
    }
    KC_EXPECT(ignored == 6, "test setup: expected 6 ignored rows, got %d", ignored);
    for (int n = 0; n < 17; n++) {
        if (x.tgt[n] == -100) continue;
        double s = 0.0;
        for (int v = 0; v < 259; v++) s += x.logits[(size_t)n * 259 + v];
        KC_EXPECT(fabs(s) < 1e-5, "row %d: gradient sums to %g, not 0", n, s);
    }
    xe_free(&x);
}

/* xent_fwd_bwd gives xent_fwd's losses and xent_bwd's gradient, bit for
 * bit, on every shape (ignored rows, one chunk and many, large logits). */
static void xent_fwd_bwd_matches(void) {
    const k_backend *k = k_cpu();
    KC_EXPECT(k->xent_fwd_bwd != NULL, "the CPU backend has no xent_fwd_bwd");
    for (int d = 0; d < N_DIMS + 1; d++) {
        xe_dims dd = d < N_DIMS ? dims[d] : (xe_dims){ 5, 32000, -1, 2, -10, 10 };
        xe_data x = xe_make(dd, 190 + (uint64_t)d);
        size_t nx = (size_t)dd.N * dd.V;
        float *fused = kc_floats(nx), *loss = kc_floats(dd.N), *loss2 = kc_floats(dd.N);
        memcpy(fused, x.logits, nx * sizeof(float));
        k->xent_fwd(loss, x.logits, x.tgt, dd.ignore, dd.N, dd.V);
        k->xent_bwd(x.logits, x.tgt, 0.37f, dd.ignore, dd.N, dd.V);
        k->xent_fwd_bwd(loss2, fused, x.tgt, 0.37f, dd.ignore, dd.N, dd.V);
        KC_EXPECT(memcmp(loss, loss2, (size_t)dd.N * sizeof(float)) == 0,
                  "shape %d: losses differ from xent_fwd's", d);
        KC_EXPECT(memcmp(x.logits, fused, nx * sizeof(float)) == 0,
                  "shape %d: gradient differs from xent_bwd's", d);
        free(fused);
        free(loss);
        free(loss2);
        xe_free(&x);
    }
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "xent_fwd", xent_fwd },
        { "xent_bwd", xent_bwd },
        { "xent_bwd_large_vocab", xent_bwd_large_vocab },
        { "xent_bwd_ignore_rows_zero", xent_bwd_ignore_rows_zero },
        { "xent_fwd_bwd_matches", xent_fwd_bwd_matches },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
