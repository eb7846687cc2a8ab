/* test_train.c -- the trainer end to end on a tiny model: exact resume,
 * micro-batch invariance, learning on real text, the NaN guard, retention,
 * the LR schedule, and evaluation at 8x the training length in O(T)
 * memory. Token shards are written here in llm.c format.
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

static int failures;
#define EXPECT(cond, ...)                                            \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                            \
            fputc('\n', stderr);                                     \
            failures++;                                              \
        }                                                            \
    } while (0)

static char tmp_root[512];

static void die(const char *what, const char *err) {
    fprintf(stderr, "test_train: %s: %s\n", what, err);
    exit(1);
}

/* A shard of llm.c format (magic 20240520, uint16 tokens). */
static void write_shard(const char *path, const uint16_t *tok, size_t n) {
    int32_t hdr[256] = {20240520, 1, (int32_t)n};
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(hdr, sizeof hdr, 1, f) != 1 || fwrite(tok, 2, n, f) != n) die("write shard", path);
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

static E2__V1__JobSpec *make_spec(const char *out, int steps, int gb, int mb,
                                  double lr, int every, const char *extra) {
    char json[4096], err[512];
    snprintf(json, sizeof json,
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
    e2w_train_hooks h = {.ud = log, .world_size = 1, .progress = on_progress,
                         .should_stop = on_should_stop};
    e2w_train *t;
    if (e2w_train_create(&t, s, k_get("cpu"), s->output_dir, &h, err, sizeof err) < 0) die("create", err);
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
    run_log la = {0}, lb1 = {.stop_at = 3}, lb2 = {0};
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
        EXPECT(memcmp(&la.loss[i], &lb1.loss[i], sizeof(double)) == 0, "step %d: %.17g vs %.17g", i + 1,
               la.loss[i], lb1.loss[i]);
        EXPECT(memcmp(&la.loss[i + 3], &lb2.loss[i], sizeof(double)) == 0, "step %d after resume: %.17g vs %.17g",
               i + 4, la.loss[i + 3], lb2.loss[i]);
    }
    float *wa = weights(ta), *wb = weights(tb);
    EXPECT(memcmp(wa, wb, e2w_train_model(ta)->n_params * sizeof(float)) == 0, "final weights differ");
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
    run_log la = {0}, lb = {0};
    e2w_train *ta = make_trainer(sa, &la), *tb = make_trainer(sb, &lb);
    EXPECT(e2w_train_run(ta, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_train_run(tb, err, sizeof err) == 0, "%s", err);
    EXPECT(la.n == 4 && lb.n == 4, "steps %d %d", la.n, lb.n);
    for (int i = 0; i < la.n && i < lb.n; i++)
        EXPECT(fabs(la.loss[i] - lb.loss[i]) <= 1e-5 * fabs(la.loss[i]), "step %d: %.9g vs %.9g", i + 1,
               la.loss[i], lb.loss[i]);
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
    run_log l = {0};
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
    run_log l = {.poison_at = 2};
    e2w_train *t = make_trainer(s, &l);
    int rc = e2w_train_run(t, err, sizeof err);
    EXPECT(rc < 0, "diverging run did not fail");
    EXPECT(strstr(err, "NaN") || strstr(err, "infinite") || strstr(err, "not finite"), "error: %s", err);
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

/* keep_last 2 with a checkpoint every step keeps exactly the last two. */
static void test_retention(void) {
    char a[600], err[512], p[700];
    dir_for(a, sizeof a, "keep");
    E2__V1__JobSpec *s = make_spec(a, 4, 4, 4, 1e-3, 1, "");
    run_log l = {0};
    e2w_train *t = make_trainer(s, &l);
    EXPECT(e2w_train_run(t, err, sizeof err) == 0, "%s", err);
    struct stat st;
    for (int i = 1; i <= 4; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/step_%d", a, i);
        EXPECT((stat(p, &st) == 0) == (i >= 3), "step_%d %s", i, i >= 3 ? "missing" : "not removed");
        snprintf(p, sizeof p, "%s/checkpoints/step_%d.tmp", a, i);
        EXPECT(stat(p, &st) != 0, "step_%d.tmp left behind", i);
    }
    e2w_train_free(t);
    e2_spec_free(s);
}

static void test_lr_schedule(void) {
    E2__V1__TrainSpec ts = E2__V1__TRAIN_SPEC__INIT;
    ts.lr = 1.0; ts.min_lr = 0.1; ts.warmup_steps = 4; ts.steps = 14;
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
    run_log l = {0};
    e2w_train *t = make_trainer(s, &l);
    e2w_model *m = e2w_train_model(t);
    int32_t *tok = malloc(2000 * sizeof(int32_t));
    for (int i = 0; i < 2000; i++) tok[i] = (unsigned char)text[i % (sizeof text - 1)];
    e2w_eval_ppl r1, r8, r32;
    e2w_eval_ppl_cfg c1 = {16, 1.0, 8, 512}, c8 = {128, 8.0, 64, 512}, c32 = {512, 32.0, 256, 512};
    EXPECT(e2w_eval_perplexity(m, tok, 2000, &c1, &r1, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_eval_perplexity(m, tok, 2000, &c8, &r8, err, sizeof err) == 0, "%s", err);
    EXPECT(e2w_eval_perplexity(m, tok, 2000, &c32, &r32, err, sizeof err) == 0, "%s", err);
    EXPECT(r8.tokens == 512 && isfinite(r8.ppl) && r8.ppl > 1.0, "8x: %llu tokens, ppl %g",
           (unsigned long long)r8.tokens, r8.ppl);
    /* Linear growth: 4x the window from 8x to 32x costs at most ~4x. */
    EXPECT((double)r32.act_bytes <= 4.2 * (double)r8.act_bytes, "activation memory %zu -> %zu is not O(T)",
           r8.act_bytes, r32.act_bytes);
    EXPECT((double)r8.act_bytes <= 8.5 * (double)r1.act_bytes, "activation memory %zu -> %zu is not O(T)",
           r1.act_bytes, r8.act_bytes);
    /* Passkey at 8x runs and scores something in [0, trials]. */
    e2w_passkey_prompt p;
    e2w_passkey_bytes(&p, 0);
    e2w_eval_passkey_cfg kc = {.window = 512, .scale = 32.0, .trials = 2, .n_digits = 3, .seed = 1};
    int correct = -1;
    EXPECT(e2w_eval_passkey(m, &p, &kc, &correct, err, sizeof err) == 0, "%s", err);
    EXPECT(correct >= 0 && correct <= 2, "passkey correct %d", correct);
    free(tok);
    e2w_train_free(t);
    e2_spec_free(s);
}

/* Two ranks in two threads with an all-reduce hook (sum through shared
 * memory, the same order on both ranks) give the losses of one process
 * with the same global batch: the W-independence the hooks promise. */
typedef struct {
    pthread_barrier_t bar;
    void *buf[2];
    double host[2];
    float *scratch[2];
} dp_shared;

typedef struct {
    dp_shared *sh;
    int rank;
    run_log log;
    E2__V1__JobSpec *spec;
    int rc;
    char err[512];
} dp_rank;

static int dp_allreduce(void *ud, void *buf, size_t n, k_dtype dt, char *err, size_t errlen) {
    dp_rank *r = ud;
    dp_shared *sh = r->sh;
    (void)err; (void)errlen;
    if (dt != K_F32) return -1;
    sh->buf[r->rank] = buf;
    pthread_barrier_wait(&sh->bar);
    float *a = sh->buf[0], *b = sh->buf[1], *out = sh->scratch[r->rank];
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
    pthread_barrier_wait(&sh->bar);
    memcpy(buf, out, n * sizeof(float));
    return 0;
}

static int dp_allreduce_host(void *ud, double *x, size_t n, char *err, size_t errlen) {
    dp_rank *r = ud;
    (void)err; (void)errlen;
    if (n != 1) return -1;
    r->sh->host[r->rank] = *x;
    pthread_barrier_wait(&r->sh->bar);
    double s = r->sh->host[0] + r->sh->host[1];
    pthread_barrier_wait(&r->sh->bar);
    *x = s;
    return 0;
}

static void dp_progress(void *ud, const e2w_train_progress *p) { on_progress(&((dp_rank *)ud)->log, p); }

static int dp_checkpoint(void *ud, int step, const char *tmp, const char *fin, char *err, size_t errlen) {
    (void)ud; (void)step; (void)tmp; (void)fin; (void)err; (void)errlen;
    return 0;
}

static void *dp_run(void *arg) {
    dp_rank *r = arg;
    e2w_train_hooks h = {.ud = r, .rank = r->rank, .world_size = 2, .allreduce = dp_allreduce,
                         .allreduce_host = dp_allreduce_host, .progress = dp_progress,
                         .checkpoint = dp_checkpoint};
    e2w_train *t;
    r->rc = e2w_train_create(&t, r->spec, k_get("cpu"), r->spec->output_dir, &h, r->err, sizeof r->err);
    if (r->rc == 0) {
        r->rc = e2w_train_run(t, r->err, sizeof r->err);
        e2w_train_free(t);
    }
    return NULL;
}

static void test_data_parallel(void) {
    char a[600], b[600], err[512];
    dir_for(a, sizeof a, "dp1");
    dir_for(b, sizeof b, "dp2");
    E2__V1__JobSpec *s1 = make_spec(a, 3, 4, 2, 2e-3, 0, "");
    E2__V1__JobSpec *s2 = make_spec(b, 3, 4, 2, 2e-3, 0, "");
    run_log l1 = {0};
    e2w_train *t1 = make_trainer(s1, &l1);
    EXPECT(e2w_train_run(t1, err, sizeof err) == 0, "%s", err);
    size_t n = e2w_train_model(t1)->n_params;
    dp_shared sh;
    pthread_barrier_init(&sh.bar, NULL, 2);
    dp_rank r[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].sh = &sh;
        r[i].rank = i;
        r[i].spec = s2;
        sh.scratch[i] = malloc(n * sizeof(float));
        pthread_create(&th[i], NULL, dp_run, &r[i]);
    }
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) EXPECT(r[i].rc == 0, "rank %d: %s", i, r[i].err);
    EXPECT(r[0].log.n == 3 && r[1].log.n == 3, "steps %d %d", r[0].log.n, r[1].log.n);
    for (int i = 0; i < 3 && r[0].log.n == 3 && r[1].log.n == 3; i++) {
        EXPECT(r[0].log.loss[i] == r[1].log.loss[i], "ranks disagree at step %d", i + 1);
        EXPECT(fabs(r[0].log.loss[i] - l1.loss[i]) <= 1e-5 * fabs(l1.loss[i]),
               "step %d: 2 ranks %.9g vs 1 rank %.9g", i + 1, r[0].log.loss[i], l1.loss[i]);
    }
    pthread_barrier_destroy(&sh.bar);
    free(sh.scratch[0]);
    free(sh.scratch[1]);
    e2w_train_free(t1);
    e2_spec_free(s1);
    e2_spec_free(s2);
}

static const struct { const char *name; void (*fn)(void); } cases[] = {
    {"data_parallel", test_data_parallel},
    {"resume_bitwise", test_resume_bitwise},
    {"microbatch_invariance", test_microbatch_invariance},
    {"loss_decreases", test_loss_decreases},
    {"nan_stops", test_nan_stops},
    {"retention", test_retention},
    {"lr_schedule", test_lr_schedule},
    {"eval_long_window", test_eval_long_window},
};

int main(int argc, char **argv) {
    snprintf(tmp_root, sizeof tmp_root, "%s/e2-train-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
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
