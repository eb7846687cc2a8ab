/* test_memory.c -- CPU "device" memory: aligned and zeroed allocations,
 * zero, and the copies in and out. */
#include "check.h"
#include "k.h"

static void alloc_aligned_zeroed(void) {
    const k_backend *k = k_cpu();
    /* the last two take the huge-page path (2 MiB aligned) */
    const size_t sizes[] = { 0, 1, 3, 64, 1000, 1 << 20, (8 << 20) + 3, 33 << 20 };
    for (int i = 0; i < 8; i++) {
        unsigned char *p = k->alloc(sizes[i]);
        KC_EXPECT(p != NULL, "alloc(%zu) returned NULL", sizes[i]);
        if (p == NULL) continue;
        KC_EXPECT((uintptr_t)p % 64 == 0, "alloc(%zu) not 64-byte aligned", sizes[i]);
        KC_EXPECT(sizes[i] < (8u << 20) || (uintptr_t)p % (2u << 20) == 0,
                  "alloc(%zu) not 2 MiB aligned", sizes[i]);
        size_t nonzero = 0;
        for (size_t j = 0; j < sizes[i]; j++) nonzero += p[j] != 0;
        KC_EXPECT(nonzero == 0, "alloc(%zu): %zu bytes not zero", sizes[i], nonzero);
        k->free(p);
    }
    KC_EXPECT(k->alloc(SIZE_MAX - 8) == NULL, "alloc of SIZE_MAX - 8 bytes did not fail");
}

static void copies_round_trip(void) {
    const k_backend *k = k_cpu();
    size_t n = 1001;
    kc_rng r = kc_seed(140);
    float *src = kc_floats(n), *back = kc_floats(n);
    kc_fill(src, n, -1, 1, &r);
    float *dev = k->alloc(n * sizeof(float));
    k->upload(dev, src, n);
    k->download(back, dev, n);
    KC_EXPECT(memcmp(src, back, n * sizeof(float)) == 0, "upload/download changed values");
    int32_t tok[5] = { 3, -1, 7, 0, 2147483647 }, tok_back[5];
    int32_t *dtok = k->alloc(sizeof tok);
    k->upload_raw(dtok, tok, sizeof tok);
    k->download_raw(tok_back, dtok, sizeof tok);
    KC_EXPECT(memcmp(tok, tok_back, sizeof tok) == 0, "upload_raw/download_raw changed bytes");
    k->zero(dev, n * sizeof(float));
    k->sync();
    k->download(back, dev, n);
    size_t nonzero = 0;
    for (size_t j = 0; j < n; j++) nonzero += back[j] != 0.0f;
    KC_EXPECT(nonzero == 0, "zero left %zu elements", nonzero);
    k->free(dev);
    k->free(dtok);
    free(src);
    free(back);
}

/* Sizes below, at and above the parallel block size, from unaligned starts:
 * exactly the given bytes become zero, nothing around them. */
static void zero_exact_range(void) {
    const k_backend *k = k_cpu();
    const size_t sizes[] = { 1, 1000, (size_t)1 << 20, ((size_t)3 << 20) + 13 };
    for (int i = 0; i < 4; i++) {
        size_t n = sizes[i] + 64;
        unsigned char *p = k->alloc(n);
        memset(p, 0xAB, n);
        k->zero(p + 7, sizes[i]);
        size_t bad = 0;
        for (size_t j = 0; j < n; j++) bad += p[j] != ((j >= 7 && j < 7 + sizes[i]) ? 0 : 0xAB);
        KC_EXPECT(bad == 0, "zero(%zu bytes): %zu bytes wrong", sizes[i], bad);
        k->free(p);
    }
}

static void table_complete(void) {
    const k_backend *k = k_get("cpu");
    KC_EXPECT(k != NULL && k == k_cpu(), "k_get(\"cpu\") is not k_cpu()");
    KC_EXPECT(strcmp(k->name, "cpu") == 0 && k->act_dtype == K_F32, "name/dtype wrong");
    /* every member that this backend's dense ops provide is set */
    KC_EXPECT(k->alloc && k->free && k->zero && k->upload && k->download && k->upload_raw &&
                  k->download_raw && k->sync,
              "memory ops missing");
    KC_EXPECT(k->matmul_fwd && k->matmul_bwd && k->embed_fwd && k->embed_bwd && k->rmsnorm_fwd &&
                  k->rmsnorm_bwd && k->swiglu_fwd && k->swiglu_bwd && k->add && k->accumulate &&
                  k->xent_fwd && k->xent_bwd && k->sumsq && k->adamw,
              "dense ops missing");
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "alloc_aligned_zeroed", alloc_aligned_zeroed },
        { "copies_round_trip", copies_round_trip },
        { "zero_exact_range", zero_exact_range },
        { "table_complete", table_complete },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
