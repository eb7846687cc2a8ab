/* export.c -- `e2worker export --checkpoint DIR --window L' --out DIR
 * [--scheme NAME]`: a Hugging Face model that serves window L' = g L
 * (e2-method.md sections 4 and 6): the checkpoint's weights unchanged, its
 * config.json kept field for field but for max_position_embeddings L' and
 * the position scheme's rope_scaling (common/pos; default e2: linear,
 * factor g = L'/L). rope_scaling is written in the two-key form
 * {"type", "factor"} that transformers 4.31 to 5.x all load, or with
 * --rope-scaling modern as {"rope_type", "factor"} (4.43 on). */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "cli.h"
#include "hf_config.h"
#include "model.h"
#include "scheme.h"

int cli_export(int argc, char **argv, char *err, size_t errlen) {
    const char *ckpt = NULL, *out = NULL, *scheme = "e2";
    long window = 0;
    int form = E2W_ROPE_SCALING_LEGACY;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--checkpoint") == 0 && v)
            ckpt = argv[++i];
        else if (strcmp(a, "--out") == 0 && v)
            out = argv[++i];
        else if (strcmp(a, "--scheme") == 0 && v)
            scheme = argv[++i];
        else if (strcmp(a, "--window") == 0) {
            if (cli_parse_long("--window", v, 1, 1L << 30, &window, err, errlen) < 0) return 1;
            i++;
        } else if (strcmp(a, "--rope-scaling") == 0) {
            if (v != NULL && strcmp(v, "legacy") == 0)
                form = E2W_ROPE_SCALING_LEGACY;
            else if (v != NULL && strcmp(v, "modern") == 0)
                form = E2W_ROPE_SCALING_MODERN;
            else {
                e2_errf(err, errlen,
                        "export: --rope-scaling must be legacy (loads in every "
                        "transformers from 4.31 on) or modern (4.43 on) (got %s)",
                        v ? v : "nothing");
                return 1;
            }
            i++;
        } else {
            e2_errf(err, errlen, "export: unexpected argument '%s' (see e2worker export --help)",
                    a);
            return 1;
        }
    }
    if (ckpt == NULL || out == NULL || window == 0) {
        e2_errf(
            err, errlen,
            "export: --checkpoint, --window and --out are required (see e2worker export --help)");
        return 1;
    }
    e2_pos_config pc = { 0 };
    if (e2_pos_scheme_find(scheme, &pc.method) == NULL) {
        e2_errf(err, errlen, "export: --scheme must be one of %s (got \"%s\")",
                e2_pos_scheme_names(), scheme);
        return 1;
    }
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    e2w_hf_meta meta;
    if (e2w_hf_config_read(ckpt, &cfg, &meta, err, errlen) < 0) return 1;
    e2w_model_config mc;
    if (e2w_model_config_from_proto(&mc, &cfg, err, errlen) < 0) return 1;
    if (window < mc.max_pos) {
        e2_errf(err, errlen, "export: --window %ld is below the model's original window %d", window,
                mc.max_pos);
        return 1;
    }
    e2w_model m;
    int rc = 1;
    if (e2w_model_create(&m, k_get("cpu"), &mc, err, errlen) < 0) return 1;
    if (e2w_model_load_hf(&m, ckpt, err, errlen) < 0 || e2_mkdir_p(out, 0755, err, errlen) < 0 ||
        e2w_model_save_hf(&m, out, 0, 0, err, errlen) < 0)
        goto done;
    /* The scheme's export for g = L'/L (pi and ntk: their factor is L'/L). */
    double g = (double)window / (double)mc.max_pos;
    e2_pos_hf hf;
    pc.original_window = (uint32_t)mc.max_pos;
    pc.fixed_g = g;
    e2_pos_hf_rope_scaling(&pc, g, &hf);
    meta.rope_scale = hf.type ? hf.factor : 1.0;
    meta.rope_type = hf.type;
    meta.max_position = (uint32_t)window;
    meta.rope_scaling_form = form;
    meta.source = ckpt; /* every other field of the checkpoint's config kept */
    if (e2w_hf_config_write(out, &cfg, &meta, err, errlen) < 0) goto done;
    printf("exported %s -> %s: window %ld, rope_scaling %s factor %g\n", ckpt, out, window,
           hf.type ? hf.type : "null", meta.rope_scale);
    rc = 0;
done:
    e2w_model_free(&m);
    return rc;
}
