/* train_state.h -- the training-state file: what exact resume needs
 * besides the Hugging Face weights (AdamW moments, step, RNG state, data
 * cursor, spec hash, ...). The trainer decides the names and contents; this
 * module only stores named blobs safely.
 *
 * Part of e2w_ckpt, prefix e2w_ts_. File layout (little-endian):
 *
 *   0   8  magic "E2TSTATE"
 *   8   4  version (1)
 *   12  4  number of entries n
 *   16  8  file size in bytes, checksum included (tells truncation apart)
 *   24     n entries: u32 name length (1..255), u32 type, u64 element
 *          count, u64 data offset from the file start, the name bytes
 *          (no NUL), zero padding to a multiple of 8
 *          blobs, each at an 8-byte aligned offset, zero padded
 *   end-32 SHA-256 of every byte before it
 *
 * The file is written atomically (base.h). Opening verifies size and
 * checksum before anything else, so a corrupt or truncated file is one
 * error line, never wrong state. Blobs are returned in place (mmap,
 * 8-byte aligned) or copied out.
 */
#ifndef E2W_CKPT_TRAIN_STATE_H
#define E2W_CKPT_TRAIN_STATE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define E2W_TS_NAME_MAX 255

typedef enum {
    E2W_TS_F32 = 1,   /* float, 4 bytes */
    E2W_TS_U64 = 2,   /* uint64_t, 8 bytes */
    E2W_TS_BYTES = 3, /* opaque bytes (RNG state, JSON, ...) */
} e2w_ts_type;

/* "f32", "u64", "bytes". */
const char *e2w_ts_type_name(e2w_ts_type type);

/* ---- writing ---- */

typedef struct e2w_ts_writer e2w_ts_writer;

e2w_ts_writer *e2w_ts_writer_new(void); /* NULL when out of memory */
void e2w_ts_writer_free(e2w_ts_writer *w);

/* Adds blob `name` of count elements of type. The data is NOT copied (AdamW
 * moments can be gigabytes): it must stay valid until e2w_ts_write.
 * Names are unique, 1..255 bytes. */
int e2w_ts_put(e2w_ts_writer *w, const char *name, e2w_ts_type type, const void *data,
               uint64_t count, char *err, size_t errlen);
/* Adds a single u64 (step, data cursor, ...); the value is copied. */
int e2w_ts_put_u64(e2w_ts_writer *w, const char *name, uint64_t value, char *err, size_t errlen);

/* Writes every blob put so far to path, atomically. */
int e2w_ts_write(const e2w_ts_writer *w, const char *path, char *err, size_t errlen);

/* ---- reading ---- */

typedef struct e2w_ts e2w_ts;

/* Maps path and verifies magic, version, size, checksum and the entry
 * table. */
int e2w_ts_open(e2w_ts **out, const char *path, char *err, size_t errlen);
void e2w_ts_close(e2w_ts *ts);

size_t e2w_ts_count(const e2w_ts *ts);
/* Entry i in file order; returns its name. */
const char *e2w_ts_entry(const e2w_ts *ts, size_t i, e2w_ts_type *type, uint64_t *count);

/* Blob `name` in place: *data (valid until close, 8-byte aligned) and its
 * element count. Fails naming the blob when absent or of another type. */
int e2w_ts_get(const e2w_ts *ts, const char *name, e2w_ts_type type, const void **data,
               uint64_t *count, char *err, size_t errlen);
/* Copies blob `name` into dst, which holds exactly count elements; a
 * different stored count is an error naming both. */
int e2w_ts_read(const e2w_ts *ts, const char *name, e2w_ts_type type, void *dst, uint64_t count,
                char *err, size_t errlen);
/* A u64 blob of exactly one element. */
int e2w_ts_get_u64(const e2w_ts *ts, const char *name, uint64_t *value, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
