/* eval.h -- evaluation of a model at any window (e2-method.md section 4):
 * sliding-window perplexity and passkey retrieval, at inference RoPE
 * (scale g, offset t = 0, no sinks).
 *
 * Memory: one activation set for a single sequence of the window, forward
 * only (no gradient scratch, one block of activations reused by every
 * block: e2w_acts with backward = 0), and flash attention keeps attention
 * O(T): evaluating at 8x the training length costs O(T) extra memory.
 */
#ifndef E2_WORKER_EVAL_H
#define E2_WORKER_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/job.pb-c.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int window;          /* L' */
    double scale;        /* g */
    int stride;          /* new tokens scored per window after the first */
    uint64_t max_tokens; /* stop after this many scored tokens */
    uint64_t score_from; /* > 0: score only targets at index >= score_from */
} e2w_eval_ppl_cfg;

typedef struct {
    double nll;       /* mean negative log-likelihood (nats/token) */
    double ppl;       /* exp(nll) */
    uint64_t tokens;  /* tokens scored */
    int windows;      /* forward passes */
    size_t act_bytes; /* activation memory used */
} e2w_eval_ppl;

/* Sliding windows over tokens[0..n): window w starts at w * stride; the
 * first window scores all its predictions, every later one only its last
 * `stride` (so each token is scored once, with at least window - stride
 * tokens of context). Needs n >= 2.
 * With score_from > 0 the scored targets are tokens[j] for j >= score_from
 * (the same tokens at every window): window k scores the targets
 * j in [score_from + k*stride, score_from + (k+1)*stride) from the `window`
 * tokens before the last of them (fewer where the stream starts). */
int e2w_eval_perplexity(e2w_model *m, const int32_t *tokens, size_t n, const e2w_eval_ppl_cfg *cfg,
                        e2w_eval_ppl *out, char *err, size_t errlen);

/* Passkey prompt pieces, as token ids. */
typedef struct {
    const int32_t *prefix;
    size_t n_prefix; /* task statement */
    const int32_t *filler;
    size_t n_filler; /* repeated text */
    const int32_t *key_pre;
    size_t n_key_pre; /* before the key digits */
    const int32_t *key_post;
    size_t n_key_post;
    const int32_t *suffix;
    size_t n_suffix;    /* the question */
    int32_t digits[10]; /* ids of '0'..'9' */
} e2w_passkey_prompt;

/* The built-in English prompt for byte-level tokenizers (token = byte
 * value + offset). The arrays are static; the call is thread-compatible
 * only with itself. */
void e2w_passkey_bytes(e2w_passkey_prompt *p, int32_t offset);

#define E2W_PASSKEY_MAX_BUCKETS 64

typedef struct {
    int window;   /* L': prompt + key length */
    double scale; /* g */
    int trials, n_digits;
    uint64_t seed;
    int buckets; /* depth buckets B, 1..E2W_PASSKEY_MAX_BUCKETS; 0 means 1 */
} e2w_eval_passkey_cfg;

/* Passkey outcome, overall and per depth bucket. A prompt has
 * n_fill = window - n_digits (answer) - the fixed pieces filler slots;
 * `before` of them precede the key. Bucket b of B holds the trials i with
 * floor(i * B / trials) = b and draws before uniformly in
 * [fill_lo[b], fill_hi[b]), fill_lo[b] = floor(b * (n_fill + 1) / B), so
 * the buckets split {0..n_fill} into B nearly equal consecutive ranges
 * (B = 1: before uniform in {0..n_fill}, the draws of earlier versions).
 * Depth of a bucket as a fraction of the filler: fill_lo / (n_fill + 1)
 * to fill_hi / (n_fill + 1). */
typedef struct {
    int correct;
    int buckets, n_fill;
    int trials_b[E2W_PASSKEY_MAX_BUCKETS], correct_b[E2W_PASSKEY_MAX_BUCKETS];
    int fill_lo[E2W_PASSKEY_MAX_BUCKETS], fill_hi[E2W_PASSKEY_MAX_BUCKETS];
} e2w_passkey_result;

/* Shortest window that holds the prompt, an n_digits key and its answer. */
int e2w_eval_passkey_min_window(const e2w_passkey_prompt *p, int n_digits);

/* Each trial hides a random n_digits key at a random depth of filler (in
 * its depth bucket, see e2w_passkey_result) and decodes n_digits tokens
 * greedily; a trial is correct when every digit is right. Needs
 * n_fill + 1 >= buckets. Per trial the draws are: the key digits, then
 * before (splitmix64 stream seeded with cfg->seed). */
int e2w_eval_passkey_buckets(e2w_model *m, const e2w_passkey_prompt *p,
                             const e2w_eval_passkey_cfg *cfg, e2w_passkey_result *out, char *err,
                             size_t errlen);
/* The same, *correct = out.correct only. */
int e2w_eval_passkey(e2w_model *m, const e2w_passkey_prompt *p, const e2w_eval_passkey_cfg *cfg,
                     int *correct, char *err, size_t errlen);

/* ---- spec level: a job's evaluation (eval_spec.c) ---- */

/* One evaluated (model, window). */
typedef struct {
    char tag[16]; /* "base" (before training) or "final" */
    int window;   /* L' */
    double scale; /* g */
    float theta;  /* rope_theta used (eval.rope_scheme may change it) */
    int stride;
    uint64_t tokens; /* tokens scored; 0 when there is no eval data */
    double nll, ppl;
    int passkey_trials; /* 0: no passkey (disabled, or window too short) */
    int passkey_correct;
    e2w_passkey_result passkey; /* per depth bucket (when passkey_trials > 0) */
    double seconds;
} e2w_eval_row;

typedef struct {
    e2w_eval_row *rows;
    int n, cap;
} e2w_eval_results;

void e2w_eval_results_init(e2w_eval_results *r);
void e2w_eval_results_free(e2w_eval_results *r);

/* The first min(want, N) tokens of the data's eval shards, each checked
 * < vocab; *out is malloc'd. */
int e2w_eval_read_tokens(const E2__V1__DataSpec *d, size_t want, int vocab, int32_t **out,
                         size_t *n, char *err, size_t errlen);

/* Evaluates m at every window of spec.eval (scale eval.scales[i], stride
 * e2_spec_eval_stride, at most eval.max_tokens scored), appending rows
 * tagged tag: perplexity when data.eval_shards is set, passkey when
 * eval.passkey_trials > 0 (built-in English byte prompt, or the spec's
 * token ids; eval.passkey_depth_buckets depth buckets, per-bucket results
 * in row.passkey). Used by `e2worker run` after training and by
 * `e2worker eval` alone. */
int e2w_eval_spec(e2w_model *m, const E2__V1__JobSpec *spec, const char *tag, e2w_eval_results *r,
                  char *err, size_t errlen);

/* eval.json text ({"results": [rows]}) and the markdown table; malloc'd,
 * NULL when out of memory. */
char *e2w_eval_results_json(const e2w_eval_results *r);
char *e2w_eval_results_markdown(const e2w_eval_results *r);
/* Writes dir/eval.json and dir/eval.md atomically. */
int e2w_eval_results_write(const e2w_eval_results *r, const char *dir, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
