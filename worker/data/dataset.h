/* dataset: the training token stream and the order samples are read in.
 *
 * The shard files (spec patterns expanded by common/shards: each
 * pattern's matches in sorted order) are concatenated into one stream of
 * N tokens. Training sample s is the window of R + 1 tokens starting at s * R: inputs are its first R
 * tokens, targets its last R, and consecutive samples share one token
 * (stride R, as llm.c's loader), so n_samples = (N - 1) / R and no target
 * is lost at a boundary. Windows may span shards.
 *
 * Order: the k-th sample the job consumes (k = step * global_batch + i, the
 * global sample index) is perm(seed, epoch)[k mod n_samples] with
 * epoch = k / n_samples, where perm is a Fisher-Yates shuffle driven by the
 * counter-based RNG (rng.h): a pure function of (seed, epoch), whatever the
 * rank count or resume point. */
#ifndef E2W_DATASET_H
#define E2W_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "shards.h"

typedef struct e2w_dataset e2w_dataset;

/* Opens the shard files in order (exact paths: patterns are expanded by
 * e2_shards_expand first, or come as e2d's manifest); fails (one line
 * naming the file) when a shard is bad or there are fewer than R + 1
 * tokens. seq_len is R (>= 1). 0, E2_EDATA when the data (or seq_len) is
 * bad, the job's fault, or E2_ERR (base.h): a file cannot be read. */
int e2w_dataset_open(e2w_dataset **out, const e2_shard_list *files, uint32_t seq_len, char *err,
                     size_t errlen);
void e2w_dataset_close(e2w_dataset *ds);

uint64_t e2w_dataset_tokens(const e2w_dataset *ds);  /* N */
uint64_t e2w_dataset_samples(const e2w_dataset *ds); /* (N - 1) / R */
size_t e2w_dataset_shards(const e2w_dataset *ds);
uint32_t e2w_dataset_seq_len(const e2w_dataset *ds);

/* Tokens [start, start + n) of the stream; E2_ERR past the end. */
int e2w_dataset_read_tokens(const e2w_dataset *ds, uint64_t start, uint64_t n,
                            int32_t *out /* (n) */);

/* Sample s: its R + 1 tokens. */
int e2w_dataset_read_sample(const e2w_dataset *ds, uint64_t sample, int32_t *out /* (R + 1) */);

/* Which sample the k-th consumed sample is. Caches one epoch's
 * permutation, so a dataset is used by one thread at a time. 0 or E2_ERR
 * (out of memory). */
int e2w_dataset_sample_at(e2w_dataset *ds, uint64_t seed, uint64_t k, uint64_t *sample);

/* E2_EDATA with one line when a token is >= vocab (scans the whole stream). */
int e2w_dataset_check_vocab(const e2w_dataset *ds, uint32_t vocab, char *err, size_t errlen);

/* perm(seed, epoch) of {0..n-1} into out (n entries). */
void e2w_order_permutation(uint64_t seed, uint64_t epoch, uint64_t n, uint64_t *out /* (n) */);

#endif
