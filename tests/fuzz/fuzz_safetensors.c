/* fuzz_safetensors.c -- Hugging Face checkpoint reading (worker/ckpt).
 *
 * The first input byte picks what the rest is (mod 3):
 *   0  a .safetensors file: opened, then every tensor is read as fp32;
 *   1  model.safetensors.index.json in a folder that also holds two valid
 *      shards (model-0000{1,2}-of-00002.safetensors, tensors "a" and "b");
 *   2  a config.json (e2w_hf_config_read).
 * Every call must return; a tensor the reader accepted must be readable
 * with its own shape. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hf_config.h"
#include "safetensors.h"

static char single[512], index_dir[512], index_path[600], config_path[512];

static void setup(void) {
    char err[512], p[600];
    static const float a[2] = { 1.0f, -2.0f }, b[4] = { 0.5f, 1.5f, -3.0f, 4.0f };
    e2w_st_out t1 = { .name = "a", .data = a, .ndim = 1, .shape = { 2 }, .dtype = E2W_DT_F32 };
    e2w_st_out t2 = { .name = "b", .data = b, .ndim = 2, .shape = { 2, 2 }, .dtype = E2W_DT_BF16 };
    snprintf(single, sizeof single, "%s", fuzz_file("x.safetensors"));
    snprintf(index_dir, sizeof index_dir, "%s", fuzz_file("idx"));
    snprintf(config_path, sizeof config_path, "%s", fuzz_file("config.json"));
    if (mkdir(index_dir, 0700) < 0) abort();
    snprintf(index_path, sizeof index_path, "%s/model.safetensors.index.json", index_dir);
    snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", index_dir);
    if (e2w_st_write_file(p, &t1, 1, err, sizeof err) < 0) abort();
    snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", index_dir);
    if (e2w_st_write_file(p, &t2, 1, err, sizeof err) < 0) abort();
}

static void read_all(const char *path) {
    char err[512];
    e2w_st *st;
    if (e2w_st_open(&st, path, err, sizeof err) < 0) return;
    size_t n = e2w_st_count(st);
    for (size_t i = 0; i < n; i++) {
        const e2w_st_tensor_info *t = e2w_st_tensor(st, i);
        if (!t || e2w_st_find(st, t->name) != t) abort();
        /* The validated data section bounds numel by the file size. */
        float *dst = malloc((t->numel ? t->numel : 1) * sizeof *dst);
        if (!dst) abort();
        /* A tensor holding NaN or Inf is refused at read, by design (the
         * reader names it); any other failure of an accepted tensor is a bug. */
        if (e2w_st_read_f32(st, t->name, t->ndim, t->shape, dst, err, sizeof err) < 0 &&
            !strstr(err, "non-finite value")) {
            fprintf(stderr, "fuzz_safetensors: accepted tensor %s unreadable: %s\n", t->name, err);
            abort();
        }
        free(dst);
    }
    e2w_st_close(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready;
    char err[512];
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1) return 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_write(single, data + 1, size - 1, 0600);
        read_all(single);
        break;
    case 1:
        fuzz_write(index_path, data + 1, size - 1, 0600);
        read_all(index_dir);
        break;
    default: {
        E2__V1__LlamaConfig cfg;
        e2w_hf_meta meta;
        fuzz_write(config_path, data + 1, size - 1, 0600);
        /* LlamaConfig holds only numbers: nothing to free. */
        (void)e2w_hf_config_read(config_path, &cfg, &meta, err, sizeof err);
        break;
    }
    }
    return 0;
}
