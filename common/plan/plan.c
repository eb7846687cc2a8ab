/* plan.c -- the memory plan: the worker's allocations computed from the
 * layout table (common/layout) that the model allocates by, without
 * allocating (plan.h). */
#include "plan.h"

#include <stdio.h>
#include <string.h>

#include "base.h"
#include "layout.h"

/* The layout's dims of a config (fields >= 1, checked by the caller). */
static e2_layout_dims plan_dims(const E2__V1__LlamaConfig *cfg) {
    e2_layout_dims d;
    d.C = (int)cfg->hidden_size;
    d.n_layer = (int)cfg->num_hidden_layers;
    d.H = (int)cfg->num_attention_heads;
    d.KVH = cfg->has_num_key_value_heads ? (int)cfg->num_key_value_heads : d.H;
    d.D = d.C / d.H;
    d.F = (int)cfg->intermediate_size;
    d.V = (int)cfg->vocab_size;
    d.tied = cfg->has_tie_word_embeddings && cfg->tie_word_embeddings;
    return d;
}

/* The activation allocation of the layout table: e2w_acts_create's size. */
uint64_t e2_plan_acts_bytes(const E2__V1__LlamaConfig *cfg, int B, int T, int esz, int backward,
                            int recompute) {
    e2_layout_dims d = plan_dims(cfg);
    e2_layout_acts a;
    e2_layout_acts_fill(&a, &d, B, T, (size_t)esz, backward, recompute);
    return a.bytes;
}

static int plan_field(const char *name, uint64_t v, char *err, size_t errlen) {
    if (v == 0) {
        snprintf(err, errlen, "model.config.%s must be >= 1 (got 0)", name);
        return E2_ERR;
    }
    return 0;
}

int e2_plan_compute(e2_plan *p, const E2__V1__LlamaConfig *cfg, const e2_plan_opts *o, char *err,
                    size_t errlen) {
    memset(p, 0, sizeof *p);
    if (plan_field("hidden_size", cfg->hidden_size, err, errlen) < 0 ||
        plan_field("num_hidden_layers", cfg->num_hidden_layers, err, errlen) < 0 ||
        plan_field("num_attention_heads", cfg->num_attention_heads, err, errlen) < 0 ||
        plan_field("intermediate_size", cfg->intermediate_size, err, errlen) < 0 ||
        plan_field("vocab_size", cfg->vocab_size, err, errlen) < 0)
        return E2_ERR;
    if (cfg->has_num_key_value_heads &&
        (cfg->num_key_value_heads == 0 || cfg->num_attention_heads % cfg->num_key_value_heads)) {
        snprintf(err, errlen,
                 "model.config.num_key_value_heads (%u) must divide num_attention_heads (%u)",
                 cfg->num_key_value_heads, cfg->num_attention_heads);
        return E2_ERR;
    }
    if (cfg->hidden_size % cfg->num_attention_heads) {
        snprintf(err, errlen,
                 "model.config.hidden_size (%u) must be a multiple of num_attention_heads (%u)",
                 cfg->hidden_size, cfg->num_attention_heads);
        return E2_ERR;
    }
    if (o->gpus < 1 || o->micro_batch < 1 || o->seq < 1) {
        snprintf(err, errlen,
                 "plan: gpus, micro-batch and sequence length must be >= 1 (got %d, %d, %d)",
                 o->gpus, o->micro_batch, o->seq);
        return E2_ERR;
    }
    if (o->act_bytes != 2 && o->act_bytes != 4) {
        snprintf(err, errlen, "plan: act bytes must be 2 (cuda) or 4 (cpu) (got %d)", o->act_bytes);
        return E2_ERR;
    }
    p->o = *o;
    e2_layout_dims d = plan_dims(cfg);
    p->C = d.C;
    p->n_layer = d.n_layer;
    p->H = d.H;
    p->KVH = d.KVH;
    p->D = d.D;
    p->F = d.F;
    p->V = d.V;
    p->tied = d.tied;
    e2_layout_params lp;
    e2_layout_params_fill(&lp, &d); /* the model's parameter table */
    p->n_params = lp.n_params;
    uint64_t e = (uint64_t)o->act_bytes;
    p->params = p->n_params * e;
    p->grads = p->n_params * 4; /* fp32 gradients on every backend (k.h) */
    uint64_t per_param = 4 * e2_layout_optim_floats(o->act_bytes != 4); /* m, v (, master) */
    uint64_t held =
        o->zero1 ? (p->n_params + (uint64_t)o->gpus - 1) / (uint64_t)o->gpus : p->n_params;
    p->optim = held * per_param;
    p->acts = e2_plan_acts_bytes(cfg, o->micro_batch, o->seq, o->act_bytes, 1, o->recompute);
    if (o->act_bytes == 2) {
        uint64_t N = (uint64_t)o->micro_batch * (uint64_t)o->seq;
        p->scratch = e2_layout_cuda_scratch_bytes(N, (size_t)p->C);
        p->reserve = E2_PLAN_RUNTIME_RESERVE;
    }
    p->total = p->params + p->grads + p->optim + p->acts + p->scratch + p->reserve;
    p->capacity = o->gpu_mem_gb > 0 ? (uint64_t)(o->gpu_mem_gb * 1e9) : 0;
    return 0;
}

int e2_plan_fits(const e2_plan *p) {
    return p->capacity > 0 && p->total <= p->capacity;
}

static double gb(uint64_t b) {
    return (double)b / 1e9;
}

int e2_plan_format(const e2_plan *p, char *buf, size_t len) {
    const e2_plan_opts *o = &p->o;
    const char *dt = o->act_bytes == 2 ? "bf16" : "fp32";
    char optim[64], verdict[96] = "";
    if (o->zero1)
        snprintf(optim, sizeof optim, "optimizer m, v%s (1/%d, ZeRO-1)",
                 o->act_bytes == 2 ? ", master" : "", o->gpus);
    else
        snprintf(optim, sizeof optim, "optimizer m, v%s (full)",
                 o->act_bytes == 2 ? ", master" : "");
    if (p->capacity > 0)
        snprintf(verdict, sizeof verdict, "%s: %.2f GB %s",
                 e2_plan_fits(p) ? "fits" : "DOES NOT FIT",
                 gb(e2_plan_fits(p) ? p->capacity - p->total : p->total - p->capacity),
                 e2_plan_fits(p) ? "free" : "over");
    return snprintf(
        buf, len,
        "model: C=%d layers=%d heads=%d kv_heads=%d head_dim=%d F=%d V=%d%s, %.3f B parameters\n"
        "run: %d GPU(s) x %.1f GB, R=%d, micro-batch %d, %s acts, ZeRO-1 %s, recompute %s\n"
        "  %-40s %10s\n"
        "  %-40s %10.2f\n"
        "  %-40s %10.2f\n"
        "  %-40s %10.2f\n"
        "  %-40s %10.2f\n"
        "  %-40s %10.2f\n"
        "  %-40s %10.2f\n"
        "  %-40s %10.2f  %s\n",
        p->C, p->n_layer, p->H, p->KVH, p->D, p->F, p->V, p->tied ? " tied" : "",
        (double)p->n_params / 1e9, o->gpus, o->gpu_mem_gb, o->seq, o->micro_batch, dt,
        o->zero1 ? "on" : "off", o->recompute ? "on" : "off", "per GPU", "GB",
        o->act_bytes == 2 ? "parameters (bf16)" : "parameters (fp32)", gb(p->params),
        "gradients (fp32)", gb(p->grads), optim, gb(p->optim),
        o->recompute ? "activations (1 block kept, recompute)" : "activations (all blocks kept)",
        gb(p->acts), "kernel scratch + cuBLASLt workspace", gb(p->scratch),
        "CUDA context + NCCL reserve (estimate)", gb(p->reserve), "total", gb(p->total), verdict);
}

void e2_plan_refusal(const e2_plan *p, char *err, size_t errlen) {
    const char *hint = !p->o.recompute        ? "set train.recompute = true"
                       : p->o.micro_batch > 1 ? "lower train.micro_batch"
                       : !p->o.zero1 && p->o.gpus > 1 && p->optim > p->capacity / 2
                           ? "the optimizer state needs sharding over the GPUs (set train.zero1 = "
                             "true) or GPUs with more memory"
                           : "use GPUs with more memory or a smaller model";
    snprintf(err, errlen,
             "job needs %.2f GB per GPU (parameters %.2f, gradients %.2f, optimizer %.2f, "
             "activations %.2f at B=%d T=%d, runtime %.2f) but a GPU has %.2f GB: %s",
             gb(p->total), gb(p->params), gb(p->grads), gb(p->optim), gb(p->acts), p->o.micro_batch,
             p->o.seq, gb(p->scratch + p->reserve), gb(p->capacity), hint);
}

int e2_plan_check_job(const E2__V1__JobSpec *spec, double gpu_mem_gb, char *err, size_t errlen) {
    if (spec->device == NULL || strcmp(spec->device, "cuda") != 0 || gpu_mem_gb <= 0) return 0;
    E2__V1__LlamaConfig hf = E2__V1__LLAMA_CONFIG__INIT;
    const E2__V1__LlamaConfig *cfg = spec->model ? spec->model->config : NULL;
    if (cfg == NULL) {
        const char *dir = spec->model ? spec->model->hf_dir : NULL;
        if (dir == NULL || dir[0] == '\0') {
            snprintf(err, errlen, "model.config and model.hf_dir are both empty");
            return 1;
        }
        if (e2_plan_config_read(dir, &hf, err, errlen) < 0) return 1;
        cfg = &hf;
    }
    e2_plan_opts o = {
        .gpus = spec->has_num_workers && spec->num_workers > 0 ? (int)spec->num_workers : 1,
        .zero1 = spec->train && spec->train->has_zero1 && spec->train->zero1,
        .recompute = spec->train && spec->train->has_recompute && spec->train->recompute,
        .micro_batch =
            spec->train && spec->train->has_micro_batch ? (int)spec->train->micro_batch : 1,
        .seq = spec->augment && spec->augment->has_train_length ? (int)spec->augment->train_length
                                                                : 4096,
        .act_bytes = 2,
        .gpu_mem_gb = gpu_mem_gb,
    };
    e2_plan p;
    if (e2_plan_compute(&p, cfg, &o, err, errlen) < 0) return 1;
    if (e2_plan_fits(&p)) return 0;
    e2_plan_refusal(&p, err, errlen);
    return E2_ERR;
}
