/* main.c -- `e2worker`: the worker process of e2. Subcommands:
 *   run SPEC.json     train + evaluate one job alone, no daemon (run.c)
 *   eval SPEC.json --model DIR   evaluation only (eval.c)
 *   inspect ...       one forward+backward, logits/loss/grads out (inspect.c)
 *   export ...        Hugging Face export for a target window (export.c)
 *   prep ...          byte-level text -> token shards (prep.c)
 *   version, --help
 *   --coordinator ADDR ...  agent mode under e2d (worker/agent)
 * Every failure is one line on stderr and a non-zero exit status. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "cpu/blas.h"
#include "plan_cli.h"

static const char usage[] =
    "usage: e2worker <command> [options]\n"
    "\n"
    "commands:\n"
    "  run SPEC.json [--set path=value ...] [--fresh]\n"
    "      Train and evaluate the job of SPEC.json in this process, writing\n"
    "      output_dir/ (spec.json, log, metrics.jsonl, checkpoints/,\n"
    "      eval.json, eval.md). Resumes from the newest complete checkpoint\n"
    "      in output_dir; --fresh refuses to start when one exists.\n"
    "  eval SPEC.json --model DIR [--set path=value ...] [--out FILE.json]\n"
    "      Evaluate the model in DIR (Hugging Face directory or a run's\n"
    "      checkpoints/step_N) with exactly the spec's eval section, as run\n"
    "      does after training; no training. Writes output_dir/eval.json and\n"
    "      eval.md, or FILE.json and FILE.md.\n"
    "  inspect --model DIR --tokens SHARD --batch B --seq T [--scale G]\n"
    "          [--offset T0] [--sinks N] --out FILE.safetensors\n"
    "      One forward+backward on the first B sequences of T+1 tokens;\n"
    "      writes logits (B,T,V), loss and grad.<hf name> of every parameter.\n"
    "  export --checkpoint DIR --window L' --out DIR\n"
    "      Hugging Face model for window L' (rope_scaling linear L'/L).\n"
    "  prep --out PREFIX [--val-fraction F] FILES...\n"
    "      Byte-level tokenisation of text files into llm.c token shards.\n"
    "  plan --model CONFIG --gpus N --gpu-mem GB [--zero1] [--recompute] ...\n"
    "      Per-GPU memory of training CONFIG (config.json or a preset) and\n"
    "      whether it fits (e2worker plan --help).\n"
    "  version\n"
    "      Print the version.\n"
    "  --coordinator ADDR [...], --config FILE [...]\n"
    "      Agent mode: register with the e2d at ADDR and run the job ranks it\n"
    "      assigns (flags: e2worker --coordinator ADDR --help).\n";

int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out,
                   char *err, size_t errlen) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s == NULL || errno || end == s || *end != '\0' || v < lo || v > hi) {
        snprintf(err, errlen, "%s needs an integer in [%ld, %ld] (got %s)", opt, lo, hi,
                 s ? s : "nothing");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double *out, char *err,
                     size_t errlen) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (s == NULL || errno || end == s || *end != '\0') {
        snprintf(err, errlen, "%s needs a number (got %s)", opt, s ? s : "nothing");
        return -1;
    }
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    char err[CLI_ERRLEN] = "";
    /* A data-parallel peer or e2d that dies closes its sockets; the next
     * write must fail with EPIPE and be reported, not kill this worker. */
    signal(SIGPIPE, SIG_IGN);
    /* OpenBLAS picks its kernels when it loads; on a CPU it does not know it
     * runs ~6x slower ones (kernels/cpu/blas.h). Choose the core through the
     * environment and start again; execv only returns on failure, and then
     * the slow kernels still compute the same results. */
    const char *core = kcpu_blas_coretype_hint();
    if (core != NULL && setenv("OPENBLAS_CORETYPE", core, 1) == 0) execv("/proc/self/exe", argv);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int rc;
    if (strncmp(cmd, "--coordinator", 13) == 0 || strncmp(cmd, "--config", 8) == 0)
        return e2w_agent_main(argc, argv);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    } else if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("e2worker %s\n", E2_VERSION);
        return 0;
    } else if (strcmp(cmd, "run") == 0) {
        rc = cli_run(argc - 2, argv + 2, err, sizeof err);
    } else if (strcmp(cmd, "eval") == 0) {
        rc = cli_eval(argc - 2, argv + 2, err, sizeof err);
    } else if (strcmp(cmd, "inspect") == 0) {
        rc = cli_inspect(argc - 2, argv + 2, err, sizeof err);
    } else if (strcmp(cmd, "export") == 0) {
        rc = cli_export(argc - 2, argv + 2, err, sizeof err);
    } else if (strcmp(cmd, "prep") == 0) {
        rc = cli_prep(argc - 2, argv + 2, err, sizeof err);
    } else if (strcmp(cmd, "plan") == 0) {
        rc = e2w_plan_main(argc - 2, argv + 2, err, sizeof err);
    } else {
        fprintf(stderr, "e2worker: unknown command '%s' (see e2worker --help)\n", cmd);
        return 2;
    }
    if (rc != 0 && err[0] != '\0') fprintf(stderr, "e2worker: %s\n", err);
    return rc;
}
