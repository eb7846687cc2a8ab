/* aug: the trainer's position sampler over the scheme table; see aug.h. */
#include "aug.h"
#include "base.h"

#include <string.h>

int e2w_aug_method_parse(const char *name, e2w_aug_method *out) {
    return e2_pos_scheme_find(name, out) ? 0 : E2_ERR;
}

int e2w_aug_granularity_parse(const char *name, e2w_aug_granularity *out) {
    if (name && strcmp(name, "per_sample") == 0)
        *out = E2W_AUG_PER_SAMPLE;
    else if (name && strcmp(name, "per_step") == 0)
        *out = E2W_AUG_PER_STEP;
    else
        return E2_ERR;
    return 0;
}

int e2w_aug_init(e2w_aug *a, const e2w_aug_config *cfg, char *err, size_t errlen) {
    /* A config that fails the scheme's checks is bad input: E2_EDATA,
     * which the trainer tells apart. */
    return e2_pos_sampler_init(a, cfg, err, errlen);
}

int e2w_aug_config_spec(e2w_aug_config *c, const E2__V1__AugmentSpec *s, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    if (e2w_aug_method_parse(s->method, &c->method))
        return e2_errf_rc(err, errlen, E2_EDATA, "augment.method must be one of %s (got \"%s\")",
                          e2_pos_scheme_names(), s->method ? s->method : "");
    if (e2w_aug_granularity_parse(s->granularity, &c->granularity))
        return e2_errf_rc(err, errlen, E2_EDATA,
                          "augment.granularity must be per_sample or per_step (got \"%s\")",
                          s->granularity ? s->granularity : "");
    if (!s->has_g_max || !s->has_n_sink || !s->has_train_length || !s->has_fixed_g ||
        !s->has_original_window)
        return e2_errf_rc(
            err, errlen, E2_EDATA,
            "augment: defaults not applied (original_window needs the model's config)");
    c->g_max = s->g_max;
    c->g_weights = s->g_weights;
    c->n_g_weights = s->n_g_weights;
    c->n_sink = s->n_sink;
    c->original_window = s->original_window;
    c->train_length = s->train_length;
    c->fixed_g = s->fixed_g;
    c->no_offset = s->has_random_offset && !s->random_offset;
    c->pose_chunks = s->has_pose_chunks ? s->pose_chunks : 2;
    c->pose_target_length =
        s->has_pose_target_length ? s->pose_target_length : 8 * s->original_window;
    return 0;
}

int e2w_aug_init_spec(e2w_aug *a, const E2__V1__AugmentSpec *s, char *err, size_t errlen) {
    e2w_aug_config c;
    int rc = e2w_aug_config_spec(&c, s, err, errlen);
    if (rc < 0) return rc;
    return e2w_aug_init(a, &c, err, errlen);
}

int32_t e2w_aug_t_max(const e2w_aug *a, float g) {
    return e2_pos_t_max(&a->cfg, g);
}

void e2w_aug_draw_pos(const e2w_aug *a, uint64_t seed, uint64_t step, uint64_t sample_index,
                      e2_pos_draw *d) {
    e2_pos_sample(a, seed, step, sample_index, d);
}

void e2w_aug_draw(const e2w_aug *a, uint64_t seed, uint64_t step, uint64_t sample_index, float *g,
                  int32_t *t) {
    e2_pos_draw d;
    e2_pos_sample(a, seed, step, sample_index, &d);
    *g = d.g;
    *t = d.t;
}
