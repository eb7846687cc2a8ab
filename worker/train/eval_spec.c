/* eval_spec.c -- a job's evaluation (eval.h, "spec level"): for each
 * eval window L' with its scale g, sliding-window perplexity on the
 * held-out shards and, when eval.passkey_trials > 0, passkey retrieval;
 * results as JSON (eval.json) and a markdown table (eval.md). Shared by
 * `e2worker run` and the agent. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aug.h"
#include "base.h"
#include "dataset.h"
#include "eval.h"
#include "spec.h"

static double eval_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void e2w_eval_results_init(e2w_eval_results *r) {
    memset(r, 0, sizeof *r);
}
void e2w_eval_results_free(e2w_eval_results *r) {
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static e2w_eval_row *eval_add(e2w_eval_results *r) {
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 8;
        e2w_eval_row *rows = realloc(r->rows, (size_t)cap * sizeof *rows);
        if (rows == NULL) return NULL;
        r->rows = rows;
        r->cap = cap;
    }
    e2w_eval_row *row = &r->rows[r->n++];
    memset(row, 0, sizeof *row);
    return row;
}

/* The first min(want, N) tokens of the eval shards, each checked < vocab. */
int e2w_eval_read_tokens(const E2__V1__DataSpec *d, size_t want, int vocab, int32_t **out,
                         size_t *n, char *err, size_t errlen) {
    e2w_dataset *ds = NULL;
    *out = NULL;
    *n = 0;
    e2_shard_list files = { 0 };
    int rc = e2_shards_expand(d->eval_shards, d->n_eval_shards, "spec.data.eval_shards", &files,
                              err, errlen);
    if (rc == 0) rc = e2w_dataset_open(&ds, &files, 1, err, errlen);
    e2_shards_free(&files);
    if (rc < 0) return E2_ERR;
    rc = -1;
    if (e2w_dataset_check_vocab(ds, (uint32_t)vocab, err, errlen) < 0) goto done;
    uint64_t total = e2w_dataset_tokens(ds);
    size_t len = total < want ? (size_t)total : want;
    *out = malloc(len * sizeof(int32_t));
    if (*out == NULL) {
        e2_errf(err, errlen, "eval: out of memory for %zu tokens", len);
        goto done;
    }
    if (e2w_dataset_read_tokens(ds, 0, len, *out) < 0) {
        e2_errf(err, errlen, "eval: cannot read the eval shards");
        goto done;
    }
    *n = len;
    rc = 0;
done:
    e2w_dataset_close(ds);
    return rc;
}

/* The passkey prompt: the spec's token ids, or the built-in English text
 * through the byte-level tokenizer of worker/data (token = byte value). */
static void eval_passkey_prompt(const E2__V1__EvalSpec *e, e2w_passkey_prompt *p) {
    e2w_passkey_bytes(p, 0);
    if (e->n_digit_tokens == 10) {
        for (int d = 0; d < 10; d++) p->digits[d] = e->digit_tokens[d];
        p->n_key_pre = p->n_key_post = 0;
    }
    if (e->n_key_pre_tokens) {
        p->key_pre = e->key_pre_tokens;
        p->n_key_pre = e->n_key_pre_tokens;
    }
    if (e->n_key_post_tokens) {
        p->key_post = e->key_post_tokens;
        p->n_key_post = e->n_key_post_tokens;
    }
    if (e->n_filler_tokens) {
        p->filler = e->filler_tokens;
        p->n_filler = e->n_filler_tokens;
    }
    if (e->n_prompt_prefix_tokens) {
        p->prefix = e->prompt_prefix_tokens;
        p->n_prefix = e->n_prompt_prefix_tokens;
    }
    if (e->n_prompt_suffix_tokens) {
        p->suffix = e->prompt_suffix_tokens;
        p->n_suffix = e->n_prompt_suffix_tokens;
    }
}

int e2w_eval_spec(e2w_model *m, const E2__V1__JobSpec *spec, const char *tag, e2w_eval_results *r,
                  char *err, size_t errlen) {
    const E2__V1__EvalSpec *e = spec->eval;
    if (e == NULL || e->n_windows == 0) return 0;
    int32_t *tokens = NULL;
    size_t n = 0;
    if (spec->data && spec->data->n_eval_shards > 0) {
        uint32_t wmax = 0;
        for (size_t i = 0; i < e->n_windows; i++)
            if (e->windows[i] > wmax) wmax = e->windows[i];
        size_t want = (size_t)e->max_tokens + (e->score_from > wmax ? e->score_from : wmax) + 1;
        if (e2w_eval_read_tokens(spec->data, want, m->cfg.V, &tokens, &n, err, errlen) < 0) {
            free(tokens);
            return E2_ERR;
        }
    }
    int rc = -1;
    const float theta_model = m->cfg.theta; /* eval.rope_scheme may change it per window */
    for (size_t i = 0; i < e->n_windows; i++) {
        e2w_eval_row *row = eval_add(r);
        if (row == NULL) {
            e2_errf(err, errlen, "eval: out of memory");
            goto done;
        }
        snprintf(row->tag, sizeof row->tag, "%s", tag);
        row->window = (int)e->windows[i];
        row->scale = i < e->n_scales ? e->scales[i] : 1.0;
        if (e->rope_scheme && e->rope_scheme[0]) {
            /* The scheme's inference rule: g and rope_theta at this window. */
            e2w_aug_config ac;
            if (spec->augment == NULL || e2w_aug_config_spec(&ac, spec->augment, err, errlen) < 0 ||
                e2w_aug_method_parse(e->rope_scheme, &ac.method) < 0) {
                if (spec->augment == NULL)
                    e2_errf(err, errlen, "eval.rope_scheme needs the augment section");
                goto done;
            }
            e2_pos_infer inf;
            e2_pos_inference(&ac, e->windows[i], (uint32_t)m->cfg.D, &inf);
            row->scale = inf.g;
            m->cfg.theta = (float)((double)theta_model * inf.theta_factor);
        }
        row->theta = m->cfg.theta;
        row->stride = (int)e2_spec_eval_stride(spec, e->windows[i]);
        double t0 = eval_now();
        if (n >= 2) {
            e2w_eval_ppl_cfg pc = { row->window, row->scale, row->stride, e->max_tokens,
                                    e->score_from };
            e2w_eval_ppl out;
            if (e2w_eval_perplexity(m, tokens, n, &pc, &out, err, errlen) < 0) goto done;
            row->tokens = out.tokens;
            row->nll = out.nll;
            row->ppl = out.ppl;
        }
        e2w_passkey_prompt p;
        eval_passkey_prompt(e, &p);
        /* A window too short for the prompt gets no passkey row entry. */
        if (e->passkey_trials > 0 &&
            row->window >= e2w_eval_passkey_min_window(&p, (int)e->passkey_digits)) {
            e2w_eval_passkey_cfg kc = { row->window,
                                        row->scale,
                                        (int)e->passkey_trials,
                                        (int)e->passkey_digits,
                                        e->seed,
                                        e->has_passkey_depth_buckets ? (int)e->passkey_depth_buckets
                                                                     : 1 };
            row->passkey_trials = (int)e->passkey_trials;
            if (e2w_eval_passkey_buckets(m, &p, &kc, &row->passkey, err, errlen) < 0) goto done;
            row->passkey_correct = row->passkey.correct;
        }
        m->cfg.theta = theta_model;
        row->seconds = eval_now() - t0;
    }
    rc = 0;
done:
    m->cfg.theta = theta_model;
    free(tokens);
    return rc;
}

char *e2w_eval_results_json(const e2w_eval_results *r) {
    /* a row is < 600 bytes, a depth bucket < 200 */
    size_t cap = 64 + (size_t)r->n * (1024 + 200 * E2W_PASSKEY_MAX_BUCKETS), len = 0;
    char *js = malloc(cap);
    if (js == NULL) return NULL;
    len += (size_t)snprintf(js + len, cap - len, "{\"results\": [");
    for (int i = 0; i < r->n; i++) {
        const e2w_eval_row *w = &r->rows[i];
        len += (size_t)snprintf(
            js + len, cap - len,
            "%s\n  {\"model\": \"%s\", \"window\": %d, \"scale\": %.17g, \"theta\": %.9g, "
            "\"stride\": %d, "
            "\"tokens\": %llu, \"nll\": %.17g, \"perplexity\": %.17g, "
            "\"passkey_trials\": %d, \"passkey_correct\": %d, \"passkey_accuracy\": %.6g, ",
            i ? "," : "", w->tag, w->window, w->scale, (double)w->theta, w->stride,
            (unsigned long long)w->tokens, w->nll, w->tokens ? w->ppl : 0.0, w->passkey_trials,
            w->passkey_correct,
            w->passkey_trials ? (double)w->passkey_correct / w->passkey_trials : 0.0);
        /* Depth bucket b: the key follows fill_lo..fill_hi-1 filler tokens
         * of n_fill; depth is that range as a fraction of n_fill + 1. */
        const e2w_passkey_result *pk = &w->passkey;
        len += (size_t)snprintf(js + len, cap - len, "\"passkey_depth\": [");
        for (int b = 0; w->passkey_trials && b < pk->buckets; b++)
            len += (size_t)snprintf(
                js + len, cap - len,
                "%s{\"bucket\": %d, \"filler_before\": [%d, %d], \"depth\": [%.6g, %.6g], "
                "\"trials\": %d, \"correct\": %d, \"accuracy\": %.6g}",
                b ? ", " : "", b, pk->fill_lo[b], pk->fill_hi[b] - 1,
                (double)pk->fill_lo[b] / (pk->n_fill + 1),
                (double)pk->fill_hi[b] / (pk->n_fill + 1), pk->trials_b[b], pk->correct_b[b],
                pk->trials_b[b] ? (double)pk->correct_b[b] / pk->trials_b[b] : 0.0);
        len += (size_t)snprintf(js + len, cap - len, "], \"seconds\": %.3f}", w->seconds);
    }
    snprintf(js + len, cap - len, "\n]}\n");
    return js;
}

char *e2w_eval_results_markdown(const e2w_eval_results *r) {
    size_t cap = 256 + (size_t)r->n * 512, len = 0; /* a row is < 300 bytes */
    char *md = malloc(cap);
    if (md == NULL) return NULL;
    len += (size_t)snprintf(
        md, cap,
        "| model | window | scale | stride | tokens | nll | perplexity | passkey |\n"
        "|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < r->n; i++) {
        const e2w_eval_row *w = &r->rows[i];
        char pk[32] = "-", nll[32] = "-", ppl[32] = "-";
        if (w->passkey_trials)
            snprintf(pk, sizeof pk, "%d/%d", w->passkey_correct, w->passkey_trials);
        if (w->tokens) {
            snprintf(nll, sizeof nll, "%.4f", w->nll);
            snprintf(ppl, sizeof ppl, "%.4f", w->ppl);
        }
        len += (size_t)snprintf(md + len, cap - len,
                                "| %s | %d | %g | %d | %llu | %s | %s | %s |\n", w->tag, w->window,
                                w->scale, w->stride, (unsigned long long)w->tokens, nll, ppl, pk);
    }
    return md;
}

int e2w_eval_results_write(const e2w_eval_results *r, const char *dir, char *err, size_t errlen) {
    char *js = e2w_eval_results_json(r), *md = e2w_eval_results_markdown(r);
    char path[4200];
    int rc = -1;
    if (js == NULL || md == NULL) {
        e2_errf(err, errlen, "eval: out of memory");
        goto done;
    }
    snprintf(path, sizeof path, "%s/eval.json", dir);
    if (e2_write_file_atomic(path, js, strlen(js), err, errlen) < 0) goto done;
    snprintf(path, sizeof path, "%s/eval.md", dir);
    if (e2_write_file_atomic(path, md, strlen(md), err, errlen) < 0) goto done;
    rc = 0;
done:
    free(js);
    free(md);
    return rc;
}
