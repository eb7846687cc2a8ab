/* optim.c -- learning-rate schedule, global gradient-norm clipping and the
 * AdamW update per tensor kind (weight decay only on matrices, train.h). */
#include <math.h>

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
    case E2W_P_QKV: case E2W_P_WO: case E2W_P_GU: case E2W_P_DOWN: return 1;
    case E2W_P_HEAD: return !tied;
    default: return 0;
    }
}

double train_optimizer_step(e2w_model *m, const E2__V1__TrainSpec *ts,
                            int step, double lr, uint64_t seed) {
    const k_backend *k = m->k;
    double norm = sqrt(k->sumsq(m->grads, m->n_params));
    if (!isfinite(norm)) return norm; /* no update: the caller stops the run */
    float scale = 1.0f;
    if (ts->grad_clip > 0 && norm > ts->grad_clip) scale = (float)(ts->grad_clip / norm);
    k_adamw hp = {
        .lr = (float)lr, .beta1 = (float)ts->beta1, .beta2 = (float)ts->beta2,
        .eps = (float)ts->adam_eps, .step = step, .grad_scale = scale,
        .seed = seed ^ (uint64_t)step,
    };
    for (int i = 0; i < E2W_P_COUNT; i++) {
        size_t off = m->poff[i], n = m->psize[i];
        if (n == 0) continue;
        hp.weight_decay = decays(i, m->cfg.tied) ? (float)ts->weight_decay : 0.0f;
        char *param = (char *)m->params + off * m->esz;
        float *master = m->master ? m->master + off : (float *)param;
        k->adamw(master, param, (char *)m->grads + off * m->esz, m->m + off,
                 m->v + off, n, &hp);
    }
    return norm;
}
