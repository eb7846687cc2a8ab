/* train.h -- the training loop of e2: data -> forward/backward over
 * micro-batches -> gradient all-reduce -> clipping -> AdamW, with
 * checkpoints and an exact resume.
 *
 * The same loop serves `e2worker run` (one process, no daemon) and the
 * control-plane agent (several ranks): everything outside the loop plugs in
 * through e2w_train_hooks, and NULL hooks mean "single process, never
 * cancelled". Nothing is printed; progress reaches the caller through the
 * progress hook.
 *
 * Step s (1-based) of a job of global batch GB sequences of R+1 tokens on
 * W ranks: rank r takes global sample indices
 *     (s-1)*GB + r*GB/W + j*MB + i      (micro-batch j, item i)
 * and for each the sequence of the seeded sample order and the E² draw
 * (g, t) are pure functions of (seed, step, global sample index) (worker/
 * data), so a step computes the same thing on 1 rank or W, before and after
 * a resume. The loss is the mean over every predicted token of the global
 * batch; each micro-batch's backward is weighted by 1 / (GB * R), so the
 * all-reduce is a plain SUM.
 *
 * ZeRO-1 (train.zero1, W > 1): the gradient is all-reduced in full as
 * above and its norm clipped alike; rank r then runs AdamW only on its
 * shard [r S, (r+1) S) of the flat parameter buffer (S = ceil(n_params /
 * W)), holding moments (and an fp32 master) for that shard alone, and the
 * ranks all-gather the parameters. The numbers are those of the same job
 * without ZeRO-1 (bit for bit on the CPU); checkpoints gather the state to
 * rank 0 and are the same files, so they resume on any W, with or without.
 *
 * AdamW (k_adamw): weight decay applies to the matrices (q/k/v, o, gate/up,
 * down, an untied lm_head) and NOT to the RMSNorm weights or the token
 * embeddings (nor to a head tied to them): decaying a norm gain or an
 * embedding row pulls it toward 0, which is not a regulariser of anything.
 *
 * LR schedule: linear warm-up from lr/warmup to lr over warmup_steps, then
 * cosine (or linear) decay to min_lr at the last step, or constant.
 */
#ifndef E2_WORKER_TRAIN_H
#define E2_WORKER_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"
#include "model.h"
#include "shards.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What one optimizer step did (passed to the progress hook). */
typedef struct {
    int step, steps; /* step just done (1-based), total */
    double loss;     /* mean token loss of the global batch */
    double lr;
    double grad_norm;    /* global L2 norm before clipping */
    double step_s;       /* wall time of the step */
    double tokens_per_s; /* tokens of the global batch / step_s */
    double gflops;       /* model GFLOP/s achieved (all ranks) */
    uint64_t tokens;     /* tokens trained so far (global) */
} e2w_train_progress;

typedef struct {
    void *ud;             /* passed to every hook */
    int rank, world_size; /* 0 and 1 for a single process */
    /* The training shard files to read, in order, instead of expanding
     * spec.data.train_shards (a data-parallel job's manifest, so that every
     * rank reads the same files). NULL: the spec's patterns, expanded here.
     * Read by e2w_train_create only; the spec and its hash stay as given. */
    const e2_shard_list *shard_files;
    /* Sums n act-dtype elements of a device buffer over all ranks in place.
     * NULL: single process. Returns 0 or < 0 with err set. */
    int (*allreduce)(void *ud, void *buf, size_t n, k_dtype dtype, char *err, size_t errlen);
    /* Overlapped gradient sum (instead of allreduce): during the backward
     * of the step's last micro-batch, grad_ready receives each group of
     * gradient ranges as soon as it is final (e2w_grads_ready: head, each
     * block from the top, embeddings) and may start summing it over the
     * ranks; grad_wait, called once before the optimizer, returns when every
     * group is summed (0), or < 0 with err set. */
    e2w_grads_ready grad_ready;
    int (*grad_wait)(void *ud, char *err, size_t errlen);
    /* ZeRO-1 (train.zero1 with world_size > 1; NULL otherwise): all-gather
     * in place of n elements of dtype in a device buffer, where rank r
     * holds the right values of [min(r S, n), min((r + 1) S, n)),
     * S = ceil(n / world_size) (e2w_comm_allgather's chunks). */
    int (*allgather)(void *ud, void *buf, size_t n, k_dtype dtype, char *err, size_t errlen);
    /* Sums n host doubles over all ranks in place (the loss). */
    int (*allreduce_host)(void *ud, double *x, size_t n, char *err, size_t errlen);
    /* After each step. */
    void (*progress)(void *ud, const e2w_train_progress *p);
    /* After this rank wrote checkpoint step into tmp_dir. NULL: the trainer
     * commits it itself (rename tmp_dir -> final_dir, fsync, retention).
     * Otherwise the hook owns the commit (e2d renames once all ranks
     * reported) and returns 0, or < 0 to stop the run. */
    int (*checkpoint)(void *ud, int step, const char *tmp_dir, const char *final_dir, char *err,
                      size_t errlen);
    /* Polled before each step: non-zero stops the run cleanly (cancel). */
    int (*should_stop)(void *ud);
} e2w_train_hooks;

typedef struct e2w_train e2w_train;

/* A checkpoint directory <output_dir>/checkpoints/step_N/ holds
 * model.safetensors + config.json (a Hugging Face model) and the training
 * state (AdamW moments, fp32 master when the backend has one, step, data
 * cursor, spec hash) in ckpt's container. It is written as step_N.tmp/ and
 * renamed when complete. Ranks of a data-parallel job hold identical state:
 * rank 0 writes the files, the others none. A step_N directory without the
 * state file is not a complete checkpoint. */
#define E2W_TRAIN_STATE_FILE "train_state.bin"

/* Why e2w_train_create or e2w_train_run failed, as their negative return,
 * for a caller that must tell the job's faults (never retried) from the
 * machine's; the message says what. Below -1000, apart from base.h's E2_
 * codes (the libraries below report E2_EDATA and E2_ENOMEM, which the
 * trainer turns into these). Any other negative value (E2_ERR) is the
 * machine's: I/O, the device, a collective or a hook. */
#define E2W_TRAIN_EDATA \
    (-1001) /* the data fails its checks: a bad shard, too few tokens, a
                                    token outside the vocabulary */
#define E2W_TRAIN_ENOMEM \
    (-1002)                    /* the model, its training state or its activations do not
                                    fit this device's memory */
#define E2W_TRAIN_ENAN (-1003) /* the loss or the gradient norm is not finite (diverged) */

/* Builds the trainer for a resolved spec (defaults applied, validated):
 * opens the data, creates the model (from model.hf_dir or a seeded init)
 * and its buffers on backend k. output_dir receives checkpoints/. The spec
 * is copied. Fails with E2W_TRAIN_EDATA or E2W_TRAIN_ENOMEM when the job's
 * data or size is at fault. */
int e2w_train_create(e2w_train **out, const E2__V1__JobSpec *spec, const k_backend *k,
                     const char *output_dir, const e2w_train_hooks *hooks, char *err,
                     size_t errlen);
void e2w_train_free(e2w_train *t);

/* Memory the trainer holds, for the start-up report. */
typedef struct {
    size_t n_params, param_bytes, grad_bytes, optim_bytes, act_bytes;
} e2w_train_memory;
void e2w_train_memory_report(const e2w_train *t, e2w_train_memory *m);

/* Restores a checkpoint directory (step_N/): weights, AdamW state and step;
 * the spec hash recorded there must match. */
int e2w_train_resume(e2w_train *t, const char *ckpt_dir, char *err, size_t errlen);
/* Newest committed checkpoint under output_dir/checkpoints (step_N with the
 * largest N holding a complete training state), written into path; returns
 * 1 when found, 0 when none. */
int e2w_train_find_latest(const char *output_dir, char *path, size_t pathlen);

/* Runs steps until train.steps, or until should_stop. Returns 0 when done,
 * 1 when stopped early, < 0 on error (E2W_TRAIN_ENAN for a non-finite loss
 * or gradient norm; the last committed checkpoint is left untouched). */
int e2w_train_run(e2w_train *t, char *err, size_t errlen);

/* Writes a checkpoint of the current step now. */
int e2w_train_checkpoint(e2w_train *t, char *err, size_t errlen);

int e2w_train_step(const e2w_train *t);
e2w_model *e2w_train_model(e2w_train *t);
const E2__V1__JobSpec *e2w_train_spec(const e2w_train *t);

/* Schedule: learning rate of step s (1-based). */
double e2w_train_lr(const E2__V1__TrainSpec *ts, int s);

/* A stable 64-bit hash (FNV-1a over the packed model, data, augment and
 * train sections: what changes the trained numbers), so a resume refuses a
 * checkpoint of another job. */
uint64_t e2w_train_spec_hash(const E2__V1__JobSpec *spec);

#ifdef __cplusplus
}
#endif
#endif
