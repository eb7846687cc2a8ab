/* embed.cu -- token embedding lookup and its scatter-add backward.
 *
 * The backward must add every row of dout into the row of its token, and
 * several rows may share a token. Float atomics would make the sum's order
 * (and so its bits) vary from run to run; instead the N token ids are
 * brought to the host (N int32, once per backward), the rows are grouped by
 * token there (a stable sort: rows keep their order within a token), and
 * one thread per (token, channel) adds its rows in order. Deterministic, and
 * each dwte element is written once. Token ids are trusted to lie in [0, V)
 * (the data loader checks them). */
#include <stdlib.h>

#include "kcuda.h"

__global__ void kcuda_embed_fwd_k(bf16 *out, const int32_t *tokens, const bf16 *wte, int C,
                                  size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    size_t r = i / (size_t)C, c = i % (size_t)C;
    out[i] = wte[(size_t)tokens[r] * C + c];
}

/* Group u covers rows[start[u] .. start[u+1]) of token tok[u]. */
__global__ void kcuda_embed_bwd_k(float *dwte, const bf16 *dout, const int32_t *tok,
                                  const int32_t *start, const int32_t *rows, int C) {
    int u = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float acc = 0.0f;
    for (int k = start[u]; k < start[u + 1]; k++) acc += kcuda_f(dout[(size_t)rows[k] * C + c]);
    dwte[(size_t)tok[u] * C + c] += acc;
}

void kcuda_embed_fwd(void *out,             /* (N, C) */
                     const int32_t *tokens, /* (N) device */
                     const void *wte,       /* (V, C) */
                     int N, int C) {
    size_t n = (size_t)N * (size_t)C;
    if (n == 0) return;
    kcuda_embed_fwd_k<<<kcuda_blocks(n, 256), 256, 0, kcuda.stream>>>((bf16 *)out, tokens,
                                                                      (const bf16 *)wte, C, n);
    kcuda_launched();
}

/* (token, row) pairs sort by token, then row: a stable grouping. */
static int kcuda_pair_cmp(const void *a, const void *b) {
    const int32_t *x = (const int32_t *)a, *y = (const int32_t *)b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

void kcuda_embed_bwd(void *dwte,            /* (V, C) += fp32 */
                     const void *dout,      /* (N, C) */
                     const int32_t *tokens, /* (N) device */
                     int N, int C) {
    if (N <= 0 || C <= 0) return;
    /* Host layout: pairs (2N) | tok (N) | start (N+1) | rows (N). */
    size_t n = (size_t)N;
    int32_t *h = (int32_t *)kcuda_host((5 * n + 1) * sizeof(int32_t));
    int32_t *pairs = h, *tok = h + 2 * n, *start = tok + n, *rows = start + n + 1;
    kcuda_download_raw(tok, tokens, n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) {
        pairs[2 * i] = tok[i];
        pairs[2 * i + 1] = (int32_t)i;
    }
    qsort(pairs, n, 2 * sizeof(int32_t), kcuda_pair_cmp);
    int U = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || pairs[2 * i] != pairs[2 * i - 2]) {
            tok[U] = pairs[2 * i];
            start[U++] = (int32_t)i;
        }
        rows[i] = pairs[2 * i + 1];
    }
    start[U] = (int32_t)n;
    /* Device copy: tok (U) | start (U+1) | rows (N), packed. */
    int32_t *d = (int32_t *)kcuda_scratch(KCUDA_SCR_EMBED, (3 * n + 1) * sizeof(int32_t));
    int32_t *dtok = d, *dstart = d + U, *drows = dstart + U + 1;
    kcuda_check(cudaMemcpyAsync(dtok, tok, (size_t)U * sizeof(int32_t), cudaMemcpyHostToDevice,
                                kcuda.stream));
    kcuda_check(cudaMemcpyAsync(dstart, start, (size_t)(U + 1) * sizeof(int32_t),
                                cudaMemcpyHostToDevice, kcuda.stream));
    kcuda_check(
        cudaMemcpyAsync(drows, rows, n * sizeof(int32_t), cudaMemcpyHostToDevice, kcuda.stream));
    dim3 grid((unsigned)U, kcuda_blocks((size_t)C, 128));
    kcuda_embed_bwd_k<<<grid, 128, 0, kcuda.stream>>>((float *)dwte, (const bf16 *)dout, dtok,
                                                      dstart, drows, C);
    kcuda_launched();
    /* The host staging buffer is reused by the next op: let the copies out. */
    kcuda_check(cudaStreamSynchronize(kcuda.stream));
}
