/* scheme_none: no augmentation (the control): g = 1, t = 0 in training and
 * at inference; rope_scaling null. */
#include "scheme.h"

static void none_draw(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t unit,
                      e2_pos_draw *d) {
    (void)s, (void)seed, (void)step, (void)unit, (void)d;
}

static void none_infer(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                       e2_pos_infer *out) {
    (void)c, (void)window, (void)head_dim, (void)out;
}

static void none_hf(const e2_pos_config *c, double g, e2_pos_hf *out) {
    (void)c, (void)g, (void)out;
}

const e2_pos_scheme e2_pos_scheme_none = {
    .name = "none",
    .about = "no augmentation: g = 1, t = 0",
    .trains = 1,
    .check = NULL,
    .draw = none_draw,
    .infer = none_infer,
    .hf = none_hf,
};
