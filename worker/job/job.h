/* job.h -- one job as e2worker runs it, shared by `e2worker run`
 * (worker/cli/run.c) and the agent's runner (worker/agent/train_runner.c):
 * the spec resolved to what the trainer needs, the checkpoint it resumes
 * from, and the run itself (resume or evaluate the starting model, train,
 * evaluate).
 *
 * Library e2w_job, prefix e2w_job_ (and e2w_spec_resolve). Functions return
 * 0 or E2_ERR (base.h's error convention) with one line in err; nothing is
 * printed: lines for the job's log reach the caller through a hook. */
#ifndef E2W_JOB_H
#define E2W_JOB_H

#include <stddef.h>

#include "e2/v1/job.pb-c.h"
#include "eval.h"
#include "train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a resolve takes besides the spec. Zeroed: nothing to override, no
 * data roots. */
typedef struct {
    char *const *sets; /* `--set path=value` overrides, applied first, in order */
    size_t n_sets;
    const char *model_dir; /* non-NULL: replaces model.hf_dir (model.config dropped) */
    /* Non-NULL: every file the spec names is checked against these roots
     * (e2_spec_check_roots, deep: links resolved) before any is read. */
    const char *data_roots;
    const char *export_root;
} e2w_resolve_opts;

/* The spec resolve chain, the one order every e2worker path uses:
 * overrides -> model_dir -> data roots -> the hf_dir model's config.json
 * (model-dependent defaults: original_window, eval windows and scales) ->
 * documented defaults -> validation -> the files exist. The spec keeps
 * model.hf_dir without model.config (the checkpoint's config.json is the
 * architecture); cfg, when not NULL, receives the architecture either
 * way (model.config, or the hf_dir model's config.json). */
int e2w_spec_resolve(E2__V1__JobSpec *spec, const e2w_resolve_opts *o, E2__V1__LlamaConfig *cfg,
                     char *err, size_t errlen);

/* The checkpoint a job resumes from: its own newest one (own: the run's
 * output_dir for `e2worker run`, e2d's last committed for the agent) when
 * there is one, else spec.resume_from (a checkpoint of another run with the
 * same training), else NULL (a fresh start). *is_own (when not NULL) says
 * which. */
const char *e2w_job_resume_from(const char *own, const E2__V1__JobSpec *spec, int *is_own);

/* Why a job failed, for the agent's outcome: the user's to fix (the spec,
 * the data, a model too large, a checkpoint they named), a diverged run
 * (the loss or gradient norm not finite: the user's too, lower the
 * learning rate or check the data), or the machinery's (retried
 * elsewhere). */
typedef enum {
    E2W_JOB_FAIL_NONE = 0,
    E2W_JOB_FAIL_USER,
    E2W_JOB_FAIL_INFRA,
    E2W_JOB_FAIL_NAN,
} e2w_job_fail;

/* The class of a negative return of e2w_train_create or e2w_train_run
 * (train.h's E2W_TRAIN_E* codes; anything else is the machinery's). */
e2w_job_fail e2w_job_fail_of(int rc);

/* The run of one rank, once the trainer exists. */
typedef struct {
    const char *own_ckpt; /* the job's own newest checkpoint, NULL or "" for none */
    int verify_manifest;  /* check the checkpoint against its manifest.json (e2d's) first */
    int evaluate;         /* this rank evaluates (rank 0) */
    int log_eval_rows;    /* one log line per eval row */
    void (*say)(void *ud, const char *line); /* a line for the job's log; NULL: none */
    void (*resumed)(void *ud, int step);     /* after a resume; NULL: none */
    void (*before_train)(void *ud);          /* right before the first step; NULL: none */
    void *ud;
} e2w_job_drive_opts;

/* Resume (e2w_job_resume_from), or else evaluate the starting model when
 * spec.eval.eval_base asks; train; evaluate the trained model. Returns 0
 * when done (ev holds the rows), 1 when the trainer stopped at a step
 * boundary (should_stop; nothing evaluated after), < 0 on failure with
 * *fail set. */
int e2w_job_drive(e2w_train *t, const e2w_job_drive_opts *o, e2w_eval_results *ev,
                  e2w_job_fail *fail, char *err, size_t errlen);

/* A committed checkpoint folder against its manifest.json (written by e2d
 * at the commit): every file listed there has its size and sha256. */
int e2w_job_verify_manifest(const char *dir, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
