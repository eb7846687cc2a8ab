/* bench_ckpt.c -- what checkpoints cost: writing a Llama-shaped model as
 * safetensors (F32 and BF16, atomic + fsync), opening (validation), reading
 * every tensor back to fp32, SHA-256 of the files, and the train-state file
 * (AdamW m and v) written and opened (checksum verified).
 *
 *   bench_ckpt [dir] [hidden] [layers]      defaults: ./bench_ckpt_tmp 1024 8
 *
 * Prints the configuration and figures; asserts nothing. */
#include "base.h"
#include "llama_names.h"
#include "safetensors.h"
#include "train_state.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int rm_entry(const char *p, const struct stat *s, int f, struct FTW *w) {
    (void)s, (void)f, (void)w;
    return remove(p);
}

#define TRY(call)                                     \
    do {                                              \
        if ((call) < 0) {                             \
            fprintf(stderr, "bench_ckpt: %s\n", err); \
            return 1;                                 \
        }                                             \
    } while (0)

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "bench_ckpt_tmp";
    uint32_t C = argc > 2 ? (uint32_t)atoi(argv[2]) : 1024;
    uint32_t layers = argc > 3 ? (uint32_t)atoi(argv[3]) : 8;
    char err[E2_ERRLEN], path[1024];
    E2__V1__LlamaConfig cfg;
    e2__v1__llama_config__init(&cfg);
    cfg.has_hidden_size = 1, cfg.hidden_size = C;
    cfg.has_num_hidden_layers = 1, cfg.num_hidden_layers = layers;
    cfg.has_num_attention_heads = 1, cfg.num_attention_heads = C / 64;
    cfg.has_intermediate_size = 1, cfg.intermediate_size = C * 8 / 3 / 64 * 64;
    cfg.has_vocab_size = 1, cfg.vocab_size = 32000;
    TRY(e2w_llama_config_check(&cfg, err, sizeof err));
    size_t n = e2w_llama_tensor_count(&cfg);
    e2w_llama_tensor *t = calloc(n, sizeof *t);
    e2w_st_out *out = calloc(n, sizeof *out);
    uint64_t numel = 0;
    for (size_t i = 0; i < n; i++) {
        e2w_llama_tensor_at(&cfg, i, &t[i]);
        numel += t[i].numel;
    }
    float *w = malloc(numel * sizeof *w), *back = malloc(numel * sizeof *back);
    if (!t || !out || !w || !back) {
        fprintf(stderr, "bench_ckpt: out of memory (%llu params)\n", (unsigned long long)numel);
        return 1;
    }
    uint64_t s = 1;
    for (uint64_t i = 0; i < numel; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        w[i] = (float)((int64_t)(s >> 33) - (1LL << 30)) * 1e-9f;
    }
    printf("bench_ckpt: C=%u layers=%u F=%u V=%u tensors=%zu params=%.1fM dir=%s\n", C, layers,
           cfg.intermediate_size, cfg.vocab_size, n, numel / 1e6, dir);
    const e2w_dtype dts[2] = { E2W_DT_F32, E2W_DT_BF16 };
    for (int k = 0; k < 2; k++) {
        uint64_t off = 0;
        for (size_t i = 0; i < n; i++) {
            out[i] = (e2w_st_out){
                t[i].name, w + off, t[i].ndim, { t[i].shape[0], t[i].shape[1] }, dts[k]
            };
            off += t[i].numel;
        }
        double bytes = (double)numel * (double)e2w_dtype_size(dts[k]);
        double t0 = now();
        int ns;
        TRY(e2w_st_write_dir(dir, out, n, 64u << 20, &ns, err, sizeof err));
        double t1 = now();
        e2w_st *st;
        TRY(e2w_st_open(&st, dir, err, sizeof err));
        double t2 = now();
        off = 0;
        for (size_t i = 0; i < n; i++) {
            TRY(e2w_st_read_f32(st, t[i].name, t[i].ndim, t[i].shape, back + off, err, sizeof err));
            off += t[i].numel;
        }
        double t3 = now();
        e2w_st_close(st);
        double sha = 0;
        for (int f = 1; f <= ns; f++) {
            snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, f, ns);
            if (ns == 1) snprintf(path, sizeof path, "%s/model.safetensors", dir);
            uint8_t d[E2_SHA256_LEN];
            double a = now();
            TRY(e2_sha256_file(path, d, NULL, err, sizeof err));
            sha += now() - a;
        }
        printf("  %-4s %7.1f MB in %d shards: write %.3f s (%.0f MB/s), open+validate "
               "%.4f s, read->fp32 %.3f s (%.0f MB/s), sha256 %.3f s (%.0f MB/s)\n",
               e2w_dtype_name(dts[k]), bytes / 1e6, ns, t1 - t0, bytes / 1e6 / (t1 - t0), t2 - t1,
               t3 - t2, bytes / 1e6 / (t3 - t2), sha, bytes / 1e6 / sha);
    }
    snprintf(path, sizeof path, "%s/state.bin", dir);
    e2w_ts_writer *tw = e2w_ts_writer_new();
    TRY(e2w_ts_put(tw, "adamw.m", E2W_TS_F32, w, numel, err, sizeof err));
    TRY(e2w_ts_put(tw, "adamw.v", E2W_TS_F32, back, numel, err, sizeof err));
    TRY(e2w_ts_put_u64(tw, "step", 1, err, sizeof err));
    double t0 = now();
    TRY(e2w_ts_write(tw, path, err, sizeof err));
    double t1 = now();
    e2w_ts *ts;
    TRY(e2w_ts_open(&ts, path, err, sizeof err));
    double t2 = now();
    e2w_ts_close(ts);
    e2w_ts_writer_free(tw);
    double mb = 2.0 * (double)numel * 4 / 1e6;
    printf("  train state %.1f MB: write %.3f s (%.0f MB/s), open+verify %.3f s "
           "(%.0f MB/s)\n",
           mb, t1 - t0, mb / (t1 - t0), t2 - t1, mb / (t2 - t1));
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(w);
    free(back);
    free(t);
    free(out);
    return 0;
}
