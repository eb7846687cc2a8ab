/* plan.h -- per-GPU memory of a training job, computed before it runs.
 *
 * e2_plan (common/plan) reads the same layout table (common/layout) that
 * the worker allocates by (worker/model, llm.c style: one allocation each
 * for parameters, gradients, optimizer state and activations), so its
 * figures are the worker's byte for byte, and adds what the backend keeps
 * beside them:
 *   parameters   n_params x act bytes (bf16 on cuda, fp32 on cpu)
 *   gradients    n_params x act bytes
 *   optimizer    AdamW m and v, plus the fp32 master copy when the act
 *                dtype is not fp32: 12 (cuda) or 8 (cpu) bytes per
 *                parameter; with ZeRO-1 each rank keeps 1/gpus of it
 *   activations  exactly e2w_acts_create's allocation for (B, T)
 *                (tests/plan checks the two against each other)
 *   backend      cuda: the cuBLASLt workspace and the kernels' scratch
 *                (exact, e2_layout_cuda_scratch_bytes), plus a reserve for
 *                the CUDA context and NCCL buffers (an estimate,
 *                E2_PLAN_RUNTIME_RESERVE)
 * Sizes are bytes; GB in the interface means 10^9 bytes. Library code: no
 * printing; e2_plan_format writes the table into a caller buffer.
 *
 * Depends on the proto, the layout table, e2_base and jansson only (no
 * worker code, no kernels): e2d links it for its admission check. The
 * `e2worker plan` command is worker/plan (plan_cli.h). */
#ifndef E2_COMMON_PLAN_H
#define E2_COMMON_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CUDA context, cuBLASLt handle and NCCL communicator buffers: ~0.5 GB of
 * context on an H100 plus NCCL's channel buffers. An estimate, stated as
 * such in the table. */
#define E2_PLAN_RUNTIME_RESERVE ((uint64_t)1000000000)

typedef struct {
    int gpus;          /* data-parallel ranks (>= 1) */
    int zero1;         /* optimizer state sharded over the ranks */
    int recompute;     /* one block's activations, rebuilt in backward */
    int micro_batch;   /* B: sequences per forward/backward (>= 1) */
    int seq;           /* T: training length R (>= 1) */
    int act_bytes;     /* 2 (cuda, bf16) or 4 (cpu, fp32) */
    double gpu_mem_gb; /* memory per GPU in GB (10^9 bytes); 0 = unknown */
} e2_plan_opts;

typedef struct {
    e2_plan_opts o;
    int C, n_layer, H, KVH, D, F, V, tied;
    uint64_t n_params;
    /* bytes per GPU */
    uint64_t params, grads, optim, acts, scratch, reserve, total, capacity;
} e2_plan;

/* The model's activation allocation for micro-batches of B sequences of T
 * tokens, elements of esz bytes, with or without the backward's scratch and
 * recomputation: the size e2w_acts_create allocates. */
uint64_t e2_plan_acts_bytes(const E2__V1__LlamaConfig *cfg, int B, int T, int esz, int backward,
                            int recompute);

/* Fills p. Returns 0, or E2_ERR with one line in err naming the bad field. */
int e2_plan_compute(e2_plan *p, const E2__V1__LlamaConfig *cfg, const e2_plan_opts *o, char *err,
                    size_t errlen);

/* 1 when capacity is known and total <= capacity, else 0. */
int e2_plan_fits(const e2_plan *p);

/* The table, one line per part; returns the length snprintf reports. */
int e2_plan_format(const e2_plan *p, char *buf, size_t len);

/* One line for a refusal: "needs X GB per GPU (parameters ..., ...) but a
 * GPU has Y GB; ..." with a hint (recompute, ZeRO-1, smaller micro-batch). */
void e2_plan_refusal(const e2_plan *p, char *err, size_t errlen);

/* For a coordinator: the plan of a job spec (defaults applied) as the
 * worker will run it (act dtype from spec.device, B = train.micro_batch,
 * T = augment.train_length, recompute = train.recompute, ZeRO-1 =
 * train.zero1 over num_workers ranks) on GPUs of gpu_mem_gb. The model
 * comes from model.config, or from model.hf_dir's config.json
 * (e2_plan_config_read).
 * Returns 0 when the job fits or is not a cuda job, 1 when its model config
 * cannot be read here (err says why; the worker will find out), E2_ERR when it
 * does not fit (err: e2_plan_refusal's line). */
int e2_plan_check_job(const E2__V1__JobSpec *spec, double gpu_mem_gb, char *err, size_t errlen);

/* The few config.json fields a plan needs, read without the checkpoint
 * code: path is a checkpoint directory holding config.json, or the file.
 * Reads hidden_size, num_hidden_layers, num_attention_heads,
 * intermediate_size, vocab_size (required), num_key_value_heads (default:
 * the heads) and tie_word_embeddings (default false) into cfg (initialised
 * here); model_type must be "llama" or "mistral". The worker's full reader
 * (worker/ckpt/hf_config.h) checks the rest when the job runs. Returns 0,
 * or E2_ERR with one line in err naming the file and the field. */
int e2_plan_config_read(const char *path, E2__V1__LlamaConfig *cfg, char *err, size_t errlen);

/* The names before the planner left worker/ (e2w_plan_*), kept for callers
 * not yet renamed. */
#define E2W_PLAN_RUNTIME_RESERVE E2_PLAN_RUNTIME_RESERVE
#define e2w_plan_opts            e2_plan_opts
#define e2w_plan                 e2_plan
#define e2w_plan_acts_bytes      e2_plan_acts_bytes
#define e2w_plan_compute         e2_plan_compute
#define e2w_plan_fits            e2_plan_fits
#define e2w_plan_format          e2_plan_format
#define e2w_plan_refusal         e2_plan_refusal
#define e2w_plan_check_job       e2_plan_check_job

#ifdef __cplusplus
}
#endif
#endif
