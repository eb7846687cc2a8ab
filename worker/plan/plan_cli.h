/* plan_cli.h -- `e2worker plan`: the memory planner (common/plan) as a
 * command, reading --model through the worker's full config.json reader
 * (worker/ckpt) or a preset name. */
#ifndef E2_WORKER_PLAN_CLI_H
#define E2_WORKER_PLAN_CLI_H

#include <stddef.h>

#include "plan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* `e2worker plan` (cli_plan.c): argv after "plan"; returns the exit status
 * (0 fits, 1 does not fit, 2 bad arguments) with err set when not 0. */
int e2w_plan_main(int argc, char **argv, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
