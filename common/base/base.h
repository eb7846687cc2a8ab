/* base.h -- small file utilities shared by e2d, e2worker and e2ctl.
 *
 * Library e2_base, prefix e2_. What lives here is what every component needs
 * to write durable files (checkpoints, manifests, job state): atomic writes,
 * directory fsync, mkdir -p, bounded whole-file reads, SHA-256 of buffers and
 * files for checkpoint manifests.
 *
 * Error convention -- the one way e2's C code reports failure (e2_base, the
 * daemon and its store, and every library that says it follows base.h):
 *  - a function that can fail returns int: 0 (or a count, an id, a value
 *    >= 0) on success and E2_ERR on failure. Not -1 written out, not an
 *    errno value (-EINVAL), not a module's own code;
 *  - where a caller must tell one failure apart, the function returns one
 *    of the named codes below instead of E2_ERR, and its header says which
 *    (e2_store_job_get: E2_NOTFOUND when there is no such job). Every other
 *    caller only tests `< 0`;
 *  - it takes `char *err, size_t errlen` last and, on every failure
 *    (named codes included), writes ONE line (no trailing newline) saying
 *    what failed and, where it helps, what to do:
 *    "open /x/model.safetensors: No such file or directory".
 *    err may be NULL (or errlen 0) when the caller does not want the text;
 *  - a function that returns a pointer returns NULL on failure, with the
 *    line in err when it takes one; a yes/no question returns 1 or 0;
 *  - nothing is ever printed by library code; the caller decides (e2d logs
 *    it, a CLI prints it, an RPC handler turns it into a status with the
 *    line as message: E2_NOTFOUND -> NOT_FOUND, others -> INTERNAL or the
 *    status the handler knows).
 * e2_errf() is the helper that formats such a line and returns E2_ERR.
 * (The gRPC layer, common/rpc, keeps its E2_RPC_E* codes: they mirror gRPC's.)
 */
#ifndef E2_COMMON_BASE_H
#define E2_COMMON_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Suggested size of an error buffer. Longer messages are truncated. */
#define E2_ERRLEN 512

/* Failure codes (all < 0). Most callers only test `< 0`. */
#define E2_ERR      (-1) /* generic failure; the message says why */
#define E2_NOTFOUND (-2) /* what was asked for does not exist: a file, a row, a key */
#define E2_ETOOBIG  (-3) /* a file is larger than the caller's limit */
/* the input (data, a spec's values) fails its checks: the job's fault,
 * not the machine's */
#define E2_EDATA (-4)
/* memory (a device's or the host's) cannot hold what the job asks for */
#define E2_ENOMEM (-5)

/* Formats one error line into err (printf-style), replacing any newline in
 * the result by a space. Returns E2_ERR so that callers can write
 * `return e2_errf(err, errlen, "...", ...);`. err may be NULL. */
int e2_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* e2_errf for a named code: writes the line and returns rc, as in
 * `return e2_errf_rc(err, errlen, E2_NOTFOUND, "%s: no such shard", path);`.
 * Only with a named code (base.h's, or a library's typed class such as
 * worker/train's E2W_TRAIN_E*); for E2_ERR use e2_errf. */
int e2_errf_rc(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- directories ---- */

/* mkdir -p: creates path and its missing parents with mode (e.g. 0755).
 * An existing directory is success; an existing non-directory is an error. */
int e2_mkdir_p(const char *path, mode_t mode, char *err, size_t errlen);

/* fsync of a directory, so that a rename or create inside it is durable. */
int e2_fsync_dir(const char *path, char *err, size_t errlen);

/* fsync of the directory that contains path ("." for a bare file name). */
int e2_fsync_parent(const char *path, char *err, size_t errlen);

/* ---- atomic writes ----
 *
 * A file written atomically is either the complete new content or (after a
 * crash) the old one: the bytes go to "<path>.tmp.<pid>", which is fsynced,
 * renamed over path, and then the parent directory is fsynced. */

/* Writes len bytes atomically to path (mode 0644). */
int e2_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Streaming form for files too large to build in memory:
 *     e2_afile f;
 *     if (e2_afile_open(&f, path, err, errlen) < 0) return -1;
 *     if (e2_afile_write(&f, buf, n, err, errlen) < 0) { e2_afile_abort(&f); ...}
 *     if (e2_afile_commit(&f, err, errlen) < 0) ...   (commit always closes)
 * abort removes the temporary file; it is safe after a failed write. */
typedef struct {
    int fd;           /* -1 when closed */
    char *path;       /* final path (owned) */
    char *tmp;        /* "<path>.tmp.<pid>" (owned) */
    uint64_t written; /* bytes written so far */
} e2_afile;

int e2_afile_open(e2_afile *f, const char *path, char *err, size_t errlen);
int e2_afile_write(e2_afile *f, const void *data, size_t len, char *err, size_t errlen);
/* Writes n zero bytes (padding). */
int e2_afile_pad(e2_afile *f, size_t n, char *err, size_t errlen);
int e2_afile_commit(e2_afile *f, char *err, size_t errlen);
void e2_afile_abort(e2_afile *f);

/* ---- reads ---- */

/* Reads the whole file at path into a malloc'd buffer (*out, freed by the
 * caller with free()), of *len bytes plus a terminating NUL that is not
 * counted, so text files can be parsed in place. Files larger than max_size
 * bytes fail with E2_ETOOBIG; a missing file fails with E2_NOTFOUND. */
int e2_read_file(const char *path, size_t max_size, char **out, size_t *len, char *err,
                 size_t errlen);

/* A model's config.json: path is the file itself or a directory holding
 * it. Writes the file's path to file (filelen bytes), then reads it as
 * e2_read_file does (the plan's and the checkpoint reader's config.json). */
int e2_read_config_json(const char *path, size_t max_size, char *file, size_t filelen, char **out,
                        size_t *len, char *err, size_t errlen);

/* ---- SHA-256 (FIPS 180-4) ----
 * From OpenSSL's libcrypto (EVP), which uses the CPU's SHA extensions when
 * it has them. A context holds libcrypto's digest state from init to
 * final: every e2_sha256_init must be followed by e2_sha256_final, which
 * frees it. */

#define E2_SHA256_LEN    32
#define E2_SHA256_HEXLEN 65 /* 64 hex digits + NUL */

typedef struct {
    void *evp;       /* EVP_MD_CTX */
    uint64_t nbytes; /* total bytes hashed */
} e2_sha256_ctx;

void e2_sha256_init(e2_sha256_ctx *c);
void e2_sha256_update(e2_sha256_ctx *c, const void *data, size_t len);
void e2_sha256_final(e2_sha256_ctx *c, uint8_t out[E2_SHA256_LEN]);
/* One-shot digest of a buffer. */
void e2_sha256(const void *data, size_t len, uint8_t out[E2_SHA256_LEN]);
/* Digest of a file's content (streamed; any size). *size receives the
 * file's size in bytes when size is not NULL. */
int e2_sha256_file(const char *path, uint8_t out[E2_SHA256_LEN], uint64_t *size, char *err,
                   size_t errlen);
/* Lower-case hex of a digest: hex must hold E2_SHA256_HEXLEN bytes. */
void e2_sha256_hex(const uint8_t d[E2_SHA256_LEN], char hex[E2_SHA256_HEXLEN]);

#ifdef __cplusplus
}
#endif

#endif
