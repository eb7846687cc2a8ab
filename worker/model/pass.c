/* pass.c -- the model's forward and backward passes, op for op through
 * k_backend. The backward is the forward read backwards; every parameter
 * gradient accumulates (+=), which makes gradient accumulation over
 * micro-batches free. With recomputation, only the residual stream at each
 * block input is kept and the block's activations are rebuilt, one block at a
 * time, just before its backward. */
#include "model.h"

#include <stddef.h>

#define IGNORE_INDEX (-1)

typedef struct {
    void *ln1;
    float *rstd1;
    void *qkv;
    void *atty;
    float *lse;
    void *mid;
    void *ln2;
    float *rstd2;
    void *fch;
    void *swi;
} block_acts;

typedef struct {
    const void *ln1, *qkv, *wo, *ln2, *gu, *down;
} block_params;

typedef struct {
    void *ln1, *qkv, *wo, *ln2, *gu, *down;
} block_grads;

static char *at(void *base, size_t elems, size_t esz) {
    return (char *)base + elems * esz;
}

static block_acts block_acts_at(const e2w_acts *a, int l) {
    char *p = (char *)a->layers + (a->recompute ? 0 : (size_t)l * a->ll.total);
    block_acts b = {
        p + a->ll.ln1,  (float *)(p + a->ll.rstd1), p + a->ll.qkv,
        p + a->ll.atty, (float *)(p + a->ll.lse),   p + a->ll.mid,
        p + a->ll.ln2,  (float *)(p + a->ll.rstd2), p + a->ll.fch,
        p + a->ll.swi,
    };
    return b;
}

/* Element offsets of layer l's slice of each per-layer tensor kind. */
static void block_offsets(const e2w_model *m, int l, size_t off[6]) {
    const e2w_model_config *c = &m->cfg;
    size_t C = (size_t)c->C, D = (size_t)c->D;
    size_t qkv = (size_t)(c->H + 2 * c->KVH) * D;
    off[0] = m->poff[E2W_P_LN1] + (size_t)l * C;
    off[1] = m->poff[E2W_P_QKV] + (size_t)l * qkv * C;
    off[2] = m->poff[E2W_P_WO] + (size_t)l * C * (size_t)c->H * D;
    off[3] = m->poff[E2W_P_LN2] + (size_t)l * C;
    off[4] = m->poff[E2W_P_GU] + (size_t)l * 2 * (size_t)c->F * C;
    off[5] = m->poff[E2W_P_DOWN] + (size_t)l * C * (size_t)c->F;
}

static block_params block_params_at(const e2w_model *m, int l) {
    size_t o[6];
    block_offsets(m, l, o);
    block_params p = {
        at(m->params, o[0], m->esz), at(m->params, o[1], m->esz), at(m->params, o[2], m->esz),
        at(m->params, o[3], m->esz), at(m->params, o[4], m->esz), at(m->params, o[5], m->esz),
    };
    return p;
}

static block_grads block_grads_at(const e2w_model *m, int l) {
    size_t o[6];
    block_offsets(m, l, o);
    block_grads g = {
        at(m->grads, o[0], m->gesz), at(m->grads, o[1], m->gesz), at(m->grads, o[2], m->gesz),
        at(m->grads, o[3], m->gesz), at(m->grads, o[4], m->gesz), at(m->grads, o[5], m->gesz),
    };
    return g;
}

static void *res_at(const e2w_model *m, const e2w_acts *a, int l) {
    size_t N = (size_t)a->B * (size_t)a->T;
    return at(a->res, (size_t)l * N * (size_t)m->cfg.C, m->esz);
}

/* One block forward: res[l] -> res[l+1]. With write_out = 0 (recomputation
 * before the backward) the last matmul, whose output the backward does not
 * read, is skipped. */
static void block_forward(const e2w_model *m, const e2w_acts *a, int l, int B, int T,
                          const k_rope *rope, int write_out) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C, D = c->D, H = c->H, KVH = c->KVH, F = c->F;
    int QKV = (H + 2 * KVH) * D;
    block_acts b = block_acts_at(a, l);
    block_params p = block_params_at(m, l);
    const void *in = res_at(m, a, l);
    k->rmsnorm_fwd(b.ln1, b.rstd1, in, p.ln1, c->eps, N, C);
    k->matmul_fwd(b.qkv, b.ln1, p.qkv, NULL, N, C, QKV);
    k->rope_fwd(b.qkv, B, T, H + KVH, D, QKV, rope);
    k->attn_fwd(b.atty, b.lse, b.qkv, B, T, H, KVH, D);
    k->matmul_fwd(b.mid, b.atty, p.wo, NULL, N, H * D, C);
    k->accumulate(b.mid, in, (size_t)N * C);
    k->rmsnorm_fwd(b.ln2, b.rstd2, b.mid, p.ln2, c->eps, N, C);
    k->matmul_fwd(b.fch, b.ln2, p.gu, NULL, N, C, 2 * F);
    k->swiglu_fwd(b.swi, b.fch, N, F);
    if (write_out) {
        void *out = res_at(m, a, l + 1);
        k->matmul_fwd(out, b.swi, p.down, NULL, N, F, C);
        k->accumulate(out, b.mid, (size_t)N * C);
    }
}

static const void *head_weight(const e2w_model *m) {
    return at(m->params, m->cfg.tied ? m->poff[E2W_P_WTE] : m->poff[E2W_P_HEAD], m->esz);
}

/* Embedding, the blocks and the final norm: a->lnf holds the head's input. */
static void trunk_forward(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C;
    k->embed_fwd(res_at(m, a, 0), a->tokens, at(m->params, m->poff[E2W_P_WTE], m->esz), N, C);
    for (int l = 0; l < c->n_layer; l++) block_forward(m, a, l, B, T, rope, 1);
    k->rmsnorm_fwd(a->lnf, a->rstdf, res_at(m, a, c->n_layer),
                   at(m->params, m->poff[E2W_P_LNF], m->esz), c->eps, N, C);
}

/* The sum of the per-token losses (a->losses), on the host. */
static double loss_sum(const e2w_model *m, e2w_acts *a, int N) {
    m->k->download_raw(a->host_losses, a->losses, (size_t)N * sizeof(float));
    double sum = 0.0;
    for (int i = 0; i < N; i++) sum += a->host_losses[i];
    return sum;
}

double e2w_model_forward(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope,
                         int with_targets) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C, V = c->V;
    trunk_forward(m, a, B, T, rope);
    /* The head and the loss, a chunk of rows at a time when the acts hold
     * fewer logit rows than tokens (forward-only); without targets only the
     * last chunk, whose logits the caller reads. */
    int first = with_targets ? 0 : (N - 1) / a->logit_rows * a->logit_rows;
    for (int r0 = first; r0 < N; r0 += a->logit_rows) {
        int rows = N - r0 < a->logit_rows ? N - r0 : a->logit_rows;
        k->matmul_fwd(a->logits, at(a->lnf, (size_t)r0 * C, m->esz), head_weight(m), NULL, rows, C,
                      V);
        if (with_targets)
            k->xent_fwd(a->losses + r0, a->logits, a->targets + r0, IGNORE_INDEX, rows, V);
        a->logits_row0 = r0;
    }
    if (!with_targets) {
        k->sync();
        return 0.0;
    }
    return loss_sum(m, a, N);
}

/* dinp = dout @ weight (overwritten) and dweight += dout^T @ inp: the
 * backend's matmul_bwd_set, or zero + matmul_bwd. */
static void mm_bwd_set(const k_backend *k, void *dinp, size_t esz, void *dw, const void *dout,
                       const void *inp, const void *w, int N, int C, int OC) {
    if (k->matmul_bwd_set != NULL) {
        k->matmul_bwd_set(dinp, dw, NULL, dout, inp, w, N, C, OC);
        return;
    }
    k->zero(dinp, (size_t)N * C * esz);
    k->matmul_bwd(dinp, dw, NULL, dout, inp, w, N, C, OC);
}

/* dinp = SwiGLU's backward (overwritten). */
static void swiglu_bwd_set(const k_backend *k, void *dinp, size_t esz, const void *dout,
                           const void *inp, int N, int F) {
    if (k->swiglu_bwd_set != NULL) {
        k->swiglu_bwd_set(dinp, dout, inp, N, F);
        return;
    }
    k->zero(dinp, (size_t)N * 2 * F * esz);
    k->swiglu_bwd(dinp, dout, inp, N, F);
}

/* Backward of block l: on entry a->dres holds d res[l+1], on exit d res[l]. */
static void block_backward(const e2w_model *m, const e2w_acts *a, int l, int B, int T,
                           const k_rope *rope) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C, D = c->D, H = c->H, KVH = c->KVH, F = c->F;
    int QKV = (H + 2 * KVH) * D;
    size_t e = m->esz;
    if (a->recompute) block_forward(m, a, l, B, T, rope, 0);
    block_acts b = block_acts_at(a, l);
    block_params p = block_params_at(m, l);
    block_grads g = block_grads_at(m, l);
    /* res[l+1] = mid + swi @ Wdown^T: d mid is dres itself. */
    mm_bwd_set(k, a->dswi, e, g.down, a->dres, b.swi, p.down, N, F, C);
    swiglu_bwd_set(k, a->dfch, e, a->dswi, b.fch, N, F);
    mm_bwd_set(k, a->dln, e, g.gu, a->dfch, b.ln2, p.gu, N, C, 2 * F);
    k->rmsnorm_bwd(a->dres, g.ln2, a->dln, b.mid, p.ln2, b.rstd2, N, C);
    /* mid = res[l] + atty @ Wo^T: d res[l] is d mid plus the ln1 branch. */
    mm_bwd_set(k, a->datty, e, g.wo, a->dres, b.atty, p.wo, N, H * D, C);
    k->zero(a->dqkv, (size_t)N * QKV * e);
    k->attn_bwd(a->dqkv, a->delta, a->datty, b.qkv, b.atty, b.lse, B, T, H, KVH, D);
    k->rope_bwd(a->dqkv, B, T, H + KVH, D, QKV, rope);
    mm_bwd_set(k, a->dln, e, g.qkv, a->dqkv, b.ln1, p.qkv, N, C, QKV);
    k->rmsnorm_bwd(a->dres, g.ln1, a->dln, res_at(m, a, l), p.ln1, b.rstd1, N, C);
}

/* Layer l's six per-layer gradient slices, in block_offsets order. */
static void block_ranges(const e2w_model *m, int l, e2w_grad_range r[6]) {
    size_t o[6];
    block_offsets(m, l, o);
    static const int kind[6] = { E2W_P_LN1, E2W_P_QKV, E2W_P_WO, E2W_P_LN2, E2W_P_GU, E2W_P_DOWN };
    for (int i = 0; i < 6; i++) {
        r[i].offset = o[i];
        r[i].n = m->psize[kind[i]] / (size_t)m->cfg.n_layer;
    }
}

void e2w_model_backward(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope, float dloss) {
    e2w_model_backward_notify(m, a, B, T, rope, dloss, NULL, NULL);
}

/* The final norm's backward (a->dln holds d lnf), announcing the head's
 * gradients, then the blocks' and the embedding's. */
static void trunk_backward(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope,
                           e2w_grads_ready ready, void *ud) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C;
    size_t e = m->esz;
    k->zero(a->dres, (size_t)N * C * e);
    k->rmsnorm_bwd(a->dres, at(m->grads, m->poff[E2W_P_LNF], m->gesz), a->dln,
                   res_at(m, a, c->n_layer), at(m->params, m->poff[E2W_P_LNF], e), a->rstdf, N, C);
    if (ready) {
        e2w_grad_range r[6] = { { m->poff[E2W_P_LNF], m->psize[E2W_P_LNF] },
                                { m->poff[E2W_P_HEAD], m->psize[E2W_P_HEAD] } };
        ready(ud, r, c->tied ? 1 : 2);
    }
    for (int l = c->n_layer - 1; l >= 0; l--) {
        block_backward(m, a, l, B, T, rope);
        if (ready) {
            e2w_grad_range r[6];
            block_ranges(m, l, r);
            ready(ud, r, 6);
        }
    }
    k->embed_bwd(at(m->grads, m->poff[E2W_P_WTE], m->gesz), a->dres, a->tokens, N, C);
    if (ready) {
        e2w_grad_range r = { m->poff[E2W_P_WTE], m->psize[E2W_P_WTE] };
        ready(ud, &r, 1);
    }
}

static void *head_grad(const e2w_model *m) {
    const e2w_model_config *c = &m->cfg;
    return at(m->grads, c->tied ? m->poff[E2W_P_WTE] : m->poff[E2W_P_HEAD], m->gesz);
}

void e2w_model_backward_notify(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope,
                               float dloss, e2w_grads_ready ready, void *ud) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C, V = c->V;
    size_t e = m->esz;
    k->xent_bwd(a->logits, a->targets, dloss, IGNORE_INDEX, N, V);
    mm_bwd_set(k, a->dln, e, head_grad(m), a->logits, a->lnf, head_weight(m), N, C, V);
    trunk_backward(m, a, B, T, rope, ready, ud);
}

double e2w_model_step(e2w_model *m, e2w_acts *a, int B, int T, const k_rope *rope, float dloss,
                      e2w_grads_ready ready, void *ud) {
    const k_backend *k = m->k;
    const e2w_model_config *c = &m->cfg;
    int N = B * T, C = c->C, V = c->V;
    size_t e = m->esz;
    trunk_forward(m, a, B, T, rope);
    /* The head, row chunk by row chunk: the chunk's logits are written,
     * turned into their gradient and multiplied into d lnf while they are
     * still in cache; the head weight's gradient is one product over all
     * rows at the end (per chunk it would read and write the whole V x C
     * gradient each time). */
    const void *w = head_weight(m);
    for (int r0 = 0; r0 < N; r0 += E2W_HEAD_CHUNK) {
        int rows = N - r0 < E2W_HEAD_CHUNK ? N - r0 : E2W_HEAD_CHUNK;
        void *lg = at(a->logits, (size_t)r0 * V, e);
        const void *x = at(a->lnf, (size_t)r0 * C, e);
        k->matmul_fwd(lg, x, w, NULL, rows, C, V);
        if (k->xent_fwd_bwd != NULL) {
            k->xent_fwd_bwd(a->losses + r0, lg, a->targets + r0, dloss, IGNORE_INDEX, rows, V);
        } else {
            k->xent_fwd(a->losses + r0, lg, a->targets + r0, IGNORE_INDEX, rows, V);
            k->xent_bwd(lg, a->targets + r0, dloss, IGNORE_INDEX, rows, V);
        }
        mm_bwd_set(k, at(a->dln, (size_t)r0 * C, e), e, NULL, lg, x, w, rows, C, V);
    }
    a->logits_row0 = 0;
    k->matmul_bwd(NULL, head_grad(m), NULL, a->logits, a->lnf, w, N, C, V);
    trunk_backward(m, a, B, T, rope, ready, ud);
    return loss_sum(m, a, N);
}
