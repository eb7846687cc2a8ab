/* main.c -- `e2worker`: the worker process of e2. Subcommands:
 *   run SPEC.json     train + evaluate one job alone, no daemon (run.c)
 *   eval SPEC.json --model DIR   evaluation only (eval.c)
 *   inspect ...       one forward+backward, logits/loss/grads out (inspect.c)
 *   export ...        Hugging Face export for a target window (export.c)
 *   plan ...          per-GPU memory plan (worker/plan)
 *   prep ...          byte-level text -> token shards (prep.c)
 *   version, --help; `e2worker CMD --help` (or -h) prints CMD's usage
 *   --coordinator ADDR ...  agent mode under e2d (worker/agent)
 * Every failure is one line on stderr and a non-zero exit status. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "agent.h"
#include "base.h"
#include "cli.h"
#include "k.h"
#include "plan_cli.h"

/* Each command's own usage, printed by `e2worker CMD --help` (or -h). */
static const char run_usage[] =
    "usage: e2worker run SPEC.json [--set path=value ...] [--fresh]\n"
    "\n"
    "Train and evaluate the job of SPEC.json (the JSON form of e2.v1.JobSpec)\n"
    "in this process, writing output_dir/ (spec.json, log, metrics.jsonl,\n"
    "checkpoints/, eval.json, eval.md). Resumes from the newest complete\n"
    "checkpoint in output_dir.\n"
    "\n"
    "  --set path=value   override one spec field (repeatable), e.g.\n"
    "                     --set train.steps=500\n"
    "  --fresh            refuse to start when output_dir holds a checkpoint\n"
    "  -h, --help         this text\n";

static const char eval_usage[] =
    "usage: e2worker eval SPEC.json --model DIR [--set path=value ...] [--out FILE.json]\n"
    "\n"
    "Evaluate the model in DIR (a Hugging Face directory or a run's\n"
    "checkpoints/step_N) with exactly the spec's eval section, as run does\n"
    "after training; no training.\n"
    "\n"
    "  --model DIR        the model to evaluate (required)\n"
    "  --set path=value   override one spec field (repeatable)\n"
    "  --out FILE.json    write FILE.json and FILE.md instead of\n"
    "                     output_dir/eval.json and eval.md\n"
    "  -h, --help         this text\n";

static const char inspect_usage[] =
    "usage: e2worker inspect --model DIR --tokens SHARD --batch B --seq T\n"
    "                        [--scale G] [--offset T0] [--sinks N] --out FILE.safetensors\n"
    "\n"
    "One forward+backward of the model in DIR on the first B sequences of T+1\n"
    "tokens of SHARD (an llm.c token shard), for comparing e2 with another\n"
    "implementation. FILE.safetensors gets logits (B,T,V), loss and\n"
    "grad.<hf name> of every parameter (fp32).\n"
    "\n"
    "  --model DIR        Hugging Face model directory (required)\n"
    "  --tokens SHARD     token shard (required)\n"
    "  --batch B          sequences (required)\n"
    "  --seq T            tokens per sequence (required)\n"
    "  --scale G          RoPE scale, >= 1 (default: the model's linear factor, or 1)\n"
    "  --offset T0        position offset (default 0)\n"
    "  --sinks N          attention-sink tokens kept at offset 0 (default 0)\n"
    "  --out FILE         output safetensors file (required)\n"
    "  -h, --help         this text\n";

static const char export_usage[] =
    "usage: e2worker export --checkpoint DIR --window L' --out DIR\n"
    "                       [--rope-scaling legacy|modern]\n"
    "\n"
    "Write a Hugging Face model that serves window L' = g L: the checkpoint's\n"
    "weights unchanged, its config.json kept field for field, with\n"
    "max_position_embeddings L' and rope_scaling linear, factor g = L'/L.\n"
    "\n"
    "  --checkpoint DIR   a run's checkpoints/step_N or any Llama HF directory\n"
    "  --window L'        target window, >= the model's original window L\n"
    "  --out DIR          output directory\n"
    "  --rope-scaling F   legacy (default): {\"type\": \"linear\", \"factor\": g},\n"
    "                     which every transformers from 4.31 on reads;\n"
    "                     modern: {\"rope_type\": \"linear\", \"factor\": g}, for\n"
    "                     transformers >= 4.43 only\n"
    "  -h, --help         this text\n";

static const char prep_usage[] =
    "usage: e2worker prep --out PREFIX [--val-fraction F] FILES...\n"
    "\n"
    "Byte-level tokenisation of text files into llm.c token shards\n"
    "PREFIX_train_NNNNNN.bin (and PREFIX_val_NNNNNN.bin with --val-fraction);\n"
    "vocabulary 257: the bytes and an end-of-text id before each file.\n"
    "\n"
    "  --out PREFIX       output path prefix (required)\n"
    "  --val-fraction F   share of tokens for validation, in [0, 1) (default 0)\n"
    "  -h, --help         this text\n";

static const char version_usage[] = "usage: e2worker version\n"
                                    "\n"
                                    "Print the version of e2worker.\n";

static const char usage[] =
    "usage: e2worker <command> [options]\n"
    "\n"
    "commands (e2worker <command> --help for each one's options):\n"
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
    "  export --checkpoint DIR --window L' --out DIR [--rope-scaling legacy|modern]\n"
    "      Hugging Face model for window L' (rope_scaling linear L'/L).\n"
    "  prep --out PREFIX [--val-fraction F] FILES...\n"
    "      Byte-level tokenisation of text files into llm.c token shards.\n"
    "  plan --model CONFIG --gpus N --gpu-mem GB [--zero1] [--recompute] ...\n"
    "      Per-GPU memory of training CONFIG (config.json or a preset) and\n"
    "      whether it fits.\n"
    "  version\n"
    "      Print the version.\n"
    "  --coordinator ADDR [...], --config FILE [...]\n"
    "      Agent mode: register with the e2d at ADDR and run the job ranks it\n"
    "      assigns (flags: e2worker --coordinator ADDR --help).\n";

static int cli_version(int argc, char **argv, char *err, size_t errlen) {
    if (argc > 0) {
        snprintf(err, errlen, "version: unexpected argument '%s'", argv[0]);
        return 2;
    }
    printf("e2worker %s\n", E2_VERSION);
    return 0;
}

static int cli_plan(int argc, char **argv, char *err, size_t errlen) {
    return e2w_plan_main(argc, argv, err, errlen);
}

/* The subcommands; usage NULL: the command prints its own (plan). */
static const struct {
    const char *name, *usage;
    int (*fn)(int argc, char **argv, char *err, size_t errlen);
} commands[] = {
    { "run", run_usage, cli_run },
    { "eval", eval_usage, cli_eval },
    { "inspect", inspect_usage, cli_inspect },
    { "export", export_usage, cli_export },
    { "prep", prep_usage, cli_prep },
    { "plan", NULL, cli_plan },
    { "version", version_usage, cli_version },
};

int cli_parse_long(const char *opt, const char *s, long lo, long hi, long *out, char *err,
                   size_t errlen) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (s == NULL || errno || end == s || *end != '\0' || v < lo || v > hi) {
        snprintf(err, errlen, "%s needs an integer in [%ld, %ld] (got %s)", opt, lo, hi,
                 s ? s : "nothing");
        return E2_ERR;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *opt, const char *s, double *out, char *err, size_t errlen) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (s == NULL || errno || end == s || *end != '\0') {
        snprintf(err, errlen, "%s needs a number (got %s)", opt, s ? s : "nothing");
        return E2_ERR;
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
     * runs ~6x slower ones (k_cpu_coretype_hint). Choose the core through the
     * environment and start again; execv only returns on failure, and then
     * the slow kernels still compute the same results. */
    const char *core = k_cpu_coretype_hint();
    int again = core != NULL && setenv("OPENBLAS_CORETYPE", core, 1) == 0;
    /* OpenMP threads that spin between parallel regions (libgomp's default)
     * starve everything else on a busy machine: the gradient reducer's
     * thread, e2d, a second worker. Measured on 2 loaded cores, a 100-step
     * tiny job: 35 s spinning, 1.3 s passive. Sleep instead, unless the
     * user chose a policy. libgomp reads it when it loads, hence the exec. */
    if (getenv("OMP_WAIT_POLICY") == NULL && setenv("OMP_WAIT_POLICY", "PASSIVE", 1) == 0)
        again = 1;
    if (again) execv("/proc/self/exe", argv);
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strncmp(cmd, "--coordinator", 13) == 0 || strncmp(cmd, "--config", 8) == 0)
        return e2w_agent_main(argc, argv);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) cmd = "version";
    int rc = -1;
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(cmd, commands[c].name) != 0) continue;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--help") != 0 && strcmp(argv[i], "-h") != 0) continue;
            if (commands[c].usage == NULL) { /* plan prints its own */
                char *help[] = { argv[i], NULL };
                return commands[c].fn(1, help, err, sizeof err);
            }
            fputs(commands[c].usage, stdout);
            return 0;
        }
        rc = commands[c].fn(argc - 2, argv + 2, err, sizeof err);
        break;
    }
    if (rc == -1) {
        fprintf(stderr, "e2worker: unknown command '%s' (see e2worker --help)\n", cmd);
        return 2;
    }
    if (rc != 0 && err[0] != '\0') fprintf(stderr, "e2worker: %s\n", err);
    return rc;
}
