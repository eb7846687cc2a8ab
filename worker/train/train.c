/* train.c -- the trainer's life: create (data, model, buffers), the step
 * loop with gradient accumulation, hooks, NaN guard, checkpoints with
 * retention, and resume discovery. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "hf_config.h"
#include "spec.h"
#include "train_internal.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t fnv_message(uint64_t h, const ProtobufCMessage *msg) {
    if (msg == NULL) return (h ^ 0xffu) * 1099511628211ULL;
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL) return h;
    protobuf_c_message_pack(msg, buf);
    for (size_t i = 0; i < n; i++) h = (h ^ buf[i]) * 1099511628211ULL;
    free(buf);
    return (h ^ 0xfeu) * 1099511628211ULL;
}

uint64_t e2w_train_spec_hash(const E2__V1__JobSpec *spec) {
    uint64_t h = 1469598103934665603ULL;
    h = fnv_message(h, spec->model ? &spec->model->base : NULL);
    h = fnv_message(h, spec->data ? &spec->data->base : NULL);
    h = fnv_message(h, spec->augment ? &spec->augment->base : NULL);
    if (spec->train == NULL) return fnv_message(h, NULL);
    /* train.zero1 changes where the optimizer state lives, not the numbers:
     * a checkpoint resumes with it switched either way. */
    E2__V1__TrainSpec tr = *spec->train;
    tr.has_zero1 = 0;
    tr.zero1 = 0;
    h = fnv_message(h, &tr.base);
    return h;
}

/* The model: architecture and weights from model.hf_dir (config.json +
 * safetensors), or model.config with the seeded init. */
static int train_model_create(e2w_train *t, char *err, size_t errlen) {
    const E2__V1__ModelSpec *ms = t->spec->model;
    int from_hf = ms->hf_dir != NULL && ms->hf_dir[0] != '\0';
    E2__V1__LlamaConfig hf = E2__V1__LLAMA_CONFIG__INIT;
    if (from_hf && e2w_hf_config_read(ms->hf_dir, &hf, NULL, err, errlen) < 0) return E2_ERR;
    e2w_model_config cfg;
    if (e2w_model_config_from_proto(&cfg, from_hf ? &hf : ms->config, err, errlen) < 0)
        return E2_ERR;
    /* Training buffers first, so the weights land in the fp32 master too
     * (when the backend keeps one) unrounded. */
    int rc = e2w_model_create(&t->model, t->k, &cfg, err, errlen);
    if (rc == 0) rc = e2w_train_optim_alloc(t, err, errlen);
    if (rc < 0) return rc == E2_ENOMEM ? E2W_TRAIN_ENOMEM : E2_ERR;
    if (from_hf) return e2w_model_load_hf(&t->model, ms->hf_dir, err, errlen);
    e2w_model_init(&t->model, ms->has_init_seed ? ms->init_seed : 1);
    return 0;
}

int e2w_train_create(e2w_train **out, const E2__V1__JobSpec *spec, const k_backend *k,
                     const char *output_dir, const e2w_train_hooks *hooks, char *err,
                     size_t errlen) {
    *out = NULL;
    int rc = E2_ERR;
    e2w_train *t = calloc(1, sizeof *t);
    if (t == NULL) return e2_errf(err, errlen, "trainer: out of memory");
    t->k = k;
    if (hooks) t->hooks = *hooks;
    if (t->hooks.world_size <= 0) t->hooks.world_size = 1;
    t->spec = e2_spec_copy(spec);
    t->output_dir = strdup(output_dir);
    if (t->spec == NULL || t->output_dir == NULL) {
        e2_errf(err, errlen, "trainer: out of memory");
        goto fail;
    }
    const E2__V1__TrainSpec *ts = t->spec->train;
    if (ts == NULL || t->spec->augment == NULL || t->spec->model == NULL) {
        e2_errf(err, errlen,
                "trainer: spec has no train/augment/model section (apply defaults first)");
        goto fail;
    }
    int W = t->hooks.world_size;
    t->R = (int)t->spec->augment->train_length;
    t->micro_batch = (int)ts->micro_batch;
    if (t->micro_batch <= 0 || ts->global_batch % (uint32_t)W != 0) {
        e2_errf(err, errlen, "train.global_batch (%u) must be a multiple of num_workers (%d)",
                ts->global_batch, W);
        goto fail;
    }
    /* Micro-batching adapts to the world size (a job resumed on another
     * number of workers keeps its global batch): the largest divisor of the
     * per-rank batch that is at most train.micro_batch. */
    int per_rank = (int)(ts->global_batch / (uint32_t)W);
    if (t->micro_batch > per_rank) t->micro_batch = per_rank;
    while (per_rank % t->micro_batch != 0) t->micro_batch--;
    t->n_micro = per_rank / t->micro_batch;
    t->spec_hash = e2w_train_spec_hash(t->spec);
    if ((rc = train_model_create(t, err, errlen)) < 0) goto fail;
    if ((rc = e2w_acts_create(&t->acts, &t->model, t->micro_batch, t->R, 1,
                              ts->has_recompute && ts->recompute, err, errlen)) < 0) {
        if (rc == E2_ENOMEM) rc = E2W_TRAIN_ENOMEM;
        goto fail;
    }
    if ((rc = e2w_train_data_open(&t->data, t->spec, t->hooks.shard_files, t->R, t->model.cfg.V,
                                  err, errlen)) < 0)
        goto fail;
    t->hooks.shard_files = NULL; /* the caller's, read only here */
    size_t n = (size_t)t->micro_batch * (size_t)t->R;
    t->tokens = malloc(n * sizeof(int32_t));
    t->targets = malloc(n * sizeof(int32_t));
    t->g = malloc((size_t)t->micro_batch * sizeof(float));
    t->t = malloc((size_t)t->micro_batch * sizeof(int32_t));
    t->n_chunks = e2w_train_data_chunks(t->data);
    t->chunks = malloc(((size_t)t->micro_batch * (size_t)t->n_chunks * 2 + 1) * sizeof(int32_t));
    if (!t->tokens || !t->targets || !t->g || !t->t || !t->chunks) {
        rc = e2_errf(err, errlen, "trainer: out of memory");
        goto fail;
    }
    *out = t;
    return 0;
fail:
    e2w_train_free(t);
    return rc < 0 ? rc : -1;
}

void e2w_train_free(e2w_train *t) {
    if (t == NULL) return;
    if (t->data) e2w_train_data_close(t->data);
    if (t->acts.mem) e2w_acts_free(&t->acts, &t->model);
    e2w_model_free(&t->model);
    if (t->spec) e2_spec_free(t->spec);
    free(t->output_dir);
    free(t->tokens);
    free(t->targets);
    free(t->g);
    free(t->t);
    free(t->chunks);
    free(t);
}

void e2w_train_memory_report(const e2w_train *t, e2w_train_memory *m) {
    const e2w_model *md = &t->model;
    m->n_params = md->n_params;
    m->param_bytes = md->n_params * md->esz;
    m->grad_bytes = md->grads ? md->n_params * md->gesz : 0;
    m->optim_bytes = md->opt ? md->opt_n * sizeof(float) * (md->master ? 3 : 2) : 0;
    m->act_bytes = t->acts.bytes;
}

int e2w_train_step(const e2w_train *t) {
    return t->step;
}
e2w_model *e2w_train_model(e2w_train *t) {
    return &t->model;
}
const E2__V1__JobSpec *e2w_train_spec(const e2w_train *t) {
    return t->spec;
}

/* One optimizer step: n_micro forward/backward passes accumulate into the
 * gradients, then all-reduce, clip, AdamW; fills *p. A non-finite loss or
 * gradient norm fails the step before the weights change. */
static int train_one_step(e2w_train *t, e2w_train_progress *p, char *err, size_t errlen) {
    const E2__V1__TrainSpec *ts = t->spec->train;
    e2w_model *m = &t->model;
    const k_backend *k = t->k;
    int s = t->step + 1, MB = t->micro_batch, R = t->R;
    uint64_t GB = ts->global_batch;
    uint64_t base =
        (uint64_t)(s - 1) * GB + (uint64_t)t->hooks.rank * (GB / (uint64_t)t->hooks.world_size);
    float dloss = (float)(1.0 / ((double)GB * (double)R));
    k_rope rope = { .theta = m->cfg.theta,
                    .n_sink = (int)t->spec->augment->n_sink,
                    .g = t->g,
                    .t = t->t,
                    .n_chunks = t->n_chunks,
                    .chunks = t->n_chunks ? t->chunks : NULL };
    double t0 = now_s(), loss = 0.0;
    k->zero(m->grads, m->n_params * m->gesz);
    for (int j = 0; j < t->n_micro; j++) {
        if (e2w_train_data_batch(t->data, (uint64_t)(s - 1), base + (uint64_t)j * (uint64_t)MB, MB,
                                 t->tokens, t->targets, t->g, t->t, t->chunks, err, errlen) < 0)
            return E2_ERR;
        e2w_acts_set_batch(&t->acts, m, t->tokens, t->targets, MB, R);
        /* Only the last micro-batch finishes gradients: its backward hands
         * them over layer by layer. */
        int last = j == t->n_micro - 1;
        loss += e2w_model_step(m, &t->acts, MB, R, &rope, dloss, last ? t->hooks.grad_ready : NULL,
                               t->hooks.ud);
    }
    if (t->hooks.grad_wait && t->hooks.grad_wait(t->hooks.ud, err, errlen) < 0) return E2_ERR;
    if (t->hooks.allreduce &&
        t->hooks.allreduce(t->hooks.ud, m->grads, m->n_params, k->grad_dtype, err, errlen) < 0)
        return E2_ERR;
    if (t->hooks.allreduce_host && t->hooks.allreduce_host(t->hooks.ud, &loss, 1, err, errlen) < 0)
        return E2_ERR;
    loss /= (double)GB * (double)R;
    if (!isfinite(loss))
        return e2_errf_rc(err, errlen, E2W_TRAIN_ENAN,
                          "step %d: loss is %s; stopping (last committed checkpoint left intact: "
                          "lower train.lr or check the data)",
                          s, isnan(loss) ? "NaN" : "infinite");
    double lr = e2w_train_lr(ts, s);
    double norm = e2w_train_optimizer_step(m, ts, s, lr, ts->seed);
    if (!isfinite(norm))
        return e2_errf_rc(err, errlen, E2W_TRAIN_ENAN,
                          "step %d: gradient norm is not finite; stopping (last committed "
                          "checkpoint left intact)",
                          s);
    if (e2w_train_params_gather(t, err, errlen) < 0) return E2_ERR;
    k->sync();
    t->step = s;
    double dt = now_s() - t0;
    p->step = s;
    p->steps = (int)ts->steps;
    p->loss = loss;
    p->lr = lr;
    p->grad_norm = norm;
    p->step_s = dt;
    p->tokens = (uint64_t)s * GB * (uint64_t)R;
    p->tokens_per_s = dt > 0 ? (double)GB * R / dt : 0.0;
    p->gflops = p->tokens_per_s * e2w_model_flops_per_token(m, R) * 1e-9;
    return 0;
}

static int is_step_dir(const char *name, long *step) {
    if (strncmp(name, "step_", 5) != 0) return 0;
    char *end;
    errno = 0;
    long v = strtol(name + 5, &end, 10);
    if (errno || end == name + 5 || *end != '\0' || v < 0) return 0;
    *step = v;
    return 1;
}

/* Keeps the newest keep_last committed checkpoints (0 keeps all). */
static void train_retention(const e2w_train *t) {
    uint32_t keep = t->spec->checkpoint && t->spec->checkpoint->has_keep_last
                        ? t->spec->checkpoint->keep_last
                        : 2;
    if (keep == 0) return;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints", t->output_dir);
    for (;;) {
        DIR *d = opendir(dir);
        if (d == NULL) return;
        struct dirent *e;
        long oldest = -1, v;
        uint32_t count = 0;
        while ((e = readdir(d)) != NULL) {
            if (!is_step_dir(e->d_name, &v)) continue;
            count++;
            if (oldest < 0 || v < oldest) oldest = v;
        }
        closedir(d);
        if (count <= keep) return;
        char victim[4200];
        snprintf(victim, sizeof victim, "%s/step_%ld", dir, oldest);
        DIR *vd = opendir(victim);
        if (vd == NULL) return;
        while ((e = readdir(vd)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char f[4500];
            snprintf(f, sizeof f, "%s/%s", victim, e->d_name);
            remove(f);
        }
        closedir(vd);
        if (rmdir(victim) != 0) return;
    }
}

int e2w_train_checkpoint(e2w_train *t, char *err, size_t errlen) {
    char root[4096], fin[4200], tmp[4300];
    snprintf(root, sizeof root, "%s/checkpoints", t->output_dir);
    snprintf(fin, sizeof fin, "%s/step_%d", root, t->step);
    snprintf(tmp, sizeof tmp, "%s.tmp", fin);
    if (e2_mkdir_p(tmp, 0755, err, errlen) < 0) return E2_ERR;
    if (e2w_train_state_write(t, tmp, err, errlen) < 0) return E2_ERR;
    if (e2_fsync_dir(tmp, err, errlen) < 0) return E2_ERR;
    if (t->hooks.checkpoint)
        return t->hooks.checkpoint(t->hooks.ud, t->step, tmp, fin, err, errlen);
    struct stat st;
    if (stat(fin, &st) == 0)
        return e2_errf(err, errlen,
                       "%s already exists: refusing to overwrite a committed checkpoint", fin);
    if (rename(tmp, fin) != 0)
        return e2_errf(err, errlen, "rename %s -> %s: %s", tmp, fin, strerror(errno));
    if (e2_fsync_dir(root, err, errlen) < 0) return E2_ERR;
    train_retention(t);
    return 0;
}

int e2w_train_run(e2w_train *t, char *err, size_t errlen) {
    const E2__V1__TrainSpec *ts = t->spec->train;
    uint32_t every =
        t->spec->checkpoint && t->spec->checkpoint->has_every ? t->spec->checkpoint->every : 0;
    while (t->step < (int)ts->steps) {
        if (t->hooks.should_stop && t->hooks.should_stop(t->hooks.ud)) return 1;
        e2w_train_progress p;
        int rc = train_one_step(t, &p, err, errlen);
        if (rc < 0) return rc;
        if (t->hooks.progress) t->hooks.progress(t->hooks.ud, &p);
        int last = t->step == (int)ts->steps;
        if (last || (every > 0 && t->step % (int)every == 0))
            if (e2w_train_checkpoint(t, err, errlen) < 0) return E2_ERR;
    }
    return 0;
}

int e2w_train_find_latest(const char *output_dir, char *path, size_t pathlen) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints", output_dir);
    DIR *d = opendir(dir);
    if (d == NULL) return 0;
    struct dirent *e;
    long best = -1, v;
    while ((e = readdir(d)) != NULL) {
        if (!is_step_dir(e->d_name, &v) || v <= best) continue;
        char f[4500];
        struct stat st;
        snprintf(f, sizeof f, "%s/%s/" E2W_TRAIN_STATE_FILE, dir, e->d_name);
        if (stat(f, &st) == 0) best = v;
    }
    closedir(d);
    if (best < 0) return 0;
    snprintf(path, pathlen, "%s/step_%ld", dir, best);
    return 1;
}
