/* schemes: the table of position schemes and the sampler that dispatches
 * to them (scheme.h). */
#include "scheme.h"
#include "base.h"
#include "rng.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

extern const e2_pos_scheme e2_pos_scheme_e2, e2_pos_scheme_pi, e2_pos_scheme_pose,
    e2_pos_scheme_none, e2_pos_scheme_ntk;

/* In e2_pos_method order. */
const e2_pos_scheme *const e2_pos_schemes[E2_POS_N] = {
    &e2_pos_scheme_e2,   &e2_pos_scheme_pi,  &e2_pos_scheme_pose,
    &e2_pos_scheme_none, &e2_pos_scheme_ntk,
};

const e2_pos_scheme *e2_pos_scheme_find(const char *name, e2_pos_method *method) {
    for (int i = 0; name && i < E2_POS_N; i++)
        if (strcmp(name, e2_pos_schemes[i]->name) == 0) {
            if (method) *method = (e2_pos_method)i;
            return e2_pos_schemes[i];
        }
    return NULL;
}

const char *e2_pos_scheme_names(void) {
    static char names[128];
    if (names[0] == '\0') {
        size_t len = 0;
        for (int i = 0; i < E2_POS_N; i++)
            len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "",
                                    e2_pos_schemes[i]->name);
    }
    return names;
}

int e2_pos_sampler_init(e2_pos_sampler *a, const e2_pos_config *cfg, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if ((int)cfg->method < 0 || cfg->method >= E2_POS_N)
        return e2_errf_rc(err, errlen, E2_EDATA, "augment.method must be one of %s",
                          e2_pos_scheme_names());
    if (cfg->g_max < 1 || cfg->g_max > E2_POS_G_MAX)
        return e2_errf_rc(err, errlen, E2_EDATA, "augment.g_max must be in [1, %d] (got %u)",
                          E2_POS_G_MAX, cfg->g_max);
    if (cfg->train_length < 2)
        return e2_errf_rc(err, errlen, E2_EDATA, "augment.train_length must be >= 2 (got %u)",
                          cfg->train_length);
    if (cfg->original_window < 2)
        return e2_errf_rc(err, errlen, E2_EDATA, "augment.original_window must be >= 2 (got %u)",
                          cfg->original_window);
    if (!(cfg->fixed_g >= 1.0 && cfg->fixed_g <= E2_POS_G_MAX))
        return e2_errf_rc(err, errlen, E2_EDATA, "augment.fixed_g must be in [1, %d] (got %g)",
                          E2_POS_G_MAX, cfg->fixed_g);
    double gbig = cfg->method == E2_POS_E2 ? (double)cfg->g_max : cfg->fixed_g;
    if (gbig * (double)cfg->original_window > 2147483647.0)
        return e2_errf_rc(err, errlen, E2_EDATA,
                          "augment: g * original_window (%g * %u) must be below 2^31", gbig,
                          cfg->original_window);
    if (cfg->method == E2_POS_POSE) {
        if (cfg->pose_chunks < 1 || cfg->pose_chunks > E2_POS_MAX_CHUNKS)
            return e2_errf_rc(err, errlen, E2_EDATA,
                              "augment.pose_chunks must be in [1, %d] (got %u)", E2_POS_MAX_CHUNKS,
                              cfg->pose_chunks);
        if (cfg->pose_target_length < cfg->train_length || cfg->pose_target_length > 2147483647u)
            return e2_errf_rc(
                err, errlen, E2_EDATA,
                "augment.pose_target_length must be in [train_length (%u), 2^31) (got %u)",
                cfg->train_length, cfg->pose_target_length);
    }
    a->cfg = *cfg;
    a->cfg.g_weights = NULL;
    a->cfg.n_g_weights = 0;
    a->uniform = cfg->g_weights == NULL || cfg->n_g_weights == 0;
    if (a->uniform) return 0;
    if (cfg->n_g_weights != cfg->g_max)
        return e2_errf_rc(err, errlen, E2_EDATA,
                          "augment.g_weights must have g_max (%u) entries (got %zu)", cfg->g_max,
                          cfg->n_g_weights);
    double sum = 0;
    for (size_t i = 0; i < cfg->n_g_weights; i++) {
        double w = cfg->g_weights[i];
        if (!isfinite(w) || w < 0)
            return e2_errf_rc(err, errlen, E2_EDATA,
                              "augment.g_weights[%zu] must be finite and >= 0 (got %g)", i, w);
        sum += w;
    }
    if (!(sum > 0) || !isfinite(sum))
        return e2_errf_rc(err, errlen, E2_EDATA,
                          "augment.g_weights must have a positive finite sum (got %g)", sum);
    double acc = 0;
    size_t last = 0;
    for (size_t i = 0; i < cfg->n_g_weights; i++) {
        acc += cfg->g_weights[i];
        a->cdf[i] = acc / sum;
        if (cfg->g_weights[i] > 0) last = i;
    }
    /* Rounding must not leave u in [cdf[last], 1) without a g. */
    for (size_t i = last; i < cfg->n_g_weights; i++) a->cdf[i] = 1.0;
    return 0;
}

void e2_pos_sample(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t sample_index,
                   e2_pos_draw *d) {
    uint64_t unit = s->cfg.granularity == E2_POS_PER_STEP ? UINT64_MAX : sample_index;
    memset(d, 0, sizeof *d);
    d->g = 1.0f;
    e2_pos_schemes[s->cfg.method]->draw(s, seed, step, unit, d);
}

int32_t e2_pos_t_max(const e2_pos_config *c, float g) {
    double span = floor((double)g * (double)c->original_window) - (double)c->train_length;
    return span > 0 ? (int32_t)span : 0;
}

void e2_pos_inference(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                      e2_pos_infer *out) {
    out->g = 1.0;
    out->theta_factor = 1.0;
    e2_pos_schemes[c->method]->infer(c, window, head_dim, out);
}

void e2_pos_hf_rope_scaling(const e2_pos_config *c, double g, e2_pos_hf *out) {
    out->type = NULL;
    out->factor = 1.0;
    e2_pos_schemes[c->method]->hf(c, g, out);
}
