/* shards.c -- the assignment's shard manifest (the training shard files e2d
 * expanded from spec.data.train_shards, with their sizes) becomes the list
 * of files the rank's trainer reads, after a check that this machine sees
 * the same files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_internal.h"
#include "base.h"

/* path with glob's special characters escaped, so that the data loader's
 * glob() matches that one file. NULL when out of memory. */
static char *shards_literal(const char *path) {
    size_t n = strlen(path);
    char *out = malloc(2 * n + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = path; *p; p++) {
        if (strchr("*?[]\\", *p)) *o++ = '\\';
        *o++ = *p;
    }
    *o = 0;
    return out;
}

void e2w_agent_shard_files_free(char **paths, size_t n) {
    for (size_t i = 0; paths && i < n; i++) free(paths[i]);
    free(paths);
}

int e2w_agent_shard_files(const E2__V1__Assignment *as, char ***paths, size_t *n, char *err,
                          size_t errlen) {
    *paths = NULL;
    *n = 0;
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
    char **p = calloc(as->n_train_shards, sizeof *p);
    if (!p) return e2_errf(err, errlen, "data: out of memory");
    for (size_t i = 0; i < as->n_train_shards; i++)
        if (!(p[i] = shards_literal(as->train_shards[i]->path))) {
            e2w_agent_shard_files_free(p, i);
            return e2_errf(err, errlen, "data: out of memory");
        }
    *paths = p;
    *n = as->n_train_shards;
    return 0;
}
