/* shards.c -- the assignment's shard manifest (the training shard files e2d
 * expanded from spec.data.train_shards, with their sizes) becomes the list
 * of files the rank's trainer reads (as they are: no pattern expanded
 * again), after a check that this machine sees the same files. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_internal.h"
#include "base.h"

int e2w_agent_shard_files(const E2__V1__Assignment *as, e2_shard_list *files, char *err,
                          size_t errlen) {
    if (as->n_train_shards == 0) return 0;
    for (size_t i = 0; i < as->n_train_shards; i++) {
        const E2__V1__ShardFile *f = as->train_shards[i];
        struct stat st;
        if (!f->path || stat(f->path, &st) != 0)
            return e2_errf(err, errlen,
                           "data: shard %s of e2d's manifest is not readable on this worker (%s): "
                           "every worker must see the training shards at the same path",
                           f->path ? f->path : "(none)", f->path ? strerror(errno) : "no path");
        if ((uint64_t)st.st_size != f->bytes)
            return e2_errf(err, errlen,
                           "data: shard %s is %llu bytes on this worker but %llu bytes where e2d "
                           "found it: every worker must see the same shard files",
                           f->path, (unsigned long long)st.st_size, (unsigned long long)f->bytes);
    }
    for (size_t i = 0; i < as->n_train_shards; i++)
        if (e2_shards_add(files, as->train_shards[i]->path, as->train_shards[i]->bytes) < 0) {
            e2_shards_free(files);
            return e2_errf(err, errlen, "data: out of memory");
        }
    return 0;
}
