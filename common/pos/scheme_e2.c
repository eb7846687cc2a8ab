/* scheme_e2: E²-LLM (e2-method.md section 3). Per unit: g from {1..g_max}
 * with probabilities P (uniform, or g_weights), t uniform in {0..t_max},
 * t_max = max(0, floor(g*L) - R); the first n_sink tokens keep offset 0.
 * With augment.random_offset false, t = 0 (the no-offset ablation). When
 * g*L >= R, t <= t_max keeps every position below L:
 * (R - 1 + t) / g <= (floor(g*L) - 1) / g < L.
 * Inference at L': g = max(1, L'/L). Export: linear rope_scaling, factor g.
 * Uniform g uses the unbiased integer draw; weighted g inverts the
 * cumulative distribution with one 53-bit uniform; g and t use separate
 * RNG domains so they are independent. */
#include "scheme.h"
#include "rng.h"

static uint32_t e2_draw_g(const e2_pos_sampler *a, uint64_t key) {
    uint64_t ctr = 0;
    if (a->uniform) return 1 + (uint32_t)e2w_rng_below(key, &ctr, a->cfg.g_max);
    double u = e2w_rng_unit(key, 0);
    size_t lo = 0, hi = a->cfg.g_max - 1; /* first i with u < cdf[i] */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (u < a->cdf[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return (uint32_t)lo + 1;
}

static void e2_draw(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t unit,
                    e2_pos_draw *d) {
    d->g = (float)e2_draw_g(s, e2w_rng_key(E2W_RNG_AUG_G, seed, step, unit));
    if (!s->cfg.no_offset) {
        uint64_t ctr = 0;
        d->t = (int32_t)e2w_rng_below(e2w_rng_key(E2W_RNG_AUG_T, seed, step, unit), &ctr,
                                      (uint64_t)e2_pos_t_max(&s->cfg, d->g) + 1);
    }
}

static void e2_infer(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                     e2_pos_infer *out) {
    (void)head_dim;
    double g = (double)window / (double)c->original_window;
    out->g = g > 1.0 ? g : 1.0;
}

static void e2_hf(const e2_pos_config *c, double g, e2_pos_hf *out) {
    (void)c;
    if (g > 1.0) {
        out->type = "linear";
        out->factor = g;
    }
}

const e2_pos_scheme e2_pos_scheme_e2 = {
    .name = "e2",
    .about = "E²-LLM: random scale g in {1..g_max} and offset t per sample, n_sink sinks",
    .trains = 1,
    .check = NULL,
    .draw = e2_draw,
    .infer = e2_infer,
    .hf = e2_hf,
};
