/* shard: llm.c token shard reader (mmap) and atomic writer; see shard.h. */
#include "shard.h"
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

void e2w_shard_close(e2w_shard *s) {
    if (s->map) munmap(s->map, s->map_len);
    free(s->path);
    memset(s, 0, sizeof *s);
}

/* The header decides the width; every way it can disagree with the file
 * gets its own message. */
static int sh_check(e2w_shard *s, const int32_t *h, uint64_t size, char *err, size_t errlen) {
    /* Messages name the check that failed and the expected values, never
     * the header's bytes: the file may not be a shard at all (a path into
     * someone's secrets), and its content is not ours to print. */
    const char *p = s->path;
    if (h[0] == E2W_SHARD_MAGIC_U16) {
        if (h[1] != E2W_SHARD_VERSION_U16)
            return e2_errf_rc(err, errlen, E2_EDATA,
                              "%s: bad header: uint16 token shards need version %d", p,
                              E2W_SHARD_VERSION_U16);
        s->width = 2;
    } else if (h[0] == E2W_SHARD_MAGIC_U32) {
        if (h[1] != E2W_SHARD_VERSION_U32)
            return e2_errf_rc(err, errlen, E2_EDATA,
                              "%s: bad header: uint32 token shards need version %d", p,
                              E2W_SHARD_VERSION_U32);
        s->width = 4;
    } else {
        return e2_errf_rc(err, errlen, E2_EDATA,
                          "%s: bad magic (expected %d for uint16 or %d for uint32 tokens): not an "
                          "llm.c token shard",
                          p, E2W_SHARD_MAGIC_U16, E2W_SHARD_MAGIC_U32);
    }
    if (h[2] < 0)
        return e2_errf_rc(err, errlen, E2_EDATA, "%s: bad header: negative token count", p);
    uint64_t want = E2W_SHARD_HEADER_BYTES + (uint64_t)h[2] * (uint64_t)s->width;
    if (size != want)
        return e2_errf_rc(
            err, errlen, E2_EDATA,
            "%s: size mismatch: the file's size is not the %d-byte header plus the header's token "
            "count times %d bytes (truncated or not a shard)",
            p, E2W_SHARD_HEADER_BYTES, s->width);
    s->n_tokens = (uint64_t)h[2];
    return 0;
}

int e2w_shard_open(e2w_shard *s, const char *path, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->path = strdup(path);
    if (!s->path) return e2_errf(err, errlen, "%s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int rc = e2_errf_rc(err, errlen, errno == ENOENT ? E2_NOTFOUND : E2_ERR,
                            "%s: cannot open token shard: %s", path, strerror(errno));
        e2w_shard_close(s);
        return rc;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = e2_errf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = e2_errf_rc(err, errlen, E2_EDATA, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size < E2W_SHARD_HEADER_BYTES)
        rc = e2_errf_rc(err, errlen, E2_EDATA,
                        "%s: truncated header (a shard starts with a %d-byte header)", path,
                        E2W_SHARD_HEADER_BYTES);
    if (rc == 0) {
        s->map_len = (size_t)st.st_size;
        s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (s->map == MAP_FAILED) {
            s->map = NULL;
            rc = e2_errf(err, errlen, "%s: cannot map: %s", path, strerror(errno));
        }
    }
    close(fd);
    if (rc == 0) {
        int32_t h[3];
        memcpy(h, s->map, sizeof h);
        rc = sh_check(s, h, (uint64_t)st.st_size, err, errlen);
        s->data = (const uint8_t *)s->map + E2W_SHARD_HEADER_BYTES;
    }
    if (rc) e2w_shard_close(s);
    return rc;
}

int e2w_shard_writer_open(e2w_shard_writer *w, const char *path, int width, char *err,
                          size_t errlen) {
    memset(w, 0, sizeof *w);
    if (width != 2 && width != 4)
        return e2_errf_rc(err, errlen, E2_EDATA,
                          "%s: token width must be 2 (uint16) or 4 (uint32), got %d", path, width);
    w->width = width;
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    w->path = strdup(path);
    w->tmp = malloc(n);
    if (!w->path || !w->tmp) {
        e2w_shard_writer_abort(w);
        return e2_errf(err, errlen, "%s: out of memory", path);
    }
    snprintf(w->tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        int rc = e2_errf(err, errlen, "%s: cannot create %s: %s", path, w->tmp, strerror(errno));
        free(w->tmp);
        w->tmp = NULL;
        e2w_shard_writer_abort(w);
        return rc;
    }
    /* mkstemp creates 0600; shards are data for every user of the job. */
    if (fchmod(fd, 0644) != 0) {
        int rc = e2_errf(err, errlen, "%s: cannot chmod %s: %s", path, w->tmp, strerror(errno));
        close(fd);
        e2w_shard_writer_abort(w);
        return rc;
    }
    w->f = fdopen(fd, "wb");
    static const int32_t zero[E2W_SHARD_HEADER_INTS];
    if (!w->f || fwrite(zero, 4, E2W_SHARD_HEADER_INTS, w->f) != E2W_SHARD_HEADER_INTS) {
        if (!w->f) close(fd);
        e2w_shard_writer_abort(w);
        return e2_errf(err, errlen, "%s: cannot write the header", path);
    }
    return 0;
}

int e2w_shard_writer_append(e2w_shard_writer *w, const uint32_t *tokens, size_t n, char *err,
                            size_t errlen) {
    if (w->n_tokens + n > E2W_SHARD_MAX_TOKENS)
        return e2_errf_rc(err, errlen, E2_EDATA, "%s: more than %u tokens in one shard", w->path,
                          E2W_SHARD_MAX_TOKENS);
    uint8_t buf[8192];
    size_t per = sizeof buf / (size_t)w->width;
    for (size_t i = 0; i < n; i += per) {
        size_t m = n - i < per ? n - i : per;
        for (size_t k = 0; k < m; k++) {
            uint32_t t = tokens[i + k];
            if (w->width == 2) {
                if (t > 0xFFFF)
                    return e2_errf_rc(
                        err, errlen, E2_EDATA,
                        "%s: token %u at %llu does not fit uint16 (use 4-byte tokens)", w->path, t,
                        (unsigned long long)(w->n_tokens + i + k));
                uint16_t v = (uint16_t)t;
                memcpy(buf + k * 2, &v, 2);
            } else {
                memcpy(buf + k * 4, &t, 4);
            }
        }
        if (fwrite(buf, (size_t)w->width, m, w->f) != m)
            return e2_errf(err, errlen, "%s: write failed: %s", w->tmp, strerror(errno));
    }
    w->n_tokens += n;
    return 0;
}

static int sh_fsync_dir(const char *path) {
    char *d = strdup(path);
    if (!d) return E2_ERR;
    char *slash = strrchr(d, '/');
    const char *dir = ".";
    if (slash == d)
        dir = "/";
    else if (slash) {
        *slash = '\0';
        dir = d;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = fd < 0 || fsync(fd) != 0 ? E2_ERR : 0;
    if (fd >= 0) close(fd);
    free(d);
    return rc;
}

int e2w_shard_writer_commit(e2w_shard_writer *w, char *err, size_t errlen) {
    int32_t h[3] = { w->width == 2 ? E2W_SHARD_MAGIC_U16 : E2W_SHARD_MAGIC_U32,
                     w->width == 2 ? E2W_SHARD_VERSION_U16 : E2W_SHARD_VERSION_U32,
                     (int32_t)w->n_tokens };
    int rc = 0;
    if (fflush(w->f) != 0 || fseek(w->f, 0, SEEK_SET) != 0 || fwrite(h, 4, 3, w->f) != 3 ||
        fflush(w->f) != 0 || fsync(fileno(w->f)) != 0)
        rc = e2_errf(err, errlen, "%s: cannot write %s: %s", w->path, w->tmp, strerror(errno));
    if (fclose(w->f) != 0 && rc == 0)
        rc = e2_errf(err, errlen, "%s: close failed: %s", w->tmp, strerror(errno));
    w->f = NULL;
    if (rc == 0 && rename(w->tmp, w->path) != 0)
        rc = e2_errf(err, errlen, "%s: cannot rename %s into place: %s", w->path, w->tmp,
                     strerror(errno));
    if (rc == 0 && sh_fsync_dir(w->path) != 0)
        rc = e2_errf(err, errlen, "%s: cannot fsync its folder", w->path);
    if (rc == 0) {
        free(w->tmp);
        w->tmp = NULL;
    }
    e2w_shard_writer_abort(w);
    return rc;
}

void e2w_shard_writer_abort(e2w_shard_writer *w) {
    if (w->f) fclose(w->f);
    if (w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
    memset(w, 0, sizeof *w);
}

int e2w_shard_write(const char *path, const uint32_t *tokens, size_t n, int width, char *err,
                    size_t errlen) {
    e2w_shard_writer w;
    int rc = e2w_shard_writer_open(&w, path, width, err, errlen);
    if (rc) return rc;
    if ((rc = e2w_shard_writer_append(&w, tokens, n, err, errlen))) {
        e2w_shard_writer_abort(&w);
        return rc;
    }
    return e2w_shard_writer_commit(&w, err, errlen);
}
