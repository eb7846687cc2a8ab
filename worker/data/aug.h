/* aug: the trainer's sampler of RoPE positions, per training sample: a thin
 * layer over the position-scheme table of common/pos (scheme.h), where each
 * scheme (e2, pi, pose, none, ntk) keeps its knobs, its draw, its
 * inference rule and its export, one file each (scheme_<name>.c).
 *
 * A unit is one sample (per_sample, the default) or one optimizer step
 * (per_step). Each draw is a pure function of (seed, step, global sample
 * index), or of (seed, step) per step, through the counter-based RNG of
 * rng.h: never of the rank, micro-batch split, worker count or time.
 *
 * The first n_sink tokens keeping offset 0 is applied where positions are
 * computed (the RoPE kernel, k_rope), with e2w_aug_position as the
 * reference. */
#ifndef E2W_AUG_H
#define E2W_AUG_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"
#include "scheme.h"

#define E2W_AUG_G_MAX E2_POS_G_MAX

typedef e2_pos_method e2w_aug_method;
#define E2W_AUG_E2   E2_POS_E2
#define E2W_AUG_PI   E2_POS_PI
#define E2W_AUG_POSE E2_POS_POSE
#define E2W_AUG_NONE E2_POS_NONE
#define E2W_AUG_NTK  E2_POS_NTK
typedef e2_pos_granularity e2w_aug_granularity;
#define E2W_AUG_PER_SAMPLE E2_POS_PER_SAMPLE
#define E2W_AUG_PER_STEP   E2_POS_PER_STEP

typedef e2_pos_config e2w_aug_config;
typedef e2_pos_sampler e2w_aug;

/* Checks the configuration (one line naming the bad knob) and prepares P.
 * 0 or E2_EDATA (base.h): the config is bad. The two below too, where the
 * spec's augment section is bad. */
int e2w_aug_init(e2w_aug *a, const e2w_aug_config *cfg, char *err, size_t errlen);

/* The config of a job spec's augment section after defaults
 * (original_window set; pose_target_length unset = 8 * original_window,
 * pose_chunks unset = 2). */
int e2w_aug_config_spec(e2w_aug_config *c, const E2__V1__AugmentSpec *spec, char *err,
                        size_t errlen);
/* e2w_aug_config_spec, then e2w_aug_init. */
int e2w_aug_init_spec(e2w_aug *a, const E2__V1__AugmentSpec *spec, char *err, size_t errlen);

/* Method and granularity names as in the job spec; 0 or E2_ERR (no line). */
int e2w_aug_method_parse(const char *name, e2w_aug_method *out);
int e2w_aug_granularity_parse(const char *name, e2w_aug_granularity *out);

/* The largest E² offset for scale g: max(0, floor(g * L) - R). */
int32_t e2w_aug_t_max(const e2w_aug *a, float g);

/* (g, t) of global sample `sample_index` in `step` (per_step ignores
 * sample_index); PoSE's chunks are in e2w_aug_draw_pos. */
void e2w_aug_draw(const e2w_aug *a, uint64_t seed, uint64_t step, uint64_t sample_index, float *g,
                  int32_t *t);
/* The whole draw: g, t and chunk skip biases. */
void e2w_aug_draw_pos(const e2w_aug *a, uint64_t seed, uint64_t step, uint64_t sample_index,
                      e2_pos_draw *d);

/* Reference RoPE position of token m (fp32, as kernels compute it):
 * m / g for the n_sink sinks, (m + t) / g after them. */
static inline float e2w_aug_position(uint32_t n_sink, uint32_t m, float g, int32_t t) {
    return m < n_sink ? (float)m / g : (float)((double)m + (double)t) / g;
}

/* The same with a draw's chunk skip bias (k.h: skip of the last chunk that
 * starts at or before m). */
static inline float e2w_aug_position_draw(uint32_t n_sink, uint32_t m, const e2_pos_draw *d) {
    int32_t skip = 0;
    for (int c = 0; c < d->n_chunks; c++)
        if ((uint32_t)d->chunks[c][0] <= m) skip = d->chunks[c][1];
    return m < n_sink ? (float)m / d->g : (float)((double)m + (double)d->t + (double)skip) / d->g;
}

#endif
