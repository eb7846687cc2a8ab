/* safetensors.h -- Hugging Face safetensors checkpoints in and out.
 *
 * Part of e2w_ckpt (worker/ckpt). A checkpoint directory holds either one
 * `model.safetensors` or shards `model-0000i-of-0000n.safetensors` listed by
 * `model.safetensors.index.json` ({"metadata": {"total_size": N},
 * "weight_map": {tensor: shard file}}), as transformers writes them.
 *
 * File format: 8-byte little-endian header length N, N bytes of JSON
 * {"<tensor>": {"dtype": "BF16", "shape": [r, c], "data_offsets": [b, e]},
 *  "__metadata__": {"format": "pt"}}, then the data section; offsets are
 * relative to the data section.
 *
 * Reading validates everything before any tensor is touched, as strictly as
 * the reference implementation (huggingface/safetensors) does: N within the
 * file and at most 100 MB, well-formed UTF-8 JSON object without duplicate
 * keys, every entry has exactly dtype/shape/data_offsets, known dtype,
 * shape product x element size == end - begin, tensors tile the data
 * section exactly (no overlap, no gap, nothing after the last tensor),
 * `__metadata__` is an object of strings. F32, BF16 and F16 are read (and
 * converted exactly to fp32); other safetensors dtypes are rejected by name.
 * Files are mmap'd read-only; no read ever leaves the validated ranges
 * (a file truncated by someone else while open would still fault: don't).
 * Every error is one line naming the file and, where there is one, the
 * tensor.
 *
 * Host byte order must be little-endian (checked at compile time).
 */
#ifndef E2W_CKPT_SAFETENSORS_H
#define E2W_CKPT_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define E2W_ST_MAX_DIMS   8
#define E2W_ST_MAX_HEADER (100u * 1000u * 1000u) /* as the reference reader */

typedef enum {
    E2W_DT_F32 = 0,
    E2W_DT_BF16 = 1,
    E2W_DT_F16 = 2,
} e2w_dtype;

/* "F32", "BF16", "F16". */
const char *e2w_dtype_name(e2w_dtype dt);
/* Bytes per element: 4, 2, 2. */
size_t e2w_dtype_size(e2w_dtype dt);

/* ---- exact conversions ---- */

/* bf16 -> fp32 is exact (the 16 high bits). */
float e2w_bf16_to_f32(uint16_t h);
/* IEEE binary16 -> fp32 is exact, subnormals, inf and NaN included. */
float e2w_f16_to_f32(uint16_t h);
/* fp32 -> bf16, round to nearest, ties to even; NaN stays NaN (quiet). */
uint16_t e2w_f32_to_bf16(float f);

/* ---- reading ---- */

typedef struct {
    const char *name; /* tensor name, e.g. "model.norm.weight" */
    e2w_dtype dtype;
    int ndim;                       /* 0 (scalar) .. E2W_ST_MAX_DIMS */
    int64_t shape[E2W_ST_MAX_DIMS]; /* row-major, last index fastest */
    uint64_t numel;                 /* product of shape (1 for a scalar) */
    const char *file;               /* path of the file that holds it */
} e2w_st_tensor_info;

typedef struct e2w_st e2w_st;

/* Opens a checkpoint: path is a directory holding model.safetensors (used
 * first, as transformers does) or model.safetensors.index.json, or the path
 * of an index (*.index.json) or of one .safetensors file. All files are mapped and validated; a sharded
 * checkpoint also checks that every weight_map entry exists in its shard
 * and every shard tensor is in the weight_map, and that shard names are
 * plain file names. An open e2w_st is read-only: several threads may read
 * tensors from it at once. */
int e2w_st_open(e2w_st **out, const char *path, char *err, size_t errlen);
void e2w_st_close(e2w_st *st);

/* Tensors in a stable order (by name, byte order). */
size_t e2w_st_count(const e2w_st *st);
const e2w_st_tensor_info *e2w_st_tensor(const e2w_st *st, size_t i);
/* NULL when the checkpoint has no tensor of that name. */
const e2w_st_tensor_info *e2w_st_find(const e2w_st *st, const char *name);

/* Reads tensor `name` into dst (fp32, numel elements) after checking that
 * its shape is exactly shape[0..ndim). Errors name the tensor, the file and
 * both shapes: "model.safetensors: tensor lm_head.weight has shape
 * [32000, 4096], expected [32000, 5120]". A NaN or Inf among the values is
 * an error naming the tensor and the element (dst is then partly
 * written). */
int e2w_st_read_f32(const e2w_st *st, const char *name, int ndim, const int64_t *shape, float *dst,
                    char *err, size_t errlen);

/* *same = 1 when tensors a and b have the same shape and the same values
 * (as fp32, bit for bit; the stored dtypes may differ), else 0. Errors
 * only when one of them is missing. */
int e2w_st_same_values(const e2w_st *st, const char *a, const char *b, int *same, char *err,
                       size_t errlen);

/* ---- writing ---- */

typedef struct {
    const char *name;
    const float *data; /* fp32 host array, numel elements */
    int ndim;
    int64_t shape[E2W_ST_MAX_DIMS];
    e2w_dtype dtype; /* stored dtype: E2W_DT_F32 or E2W_DT_BF16 */
} e2w_st_out;

/* Writes one safetensors file atomically (base.h: tmp + fsync + rename).
 * Layout: header JSON padded with spaces so the data section starts at an
 * 8-byte multiple; tensors follow in the caller's order, except that all
 * 4-byte tensors come before all 2-byte ones, so every tensor starts at a
 * multiple of its element size without gaps (the reference reader forbids
 * gaps). Header keys appear in that same order, then
 * "__metadata__": {"format": "pt"} (transformers requires it).
 * Names must be unique and non-empty. */
int e2w_st_write_file(const char *path, const e2w_st_out *t, size_t n, char *err, size_t errlen);

/* Writes a checkpoint into directory dir (created if missing).
 * max_shard_bytes == 0, or everything fits: one model.safetensors.
 * Otherwise tensors are packed greedily, in the caller's order, into shards
 * of at most max_shard_bytes of tensor data (a tensor larger than that gets
 * a shard of its own), named model-%05d-of-%05d.safetensors, plus
 * model.safetensors.index.json with metadata.total_size (sum of tensor data
 * bytes) and weight_map sorted by name, like transformers. Files of the
 * other layout left from an earlier write into dir (model.safetensors, the
 * index, shards of another count) are removed afterwards so readers cannot
 * pick up stale weights. One writer per directory at a time. *n_shards receives the shard count (1 for a
 * single file) when not NULL. */
int e2w_st_write_dir(const char *dir, const e2w_st_out *t, size_t n, uint64_t max_shard_bytes,
                     int *n_shards, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
