/* eval.c -- sliding-window perplexity and passkey retrieval (eval.h). */
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

int e2w_eval_perplexity(e2w_model *m, const int32_t *tokens, size_t n, const e2w_eval_ppl_cfg *cfg,
                        e2w_eval_ppl *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int W = cfg->window, S = cfg->stride;
    if (W < 1 || S < 1 || S > W)
        return e2_errf(err, errlen,
                       "eval: window %d and stride %d must satisfy 1 <= stride <= window", W, S);
    if (n < 2) return e2_errf(err, errlen, "eval: need at least 2 held-out tokens (got %zu)", n);
    e2w_acts a;
    if (e2w_acts_create(&a, m, 1, W, 0, 1, err, errlen) < 0) return E2_ERR;
    out->act_bytes = a.bytes;
    int32_t *tgt = malloc((size_t)W * sizeof(int32_t));
    if (tgt == NULL) {
        e2w_acts_free(&a, m);
        return e2_errf(err, errlen, "eval: out of memory");
    }
    float g = (float)cfg->scale;
    int32_t t0 = 0;
    k_rope rope = { .theta = m->cfg.theta, .n_sink = 0, .g = &g, .t = &t0 };
    double sum = 0.0;
    uint64_t scored = 0;
    for (size_t j0 = cfg->score_from; cfg->score_from > 0 && j0 < n && scored < cfg->max_tokens;
         j0 += (size_t)S) {
        /* Targets [j0, j1); inputs tokens[begin, j1 - 1). */
        size_t j1 = j0 + (size_t)S < n ? j0 + (size_t)S : n;
        if (j1 - j0 > cfg->max_tokens - scored) j1 = j0 + (size_t)(cfg->max_tokens - scored);
        size_t begin = j1 - 1 > (size_t)W ? j1 - 1 - (size_t)W : 0, len = j1 - 1 - begin;
        for (size_t i = 0; i < len; i++) tgt[i] = begin + i + 1 >= j0 ? tokens[begin + i + 1] : -1;
        e2w_acts_set_batch(&a, m, tokens + begin, tgt, 1, (int)len);
        sum += e2w_model_forward(m, &a, 1, (int)len, &rope, 1);
        scored += j1 - j0;
        out->windows++;
    }
    for (size_t begin = 0; cfg->score_from == 0 && begin + 1 < n && scored < cfg->max_tokens;
         begin += (size_t)S) {
        size_t len = n - 1 - begin < (size_t)W ? n - 1 - begin : (size_t)W;
        /* The first window scores everything; later ones what is new. */
        size_t from = begin == 0 ? 0 : (size_t)(W - S);
        if (from >= len) break;
        for (size_t i = 0; i < len; i++) {
            int keep = i >= from && scored + (i - from) < cfg->max_tokens;
            tgt[i] = keep ? tokens[begin + i + 1] : -1;
        }
        e2w_acts_set_batch(&a, m, tokens + begin, tgt, 1, (int)len);
        sum += e2w_model_forward(m, &a, 1, (int)len, &rope, 1);
        size_t new_scored = len - from;
        if (scored + new_scored > cfg->max_tokens) new_scored = cfg->max_tokens - scored;
        scored += new_scored;
        out->windows++;
        if (begin + (size_t)W >= n - 1) break;
    }
    out->tokens = scored;
    out->nll = scored ? sum / (double)scored : 0.0;
    out->ppl = exp(out->nll);
    free(tgt);
    e2w_acts_free(&a, m);
    return 0;
}

static const char pk_prefix[] =
    "There is an important piece of information hidden inside a lot of "
    "irrelevant text. Find it and memorize it. I will quiz you about it.\n";
static const char pk_filler[] =
    "The grass is green. The sky is blue. The sun is yellow. Here we go. "
    "There and back again. ";
static const char pk_key_pre[] = "The pass key is ";
static const char pk_key_post[] = ". Remember it. ";
static const char pk_suffix[] = "\nWhat is the pass key? The pass key is ";

static int32_t pk_ids[sizeof pk_prefix + sizeof pk_filler + sizeof pk_key_pre + sizeof pk_key_post +
                      sizeof pk_suffix];

static const int32_t *pk_put(size_t *at, const char *s, size_t *n, int32_t off) {
    const int32_t *start = pk_ids + *at;
    *n = strlen(s);
    for (size_t i = 0; i < *n; i++) pk_ids[(*at)++] = (int32_t)(unsigned char)s[i] + off;
    return start;
}

void e2w_passkey_bytes(e2w_passkey_prompt *p, int32_t offset) {
    size_t at = 0;
    p->prefix = pk_put(&at, pk_prefix, &p->n_prefix, offset);
    p->filler = pk_put(&at, pk_filler, &p->n_filler, offset);
    p->key_pre = pk_put(&at, pk_key_pre, &p->n_key_pre, offset);
    p->key_post = pk_put(&at, pk_key_post, &p->n_key_post, offset);
    p->suffix = pk_put(&at, pk_suffix, &p->n_suffix, offset);
    for (int d = 0; d < 10; d++) p->digits[d] = '0' + d + offset;
}

static uint64_t pk_next(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void pk_copy(int32_t *dst, size_t *len, const int32_t *src, size_t n) {
    memcpy(dst + *len, src, n * sizeof(int32_t));
    *len += n;
}

/* Filler tokens to fill exactly n slots (the filler text repeated, cut). */
static void pk_fill(int32_t *dst, size_t *len, const e2w_passkey_prompt *p, size_t n) {
    for (size_t i = 0; i < n; i++) dst[(*len)++] = p->filler[i % p->n_filler];
}

int e2w_eval_passkey_min_window(const e2w_passkey_prompt *p, int n_digits) {
    return (int)(p->n_prefix + p->n_key_pre + p->n_key_post + p->n_suffix) + 2 * n_digits + 1;
}

int e2w_eval_passkey(e2w_model *m, const e2w_passkey_prompt *p, const e2w_eval_passkey_cfg *cfg,
                     int *correct, char *err, size_t errlen) {
    e2w_passkey_result r;
    int rc = e2w_eval_passkey_buckets(m, p, cfg, &r, err, errlen);
    *correct = r.correct;
    return rc;
}

int e2w_eval_passkey_buckets(e2w_model *m, const e2w_passkey_prompt *p,
                             const e2w_eval_passkey_cfg *cfg, e2w_passkey_result *out, char *err,
                             size_t errlen) {
    memset(out, 0, sizeof *out);
    int W = cfg->window, K = cfg->n_digits, V = m->cfg.V, B = cfg->buckets > 0 ? cfg->buckets : 1;
    size_t fixed = p->n_prefix + p->n_key_pre + (size_t)K + p->n_key_post + p->n_suffix;
    if (K < 1 || K > 20 || p->n_filler == 0)
        return e2_errf(err, errlen, "passkey: digits must be 1..20 and filler non-empty");
    if (W < e2w_eval_passkey_min_window(p, K))
        return e2_errf(err, errlen, "passkey: window %d is too short for the prompt (%zu tokens)",
                       W, fixed + (size_t)K);
    size_t n_fill = (size_t)W - (size_t)K - fixed;
    if (B > E2W_PASSKEY_MAX_BUCKETS || (size_t)B > n_fill + 1)
        return e2_errf(
            err, errlen,
            "passkey: %d depth buckets need 1..%d and at most %zu (filler slots + 1) at window %d",
            B, E2W_PASSKEY_MAX_BUCKETS, n_fill + 1, W);
    out->buckets = B;
    out->n_fill = (int)n_fill;
    for (int b = 0; b < B; b++) {
        out->fill_lo[b] = (int)((size_t)b * (n_fill + 1) / (size_t)B);
        out->fill_hi[b] = (int)((size_t)(b + 1) * (n_fill + 1) / (size_t)B);
    }
    for (int d = 0; d < 10; d++)
        if (p->digits[d] < 0 || p->digits[d] >= V)
            return e2_errf(err, errlen, "passkey: digit token %d is outside the vocabulary (%d)",
                           p->digits[d], V);
    e2w_acts a;
    if (e2w_acts_create(&a, m, 1, W, 0, 1, err, errlen) < 0) return E2_ERR;
    int32_t *seq = malloc((size_t)W * sizeof(int32_t));
    float *row = malloc((size_t)V * sizeof(float));
    if (seq == NULL || row == NULL) {
        free(seq);
        free(row);
        e2w_acts_free(&a, m);
        return e2_errf(err, errlen, "passkey: out of memory");
    }
    float g = (float)cfg->scale;
    int32_t t0 = 0;
    k_rope rope = { .theta = m->cfg.theta, .n_sink = 0, .g = &g, .t = &t0 };
    uint64_t s = cfg->seed;
    for (int trial = 0; trial < cfg->trials; trial++) {
        int key[20];
        for (int d = 0; d < K; d++) key[d] = (int)(pk_next(&s) % 10);
        int b = (int)((int64_t)trial * B / cfg->trials);
        size_t lo = (size_t)out->fill_lo[b], span = (size_t)out->fill_hi[b] - lo;
        size_t before = lo + (size_t)(pk_next(&s) % span), len = 0;
        pk_copy(seq, &len, p->prefix, p->n_prefix);
        pk_fill(seq, &len, p, before);
        pk_copy(seq, &len, p->key_pre, p->n_key_pre);
        for (int d = 0; d < K; d++) seq[len++] = p->digits[key[d]];
        pk_copy(seq, &len, p->key_post, p->n_key_post);
        pk_fill(seq, &len, p, n_fill - before);
        pk_copy(seq, &len, p->suffix, p->n_suffix);
        int ok = 1;
        for (int d = 0; d < K; d++) {
            e2w_acts_set_batch(&a, m, seq, NULL, 1, (int)len);
            e2w_model_forward(m, &a, 1, (int)len, &rope, 0);
            size_t last = len - 1 - (size_t)a.logits_row0;
            m->k->download(row, (char *)a.logits + last * (size_t)V * m->esz, (size_t)V);
            int best = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            if (best != p->digits[key[d]]) {
                ok = 0;
                break;
            }
            seq[len++] = best;
        }
        out->correct += ok;
        out->correct_b[b] += ok;
        out->trials_b[b]++;
    }
    free(seq);
    free(row);
    e2w_acts_free(&a, m);
    return 0;
}
