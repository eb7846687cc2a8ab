/* test_embed.c -- embedding lookup against a double reference; the
 * scatter-add backward against finite differences (with repeated tokens),
 * accumulation, and independence from the number of threads. */
#include <omp.h>

#include "check.h"
#include "k.h"

typedef struct {
    int N, C, V;
    const int32_t *tok;
} em_shape;

/* in[0] = wte (V, C) */
static void em_ref(void *ctx, double *const *in, double *out) {
    const em_shape *s = ctx;
    for (int n = 0; n < s->N; n++)
        for (int c = 0; c < s->C; c++) out[n * s->C + c] = in[0][s->tok[n] * s->C + c];
}

static const int dims[][3] = { { 1, 5, 7 }, { 17, 67, 7 }, { 3, 64, 259 }, { 40, 130, 3 } };
#define N_DIMS (int)(sizeof dims / sizeof dims[0])

static void embed_fwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_DIMS; i++) {
        int N = dims[i][0], C = dims[i][1], V = dims[i][2];
        kc_rng r = kc_seed(10 + i);
        int32_t *tok = kc_ints(N);
        float *wte = kc_floats((size_t)V * C), *out = kc_floats((size_t)N * C);
        kc_fill_tokens(tok, N, V, &r);
        kc_fill(wte, (size_t)V * C, -1, 1, &r);
        k->embed_fwd(out, tok, wte, N, C);
        int ok = 1;
        for (int n = 0; n < N; n++)
            ok &= memcmp(out + (size_t)n * C, wte + (size_t)tok[n] * C, C * sizeof(float)) == 0;
        KC_EXPECT(ok, "row of out is not the token's row of wte (N=%d C=%d V=%d)", N, C, V);
        free(tok);
        free(wte);
        free(out);
    }
}

static void embed_bwd(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_DIMS; i++) {
        int N = dims[i][0], C = dims[i][1], V = dims[i][2];
        kc_rng r = kc_seed(20 + i);
        int32_t *tok = kc_ints(N);
        size_t nw = (size_t)V * C, nout = (size_t)N * C;
        float *wte = kc_floats(nw), *dout = kc_floats(nout), *dwte = kc_floats(nw);
        double *dw = kc_doubles(nw), *ddout = kc_doubles(nout), *fd = kc_doubles(nw);
        kc_fill_tokens(tok, N, V, &r);
        kc_fill(wte, nw, -1, 1, &r);
        kc_fill(dout, nout, -1, 1, &r);
        kc_to_double(dw, wte, nw);
        kc_to_double(ddout, dout, nout);
        k->embed_bwd(dwte, dout, tok, N, C);
        em_shape s = { N, C, V, tok };
        double *in[1] = { dw };
        kc_fd_grad(em_ref, &s, in, 0, nw, ddout, nout, 1e-3, fd);
        char what[64];
        snprintf(what, sizeof what, "dwte N=%d C=%d V=%d", N, C, V);
        KC_CLOSE(dwte, fd, nw, 1.0, 1e-6, what);
        free(tok);
        free(wte);
        free(dout);
        free(dwte);
        free(dw);
        free(ddout);
        free(fd);
    }
}

static void embed_bwd_accumulates(void) {
    const k_backend *k = k_cpu();
    int N = 17, C = 67, V = 7;
    kc_rng r = kc_seed(30);
    int32_t *tok = kc_ints(N);
    float *dout = kc_floats((size_t)N * C), *once = kc_floats((size_t)V * C),
          *twice = kc_floats((size_t)V * C);
    kc_fill_tokens(tok, N, V, &r);
    kc_fill(dout, (size_t)N * C, -1, 1, &r);
    k->embed_bwd(once, dout, tok, N, C);
    k->embed_bwd(twice, dout, tok, N, C);
    k->embed_bwd(twice, dout, tok, N, C);
    double *want = kc_doubles((size_t)V * C);
    for (size_t j = 0; j < (size_t)V * C; j++) want[j] = 2.0 * once[j];
    KC_CLOSE(twice, want, (size_t)V * C, 1.0, 1e-6, "dwte after two calls");
    free(tok);
    free(dout);
    free(once);
    free(twice);
    free(want);
}

/* Many rows hitting few tokens: the sum is the same bits with 1, 2 and 3
 * threads. */
static void embed_bwd_threads(void) {
    const k_backend *k = k_cpu();
    int N = 2048, C = 200, V = 5;
    kc_rng r = kc_seed(40);
    int32_t *tok = kc_ints(N);
    float *dout = kc_floats((size_t)N * C);
    kc_fill_tokens(tok, N, V, &r);
    kc_fill(dout, (size_t)N * C, -1, 1, &r);
    float *g[3];
    for (int t = 0; t < 3; t++) {
        g[t] = kc_floats((size_t)V * C);
        omp_set_num_threads(t + 1);
        k->embed_bwd(g[t], dout, tok, N, C);
    }
    KC_EXPECT(memcmp(g[0], g[1], (size_t)V * C * sizeof(float)) == 0, "1 vs 2 threads differ");
    KC_EXPECT(memcmp(g[0], g[2], (size_t)V * C * sizeof(float)) == 0, "1 vs 3 threads differ");
    for (int t = 0; t < 3; t++) free(g[t]);
    free(tok);
    free(dout);
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "embed_fwd", embed_fwd },
        { "embed_bwd", embed_bwd },
        { "embed_bwd_accumulates", embed_bwd_accumulates },
        { "embed_bwd_threads", embed_bwd_threads },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
