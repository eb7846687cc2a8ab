/* embed.c -- token embedding lookup and its scatter-add backward.
 *
 * Token ids are trusted to lie in [0, V): the data loader checks them against
 * the vocabulary before they reach a kernel. */
#include <string.h>

#include "cpu.h"

/* Channels per task in the backward; a multiple of the vector width. */
#define KCPU_EMBED_BLOCK 64

void kcpu_embed_fwd(void *out_,            /* (N, C) */
                    const int32_t *tokens, /* (N) */
                    const void *wte_,      /* (V, C) */
                    int N, int C) {
    float *out = out_;
    const float *wte = wte_;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, (size_t)C * sizeof(float));
}

/* Several rows may hit the same token, so rows cannot be split across
 * threads without races. Each task owns a block of channels instead and adds
 * the rows in order: no races, and the result does not depend on the number
 * of threads. */
void kcpu_embed_bwd(void *dwte_,           /* (V, C) += */
                    const void *dout_,     /* (N, C) */
                    const int32_t *tokens, /* (N) */
                    int N, int C) {
    float *dwte = dwte_;
    const float *dout = dout_;
#pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += KCPU_EMBED_BLOCK) {
        int nc = C - c0 < KCPU_EMBED_BLOCK ? C - c0 : KCPU_EMBED_BLOCK;
        for (int n = 0; n < N; n++) {
            float *dst = dwte + (size_t)tokens[n] * C + c0;
            const float *src = dout + (size_t)n * C + c0;
#pragma omp simd
            for (int c = 0; c < nc; c++) dst[c] += src[c];
        }
    }
}
