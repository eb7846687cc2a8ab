/* scheme_pi: Position Interpolation. Training: g = fixed_g, t = 0.
 * Inference: its trained g at every window (a driver may also score it at
 * L'/L through eval.scales). Export: linear rope_scaling, factor fixed_g. */
#include "scheme.h"

static void pi_draw(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t unit,
                    e2_pos_draw *d) {
    (void)seed, (void)step, (void)unit;
    d->g = (float)s->cfg.fixed_g;
}

static void pi_infer(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                     e2_pos_infer *out) {
    (void)window, (void)head_dim;
    out->g = c->fixed_g;
}

static void pi_hf(const e2_pos_config *c, double g, e2_pos_hf *out) {
    (void)g;
    if (c->fixed_g > 1.0) {
        out->type = "linear";
        out->factor = c->fixed_g;
    }
}

const e2_pos_scheme e2_pos_scheme_pi = {
    .name = "pi",
    .about = "Position Interpolation: fixed scale g = fixed_g, t = 0",
    .trains = 1,
    .check = NULL,
    .draw = pi_draw,
    .infer = pi_infer,
    .hf = pi_hf,
};
