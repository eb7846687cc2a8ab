/* inspect.c -- `e2worker inspect`: one forward+backward of a Hugging Face
 * model on the first B sequences of T+1 tokens of a shard, for comparing
 * e2 against a reference implementation (e.g. transformers). Sequence b is
 * tokens[b(T+1) .. b(T+1)+T]; its first T tokens are the input, the last T
 * the targets; every sequence gets RoPE scale --scale (default: the
 * model's rope_scaling linear factor, 1 without one), offset --offset and
 * --sinks sink tokens. Output (one safetensors file, fp32):
 *   logits              (B, T, V)
 *   loss                ()  mean token cross-entropy
 *   grad.<hf name>      d loss / d parameter, for every parameter */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cli.h"
#include "hf_config.h"
#include "model.h"
#include "safetensors.h"
#include "shard.h"

typedef struct {
    const char *model, *tokens, *out;
    long B, T, offset, sinks;
    double scale;
} inspect_args;

static int inspect_parse(int argc, char **argv, inspect_args *a, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    a->scale = 0.0; /* unset: the model's own factor */
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (strcmp(o, "--model") == 0 && v)
            a->model = v;
        else if (strcmp(o, "--tokens") == 0 && v)
            a->tokens = v;
        else if (strcmp(o, "--out") == 0 && v)
            a->out = v;
        else if (strcmp(o, "--batch") == 0)
            r = cli_parse_long(o, v, 1, 1 << 20, &a->B, err, errlen);
        else if (strcmp(o, "--seq") == 0)
            r = cli_parse_long(o, v, 1, 1 << 24, &a->T, err, errlen);
        else if (strcmp(o, "--offset") == 0)
            r = cli_parse_long(o, v, 0, 1L << 30, &a->offset, err, errlen);
        else if (strcmp(o, "--sinks") == 0)
            r = cli_parse_long(o, v, 0, 1 << 24, &a->sinks, err, errlen);
        else if (strcmp(o, "--scale") == 0) {
            r = cli_parse_double(o, v, &a->scale, err, errlen);
            if (r == 0 && !(a->scale >= 1.0))
                r = e2_errf(err, errlen, "--scale must be >= 1 (got %s)", v);
        } else
            return e2_errf(err, errlen, "inspect: unexpected argument '%s' (see e2worker --help)",
                           o);
        if (r < 0) return E2_ERR;
        i++;
    }
    if (!a->model || !a->tokens || !a->out || !a->B || !a->T)
        return e2_errf(err, errlen,
                       "inspect: --model, --tokens, --batch, --seq and --out are required");
    return 0;
}

int cli_inspect(int argc, char **argv, char *err, size_t errlen) {
    inspect_args a;
    if (inspect_parse(argc, argv, &a, err, errlen) < 0) return 1;
    E2__V1__LlamaConfig cfg = E2__V1__LLAMA_CONFIG__INIT;
    e2w_hf_meta meta;
    e2w_model_config mc;
    if (e2w_hf_config_read(a.model, &cfg, &meta, err, errlen) < 0 ||
        e2w_model_config_from_proto(&mc, &cfg, err, errlen) < 0)
        return 1;
    if (a.scale == 0.0) a.scale = meta.rope_scale;
    int B = (int)a.B, T = (int)a.T, V = mc.V, rc = 1;
    size_t need = (size_t)B * (size_t)(T + 1), n = 0;
    int32_t *all = NULL, *tok = malloc((size_t)B * T * sizeof(int32_t));
    int32_t *tgt = malloc((size_t)B * T * sizeof(int32_t));
    float *g = malloc((size_t)B * sizeof(float)), *logits = NULL, *grads = NULL;
    int32_t *off = malloc((size_t)B * sizeof(int32_t));
    e2w_st_out *outs = NULL;
    e2w_model m;
    e2w_acts acts;
    memset(&m, 0, sizeof m);
    memset(&acts, 0, sizeof acts);
    if (!tok || !tgt || !g || !off) {
        e2_errf(err, errlen, "inspect: out of memory");
        goto done;
    }
    e2w_shard sh;
    if (e2w_shard_open(&sh, a.tokens, err, errlen) < 0) goto done;
    n = sh.n_tokens < need ? (size_t)sh.n_tokens : need;
    all = malloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; all && i < n; i++) all[i] = (int32_t)e2w_shard_token(&sh, i);
    e2w_shard_close(&sh);
    if (all == NULL) {
        e2_errf(err, errlen, "inspect: out of memory");
        goto done;
    }
    if (n < need) {
        e2_errf(err, errlen, "%s: %zu tokens, need %zu for --batch %d --seq %d", a.tokens, n, need,
                B, T);
        goto done;
    }
    for (int b = 0; b < B; b++) {
        const int32_t *s = all + (size_t)b * (T + 1);
        for (int i = 0; i < T; i++) {
            if (s[i] < 0 || s[i] >= V || s[i + 1] < 0 || s[i + 1] >= V) {
                e2_errf(err, errlen, "%s: token %d at position %zu is outside the vocabulary (%d)",
                        a.tokens, s[i] < 0 || s[i] >= V ? s[i] : s[i + 1],
                        (size_t)b * (T + 1) + (size_t)i, V);
                goto done;
            }
            tok[(size_t)b * T + i] = s[i];
            tgt[(size_t)b * T + i] = s[i + 1];
        }
        g[b] = (float)a.scale;
        off[b] = (int32_t)a.offset;
    }
    if (e2w_model_create(&m, k_get("cpu"), &mc, err, errlen) < 0 ||
        e2w_model_load_hf(&m, a.model, err, errlen) < 0 ||
        e2w_model_alloc_train(&m, err, errlen) < 0 ||
        e2w_acts_create(&acts, &m, B, T, 1, 0, err, errlen) < 0)
        goto done;
    k_rope rope = { .theta = mc.theta, .n_sink = (int)a.sinks, .g = g, .t = off };
    e2w_acts_set_batch(&acts, &m, tok, tgt, B, T);
    float loss = (float)(e2w_model_forward(&m, &acts, B, T, &rope, 1) / ((double)B * T));
    size_t nl = (size_t)B * T * (size_t)V;
    logits = malloc(nl * sizeof(float));
    grads = malloc(m.n_params * sizeof(float));
    int nt = e2w_model_hf_count(&m);
    outs = calloc((size_t)nt + 2, sizeof *outs);
    e2w_model_hf_tensor *ts = calloc((size_t)nt, sizeof *ts);
    char(*names)[128] = calloc((size_t)nt, sizeof *names);
    if (!logits || !grads || !outs || !ts || !names) {
        free(ts);
        free(names);
        e2_errf(err, errlen, "inspect: out of memory");
        goto done;
    }
    m.k->download(logits, acts.logits, nl);
    e2w_model_backward(&m, &acts, B, T, &rope, (float)(1.0 / ((double)B * T)));
    e2w_model_download_grad(&m, 0, grads, m.n_params);
    outs[0] = (e2w_st_out){
        .name = "logits", .data = logits, .ndim = 3, .shape = { B, T, V }, .dtype = E2W_DT_F32
    };
    outs[1] = (e2w_st_out){ .name = "loss", .data = &loss, .ndim = 0, .dtype = E2W_DT_F32 };
    for (int i = 0; i < nt; i++) {
        e2w_model_hf_tensor_at(&m, i, &ts[i]);
        snprintf(names[i], sizeof names[i], "grad.%s", ts[i].name);
        outs[i + 2] = (e2w_st_out){ .name = names[i],
                                    .data = grads + ts[i].offset,
                                    .ndim = ts[i].ndim,
                                    .shape = { ts[i].shape[0], ts[i].shape[1] },
                                    .dtype = E2W_DT_F32 };
    }
    int w = e2w_st_write_file(a.out, outs, (size_t)nt + 2, err, errlen);
    free(ts);
    free(names);
    if (w < 0) goto done;
    printf("inspect: loss %.6f, wrote %s (%d tensors)\n", loss, a.out, nt + 2);
    rc = 0;
done:
    if (acts.mem) e2w_acts_free(&acts, &m);
    e2w_model_free(&m);
    free(all);
    free(tok);
    free(tgt);
    free(g);
    free(off);
    free(logits);
    free(grads);
    free(outs);
    return rc;
}
