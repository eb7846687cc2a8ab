/* train_internal.h -- the trainer's state, shared by its files (train.c:
 * the loop; optim.c: schedule, AdamW and ZeRO-1's shard; batch.c: samples
 * and E² draws; state.c: checkpoints and resume). Not part of the public
 * API. */
#ifndef E2_WORKER_TRAIN_INTERNAL_H
#define E2_WORKER_TRAIN_INTERNAL_H

#include <string.h>

#include "train.h"

typedef struct train_data train_data;

struct e2w_train {
    E2__V1__JobSpec *spec; /* resolved copy */
    const k_backend *k;
    e2w_train_hooks hooks;
    char *output_dir;
    e2w_model model;
    e2w_acts acts;
    train_data *data;
    int step;                  /* optimizer steps done */
    int R;                     /* tokens per training sequence */
    int micro_batch, n_micro;  /* per forward/backward; per step per rank */
    int32_t *tokens, *targets; /* (micro_batch * R) host */
    float *g;                  /* (micro_batch) */
    int32_t *t;                /* (micro_batch) */
    int n_chunks;              /* PoSE chunks per sample (0: none) */
    int32_t *chunks;           /* (micro_batch, n_chunks, 2): k_rope.chunks */
    uint64_t spec_hash;
    int zero1; /* optimizer state sharded over the ranks
                                    (train.zero1 and world_size > 1) */
};

/* ZeRO-1's shard of rank r among W over n parameters: [lo, lo + len) with
 * lo = min(r S, n), S = ceil(n / W) (the chunks of e2w_comm_allgather and
 * of e2worker plan's ceil(n / gpus); the last shards shorter or empty). */
void e2w_train_shard(size_t n, int world, int rank, size_t *lo, size_t *len);

/* Decides ZeRO-1 (t->zero1) and allocates the model's gradients and its
 * optimizer state: all of it, or this rank's shard. */
int e2w_train_optim_alloc(e2w_train *t, char *err, size_t errlen);

/* AdamW over every tensor kind after clipping the global gradient norm
 * (of the whole, all-reduced gradient) to train.grad_clip; returns the norm
 * before clipping. Updates the parameters the model holds optimizer state
 * for (m->opt_lo, m->opt_n): all, or this rank's ZeRO-1 shard, which
 * e2w_train_params_gather then spreads. A non-finite norm is returned without
 * touching the weights. */
double e2w_train_optimizer_step(e2w_model *m, const E2__V1__TrainSpec *ts, int step, double lr,
                                uint64_t seed);
/* ZeRO-1: all-gathers the parameters after the shards' updates (every rank
 * calls it); nothing without ZeRO-1. */
int e2w_train_params_gather(e2w_train *t, char *err, size_t errlen);

/* Training data: files (NULL: spec.data.train_shards expanded) as
 * R+1-token sequences in the seeded order (every token checked < vocab),
 * and the E² sampler. E2W_TRAIN_EDATA when the data fails its checks. */
int e2w_train_data_open(train_data **out, const E2__V1__JobSpec *spec, const e2_shard_list *files,
                        int R, int vocab, char *err, size_t errlen);
void e2w_train_data_close(train_data *d);
/* Fills B sequences starting at global sample index first of step (0-based
 * step index): tokens/targets (B, R), g (B), t (B), and chunks
 * (B, e2w_train_data_chunks(d), 2) when that is > 0. */
int e2w_train_data_batch(train_data *d, uint64_t step0, uint64_t first, int B, int32_t *tokens,
                         int32_t *targets, float *g, int32_t *t, int32_t *chunks, char *err,
                         size_t errlen);
/* Chunks per sample of the position scheme (PoSE), 0 for the others. */
int e2w_train_data_chunks(const train_data *d);

/* Checkpoint files of this rank into dir (created). */
int e2w_train_state_write(const e2w_train *t, const char *dir, char *err, size_t errlen);
int e2w_train_state_read(e2w_train *t, const char *dir, char *err, size_t errlen);
/* ZeRO-1: the full (n_params) fp32 array whose rank-local shard (the
 * model's opt_n elements, device memory) is `shard`, gathered into rank 0's
 * host array `full` (NULL on the other ranks) through the all-gather hook,
 * in pieces of at most `piece` elements per rank (a device buffer of W x
 * piece floats). Every rank must call it. */
int e2w_train_state_gather(const e2w_train *t, const float *shard, float *full, size_t piece,
                           char *err, size_t errlen);

#endif
