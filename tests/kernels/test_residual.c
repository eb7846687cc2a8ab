/* test_residual.c -- add and accumulate, exact in fp32, including in place
 * and sizes on both sides of the parallel threshold. */
#include "check.h"
#include "k.h"

static const size_t sizes[] = { 1, 17, 16384 + 67 };
#define N_SIZES (int)(sizeof sizes / sizeof sizes[0])

static void add(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SIZES; i++) {
        size_t n = sizes[i];
        kc_rng r = kc_seed(120 + i);
        float *a = kc_floats(n), *b = kc_floats(n), *out = kc_floats(n);
        kc_fill(a, n, -1, 1, &r);
        kc_fill(b, n, -1, 1, &r);
        k->add(out, a, b, n);
        size_t bad = 0;
        for (size_t j = 0; j < n; j++) bad += out[j] != a[j] + b[j];
        KC_EXPECT(bad == 0, "add n=%zu: %zu elements differ from a + b", n, bad);
        k->add(a, a, b, n); /* in place: out == a */
        for (size_t j = 0; j < n; j++) bad += a[j] != out[j];
        KC_EXPECT(bad == 0, "add in place n=%zu: %zu elements differ", n, bad);
        free(a);
        free(b);
        free(out);
    }
}

static void accumulate(void) {
    const k_backend *k = k_cpu();
    for (int i = 0; i < N_SIZES; i++) {
        size_t n = sizes[i];
        kc_rng r = kc_seed(130 + i);
        float *dst = kc_floats(n), *src = kc_floats(n), *orig = kc_floats(n);
        kc_fill(dst, n, -1, 1, &r);
        kc_fill(src, n, -1, 1, &r);
        memcpy(orig, dst, n * sizeof(float));
        k->accumulate(dst, src, n);
        size_t bad = 0;
        for (size_t j = 0; j < n; j++) bad += dst[j] != orig[j] + src[j];
        KC_EXPECT(bad == 0, "accumulate n=%zu: %zu elements differ from dst + src", n, bad);
        free(dst);
        free(src);
        free(orig);
    }
}

int main(int argc, char **argv) {
    const kc_case cases[] = { { "add", add }, { "accumulate", accumulate } };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
