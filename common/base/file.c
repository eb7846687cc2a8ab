/* file.c -- durable file operations of e2_base: error lines, mkdir -p,
 * directory fsync, atomic writes (whole buffer or streamed), bounded reads.
 * See base.h for the error convention and the atomic-write protocol. */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void e2__verrf(char *err, size_t errlen, const char *fmt, va_list ap) {
    if (err == NULL || errlen == 0) return;
    vsnprintf(err, errlen, fmt, ap);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int e2_errf(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e2__verrf(err, errlen, fmt, ap);
    va_end(ap);
    return E2_ERR;
}

int e2_errf_rc(char *err, size_t errlen, int rc, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    e2__verrf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

static char *e2__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

int e2_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen) {
    if (path == NULL || path[0] == '\0') return e2_errf(err, errlen, "mkdir: empty path");
    char *p = e2__strdup(path);
    if (p == NULL) return e2_errf(err, errlen, "mkdir %s: out of memory", path);
    /* Create each prefix ending at a '/', then the whole path. */
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0') continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, mode) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = e2_errf(err, errlen, "mkdir %s: %s", p, strerror(e));
            free(p);
            return rc;
        }
        *s = saved;
        if (saved == '\0') break;
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0) return e2_errf(err, errlen, "mkdir %s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return e2_errf(err, errlen, "mkdir %s: exists and is not a directory", path);
    return 0;
}

int e2_fsync_dir(const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return e2_errf(err, errlen, "open directory %s: %s", path, strerror(errno));
    int rc = 0;
    /* EINVAL: the filesystem cannot sync directories (some network and
     * FUSE filesystems); there is nothing more to do. */
    if (fsync(fd) != 0 && errno != EINVAL)
        rc = e2_errf(err, errlen, "fsync directory %s: %s", path, strerror(errno));
    close(fd);
    return rc;
}

int e2_fsync_parent(const char *path, char *err, size_t errlen) {
    const char *slash = strrchr(path, '/');
    if (slash == NULL) return e2_fsync_dir(".", err, errlen);
    if (slash == path) return e2_fsync_dir("/", err, errlen);
    size_t n = (size_t)(slash - path);
    char *dir = malloc(n + 1);
    if (dir == NULL) return e2_errf(err, errlen, "fsync %s: out of memory", path);
    memcpy(dir, path, n);
    dir[n] = '\0';
    int rc = e2_fsync_dir(dir, err, errlen);
    free(dir);
    return rc;
}

static void e2__afile_release(e2_afile *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    free(f->path);
    free(f->tmp);
    f->path = f->tmp = NULL;
}

int e2_afile_open(e2_afile *f, const char *path, char *err, size_t errlen) {
    f->fd = -1;
    f->written = 0;
    f->path = e2__strdup(path);
    size_t n = strlen(path) + 32;
    f->tmp = malloc(n);
    if (f->path == NULL || f->tmp == NULL) {
        e2__afile_release(f);
        return e2_errf(err, errlen, "write %s: out of memory", path);
    }
    snprintf(f->tmp, n, "%s.tmp.%ld", path, (long)getpid());
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int rc = e2_errf(err, errlen, "create %s: %s", f->tmp, strerror(errno));
        e2__afile_release(f);
        return rc;
    }
    return 0;
}

int e2_afile_write(e2_afile *f, const void *data, size_t len, char *err, size_t errlen) {
    const char *p = data;
    while (len > 0) {
        ssize_t w = write(f->fd, p, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            return e2_errf(err, errlen, "write %s: %s", f->tmp, strerror(errno));
        }
        p += w;
        len -= (size_t)w;
        f->written += (uint64_t)w;
    }
    return 0;
}

int e2_afile_pad(e2_afile *f, size_t n, char *err, size_t errlen) {
    static const char zeros[64];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (e2_afile_write(f, zeros, k, err, errlen) < 0) return E2_ERR;
        n -= k;
    }
    return 0;
}

int e2_afile_commit(e2_afile *f, char *err, size_t errlen) {
    int rc = 0;
    if (fsync(f->fd) != 0) rc = e2_errf(err, errlen, "fsync %s: %s", f->tmp, strerror(errno));
    if (close(f->fd) != 0 && rc == 0)
        rc = e2_errf(err, errlen, "close %s: %s", f->tmp, strerror(errno));
    f->fd = -1;
    if (rc == 0 && rename(f->tmp, f->path) != 0)
        rc = e2_errf(err, errlen, "rename %s -> %s: %s", f->tmp, f->path, strerror(errno));
    if (rc == 0)
        rc = e2_fsync_parent(f->path, err, errlen);
    else
        unlink(f->tmp);
    e2__afile_release(f);
    return rc;
}

void e2_afile_abort(e2_afile *f) {
    if (f->tmp != NULL) unlink(f->tmp);
    e2__afile_release(f);
}

int e2_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen) {
    e2_afile f;
    if (e2_afile_open(&f, path, err, errlen) < 0) return E2_ERR;
    if (e2_afile_write(&f, data, len, err, errlen) < 0) {
        e2_afile_abort(&f);
        return E2_ERR;
    }
    return e2_afile_commit(&f, err, errlen);
}

int e2_read_file(const char *path, size_t max_size, char **out, size_t *len, char *err,
                 size_t errlen) {
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        e2_errf(err, errlen, "open %s: %s", path, strerror(e));
        return e == ENOENT ? E2_NOTFOUND : E2_ERR;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = e2_errf(err, errlen, "stat %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return e2_errf(err, errlen, "read %s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_size) {
        close(fd);
        e2_errf(err, errlen, "read %s: file is %lld bytes, limit is %zu", path,
                (long long)st.st_size, max_size);
        return E2_ETOOBIG;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (buf == NULL) {
        close(fd);
        return e2_errf(err, errlen, "read %s: out of memory (%zu bytes)", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int rc = e2_errf(err, errlen, "read %s: %s", path, strerror(errno));
            free(buf);
            close(fd);
            return rc;
        }
        if (r == 0) break; /* file shrank while reading: return what exists */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int e2_read_config_json(const char *path, size_t max_size, char *file, size_t filelen, char **out,
                        size_t *len, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        snprintf(file, filelen, "%s/config.json", path);
    else
        snprintf(file, filelen, "%s", path);
    return e2_read_file(file, max_size, out, len, err, errlen);
}
