/* cli_plan.c -- `e2worker plan`: print the per-GPU memory plan of a
 * training job and say whether it fits.
 *
 *   e2worker plan --model CONFIG --gpus N --gpu-mem GB [--zero1] [--recompute]
 *                 [--seq R] [--micro-batch B] [--device cuda|cpu]
 *
 * CONFIG is a Hugging Face config.json (or a checkpoint directory holding
 * one) or a preset name (llama-2-7b, llama-2-13b, tinyllama-1.1b). Exit
 * status: 0 fits, 1 does not fit (the table is printed, and err names the
 * numbers), 2 bad arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "hf_config.h"
#include "plan_cli.h"

typedef struct {
    const char *name;
    uint32_t C, L, H, KVH, F, V, max_pos;
} plan_preset;

static const plan_preset plan_presets[] = {
    { "llama-2-7b", 4096, 32, 32, 32, 11008, 32000, 4096 },
    { "llama-2-13b", 5120, 40, 40, 40, 13824, 32000, 4096 },
    { "tinyllama-1.1b", 2048, 22, 32, 4, 5632, 32000, 2048 },
};

static const char plan_usage[] =
    "usage: e2worker plan --model CONFIG --gpus N --gpu-mem GB [--zero1] [--recompute]\n"
    "                     [--seq R] [--micro-batch B] [--device cuda|cpu]\n"
    "  CONFIG: config.json, a checkpoint directory, or llama-2-7b | llama-2-13b |\n"
    "  tinyllama-1.1b. GB = 10^9 bytes per GPU. Defaults: R 4096, B 1, cuda.\n";

static int plan_model(const char *arg, E2__V1__LlamaConfig *cfg, char *err, size_t errlen) {
    for (size_t i = 0; i < sizeof plan_presets / sizeof plan_presets[0]; i++) {
        const plan_preset *p = &plan_presets[i];
        if (strcmp(arg, p->name) != 0) continue;
        e2__v1__llama_config__init(cfg);
        cfg->has_hidden_size = 1, cfg->hidden_size = p->C;
        cfg->has_num_hidden_layers = 1, cfg->num_hidden_layers = p->L;
        cfg->has_num_attention_heads = 1, cfg->num_attention_heads = p->H;
        cfg->has_num_key_value_heads = 1, cfg->num_key_value_heads = p->KVH;
        cfg->has_intermediate_size = 1, cfg->intermediate_size = p->F;
        cfg->has_vocab_size = 1, cfg->vocab_size = p->V;
        cfg->has_max_position_embeddings = 1, cfg->max_position_embeddings = p->max_pos;
        return 0;
    }
    return e2w_hf_config_read(arg, cfg, NULL, err, errlen);
}

static int plan_number(const char *opt, const char *s, double lo, double hi, int integer,
                       double *out, char *err, size_t errlen) {
    char *end = NULL;
    errno = 0;
    double v = s ? strtod(s, &end) : 0.0;
    if (s == NULL || errno || end == s || *end != '\0' || !(v >= lo && v <= hi) ||
        (integer && v != (double)(long)v)) {
        snprintf(err, errlen, "plan: %s needs %s in [%g, %g] (got %s)", opt,
                 integer ? "an integer" : "a number", lo, hi, s ? s : "nothing");
        return E2_ERR;
    }
    *out = v;
    return 0;
}

int e2w_plan_main(int argc, char **argv, char *err, size_t errlen) {
    const char *model = NULL;
    double gpus = 0, mem = 0, seq = 4096, mb = 1;
    e2_plan_opts o = { .act_bytes = 2 };
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(plan_usage, stdout);
            return 0;
        } else if (!strcmp(a, "--zero1")) {
            o.zero1 = 1;
            continue;
        } else if (!strcmp(a, "--recompute")) {
            o.recompute = 1;
            continue;
        } else if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--gpus")) {
            rc = plan_number(a, v, 1, 1 << 20, 1, &gpus, err, errlen);
        } else if (!strcmp(a, "--gpu-mem")) {
            rc = plan_number(a, v, 0.001, 1e6, 0, &mem, err, errlen);
        } else if (!strcmp(a, "--seq")) {
            rc = plan_number(a, v, 1, 1 << 24, 1, &seq, err, errlen);
        } else if (!strcmp(a, "--micro-batch")) {
            rc = plan_number(a, v, 1, 1 << 16, 1, &mb, err, errlen);
        } else if (!strcmp(a, "--device")) {
            if (v == NULL || (strcmp(v, "cuda") && strcmp(v, "cpu"))) {
                snprintf(err, errlen, "plan: --device must be cuda or cpu (got %s)",
                         v ? v : "nothing");
                return 2;
            }
            o.act_bytes = strcmp(v, "cuda") == 0 ? 2 : 4;
        } else {
            snprintf(err, errlen, "plan: unknown option '%s' (see e2worker plan --help)", a);
            return 2;
        }
        if (rc < 0) return 2;
        i++;
    }
    if (model == NULL || gpus == 0 || mem == 0) {
        snprintf(err, errlen,
                 "plan: --model, --gpus and --gpu-mem are required (see e2worker plan --help)");
        return 2;
    }
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    if (plan_model(model, &cfg, err, errlen) < 0) return 2;
    o.gpus = (int)gpus;
    o.gpu_mem_gb = mem;
    o.seq = (int)seq;
    o.micro_batch = (int)mb;
    e2_plan p;
    if (e2_plan_compute(&p, &cfg, &o, err, errlen) < 0) return 2;
    char table[4096];
    e2_plan_format(&p, table, sizeof table);
    fputs(table, stdout);
    if (e2_plan_fits(&p)) return 0;
    e2_plan_refusal(&p, err, errlen);
    return 1;
}
