/* eval.c -- `e2worker eval SPEC.json --model DIR`: evaluation only. The
 * model of DIR (a Hugging Face directory or a run's checkpoints/step_N)
 * replaces the spec's model; the spec is resolved as `run` resolves it and
 * exactly its eval section runs (e2w_eval_spec, the code path of `run`),
 * with no training and no gradient or optimizer memory. eval.json and
 * eval.md go to output_dir, or the JSON to --out FILE (then eval.md next
 * to it as FILE with .md for .json); the table goes to stdout. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cli.h"
#include "eval.h"
#include "hf_config.h"
#include "model.h"
#include "spec.h"

#define EVAL_USAGE \
    "usage: e2worker eval SPEC.json --model DIR [--set path=value ...] [--out FILE.json]"

/* Writes text to path atomically. */
static int eval_write(const char *path, char *text, char *err, size_t errlen) {
    if (text == NULL) return e2_errf(err, errlen, "eval: out of memory");
    int rc = e2_write_file_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc < 0 ? -1 : 0;
}

static int eval_write_out(const e2w_eval_results *ev, const char *out, char *err, size_t errlen) {
    char md[PATH_MAX + 8];
    size_t n = strlen(out);
    if (n >= PATH_MAX) return e2_errf(err, errlen, "--out: path too long");
    memcpy(md, out, n + 1);
    if (n > 5 && strcmp(out + n - 5, ".json") == 0) md[n - 5] = '\0';
    strcat(md, ".md");
    if (eval_write(out, e2w_eval_results_json(ev), err, errlen) < 0) return E2_ERR;
    return eval_write(md, e2w_eval_results_markdown(ev), err, errlen);
}

int cli_eval(int argc, char **argv, char *err, size_t errlen) {
    const char *spec_path = NULL, *model_arg = NULL, *out = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof *sets);
    char model_dir[PATH_MAX];
    int n_sets = 0, rc = 1, have_model = 0;
    E2__V1__JobSpec *spec = NULL;
    e2w_model m;
    e2w_eval_results ev;
    e2w_eval_results_init(&ev);
    if (sets == NULL) {
        e2_errf(err, errlen, "out of memory");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--set") == 0 || strcmp(argv[i], "--model") == 0 ||
             strcmp(argv[i], "--out") == 0) &&
            i + 1 >= argc) {
            e2_errf(err, errlen, "eval: %s needs a value (" EVAL_USAGE ")", argv[i]);
            goto done;
        }
        if (strcmp(argv[i], "--set") == 0)
            sets[n_sets++] = argv[++i];
        else if (strncmp(argv[i], "--set=", 6) == 0)
            sets[n_sets++] = argv[i] + 6;
        else if (strcmp(argv[i], "--model") == 0)
            model_arg = argv[++i];
        else if (strncmp(argv[i], "--model=", 8) == 0)
            model_arg = argv[i] + 8;
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[++i];
        else if (strncmp(argv[i], "--out=", 6) == 0)
            out = argv[i] + 6;
        else if (argv[i][0] == '-' || spec_path != NULL) {
            e2_errf(err, errlen, "eval: unexpected argument '%s' (" EVAL_USAGE ")", argv[i]);
            goto done;
        } else {
            spec_path = argv[i];
        }
    }
    if (spec_path == NULL || model_arg == NULL) {
        e2_errf(err, errlen, "eval: missing %s (" EVAL_USAGE ")",
                spec_path ? "--model DIR" : "SPEC.json");
        goto done;
    }
    if (realpath(model_arg, model_dir) == NULL) {
        e2_errf(
            err, errlen,
            "--model %s: %s (give a Hugging Face model directory or a run's checkpoints/step_N)",
            model_arg, strerror(errno));
        goto done;
    }
    if (cli_resolve_spec(spec_path, sets, n_sets, model_dir, &spec, err, errlen) < 0) goto done;
    const k_backend *k = k_get(spec->device);
    if (k == NULL) {
        e2_errf(err, errlen,
                "spec.device '%s' is not available in this build/machine (use \"cpu\")",
                spec->device);
        goto done;
    }
    E2__V1__LlamaConfig hf = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config cfg;
    if (e2w_hf_config_read(model_dir, &hf, NULL, err, errlen) < 0 ||
        e2w_model_config_from_proto(&cfg, &hf, err, errlen) < 0 ||
        e2w_model_create(&m, k, &cfg, err, errlen) < 0)
        goto done;
    have_model = 1;
    if (e2w_model_load_hf(&m, model_dir, err, errlen) < 0) goto done;
    fprintf(stderr, "e2worker eval: %s on %s, %zu parameters\n", model_dir, k->name, m.n_params);
    if (e2w_eval_spec(&m, spec, "eval", &ev, err, errlen) < 0) goto done;
    if (out != NULL) {
        if (eval_write_out(&ev, out, err, errlen) < 0) goto done;
    } else if (e2_mkdir_p(spec->output_dir, 0755, err, errlen) < 0 ||
               e2w_eval_results_write(&ev, spec->output_dir, err, errlen) < 0) {
        goto done;
    }
    char *table = e2w_eval_results_markdown(&ev);
    if (table) fputs(table, stdout);
    free(table);
    rc = 0;
done:
    e2w_eval_results_free(&ev);
    if (have_model) e2w_model_free(&m);
    e2_spec_free(spec);
    free(sets);
    return rc;
}
