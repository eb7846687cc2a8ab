/* scheme: the position-scheme table (e2-method.md sections 3 and 6).
 *
 * A position scheme is how a method places RoPE positions: at training
 * time (a per-sample draw of scale g, offset t and, for PoSE, chunk skip
 * biases; the first n_sink tokens keep offset 0) and at inference (the
 * scale g and rope_theta used at a window L'), plus its Hugging Face
 * rope_scaling export. One entry per scheme, one file per entry:
 *   scheme_e2.c    E²-LLM: random g in {1..g_max} and t per sample, sinks;
 *   scheme_pi.c    Position Interpolation: fixed g, t = 0;
 *   scheme_pose.c  PoSE: chunked skip-wise positions up to a target length;
 *   scheme_none.c  no augmentation (g = 1, t = 0): the control;
 *   scheme_ntk.c   NTK-aware: inference-only rope_theta change, no fine-tune.
 * Adding a scheme: a new scheme_<name>.c defining e2_pos_scheme_<name>, one
 * line in schemes.c's table and CMakeLists.txt, its tests (tests/data), and
 * its knobs (if any) in proto/e2/v1/job.proto's AugmentSpec.
 *
 * Every draw is a pure function of (seed, step, unit) through rng.h, unit =
 * the global sample index (per_sample) or UINT64_MAX (per_step). */
#ifndef E2_POS_SCHEME_H
#define E2_POS_SCHEME_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"

#define E2_POS_G_MAX      1024 /* largest g_max (the spec validator's limit) */
#define E2_POS_MAX_CHUNKS 4    /* = K_ROPE_MAX_CHUNKS of kernels/k.h */

/* Index into e2_pos_schemes[] (the table's order). */
typedef enum { E2_POS_E2, E2_POS_PI, E2_POS_POSE, E2_POS_NONE, E2_POS_NTK, E2_POS_N } e2_pos_method;
typedef enum { E2_POS_PER_SAMPLE, E2_POS_PER_STEP } e2_pos_granularity;

/* A scheme's knobs, after the spec's defaults. */
typedef struct {
    e2_pos_method method;
    e2_pos_granularity granularity;
    uint32_t g_max;          /* e2: g in {1..g_max} */
    const double *g_weights; /* e2: g_max weights for g = 1..g_max, or NULL for uniform */
    size_t n_g_weights;
    uint32_t n_sink;             /* leading tokens with offset 0 */
    uint32_t original_window;    /* L */
    uint32_t train_length;       /* R */
    double fixed_g;              /* pi: the scale; ntk: the export factor */
    int no_offset;               /* e2: t = 0 (augment.random_offset false) */
    uint32_t pose_chunks;        /* pose: chunks of the R-token window, 1..E2_POS_MAX_CHUNKS */
    uint32_t pose_target_length; /* pose: largest position + 1 (>= R) */
} e2_pos_config;

/* The prepared sampler: the config and, for weighted e2, P(g <= i + 1). */
typedef struct {
    e2_pos_config cfg; /* g_weights not kept: see cdf */
    int uniform;
    double cdf[E2_POS_G_MAX];
} e2_pos_sampler;

/* One sample's positions: token m sits at m / g (m < n_sink) or
 * (m + t + skip(m)) / g, skip(m) the skip bias of the last chunk starting at
 * or before m (k.h, k_rope). */
typedef struct {
    float g;
    int32_t t;
    int n_chunks;                         /* 0: no chunks */
    int32_t chunks[E2_POS_MAX_CHUNKS][2]; /* first token, skip bias */
} e2_pos_draw;

/* Inference at window L': RoPE scale g (no offset, no sinks) and the
 * factor applied to rope_theta. */
typedef struct {
    double g;
    double theta_factor;
} e2_pos_infer;

/* Hugging Face rope_scaling: type NULL writes null; else
 * {"rope_type": type, "type": type, "factor": factor}. */
typedef struct {
    const char *type;
    double factor;
} e2_pos_hf;

typedef struct e2_pos_scheme {
    const char *name;  /* augment.method */
    const char *about; /* one line, for docs and errors */
    int trains;        /* 0: inference-only; a fine-tune with it trains as "none" */
    /* The scheme's own spec knobs (after defaults), one error line naming
     * the knob; NULL when it has none. */
    int (*check)(const E2__V1__AugmentSpec *a, char *err, size_t errlen);
    void (*draw)(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t unit,
                 e2_pos_draw *d);
    /* head_dim D (for NTK), window L' and L = cfg->original_window. */
    void (*infer)(const e2_pos_config *c, uint32_t window, uint32_t head_dim, e2_pos_infer *out);
    /* g: the scale a checkpoint is exported for (e2: the chosen g). */
    void (*hf)(const e2_pos_config *c, double g, e2_pos_hf *out);
} e2_pos_scheme;

extern const e2_pos_scheme *const e2_pos_schemes[E2_POS_N];

/* The scheme named name, or NULL; *method gets its index when not NULL. */
const e2_pos_scheme *e2_pos_scheme_find(const char *name, e2_pos_method *method);
/* "e2, pi, pose, none, ntk" (for error messages). */
const char *e2_pos_scheme_names(void);

/* Checks cfg (one line naming the bad knob), prepares the sampler. 0 or
 * E2_EDATA (base.h): every failure is a bad value in the spec. */
int e2_pos_sampler_init(e2_pos_sampler *s, const e2_pos_config *cfg, char *err, size_t errlen);
/* The draw of one unit (see the file comment). */
void e2_pos_sample(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t sample_index,
                   e2_pos_draw *d);
/* max(0, floor(g * L) - R): the largest E² offset for scale g. */
int32_t e2_pos_t_max(const e2_pos_config *c, float g);
/* Inference rule of cfg's scheme at window L' (g >= 1). */
void e2_pos_inference(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                      e2_pos_infer *out);
/* rope_scaling export of cfg's scheme for scale g. */
void e2_pos_hf_rope_scaling(const e2_pos_config *c, double g, e2_pos_hf *out);

#endif
