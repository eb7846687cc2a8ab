/* optim.c -- learning-rate schedule, global gradient-norm clipping, the
 * AdamW update per tensor kind (weight decay only on matrices, train.h) and
 * ZeRO-1: each rank updates only the parameters whose optimizer state it
 * holds, then the ranks all-gather the parameters. */
#include <math.h>

#include "base.h"
#include "train_internal.h"

double e2w_train_lr(const E2__V1__TrainSpec *ts, int s) {
    double peak = ts->lr, lo = ts->min_lr;
    int warm = (int)ts->warmup_steps, steps = (int)ts->steps;
    if (warm > 0 && s <= warm) return peak * (double)s / warm;
    if (strcmp(ts->schedule, "constant") == 0) return peak;
    double span = steps - warm;
    double p = span > 0 ? (double)(s - warm) / span : 1.0;
    if (p > 1.0) p = 1.0;
    if (strcmp(ts->schedule, "linear") == 0) return peak + (lo - peak) * p;
    return lo + (peak - lo) * 0.5 * (1.0 + cos(M_PI * p));
}

static int decays(int kind, int tied) {
    switch (kind) {
    case E2W_P_QKV:
    case E2W_P_WO:
    case E2W_P_GU:
    case E2W_P_DOWN: return 1;
    case E2W_P_HEAD: return !tied;
    default: return 0;
    }
}

void e2w_train_shard(size_t n, int world, int rank, size_t *lo, size_t *len) {
    size_t W = (size_t)world, S = (n + W - 1) / W, a = (size_t)rank * S, b = a + S;
    *lo = a < n ? a : n;
    *len = (b < n ? b : n) - *lo;
}

int e2w_train_optim_alloc(e2w_train *t, char *err, size_t errlen) {
    int W = t->hooks.world_size;
    t->zero1 = t->spec->train->has_zero1 && t->spec->train->zero1 && W > 1;
    if (t->zero1 && t->hooks.allgather == NULL)
        return e2_errf(err, errlen, "train.zero1 with %d ranks needs the all-gather hook", W);
    size_t lo, n;
    e2w_train_shard(t->model.n_params, t->zero1 ? W : 1, t->zero1 ? t->hooks.rank : 0, &lo, &n);
    return e2w_model_alloc_train_shard(&t->model, lo, n, err, errlen);
}

/* Each tensor kind's range intersected with the held state [opt_lo,
 * opt_lo + opt_n): the same k_adamw call per element as the whole update.
 * index0 is the element's global offset in the parameter vector, so every
 * parameter has its own stochastic-rounding stream: neither restarted per
 * tensor kind (element i of every tensor would get the same dither) nor per
 * ZeRO-1 shard. */
double e2w_train_optimizer_step(e2w_model *m, const E2__V1__TrainSpec *ts, int step, double lr,
                                uint64_t seed) {
    const k_backend *k = m->k;
    double norm = sqrt(k->sumsq(m->grads, m->n_params));
    if (!isfinite(norm)) return norm; /* no update: the caller stops the run */
    float scale = 1.0f;
    if (ts->grad_clip > 0 && norm > ts->grad_clip) scale = (float)(ts->grad_clip / norm);
    k_adamw hp = {
        .lr = (float)lr,
        .beta1 = (float)ts->beta1,
        .beta2 = (float)ts->beta2,
        .eps = (float)ts->adam_eps,
        .step = step,
        .grad_scale = scale,
        .seed = seed ^ (uint64_t)step,
    };
    size_t held_lo = m->opt_lo, held_hi = m->opt_lo + m->opt_n;
    for (int i = 0; i < E2W_P_COUNT; i++) {
        size_t off = m->poff[i], end = off + m->psize[i];
        size_t lo = off > held_lo ? off : held_lo, hi = end < held_hi ? end : held_hi;
        if (hi <= lo) continue;
        hp.weight_decay = decays(i, m->cfg.tied) ? (float)ts->weight_decay : 0.0f;
        hp.index0 = lo;
        char *param = (char *)m->params + lo * m->esz;
        float *master = m->master ? m->master + (lo - held_lo) : (float *)param;
        k->adamw(master, param, (char *)m->grads + lo * m->gesz, m->m + (lo - held_lo),
                 m->v + (lo - held_lo), hi - lo, &hp);
    }
    return norm;
}

int e2w_train_params_gather(e2w_train *t, char *err, size_t errlen) {
    if (!t->zero1) return 0;
    e2w_model *m = &t->model;
    return t->hooks.allgather(t->hooks.ud, m->params, m->n_params, t->k->act_dtype, err, errlen);
}
