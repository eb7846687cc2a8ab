/* aug: the E² training-time augmentation sampler (e2-method.md section 3).
 *
 * For each augmentation unit it draws the RoPE scale g and the position
 * offset t:
 *   e2:   g from {1..g_max} with probabilities P (uniform, or g_weights),
 *         t uniform in {0..t_max}, t_max = max(0, floor(g*L) - R);
 *   pi:   g = fixed_g, t = 0 (Position Interpolation);
 *   pose: g = fixed_g, t uniform in {0..t_max} (PoSE-style);
 *   none: g = 1, t = 0.
 * With random_offset = 0 (augment.random_offset false) e2 and pose keep
 * t = 0 and draw g exactly as with offsets (the no-offset ablation).
 * A unit is one sample (per_sample, the default) or one optimizer step
 * (per_step). Each draw is a pure function of (seed, step, global sample
 * index), or of (seed, step) per step, through the counter-based RNG of
 * rng.h: never of the rank, micro-batch split, worker count or time.
 *
 * The sampler only returns (g, t); the first n_sink tokens keeping offset 0
 * is applied where positions are computed (the RoPE kernel), with
 * e2w_aug_position as the reference. When g*L >= R, t <= t_max keeps every
 * position below L: (R - 1 + t) / g <= (floor(g*L) - 1) / g < L. */
#ifndef E2W_AUG_H
#define E2W_AUG_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"

#define E2W_AUG_G_MAX 1024 /* largest g_max (the spec validator's limit) */

typedef enum { E2W_AUG_E2, E2W_AUG_PI, E2W_AUG_POSE, E2W_AUG_NONE } e2w_aug_method;
typedef enum { E2W_AUG_PER_SAMPLE, E2W_AUG_PER_STEP } e2w_aug_granularity;

typedef struct {
    e2w_aug_method method;
    e2w_aug_granularity granularity;
    uint32_t g_max;           /* e2: g in {1..g_max} */
    const double *g_weights;  /* e2: g_max weights for g = 1..g_max, or NULL for uniform */
    size_t n_g_weights;
    uint32_t n_sink;          /* leading tokens with offset 0 */
    uint32_t original_window; /* L */
    uint32_t train_length;    /* R */
    double fixed_g;           /* pi / pose */
    int no_offset;            /* e2 / pose: t = 0 (augment.random_offset false) */
} e2w_aug_config;

typedef struct {
    e2w_aug_config cfg;        /* g_weights not kept: see cdf */
    int uniform;
    double cdf[E2W_AUG_G_MAX]; /* e2, weighted: P(g <= i + 1) */
} e2w_aug;

/* Checks the configuration (one line naming the bad knob) and prepares P. */
int e2w_aug_init(e2w_aug *a, const e2w_aug_config *cfg, char *err, size_t errlen);

/* From a job spec's augment section after defaults (original_window set). */
int e2w_aug_init_spec(e2w_aug *a, const E2__V1__AugmentSpec *spec, char *err, size_t errlen);

/* Method and granularity names as in the job spec; 0 or -EINVAL. */
int e2w_aug_method_parse(const char *name, e2w_aug_method *out);
int e2w_aug_granularity_parse(const char *name, e2w_aug_granularity *out);

/* The largest offset for scale g: max(0, floor(g * L) - R). */
int32_t e2w_aug_t_max(const e2w_aug *a, float g);

/* (g, t) of global sample `sample_index` in `step` (per_step ignores
 * sample_index). */
void e2w_aug_draw(const e2w_aug *a, uint64_t seed, uint64_t step, uint64_t sample_index, float *g, int32_t *t);

/* Reference RoPE position of token m (fp32, as kernels compute it):
 * m / g for the n_sink sinks, (m + t) / g after them. */
static inline float e2w_aug_position(uint32_t n_sink, uint32_t m, float g, int32_t t) {
    return m < n_sink ? (float)m / g : (float)((double)m + (double)t) / g;
}

#endif
