/* real_logits.c -- e2's forward pass of a Hugging Face model folder on a
 * token window, for the numpy reference check (reference.py).
 *
 * usage: real_logits HF_DIR TOKENS.bin OUT.bin
 *
 * TOKENS.bin: T little-endian int32 token ids (1 <= T <= 256). OUT.bin:
 * float32, the residual stream at every block input and after the last
 * block ((L+1) x T x C), then the logits (T x V). RoPE g = 1, t = 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "hf_config.h"
#include "model.h"

static int fail(const char *msg) {
    fprintf(stderr, "real_logits: %s\n", msg);
    return 1;
}

int main(int argc, char **argv) {
    char err[E2_ERRLEN];
    if (argc != 4) return fail("usage: real_logits HF_DIR TOKENS.bin OUT.bin");
    FILE *f = fopen(argv[2], "rb");
    if (f == NULL) return fail("cannot open the tokens file");
    int32_t tokens[E2W_LOGIT_CHUNK];
    size_t T = fread(tokens, sizeof(int32_t), E2W_LOGIT_CHUNK + 1, f);
    fclose(f);
    if (T < 1 || T > E2W_LOGIT_CHUNK) return fail("the tokens file must hold 1 to 256 int32 ids");
    E2__V1__LlamaConfig hf = E2__V1__LLAMA_CONFIG__INIT;
    e2w_model_config cfg;
    e2w_model m;
    if (e2w_hf_config_read(argv[1], &hf, NULL, err, sizeof err) < 0 ||
        e2w_model_config_from_proto(&cfg, &hf, err, sizeof err) < 0 ||
        e2w_model_create(&m, k_get("cpu"), &cfg, err, sizeof err) < 0)
        return fail(err);
    int rc = 1;
    e2w_acts a;
    if (e2w_model_load_hf(&m, argv[1], err, sizeof err) < 0 ||
        e2w_acts_create(&a, &m, 1, (int)T, 0, 1, err, sizeof err) < 0) {
        e2w_model_free(&m);
        return fail(err);
    }
    for (size_t i = 0; i < T; i++)
        if (tokens[i] < 0 || tokens[i] >= cfg.V) {
            fail("a token id is outside the vocabulary");
            goto done;
        }
    float g = 1.0f;
    int32_t t0 = 0;
    k_rope rope = { .theta = m.cfg.theta, .n_sink = 0, .g = &g, .t = &t0 };
    e2w_acts_set_batch(&a, &m, tokens, NULL, 1, (int)T);
    e2w_model_forward(&m, &a, 1, (int)T, &rope, 0);
    if (a.logits_row0 != 0) {
        fail("the logits of the first rows were not kept");
        goto done;
    }
    size_t nres = (size_t)(cfg.n_layer + 1) * T * (size_t)cfg.C, nlog = T * (size_t)cfg.V;
    float *buf = malloc((nres + nlog) * sizeof(float));
    if (buf == NULL) {
        fail("out of memory");
        goto done;
    }
    m.k->download(buf, a.res, nres);
    m.k->download(buf + nres, a.logits, nlog);
    f = fopen(argv[3], "wb");
    if (f == NULL || fwrite(buf, sizeof(float), nres + nlog, f) != nres + nlog || fclose(f) != 0)
        fail("cannot write the output file");
    else
        rc = 0;
    free(buf);
done:
    e2w_acts_free(&a, &m);
    e2w_model_free(&m);
    return rc;
}
