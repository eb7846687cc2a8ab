/* st_write.c -- safetensors writer: one file, or a transformers-style
 * sharded directory with model.safetensors.index.json. fp32 host arrays in,
 * F32 or BF16 (round to nearest even) on disk, every file written
 * atomically. Layout choices are documented in safetensors.h. */
#include "safetensors.h"

#include "base.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define E2W_INDEX_NAME  "model.safetensors.index.json"
#define E2W_SINGLE_NAME "model.safetensors"

static uint64_t e2w__numel(const e2w_st_out *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i];
    return n;
}

static uint64_t e2w__nbytes(const e2w_st_out *t) {
    return e2w__numel(t) * e2w_dtype_size(t->dtype);
}

static int e2w__cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks the caller's tensor list: names unique and non-empty, dtypes
 * writable, shapes valid, data present. */
static int e2w__check_out(const char *path, const e2w_st_out *t, size_t n, char *err,
                          size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        const char *nm = t[i].name;
        if (nm == NULL || nm[0] == '\0' || strcmp(nm, "__metadata__") == 0)
            return e2_errf(err, errlen,
                           "%s: tensor %zu has an empty or "
                           "reserved name",
                           path, i);
        if (t[i].dtype != E2W_DT_F32 && t[i].dtype != E2W_DT_BF16)
            return e2_errf(err, errlen,
                           "%s: tensor %s: e2 writes F32 or BF16, "
                           "not %s",
                           path, nm, e2w_dtype_name(t[i].dtype));
        if (t[i].ndim < 0 || t[i].ndim > E2W_ST_MAX_DIMS)
            return e2_errf(err, errlen,
                           "%s: tensor %s: ndim %d out of range "
                           "0..%d",
                           path, nm, t[i].ndim, E2W_ST_MAX_DIMS);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0)
                return e2_errf(err, errlen, "%s: tensor %s: negative shape[%d]", path, nm, d);
        if (t[i].data == NULL && e2w__numel(&t[i]) > 0)
            return e2_errf(err, errlen, "%s: tensor %s: no data", path, nm);
    }
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (names == NULL) return e2_errf(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) names[i] = t[i].name;
    qsort(names, n, sizeof *names, e2w__cmp_str);
    int rc = 0;
    for (size_t i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = e2_errf(err, errlen, "%s: tensor name %s given twice", path, names[i]);
    free(names);
    return rc;
}

/* Streams one tensor's data in its stored dtype. */
static int e2w__write_data(e2_afile *f, const e2w_st_out *t, char *err, size_t errlen) {
    uint64_t n = e2w__numel(t);
    if (n == 0) return 0;
    if (t->dtype == E2W_DT_F32) return e2_afile_write(f, t->data, n * 4, err, errlen);
    enum { CHUNK = 1 << 15 };
    uint16_t buf[CHUNK];
    for (uint64_t i = 0; i < n; i += CHUNK) {
        size_t k = n - i < CHUNK ? (size_t)(n - i) : CHUNK;
        for (size_t j = 0; j < k; j++) buf[j] = e2w_f32_to_bf16(t->data[i + j]);
        if (e2_afile_write(f, buf, k * 2, err, errlen) < 0) return E2_ERR;
    }
    return 0;
}

int e2w_st_write_file(const char *path, const e2w_st_out *t, size_t n, char *err, size_t errlen) {
    if (e2w__check_out(path, t, n, err, errlen) < 0) return E2_ERR;
    /* Storage order: 4-byte tensors, then 2-byte ones, each in caller order. */
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    json_t *root = json_object();
    if (order == NULL || root == NULL) {
        free(order);
        json_decref(root);
        return e2_errf(err, errlen, "%s: out of memory", path);
    }
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if ((t[i].dtype == E2W_DT_F32) == (pass == 0)) order[k++] = i;
    uint64_t off = 0;
    for (size_t j = 0; j < n; j++) {
        const e2w_st_out *x = &t[order[j]];
        json_t *shape = json_array();
        for (int d = 0; d < x->ndim; d++) json_array_append_new(shape, json_integer(x->shape[d]));
        uint64_t end = off + e2w__nbytes(x);
        json_object_set_new(root, x->name,
                            json_pack("{s:s, s:o, s:[I, I]}", "dtype", e2w_dtype_name(x->dtype),
                                      "shape", shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)end));
        off = end;
    }
    json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
    char *hdr = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (hdr == NULL) {
        free(order);
        return e2_errf(err, errlen, "%s: cannot encode the header", path);
    }
    uint64_t hlen = strlen(hdr);
    uint64_t pad = (8 - (8 + hlen) % 8) % 8;
    uint64_t hlen_padded = hlen + pad;
    e2_afile f;
    int rc = e2_afile_open(&f, path, err, errlen);
    if (rc == 0) rc = e2_afile_write(&f, &hlen_padded, 8, err, errlen);
    if (rc == 0) rc = e2_afile_write(&f, hdr, hlen, err, errlen);
    if (rc == 0) rc = e2_afile_write(&f, "        ", pad, err, errlen);
    for (size_t j = 0; j < n && rc == 0; j++) rc = e2w__write_data(&f, &t[order[j]], err, errlen);
    free(hdr);
    free(order);
    if (rc < 0) {
        if (f.fd >= 0) e2_afile_abort(&f);
        return rc;
    }
    return e2_afile_commit(&f, err, errlen);
}

/* "model-%05d-of-%05d.safetensors" (buf of at least 40 bytes). */
static void e2w__shard_name(char *buf, size_t len, int i, int n) {
    snprintf(buf, len, "model-%05d-of-%05d.safetensors", i, n);
}

/* Total shard count of a file named like a shard, else 0. */
static int e2w__shard_total(const char *name) {
    int i, n, used = 0;
    if (strlen(name) != 32 || sscanf(name, "model-%5d-of-%5d.safetensors%n", &i, &n, &used) != 2 ||
        used != 32)
        return 0;
    return n;
}

/* Removes files of another layout than the one just written (n_shards == 1:
 * a single file; otherwise n_shards shards and the index). */
static int e2w__remove_stale(const char *dir, int n_shards, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (d == NULL) return e2_errf(err, errlen, "opendir %s: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    char path[4096];
    while ((de = readdir(d)) != NULL && rc == 0) {
        const char *nm = de->d_name;
        int total = e2w__shard_total(nm);
        int stale = (total > 0 && total != n_shards) ||
                    (n_shards == 1 && strcmp(nm, E2W_INDEX_NAME) == 0) ||
                    (n_shards > 1 && strcmp(nm, E2W_SINGLE_NAME) == 0);
        if (!stale) continue;
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        if (unlink(path) != 0)
            rc = e2_errf(err, errlen, "remove stale %s: %s", path, strerror(errno));
    }
    closedir(d);
    return rc;
}

typedef struct {
    const char *name;
    int shard; /* 1-based */
} e2w__entry;

static int e2w__cmp_entry(const void *a, const void *b) {
    return strcmp(((const e2w__entry *)a)->name, ((const e2w__entry *)b)->name);
}

/* transformers' index: {"metadata": {"total_size": N}, "weight_map": {...}}
 * with weight_map keys sorted by name. */
static int e2w__write_index(const char *dir, const e2w_st_out *t, size_t n, const int *shard_of,
                            int n_shards, char *err, size_t errlen) {
    e2w__entry *e = malloc((n ? n : 1) * sizeof *e);
    json_t *wm = json_object();
    int rc = 0;
    if (e == NULL || wm == NULL) {
        free(e);
        json_decref(wm);
        return e2_errf(err, errlen, "%s: out of memory", dir);
    }
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        e[i] = (e2w__entry){ t[i].name, shard_of[i] + 1 };
        total += e2w__nbytes(&t[i]);
    }
    qsort(e, n, sizeof *e, e2w__cmp_entry);
    char shard[64];
    for (size_t i = 0; i < n; i++) {
        e2w__shard_name(shard, sizeof shard, e[i].shard, n_shards);
        json_object_set_new(wm, e[i].name, json_string(shard));
    }
    json_t *root =
        json_pack("{s:{s:I}, s:O}", "metadata", "total_size", (json_int_t)total, "weight_map", wm);
    char *text = root ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (text == NULL) rc = e2_errf(err, errlen, "%s: cannot encode index", dir);
    if (rc == 0) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, E2W_INDEX_NAME);
        size_t len = strlen(text);
        text[len] = '\n'; /* json_dumps' NUL becomes the final newline */
        rc = e2_write_file_atomic(path, text, len + 1, err, errlen);
    }
    free(text);
    json_decref(wm);
    free(e);
    return rc;
}

int e2w_st_write_dir(const char *dir, const e2w_st_out *t, size_t n, uint64_t max_shard_bytes,
                     int *n_shards, char *err, size_t errlen) {
    if (e2_mkdir_p(dir, 0755, err, errlen) < 0) return E2_ERR;
    if (e2w__check_out(dir, t, n, err, errlen) < 0) return E2_ERR;
    if (strlen(dir) > 4000) return e2_errf(err, errlen, "%s: directory path too long", dir);
    int *shard_of = malloc((n ? n : 1) * sizeof *shard_of);
    e2w_st_out *part = malloc((n ? n : 1) * sizeof *part);
    int rc = 0;
    if (shard_of == NULL || part == NULL) rc = e2_errf(err, errlen, "%s: out of memory", dir);
    /* Greedy packing in caller order. */
    int ns = 1;
    uint64_t cur = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint64_t b = e2w__nbytes(&t[i]);
        if (max_shard_bytes > 0 && cur > 0 && cur + b > max_shard_bytes) {
            ns++;
            cur = 0;
        }
        shard_of[i] = ns - 1;
        cur += b;
    }
    char path[4096], name[64];
    if (rc == 0 && ns == 1) {
        snprintf(path, sizeof path, "%s/%s", dir, E2W_SINGLE_NAME);
        rc = e2w_st_write_file(path, t, n, err, errlen);
    }
    for (int s = 0; rc == 0 && ns > 1 && s < ns; s++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (shard_of[i] == s) part[k++] = t[i];
        e2w__shard_name(name, sizeof name, s + 1, ns);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        rc = e2w_st_write_file(path, part, k, err, errlen);
    }
    if (rc == 0 && ns > 1) rc = e2w__write_index(dir, t, n, shard_of, ns, err, errlen);
    if (rc == 0) rc = e2w__remove_stale(dir, ns, err, errlen);
    if (rc == 0) rc = e2_fsync_dir(dir, err, errlen);
    free(shard_of);
    free(part);
    if (rc == 0 && n_shards) *n_shards = ns;
    return rc;
}
