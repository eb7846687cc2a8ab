/* dataset: shards concatenated into one token stream, R + 1 token windows
 * with stride R, and the (seed, epoch) sample order; see dataset.h. */
#include "dataset.h"
#include "base.h"
#include "rng.h"
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct e2w_dataset {
    e2w_shard *shards;
    uint64_t *start; /* (n_shards + 1) stream offset of each shard's first token */
    size_t n_shards;
    uint64_t n_tokens;
    uint64_t n_samples;
    uint32_t seq_len;
    uint64_t *perm; /* (n_samples) order of perm_epoch, or NULL */
    uint64_t perm_seed, perm_epoch;
};

void e2w_order_permutation(uint64_t seed, uint64_t epoch, uint64_t n, uint64_t *out) {
    uint64_t key = e2w_rng_key(E2W_RNG_ORDER, seed, epoch, 0);
    uint64_t ctr = 0;
    for (uint64_t i = 0; i < n; i++) out[i] = i;
    for (uint64_t i = n; i > 1; i--) {
        uint64_t j = e2w_rng_below(key, &ctr, i);
        uint64_t t = out[i - 1];
        out[i - 1] = out[j];
        out[j] = t;
    }
}

static int ds_add_shard(e2w_dataset *ds, const char *path, size_t *cap, char *err, size_t errlen) {
    if (ds->n_shards == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        e2w_shard *ns = realloc(ds->shards, nc * sizeof *ns);
        if (!ns) return e2_errf(err, errlen, "%s: out of memory", path);
        ds->shards = ns;
        *cap = nc;
    }
    int rc = e2w_shard_open(&ds->shards[ds->n_shards], path, err, errlen);
    if (rc == 0) ds->n_shards++;
    return rc;
}

int e2w_dataset_open(e2w_dataset **out, const e2_shard_list *files, uint32_t seq_len, char *err,
                     size_t errlen) {
    *out = NULL;
    if (seq_len < 1)
        return e2_errf_rc(err, errlen, E2_EDATA, "dataset: sequence length must be >= 1");
    if (files->n == 0) return e2_errf_rc(err, errlen, E2_EDATA, "dataset: no token shards given");
    e2w_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return e2_errf(err, errlen, "dataset: out of memory");
    ds->seq_len = seq_len;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < files->n && rc == 0; i++)
        rc = ds_add_shard(ds, files->paths[i], &cap, err, errlen);
    if (rc == 0) {
        ds->start = malloc((ds->n_shards + 1) * sizeof *ds->start);
        if (!ds->start) rc = e2_errf(err, errlen, "dataset: out of memory");
    }
    if (rc == 0) {
        for (size_t i = 0; i < ds->n_shards; i++) {
            ds->start[i] = ds->n_tokens;
            ds->n_tokens += ds->shards[i].n_tokens;
        }
        ds->start[ds->n_shards] = ds->n_tokens;
        if (ds->n_tokens < (uint64_t)seq_len + 1)
            rc = e2_errf_rc(
                err, errlen, E2_EDATA,
                "dataset: %llu tokens in %zu shard(s), fewer than one training sequence of "
                "%u + 1 tokens",
                (unsigned long long)ds->n_tokens, ds->n_shards, seq_len);
        ds->n_samples = (ds->n_tokens - 1) / seq_len;
    }
    if (rc) {
        e2w_dataset_close(ds);
        return rc;
    }
    *out = ds;
    return 0;
}

void e2w_dataset_close(e2w_dataset *ds) {
    if (!ds) return;
    for (size_t i = 0; i < ds->n_shards; i++) e2w_shard_close(&ds->shards[i]);
    free(ds->shards);
    free(ds->start);
    free(ds->perm);
    free(ds);
}

uint64_t e2w_dataset_tokens(const e2w_dataset *ds) {
    return ds->n_tokens;
}
uint64_t e2w_dataset_samples(const e2w_dataset *ds) {
    return ds->n_samples;
}
size_t e2w_dataset_shards(const e2w_dataset *ds) {
    return ds->n_shards;
}
uint32_t e2w_dataset_seq_len(const e2w_dataset *ds) {
    return ds->seq_len;
}

/* Index of the shard holding stream position pos (binary search). */
static size_t ds_shard_of(const e2w_dataset *ds, uint64_t pos) {
    size_t lo = 0, hi = ds->n_shards;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (ds->start[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

int e2w_dataset_read_tokens(const e2w_dataset *ds, uint64_t start, uint64_t n, int32_t *out) {
    if (start > ds->n_tokens || n > ds->n_tokens - start) return E2_ERR;
    size_t s = n ? ds_shard_of(ds, start) : 0;
    for (uint64_t i = 0; i < n; s++) {
        const e2w_shard *sh = &ds->shards[s];
        uint64_t off = start + i - ds->start[s];
        for (; off < sh->n_tokens && i < n; off++, i++) out[i] = (int32_t)e2w_shard_token(sh, off);
    }
    return 0;
}

int e2w_dataset_read_sample(const e2w_dataset *ds, uint64_t sample, int32_t *out) {
    if (sample >= ds->n_samples) return E2_ERR;
    return e2w_dataset_read_tokens(ds, sample * ds->seq_len, (uint64_t)ds->seq_len + 1, out);
}

int e2w_dataset_sample_at(e2w_dataset *ds, uint64_t seed, uint64_t k, uint64_t *sample) {
    uint64_t epoch = k / ds->n_samples;
    if (!ds->perm || ds->perm_seed != seed || ds->perm_epoch != epoch) {
        if (!ds->perm) {
            ds->perm = malloc(ds->n_samples * sizeof *ds->perm);
            if (!ds->perm) return E2_ERR;
        }
        e2w_order_permutation(seed, epoch, ds->n_samples, ds->perm);
        ds->perm_seed = seed;
        ds->perm_epoch = epoch;
    }
    *sample = ds->perm[k % ds->n_samples];
    return 0;
}

int e2w_dataset_check_vocab(const e2w_dataset *ds, uint32_t vocab, char *err, size_t errlen) {
    for (size_t s = 0; s < ds->n_shards; s++) {
        const e2w_shard *sh = &ds->shards[s];
        for (uint64_t i = 0; i < sh->n_tokens; i++) {
            uint32_t t = e2w_shard_token(sh, i);
            if (t >= vocab)
                return e2_errf_rc(
                    err, errlen, E2_EDATA,
                    "%s: the token at position %llu is outside the model's vocabulary "
                    "(vocab_size %u)",
                    sh->path, (unsigned long long)i, vocab);
        }
    }
    return 0;
}
