/* shards.c -- glob + stat of shard patterns (shards.h). */
#include "shards.h"

#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

int e2_shards_add(e2_shard_list *l, const char *path, uint64_t bytes) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **p = realloc(l->paths, cap * sizeof *p);
        if (!p) return E2_ERR;
        l->paths = p;
        uint64_t *b = realloc(l->bytes, cap * sizeof *b);
        if (!b) return E2_ERR;
        l->bytes = b;
        l->cap = cap;
    }
    if (!(l->paths[l->n] = strdup(path))) return E2_ERR;
    l->bytes[l->n++] = bytes;
    return 0;
}

void e2_shards_free(e2_shard_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    free(l->bytes);
    memset(l, 0, sizeof *l);
}

/* One pattern's matches appended to out; rc < 0 with err on failure. */
static int shards_one(const char *pat, const char *field, size_t i, e2_shard_list *out, char *err,
                      size_t errlen) {
    glob_t g;
    int gr = glob(pat, 0, NULL, &g), rc = 0;
    if (gr == GLOB_NOMATCH) {
        e2_errf(err, errlen, "%s[%zu]: no file matches \"%s\"", field, i, pat);
        return E2_NOTFOUND;
    }
    if (gr != 0) {
        e2_errf(err, errlen, "%s[%zu]: cannot expand \"%s\"", field, i, pat);
        return E2_ERR;
    }
    for (size_t k = 0; rc == 0 && k < g.gl_pathc; k++) {
        struct stat st;
        const char *f = g.gl_pathv[k];
        if (stat(f, &st) != 0 || !S_ISREG(st.st_mode) || access(f, R_OK) != 0) {
            e2_errf(err, errlen, "%s[%zu]: \"%s\" is not a readable file", field, i, f);
            rc = E2_NOTFOUND;
        } else if (e2_shards_add(out, f, (uint64_t)st.st_size) < 0) {
            e2_errf(err, errlen, "%s[%zu]: out of memory", field, i);
            rc = E2_ERR;
        }
    }
    globfree(&g);
    return rc;
}

int e2_shards_expand(char *const *patterns, size_t n, const char *field, e2_shard_list *out,
                     char *err, size_t errlen) {
    size_t before = out->n;
    int rc = 0;
    if (!field) field = "shards";
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = shards_one(patterns[i], field, i, out, err, errlen);
    if (rc < 0)
        while (out->n > before) free(out->paths[--out->n]);
    return rc;
}
