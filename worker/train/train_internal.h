/* train_internal.h -- the trainer's state, shared by its files (train.c:
 * the loop; optim.c: schedule and AdamW; batch.c: samples and E² draws;
 * state.c: checkpoints and resume). Not part of the public API. */
#ifndef E2_WORKER_TRAIN_INTERNAL_H
#define E2_WORKER_TRAIN_INTERNAL_H

#include <string.h>

#include "train.h"

typedef struct train_data train_data;

struct e2w_train {
    E2__V1__JobSpec *spec;       /* resolved copy */
    const k_backend *k;
    e2w_train_hooks hooks;
    char *output_dir;
    e2w_model model;
    e2w_acts acts;
    train_data *data;
    int step;                    /* optimizer steps done */
    int R;                       /* tokens per training sequence */
    int micro_batch, n_micro;    /* per forward/backward; per step per rank */
    int32_t *tokens, *targets;   /* (micro_batch * R) host */
    float *g;                    /* (micro_batch) */
    int32_t *t;                  /* (micro_batch) */
    uint64_t spec_hash;
};

/* AdamW over every tensor kind after clipping the global gradient norm to
 * train.grad_clip; returns the norm before clipping. A non-finite norm is
 * returned without touching the weights. */
double train_optimizer_step(e2w_model *m, const E2__V1__TrainSpec *ts,
                            int step, double lr, uint64_t seed);

/* Training data: the shards of spec.data.train_shards as R+1-token
 * sequences in the seeded order (every token checked < vocab), and the E²
 * sampler. */
int train_data_open(train_data **out, const E2__V1__JobSpec *spec, int R,
                    int vocab, char *err, size_t errlen);
void train_data_close(train_data *d);
/* Fills B sequences starting at global sample index first of step (0-based
 * step index): tokens/targets (B, R), g (B), t (B). */
int train_data_batch(train_data *d, uint64_t step0, uint64_t first, int B,
                     int32_t *tokens, int32_t *targets, float *g, int32_t *t,
                     char *err, size_t errlen);

/* Checkpoint files of this rank into dir (created). */
int train_state_write(const e2w_train *t, const char *dir, char *err,
                      size_t errlen);
int train_state_read(e2w_train *t, const char *dir, char *err, size_t errlen);

#endif
