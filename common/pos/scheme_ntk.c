/* scheme_ntk: NTK-aware scaling, an inference-time RoPE change with no
 * fine-tune. At a window L' > L the RoPE base becomes
 * theta' = theta * s^(D / (D - 2)), s = L'/L (D the head dimension), so the
 * lowest frequency is interpolated by s while the highest is kept; g = 1.
 * A job with this method trains as "none" (g = 1, t = 0). Export: the
 * closest Hugging Face type, "dynamic" (dynamic NTK), factor fixed_g. */
#include "scheme.h"

#include <math.h>

static void ntk_draw(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t unit,
                     e2_pos_draw *d) {
    (void)s, (void)seed, (void)step, (void)unit, (void)d;
}

static void ntk_infer(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                      e2_pos_infer *out) {
    double s = (double)window / (double)c->original_window;
    if (s > 1.0 && head_dim > 2)
        out->theta_factor = pow(s, (double)head_dim / (double)(head_dim - 2));
}

static void ntk_hf(const e2_pos_config *c, double g, e2_pos_hf *out) {
    (void)g;
    if (c->fixed_g > 1.0) {
        out->type = "dynamic";
        out->factor = c->fixed_g;
    }
}

const e2_pos_scheme e2_pos_scheme_ntk = {
    .name = "ntk",
    .about = "NTK-aware: inference-only, rope_theta * (L'/L)^(D/(D-2)) at windows beyond L; trains "
             "as none",
    .trains = 0,
    .check = NULL,
    .draw = ntk_draw,
    .infer = ntk_infer,
    .hf = ntk_hf,
};
