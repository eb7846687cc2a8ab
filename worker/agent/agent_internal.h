/* agent_internal.h -- what the agent's own files share and nothing else
 * needs: the default runner (the trainer) and the hook through which a
 * runner's collectives are broken when e2d sends Abort. */
#ifndef E2W_AGENT_INTERNAL_H
#define E2W_AGENT_INTERNAL_H

#include "agent.h"

/* Runs the assignment with worker/train (train_runner.c). */
void e2w_agent_train_runner(e2w_agent_job *job, e2w_agent_result *result,
                            void *data);

/* Called from the control thread when the rank is aborted, so collectives
 * blocked in the training thread return instead of waiting for peers that
 * are gone. Set to NULL before what data points to is freed. */
typedef void (*e2w_agent_abort_cb)(void *data);
void e2w_agent_job_set_abort(e2w_agent_job *job, e2w_agent_abort_cb cb,
                             void *data);

#endif
