/* test_train.c -- the trainer end to end on a tiny model: exact resume,
 * micro-batch invariance, learning on real text, the NaN guard, retention,
 * the LR schedule, evaluation at 8x the training length in O(T) memory,
 * data parallelism and ZeRO-1 over ranks in threads (bit-exact against the
 * same job without ZeRO-1, resumes on another number of ranks, the
 * checkpoint gather). Token shards are written here in llm.c format.
 *
 * Run as `test_train CASE [TMPDIR]` (one ctest entry per case). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval.h"
#include "spec.h"
#include "train.h"
#include "train_internal.h"

#include "../expect.h"

static char tmp_root[512];

static void die(const char *what, const char *err) {
    fprintf(stderr, "test_train: %s: %s\n", what, err);
    exit(1);
}

/* A shard of llm.c format (magic 20240520, uint16 tokens). */
static void write_shard(const char *path, const uint16_t *tok, size_t n) {
    int32_t hdr[256] = { 20240520, 1, (int32_t)n };
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(hdr, sizeof hdr, 1, f) != 1 || fwrite(tok, 2, n, f) != n)
        die("write shard", path);
    fclose(f);
}

static const char text[] =
    "The quick brown fox jumps over the lazy dog. A journey of a thousand miles "
    "begins with a single step. All that glitters is not gold. ";

/* English text as byte tokens (vocab 128), n tokens. */
static void text_shard(const char *path, size_t n) {
    uint16_t *t = malloc(n * sizeof *t);
    for (size_t i = 0; i < n; i++) t[i] = (uint16_t)(unsigned char)text[i % (sizeof text - 1)];
    write_shard(path, t, n);
    free(t);
}

static char shard_path[600];

static E2__V1__JobSpec *make_spec(const char *out, int steps, int gb, int mb, double lr, int every,
                                  const char *extra) {
    char json[4096], err[512];
    snprintf(
        json, sizeof json,
        "{\"name\": \"t\", \"output_dir\": \"%s\","
        " \"model\": {\"config\": {\"hidden_size\": 32, \"num_hidden_layers\": 2,"
        "   \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"intermediate_size\": 48,"
        "   \"vocab_size\": 128, \"max_position_embeddings\": 32}, \"init_seed\": 3},"
        " \"data\": {\"train_shards\": [\"%s\"], \"eval_shards\": [\"%s\"]},"
        " \"augment\": {\"method\": \"e2\", \"g_max\": 4, \"n_sink\": 2, \"train_length\": 16},"
        " \"train\": {\"steps\": %d, \"global_batch\": %d, \"micro_batch\": %d, \"lr\": %g,"
        "   \"warmup_steps\": %d, \"seed\": 5, \"weight_decay\": 0.1%s},"
        " \"checkpoint\": {\"every\": %d, \"keep_last\": 2}}",
        out, shard_path, shard_path, steps, gb, mb, lr, steps > 2 ? 2 : 0, extra, every);
    E2__V1__JobSpec *s = e2_spec_parse(json, strlen(json), err, sizeof err);
    if (s == NULL) die("spec", err);
    if (e2_spec_apply_defaults(s, err, sizeof err) < 0 || e2_spec_validate(s, err, sizeof err) < 0)
        die("spec", err);
    return s;
}

typedef struct {
    double loss[64];
    int n, stop_at, poison_at;
    e2w_train *t;
} run_log;

static void on_progress(void *ud, const e2w_train_progress *p) {
    run_log *r = ud;
    if (r->n < 64) r->loss[r->n++] = p->loss;
}

/* Stops at step stop_at; after step poison_at (and its checkpoint), turns
 * the final norm's first weight into NaN, as a diverged update would. */
static int on_should_stop(void *ud) {
    run_log *r = ud;
    if (r->t && r->poison_at > 0 && e2w_train_step(r->t) == r->poison_at) {
        e2w_model *m = e2w_train_model(r->t);
        float nan = NAN;
        e2w_model_upload(m, m->poff[E2W_P_LNF], &nan, 1);
    }
    return r->stop_at > 0 && r->t && e2w_train_step(r->t) >= r->stop_at;
}

static e2w_train *make_trainer(const E2__V1__JobSpec *s, run_log *log) {
    char err[512];
    e2w_train_hooks h = {
        .ud = log, .world_size = 1, .progress = on_progress, .should_stop = on_should_stop
    };
    e2w_train *t;
    if (e2w_train_create(&t, s, k_get("cpu"), s->output_dir, &h, err, sizeof err) < 0)
        die("create", err);
    log->t = t;
    return t;
}

static float *weights(e2w_train *t) {
    e2w_model *m = e2w_train_model(t);
    float *w = malloc(m->n_params * sizeof(float));
    e2w_model_download(m, 0, w, m->n_params);
    return w;
}

static void dir_for(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", tmp_root, name);
}

/* 6 steps in one go vs 3 steps, stop, new process state, resume, 3 more:
 * the same losses bit for bit and the same final weights. */
static void test_resume_bitwise(void) {
    char a[600], b[600], err[512], latest[4200];
    dir_for(a, sizeof a, "resume_a");
    dir_for(b, sizeof b, "resume_b");
    E2__V1__JobSpec *sa = make_spec(a, 6, 4, 2, 2e-3, 3, "");
    E2__V1__JobSpec *sb = make_spec(b, 6, 4, 2, 2e-3, 3, "");
    run_log la = { 0 }, lb1 = { .stop_at = 3 }, lb2 = { 0 };
    e2w_train *ta = make_trainer(sa, &la);
    EXPECT(e2w_train_run(ta, err, sizeof err) == 0, "run a: %s", err);
    e2w_train *tb = make_trainer(sb, &lb1);
    EXPECT(e2w_train_run(tb, err, sizeof err) == 1, "run b should stop at step 3: %s", err);
    EXPECT(e2w_train_step(tb) == 3, "stopped at %d", e2w_train_step(tb));
    e2w_train_free(tb);
    EXPECT(e2w_train_find_latest(b, latest, sizeof latest) == 1, "no checkpoint in %s", b);
    EXPECT(strstr(latest, "step_3") != NULL, "latest is %s", latest);
    tb = make_trainer(sb, &lb2);
    EXPECT(e2w_train_resume(tb, latest, err, sizeof err) == 0, "resume: %s", err);
    EXPECT(e2w_train_run(tb, err, sizeof err) == 0, "run b2: %s", err);
    EXPECT(la.n == 6 && lb1.n == 3 && lb2.n == 3, "step counts %d %d %d", la.n, lb1.n, lb2.n);
    for (int i = 0; i < 3 && la.n == 6; i++) {
        EXPECT(memcmp(&la.loss[i], &lb1.loss[i], sizeof(double)) == 0, "step %d: %.17g vs %.17g",
               i + 1, la.loss[i], lb1.loss[i]);
        EXPECT(memcmp(&la.loss[i + 3], &lb2.loss[i], sizeof(double)) == 0,
               "step %d after resume: %.17g vs %.17g", i + 4, la.loss[i + 3], lb2.loss[i]);
    }
    float *wa = weights(ta), *wb = weights(tb);
    EXPECT(memcmp(wa, wb, e2w_train_model(ta)->n_params * sizeof(float)) == 0,
           "final weights differ");
    EXPECT(la.loss[0] != la.loss[1], "losses do not move");
    free(wa);
    free(wb);
    e2w_train_free(ta);
    e2w_train_free(tb);
    e2_spec_free(sa);
    e2_spec_free(sb);
}

/* micro_batch 1 and 2 at global batch 4: same losses within 1e-5. */
static void test_microbatch_invariance(void) {
    char a[600], b[600], err[512];
    dir_for(a, sizeof a, "mb1");
    dir_for(b, sizeof b, "mb2");
    E2__V1__JobSpec *sa = make_spec(a, 4, 4, 1, 2e-3, 0, "");
    E2__V1__JobSpec *sb = make_spec(b, 4, 4, 2, 2e-3, 0, "");
    run_log la = { 0 }, lb = { 0 };
    e2w_train *ta = make_trainer(sa, &la), *tb = make_trainer(sb, &lb);
    EXPECT(e2w_train_run(ta, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_train_run(tb, err, sizeof err) == 0, "%s", err);
    EXPECT(la.n == 4 && lb.n == 4, "steps %d %d", la.n, lb.n);
    for (int i = 0; i < la.n && i < lb.n; i++)
        EXPECT(fabs(la.loss[i] - lb.loss[i]) <= 1e-5 * fabs(la.loss[i]), "step %d: %.9g vs %.9g",
               i + 1, la.loss[i], lb.loss[i]);
    e2w_train_free(ta);
    e2w_train_free(tb);
    e2_spec_free(sa);
    e2_spec_free(sb);
}

/* A tiny model on English text learns: the loss falls well below its start. */
static void test_loss_decreases(void) {
    char a[600], err[512];
    dir_for(a, sizeof a, "learn");
    E2__V1__JobSpec *s = make_spec(a, 40, 8, 4, 1e-2, 0, "");
    run_log l = { 0 };
    e2w_train *t = make_trainer(s, &l);
    EXPECT(e2w_train_run(t, err, sizeof err) == 0, "%s", err);
    double first = l.loss[0], last = (l.loss[l.n - 1] + l.loss[l.n - 2] + l.loss[l.n - 3]) / 3;
    EXPECT(l.n == 40, "steps %d", l.n);
    EXPECT(first > 4.0, "initial loss %.3f should be near ln(128) = 4.85", first);
    EXPECT(last < first - 1.5, "loss %.3f -> %.3f: not learning", first, last);
    e2w_train_free(t);
    e2_spec_free(s);
}

/* A diverging run stops with a clear error and leaves the last committed
 * checkpoint intact. */
static void test_nan_stops(void) {
    char a[600], err[512] = "", latest[4200], p[4400];
    dir_for(a, sizeof a, "nan");
    E2__V1__JobSpec *s = make_spec(a, 6, 4, 2, 1e-3, 1, "");
    run_log l = { .poison_at = 2 };
    e2w_train *t = make_trainer(s, &l);
    int rc = e2w_train_run(t, err, sizeof err);
    EXPECT(rc == E2W_TRAIN_ENAN, "diverging run returned %d, want E2W_TRAIN_ENAN", rc);
    EXPECT(strstr(err, "NaN") || strstr(err, "infinite") || strstr(err, "not finite"), "error: %s",
           err);
    EXPECT(e2w_train_step(t) == 2, "stopped after step %d, want 2", e2w_train_step(t));
    EXPECT(e2w_train_find_latest(a, latest, sizeof latest) == 1, "no committed checkpoint left");
    EXPECT(strstr(latest, "step_2") != NULL, "latest checkpoint %s, want step_2", latest);
    snprintf(p, sizeof p, "%s/" E2W_TRAIN_STATE_FILE, latest);
    struct stat st;
    EXPECT(stat(p, &st) == 0, "%s missing", p);
    e2w_train_free(t);
    /* The surviving checkpoint resumes. */
    l.poison_at = 0;
    t = make_trainer(s, &l);
    EXPECT(e2w_train_resume(t, latest, err, sizeof err) == 0, "resume after NaN: %s", err);
    e2w_train_free(t);
    e2_spec_free(s);
}

/* e2w_train_create with rc, err; NULL trainer expected. */
static int create_fails(const E2__V1__JobSpec *s, char *err, size_t errlen) {
    e2w_train *t = NULL;
    int rc = e2w_train_create(&t, s, k_get("cpu"), s->output_dir, NULL, err, errlen);
    EXPECT(rc < 0 && t == NULL, "create returned %d", rc);
    e2w_train_free(t);
    return rc;
}

/* The trainer says by its return whose fault a failed set-up is: the
 * data's (too few tokens, a token outside the vocabulary), the model's
 * size (larger than this machine's memory), or neither (a shard that
 * cannot be read: the machine's). */
static void test_create_failure_class(void) {
    char a[600], tiny[700], err[512] = "";
    dir_for(a, sizeof a, "class");
    snprintf(tiny, sizeof tiny, "%s/tiny.bin", tmp_root);
    text_shard(tiny, 5);
    E2__V1__JobSpec *s = make_spec(a, 2, 4, 2, 1e-3, 1, "");
    char *train = s->data->train_shards[0];
    s->data->train_shards[0] = tiny;
    int rc = create_fails(s, err, sizeof err);
    EXPECT(rc == E2W_TRAIN_EDATA && strstr(err, "fewer than one training sequence"), "%d: %s", rc,
           err);
    s->data->train_shards[0] = train;
    s->model->config->vocab_size = 64;
    rc = create_fails(s, err, sizeof err);
    EXPECT(rc == E2W_TRAIN_EDATA && strstr(err, "outside the model's vocabulary"), "%d: %s", rc,
           err);
    s->model->config->vocab_size = 128;
    E2__V1__LlamaConfig *c = s->model->config;
    c->hidden_size = 65536, c->num_hidden_layers = 64, c->num_attention_heads = 512;
    c->num_key_value_heads = 512, c->intermediate_size = 1048576;
    rc = create_fails(s, err, sizeof err);
    EXPECT(rc == E2W_TRAIN_ENOMEM && strstr(err, "cannot allocate"), "%d: %s", rc, err);
    c->hidden_size = 32, c->num_hidden_layers = 2, c->num_attention_heads = 4;
    c->num_key_value_heads = 2, c->intermediate_size = 48;
    chmod(tiny, 0);
    s->data->train_shards[0] = tiny;
    rc = create_fails(s, err, sizeof err);
    if (access(tiny, R_OK) != 0) /* root reads it anyway */
        EXPECT(rc < 0 && rc != E2W_TRAIN_EDATA && rc != E2W_TRAIN_ENOMEM, "%d: %s", rc, err);
    s->data->train_shards[0] = train;
    unlink(tiny);
    e2_spec_free(s);
}

/* keep_last 2 with a checkpoint every step keeps exactly the last two. */
static void test_retention(void) {
    char a[600], err[512], p[700];
    dir_for(a, sizeof a, "keep");
    E2__V1__JobSpec *s = make_spec(a, 4, 4, 4, 1e-3, 1, "");
    run_log l = { 0 };
    e2w_train *t = make_trainer(s, &l);
    EXPECT(e2w_train_run(t, err, sizeof err) == 0, "%s", err);
    struct stat st;
    for (int i = 1; i <= 4; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_%d", a, i);
        EXPECT((stat(p, &st) == 0) == (i >= 3), "step_%d %s", i,
               i >= 3 ? "missing" : "not removed");
        snprintf(p, sizeof p, "%s/checkpoints/step_%d.tmp", a, i);
        EXPECT(stat(p, &st) != 0, "step_%d.tmp left behind", i);
    }
    e2w_train_free(t);
    e2_spec_free(s);
}

static void test_lr_schedule(void) {
    E2__V1__TrainSpec ts = E2__V1__TRAIN_SPEC__INIT;
    ts.lr = 1.0;
    ts.min_lr = 0.1;
    ts.warmup_steps = 4;
    ts.steps = 14;
    ts.schedule = "cosine";
    EXPECT(fabs(e2w_train_lr(&ts, 1) - 0.25) < 1e-12, "warm-up step 1: %g", e2w_train_lr(&ts, 1));
    EXPECT(fabs(e2w_train_lr(&ts, 4) - 1.0) < 1e-12, "end of warm-up: %g", e2w_train_lr(&ts, 4));
    EXPECT(fabs(e2w_train_lr(&ts, 9) - 0.55) < 1e-12, "cosine midpoint: %g", e2w_train_lr(&ts, 9));
    EXPECT(fabs(e2w_train_lr(&ts, 14) - 0.1) < 1e-12, "cosine end: %g", e2w_train_lr(&ts, 14));
    ts.schedule = "linear";
    EXPECT(fabs(e2w_train_lr(&ts, 9) - 0.55) < 1e-12, "linear midpoint: %g", e2w_train_lr(&ts, 9));
    EXPECT(fabs(e2w_train_lr(&ts, 6) - 0.82) < 1e-12, "linear 1/5: %g", e2w_train_lr(&ts, 6));
    ts.schedule = "constant";
    EXPECT(e2w_train_lr(&ts, 13) == 1.0, "constant: %g", e2w_train_lr(&ts, 13));
}

/* Perplexity at 8x the training length: runs, is finite, and its
 * activation memory grows linearly with the window (O(T), no T x T). */
static void test_eval_long_window(void) {
    char a[600], err[512];
    dir_for(a, sizeof a, "evalw");
    E2__V1__JobSpec *s = make_spec(a, 1, 4, 4, 1e-3, 0, "");
    run_log l = { 0 };
    e2w_train *t = make_trainer(s, &l);
    e2w_model *m = e2w_train_model(t);
    int32_t *tok = malloc(2000 * sizeof(int32_t));
    for (int i = 0; i < 2000; i++) tok[i] = (unsigned char)text[i % (sizeof text - 1)];
    e2w_eval_ppl r1, r8, r32;
    e2w_eval_ppl_cfg c1 = { 16, 1.0, 8, 512, 0 }, c8 = { 128, 8.0, 64, 512, 0 },
                     c32 = { 512, 32.0, 256, 512, 0 };
    EXPECT(e2w_eval_perplexity(m, tok, 2000, &c1, &r1, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_eval_perplexity(m, tok, 2000, &c8, &r8, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_eval_perplexity(m, tok, 2000, &c32, &r32, err, sizeof err) == 0, "%s", err);
    EXPECT(r8.tokens == 512 && isfinite(r8.ppl) && r8.ppl > 1.0, "8x: %llu tokens, ppl %g",
           (unsigned long long)r8.tokens, r8.ppl);
    /* Linear growth: 4x the window from 8x to 32x costs at most ~4x. */
    EXPECT((double)r32.act_bytes <= 4.2 * (double)r8.act_bytes,
           "activation memory %zu -> %zu is not O(T)", r8.act_bytes, r32.act_bytes);
    EXPECT((double)r8.act_bytes <= 8.5 * (double)r1.act_bytes,
           "activation memory %zu -> %zu is not O(T)", r1.act_bytes, r8.act_bytes);
    /* Passkey at 8x runs and scores something in [0, trials]. */
    e2w_passkey_prompt p;
    e2w_passkey_bytes(&p, 0);
    e2w_eval_passkey_cfg kc = {
        .window = 512, .scale = 32.0, .trials = 2, .n_digits = 3, .seed = 1
    };
    int correct = -1;
    EXPECT(e2w_eval_passkey(m, &p, &kc, &correct, err, sizeof err) == 0, "%s", err);
    EXPECT(correct >= 0 && correct <= 2, "passkey correct %d", correct);
    free(tok);
    e2w_train_free(t);
    e2_spec_free(s);
}

/* W ranks (W <= DP_MAX) in W threads, with the collective hooks through
 * shared memory: the all-reduce sums the ranks' buffers in rank order (the
 * same order on every rank), the all-gather copies each rank's chunk
 * [min(q S, n), min((q + 1) S, n)), S = ceil(n / W), as e2w_comm does, and
 * rank 0 commits a checkpoint once every rank has written its part. */
#define DP_MAX 5

typedef struct {
    int world;
    pthread_barrier_t bar;
    void *buf[DP_MAX];
    double host[DP_MAX];
    float *scratch[DP_MAX];
} dp_shared;

typedef struct {
    dp_shared *sh;
    int rank;
    run_log log;
    const E2__V1__JobSpec *spec;
    const char *resume; /* checkpoint to resume from, or NULL */
    float *weights;     /* final weights (malloc'd) */
    e2w_train_memory mem;
    int rc;
    char err[512];
} dp_rank;

static int dp_allreduce(void *ud, void *buf, size_t n, k_dtype dt, char *err, size_t errlen) {
    dp_rank *r = ud;
    dp_shared *sh = r->sh;
    (void)err;
    (void)errlen;
    if (dt != K_F32) return -1;
    if (sh->scratch[r->rank] == NULL && (sh->scratch[r->rank] = malloc(n * sizeof(float))) == NULL)
        return -1;
    sh->buf[r->rank] = buf;
    pthread_barrier_wait(&sh->bar);
    float *out = sh->scratch[r->rank];
    for (size_t i = 0; i < n; i++) {
        float s = ((const float *)sh->buf[0])[i];
        for (int q = 1; q < sh->world; q++) s += ((const float *)sh->buf[q])[i];
        out[i] = s;
    }
    pthread_barrier_wait(&sh->bar);
    memcpy(buf, out, n * sizeof(float));
    return 0;
}

static int dp_allgather(void *ud, void *buf, size_t n, k_dtype dt, char *err, size_t errlen) {
    dp_rank *r = ud;
    dp_shared *sh = r->sh;
    (void)err;
    (void)errlen;
    if (dt != K_F32) return -1;
    size_t W = (size_t)sh->world, S = (n + W - 1) / W;
    sh->buf[r->rank] = buf;
    pthread_barrier_wait(&sh->bar);
    for (size_t q = 0; q < W; q++) {
        size_t lo = q * S < n ? q * S : n, hi = lo + S < n ? lo + S : n;
        if ((int)q != r->rank)
            memcpy((float *)buf + lo, (const float *)sh->buf[q] + lo, (hi - lo) * sizeof(float));
    }
    pthread_barrier_wait(&sh->bar);
    return 0;
}

static int dp_allreduce_host(void *ud, double *x, size_t n, char *err, size_t errlen) {
    dp_rank *r = ud;
    (void)err;
    (void)errlen;
    if (n != 1) return -1;
    r->sh->host[r->rank] = *x;
    pthread_barrier_wait(&r->sh->bar);
    double s = r->sh->host[0];
    for (int q = 1; q < r->sh->world; q++) s += r->sh->host[q];
    pthread_barrier_wait(&r->sh->bar);
    *x = s;
    return 0;
}

static void dp_progress(void *ud, const e2w_train_progress *p) {
    on_progress(&((dp_rank *)ud)->log, p);
}

static int dp_should_stop(void *ud) {
    return on_should_stop(&((dp_rank *)ud)->log);
}

static int dp_checkpoint(void *ud, int step, const char *tmp, const char *fin, char *err,
                         size_t errlen) {
    dp_rank *r = ud;
    int rc = 0;
    (void)step;
    pthread_barrier_wait(&r->sh->bar);
    if (r->rank == 0 && rename(tmp, fin) != 0) rc = -1, snprintf(err, errlen, "rename %s", tmp);
    pthread_barrier_wait(&r->sh->bar);
    return rc;
}

static void *dp_run(void *arg) {
    dp_rank *r = arg;
    e2w_train_hooks h = { .ud = r,
                          .rank = r->rank,
                          .world_size = r->sh->world,
                          .allreduce = dp_allreduce,
                          .allgather = dp_allgather,
                          .allreduce_host = dp_allreduce_host,
                          .progress = dp_progress,
                          .checkpoint = dp_checkpoint,
                          .should_stop = dp_should_stop };
    e2w_train *t;
    r->rc =
        e2w_train_create(&t, r->spec, k_get("cpu"), r->spec->output_dir, &h, r->err, sizeof r->err);
    if (r->rc < 0) return NULL;
    r->log.t = t;
    e2w_train_memory_report(t, &r->mem);
    if (r->resume) r->rc = e2w_train_resume(t, r->resume, r->err, sizeof r->err);
    if (r->rc == 0) r->rc = e2w_train_run(t, r->err, sizeof r->err);
    r->weights = weights(t);
    r->log.t = NULL;
    e2w_train_free(t);
    return NULL;
}

/* Trains spec on W thread ranks (from checkpoint `resume` when not NULL,
 * stopping after step stop_at when > 0); r[0..W-1] get each rank's log,
 * final weights and memory report. */
static void dp_train(const E2__V1__JobSpec *spec, int world, const char *resume, int stop_at,
                     dp_rank *r) {
    dp_shared sh = { .world = world };
    pthread_t th[DP_MAX];
    pthread_barrier_init(&sh.bar, NULL, (unsigned)world);
    for (int i = 0; i < world; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].sh = &sh;
        r[i].rank = i;
        r[i].spec = spec;
        r[i].resume = resume;
        r[i].log.stop_at = stop_at;
        pthread_create(&th[i], NULL, dp_run, &r[i]);
    }
    for (int i = 0; i < world; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < world; i++) {
        EXPECT(r[i].rc == (stop_at > 0 ? 1 : 0), "%d ranks, rank %d: rc %d: %s", world, i, r[i].rc,
               r[i].err);
        free(sh.scratch[i]);
    }
    pthread_barrier_destroy(&sh.bar);
}

static void dp_free(dp_rank *r, int world) {
    for (int i = 0; i < world; i++) free(r[i].weights);
}

/* Two ranks give the losses of one process with the same global batch:
 * the W-independence the hooks promise. */
static void test_data_parallel(void) {
    char a[600], b[600], err[512];
    dir_for(a, sizeof a, "dp1");
    dir_for(b, sizeof b, "dp2");
    E2__V1__JobSpec *s1 = make_spec(a, 3, 4, 2, 2e-3, 0, "");
    E2__V1__JobSpec *s2 = make_spec(b, 3, 4, 2, 2e-3, 0, "");
    run_log l1 = { 0 };
    e2w_train *t1 = make_trainer(s1, &l1);
    EXPECT(e2w_train_run(t1, err, sizeof err) == 0, "%s", err);
    dp_rank r[2];
    dp_train(s2, 2, NULL, 0, r);
    EXPECT(r[0].log.n == 3 && r[1].log.n == 3, "steps %d %d", r[0].log.n, r[1].log.n);
    for (int i = 0; i < 3 && r[0].log.n == 3 && r[1].log.n == 3; i++) {
        EXPECT(r[0].log.loss[i] == r[1].log.loss[i], "ranks disagree at step %d", i + 1);
        EXPECT(fabs(r[0].log.loss[i] - l1.loss[i]) <= 1e-5 * fabs(l1.loss[i]),
               "step %d: 2 ranks %.9g vs 1 rank %.9g", i + 1, r[0].log.loss[i], l1.loss[i]);
    }
    dp_free(r, 2);
    e2w_train_free(t1);
    e2_spec_free(s1);
    e2_spec_free(s2);
}

/* The bytes of a file (NULL when unreadable); *n its size. */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n ? *n : 1);
    if (b && fread(b, 1, *n, f) != *n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

static int same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[800], pb[800];
    size_t na = 0, nb = 0;
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    unsigned char *a = slurp(pa, &na), *b = slurp(pb, &nb);
    int same = a && b && na == nb && memcmp(a, b, na) == 0;
    free(a);
    free(b);
    return same;
}

/* ZeRO-1 on 2, 3 and 5 ranks (5 does not divide the 23712 parameters: the
 * last shard is shorter) against the same job without it: losses and
 * final weights bit for bit on every rank, the checkpoint files (weights
 * and train_state.bin, whose moments rank 0 gathered) byte for byte, and
 * each rank's optimizer memory its shard's: ceil(n / W) x 8 bytes (m, v) on
 * the first ranks, the rest on the last, n x 8 over all. */
static void test_zero1_bitwise(void) {
    static const int worlds[] = { 2, 3, 5 };
    for (int wi = 0; wi < 3; wi++) {
        int W = worlds[wi];
        char a[600], b[600], ca[32], cb[32];
        snprintf(ca, sizeof ca, "plain%d", W);
        snprintf(cb, sizeof cb, "zero1_%d", W);
        dir_for(a, sizeof a, ca);
        dir_for(b, sizeof b, cb);
        E2__V1__JobSpec *sa = make_spec(a, 4, 30, 2, 2e-3, 2, "");
        E2__V1__JobSpec *sb = make_spec(b, 4, 30, 2, 2e-3, 2, ", \"zero1\": true");
        dp_rank ra[DP_MAX], rb[DP_MAX];
        dp_train(sa, W, NULL, 0, ra);
        dp_train(sb, W, NULL, 0, rb);
        size_t n = ra[0].mem.n_params, S = (n + (size_t)W - 1) / (size_t)W, total = 0;
        EXPECT(W != 5 || n % 5 != 0, "%zu parameters: 5 ranks get equal shards", n);
        EXPECT(ra[0].log.n == 4 && rb[0].log.n == 4, "W=%d: steps %d %d", W, ra[0].log.n,
               rb[0].log.n);
        for (int i = 0; i < 4 && ra[0].log.n == 4 && rb[0].log.n == 4; i++)
            EXPECT(memcmp(&ra[0].log.loss[i], &rb[0].log.loss[i], sizeof(double)) == 0,
                   "W=%d step %d: plain %.17g vs zero1 %.17g", W, i + 1, ra[0].log.loss[i],
                   rb[0].log.loss[i]);
        EXPECT(ra[0].log.loss[0] != ra[0].log.loss[3], "W=%d: losses do not move", W);
        for (int q = 0; q < W; q++) {
            EXPECT(ra[q].weights && rb[q].weights &&
                       memcmp(ra[0].weights, rb[q].weights, n * sizeof(float)) == 0,
                   "W=%d: rank %d's weights with zero1 differ from the plain run's", W, q);
            size_t want = (q < W - 1 ? S : n - (size_t)(W - 1) * S) * 2 * sizeof(float);
            EXPECT(ra[q].mem.optim_bytes == n * 2 * sizeof(float),
                   "W=%d plain rank %d: optimizer %zu bytes", W, q, ra[q].mem.optim_bytes);
            EXPECT(rb[q].mem.optim_bytes == want,
                   "W=%d zero1 rank %d: optimizer %zu bytes, want %zu", W, q, rb[q].mem.optim_bytes,
                   want);
            total += rb[q].mem.optim_bytes;
        }
        EXPECT(total == n * 2 * sizeof(float), "W=%d: the shards hold %zu bytes, want %zu", W,
               total, n * 2 * sizeof(float));
        char da[700], db[700];
        snprintf(da, sizeof da, "%s/checkpoints/step_4", a);
        snprintf(db, sizeof db, "%s/checkpoints/step_4", b);
        EXPECT(same_file(da, db, E2W_TRAIN_STATE_FILE), "W=%d: train_state.bin differs with zero1",
               W);
        EXPECT(same_file(da, db, "model.safetensors"), "W=%d: model.safetensors differs with zero1",
               W);
        dp_free(ra, W);
        dp_free(rb, W);
        e2_spec_free(sa);
        e2_spec_free(sb);
    }
}

/* A ZeRO-1 job on 2 ranks stopped at step 3 and resumed on 2 ranks ends
 * with the uninterrupted run's weights, bit for bit; its step-3 checkpoint
 * also resumes on 3 ranks (with ZeRO-1: the same weights as without it
 * from there) and on 1 (the losses of the 2-rank run within 1e-5). */
static void test_zero1_resume(void) {
    char ref[600], b[600], c[600], d[600], e[600], ck[700];
    dir_for(ref, sizeof ref, "z1ref");
    dir_for(b, sizeof b, "z1stop");
    dir_for(c, sizeof c, "z1three");
    dir_for(d, sizeof d, "plain_three");
    dir_for(e, sizeof e, "z1one");
    const char *z1 = ", \"zero1\": true";
    E2__V1__JobSpec *sref = make_spec(ref, 6, 6, 2, 2e-3, 3, z1),
                    *sb = make_spec(b, 6, 6, 2, 2e-3, 3, z1);
    E2__V1__JobSpec *sc = make_spec(c, 6, 6, 2, 2e-3, 3, z1),
                    *sd = make_spec(d, 6, 6, 2, 2e-3, 3, "");
    E2__V1__JobSpec *se = make_spec(e, 6, 6, 2, 2e-3, 3, z1);
    dp_rank rr[DP_MAX], r1[DP_MAX], r2[DP_MAX], r3[DP_MAX], r4[DP_MAX], r5[DP_MAX];
    dp_train(sref, 2, NULL, 0, rr);
    dp_train(sb, 2, NULL, 3, r1);
    snprintf(ck, sizeof ck, "%s/checkpoints/step_3", b);
    dp_train(sb, 2, ck, 0, r2);
    size_t n = rr[0].mem.n_params;
    EXPECT(r1[0].log.n == 3 && r2[0].log.n == 3, "steps %d + %d", r1[0].log.n, r2[0].log.n);
    for (int q = 0; q < 2; q++)
        EXPECT(rr[0].weights && r2[q].weights &&
                   memcmp(rr[0].weights, r2[q].weights, n * sizeof(float)) == 0,
               "rank %d: resumed zero1 weights differ from the uninterrupted run's", q);
    for (int i = 0; i < 3 && r2[0].log.n == 3; i++)
        EXPECT(memcmp(&rr[0].log.loss[i + 3], &r2[0].log.loss[i], sizeof(double)) == 0,
               "step %d after resume: %.17g vs %.17g", i + 4, rr[0].log.loss[i + 3],
               r2[0].log.loss[i]);
    dp_train(sc, 3, ck, 0, r3);
    dp_train(sd, 3, ck, 0, r4);
    EXPECT(r3[0].log.n == 3 && r4[0].log.n == 3, "3-rank resumes: steps %d %d", r3[0].log.n,
           r4[0].log.n);
    for (int q = 0; q < 3; q++)
        EXPECT(r4[0].weights && r3[q].weights &&
                   memcmp(r4[0].weights, r3[q].weights, n * sizeof(float)) == 0,
               "3 ranks from a 2-rank zero1 checkpoint: rank %d's zero1 weights differ from plain",
               q);
    for (int i = 0; i < 3 && r3[0].log.n == 3; i++)
        EXPECT(fabs(r3[0].log.loss[i] - rr[0].log.loss[i + 3]) <=
                   1e-5 * fabs(rr[0].log.loss[i + 3]),
               "step %d on 3 ranks: %.9g vs %.9g on 2", i + 4, r3[0].log.loss[i],
               rr[0].log.loss[i + 3]);
    dp_train(se, 1, ck, 0, r5);
    EXPECT(r5[0].log.n == 3, "1-rank resume: %d steps", r5[0].log.n);
    EXPECT(r5[0].mem.optim_bytes == n * 2 * sizeof(float),
           "1 rank with zero1 holds %zu optimizer bytes", r5[0].mem.optim_bytes);
    for (int i = 0; i < 3 && r5[0].log.n == 3; i++)
        EXPECT(fabs(r5[0].log.loss[i] - rr[0].log.loss[i + 3]) <=
                   1e-5 * fabs(rr[0].log.loss[i + 3]),
               "step %d on 1 rank: %.9g vs %.9g on 2", i + 4, r5[0].log.loss[i],
               rr[0].log.loss[i + 3]);
    dp_free(rr, 2);
    dp_free(r1, 2);
    dp_free(r2, 2);
    dp_free(r3, 3);
    dp_free(r4, 3);
    dp_free(r5, 1);
    e2_spec_free(sref);
    e2_spec_free(sb);
    e2_spec_free(sc);
    e2_spec_free(sd);
    e2_spec_free(se);
}

/* e2w_train_state_gather on 3 ranks, in pieces of 97 elements (the last piece
 * of each shard partial) and in one piece: rank 0 gets every element of
 * the ranks' shards at its place. */
typedef struct {
    dp_rank r;
    float *full;
    size_t n;
} gather_rank;

static float gather_value(size_t i) {
    return (float)i * 0.5f - 3.0f;
}

static void *gather_run(void *arg) {
    gather_rank *g = arg;
    dp_rank *r = &g->r;
    e2w_train_hooks h = { .ud = r,
                          .rank = r->rank,
                          .world_size = r->sh->world,
                          .allreduce = dp_allreduce,
                          .allgather = dp_allgather,
                          .allreduce_host = dp_allreduce_host };
    e2w_train *t;
    r->rc =
        e2w_train_create(&t, r->spec, k_get("cpu"), r->spec->output_dir, &h, r->err, sizeof r->err);
    if (r->rc < 0) return NULL;
    e2w_model *m = e2w_train_model(t);
    g->n = m->n_params;
    for (size_t i = 0; i < m->opt_n; i++) m->m[i] = gather_value(m->opt_lo + i);
    static const size_t pieces[] = { 97, (size_t)1 << 30 };
    /* Every rank takes part in both gathers whatever rank 0 finds. */
    for (int p = 0; p < 2; p++) {
        if (r->rank == 0) g->full = calloc(m->n_params, sizeof(float));
        if (e2w_train_state_gather(t, m->m, g->full, pieces[p], r->err, sizeof r->err) < 0)
            r->rc = -1;
        for (size_t i = 0; r->rank == 0 && r->rc == 0 && i < m->n_params; i++)
            if (g->full[i] != gather_value(i)) {
                snprintf(r->err, sizeof r->err, "piece %zu: element %zu is %g, want %g", pieces[p],
                         i, g->full[i], gather_value(i));
                r->rc = -1;
            }
        free(g->full);
        g->full = NULL;
    }
    e2w_train_free(t);
    return NULL;
}

static void test_zero1_gather(void) {
    char a[600];
    dir_for(a, sizeof a, "z1gather");
    E2__V1__JobSpec *s = make_spec(a, 1, 6, 2, 2e-3, 0, ", \"zero1\": true");
    dp_shared sh = { .world = 3 };
    gather_rank g[3];
    pthread_t th[3];
    pthread_barrier_init(&sh.bar, NULL, 3);
    for (int i = 0; i < 3; i++) {
        memset(&g[i], 0, sizeof g[i]);
        g[i].r.sh = &sh;
        g[i].r.rank = i;
        g[i].r.spec = s;
        pthread_create(&th[i], NULL, gather_run, &g[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++) EXPECT(g[i].r.rc == 0, "rank %d: %s", i, g[i].r.err);
    EXPECT(g[0].n > 97 * 3 * 2, "the model (%zu parameters) is too small to need several pieces",
           g[0].n);
    pthread_barrier_destroy(&sh.bar);
    e2_spec_free(s);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    { "data_parallel", test_data_parallel },
    { "zero1_bitwise", test_zero1_bitwise },
    { "zero1_resume", test_zero1_resume },
    { "zero1_gather", test_zero1_gather },
    { "resume_bitwise", test_resume_bitwise },
    { "microbatch_invariance", test_microbatch_invariance },
    { "loss_decreases", test_loss_decreases },
    { "nan_stops", test_nan_stops },
    { "create_failure_class", test_create_failure_class },
    { "retention", test_retention },
    { "lr_schedule", test_lr_schedule },
    { "eval_long_window", test_eval_long_window },
};

int main(int argc, char **argv) {
    snprintf(tmp_root, sizeof tmp_root, "%s/e2-train-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(tmp_root) == NULL) die("mkdtemp", tmp_root);
    snprintf(shard_path, sizeof shard_path, "%s/text.bin", tmp_root);
    text_shard(shard_path, 20000);
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        cases[i].fn();
        ran++;
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "test_train: could not remove %s\n", tmp_root);
    if (ran == 0) {
        fprintf(stderr, "test_train: no case named %s\n", argc > 1 ? argv[1] : "?");
        return 2;
    }
    if (failures) fprintf(stderr, "test_train: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
