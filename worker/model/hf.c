/* hf.c -- model weights in and out of Hugging Face safetensors checkpoints.
 * Every transformers tensor is one contiguous slice of the parameter buffer
 * (e2w_model_hf_tensor_at), so q/k/v and gate/up are stacked on import and
 * split on export by the layout itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "e2/v1/job.pb-c.h"
#include "model.h"
#include "llama_names.h"
#include "safetensors.h"

int e2w_model_load_hf(e2w_model *m, const char *path, char *err, size_t errlen) {
    e2w_st *st = NULL;
    if (e2w_st_open(&st, path, err, errlen) < 0) return E2_ERR;
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config_to_proto(&m->cfg, &cfg);
    float *buf = malloc(m->n_params * sizeof(float));
    int rc = -1, n = e2w_model_hf_count(m);
    if (buf == NULL) {
        snprintf(err, errlen, "%s: out of memory reading weights", path);
        goto done;
    }
    if (e2w_llama_check_ckpt(st, &cfg, err, errlen) < 0) goto done;
    for (int i = 0; i < n; i++) {
        e2w_model_hf_tensor t;
        e2w_model_hf_tensor_at(m, i, &t);
        if (e2w_st_read_f32(st, t.name, t.ndim, t.shape, buf + t.offset, err, errlen) < 0)
            goto done;
    }
    e2w_model_upload(m, 0, buf, m->n_params);
    rc = 0;
done:
    free(buf);
    e2w_st_close(st);
    return rc;
}

int e2w_model_save_hf(const e2w_model *m, const char *dir, int bf16, uint64_t max_shard_bytes,
                      char *err, size_t errlen) {
    int n = e2w_model_hf_count(m), rc = -1;
    float *buf = malloc(m->n_params * sizeof(float));
    e2w_st_out *outs = calloc((size_t)n, sizeof *outs);
    e2w_model_hf_tensor *ts = calloc((size_t)n, sizeof *ts);
    if (buf == NULL || outs == NULL || ts == NULL) {
        snprintf(err, errlen, "%s: out of memory writing weights", dir);
        goto done;
    }
    e2w_model_download(m, 0, buf, m->n_params);
    for (int i = 0; i < n; i++) {
        e2w_model_hf_tensor_at(m, i, &ts[i]);
        outs[i].name = ts[i].name;
        outs[i].data = buf + ts[i].offset;
        outs[i].ndim = ts[i].ndim;
        outs[i].shape[0] = ts[i].shape[0];
        outs[i].shape[1] = ts[i].shape[1];
        outs[i].dtype = bf16 ? E2W_DT_BF16 : E2W_DT_F32;
    }
    rc = e2w_st_write_dir(dir, outs, (size_t)n, max_shard_bytes, NULL, err, errlen) < 0 ? -1 : 0;
done:
    free(ts);
    free(outs);
    free(buf);
    return rc;
}
