/* resolve.c -- the spec resolve chain and the resume choice (job.h). */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "hf_config.h"
#include "job.h"
#include "spec.h"

/* model.hf_dir = dir, model.config dropped (the directory's config.json
 * is the architecture). */
static int resolve_model_dir(E2__V1__JobSpec *spec, const char *dir, char *err, size_t errlen) {
    if (spec->model == NULL) {
        spec->model = malloc(sizeof *spec->model);
        if (spec->model == NULL) return e2_errf(err, errlen, "out of memory");
        e2__v1__model_spec__init(spec->model);
    }
    if (spec->model->config) e2__v1__llama_config__free_unpacked(spec->model->config, NULL);
    spec->model->config = NULL;
    free(spec->model->hf_dir);
    spec->model->hf_dir = strdup(dir);
    if (spec->model->hf_dir == NULL) return e2_errf(err, errlen, "out of memory");
    return 0;
}

/* An hf_dir model brings its architecture: config.json gives the
 * model-dependent defaults (original_window, eval windows and scales). */
static int resolve_model_config(E2__V1__JobSpec *spec, E2__V1__LlamaConfig *cfg, char *err,
                                size_t errlen) {
    E2__V1__ModelSpec *ms = spec->model;
    if (ms == NULL || ms->hf_dir == NULL || ms->hf_dir[0] == '\0') return 0;
    if (e2w_hf_config_read(ms->hf_dir, cfg, NULL, err, errlen) < 0) return E2_ERR;
    return e2_spec_apply_model_defaults(spec, cfg, err, errlen);
}

int e2w_spec_resolve(E2__V1__JobSpec *spec, const e2w_resolve_opts *o, E2__V1__LlamaConfig *cfg,
                     char *err, size_t errlen) {
    static const e2w_resolve_opts none = { 0 };
    E2__V1__LlamaConfig hf = E2__V1__LLAMA_CONFIG__INIT;
    if (o == NULL) o = &none;
    for (size_t i = 0; i < o->n_sets; i++)
        if (e2_spec_set_arg(spec, o->sets[i], err, errlen) < 0) return E2_ERR;
    if (o->model_dir != NULL && resolve_model_dir(spec, o->model_dir, err, errlen) < 0)
        return E2_ERR;
    if ((o->data_roots || o->export_root) &&
        e2_spec_check_roots(spec, o->data_roots, o->export_root, 1, err, errlen) < 0)
        return E2_ERR;
    if (resolve_model_config(spec, &hf, err, errlen) < 0 ||
        e2_spec_apply_defaults(spec, err, errlen) < 0 || e2_spec_validate(spec, err, errlen) < 0 ||
        e2_spec_check_files(spec, err, errlen) < 0)
        return E2_ERR;
    if (cfg != NULL) {
        const E2__V1__ModelSpec *ms = spec->model;
        *cfg = ms && ms->config ? *ms->config : hf;
        cfg->base.unknown_fields = NULL, cfg->base.n_unknown_fields = 0;
    }
    return 0;
}

const char *e2w_job_resume_from(const char *own, const E2__V1__JobSpec *spec, int *is_own) {
    const char *from = NULL;
    if (own && *own)
        from = own;
    else if (spec->resume_from && *spec->resume_from)
        from = spec->resume_from;
    if (is_own) *is_own = from != NULL && from == own;
    return from;
}
