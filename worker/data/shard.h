/* shard: token shards in llm.c's format. A shard is a 256 x int32 header
 * then the tokens, little-endian:
 *   header[0] magic: 20240520 -> uint16 tokens (header[1] version 1),
 *                    20240801 -> uint32 tokens (header[1] version 7);
 *   header[2] token count; the file is exactly 1024 + count * width bytes.
 * Readers map the file (mmap); writers are atomic (temp file in the same
 * folder, fsync, rename, fsync of the folder), so a reader never sees half
 * a shard; shards are created with mode 0644. */
#ifndef E2W_SHARD_H
#define E2W_SHARD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define E2W_SHARD_HEADER_INTS  256
#define E2W_SHARD_HEADER_BYTES (E2W_SHARD_HEADER_INTS * 4)
#define E2W_SHARD_MAGIC_U16    20240520
#define E2W_SHARD_VERSION_U16  1
#define E2W_SHARD_MAGIC_U32    20240801
#define E2W_SHARD_VERSION_U32  7
#define E2W_SHARD_MAX_TOKENS   2147483647u /* header[2] is an int32 */

typedef struct {
    char *path;
    void *map; /* whole file */
    size_t map_len;
    const uint8_t *data; /* first token */
    uint64_t n_tokens;
    int width; /* bytes per token: 2 or 4 */
} e2w_shard;

/* Maps and checks a shard; each mismatch is one line naming the file.
 * 0, E2_NOTFOUND (no such file), E2_EDATA (the file is not a good shard)
 * or E2_ERR (base.h). */
int e2w_shard_open(e2w_shard *s, const char *path, char *err, size_t errlen);
void e2w_shard_close(e2w_shard *s);

static inline uint32_t e2w_shard_token(const e2w_shard *s, uint64_t i) {
    if (s->width == 2) {
        uint16_t v;
        memcpy(&v, s->data + i * 2, 2);
        return v;
    }
    uint32_t v;
    memcpy(&v, s->data + i * 4, 4);
    return v;
}

/* Streaming writer: tokens are appended to a temp file; commit writes the
 * header, fsyncs and renames it to `path`; abort removes it. */
typedef struct {
    char *path, *tmp;
    FILE *f;
    uint64_t n_tokens;
    int width;
} e2w_shard_writer;

int e2w_shard_writer_open(e2w_shard_writer *w, const char *path, int width, char *err,
                          size_t errlen);
int e2w_shard_writer_append(e2w_shard_writer *w, const uint32_t *tokens, size_t n, char *err,
                            size_t errlen);
int e2w_shard_writer_commit(e2w_shard_writer *w, char *err, size_t errlen);
void e2w_shard_writer_abort(e2w_shard_writer *w);

/* Writes a whole shard atomically. width: 2 (uint16) or 4 (uint32). */
int e2w_shard_write(const char *path, const uint32_t *tokens, size_t n, int width, char *err,
                    size_t errlen);

#endif
