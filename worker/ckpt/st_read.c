/* st_read.c -- validating safetensors reader (single file or sharded
 * checkpoint directory) and the exact bf16/fp16 -> fp32 conversions.
 * See safetensors.h for what is validated; every check here happens before
 * any tensor byte is read, so a bad file fails with a message, never a
 * crash or an out-of-bounds read. */
#include "safetensors.h"

#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors data is little-endian; e2 reads it in place");

#define E2W_INDEX_NAME  "model.safetensors.index.json"
#define E2W_SINGLE_NAME "model.safetensors"

typedef struct {
    char *path;
    uint8_t *map; /* whole file, read-only */
    size_t size;
    const uint8_t *data; /* data section: map + 8 + header length */
    uint64_t data_len;
} e2w__file;

typedef struct {
    e2w_st_tensor_info info;
    size_t file;    /* index into e2w_st.files */
    uint64_t begin; /* offsets within the data section */
    uint64_t end;
} e2w__tensor;

struct e2w_st {
    e2w__file *files;
    size_t nfiles;
    e2w__tensor *t; /* sorted by name */
    size_t n;
    char *path; /* what e2w_st_open was given, for messages */
};

const char *e2w_dtype_name(e2w_dtype dt) {
    switch (dt) {
    case E2W_DT_F32: return "F32";
    case E2W_DT_BF16: return "BF16";
    case E2W_DT_F16: return "F16";
    }
    return "?";
}

size_t e2w_dtype_size(e2w_dtype dt) {
    return dt == E2W_DT_F32 ? 4 : 2;
}

float e2w_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float e2w_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); /* inf, NaN (payload kept) */
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    } else if (man == 0) {
        u = sign; /* +-0 */
    } else {
        /* Subnormal: value man * 2^-24; normalise into fp32. */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while ((man & 0x400) == 0);
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t e2w_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

/* ---- helpers ---- */

static char *e2w__join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p == NULL) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* Formats shape as "[a, b, c]" into buf. */
static void e2w__fmt_shape(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

static int e2w__dtype_parse(const char *s, e2w_dtype *dt) {
    if (strcmp(s, "F32") == 0)
        *dt = E2W_DT_F32;
    else if (strcmp(s, "BF16") == 0)
        *dt = E2W_DT_BF16;
    else if (strcmp(s, "F16") == 0)
        *dt = E2W_DT_F16;
    else
        return E2_ERR;
    return 0;
}

/* dtypes of the safetensors format that e2 knows but does not read. */
static int e2w__dtype_known(const char *s) {
    static const char *const known[] = { "BOOL",    "U8",      "I8",      "I16",     "U16",
                                         "I32",     "U32",     "I64",     "U64",     "F64",
                                         "C64",     "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3",
                                         "F6_E3M2", "F4" };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s, known[i]) == 0) return 1;
    return 0;
}

/* Non-negative JSON integer, or E2_ERR. */
static int64_t e2w__json_uint(const json_t *v) {
    if (!json_is_integer(v)) return E2_ERR;
    json_int_t x = json_integer_value(v);
    return x < 0 ? E2_ERR : (int64_t)x;
}

/* ---- one file ---- */

static int e2w__map_file(e2w__file *f, const char *path, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->path = malloc(strlen(path) + 1);
    if (f->path == NULL) return e2_errf(err, errlen, "%s: out of memory", path);
    strcpy(f->path, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return e2_errf(err, errlen, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return e2_errf(err, errlen, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        return e2_errf(err, errlen,
                       "%s: file is %zu bytes, too short for the 8-byte "
                       "safetensors header length",
                       path, f->size);
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return e2_errf(err, errlen, "mmap %s: %s", path, strerror(errno));
    f->map = m;
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n > f->size - 8)
        return e2_errf(err, errlen,
                       "%s: the 8-byte header length runs past the end of the "
                       "file: truncated or not a safetensors file",
                       path);
    if (n > E2W_ST_MAX_HEADER)
        return e2_errf(err, errlen,
                       "%s: the header length exceeds the %u "
                       "byte limit (not a safetensors file?)",
                       path, E2W_ST_MAX_HEADER);
    f->data = f->map + 8 + n;
    f->data_len = f->size - 8 - n;
    return 0;
}

static void e2w__unmap_file(e2w__file *f) {
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

static int e2w__cmp_begin(const void *a, const void *b) {
    const e2w__tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int e2w__cmp_name(const void *a, const void *b) {
    const e2w__tensor *x = a, *y = b;
    return strcmp(x->info.name, y->info.name);
}

/* Validates one tensor entry of file f's header into t. */
static int e2w__parse_entry(const e2w__file *f, const char *name, json_t *v, e2w__tensor *t,
                            char *err, size_t errlen) {
    const char *p = f->path;
    if (name[0] == '\0') return e2_errf(err, errlen, "%s: tensor with an empty name", p);
    if (!json_is_object(v))
        return e2_errf(err, errlen, "%s: tensor %s: entry is not a JSON object", p, name);
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return e2_errf(err, errlen,
                           "%s: tensor %s: unexpected field '%s' "
                           "(expected dtype, shape, data_offsets)",
                           p, name, key);
    }
    json_t *dt = json_object_get(v, "dtype");
    json_t *sh = json_object_get(v, "shape");
    json_t *off = json_object_get(v, "data_offsets");
    if (!json_is_string(dt))
        return e2_errf(err, errlen, "%s: tensor %s: missing or non-string dtype", p, name);
    const char *ds = json_string_value(dt);
    if (e2w__dtype_parse(ds, &t->info.dtype) < 0) {
        if (e2w__dtype_known(ds))
            return e2_errf(err, errlen,
                           "%s: tensor %s: dtype %s is not "
                           "supported (e2 reads F32, BF16, F16)",
                           p, name, ds);
        return e2_errf(err, errlen, "%s: tensor %s: unknown dtype '%s'", p, name, ds);
    }
    if (!json_is_array(sh) || json_array_size(sh) > E2W_ST_MAX_DIMS)
        return e2_errf(err, errlen,
                       "%s: tensor %s: shape must be an array of "
                       "at most %d non-negative integers",
                       p, name, E2W_ST_MAX_DIMS);
    t->info.ndim = (int)json_array_size(sh);
    uint64_t numel = 1;
    for (int i = 0; i < t->info.ndim; i++) {
        int64_t d = e2w__json_uint(json_array_get(sh, (size_t)i));
        if (d < 0)
            return e2_errf(err, errlen,
                           "%s: tensor %s: shape[%d] is not a "
                           "non-negative integer",
                           p, name, i);
        t->info.shape[i] = d;
        if (d != 0 && numel > UINT64_MAX / (uint64_t)d / 4)
            return e2_errf(err, errlen, "%s: tensor %s: shape overflows", p, name);
        numel *= (uint64_t)d;
    }
    t->info.numel = numel;
    if (!json_is_array(off) || json_array_size(off) != 2)
        return e2_errf(err, errlen,
                       "%s: tensor %s: data_offsets must be "
                       "[begin, end]",
                       p, name);
    int64_t b = e2w__json_uint(json_array_get(off, 0));
    int64_t e = e2w__json_uint(json_array_get(off, 1));
    if (b < 0 || e < 0 || b > e)
        return e2_errf(err, errlen,
                       "%s: tensor %s: data_offsets must be "
                       "non-negative integers with begin <= end",
                       p, name);
    if ((uint64_t)e > f->data_len)
        return e2_errf(err, errlen,
                       "%s: tensor %s: data_offsets [%lld, %lld] "
                       "run past the data section (%llu bytes)",
                       p, name, (long long)b, (long long)e, (unsigned long long)f->data_len);
    uint64_t want = numel * e2w_dtype_size(t->info.dtype);
    if ((uint64_t)(e - b) != want) {
        char s[160];
        e2w__fmt_shape(s, sizeof s, t->info.ndim, t->info.shape);
        return e2_errf(err, errlen,
                       "%s: tensor %s: shape %s of %s needs %llu "
                       "bytes but data_offsets span %lld",
                       p, name, s, ds, (unsigned long long)want, (long long)(e - b));
    }
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    t->info.name = strdup(name);
    t->info.file = f->path;
    if (t->info.name == NULL) return e2_errf(err, errlen, "%s: out of memory", p);
    return 0;
}

/* The tensors of one file must tile its data section: sorted by offset,
 * each starts where the previous ended, the last ends at the section end. */
static int e2w__check_tiling(const e2w__file *f, e2w__tensor *t, size_t n, char *err,
                             size_t errlen) {
    qsort(t, n, sizeof *t, e2w__cmp_begin);
    uint64_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i].begin < at)
            return e2_errf(err, errlen,
                           "%s: tensors %s and %s overlap "
                           "(data_offsets [%llu, %llu] and [%llu, %llu])",
                           f->path, t[i - 1].info.name, t[i].info.name,
                           (unsigned long long)t[i - 1].begin, (unsigned long long)t[i - 1].end,
                           (unsigned long long)t[i].begin, (unsigned long long)t[i].end);
        if (t[i].begin > at)
            return e2_errf(err, errlen,
                           "%s: %llu unused bytes before tensor %s "
                           "(data_offsets must be contiguous)",
                           f->path, (unsigned long long)(t[i].begin - at), t[i].info.name);
        at = t[i].end;
    }
    if (at != f->data_len)
        return e2_errf(err, errlen,
                       "%s: %llu bytes after the last tensor "
                       "(data section is %llu bytes, tensors cover %llu)",
                       f->path, (unsigned long long)(f->data_len - at),
                       (unsigned long long)f->data_len, (unsigned long long)at);
    return 0;
}

static void e2w__free_tensors(e2w__tensor *t, size_t n) {
    for (size_t i = 0; i < n; i++) free((char *)t[i].info.name);
    free(t);
}

/* Parses and validates file st->files[fi], appending its tensors to st->t. */
static int e2w__parse_file(e2w_st *st, size_t fi, char *err, size_t errlen) {
    const e2w__file *f = &st->files[fi];
    uint64_t hlen = (uint64_t)(f->data - f->map) - 8;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL)
        return e2_errf(err, errlen,
                       "%s: header is not valid JSON (header "
                       "byte %d)",
                       f->path, je.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return e2_errf(err, errlen, "%s: header is not a JSON object", f->path);
    }
    size_t cap = json_object_size(root);
    e2w__tensor *t = calloc(cap ? cap : 1, sizeof *t);
    size_t n = 0;
    int rc = t ? 0 : e2_errf(err, errlen, "%s: out of memory", f->path);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (rc < 0) break;
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v))
                rc = e2_errf(err, errlen,
                             "%s: __metadata__ is not a JSON "
                             "object",
                             f->path);
            else
                json_object_foreach(v, mk, mv) {
                    if (rc == 0 && !json_is_string(mv))
                        rc = e2_errf(err, errlen,
                                     "%s: __metadata__.%s is not "
                                     "a string",
                                     f->path, mk);
                }
            continue;
        }
        t[n].file = fi;
        rc = e2w__parse_entry(f, key, v, &t[n], err, errlen);
        if (t[n].info.name) n++;
    }
    json_decref(root);
    if (rc == 0) rc = e2w__check_tiling(f, t, n, err, errlen);
    if (rc == 0) {
        e2w__tensor *all = realloc(st->t, (st->n + n + 1) * sizeof *all);
        if (all == NULL) {
            rc = e2_errf(err, errlen, "%s: out of memory", f->path);
        } else {
            st->t = all;
            memcpy(st->t + st->n, t, n * sizeof *t);
            st->n += n;
            free(t);
            return 0;
        }
    }
    e2w__free_tensors(t, n);
    return rc;
}

static int e2w__add_file(e2w_st *st, const char *path, char *err, size_t errlen) {
    e2w__file *fs = realloc(st->files, (st->nfiles + 1) * sizeof *fs);
    if (fs == NULL) return e2_errf(err, errlen, "%s: out of memory", path);
    st->files = fs;
    int rc = e2w__map_file(&fs[st->nfiles], path, err, errlen);
    st->nfiles++; /* counted even on failure so that close unmaps it */
    if (rc < 0) return rc;
    return e2w__parse_file(st, st->nfiles - 1, err, errlen);
}

void e2w_st_close(e2w_st *st) {
    if (st == NULL) return;
    for (size_t i = 0; i < st->nfiles; i++) e2w__unmap_file(&st->files[i]);
    free(st->files);
    e2w__free_tensors(st->t, st->n);
    free(st->path);
    free(st);
}

/* A shard name from weight_map must be a plain file in the checkpoint
 * directory: no path separators, not "." or "..". */
static int e2w__plain_name(const char *s) {
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int e2w__ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static size_t e2w__base_len(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? (size_t)(s - path) + 1 : 0;
}

/* File name (without directory) of st->files[k]. */
static const char *e2w__file_base(const e2w_st *st, size_t k) {
    const char *p = st->files[k].path;
    return p + e2w__base_len(p);
}

/* Opens every shard named by the index and cross-checks the weight_map. */
static int e2w__open_index(e2w_st *st, const char *dir, const char *index, char *err,
                           size_t errlen) {
    char *text;
    size_t len;
    if (e2_read_file(index, E2W_ST_MAX_HEADER, &text, &len, err, errlen) < 0) return E2_ERR;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (root == NULL)
        return e2_errf(err, errlen, "%s: not valid JSON (line %d, column %d)", index, je.line,
                       je.column);
    int rc = 0;
    json_t *wm = json_object_get(root, "weight_map");
    json_t *md = json_object_get(root, "metadata");
    if (!json_is_object(wm))
        rc = e2_errf(err, errlen, "%s: missing \"weight_map\" object", index);
    else if (md != NULL && !json_is_object(md))
        rc = e2_errf(err, errlen, "%s: \"metadata\" is not an object", index);
    const char *name;
    json_t *v;
    if (rc == 0) {
        json_object_foreach(wm, name, v) {
            if (!json_is_string(v) || !e2w__plain_name(json_string_value(v))) {
                rc = e2_errf(err, errlen,
                             "%s: weight_map[\"%s\"] must be the "
                             "file name of a shard in the same directory",
                             index, name);
                break;
            }
            const char *shard = json_string_value(v);
            size_t k = 0;
            while (k < st->nfiles && strcmp(e2w__file_base(st, k), shard) != 0) k++;
            if (k < st->nfiles) continue;
            char *path = e2w__join(dir, shard);
            if (path == NULL) {
                rc = e2_errf(err, errlen, "%s: out of memory", index);
                break;
            }
            rc = e2w__add_file(st, path, err, errlen);
            free(path);
            if (rc < 0) break;
        }
    }
    if (rc == 0 && st->n > 1) qsort(st->t, st->n, sizeof *st->t, e2w__cmp_name);
    for (size_t i = 0; rc == 0 && i < st->n; i++) {
        json_t *want = json_object_get(wm, st->t[i].info.name);
        const char *shard = e2w__file_base(st, st->t[i].file);
        if (i > 0 && strcmp(st->t[i - 1].info.name, st->t[i].info.name) == 0)
            rc = e2_errf(err, errlen, "%s: tensor %s is in both %s and %s", index,
                         st->t[i].info.name, e2w__file_base(st, st->t[i - 1].file), shard);
        else if (want == NULL)
            rc = e2_errf(err, errlen,
                         "%s: shard %s holds tensor %s, which "
                         "weight_map does not list",
                         index, shard, st->t[i].info.name);
        else if (strcmp(json_string_value(want), shard) != 0)
            rc = e2_errf(err, errlen,
                         "%s: tensor %s is in %s but weight_map "
                         "says %s",
                         index, st->t[i].info.name, shard, json_string_value(want));
    }
    if (rc == 0) {
        json_object_foreach(wm, name, v) {
            if (e2w_st_find(st, name) == NULL) {
                rc = e2_errf(err, errlen,
                             "%s: weight_map lists tensor %s in %s, "
                             "but that shard has no such tensor",
                             index, name, json_string_value(v));
                break;
            }
        }
    }
    json_decref(root);
    return rc;
}

int e2w_st_open(e2w_st **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    e2w_st *st = calloc(1, sizeof *st);
    if (st != NULL) st->path = strdup(path);
    if (st == NULL || st->path == NULL) {
        free(st);
        return e2_errf(err, errlen, "%s: out of memory", path);
    }
    struct stat sb;
    int rc;
    if (stat(path, &sb) != 0) {
        rc = e2_errf(err, errlen, "open checkpoint %s: %s", path, strerror(errno));
    } else if (!S_ISDIR(sb.st_mode) && e2w__ends_with(path, ".index.json")) {
        size_t k = e2w__base_len(path);
        char *dir = strdup(k ? path : ".");
        if (dir == NULL)
            rc = e2_errf(err, errlen, "%s: out of memory", path);
        else {
            if (k > 1)
                dir[k - 1] = '\0'; /* "/x.json" keeps "/" */
            else if (k == 1)
                dir[1] = '\0';
            rc = e2w__open_index(st, dir, path, err, errlen);
        }
        free(dir);
    } else if (!S_ISDIR(sb.st_mode)) {
        rc = e2w__add_file(st, path, err, errlen);
        if (rc == 0 && st->n > 1) qsort(st->t, st->n, sizeof *st->t, e2w__cmp_name);
    } else {
        char *index = e2w__join(path, E2W_INDEX_NAME);
        char *single = e2w__join(path, E2W_SINGLE_NAME);
        if (index == NULL || single == NULL)
            rc = e2_errf(err, errlen, "%s: out of memory", path);
        else if (access(single, F_OK) == 0) {
            rc = e2w__add_file(st, single, err, errlen);
            if (rc == 0 && st->n > 1) qsort(st->t, st->n, sizeof *st->t, e2w__cmp_name);
        } else if (access(index, F_OK) == 0)
            rc = e2w__open_index(st, path, index, err, errlen);
        else
            rc = e2_errf(err, errlen, "%s: no %s or %s in this directory", path, E2W_SINGLE_NAME,
                         E2W_INDEX_NAME);
        free(index);
        free(single);
    }
    if (rc < 0) {
        e2w_st_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

size_t e2w_st_count(const e2w_st *st) {
    return st->n;
}

const e2w_st_tensor_info *e2w_st_tensor(const e2w_st *st, size_t i) {
    return i < st->n ? &st->t[i].info : NULL;
}

static const e2w__tensor *e2w__find(const e2w_st *st, const char *name) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->t[mid].info.name, name);
        if (c == 0) return &st->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const e2w_st_tensor_info *e2w_st_find(const e2w_st *st, const char *name) {
    const e2w__tensor *t = e2w__find(st, name);
    return t ? &t->info : NULL;
}

int e2w_st_read_f32(const e2w_st *st, const char *name, int ndim, const int64_t *shape, float *dst,
                    char *err, size_t errlen) {
    const e2w__tensor *t = e2w__find(st, name);
    if (t == NULL) return e2_errf(err, errlen, "%s: no tensor named %s", st->path, name);
    int same = t->info.ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->info.shape[i] == shape[i];
    if (!same) {
        char got[160], want[160];
        e2w__fmt_shape(got, sizeof got, t->info.ndim, t->info.shape);
        e2w__fmt_shape(want, sizeof want, ndim, shape);
        return e2_errf(err, errlen, "%s: tensor %s has shape %s, expected %s", t->info.file, name,
                       got, want);
    }
    const uint8_t *src = st->files[t->file].data + t->begin;
    uint64_t n = t->info.numel;
    if (n == 0) return 0;
    switch (t->info.dtype) {
    case E2W_DT_F32: memcpy(dst, src, n * 4); break;
    case E2W_DT_BF16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = e2w_bf16_to_f32(h);
        }
        break;
    case E2W_DT_F16:
        for (uint64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = e2w_f16_to_f32(h);
        }
        break;
    }
    /* A NaN or Inf weight only shows later as a nan loss: refuse it here,
     * naming the tensor (exponent bits all ones is Inf or NaN in fp32). */
    for (uint64_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, dst + i, 4);
        if ((bits & 0x7f800000u) == 0x7f800000u)
            return e2_errf(err, errlen,
                           "%s: tensor %s holds a non-finite value "
                           "(%s at element %llu): the weights are corrupt or "
                           "diverged",
                           t->info.file, name,
                           (bits & 0x007fffffu) ? "NaN"
                           : (bits >> 31)       ? "-Inf"
                                                : "Inf",
                           (unsigned long long)i);
    }
    return 0;
}

/* Element i of t as fp32 (exact for every stored dtype). */
static float e2w__elem(const e2w_st *st, const e2w__tensor *t, uint64_t i) {
    const uint8_t *src = st->files[t->file].data + t->begin;
    uint16_t h;
    float f;
    switch (t->info.dtype) {
    case E2W_DT_BF16: memcpy(&h, src + 2 * i, 2); return e2w_bf16_to_f32(h);
    case E2W_DT_F16: memcpy(&h, src + 2 * i, 2); return e2w_f16_to_f32(h);
    case E2W_DT_F32:
    default: memcpy(&f, src + 4 * i, 4); return f;
    }
}

int e2w_st_same_values(const e2w_st *st, const char *a, const char *b, int *same, char *err,
                       size_t errlen) {
    const e2w__tensor *ta = e2w__find(st, a), *tb = e2w__find(st, b);
    *same = 0;
    if (ta == NULL || tb == NULL)
        return e2_errf(err, errlen, "%s: no tensor named %s", st->path, ta == NULL ? a : b);
    if (ta->info.ndim != tb->info.ndim) return 0;
    for (int d = 0; d < ta->info.ndim; d++)
        if (ta->info.shape[d] != tb->info.shape[d]) return 0;
    for (uint64_t i = 0; i < ta->info.numel; i++) {
        float x = e2w__elem(st, ta, i), y = e2w__elem(st, tb, i);
        if (memcmp(&x, &y, 4) != 0) return 0;
    }
    *same = 1;
    return 0;
}
