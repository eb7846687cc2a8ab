/* shards.h -- token shard patterns -> the files they name, the one place
 * e2 expands spec.data.train_shards and eval_shards: e2d for the shard
 * manifest of an assignment (off its event loop), the spec's file check,
 * and the worker before it opens the dataset.
 *
 * Library e2_shards, prefix e2_shards_. Functions return 0 or a negative
 * errno with one line in err (base.h's convention); nothing is printed.
 * Blocking (glob and stat touch the file system): e2d calls it from a
 * thread-pool job. */
#ifndef E2_SHARDS_H
#define E2_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Files in stream order with their sizes. Zero-initialise; free with
 * e2_shards_free. */
typedef struct {
    char **paths;    /* (n) exact paths, no pattern characters interpreted */
    uint64_t *bytes; /* (n) each file's size when it was listed */
    size_t n, cap;
} e2_shard_list;

/* Appends patterns[0..n) to out: each pattern's matches in sorted order
 * (glob's), the patterns in the order given (a file two patterns match is
 * listed twice, as the stream reads it). Each match must be a readable
 * regular file. On failure out is left as it was and err names the pattern
 * as field[i]: `spec.data.train_shards[0]: no file matches "/d/t_*.bin"`
 * (E2_NOTFOUND), `... cannot expand "..."` (E2_ERR), `...: "/d/x" is not a
 * readable file` (E2_NOTFOUND), out of memory (E2_ERR). field NULL reads
 * "shards". */
int e2_shards_expand(char *const *patterns, size_t n, const char *field, e2_shard_list *out,
                     char *err, size_t errlen);

/* Appends one file as given (no expansion): 0 or E2_ERR (out of
 * memory; no message). */
int e2_shards_add(e2_shard_list *l, const char *path, uint64_t bytes);

void e2_shards_free(e2_shard_list *l);

#ifdef __cplusplus
}
#endif

#endif
