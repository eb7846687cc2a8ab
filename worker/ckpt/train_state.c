/* train_state.c -- named-blob container for exact resume (layout in
 * train_state.h): atomic, checksummed writes and validating reads. */
#include "train_state.h"

#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the train-state file is little-endian and read in place");

static const char e2w__magic[8] = { 'E', '2', 'T', 'S', 'T', 'A', 'T', 'E' };
enum { E2W__VERSION = 1, E2W__HDR = 24, E2W__ENTRY = 24, E2W__SUM = 32 };

typedef struct {
    char *name;
    e2w_ts_type type;
    uint64_t count;
    const void *data;
    uint64_t value;   /* storage for e2w_ts_put_u64 */
    int inline_value; /* data is &value */
} e2w__blob;

struct e2w_ts_writer {
    e2w__blob *b;
    size_t n, cap;
};

typedef struct {
    const char *name; /* points into the map, not NUL-terminated */
    uint32_t name_len;
    e2w_ts_type type;
    uint64_t count;
    uint64_t offset;
} e2w__entry;

struct e2w_ts {
    uint8_t *map;
    size_t size;
    e2w__entry *e;
    size_t n;
    char **names; /* NUL-terminated copies for e2w_ts_entry */
    char *path;
};

const char *e2w_ts_type_name(e2w_ts_type type) {
    switch (type) {
    case E2W_TS_F32: return "f32";
    case E2W_TS_U64: return "u64";
    case E2W_TS_BYTES: return "bytes";
    }
    return "?";
}

static uint64_t e2w__elem_size(e2w_ts_type type) {
    return type == E2W_TS_F32 ? 4 : type == E2W_TS_U64 ? 8 : 1;
}

static uint64_t e2w__pad8(uint64_t x) {
    return (x + 7) & ~(uint64_t)7;
}

/* ---- writing ---- */

e2w_ts_writer *e2w_ts_writer_new(void) {
    return calloc(1, sizeof(e2w_ts_writer));
}

void e2w_ts_writer_free(e2w_ts_writer *w) {
    if (w == NULL) return;
    for (size_t i = 0; i < w->n; i++) free(w->b[i].name);
    free(w->b);
    free(w);
}

static e2w__blob *e2w__add(e2w_ts_writer *w, const char *name, e2w_ts_type type, uint64_t count,
                           char *err, size_t errlen) {
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > E2W_TS_NAME_MAX) {
        e2_errf(err, errlen, "train state: blob name must be 1..%d bytes", E2W_TS_NAME_MAX);
        return NULL;
    }
    if (type != E2W_TS_F32 && type != E2W_TS_U64 && type != E2W_TS_BYTES) {
        e2_errf(err, errlen, "train state: blob %s: unknown type %d", name, (int)type);
        return NULL;
    }
    if (count > (UINT64_MAX >> 4)) {
        e2_errf(err, errlen, "train state: blob %s: count too large", name);
        return NULL;
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->b[i].name, name) == 0) {
            e2_errf(err, errlen, "train state: blob %s put twice", name);
            return NULL;
        }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        e2w__blob *b = realloc(w->b, cap * sizeof *b);
        if (b == NULL) {
            e2_errf(err, errlen, "train state: out of memory");
            return NULL;
        }
        w->b = b;
        w->cap = cap;
    }
    e2w__blob *b = &w->b[w->n];
    memset(b, 0, sizeof *b);
    b->name = strdup(name);
    if (b->name == NULL) {
        e2_errf(err, errlen, "train state: out of memory");
        return NULL;
    }
    b->type = type;
    b->count = count;
    w->n++;
    return b;
}

int e2w_ts_put(e2w_ts_writer *w, const char *name, e2w_ts_type type, const void *data,
               uint64_t count, char *err, size_t errlen) {
    if (data == NULL && count > 0)
        return e2_errf(err, errlen, "train state: blob %s: no data", name);
    e2w__blob *b = e2w__add(w, name, type, count, err, errlen);
    if (b == NULL) return E2_ERR;
    b->data = data;
    return 0;
}

int e2w_ts_put_u64(e2w_ts_writer *w, const char *name, uint64_t value, char *err, size_t errlen) {
    e2w__blob *b = e2w__add(w, name, E2W_TS_U64, 1, err, errlen);
    if (b == NULL) return E2_ERR;
    b->value = value;
    b->inline_value = 1;
    return 0;
}

/* Writes bytes to f and into the running checksum. */
static int e2w__emit(e2_afile *f, e2_sha256_ctx *sha, const void *p, uint64_t n, char *err,
                     size_t errlen) {
    static const uint8_t zeros[8];
    if (p == NULL) p = zeros; /* padding, n < 8 */
    e2_sha256_update(sha, p, (size_t)n);
    return e2_afile_write(f, p, (size_t)n, err, errlen);
}

static void e2w__le32(uint8_t *p, uint32_t v) {
    memcpy(p, &v, 4);
}
static void e2w__le64(uint8_t *p, uint64_t v) {
    memcpy(p, &v, 8);
}

int e2w_ts_write(const e2w_ts_writer *w, const char *path, char *err, size_t errlen) {
    /* Lay out: header, entry table, blobs; offsets known before writing. */
    uint64_t off = E2W__HDR;
    for (size_t i = 0; i < w->n; i++) off += E2W__ENTRY + e2w__pad8(strlen(w->b[i].name));
    uint64_t *at = malloc((w->n ? w->n : 1) * sizeof *at);
    if (at == NULL) return e2_errf(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; i < w->n; i++) {
        at[i] = off;
        off += e2w__pad8(w->b[i].count * e2w__elem_size(w->b[i].type));
    }
    uint64_t total = off + E2W__SUM;
    e2_sha256_ctx sha;
    e2_afile f;
    if (e2_afile_open(&f, path, err, errlen) < 0) {
        free(at);
        return E2_ERR;
    }
    e2_sha256_init(&sha);
    uint8_t hdr[E2W__HDR];
    memcpy(hdr, e2w__magic, 8);
    e2w__le32(hdr + 8, E2W__VERSION);
    e2w__le32(hdr + 12, (uint32_t)w->n);
    e2w__le64(hdr + 16, total);
    int rc = e2w__emit(&f, &sha, hdr, sizeof hdr, err, errlen);
    for (size_t i = 0; i < w->n && rc == 0; i++) {
        const e2w__blob *b = &w->b[i];
        uint8_t e[E2W__ENTRY];
        uint32_t len = (uint32_t)strlen(b->name);
        e2w__le32(e, len);
        e2w__le32(e + 4, (uint32_t)b->type);
        e2w__le64(e + 8, b->count);
        e2w__le64(e + 16, at[i]);
        rc = e2w__emit(&f, &sha, e, sizeof e, err, errlen);
        if (rc == 0) rc = e2w__emit(&f, &sha, b->name, len, err, errlen);
        if (rc == 0) rc = e2w__emit(&f, &sha, NULL, e2w__pad8(len) - len, err, errlen);
    }
    for (size_t i = 0; i < w->n && rc == 0; i++) {
        const e2w__blob *b = &w->b[i];
        uint64_t n = b->count * e2w__elem_size(b->type);
        const void *p = b->inline_value ? (const void *)&b->value : b->data;
        if (n > 0) rc = e2w__emit(&f, &sha, p, n, err, errlen);
        if (rc == 0) rc = e2w__emit(&f, &sha, NULL, e2w__pad8(n) - n, err, errlen);
    }
    free(at);
    uint8_t sum[E2_SHA256_LEN];
    e2_sha256_final(&sha, sum);
    if (rc == 0) rc = e2_afile_write(&f, sum, sizeof sum, err, errlen);
    if (rc < 0) {
        e2_afile_abort(&f);
        return rc;
    }
    return e2_afile_commit(&f, err, errlen);
}

/* ---- reading ---- */

void e2w_ts_close(e2w_ts *ts) {
    if (ts == NULL) return;
    if (ts->map) munmap(ts->map, ts->size);
    for (size_t i = 0; ts->names && i < ts->n; i++) free(ts->names[i]);
    free(ts->names);
    free(ts->e);
    free(ts->path);
    free(ts);
}

static uint32_t e2w__rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t e2w__rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Checks header, size and checksum of the mapped file. */
static int e2w__verify(const e2w_ts *ts, char *err, size_t errlen) {
    const char *p = ts->path;
    if (ts->size < E2W__HDR + E2W__SUM || memcmp(ts->map, e2w__magic, 8) != 0)
        return e2_errf(err, errlen,
                       "train state %s: not a train-state file "
                       "(bad magic or too short)",
                       p);
    uint32_t ver = e2w__rd32(ts->map + 8);
    if (ver != E2W__VERSION)
        return e2_errf(err, errlen,
                       "train state %s: version %u, this e2 reads "
                       "version %d",
                       p, ver, E2W__VERSION);
    uint64_t want = e2w__rd64(ts->map + 16);
    if (want != ts->size)
        return e2_errf(err, errlen,
                       "train state %s: file is %zu bytes but its "
                       "header says %llu (truncated or corrupt)",
                       p, ts->size, (unsigned long long)want);
    uint8_t sum[E2_SHA256_LEN];
    e2_sha256(ts->map, ts->size - E2W__SUM, sum);
    if (memcmp(sum, ts->map + ts->size - E2W__SUM, E2W__SUM) != 0)
        return e2_errf(err, errlen,
                       "train state %s: checksum mismatch (file "
                       "is corrupt); resume from another checkpoint",
                       p);
    return 0;
}

/* Parses the entry table: everything within the file, blobs aligned and
 * inside the data area, names unique. */
static int e2w__parse_entries(e2w_ts *ts, char *err, size_t errlen) {
    const char *p = ts->path;
    uint32_t n = e2w__rd32(ts->map + 12);
    uint64_t end = ts->size - E2W__SUM;
    if ((uint64_t)n > end / E2W__ENTRY)
        return e2_errf(err, errlen,
                       "train state %s: entry count %u is "
                       "impossible for the file size",
                       p, n);
    ts->e = calloc(n ? n : 1, sizeof *ts->e);
    ts->names = calloc(n ? n : 1, sizeof *ts->names);
    if (ts->e == NULL || ts->names == NULL)
        return e2_errf(err, errlen, "train state %s: out of memory", p);
    uint64_t at = E2W__HDR;
    for (uint32_t i = 0; i < n; i++) {
        if (at + E2W__ENTRY > end)
            return e2_errf(err, errlen,
                           "train state %s: entry table runs past "
                           "the end",
                           p);
        e2w__entry *e = &ts->e[i];
        e->name_len = e2w__rd32(ts->map + at);
        e->type = (e2w_ts_type)e2w__rd32(ts->map + at + 4);
        e->count = e2w__rd64(ts->map + at + 8);
        e->offset = e2w__rd64(ts->map + at + 16);
        at += E2W__ENTRY;
        if (e->name_len == 0 || e->name_len > E2W_TS_NAME_MAX || at + e->name_len > end)
            return e2_errf(err, errlen,
                           "train state %s: entry %u has a bad "
                           "name length",
                           p, i);
        e->name = (const char *)ts->map + at;
        at += e2w__pad8(e->name_len);
        ts->names[i] = strndup(e->name, e->name_len);
        ts->n = i + 1;
        if (ts->names[i] == NULL) return e2_errf(err, errlen, "train state %s: out of memory", p);
        if (e->type != E2W_TS_F32 && e->type != E2W_TS_U64 && e->type != E2W_TS_BYTES)
            return e2_errf(err, errlen,
                           "train state %s: blob %s has unknown "
                           "type %u",
                           p, ts->names[i], (unsigned)e->type);
        uint64_t bytes = e->count * e2w__elem_size(e->type);
        if (e->count > end || e->offset % 8 != 0 || e->offset > end || bytes > end - e->offset)
            return e2_errf(err, errlen,
                           "train state %s: blob %s lies outside "
                           "the file",
                           p, ts->names[i]);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(ts->names[j], ts->names[i]) == 0)
                return e2_errf(err, errlen,
                               "train state %s: blob %s appears "
                               "twice",
                               p, ts->names[i]);
    }
    for (uint32_t i = 0; i < n; i++)
        if (ts->e[i].offset < at && ts->e[i].count > 0)
            return e2_errf(err, errlen,
                           "train state %s: blob %s overlaps the "
                           "entry table",
                           p, ts->names[i]);
    return 0;
}

int e2w_ts_open(e2w_ts **out, const char *path, char *err, size_t errlen) {
    *out = NULL;
    e2w_ts *ts = calloc(1, sizeof *ts);
    if (ts == NULL || (ts->path = strdup(path)) == NULL) {
        free(ts);
        return e2_errf(err, errlen, "train state %s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    int rc = 0;
    if (fd < 0)
        rc = e2_errf(err, errlen, "open train state %s: %s", path, strerror(errno));
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = e2_errf(err, errlen, "train state %s: not a regular file", path);
    else if (st.st_size < E2W__HDR + E2W__SUM)
        rc = e2_errf(err, errlen,
                     "train state %s: file is %lld bytes, too "
                     "short (truncated?)",
                     path, (long long)st.st_size);
    if (rc == 0) {
        ts->size = (size_t)st.st_size;
        void *m = mmap(NULL, ts->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            rc = e2_errf(err, errlen, "mmap %s: %s", path, strerror(errno));
        else
            ts->map = m;
    }
    if (fd >= 0) close(fd);
    if (rc == 0) rc = e2w__verify(ts, err, errlen);
    if (rc == 0) rc = e2w__parse_entries(ts, err, errlen);
    if (rc < 0) {
        e2w_ts_close(ts);
        return rc;
    }
    *out = ts;
    return 0;
}

size_t e2w_ts_count(const e2w_ts *ts) {
    return ts->n;
}

const char *e2w_ts_entry(const e2w_ts *ts, size_t i, e2w_ts_type *type, uint64_t *count) {
    if (i >= ts->n) return NULL;
    if (type) *type = ts->e[i].type;
    if (count) *count = ts->e[i].count;
    return ts->names[i];
}

int e2w_ts_get(const e2w_ts *ts, const char *name, e2w_ts_type type, const void **data,
               uint64_t *count, char *err, size_t errlen) {
    for (size_t i = 0; i < ts->n; i++) {
        if (strcmp(ts->names[i], name) != 0) continue;
        if (ts->e[i].type != type)
            return e2_errf(err, errlen,
                           "train state %s: blob %s is %s, "
                           "expected %s",
                           ts->path, name, e2w_ts_type_name(ts->e[i].type), e2w_ts_type_name(type));
        *data = ts->map + ts->e[i].offset;
        *count = ts->e[i].count;
        return 0;
    }
    return e2_errf(err, errlen, "train state %s: no blob named %s", ts->path, name);
}

int e2w_ts_read(const e2w_ts *ts, const char *name, e2w_ts_type type, void *dst, uint64_t count,
                char *err, size_t errlen) {
    const void *src;
    uint64_t n;
    if (e2w_ts_get(ts, name, type, &src, &n, err, errlen) < 0) return E2_ERR;
    if (n != count)
        return e2_errf(err, errlen,
                       "train state %s: blob %s has %llu "
                       "elements, expected %llu",
                       ts->path, name, (unsigned long long)n, (unsigned long long)count);
    if (n > 0) memcpy(dst, src, (size_t)(n * e2w__elem_size(type)));
    return 0;
}

int e2w_ts_get_u64(const e2w_ts *ts, const char *name, uint64_t *value, char *err, size_t errlen) {
    return e2w_ts_read(ts, name, E2W_TS_U64, value, 1, err, errlen);
}
