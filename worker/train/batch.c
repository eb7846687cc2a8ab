/* batch.c -- training samples and their E² draws for the trainer: the
 * dataset's seeded order and the (g, t) sampler of worker/data, both pure
 * functions of (seed, step, global sample index). PoSE's chunk skip
 * biases travel in a (B, n_chunks, 2) table to k_rope. */
#include <errno.h>
#include <stdlib.h>

#include "aug.h"
#include "base.h"
#include "dataset.h"
#include "train_internal.h"

_Static_assert(E2_POS_MAX_CHUNKS == K_ROPE_MAX_CHUNKS,
               "scheme.h and k.h disagree on the chunk limit");

struct train_data {
    e2w_dataset *ds;
    e2w_aug aug;
    uint64_t seed;
    int R;
    int32_t *seq; /* (R + 1) */
};

int e2w_train_data_open(train_data **out, const E2__V1__JobSpec *spec, const e2_shard_list *files,
                        int R, int vocab, char *err, size_t errlen) {
    *out = NULL;
    train_data *d = calloc(1, sizeof *d);
    if (d == NULL) return e2_errf(err, errlen, "trainer: out of memory");
    d->R = R;
    d->seed = spec->train->seed;
    d->seq = malloc(((size_t)R + 1) * sizeof(int32_t));
    if (d->seq == NULL) {
        e2w_train_data_close(d);
        return e2_errf(err, errlen, "trainer: out of memory");
    }
    if (spec->data == NULL || spec->data->n_train_shards == 0) {
        e2w_train_data_close(d);
        return e2_errf(err, errlen,
                       "spec.data.train_shards is empty: give at least one token shard");
    }
    e2_shard_list expanded = { 0 };
    int rc = files ? 0
                   : e2_shards_expand(spec->data->train_shards, spec->data->n_train_shards,
                                      "spec.data.train_shards", &expanded, err, errlen);
    if (rc == 0) rc = e2w_dataset_open(&d->ds, files ? files : &expanded, (uint32_t)R, err, errlen);
    e2_shards_free(&expanded);
    if (rc == 0) rc = e2w_dataset_check_vocab(d->ds, (uint32_t)vocab, err, errlen);
    if (rc == 0) rc = e2w_aug_init_spec(&d->aug, spec->augment, err, errlen);
    if (rc < 0) {
        e2w_train_data_close(d);
        /* E2_EDATA: the data (or the spec's draw) fails its checks, the
         * job's fault; a file that cannot be read is the machine's. */
        return rc == E2_EDATA ? E2W_TRAIN_EDATA : E2_ERR;
    }
    *out = d;
    return 0;
}

int e2w_train_data_chunks(const train_data *d) {
    return d->aug.cfg.method == E2W_AUG_POSE ? (int)d->aug.cfg.pose_chunks : 0;
}

void e2w_train_data_close(train_data *d) {
    if (d == NULL) return;
    if (d->ds) e2w_dataset_close(d->ds);
    free(d->seq);
    free(d);
}

int e2w_train_data_batch(train_data *d, uint64_t step0, uint64_t first, int B, int32_t *tokens,
                         int32_t *targets, float *g, int32_t *t, int32_t *chunks, char *err,
                         size_t errlen) {
    int nc = e2w_train_data_chunks(d);
    int R = d->R;
    for (int i = 0; i < B; i++) {
        uint64_t k = first + (uint64_t)i, s;
        if (e2w_dataset_sample_at(d->ds, d->seed, k, &s) < 0)
            return e2_errf(err, errlen, "trainer: out of memory for the sample order");
        if (e2w_dataset_read_sample(d->ds, s, d->seq) < 0)
            return e2_errf(err, errlen, "trainer: cannot read sample %llu", (unsigned long long)s);
        for (int j = 0; j < R; j++) {
            tokens[(size_t)i * R + j] = d->seq[j];
            targets[(size_t)i * R + j] = d->seq[j + 1];
        }
        e2_pos_draw pd;
        e2w_aug_draw_pos(&d->aug, d->seed, step0, k, &pd);
        g[i] = pd.g;
        t[i] = pd.t;
        for (int c = 0; c < nc; c++) {
            chunks[((size_t)i * nc + c) * 2] = pd.chunks[c][0];
            chunks[((size_t)i * nc + c) * 2 + 1] = pd.chunks[c][1];
        }
    }
    return 0;
}
