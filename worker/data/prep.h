/* prep: turning text files into token shards with the built-in byte-level
 * tokenizer, for `e2worker prep` and the tests.
 *
 * Byte-level tokenizer: token = byte value (0..255), plus one end-of-text
 * id 256 that precedes every document (as llm.c's data scripts do), so the
 * vocabulary is 257 and shards use uint16 tokens. Each input file is one
 * document. Models trained on these shards need vocab_size >= 257.
 * Hugging Face tokenizers (Llama-2/3, SmolLM) are handled by
 * tools/prep_hf.py, which writes the same shard format. */
#ifndef E2W_PREP_H
#define E2W_PREP_H

#include <stddef.h>
#include <stdint.h>

#define E2W_BYTE_VOCAB 257
#define E2W_BYTE_EOT   256

typedef struct {
    uint64_t train_tokens, val_tokens;
    int train_shards, val_shards;
} e2w_prep_stats;

/* Tokenizes files[0..n) (EOT before each) into one stream; the last
 * val_fraction of it (at least one token when val_fraction > 0) goes to
 * <out_prefix>_val_NNNNNN.bin, the rest to <out_prefix>_train_NNNNNN.bin,
 * at most shard_tokens tokens per shard. stats may be NULL. */
int e2w_prep_text(char *const *files, int n, const char *out_prefix, size_t shard_tokens,
                  double val_fraction, e2w_prep_stats *stats, char *err, size_t errlen);

/* Deterministic English-like text (a pure function of seed; a longer
 * request extends a shorter one): fills buf with cap - 1 bytes and a NUL.
 * The test corpus and the README's example job use it, so no text has to
 * be shipped. */
void e2w_gen_text(uint64_t seed, char *buf, size_t cap);

/* Writes n_bytes of e2w_gen_text(seed) to path. */
int e2w_gen_text_file(const char *path, uint64_t seed, size_t n_bytes, char *err, size_t errlen);

#endif
