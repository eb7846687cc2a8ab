/* agent_internal.h -- what the agent's own files share and nothing else
 * needs: the default runner (the trainer) and the hook through which a
 * runner's collectives are broken when e2d sends Abort. */
#ifndef E2W_AGENT_INTERNAL_H
#define E2W_AGENT_INTERNAL_H

#include "agent.h"
#include "shards.h"

/* Runs the assignment with worker/train (train_runner.c). */
void e2w_agent_train_runner(e2w_agent_job *job, e2w_agent_result *result, void *data);

/* The assignment's shard manifest as the files the trainer reads
 * (e2w_train_hooks.shard_files), appended to files: each checked to exist
 * here with the size e2d saw. Nothing appended without a manifest.
 * Returns 0, or E2_ERR with one line in err (files freed). */
int e2w_agent_shard_files(const E2__V1__Assignment *as, e2_shard_list *files, char *err,
                          size_t errlen);

/* The agent's settings (data roots for the runner's file checks). */
const e2w_agent_config *e2w_agent_job_config(const e2w_agent_job *job);

/* Called from the control thread when the rank is aborted, so collectives
 * blocked in the training thread return instead of waiting for peers that
 * are gone. Set to NULL before what data points to is freed. */
typedef void (*e2w_agent_abort_cb)(void *data);
void e2w_agent_job_set_abort(e2w_agent_job *job, e2w_agent_abort_cb cb, void *data);

#endif
