/* state.c -- checkpoint contents and exact resume.
 *
 * A checkpoint directory step_N/ holds
 *   model.safetensors + config.json   the weights as a Hugging Face model
 *                                     (fp32: bit-exact on the CPU backend)
 *   train_state.bin                   ckpt's training-state container:
 *     step, spec_hash, data_cursor (next global sample index),
 *     adamw.m, adamw.v (fp32, n_params), master (fp32, only when the
 *     backend keeps a master copy: the weights file then holds the rounded
 *     act-dtype values, the master is the truth).
 * The sample order and the E² draws are pure functions of (seed, step,
 * global sample index), so step and cursor are the whole data/RNG state.
 * Data-parallel ranks hold identical weights and moments: rank 0 writes the
 * files, the others write nothing. Under ZeRO-1 each rank holds a shard of
 * the moments (and master): every rank takes part in gathering them to
 * rank 0 first, so the files are those of the same job without ZeRO-1 (on
 * any number of ranks), and a resume reads the whole state on every rank
 * and keeps its shard. */
#include <stdio.h>
#include <stdlib.h>

#include "base.h"
#include "hf_config.h"
#include "train_internal.h"
#include "train_state.h"

/* Per-rank elements of one all-gather of the checkpoint gather: W x this
 * many floats (16 MiB) of extra device memory per rank at most. */
#define TRAIN_GATHER_FLOATS ((size_t)1 << 22)

int e2w_train_state_gather(const e2w_train *t, const float *shard, float *full, size_t piece,
                           char *err, size_t errlen) {
    const e2w_model *m = &t->model;
    const k_backend *k = t->k;
    int W = t->hooks.world_size, r = t->hooks.rank;
    size_t n = m->n_params, S = (n + (size_t)W - 1) / (size_t)W;
    size_t P = piece < S ? piece : S;
    if (P == 0) P = 1;
    float *dev = k->alloc((size_t)W * P * sizeof(float));
    float *stage = malloc((r == 0 ? (size_t)W : 1) * P * sizeof(float));
    int rc = 0;
    if (dev == NULL || stage == NULL)
        rc = e2_errf(err, errlen, "checkpoint: out of memory for the ZeRO-1 gather (%zu floats)",
                     (size_t)W * P);
    for (size_t p0 = 0; rc == 0 && p0 < S; p0 += P) {
        /* Rank q's piece [p0, p0 + P) of its shard goes to [q P, q P + P). */
        size_t have = m->opt_n > p0 ? m->opt_n - p0 : 0;
        if (have > P) have = P;
        if (have) {
            k->download_raw(stage, shard + p0, have * sizeof(float));
            k->upload_raw(dev + (size_t)r * P, stage, have * sizeof(float));
        }
        rc = t->hooks.allgather(t->hooks.ud, dev, (size_t)W * P, K_F32, err, errlen);
        if (rc < 0 || r != 0) continue;
        k->download_raw(stage, dev, (size_t)W * P * sizeof(float));
        for (int q = 0; q < W; q++) {
            size_t lo, len;
            e2w_train_shard(n, W, q, &lo, &len);
            size_t got = len > p0 ? len - p0 : 0;
            if (got > P) got = P;
            if (got) memcpy(full + lo + p0, stage + (size_t)q * P, got * sizeof(float));
        }
    }
    if (dev) k->free(dev);
    free(stage);
    return rc < 0 ? E2_ERR : 0;
}

/* Rank 0's host copy of a whole optimizer array (n_params fp32): the
 * download of dev, or under ZeRO-1 the gather of every rank's shard (all
 * ranks call it then; *host stays NULL off rank 0). */
static int state_fetch(const e2w_train *t, const float *dev, float **host, char *err,
                       size_t errlen) {
    const e2w_model *m = &t->model;
    *host = NULL;
    if (t->hooks.rank == 0 && (*host = malloc(m->n_params * sizeof(float))) == NULL)
        return e2_errf(err, errlen, "checkpoint: out of memory");
    if (t->zero1)
        return e2w_train_state_gather(
            t, dev, *host, TRAIN_GATHER_FLOATS / (size_t)t->hooks.world_size, err, errlen);
    m->k->download_raw(*host, dev, m->n_params * sizeof(float));
    return 0;
}

int e2w_train_state_write(const e2w_train *t, const char *dir, char *err, size_t errlen) {
    if (t->hooks.rank != 0 && !t->zero1) return 0;
    const e2w_model *m = &t->model;
    float *mh = NULL, *vh = NULL, *master = NULL;
    e2w_ts_writer *w = NULL;
    int rc = E2_ERR;
    if (state_fetch(t, m->m, &mh, err, errlen) < 0 || state_fetch(t, m->v, &vh, err, errlen) < 0 ||
        (m->master && state_fetch(t, m->master, &master, err, errlen) < 0))
        goto done;
    if (t->hooks.rank != 0) {
        rc = 0;
        goto done;
    }
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config_to_proto(&m->cfg, &cfg);
    /* A model from model.hf_dir keeps its config.json field for field
     * (token ids, eps as written, rope_scaling, unknown keys). Should the
     * source have gone, the checkpoint still gets e2's own config. */
    e2w_hf_meta meta;
    e2w_hf_meta_init(&meta);
    const char *src = t->spec->model->hf_dir;
    E2__V1__LlamaConfig src_cfg;
    char why[E2_ERRLEN];
    if (src != NULL && src[0] != '\0') {
        if (e2w_hf_config_read(src, &src_cfg, &meta, why, sizeof why) == 0)
            meta.source = src;
        else
            fprintf(stderr,
                    "e2worker: checkpoint %s: config.json without the source's extra "
                    "fields: %s\n",
                    dir, why);
    }
    if (e2w_model_save_hf(m, dir, 0, 0, err, errlen) < 0 ||
        e2w_hf_config_write(dir, &cfg, &meta, err, errlen) < 0)
        goto done;
    if ((w = e2w_ts_writer_new()) == NULL) {
        e2_errf(err, errlen, "checkpoint: out of memory");
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, E2W_TRAIN_STATE_FILE);
    uint64_t cursor = (uint64_t)t->step * t->spec->train->global_batch;
    if (e2w_ts_put_u64(w, "step", (uint64_t)t->step, err, errlen) < 0 ||
        e2w_ts_put_u64(w, "spec_hash", t->spec_hash, err, errlen) < 0 ||
        e2w_ts_put_u64(w, "data_cursor", cursor, err, errlen) < 0 ||
        e2w_ts_put(w, "adamw.m", E2W_TS_F32, mh, m->n_params, err, errlen) < 0 ||
        e2w_ts_put(w, "adamw.v", E2W_TS_F32, vh, m->n_params, err, errlen) < 0 ||
        (master && e2w_ts_put(w, "master", E2W_TS_F32, master, m->n_params, err, errlen) < 0) ||
        e2w_ts_write(w, path, err, errlen) < 0)
        goto done;
    rc = 0;
done:
    e2w_ts_writer_free(w);
    free(mh);
    free(vh);
    free(master);
    return rc;
}

/* Reads the whole array and keeps the part this rank holds (its ZeRO-1
 * shard, or all of it). */
static int state_upload(e2w_model *m, const e2w_ts *ts, const char *name, float *dev, float *host,
                        char *err, size_t errlen) {
    if (e2w_ts_read(ts, name, E2W_TS_F32, host, m->n_params, err, errlen) < 0) return E2_ERR;
    m->k->upload_raw(dev, host + m->opt_lo, m->opt_n * sizeof(float));
    return 0;
}

int e2w_train_state_read(e2w_train *t, const char *dir, char *err, size_t errlen) {
    e2w_model *m = &t->model;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, E2W_TRAIN_STATE_FILE);
    e2w_ts *ts = NULL;
    if (e2w_ts_open(&ts, path, err, errlen) < 0) return E2_ERR;
    uint64_t step, hash, cursor;
    float *host = NULL;
    int rc = E2_ERR;
    if (e2w_ts_get_u64(ts, "step", &step, err, errlen) < 0 ||
        e2w_ts_get_u64(ts, "spec_hash", &hash, err, errlen) < 0 ||
        e2w_ts_get_u64(ts, "data_cursor", &cursor, err, errlen) < 0)
        goto done;
    if (hash != t->spec_hash) {
        e2_errf(err, errlen,
                "%s: checkpoint belongs to another spec (model/data/augment/train differ): use a "
                "new output_dir",
                dir);
        goto done;
    }
    if (step > t->spec->train->steps || cursor != step * t->spec->train->global_batch) {
        e2_errf(err, errlen, "%s: inconsistent training state (step %llu, cursor %llu)", dir,
                (unsigned long long)step, (unsigned long long)cursor);
        goto done;
    }
    if (e2w_model_load_hf(m, dir, err, errlen) < 0) goto done;
    host = malloc(m->n_params * sizeof(float));
    if (host == NULL) {
        e2_errf(err, errlen, "resume: out of memory");
        goto done;
    }
    if (state_upload(m, ts, "adamw.m", m->m, host, err, errlen) < 0 ||
        state_upload(m, ts, "adamw.v", m->v, host, err, errlen) < 0)
        goto done;
    if (m->master) {
        if (e2w_ts_read(ts, "master", E2W_TS_F32, host, m->n_params, err, errlen) < 0) goto done;
        e2w_model_upload(m, 0, host, m->n_params);
    }
    t->step = (int)step;
    rc = 0;
done:
    free(host);
    e2w_ts_close(ts);
    return rc;
}

int e2w_train_resume(e2w_train *t, const char *ckpt_dir, char *err, size_t errlen) {
    return e2w_train_state_read(t, ckpt_dir, err, errlen);
}
