/* fuzz_worker_conf.c -- e2worker's --config file (worker/agent/main.c): the
 * input is the file, given as `e2worker --config FILE --name fuzz`. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>

#include "agent.h"
#include "agent_internal.h"

/* agent.c names the trainer as the default runner; this target never
 * starts an agent, so the trainer (and its kernels) is not linked in. */
void e2w_agent_train_runner(e2w_agent_job *job, e2w_agent_result *result, void *data) {
    (void)job, (void)result, (void)data;
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    char err[512];
    e2w_agent_config cfg;
    if (!path[0]) snprintf(path, sizeof path, "%s", fuzz_file("worker.conf"));
    fuzz_write(path, data, size, 0600);
    char *argv[] = { "e2worker", "--config", path, "--name", "fuzz", NULL };
    (void)e2w_agent_parse_args(5, argv, &cfg, err, sizeof err);
    e2w_agent_args_free(&cfg);
    return 0;
}
