/* test_rope.c -- the CPU backend's E² RoPE (rope_fwd / rope_bwd) against a
 * double-precision reference: standard RoPE at g = 1, t = 0; relative
 * positions preserved under the offset t; sinks that ignore t; exact
 * fractional positions far into the window; backward = finite differences;
 * forward then backward = identity; PoSE chunk skip biases (a
 * hand-computed case, the reference, finite differences). */
#include "check.h"
#include "k.h"

/* Reference rotation in double, rotate_half pairing; dir = -1 inverts. */
static void ref_rope(double *x, int B, int T, int nh, int D, int row_stride, const k_rope *r,
                     double dir) {
    int half = D / 2;
    for (int b = 0; b < B; b++)
        for (int m = 0; m < T; m++) {
            double pos = ((double)m +
                          (m < r->n_sink ? 0.0 : (double)r->t[b] + (double)k_rope_skip(r, b, m))) /
                         (double)r->g[b];
            double *row = x + ((size_t)b * T + m) * row_stride;
            for (int h = 0; h < nh; h++)
                for (int j = 0; j < half; j++) {
                    double a = pos * pow((double)r->theta, -2.0 * j / D);
                    double c = cos(a), s = dir * sin(a);
                    double *x1 = row + h * D + j, *x2 = x1 + half;
                    double u = *x1, v = *x2;
                    *x1 = u * c - v * s;
                    *x2 = v * c + u * s;
                }
        }
}

/* Runs rope_fwd on a random strided tensor and compares it with the
 * reference, including the untouched channels past nh*D. */
static void check_against_reference(int B, int T, int nh, int D, int extra, k_rope *r, double tol,
                                    uint64_t seed, const char *what) {
    const k_backend *k = k_cpu();
    int rs = nh * D + extra;
    size_t n = (size_t)B * T * rs;
    kc_rng rng = kc_seed(seed);
    float *x = kc_floats(n);
    double *want = kc_doubles(n);
    kc_fill(x, n, -1.0f, 1.0f, &rng);
    kc_to_double(want, x, n);
    ref_rope(want, B, T, nh, D, rs, r, 1.0);
    k->rope_fwd(x, B, T, nh, D, rs, r);
    KC_CLOSE(x, want, n, 1.0, tol, what);
    free(x);
    free(want);
}

static void rope_standard(void) {
    float g[2] = { 1.0f, 1.0f };
    int32_t t[2] = { 0, 0 };
    k_rope r = { 10000.0f, 4, g, t, 0, NULL };
    check_against_reference(2, 150, 3, 64, 5, &r, 2e-6, 1, "D=64 strided");
    check_against_reference(1, 70, 2, 8, 0, &r, 2e-6, 2, "D=8");
    /* D/2 above one pass of held pairs, and another base. */
    r.theta = 500000.0f;
    check_against_reference(1, 9, 1, 264, 3, &r, 2e-6, 3, "D=264");
}

/* q (head 0) . k (head 1) between non-sink tokens depends only on (m - n)/g:
 * sequence 1 differs from sequence 0 only in its offset t. */
static void rope_shift_invariance(void) {
    const k_backend *k = k_cpu();
    const int T = 80, D = 64, rs = 2 * D, ns = 4;
    float g[2] = { 2.5f, 2.5f };
    int32_t t[2] = { 0, 977 };
    k_rope r = { 10000.0f, ns, g, t, 0, NULL };
    size_t per = (size_t)T * rs;
    kc_rng rng = kc_seed(11);
    float *x = kc_floats(2 * per);
    kc_fill(x, per, -1.0f, 1.0f, &rng);
    memcpy(x + per, x, per * sizeof(float));
    k->rope_fwd(x, 2, T, 2, D, rs, &r);
    double worst = 0.0, moved = 0.0;
    for (int m = 0; m < T; m++)
        for (int n = 0; n < T; n++) {
            double d0 = 0.0, d1 = 0.0;
            for (int c = 0; c < D; c++) {
                d0 += (double)x[m * rs + c] * x[n * rs + D + c];
                d1 += (double)x[per + m * rs + c] * x[per + n * rs + D + c];
            }
            if (m >= ns && n >= ns)
                worst = fabs(d0 - d1) > worst ? fabs(d0 - d1) : worst;
            else if ((m < ns) != (n < ns))
                moved = fabs(d0 - d1) > moved ? fabs(d0 - d1) : moved;
        }
    KC_EXPECT(worst < 2e-5, "non-sink q.k changed by %.3g under a shift of t", worst);
    /* The offset must actually move sinks against the rest. */
    KC_EXPECT(moved > 1e-2, "sink/non-sink q.k unchanged by t (%.3g)", moved);
    free(x);
}

/* Rows m < n_sink are rotated by m/g whatever t is (bitwise the same). */
static void rope_sinks_ignore_t(void) {
    const k_backend *k = k_cpu();
    const int T = 12, D = 16, nh = 2, rs = nh * D, ns = 5;
    float g[2] = { 3.0f, 3.0f };
    int32_t t[2] = { 0, 4093 };
    k_rope r = { 10000.0f, ns, g, t, 0, NULL };
    size_t per = (size_t)T * rs;
    kc_rng rng = kc_seed(5);
    float *x = kc_floats(2 * per);
    kc_fill(x, per, -1.0f, 1.0f, &rng);
    memcpy(x + per, x, per * sizeof(float));
    k->rope_fwd(x, 2, T, nh, D, rs, &r);
    KC_EXPECT(memcmp(x, x + per, (size_t)ns * rs * sizeof(float)) == 0, "sink rows depend on t");
    int differ = 0;
    for (size_t i = (size_t)ns * rs; i < per; i++) differ += x[i] != x[per + i];
    KC_EXPECT(differ > 0, "non-sink rows ignore t");
    free(x);
}

/* g = 3, t = 7 up to m = 65600: fractional positions near 21870, where an
 * fp32 position would be off by ~1e-3 rad; the kernel must match double. */
static void rope_fractional_exact(void) {
    float g[2] = { 3.0f, 7.0f };
    int32_t t[2] = { 7, 123456 };
    k_rope r = { 10000.0f, 4, g, t, 0, NULL };
    check_against_reference(1, 65600, 1, 64, 0, &r, 2e-6, 21, "g=3 t=7");
    check_against_reference(2, 3000, 2, 128, 2, &r, 2e-6, 22, "g=3,7");
}

/* PoSE chunks, hand-computed: one head, D = 2 (angle = pos), x = (1, 0)
 * per row, so row m becomes (cos pos_m, sin pos_m). Sequence 0: chunks
 * start at 0 and 3 with skips 0 and 5, g = 1, t = 0, no sinks: positions
 * 0 1 2 8 9 10 11 12. Sequence 1: g = 2, t = 1, 1 sink, chunks at 0 (skip
 * 2) and 5 (skip 9), token 0 a sink (n_sink = 1; sequence 0's
 * token 0 is at 0 either way): 0, (1+1+2)/2 = 2, 2.5, 3, 3.5, (5+1+9)/2 = 7.5, 8, 8.5. */
static void rope_pose_chunks_hand(void) {
    const k_backend *k = k_cpu();
    float g[2] = { 1.0f, 2.0f };
    int32_t t[2] = { 0, 1 };
    int32_t ck[2 * 2 * 2] = { 0, 0, 3, 5, 0, 2, 5, 9 };
    static const double want_pos[2][8] = { { 0, 1, 2, 8, 9, 10, 11, 12 },
                                           { 0, 2, 2.5, 3, 3.5, 7.5, 8, 8.5 } };
    k_rope r = { 1.0f, 1, g, t, 2, ck };
    float x[2 * 8 * 2];
    for (int i = 0; i < 16; i++) {
        x[2 * i] = 1.0f;
        x[2 * i + 1] = 0.0f;
    }
    k->rope_fwd(x, 2, 8, 1, 2, 2, &r);
    for (int b = 0; b < 2; b++)
        for (int m = 0; m < 8; m++) {
            double p = want_pos[b][m];
            const float *row = x + (b * 8 + m) * 2;
            KC_EXPECT(fabs(row[0] - cos(p)) < 1e-6 && fabs(row[1] - sin(p)) < 1e-6,
                      "seq %d token %d: (%g, %g), want position %g", b, m, row[0], row[1], p);
        }
}

/* Chunks in a long sequence with several kernel blocks: a chunk boundary
 * inside a block and one on a block's first row, against the reference. */
static void rope_pose_chunks_reference(void) {
    float g[2] = { 1.0f, 3.0f };
    int32_t t[2] = { 0, 17 };
    int32_t ck[2 * 3 * 2] = { 0, 0, 100, 400, 128, 900, 0, 5, 64, 70, 65, 2000 };
    k_rope r = { 10000.0f, 0, g, t, 3, ck };
    check_against_reference(2, 300, 2, 64, 3, &r, 2e-6, 23, "pose chunks");
    r.n_sink = 4;
    check_against_reference(2, 300, 2, 64, 3, &r, 2e-6, 24, "pose chunks, 4 sinks");
}

/* ---- backward ---- */
typedef struct {
    int B, T, nh, D, rs;
    const k_rope *r;
} rope_ctx;

static void rope_ref_fwd(void *ctx_, double *const *in, double *out) {
    const rope_ctx *c = ctx_;
    size_t n = (size_t)c->B * c->T * c->rs;
    memcpy(out, in[0], n * sizeof(double));
    ref_rope(out, c->B, c->T, c->nh, c->D, c->rs, c->r, 1.0);
}

/* rope_bwd against finite differences of the reference, for one k_rope. */
static void rope_bwd_fd_check(const k_rope *r, uint64_t seed, const char *what) {
    const k_backend *k = k_cpu();
    rope_ctx c = { 2, 10, 2, 8, 2 * 8 + 3, r };
    size_t n = (size_t)c.B * c.T * c.rs;
    kc_rng rng = kc_seed(seed);
    float *xf = kc_floats(n), *dx = kc_floats(n);
    double *x = kc_doubles(n), *w = kc_doubles(n), *want = kc_doubles(n);
    kc_fill(xf, n, -1.0f, 1.0f, &rng);
    kc_fill(dx, n, -1.0f, 1.0f, &rng);
    kc_to_double(x, xf, n);
    kc_to_double(w, dx, n);
    double *in[1] = { x };
    kc_fd_grad(rope_ref_fwd, &c, in, 0, n, w, n, 1e-4, want);
    k->rope_bwd(dx, c.B, c.T, c.nh, c.D, c.rs, r);
    KC_CLOSE(dx, want, n, 1.0, 1e-6, what);
    free(xf);
    free(dx);
    free(x);
    free(w);
    free(want);
}

static void rope_bwd_fd(void) {
    float g[2] = { 1.5f, 4.0f };
    int32_t t[2] = { 3, 40 };
    k_rope r = { 10000.0f, 2, g, t, 0, NULL };
    rope_bwd_fd_check(&r, 31, "rope_bwd vs finite differences");
}

/* The backward with PoSE chunks: finite differences of the reference. */
static void rope_bwd_fd_chunks(void) {
    float g[2] = { 1.0f, 2.0f };
    int32_t t[2] = { 0, 3 };
    int32_t ck[2 * 2 * 2] = { 0, 0, 4, 37, 0, 1, 6, 250 };
    k_rope r = { 10000.0f, 1, g, t, 2, ck };
    rope_bwd_fd_check(&r, 32, "rope_bwd with chunks vs finite differences");
}

static void rope_roundtrip(void) {
    const k_backend *k = k_cpu();
    const int B = 2, T = 300, nh = 4, D = 128, rs = nh * D;
    float g[2] = { 16.0f, 1.0f };
    int32_t t[2] = { 60000, 0 };
    k_rope r = { 10000.0f, 4, g, t, 0, NULL };
    size_t n = (size_t)B * T * rs;
    kc_rng rng = kc_seed(41);
    float *x = kc_floats(n);
    double *want = kc_doubles(n);
    kc_fill(x, n, -1.0f, 1.0f, &rng);
    kc_to_double(want, x, n);
    k->rope_fwd(x, B, T, nh, D, rs, &r);
    k->rope_bwd(x, B, T, nh, D, rs, &r);
    KC_CLOSE(x, want, n, 1.0, 1e-6, "bwd(fwd(x)) vs x");
    free(x);
    free(want);
}

int main(int argc, char **argv) {
    static const kc_case cases[] = {
        { "rope_standard", rope_standard },
        { "rope_shift_invariance", rope_shift_invariance },
        { "rope_sinks_ignore_t", rope_sinks_ignore_t },
        { "rope_fractional_exact", rope_fractional_exact },
        { "rope_bwd_fd", rope_bwd_fd },
        { "rope_roundtrip", rope_roundtrip },
        { "rope_pose_chunks_hand", rope_pose_chunks_hand },
        { "rope_pose_chunks_reference", rope_pose_chunks_reference },
        { "rope_bwd_fd_chunks", rope_bwd_fd_chunks },
    };
    return kc_main(argc, argv, cases, (int)(sizeof(cases) / sizeof(cases[0])));
}
