/* layout.c -- the model's memory layout from its config (layout.h). */
#include "layout.h"

#include "k.h" /* the CUDA backend's workspace constants (no code) */

static const char *const param_names[E2_LAYOUT_P_COUNT] = {
    "wte", "ln1", "qkv", "wo", "ln2", "gu", "down", "lnf", "head",
};

void e2_layout_params_fill(e2_layout_params *p, const e2_layout_dims *d) {
    size_t L = (size_t)d->n_layer, C = (size_t)d->C, D = (size_t)d->D;
    size_t qkv = (size_t)(d->H + 2 * d->KVH) * D;
    p->numel[E2_LAYOUT_P_WTE] = (size_t)d->V * C;
    p->numel[E2_LAYOUT_P_LN1] = L * C;
    p->numel[E2_LAYOUT_P_QKV] = L * qkv * C;
    p->numel[E2_LAYOUT_P_WO] = L * C * (size_t)d->H * D;
    p->numel[E2_LAYOUT_P_LN2] = L * C;
    p->numel[E2_LAYOUT_P_GU] = L * 2 * (size_t)d->F * C;
    p->numel[E2_LAYOUT_P_DOWN] = L * C * (size_t)d->F;
    p->numel[E2_LAYOUT_P_LNF] = C;
    p->numel[E2_LAYOUT_P_HEAD] = d->tied ? 0 : (size_t)d->V * C;
    size_t off = 0;
    for (int i = 0; i < E2_LAYOUT_P_COUNT; i++) {
        p->name[i] = param_names[i];
        p->offset[i] = off;
        off += p->numel[i];
    }
    p->n_params = off;
}

size_t e2_layout_optim_floats(int master) {
    return master ? 3 : 2;
}

static size_t align_up(size_t x) {
    return (x + E2_LAYOUT_ALIGN - 1) & ~(size_t)(E2_LAYOUT_ALIGN - 1);
}

/* Lays out n regions back to back from byte 0; returns the total. */
static size_t place(e2_layout_region *r, int n) {
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].bytes == 0 && r[i].numel > 0) r[i].bytes = align_up(r[i].numel * r[i].esz);
        r[i].offset = o;
        o += r[i].bytes;
    }
    return o;
}

static e2_layout_region region(const char *name, size_t numel, size_t esz) {
    e2_layout_region r = { name, numel, esz, 0, 0 };
    return r;
}

void e2_layout_acts_fill(e2_layout_acts *a, const e2_layout_dims *d, int B, int T, size_t esz,
                         int backward, int recompute) {
    size_t N = (size_t)B * (size_t)T, e = esz, C = (size_t)d->C, D = (size_t)d->D;
    size_t H = (size_t)d->H, qkv = (size_t)(d->H + 2 * d->KVH) * D, F = (size_t)d->F;
    a->B = B;
    a->T = T;
    a->backward = backward != 0;
    a->recompute = recompute || !backward;
    a->N = N;
    a->logit_rows = backward || N < E2_LAYOUT_LOGIT_CHUNK ? N : E2_LAYOUT_LOGIT_CHUNK;
    a->nsets = a->recompute ? 1 : (size_t)d->n_layer;

    e2_layout_region *l = a->layer;
    l[E2_LAYOUT_L_LN1] = region("ln1", N * C, e);
    l[E2_LAYOUT_L_RSTD1] = region("rstd1", N, 4);
    l[E2_LAYOUT_L_QKV] = region("qkv", N * qkv, e);
    l[E2_LAYOUT_L_ATTY] = region("atty", N * H * D, e);
    l[E2_LAYOUT_L_LSE] = region("lse", N * H, 4);
    l[E2_LAYOUT_L_MID] = region("mid", N * C, e);
    l[E2_LAYOUT_L_LN2] = region("ln2", N * C, e);
    l[E2_LAYOUT_L_RSTD2] = region("rstd2", N, 4);
    l[E2_LAYOUT_L_FCH] = region("fch", N * 2 * F, e);
    l[E2_LAYOUT_L_SWI] = region("swi", N * F, e);
    a->layer_bytes = place(l, E2_LAYOUT_L_COUNT);

    size_t bw = backward ? 1 : 0; /* the backward scratch: 0 elements without */
    e2_layout_region *r = a->a;
    r[E2_LAYOUT_A_TOKENS] = region("tokens", N, 4);
    r[E2_LAYOUT_A_TARGETS] = region("targets", N, 4);
    r[E2_LAYOUT_A_LOSSES] = region("losses", N, 4);
    r[E2_LAYOUT_A_RES] = region("res", (size_t)(d->n_layer + 1) * N * C, e);
    r[E2_LAYOUT_A_LNF] = region("lnf", N * C, e);
    r[E2_LAYOUT_A_RSTDF] = region("rstdf", N, 4);
    r[E2_LAYOUT_A_LOGITS] = region("logits", a->logit_rows * (size_t)d->V, e);
    r[E2_LAYOUT_A_LAYERS] = region("layers", a->nsets, a->layer_bytes);
    r[E2_LAYOUT_A_LAYERS].bytes = a->nsets * a->layer_bytes; /* sets are aligned already */
    r[E2_LAYOUT_A_DRES] = region("dres", bw * N * C, e);
    r[E2_LAYOUT_A_DLN] = region("dln", bw * N * C, e);
    r[E2_LAYOUT_A_DQKV] = region("dqkv", bw * N * qkv, e);
    r[E2_LAYOUT_A_DATTY] = region("datty", bw * N * H * D, e);
    r[E2_LAYOUT_A_DFCH] = region("dfch", bw * N * 2 * F, e);
    r[E2_LAYOUT_A_DSWI] = region("dswi", bw * N * F, e);
    r[E2_LAYOUT_A_DELTA] = region("delta", bw * N * H, 4);
    a->bytes = place(r, E2_LAYOUT_A_COUNT);
}

size_t e2_layout_cuda_scratch_bytes(size_t N, size_t C) {
    return (size_t)K_CUDA_LT_WORKSPACE_BYTES + (size_t)K_CUDA_COLSUM_CHUNKS * C * 4 +
           (3 * N + 1) * 4 + (size_t)K_CUDA_SUMSQ_BLOCKS * sizeof(double);
}
