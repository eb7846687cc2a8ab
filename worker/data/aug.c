/* aug: the E² (g, t) sampler; see aug.h. Uniform g uses the unbiased
 * integer draw; weighted g inverts the cumulative distribution with one
 * 53-bit uniform. g and t use separate RNG domains so they are independent. */
#include "aug.h"
#include "rng.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int aug_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int aug_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int e2w_aug_method_parse(const char *name, e2w_aug_method *out) {
    static const char *const names[] = {"e2", "pi", "pose", "none"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *out = (e2w_aug_method)i;
            return 0;
        }
    return -EINVAL;
}

int e2w_aug_granularity_parse(const char *name, e2w_aug_granularity *out) {
    if (name && strcmp(name, "per_sample") == 0) *out = E2W_AUG_PER_SAMPLE;
    else if (name && strcmp(name, "per_step") == 0) *out = E2W_AUG_PER_STEP;
    else return -EINVAL;
    return 0;
}

int e2w_aug_init(e2w_aug *a, const e2w_aug_config *cfg, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    if (cfg->g_max < 1 || cfg->g_max > E2W_AUG_G_MAX)
        return aug_err(err, errlen, "augment.g_max must be in [1, %d] (got %u)", E2W_AUG_G_MAX, cfg->g_max);
    if (cfg->train_length < 2)
        return aug_err(err, errlen, "augment.train_length must be >= 2 (got %u)", cfg->train_length);
    if (cfg->original_window < 2)
        return aug_err(err, errlen, "augment.original_window must be >= 2 (got %u)", cfg->original_window);
    if (!(cfg->fixed_g >= 1.0 && cfg->fixed_g <= E2W_AUG_G_MAX))
        return aug_err(err, errlen, "augment.fixed_g must be in [1, %d] (got %g)", E2W_AUG_G_MAX, cfg->fixed_g);
    double gbig = cfg->method == E2W_AUG_E2 ? (double)cfg->g_max : cfg->fixed_g;
    if (gbig * (double)cfg->original_window > 2147483647.0)
        return aug_err(err, errlen, "augment: g * original_window (%g * %u) must be below 2^31", gbig,
                       cfg->original_window);
    a->cfg = *cfg;
    a->cfg.g_weights = NULL;
    a->cfg.n_g_weights = 0;
    a->uniform = cfg->g_weights == NULL || cfg->n_g_weights == 0;
    if (a->uniform) return 0;
    if (cfg->n_g_weights != cfg->g_max)
        return aug_err(err, errlen, "augment.g_weights must have g_max (%u) entries (got %zu)", cfg->g_max,
                       cfg->n_g_weights);
    double sum = 0;
    for (size_t i = 0; i < cfg->n_g_weights; i++) {
        double w = cfg->g_weights[i];
        if (!isfinite(w) || w < 0)
            return aug_err(err, errlen, "augment.g_weights[%zu] must be finite and >= 0 (got %g)", i, w);
        sum += w;
    }
    if (!(sum > 0) || !isfinite(sum))
        return aug_err(err, errlen, "augment.g_weights must have a positive finite sum (got %g)", sum);
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

int e2w_aug_init_spec(e2w_aug *a, const E2__V1__AugmentSpec *s, char *err, size_t errlen) {
    e2w_aug_config c = {0};
    if (e2w_aug_method_parse(s->method, &c.method))
        return aug_err(err, errlen, "augment.method must be one of e2, pi, pose, none (got \"%s\")",
                       s->method ? s->method : "");
    if (e2w_aug_granularity_parse(s->granularity, &c.granularity))
        return aug_err(err, errlen, "augment.granularity must be per_sample or per_step (got \"%s\")",
                       s->granularity ? s->granularity : "");
    if (!s->has_g_max || !s->has_n_sink || !s->has_train_length || !s->has_fixed_g || !s->has_original_window)
        return aug_err(err, errlen, "augment: defaults not applied (original_window needs the model's config)");
    c.g_max = s->g_max;
    c.g_weights = s->g_weights;
    c.n_g_weights = s->n_g_weights;
    c.n_sink = s->n_sink;
    c.original_window = s->original_window;
    c.train_length = s->train_length;
    c.fixed_g = s->fixed_g;
    c.no_offset = s->has_random_offset && !s->random_offset;
    return e2w_aug_init(a, &c, err, errlen);
}

int32_t e2w_aug_t_max(const e2w_aug *a, float g) {
    double span = floor((double)g * (double)a->cfg.original_window) - (double)a->cfg.train_length;
    return span > 0 ? (int32_t)span : 0;
}

static uint32_t aug_draw_g(const e2w_aug *a, uint64_t key) {
    uint64_t ctr = 0;
    if (a->uniform) return 1 + (uint32_t)e2w_rng_below(key, &ctr, a->cfg.g_max);
    double u = e2w_rng_unit(key, 0);
    size_t lo = 0, hi = a->cfg.g_max - 1; /* first i with u < cdf[i] */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u < a->cdf[mid]) hi = mid;
        else lo = mid + 1;
    }
    return (uint32_t)lo + 1;
}

void e2w_aug_draw(const e2w_aug *a, uint64_t seed, uint64_t step, uint64_t sample_index, float *g, int32_t *t) {
    uint64_t unit = a->cfg.granularity == E2W_AUG_PER_STEP ? UINT64_MAX : sample_index;
    float gv = 1.0f;
    int random_t = 0;
    switch (a->cfg.method) {
    case E2W_AUG_E2:
        gv = (float)aug_draw_g(a, e2w_rng_key(E2W_RNG_AUG_G, seed, step, unit));
        random_t = 1;
        break;
    case E2W_AUG_PI: gv = (float)a->cfg.fixed_g; break;
    case E2W_AUG_POSE:
        gv = (float)a->cfg.fixed_g;
        random_t = 1;
        break;
    case E2W_AUG_NONE: break;
    }
    int32_t tv = 0;
    if (random_t && !a->cfg.no_offset) {
        uint64_t ctr = 0;
        tv = (int32_t)e2w_rng_below(e2w_rng_key(E2W_RNG_AUG_T, seed, step, unit), &ctr,
                                    (uint64_t)e2w_aug_t_max(a, gv) + 1);
    }
    *g = gv;
    *t = tv;
}
