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
 * files, the others write nothing. */
#include <stdio.h>
#include <stdlib.h>

#include "base.h"
#include "hf_config.h"
#include "train_internal.h"
#include "train_state.h"

static int state_download(const e2w_model *m, const float *dev, float **host) {
    *host = malloc(m->n_params * sizeof(float));
    if (*host == NULL) return -1;
    m->k->download_raw(*host, dev, m->n_params * sizeof(float));
    return 0;
}

int train_state_write(const e2w_train *t, const char *dir, char *err,
                      size_t errlen) {
    if (t->hooks.rank != 0) return 0;
    const e2w_model *m = &t->model;
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config_to_proto(&m->cfg, &cfg);
    if (e2w_model_save_hf(m, dir, 0, 0, err, errlen) < 0) return -1;
    if (e2w_hf_config_write(dir, &cfg, NULL, err, errlen) < 0) return -1;
    float *mh = NULL, *vh = NULL, *master = NULL;
    e2w_ts_writer *w = e2w_ts_writer_new();
    int rc = -1;
    if (w == NULL || state_download(m, m->m, &mh) < 0 || state_download(m, m->v, &vh) < 0 ||
        (m->master && state_download(m, m->master, &master) < 0)) {
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

static int state_upload(e2w_model *m, const e2w_ts *ts, const char *name,
                        float *dev, float *host, char *err, size_t errlen) {
    if (e2w_ts_read(ts, name, E2W_TS_F32, host, m->n_params, err, errlen) < 0) return -1;
    m->k->upload_raw(dev, host, m->n_params * sizeof(float));
    return 0;
}

int train_state_read(e2w_train *t, const char *dir, char *err, size_t errlen) {
    e2w_model *m = &t->model;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, E2W_TRAIN_STATE_FILE);
    e2w_ts *ts = NULL;
    if (e2w_ts_open(&ts, path, err, errlen) < 0) return -1;
    uint64_t step, hash, cursor;
    float *host = NULL;
    int rc = -1;
    if (e2w_ts_get_u64(ts, "step", &step, err, errlen) < 0 ||
        e2w_ts_get_u64(ts, "spec_hash", &hash, err, errlen) < 0 ||
        e2w_ts_get_u64(ts, "data_cursor", &cursor, err, errlen) < 0)
        goto done;
    if (hash != t->spec_hash) {
        e2_errf(err, errlen, "%s: checkpoint belongs to another spec (model/data/augment/train differ): use a new output_dir",
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

int e2w_train_resume(e2w_train *t, const char *ckpt_dir, char *err,
                     size_t errlen) {
    return train_state_read(t, ckpt_dir, err, errlen);
}
