/* gpu_probe.c -- the CUDA backend is either fully there or cleanly absent.
 *
 * Without a usable device (or in a build without CUDA) k_cuda() and
 * k_get("cuda") must return NULL, every time, without crashing or printing
 * an error. With a device, the table must be complete (every operation
 * present), name itself "cuda" with bf16 act tensors, and carry values
 * through upload/download: bf16-representable values exactly, raw bytes
 * unchanged. Registered with ctest: it passes on CPU-only machines and on
 * GPU machines, and fails on a half-initialised backend. */
#include <stdio.h>
#include <string.h>

#include "k.h"

static int failures;

#define EXPECT(cond, what)                                  \
    do {                                                    \
        if (!(cond)) {                                      \
            fprintf(stderr, "gpu_probe: FAIL: %s\n", what); \
            failures++;                                     \
        }                                                   \
    } while (0)

static void check_table(const k_backend *k) {
    EXPECT(strcmp(k->name, "cuda") == 0, "backend name is \"cuda\"");
    EXPECT(k->act_dtype == K_BF16, "act dtype is bf16");
    const void *ops[] = {
        (const void *)k->alloc,        (const void *)k->free,        (const void *)k->zero,
        (const void *)k->upload,       (const void *)k->download,    (const void *)k->upload_raw,
        (const void *)k->download_raw, (const void *)k->sync,        (const void *)k->matmul_fwd,
        (const void *)k->matmul_bwd,   (const void *)k->embed_fwd,   (const void *)k->embed_bwd,
        (const void *)k->rmsnorm_fwd,  (const void *)k->rmsnorm_bwd, (const void *)k->rope_fwd,
        (const void *)k->rope_bwd,     (const void *)k->attn_fwd,    (const void *)k->attn_bwd,
        (const void *)k->swiglu_fwd,   (const void *)k->swiglu_bwd,  (const void *)k->add,
        (const void *)k->accumulate,   (const void *)k->xent_fwd,    (const void *)k->xent_bwd,
        (const void *)k->sumsq,        (const void *)k->adamw,
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        EXPECT(ops[i] != NULL, "every operation is set");
    /* 1.5, -0.375 and 3 are exact in bf16; 1 + 2^-12 rounds to 1. */
    float in[4] = { 1.5f, -0.375f, 3.0f, 1.0f + 1.0f / 4096.0f }, out[4] = { 0 };
    void *p = k->alloc(sizeof in);
    EXPECT(p != NULL, "alloc of 16 bytes");
    if (p == NULL) return;
    k->upload(p, in, 4);
    k->download(out, p, 4);
    EXPECT(out[0] == 1.5f && out[1] == -0.375f && out[2] == 3.0f && out[3] == 1.0f,
           "upload/download round to bf16");
    int32_t raw[4] = { 7, -1, 123456789, 0 }, back[4] = { 0 };
    k->upload_raw(p, raw, sizeof raw);
    k->download_raw(back, p, sizeof back);
    EXPECT(memcmp(raw, back, sizeof raw) == 0, "raw copies keep bytes");
    k->free(p);
}

int main(void) {
    const k_backend *k = k_cuda();
    if (k == NULL) {
        EXPECT(k_get("cuda") == NULL, "k_get(\"cuda\") is NULL like k_cuda()");
        EXPECT(k_cuda() == NULL, "k_cuda() stays NULL");
        EXPECT(k_get("cpu") == k_cpu() && k_cpu() != NULL, "the CPU backend is still there");
        printf("gpu_probe: no CUDA device: the CUDA backend reports itself unavailable\n");
    } else {
        EXPECT(k_get("cuda") == k, "k_get(\"cuda\") returns k_cuda()");
        check_table(k);
        printf("gpu_probe: CUDA backend available\n");
    }
    return failures ? 1 : 0;
}
