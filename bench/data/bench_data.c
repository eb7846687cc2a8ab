/* bench_data: throughput of the data path the trainer calls every step:
 * reading R + 1 token samples in shuffled order from mmapped shards, the
 * (seed, epoch) permutation, and E² (g, t) draws. Prints figures only.
 *
 * usage: bench_data [tokens (default 20000000)] [R (default 4096)] */
#include "aug.h"
#include "dataset.h"
#include "shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    uint64_t n_tokens = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000000;
    uint32_t R = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 4096;
    char err[512], dir[] = "/tmp/e2-bench-data-XXXXXX", path[600];
    if (!mkdtemp(dir)) return 1;
    snprintf(path, sizeof path, "%s/b_000000.bin", dir);
    uint32_t *tok = malloc(n_tokens * sizeof *tok);
    if (!tok) return 1;
    for (uint64_t i = 0; i < n_tokens; i++) tok[i] = (uint32_t)((i * 2654435761u) >> 16) % 50000;
    double t0 = now();
    if (e2w_shard_write(path, tok, n_tokens, 2, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    double t_write = now() - t0;
    free(tok);
    e2_shard_list files = { 0 };
    e2w_dataset *ds;
    if (e2_shards_add(&files, path, n_tokens * 2) < 0 ||
        e2w_dataset_open(&ds, &files, R, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint64_t n = e2w_dataset_samples(ds);
    printf("config: %llu uint16 tokens in one shard, R = %u, %llu samples\n",
           (unsigned long long)n_tokens, R, (unsigned long long)n);
    printf("shard write (atomic, fsync): %.1f M tokens/s\n", (double)n_tokens / t_write / 1e6);

    uint64_t *perm = malloc(n * sizeof *perm);
    t0 = now();
    e2w_order_permutation(1, 0, n, perm);
    double t_perm = now() - t0;
    printf("permutation of %llu samples: %.3f ms\n", (unsigned long long)n, t_perm * 1e3);
    free(perm);

    int32_t *buf = malloc(((size_t)R + 1) * sizeof *buf);
    uint64_t reads = 4 * n, sum = 0;
    t0 = now();
    for (uint64_t k = 0; k < reads; k++) {
        uint64_t s;
        e2w_dataset_sample_at(ds, 1, k, &s);
        e2w_dataset_read_sample(ds, s, buf);
        sum += (uint64_t)buf[R];
    }
    double t_read = now() - t0;
    printf("shuffled sample reads (4 epochs): %.0f samples/s, %.1f M tokens/s (checksum %llu)\n",
           (double)reads / t_read, (double)reads * R / t_read / 1e6, (unsigned long long)sum);
    free(buf);
    e2w_dataset_close(ds);
    e2_shards_free(&files);

    e2w_aug a;
    e2w_aug_config c = { .method = E2W_AUG_E2,
                         .granularity = E2W_AUG_PER_SAMPLE,
                         .g_max = 20,
                         .n_sink = 4,
                         .original_window = 4096,
                         .train_length = R,
                         .fixed_g = 8 };
    if (e2w_aug_init(&a, &c, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint64_t draws = 10000000;
    float g, gs = 0;
    int32_t t;
    t0 = now();
    for (uint64_t i = 0; i < draws; i++) {
        e2w_aug_draw(&a, 1, i / 16, i, &g, &t);
        gs += g + (float)(t & 1);
    }
    double t_aug = now() - t0;
    printf("E2 draws (g_max 20, uniform): %.1f M draws/s (checksum %.0f)\n",
           (double)draws / t_aug / 1e6, gs);
    unlink(path);
    rmdir(dir);
    return 0;
}
