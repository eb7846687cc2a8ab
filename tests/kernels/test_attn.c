/* test_attn.c -- the CPU backend's causal GQA attention (attn_fwd /
 * attn_bwd) against a naive full-softmax reference in double: outputs and
 * lse, causal masking, gradients of q, k and v of every head against central
 * finite differences and an analytic double backward, accumulation into
 * dqkv, and bitwise determinism across thread counts and runs. Shapes cover
 * GQA ratios 1, 2 and 4, odd head counts, T below, at and past the tile
 * size, and head dims that are and are not multiples of the vector width. */
#include <omp.h>

#include "check.h"
#include "k.h"

typedef struct {
    int B, T, H, KVH, D;
} shape;

static size_t qkv_len(const shape *s) {
    return (size_t)s->B * s->T * (s->H + 2 * s->KVH) * s->D;
}
static size_t out_len(const shape *s) {
    return (size_t)s->B * s->T * s->H * s->D;
}
static size_t lse_len(const shape *s) {
    return (size_t)s->B * s->H * s->T;
}

/* Pointers to q of head h, k and v of kv head kvh, token (b, i). */
#define QP(s, x, b, i, h) \
    ((x) + ((size_t)(b) * (s)->T + (i)) * ((s)->H + 2 * (s)->KVH) * (s)->D + (size_t)(h) * (s)->D)
#define KP(s, x, b, i, g) QP(s, x, b, i, (s)->H + (g))
#define VP(s, x, b, i, g) QP(s, x, b, i, (s)->H + (s)->KVH + (g))

/* Probabilities p[0..i] of query (b, h, i), full softmax in double; returns
 * the log-sum-exp. */
static double ref_probs(const shape *s, const double *qkv, int b, int h, int i, double *p) {
    int g = h / (s->H / s->KVH);
    const double *q = QP(s, qkv, b, i, h);
    double mx = -INFINITY, sum = 0.0;
    for (int j = 0; j <= i; j++) {
        const double *k = KP(s, qkv, b, j, g);
        double d = 0.0;
        for (int c = 0; c < s->D; c++) d += q[c] * k[c];
        p[j] = d / sqrt((double)s->D);
        mx = p[j] > mx ? p[j] : mx;
    }
    for (int j = 0; j <= i; j++) sum += exp(p[j] - mx);
    for (int j = 0; j <= i; j++) p[j] = exp(p[j] - mx) / sum;
    return mx + log(sum);
}

static void ref_fwd(const shape *s, const double *qkv, double *out, double *lse) {
    double *p = kc_doubles(s->T);
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++)
            for (int i = 0; i < s->T; i++) {
                double l = ref_probs(s, qkv, b, h, i, p);
                if (lse) lse[((size_t)b * s->H + h) * s->T + i] = l;
                double *o = out + ((size_t)b * s->T + i) * s->H * s->D + (size_t)h * s->D;
                for (int c = 0; c < s->D; c++) o[c] = 0.0;
                for (int j = 0; j <= i; j++) {
                    const double *v = VP(s, qkv, b, j, h / (s->H / s->KVH));
                    for (int c = 0; c < s->D; c++) o[c] += p[j] * v[c];
                }
            }
    free(p);
}

/* Analytic backward in double: dqkv (zeroed) = d(sum out * dout)/d qkv. */
static void ref_bwd(const shape *s, const double *qkv, const double *dout, double *dqkv) {
    double *p = kc_doubles(s->T), *dp = kc_doubles(s->T);
    double sc = 1.0 / sqrt((double)s->D);
    for (int b = 0; b < s->B; b++)
        for (int h = 0; h < s->H; h++) {
            int g = h / (s->H / s->KVH);
            for (int i = 0; i < s->T; i++) {
                ref_probs(s, qkv, b, h, i, p);
                const double *dO = dout + ((size_t)b * s->T + i) * s->H * s->D + (size_t)h * s->D;
                double delta = 0.0;
                for (int j = 0; j <= i; j++) {
                    const double *v = VP(s, qkv, b, j, g);
                    dp[j] = 0.0;
                    for (int c = 0; c < s->D; c++) dp[j] += dO[c] * v[c];
                    delta += p[j] * dp[j];
                }
                const double *q = QP(s, qkv, b, i, h);
                double *dq = QP(s, dqkv, b, i, h);
                for (int j = 0; j <= i; j++) {
                    double ds = p[j] * (dp[j] - delta) * sc;
                    const double *k = KP(s, qkv, b, j, g);
                    double *dk = KP(s, dqkv, b, j, g), *dv = VP(s, dqkv, b, j, g);
                    for (int c = 0; c < s->D; c++) {
                        dq[c] += ds * k[c];
                        dk[c] += ds * q[c];
                        dv[c] += p[j] * dO[c];
                    }
                }
            }
        }
    free(p);
    free(dp);
}

/* Kernel run on float inputs: out, lse and (when dout given) dqkv += grad. */
typedef struct {
    float *qkv, *out, *lse, *dout, *dqkv, *delta;
} run;

static run run_alloc(const shape *s, uint64_t seed, float amp) {
    run r = { kc_floats(qkv_len(s)), kc_floats(out_len(s)), kc_floats(lse_len(s)),
              kc_floats(out_len(s)), kc_floats(qkv_len(s)), kc_floats(lse_len(s)) };
    kc_rng rng = kc_seed(seed);
    kc_fill(r.qkv, qkv_len(s), -amp, amp, &rng);
    kc_fill(r.dout, out_len(s), -1.0f, 1.0f, &rng);
    return r;
}

static void run_free(run *r) {
    free(r->qkv);
    free(r->out);
    free(r->lse);
    free(r->dout);
    free(r->dqkv);
    free(r->delta);
}

static void run_kernels(const shape *s, run *r) {
    const k_backend *k = k_cpu();
    k->attn_fwd(r->out, r->lse, r->qkv, s->B, s->T, s->H, s->KVH, s->D);
    k->attn_bwd(r->dqkv, r->delta, r->dout, r->qkv, r->out, r->lse, s->B, s->T, s->H, s->KVH, s->D);
}

/* (B, T, H, KVH, D): ratios 1, 2, 4; odd H and KVH; T = 1, 7, 33, 64, 100,
 * 130, 200 (below, at, and past the 64-row tile, with partial last tiles);
 * D = 16, 64 plus 24 (not a multiple of 16) and 128; an odd number of
 * (batch, kv head) pairs, which the backward takes two at a time. */
static const shape shapes[] = {
    { 1, 1, 2, 2, 16 },   { 2, 7, 4, 2, 16 },    { 1, 33, 3, 3, 64 },  { 1, 100, 4, 1, 16 },
    { 2, 100, 6, 3, 64 }, { 1, 64, 4, 1, 64 },   { 1, 130, 8, 2, 64 }, { 1, 70, 2, 1, 24 },
    { 1, 65, 3, 3, 128 }, { 1, 200, 4, 2, 128 }, { 3, 129, 2, 1, 24 },
};
#define NSHAPES ((int)(sizeof(shapes) / sizeof(shapes[0])))

static double max_abs(const double *x, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static void attn_fwd_reference(void) {
    for (int si = 0; si < NSHAPES; si++) {
        const shape *s = &shapes[si];
        /* amp 2 gives scores of several units: the online softmax has to
         * rescale across key tiles. */
        for (int a = 0; a < 2; a++) {
            float amp = a ? 2.0f : 1.0f;
            run r = run_alloc(s, 100 + si, amp);
            double *qkv = kc_doubles(qkv_len(s)), *out = kc_doubles(out_len(s));
            double *lse = kc_doubles(lse_len(s));
            kc_to_double(qkv, r.qkv, qkv_len(s));
            ref_fwd(s, qkv, out, lse);
            k_cpu()->attn_fwd(r.out, r.lse, r.qkv, s->B, s->T, s->H, s->KVH, s->D);
            char what[96];
            snprintf(what, sizeof what, "out B=%d T=%d H=%d KVH=%d D=%d amp=%g", s->B, s->T, s->H,
                     s->KVH, s->D, amp);
            KC_CLOSE(r.out, out, out_len(s), 0.1, 5e-6 * amp * amp, what);
            snprintf(what, sizeof what, "lse B=%d T=%d H=%d KVH=%d D=%d amp=%g", s->B, s->T, s->H,
                     s->KVH, s->D, amp);
            KC_CLOSE(r.lse, lse, lse_len(s), 1.0, 1e-6, what);
            free(qkv);
            free(out);
            free(lse);
            run_free(&r);
        }
    }
}

/* Changing q, k and v of token p leaves every output before p bitwise the
 * same, and changes the outputs at p. */
static void attn_causal(void) {
    const shape s = { 2, 130, 4, 2, 64 };
    const int p = 70;
    run r = run_alloc(&s, 7, 1.0f);
    float *out0 = kc_floats(out_len(&s)), *lse0 = kc_floats(lse_len(&s));
    const k_backend *k = k_cpu();
    k->attn_fwd(out0, lse0, r.qkv, s.B, s.T, s.H, s.KVH, s.D);
    size_t row = (size_t)(s.H + 2 * s.KVH) * s.D, orow = (size_t)s.H * s.D;
    for (int b = 0; b < s.B; b++)
        for (size_t c = 0; c < row; c++) r.qkv[((size_t)b * s.T + p) * row + c] *= -1.5f;
    k->attn_fwd(r.out, r.lse, r.qkv, s.B, s.T, s.H, s.KVH, s.D);
    for (int b = 0; b < s.B; b++) {
        const float *o0 = out0 + (size_t)b * s.T * orow, *o1 = r.out + (size_t)b * s.T * orow;
        KC_EXPECT(memcmp(o0, o1, (size_t)p * orow * sizeof(float)) == 0,
                  "batch %d: outputs before token %d depend on it", b, p);
        KC_EXPECT(memcmp(o0 + p * orow, o1 + p * orow, orow * sizeof(float)) != 0,
                  "batch %d: output of token %d ignores its own k/v", b, p);
        for (int h = 0; h < s.H; h++) {
            size_t at = ((size_t)b * s.H + h) * s.T;
            KC_EXPECT(memcmp(lse0 + at, r.lse + at, (size_t)p * sizeof(float)) == 0,
                      "batch %d head %d: lse before token %d depends on it", b, h, p);
        }
    }
    free(out0);
    free(lse0);
    run_free(&r);
}

/* ---- backward ---- */
typedef struct {
    const shape *s;
} fd_ctx;

static void fd_fwd(void *ctx, double *const *in, double *out) {
    const fd_ctx *c = ctx;
    ref_fwd(c->s, in[0], out, NULL);
}

/* dqkv of the kernel vs central differences of the double reference: every
 * coordinate for small inputs, else a deterministic sample that still hits
 * q, k and v of every head of every batch element. */
static void check_grad_fd(const shape *s, uint64_t seed) {
    size_t nq = qkv_len(s), no = out_len(s);
    run r = run_alloc(s, seed, 1.0f);
    run_kernels(s, &r);
    double *qkv = kc_doubles(nq), *w = kc_doubles(no), *out = kc_doubles(no);
    kc_to_double(qkv, r.qkv, nq);
    kc_to_double(w, r.dout, no);
    double *in[1] = { qkv };
    fd_ctx c = { s };
    const double h = 1e-4;
    int slots = s->H + 2 * s->KVH;
    size_t total = nq <= 2048 ? nq : 240;
    double worst = 0.0, scale = 0.0;
    double *fd = kc_doubles(total);
    float *got = kc_floats(total);
    kc_rng rng = kc_seed(seed ^ 0x5eed);
    for (size_t n = 0; n < total; n++) {
        size_t idx = n;
        if (total < nq) {
            /* Cycle through the head slots (q heads, k heads, v heads) and
             * batch elements; random token and channel. */
            int slot = (int)(n % (size_t)slots);
            int b = (int)((n / (size_t)slots) % (size_t)s->B);
            int t = (int)(kc_next(&rng) % (uint64_t)s->T);
            int d = (int)(kc_next(&rng) % (uint64_t)s->D);
            idx = (((size_t)b * s->T + t) * slots + slot) * s->D + d;
        }
        double x0 = qkv[idx];
        qkv[idx] = x0 + h;
        double Lp = kc_loss(fd_fwd, &c, in, w, out, no);
        qkv[idx] = x0 - h;
        double Lm = kc_loss(fd_fwd, &c, in, w, out, no);
        qkv[idx] = x0;
        fd[n] = (Lp - Lm) / (2.0 * h);
        got[n] = r.dqkv[idx];
    }
    scale = max_abs(fd, total);
    worst = kc_max_rel_err(got, fd, total, scale);
    KC_EXPECT(scale > 0.0 && worst < 3e-6,
              "dqkv vs finite differences B=%d T=%d H=%d KVH=%d D=%d: "
              "err %.3g of max %.3g",
              s->B, s->T, s->H, s->KVH, s->D, worst, scale);
    free(fd);
    free(got);
    free(qkv);
    free(w);
    free(out);
    run_free(&r);
}

static void attn_bwd_fd(void) {
    const shape fds[] = {
        { 2, 7, 4, 2, 16 },  { 1, 33, 3, 3, 64 }, { 1, 100, 4, 1, 16 },
        { 1, 70, 6, 3, 24 }, { 1, 1, 2, 1, 16 },
    };
    for (int i = 0; i < (int)(sizeof(fds) / sizeof(fds[0])); i++) check_grad_fd(&fds[i], 200 + i);
}

/* Every coordinate of dqkv against the analytic double backward (itself
 * the derivative the finite differences above sample). */
static void attn_bwd_reference(void) {
    for (int si = 0; si < NSHAPES; si++) {
        const shape *s = &shapes[si];
        size_t nq = qkv_len(s), no = out_len(s);
        run r = run_alloc(s, 300 + si, 1.0f);
        run_kernels(s, &r);
        double *qkv = kc_doubles(nq), *dout = kc_doubles(no), *want = kc_doubles(nq);
        kc_to_double(qkv, r.qkv, nq);
        kc_to_double(dout, r.dout, no);
        ref_bwd(s, qkv, dout, want);
        double scale = max_abs(want, nq);
        double e = kc_max_rel_err(r.dqkv, want, nq, scale);
        KC_EXPECT(e < 5e-6, "dqkv B=%d T=%d H=%d KVH=%d D=%d: err %.3g of max %.3g", s->B, s->T,
                  s->H, s->KVH, s->D, e, scale);
        free(qkv);
        free(dout);
        free(want);
        run_free(&r);
    }
}

/* dqkv accumulates: starting from X gives X + (the gradient from zero). */
static void attn_bwd_accumulates(void) {
    const shape s = { 2, 100, 4, 2, 64 };
    size_t nq = qkv_len(&s);
    run r = run_alloc(&s, 17, 1.0f);
    run_kernels(&s, &r);
    float *g0 = kc_floats(nq), *x = kc_floats(nq);
    memcpy(g0, r.dqkv, nq * sizeof(float));
    kc_rng rng = kc_seed(18);
    kc_fill(x, nq, -1.0f, 1.0f, &rng);
    memcpy(r.dqkv, x, nq * sizeof(float));
    k_cpu()->attn_bwd(r.dqkv, r.delta, r.dout, r.qkv, r.out, r.lse, s.B, s.T, s.H, s.KVH, s.D);
    size_t bad = 0;
    for (size_t i = 0; i < nq; i++) bad += r.dqkv[i] != x[i] + g0[i];
    KC_EXPECT(bad == 0, "%zu of %zu dqkv elements are not X + grad", bad, nq);
    free(g0);
    free(x);
    run_free(&r);
}

/* out, lse and dqkv are bitwise the same on 1, 2 and 3 threads. */
static void attn_deterministic_threads(void) {
    const shape s = { 1, 300, 6, 2, 64 };
    size_t nq = qkv_len(&s), no = out_len(&s), nl = lse_len(&s);
    int saved = omp_get_max_threads();
    run r[3];
    for (int n = 0; n < 3; n++) {
        r[n] = run_alloc(&s, 23, 1.0f);
        omp_set_num_threads(n + 1);
        run_kernels(&s, &r[n]);
    }
    omp_set_num_threads(saved);
    for (int n = 1; n < 3; n++) {
        KC_EXPECT(memcmp(r[0].out, r[n].out, no * sizeof(float)) == 0,
                  "out differs between 1 and %d threads", n + 1);
        KC_EXPECT(memcmp(r[0].lse, r[n].lse, nl * sizeof(float)) == 0,
                  "lse differs between 1 and %d threads", n + 1);
        KC_EXPECT(memcmp(r[0].dqkv, r[n].dqkv, nq * sizeof(float)) == 0,
                  "dqkv differs between 1 and %d threads", n + 1);
    }
    for (int n = 0; n < 3; n++) run_free(&r[n]);
}

/* The same for more shapes, on 1, 2 and 4 threads (more threads than this
 * machine may have cores, so the backward's ordered dQ adds wait on threads
 * that are not running), and twice on the same thread count: GQA with D 128
 * and a partial last tile, an odd number of (batch, kv head) pairs with D
 * 24, and T below the tile. */
static void attn_deterministic_shapes(void) {
    static const shape ds[] = {
        { 1, 257, 4, 1, 128 },
        { 3, 200, 6, 3, 24 },
        { 2, 40, 2, 2, 64 },
    };
    static const int threads[] = { 1, 2, 4, 4 };
    int saved = omp_get_max_threads();
    for (int si = 0; si < (int)(sizeof(ds) / sizeof(ds[0])); si++) {
        const shape *s = &ds[si];
        size_t nq = qkv_len(s), no = out_len(s), nl = lse_len(s);
        run r[4];
        for (int n = 0; n < 4; n++) {
            r[n] = run_alloc(s, 31 + si, 1.5f);
            omp_set_num_threads(threads[n]);
            run_kernels(s, &r[n]);
        }
        omp_set_num_threads(saved);
        for (int n = 1; n < 4; n++) {
            KC_EXPECT(memcmp(r[0].out, r[n].out, no * sizeof(float)) == 0 &&
                          memcmp(r[0].lse, r[n].lse, nl * sizeof(float)) == 0 &&
                          memcmp(r[0].dqkv, r[n].dqkv, nq * sizeof(float)) == 0,
                      "B=%d T=%d H=%d KVH=%d D=%d: results on %d threads (run %d) differ from 1 "
                      "thread",
                      s->B, s->T, s->H, s->KVH, s->D, threads[n], n);
        }
        for (int n = 0; n < 4; n++) run_free(&r[n]);
    }
}

int main(int argc, char **argv) {
    static const kc_case cases[] = {
        { "attn_fwd_reference", attn_fwd_reference },
        { "attn_causal", attn_causal },
        { "attn_bwd_fd", attn_bwd_fd },
        { "attn_bwd_reference", attn_bwd_reference },
        { "attn_bwd_accumulates", attn_bwd_accumulates },
        { "attn_deterministic_threads", attn_deterministic_threads },
        { "attn_deterministic_shapes", attn_deterministic_shapes },
    };
    return kc_main(argc, argv, cases, (int)(sizeof(cases) / sizeof(cases[0])));
}
