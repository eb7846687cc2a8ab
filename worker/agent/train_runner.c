/* train_runner.c -- the agent's default runner: one rank of an assignment
 * trained by worker/train, with the agent's hooks plugged in.
 *
 * The spec arrives as submitted; it is resolved by worker/job as
 * `e2worker run` resolves it (e2w_spec_resolve, after the data roots), and
 * a spec that fails is a user error, never retried. The trainer's
 * checkpoint hook hands each step_N.tmp/ to e2d (which commits it once
 * every rank reported) instead of renaming it. The run is worker/job's
 * e2w_job_drive: a resume (the job's last committed checkpoint, else
 * spec.resume_from) first checks every file against the sizes and sha256
 * of the checkpoint's manifest.json; rank 0 evaluates the trained model at
 * every eval window and returns the results, structured and as eval.json
 * text.
 *
 * Outcomes: trained -> SUCCEEDED; stopped by Cancel -> CANCELLED (after a
 * final checkpoint when the deadline leaves room for one); stopped by Abort
 * or a failed collective -> FAILED_INFRA; bad spec, data that fails its
 * checks (found before training: shard headers, eval shards), a model too
 * large for this worker's memory, or a non-finite loss -> FAILED_USER. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent_internal.h"
#include "base.h"
#include "comm.h"
#include "dataset.h"
#include "eval.h"
#include "job.h"
#include "pbjson.h"
#include "reducer.h"
#include "spec.h"
#include "train.h"

typedef struct {
    e2w_agent_job *job;
    const E2__V1__Assignment *as;
    const k_backend *k;
    e2w_comm *comm;       /* NULL for a single rank */
    int comm_on_device;   /* NCCL: collectives on device memory */
    void *dev_doubles;    /* NCCL: device buffer of on_allreduce_host, */
    size_t dev_doubles_n; /* grown as needed, kept until comm_close */
    int comm_failed;      /* a collective outside the trainer failed */
    char comm_err[E2_ERRLEN];
    unsigned log_every;
    double last_step_s; /* wall time of the last step */
    e2w_reducer *red;   /* gradient buckets, with comm */
    double red_busy_s;  /* reducer's busy seconds at the last progress */
    double exposed_s;   /* waited for the reducer since then */
    int zero1;          /* train.zero1 with several ranks */
    double gather_s;    /* in ZeRO-1 all-gathers since then */
    int last_ckpt_step; /* step of the last checkpoint reported */
} runner_ctx;

/* A collective that makes no progress for this long fails the rank (e2d's
 * hang and heartbeat timeouts act on the worker long before). */
#define E2W_AGENT_COMM_TIMEOUT_MS 300000

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int64_t wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(runner_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(runner_ctx *c, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    e2w_agent_job_log(c->job, line);
}

static void say_line(void *ud, const char *line) {
    say(ud, "%s", line);
}

/* A resumed job's checkpoint of that step exists already: a final one at
 * the same step would be a second copy. */
static void on_resumed(void *ud, int step) {
    runner_ctx *c = ud;
    c->last_ckpt_step = step;
}

static void finish(e2w_agent_result *r, int outcome, const char *reason) {
    r->outcome = outcome;
    r->exit_code = outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED ? 0 : 1;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

/* ---- trainer hooks ---- */

static void on_progress(void *ud, const e2w_train_progress *p) {
    runner_ctx *c = ud;
    c->last_step_s = p->step_s;
    e2w_agent_job_progress(c->job, (uint32_t)p->step, p->loss, p->lr, p->grad_norm,
                           p->tokens_per_s);
    /* With several ranks: the step's time in gradient all-reduces (on the
     * reducer's thread, beside the backward) and the part of it the step
     * waited for (exposed; the rest was hidden by the backward); with
     * ZeRO-1 also the parameters' all-gather (never hidden). */
    double busy = c->red ? e2w_reducer_busy_seconds(c->red) : 0;
    char gather[48] = "";
    if (c->zero1) snprintf(gather, sizeof gather, ", allgather %.2f ms", c->gather_s * 1e3);
    if ((p->step % (int)c->log_every == 0 || p->step == p->steps) && c->red)
        say(c,
            "step %d/%d | loss %.6f | lr %.3e | grad norm %.4f | %.0f tok/s | "
            "%.2f ms, allreduce %.2f ms, exposed %.2f ms%s",
            p->step, p->steps, p->loss, p->lr, p->grad_norm, p->tokens_per_s, p->step_s * 1e3,
            (busy - c->red_busy_s) * 1e3, c->exposed_s * 1e3, gather);
    else if (p->step % (int)c->log_every == 0 || p->step == p->steps)
        say(c, "step %d/%d | loss %.6f | lr %.3e | grad norm %.4f | %.0f tok/s", p->step, p->steps,
            p->loss, p->lr, p->grad_norm, p->tokens_per_s);
    c->red_busy_s = busy;
    c->exposed_s = 0;
    c->gather_s = 0;
}

/* Rank 0 writes the whole state (ranks hold identical weights); the other
 * ranks report an empty file list so e2d still hears from every rank. */
static int on_checkpoint(void *ud, int step, const char *tmp_dir, const char *final_dir, char *err,
                         size_t errlen) {
    runner_ctx *c = ud;
    (void)tmp_dir, (void)final_dir;
    static const char *const none[1] = { NULL };
    int committed = 0;
    int rc = e2w_agent_job_checkpoint(c->job, (uint32_t)step, c->as->rank == 0 ? NULL : none, 0,
                                      &committed, err, errlen);
    if (rc < 0) return rc;
    c->last_ckpt_step = step;
    say(c, "checkpoint step %d reported%s", step, committed ? " (committed)" : "");
    return 0;
}

/* ---- data parallelism: e2w_comm over e2d's rendezvous store ---- */

static int rdzv_set(void *ud, const char *key, const void *value, size_t len, char *err,
                    size_t errlen) {
    return e2w_agent_job_rdzv_put(ud, key, value, len, err, errlen);
}

static int rdzv_get(void *ud, const char *key, int timeout_ms, void **value, size_t *len, char *err,
                    size_t errlen) {
    return e2w_agent_job_rdzv_get(ud, key, timeout_ms, value, len, err, errlen);
}

/* Gradients: each group the backward finished goes to the reducer, whose
 * thread sums it over the ranks while the backward goes on; the optimizer
 * waits for the last. The sum is the global mean: the trainer weights each
 * micro-batch by 1 / (GB R). */
static void on_grads_ready(void *ud, const e2w_grad_range *r, int nr) {
    runner_ctx *c = ud;
    e2w_reducer_range rr[8];
    while (nr > 0) {
        int n = nr < 8 ? nr : 8;
        for (int i = 0; i < n; i++) {
            rr[i].offset = r[i].offset;
            rr[i].n = r[i].n;
        }
        e2w_reducer_push(c->red, rr, n);
        r += n;
        nr -= n;
    }
}

static int on_grads_wait(void *ud, char *err, size_t errlen) {
    runner_ctx *c = ud;
    return e2w_reducer_wait(c->red, &c->exposed_s, err, errlen);
}

/* Host doubles (the loss): Gloo reduces host memory; NCCL needs them on
 * the device and back. */
static int on_allreduce_host(void *ud, double *x, size_t n, char *err, size_t errlen) {
    runner_ctx *c = ud;
    if (!c->comm_on_device)
        return e2w_comm_allreduce(c->comm, x, n, E2W_COMM_F64, E2W_COMM_SUM, err, errlen);
    if (n > c->dev_doubles_n) { /* once or twice per job, not per step */
        if (c->dev_doubles) c->k->free(c->dev_doubles);
        c->dev_doubles_n = 0;
        if (!(c->dev_doubles = c->k->alloc(n * sizeof *x)))
            return e2_errf(err, errlen, "comm: out of device memory");
        c->dev_doubles_n = n;
    }
    void *d = c->dev_doubles;
    c->k->upload_raw(d, x, n * sizeof *x);
    int rc = e2w_comm_order_after(c->comm, c->k->stream ? c->k->stream() : NULL, err, errlen);
    if (rc == 0) rc = e2w_comm_allreduce(c->comm, d, n, E2W_COMM_F64, E2W_COMM_SUM, err, errlen);
    if (rc == 0) c->k->download_raw(x, d, n * sizeof *x);
    return rc;
}

/* ZeRO-1: the updated parameters (and, at a checkpoint, the optimizer
 * state's pieces) gathered from every rank's shard, on the backend's
 * device; a device engine waits for the kernels that wrote them. */
static int on_allgather(void *ud, void *buf, size_t n, k_dtype dtype, char *err, size_t errlen) {
    runner_ctx *c = ud;
    double t0 = mono_s();
    int rc = e2w_comm_order_after(c->comm, c->k->stream ? c->k->stream() : NULL, err, errlen);
    if (rc == 0)
        rc = e2w_comm_allgather(c->comm, buf, n, dtype == K_BF16 ? E2W_COMM_BF16 : E2W_COMM_F32,
                                err, errlen);
    c->gather_s += mono_s() - t0;
    return rc;
}

static void on_abort(void *data) {
    e2w_comm_abort(data);
}

/* How many ranks say yes; -1 when the collective failed (comm_err says
 * why). */
static int ranks_agree(runner_ctx *c, int yes) {
    double v = yes ? 1.0 : 0.0;
    if (on_allreduce_host(c, &v, 1, c->comm_err, sizeof c->comm_err) < 0) {
        c->comm_failed = 1;
        return E2_ERR;
    }
    return (int)(v + 0.5);
}

/* Every rank must stop at the same step boundary, or the others would wait
 * for it in the next all-reduce: with several ranks, one rank's stop (a
 * Cancel seen first there) stops them all. */
static int on_should_stop(void *ud) {
    runner_ctx *c = ud;
    int stop = e2w_agent_job_should_stop(c->job) != E2W_AGENT_RUN;
    if (!c->comm) return stop;
    return ranks_agree(c, stop) != 0;
}

/* Connects the ranks of the attempt: Gloo for cpu, NCCL for cuda. The Gloo
 * address comes from E2_COMM_IFACE (an interface) or E2_COMM_HOST (a host
 * name or address), else loopback: ranks on one machine. */
static int comm_connect(runner_ctx *c, const E2__V1__JobSpec *spec, char *err, size_t errlen) {
    e2w_comm_config cc = { 0 };
    cc.engine = strcmp(spec->device, "cuda") ? E2W_COMM_GLOO : E2W_COMM_NCCL;
    cc.rank = (int)c->as->rank;
    cc.world_size = (int)c->as->world_size;
    cc.timeout_ms = E2W_AGENT_COMM_TIMEOUT_MS;
    cc.hostname = getenv("E2_COMM_HOST");
    cc.iface = getenv("E2_COMM_IFACE");
    cc.store.ud = c->job;
    cc.store.set = rdzv_set;
    cc.store.get = rdzv_get;
    if (e2w_comm_init(&c->comm, &cc, err, errlen) < 0) return E2_ERR;
    c->comm_on_device = cc.engine == E2W_COMM_NCCL;
    e2w_agent_job_set_abort(c->job, on_abort, c->comm);
    return 0;
}

static void comm_close(runner_ctx *c) {
    e2w_reducer_free(c->red);
    c->red = NULL;
    if (c->dev_doubles) c->k->free(c->dev_doubles);
    c->dev_doubles = NULL;
    c->dev_doubles_n = 0;
    if (!c->comm) return;
    e2w_agent_job_set_abort(c->job, NULL, NULL);
    e2w_comm_free(c->comm);
    c->comm = NULL;
}

/* ---- evaluation (rank 0) ---- */

/* Hands the rows to the result as e2.v1.EvalResult messages (each row
 * malloc'd on its own: the agent frees them as unpacked messages) and as
 * eval.json text. */
static int eval_to_result(const e2w_eval_results *ev, e2w_agent_result *res) {
    if (ev->n == 0) return 0;
    res->eval = calloc((size_t)ev->n, sizeof *res->eval);
    res->eval_json = e2w_eval_results_json(ev);
    if (!res->eval || !res->eval_json) return E2_ERR;
    for (int i = 0; i < ev->n; i++) {
        const e2w_eval_row *w = &ev->rows[i];
        E2__V1__EvalResult *r = malloc(sizeof *r);
        if (!r) return E2_ERR;
        e2__v1__eval_result__init(r);
        res->eval[res->n_eval++] = r;
        r->has_window = 1, r->window = (uint32_t)w->window;
        r->has_scale = 1, r->scale = w->scale;
        r->has_before_training = 1, r->before_training = !strcmp(w->tag, "base");
        if (w->tokens) {
            r->has_loss = 1, r->loss = w->nll;
            r->has_perplexity = 1, r->perplexity = w->ppl;
            r->has_tokens = 1, r->tokens = w->tokens;
        }
        if (w->passkey_trials) {
            r->has_passkey_trials = 1, r->passkey_trials = (uint32_t)w->passkey_trials;
            r->has_passkey_correct = 1, r->passkey_correct = (uint32_t)w->passkey_correct;
        }
    }
    return 0;
}

/* ---- the runner ---- */

/* The agent's outcome of a failure class: a diverged run is the user's to
 * fix, as a bad spec or data is. */
static int outcome_of(e2w_job_fail f) {
    return f == E2W_JOB_FAIL_USER || f == E2W_JOB_FAIL_NAN ? E2__V1__OUTCOME__OUTCOME_FAILED_USER
                                                           : E2__V1__OUTCOME__OUTCOME_FAILED_INFRA;
}

/* Data problems are the job's and are found before training, not after:
 * every training shard's header (e2d's manifest, else the spec's
 * patterns), and the eval shards as evaluation will read them (headers
 * and the vocabulary). */
static int preflight_data(const E2__V1__JobSpec *spec, uint32_t vocab, const e2_shard_list *shards,
                          char *err, size_t errlen) {
    e2w_dataset *ds = NULL;
    const E2__V1__DataSpec *d = spec->data;
    e2_shard_list files = { 0 };
    int rc = shards->n ? 0
                       : e2_shards_expand(d->train_shards, d->n_train_shards,
                                          "spec.data.train_shards", &files, err, errlen);
    if (rc == 0) rc = e2w_dataset_open(&ds, shards->n ? shards : &files, 1, err, errlen);
    e2_shards_free(&files);
    if (rc < 0) return E2_ERR;
    e2w_dataset_close(ds);
    if (d->n_eval_shards == 0 || !spec->eval || spec->eval->n_windows == 0) return 0;
    rc = e2_shards_expand(d->eval_shards, d->n_eval_shards, "spec.data.eval_shards", &files, err,
                          errlen);
    if (rc == 0) rc = e2w_dataset_open(&ds, &files, 1, err, errlen);
    e2_shards_free(&files);
    if (rc < 0) return E2_ERR;
    rc = vocab ? e2w_dataset_check_vocab(ds, vocab, err, errlen) : 0;
    e2w_dataset_close(ds);
    if (rc < 0) return E2_ERR;
    return 0;
}

/* Cancel leaves room for a final checkpoint when the deadline allows a
 * step's worth of time plus a second, on every rank (a checkpoint commits
 * only once all ranks reported it). */
static void final_checkpoint(runner_ctx *c, e2w_train *t) {
    int64_t deadline = e2w_agent_job_cancel_deadline(c->job);
    int step = e2w_train_step(t);
    int go = e2w_agent_job_should_stop(c->job) == E2W_AGENT_CANCEL && deadline &&
             step != c->last_ckpt_step && step > (int)c->as->start_step &&
             deadline - wall_ms() >= (int64_t)(c->last_step_s * 1000.0) + 1000;
    if (c->comm && !c->comm_failed) go = ranks_agree(c, go) == (int)c->as->world_size;
    if (!go) return;
    char err[E2_ERRLEN];
    if (e2w_train_checkpoint(t, err, sizeof err) < 0) say(c, "final checkpoint failed: %s", err);
}

void e2w_agent_train_runner(e2w_agent_job *job, e2w_agent_result *res, void *data) {
    (void)data;
    const E2__V1__Assignment *as = e2w_agent_job_assignment(job);
    runner_ctx c = { .job = job, .as = as, .last_ckpt_step = -1 };
    char err[E2_ERRLEN] = "";
    e2w_train *t = NULL;
    e2w_eval_results ev;
    e2w_eval_results_init(&ev);
    E2__V1__JobSpec *spec = NULL;
    e2_shard_list shards = { 0 }; /* e2d's shard manifest, as the trainer reads it */
    if (as->spec) spec = (E2__V1__JobSpec *)e2_pbjson_copy(&as->spec->base);
    if (!spec) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_USER, "the assignment carries no spec");
        return;
    }
    const e2w_agent_config *acfg = e2w_agent_job_config(job);
    /* As `e2worker run`, after every file the spec names is checked
     * against this worker's data roots (links resolved), before any is
     * opened: e2d checked the text at submit, this machine's files may
     * differ. */
    e2w_resolve_opts ro = { .data_roots = acfg->data_roots, .export_root = acfg->export_root };
    E2__V1__LlamaConfig arch = E2__V1__LLAMA_CONFIG__INIT;
    if (e2w_spec_resolve(spec, &ro, &arch, err, sizeof err) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_USER, err);
        goto done;
    }
    const k_backend *k = k_get(spec->device);
    if (!k) {
        snprintf(err, sizeof err, "spec.device '%s' is not available on this worker", spec->device);
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, err);
        goto done;
    }
    c.k = k;
    if (as->world_size > 1 && comm_connect(&c, spec, err, sizeof err) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, err);
        goto done;
    }
    c.log_every = spec->has_log_every && spec->log_every ? spec->log_every : 1;
    e2w_train_hooks hooks = {
        .ud = &c,
        .rank = (int)as->rank,
        .world_size = (int)(as->world_size ? as->world_size : 1),
        .progress = on_progress,
        .checkpoint = on_checkpoint,
        .should_stop = on_should_stop,
        .grad_ready = c.comm ? on_grads_ready : NULL,
        .grad_wait = c.comm ? on_grads_wait : NULL,
        .allgather = c.comm ? on_allgather : NULL,
        .allreduce_host = c.comm ? on_allreduce_host : NULL,
    };
    /* A worker that sees other shard files than e2d found is a fault of
     * that machine's storage, not of the job. */
    if (e2w_agent_shard_files(as, &shards, err, sizeof err) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, err);
        say(&c, "failed: %s", err);
        goto done;
    }
    for (size_t i = 0; i < as->n_train_shards; i++)
        if (e2_spec_check_path_root("data: shard of e2d's manifest", as->train_shards[i]->path,
                                    acfg->data_roots, err, sizeof err) < 0) {
            finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_USER, err);
            say(&c, "failed: %s", err);
            goto done;
        }
    hooks.shard_files = shards.n ? &shards : NULL;
    if (preflight_data(spec, arch.vocab_size, &shards, err, sizeof err) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_USER, err);
        say(&c, "failed: %s", err);
        goto done;
    }
    if (e2_mkdir_p(as->job_dir, 0755, err, sizeof err) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, err);
        goto done;
    }
    int rc = e2w_train_create(&t, spec, k, as->job_dir, &hooks, err, sizeof err);
    if (rc < 0) {
        /* The trainer's set-up failures the job's data or size cause are
         * met again by every retry: a user error. */
        int outcome = outcome_of(e2w_job_fail_of(rc));
        if (rc == E2W_TRAIN_ENOMEM) {
            char why[E2_ERRLEN];
            snprintf(why, sizeof why,
                     "the model does not fit this worker's memory (%s): use more workers "
                     "with train.zero1, train.recompute or a smaller train.micro_batch",
                     err);
            snprintf(err, sizeof err, "%s", why);
        }
        finish(res, outcome, err);
        say(&c, "failed: %s", err);
        goto done;
    }
    if (c.comm && e2w_reducer_create(&c.red, c.comm, e2w_train_model(t)->grads,
                                     k->grad_dtype == K_BF16 ? E2W_COMM_BF16 : E2W_COMM_F32,
                                     k->stream ? k->stream() : NULL, err, sizeof err) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, err);
        goto done;
    }
    say(&c, "job %s attempt %u rank %u/%u on %s, job dir %s", as->job_id, as->attempt, as->rank,
        hooks.world_size, k->name, as->job_dir);
    if (shards.n)
        say(&c, "data: %zu shard file%s of e2d's manifest, sizes checked", shards.n,
            shards.n == 1 ? "" : "s");
    else
        say(&c, "data: no shard manifest from e2d; spec.data.train_shards expanded here");
    e2w_train_memory mem;
    e2w_train_memory_report(t, &mem);
    c.zero1 = c.comm && spec->train->zero1;
    say(&c,
        "memory: %zu parameters; bytes: weights %zu, gradients %zu, optimizer %zu%s, "
        "activations %zu",
        mem.n_params, mem.param_bytes, mem.grad_bytes, mem.optim_bytes,
        c.zero1 ? " (ZeRO-1: this rank's shard)" : "", mem.act_bytes);
    e2w_job_drive_opts drive = { .own_ckpt = as->resume_checkpoint,
                                 .verify_manifest = 1,
                                 .evaluate = as->rank == 0,
                                 .log_eval_rows = 1,
                                 .say = say_line,
                                 .resumed = on_resumed,
                                 .ud = &c };
    e2w_job_fail fail;
    int r = e2w_job_drive(t, &drive, &ev, &fail, err, sizeof err);
    if (r < 0) {
        if (e2w_agent_job_should_stop(job) == E2W_AGENT_ABORT)
            finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, "aborted");
        else
            finish(res, outcome_of(fail), err);
        say(&c, "failed: %s", err);
        goto done;
    }
    if (r == 1) {
        int aborted = e2w_agent_job_should_stop(job) == E2W_AGENT_ABORT;
        if (!aborted && c.comm_failed) {
            finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, c.comm_err);
            say(&c, "failed: %s", c.comm_err);
            goto done;
        }
        if (!aborted) final_checkpoint(&c, t);
        snprintf(err, sizeof err, "%s at step %d", aborted ? "aborted" : "cancelled",
                 e2w_train_step(t));
        say(&c, "%s", err);
        finish(res,
               aborted ? E2__V1__OUTCOME__OUTCOME_FAILED_INFRA : E2__V1__OUTCOME__OUTCOME_CANCELLED,
               err);
        goto done;
    }
    if (as->rank == 0 && eval_to_result(&ev, res) < 0) {
        finish(res, E2__V1__OUTCOME__OUTCOME_FAILED_INFRA, "out of memory");
        goto done;
    }
    finish(res, E2__V1__OUTCOME__OUTCOME_SUCCEEDED, "");
done:
    comm_close(&c);
    e2w_train_free(t);
    e2_shards_free(&shards);
    e2_spec_free(spec);
    e2w_eval_results_free(&ev);
}
