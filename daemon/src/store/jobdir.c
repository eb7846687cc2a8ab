/* jobdir.c -- the files of a job directory: creation, per-rank logs,
 * metrics lines, eval results and the two-phase checkpoint commit. */
/* nftw() is an XSI function. */
#define _XOPEN_SOURCE 700
#include "jobdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"

void e2_jobdir_path(const char *state_dir, const char *id, char *out) {
    snprintf(out, E2_JOBDIR_PATHLEN, "%s/jobs/%s", state_dir, id);
}

static int jobdir_append(const char *path, const char *data, size_t len, char *err, size_t errlen);

/* spec.json is a copy for people and tools; the record is the database
 * (and workers get the spec in their Assignment), so it is written without
 * an fsync: a SubmitJob then costs one fsync, the database's. */
int e2_jobdir_create(const char *state_dir, const char *id, const char *spec_json, char *err,
                     size_t errlen) {
    char dir[E2_JOBDIR_PATHLEN], p[E2_JOBDIR_PATHLEN + 32];
    e2_jobdir_path(state_dir, id, dir);
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    if (e2_mkdir_p(p, 0755, err, errlen) < 0) return E2_ERR;
    snprintf(p, sizeof p, "%s/spec.json", dir);
    unlink(p);
    return jobdir_append(p, spec_json, strlen(spec_json), err, errlen);
}

static int jobdir_rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int jobdir_rmtree(const char *path, char *err, size_t errlen) {
    if (nftw(path, jobdir_rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
        return e2_errf(err, errlen, "remove %s: %s", path, strerror(errno));
    return 0;
}

int e2_jobdir_attempt_start(const char *state_dir, const char *id, int attempt, char *err,
                            size_t errlen) {
    char dir[E2_JOBDIR_PATHLEN], p[E2_JOBDIR_PATHLEN + 300];
    DIR *d;
    struct dirent *e;
    e2_jobdir_path(state_dir, id, dir);
    snprintf(p, sizeof p, "%s/attempt-%d", dir, attempt);
    if (e2_mkdir_p(p, 0755, err, errlen) < 0) return E2_ERR;
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    if (e2_mkdir_p(p, 0755, err, errlen) < 0) return E2_ERR;
    if (!(d = opendir(p))) return e2_errf(err, errlen, "open %s: %s", p, strerror(errno));
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".tmp")) {
            char t[E2_JOBDIR_PATHLEN + 600];
            snprintf(t, sizeof t, "%s/%s", p, e->d_name);
            if (jobdir_rmtree(t, err, errlen) < 0) {
                closedir(d);
                return E2_ERR;
            }
        }
    }
    closedir(d);
    return 0;
}

void e2_jobdir_log_path(const char *state_dir, const char *id, int attempt, int rank, char *out) {
    snprintf(out, E2_JOBDIR_PATHLEN, "%s/jobs/%s/attempt-%d/rank-%d.log", state_dir, id, attempt,
             rank);
}

static int jobdir_append(const char *path, const char *data, size_t len, char *err, size_t errlen) {
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return e2_errf(err, errlen, "open %s: %s", path, strerror(errno));
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            close(fd);
            return e2_errf(err, errlen, "write %s: %s", path, strerror(errno));
        }
        data += w;
        len -= (size_t)w;
    }
    close(fd);
    return 0;
}

int e2_jobdir_log_append(const char *state_dir, const char *id, int attempt, int rank,
                         char *const *lines, size_t n, char *err, size_t errlen) {
    char p[E2_JOBDIR_PATHLEN], *buf;
    size_t len = 0, off = 0;
    int rc;
    if (!n) return 0;
    for (size_t i = 0; i < n; i++) len += strlen(lines[i]) + 1;
    if (!(buf = malloc(len))) return e2_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(lines[i]);
        memcpy(buf + off, lines[i], l);
        off += l;
        buf[off++] = '\n';
    }
    e2_jobdir_log_path(state_dir, id, attempt, rank, p);
    rc = jobdir_append(p, buf, len, err, errlen);
    free(buf);
    return rc;
}

/* Reads at most the last 16 KiB: enough for the lines a failure report
 * shows, and bounded however large the log grew. */
int e2_jobdir_log_tail(const char *state_dir, const char *id, int attempt, int rank, char **lines,
                       int max) {
    char p[E2_JOBDIR_PATHLEN], buf[16384];
    int fd, n = 0;
    ssize_t len;
    off_t size;
    char *end, *start;
    e2_jobdir_log_path(state_dir, id, attempt, rank, p);
    if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0) return 0;
    size = lseek(fd, 0, SEEK_END);
    if (size > (off_t)sizeof buf - 1)
        lseek(fd, size - (off_t)sizeof buf + 1, SEEK_SET);
    else
        lseek(fd, 0, SEEK_SET);
    len = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (len <= 0) return 0;
    buf[len] = 0;
    /* Walk back from the end collecting lines, then reverse them. */
    end = buf + len;
    if (end > buf && end[-1] == '\n') *--end = 0;
    while (n < max && end > buf) {
        start = end;
        while (start > buf && start[-1] != '\n') start--;
        if (start == buf && size > (off_t)sizeof buf - 1) break; /* a partial first line */
        lines[n++] = strndup(start, (size_t)(end - start));
        end = start > buf ? start - 1 : buf;
    }
    for (int i = 0; i < n / 2; i++) {
        char *t = lines[i];
        lines[i] = lines[n - 1 - i];
        lines[n - 1 - i] = t;
    }
    return n;
}

int e2_jobdir_metrics_append(const char *state_dir, const char *id, const char *json_line,
                             char *err, size_t errlen) {
    char p[E2_JOBDIR_PATHLEN + 16], *buf;
    size_t n = strlen(json_line);
    int rc;
    snprintf(p, sizeof p, "%s/jobs/%s/metrics.jsonl", state_dir, id);
    if (!(buf = malloc(n + 1))) return e2_errf(err, errlen, "out of memory");
    memcpy(buf, json_line, n);
    buf[n] = '\n';
    rc = jobdir_append(p, buf, n + 1, err, errlen);
    free(buf);
    return rc;
}

int e2_jobdir_write_eval(const char *state_dir, const char *id, const char *json, char *err,
                         size_t errlen) {
    char p[E2_JOBDIR_PATHLEN + 16];
    snprintf(p, sizeof p, "%s/jobs/%s/eval.json", state_dir, id);
    return e2_write_file_atomic(p, json, strlen(json), err, errlen);
}

int e2_jobdir_ckpt_commit(const char *state_dir, const char *id, int64_t step,
                          const char *manifest_json, const e2_jobdir_file *files, size_t nfiles,
                          char *out, char *err, size_t errlen) {
    char tmp[E2_JOBDIR_PATHLEN + 8], p[E2_JOBDIR_PATHLEN + 600];
    struct stat st;
    snprintf(out, E2_JOBDIR_PATHLEN, "%s/jobs/%s/checkpoints/step_%lld", state_dir, id,
             (long long)step);
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    if (stat(tmp, &st) < 0 || !S_ISDIR(st.st_mode))
        return e2_errf(err, errlen, "checkpoint step %lld: %s is missing", (long long)step, tmp);
    for (size_t i = 0; i < nfiles; i++) {
        if (strstr(files[i].name, "..") || files[i].name[0] == '/')
            return e2_errf(err, errlen,
                           "checkpoint step %lld: file name '%s' leaves the "
                           "checkpoint folder",
                           (long long)step, files[i].name);
        snprintf(p, sizeof p, "%s/%s", tmp, files[i].name);
        if (stat(p, &st) < 0)
            return e2_errf(err, errlen,
                           "checkpoint step %lld: rank %d's %s: "
                           "%s",
                           (long long)step, files[i].rank, p, strerror(errno));
        if ((uint64_t)st.st_size != files[i].size)
            return e2_errf(err, errlen,
                           "checkpoint step %lld: %s has %lld bytes, rank %d "
                           "reported %llu",
                           (long long)step, p, (long long)st.st_size, files[i].rank,
                           (unsigned long long)files[i].size);
    }
    snprintf(p, sizeof p, "%s/manifest.json", tmp);
    if (e2_write_file_atomic(p, manifest_json, strlen(manifest_json), err, errlen) < 0)
        return E2_ERR;
    if (jobdir_rmtree(out, err, errlen) < 0) return E2_ERR;
    if (rename(tmp, out) < 0) return e2_errf(err, errlen, "rename %s: %s", tmp, strerror(errno));
    return e2_fsync_parent(out, err, errlen);
}

int e2_jobdir_ckpt_remove(const char *path, char *err, size_t errlen) {
    return jobdir_rmtree(path, err, errlen);
}
