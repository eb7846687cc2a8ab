/* sched.c -- the worker registry and the scheduler.
 *
 * Workers register, heartbeat and are declared LOST after
 * --heartbeat-timeout without a heartbeat. Jobs are gang-scheduled: a job
 * starts only when num_workers idle workers of its device kind exist, all
 * ranks at once. The queue is SQLite's (PENDING and RESTARTING jobs,
 * higher priority first, FIFO within a priority); per device kind the
 * first job that does not fit the idle workers blocks the ones behind it,
 * so a large job is never starved by a stream of small ones. A job that
 * cannot fit even the registered workers of its device (LOST ones not
 * counted) blocks nothing: it stays PENDING as unschedulable, with the
 * reason in Job.reason, and the jobs behind it are backfilled. A
 * RESTARTING job with spec.min_workers below num_workers is elastic: once
 * the ranks of its failed attempt have stopped (or a heartbeat timeout
 * after their Abort), it starts on the idle workers there are, between
 * min_workers and num_workers of them (the most that divide its global
 * batch), instead of waiting for all; it does not grow back during that
 * attempt. Every
 * event that can change the answer runs a pass: a transition (submit,
 * cancel, end of an attempt), a worker registering, going idle or lost.
 *
 * Commands for a worker (assignment, cancel, abort) are queued on it and
 * delivered in its next heartbeat reply. An attempt ends on a lost worker,
 * a worker process exit, a rank reporting an infrastructure failure, or a
 * hang (no step progress within --hang-timeout); the other ranks get an
 * Abort and the job is re-queued from its last committed checkpoint while
 * spec.max_restarts lasts. User errors are never retried. A worker e2d
 * spawned itself that goes silent, or still holds its rank a heartbeat
 * timeout after an Abort, is killed (local.c starts a fresh one in its
 * place). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "expand.h"
#include "local.h"
#include "scheduler.h"
#include "spec.h"

#define WS_IDLE E2__V1__WORKER_STATE__WORKER_STATE_IDLE
#define WS_BUSY E2__V1__WORKER_STATE__WORKER_STATE_BUSY
#define WS_LOST E2__V1__WORKER_STATE__WORKER_STATE_LOST

void e2_sched_worker_save(e2d_server *srv, e2d_worker *w) {
    char err[E2_ERRLEN];
    w->row.last_heartbeat_ms = w->seen_wall_ms;
    if (e2_store_worker_put(srv->db, &w->row, err, sizeof err) < 0)
        e2d_log("worker %s: saving failed: %s", w->row.id, err);
}

void e2_sched_worker_push(e2d_worker *w, E2__V1__Command *c) {
    E2__V1__Command **v = realloc(w->cmds, (w->ncmds + 1) * sizeof *v);
    if (!v) {
        protobuf_c_message_free_unpacked(&c->base, NULL);
        return;
    }
    w->cmds = v;
    w->cmds[w->ncmds++] = c;
}

static void sched_worker_clear_cmds(e2d_worker *w) {
    for (size_t i = 0; i < w->ncmds; i++) protobuf_c_message_free_unpacked(&w->cmds[i]->base, NULL);
    free(w->cmds);
    w->cmds = NULL;
    w->ncmds = 0;
}

void e2_sched_queue_abort(e2d_worker *w, const char *job, int attempt, const char *reason) {
    E2__V1__Command *c = malloc(sizeof *c);
    E2__V1__Abort *a = malloc(sizeof *a);
    if (!c || !a) {
        free(c);
        free(a);
        return;
    }
    e2__v1__command__init(c);
    e2__v1__abort__init(a);
    a->job_id = strdup(job);
    a->has_attempt = 1;
    a->attempt = (uint32_t)attempt;
    a->reason = strdup(reason);
    c->kind_case = E2__V1__COMMAND__KIND_ABORT;
    c->abort = a;
    e2_sched_worker_push(w, c);
    if (!w->abort_ms) /* repeated Aborts do not postpone the kill */
        w->abort_ms = e2d_mono_ms();
}

/* The worker's deadline is on the wall clock (it is another host's):
 * `left_ms` from now. */
static void sched_queue_cancel(e2d_worker *w, const char *job, int attempt, int64_t left_ms) {
    E2__V1__Command *c = malloc(sizeof *c);
    E2__V1__Cancel *k = malloc(sizeof *k);
    if (!c || !k) {
        free(c);
        free(k);
        return;
    }
    e2__v1__command__init(c);
    e2__v1__cancel__init(k);
    k->job_id = strdup(job);
    k->has_attempt = 1;
    k->attempt = (uint32_t)attempt;
    k->has_deadline_unix_ms = 1;
    k->deadline_unix_ms = e2d_now_ms() + left_ms;
    c->kind_case = E2__V1__COMMAND__KIND_CANCEL;
    c->cancel = k;
    e2_sched_worker_push(w, c);
}

/* The worker holds rank `rank` of (job, attempt). */
static int sched_worker_holds(const e2d_worker *w, const char *job, int attempt) {
    return w->row.state != WS_LOST && !strcmp(w->row.job, job) && w->row.attempt == attempt;
}

void e2_sched_worker_idle(e2d_server *srv, e2d_worker *w) {
    if (w->row.state == WS_LOST) return;
    w->row.state = WS_IDLE;
    w->row.job[0] = 0;
    w->row.attempt = 0;
    w->row.rank = -1;
    w->draining = 0;
    w->abort_ms = 0;
    w->assign_out = 0;
    e2_sched_worker_save(srv, w);
    srv->sched_pending = 1;
}

/* ---- runs ---- */

static void sched_run_free(e2d_run *r) {
    while (r->pending) {
        e2d_pending_ckpt *p = r->pending;
        r->pending = p->next;
        e2_ckpt_pending_free(p);
    }
    free(r->workers);
    free(r->outcome);
    free(r->progressed);
    free(r->steps);
    free(r->tps);
    free(r->killed);
    free(r);
}

static e2d_run *sched_run_new(e2d_server *srv, const char *job, int attempt, int world,
                              int64_t start_step) {
    e2d_run *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->workers = calloc((size_t)world, sizeof *r->workers);
    r->outcome = calloc((size_t)world, sizeof *r->outcome);
    r->progressed = calloc((size_t)world, 1);
    r->steps = calloc((size_t)world, sizeof *r->steps);
    r->tps = calloc((size_t)world, sizeof *r->tps);
    if (!r->workers || !r->outcome || !r->progressed || !r->steps || !r->tps) {
        sched_run_free(r);
        return NULL;
    }
    snprintf(r->job, sizeof r->job, "%s", job);
    r->attempt = attempt;
    r->world = world;
    r->start_step = start_step;
    r->last_step = start_step;
    for (int i = 0; i < world; i++) r->steps[i] = -1;
    r->started_ms = r->last_progress_ms = e2d_mono_ms();
    e2d_run_link(srv, r);
    return r;
}

void e2_sched_run_end(e2d_server *srv, e2d_run *run, const char *why) {
    for (int i = 0; i < run->world; i++) {
        e2d_worker *w = e2d_worker_find(srv, run->workers[i]);
        if (!w || !sched_worker_holds(w, run->job, run->attempt) || run->outcome[i]) continue;
        e2_sched_queue_abort(w, run->job, run->attempt, why);
        w->draining = 1;
    }
    e2d_run_unlink(srv, run);
    sched_run_free(run);
}

static int sched_load(e2d_server *srv, const char *id, e2_store_job *j) {
    char err[E2_ERRLEN];
    if (e2_store_job_get(srv->db, id, j, err, sizeof err) < 0) {
        e2d_log("job %s: %s", id, err);
        return E2_ERR;
    }
    return 0;
}

void e2_sched_attempt_failed(e2d_server *srv, e2d_run *run, int rank, int exit_code, int sig,
                             const char *reason) {
    e2_store_job j;
    char why[1024];
    int attempt = run->attempt;
    if (sched_load(srv, run->job, &j) < 0) {
        e2_sched_run_end(srv, run, reason);
        return;
    }
    e2d_job_set_failure(srv, &j, rank, rank >= 0 && rank < run->world ? run->workers[rank] : NULL,
                        exit_code, sig, 0);
    e2_sched_run_end(srv, run, reason);
    if (j.state == E2_JOBSTATE_CANCELLING) {
        snprintf(why, sizeof why, "cancelled (attempt %d ended: %s)", attempt, reason);
        e2d_job_transition(srv, &j, E2_JOBSTATE_CANCELLED, why);
    } else if (j.restarts < j.max_restarts) {
        j.restarts++;
        snprintf(why, sizeof why, "attempt %d failed: %s; restart %d of %d", attempt, reason,
                 j.restarts, j.max_restarts);
        e2d_job_transition(srv, &j, E2_JOBSTATE_RESTARTING, why);
    } else {
        snprintf(why, sizeof why, "attempt %d failed: %s; restart budget spent (%d of %d)", attempt,
                 reason, j.restarts, j.max_restarts);
        e2d_job_transition(srv, &j, E2_JOBSTATE_FAILED, why);
    }
    e2_store_job_free(&j);
}

/* ---- scheduling ---- */

/* The assignment's shard manifest: the files common/shards found for
 * spec.data.train_shards (expand.c), with their sizes. All or nothing: out
 * of memory leaves it empty and the ranks expand the patterns themselves. */
static void sched_shard_manifest(E2__V1__Assignment *a, const e2_shard_list *files) {
    E2__V1__ShardFile **f = calloc(files->n, sizeof *f);
    size_t n = 0;
    for (; f && n < files->n; n++) {
        if (!(f[n] = malloc(sizeof *f[n]))) break;
        e2__v1__shard_file__init(f[n]);
        f[n]->has_bytes = 1;
        f[n]->bytes = files->bytes[n];
        if (!(f[n]->path = strdup(files->paths[n]))) break;
    }
    if (f && n == files->n) {
        a->train_shards = f;
        a->n_train_shards = n;
        return;
    }
    for (size_t k = 0; f && k <= n && k < files->n; k++)
        if (f[k]) protobuf_c_message_free_unpacked(&f[k]->base, NULL);
    free(f);
}

/* Copies rank 0's manifest into another rank's assignment (the expansion
 * runs once per attempt); on failure that rank expands the patterns. */
static void sched_shard_copy(E2__V1__Assignment *a, const E2__V1__Assignment *from) {
    size_t n = from->n_train_shards;
    if (n == 0 || !(a->train_shards = calloc(n, sizeof *a->train_shards))) return;
    for (size_t i = 0; i < n; i++) {
        E2__V1__ShardFile *f = malloc(sizeof *f);
        if (f) {
            e2__v1__shard_file__init(f);
            f->has_bytes = 1;
            f->bytes = from->train_shards[i]->bytes;
            f->path = strdup(from->train_shards[i]->path);
        }
        if (!f || !f->path) {
            free(f);
            break;
        }
        a->train_shards[a->n_train_shards++] = f;
    }
    if (a->n_train_shards == n) return;
    for (size_t i = 0; i < a->n_train_shards; i++)
        protobuf_c_message_free_unpacked(&a->train_shards[i]->base, NULL);
    free(a->train_shards);
    a->train_shards = NULL;
    a->n_train_shards = 0;
}

/* The assignment of one rank; like: rank 0's, whose shard manifest it
 * shares, or NULL for rank 0, whose manifest is files (NULL: none). */
static E2__V1__Command *sched_assignment(e2d_server *srv, const e2_store_job *j, int rank,
                                         const char *ckpt, int64_t start_step,
                                         const E2__V1__Assignment *like,
                                         const e2_shard_list *files) {
    char err[E2_ERRLEN], dir[E2_JOBDIR_PATHLEN];
    E2__V1__Command *c = malloc(sizeof *c);
    E2__V1__Assignment *a = malloc(sizeof *a);
    if (!c || !a) {
        free(c);
        free(a);
        return NULL;
    }
    e2__v1__command__init(c);
    e2__v1__assignment__init(a);
    c->kind_case = E2__V1__COMMAND__KIND_ASSIGNMENT;
    c->assignment = a;
    a->job_id = strdup(j->id);
    a->has_attempt = a->has_rank = a->has_world_size = a->has_start_step = 1;
    a->attempt = (uint32_t)j->attempt;
    a->rank = (uint32_t)rank;
    a->world_size = (uint32_t)j->world_size;
    a->start_step = (uint32_t)(start_step > 0 ? start_step : 0);
    /* The packed spec (no JSON parse on the loop thread); rows from
     * before schema 4 have only the JSON. */
    if (j->spec_pb) {
        a->spec = e2__v1__job_spec__unpack(NULL, j->spec_pb_len, j->spec_pb);
        snprintf(err, sizeof err, "the packed spec does not unpack");
    } else {
        a->spec = e2_spec_parse(j->spec_json, strlen(j->spec_json), err, sizeof err);
    }
    e2_jobdir_path(srv->cfg.state_dir, j->id, dir);
    a->job_dir = strdup(dir);
    a->resume_checkpoint = strdup(ckpt ? ckpt : "");
    if (!a->spec) {
        e2d_log("job %s: stored spec does not parse: %s", j->id, err);
        protobuf_c_message_free_unpacked(&c->base, NULL);
        return NULL;
    }
    if (like)
        sched_shard_copy(a, like);
    else if (files)
        sched_shard_manifest(a, files);
    return c;
}

/* An assignment above E2D_ASSIGNMENT_MAX_BYTES (its shard manifest, in
 * practice) would not reach the worker: the job FAILS now as a user error
 * with the sizes and the fix. Returns 1 when it did. */
static int sched_assignment_too_big(e2d_server *srv, e2_store_job *j,
                                    const E2__V1__Command *first) {
    size_t n = protobuf_c_message_get_packed_size(&first->base);
    char why[512];
    if (n <= E2D_ASSIGNMENT_MAX_BYTES) return 0;
    snprintf(why, sizeof why,
             "the assignment is %.1f MiB (shard manifest of %zu files), above "
             "the %u MiB a worker accepts: use fewer, larger shards "
             "(spec.data.train_shards); user error, not retried",
             (double)n / 1048576.0, first->assignment->n_train_shards,
             E2D_ASSIGNMENT_MAX_BYTES >> 20);
    j->user_errors++;
    j->fail_user = 1;
    e2d_job_transition(srv, j, E2_JOBSTATE_FAILED, why);
    return 1;
}

/* Starts attempt j->attempt + 1 on the first `world` of the given workers
 * (all idle, of j's device kind): rows and transition in one
 * transaction, then commands. files: rank 0's shard manifest (NULL: none). */
static int sched_start(e2d_server *srv, e2_store_job *j, e2d_worker **gang, int world,
                       const e2_shard_list *files) {
    char err[E2_ERRLEN], ckpt[E2_JOBDIR_PATHLEN], reason[1024];
    size_t off;
    int attempt = j->attempt + 1, old_world = j->world_size;
    int64_t step = e2_ckpt_latest(srv, j->id, ckpt);
    E2__V1__Command *first;
    e2d_run *run;
    if (e2_jobdir_attempt_start(srv->cfg.state_dir, j->id, attempt, err, sizeof err) < 0) {
        e2d_log("job %s: cannot prepare attempt %d: %s", j->id, attempt, err);
        return E2_ERR;
    }
    off = (size_t)snprintf(reason, sizeof reason, "attempt %d on ", attempt);
    for (int r = 0; r < world && off < sizeof reason; r++)
        off += (size_t)snprintf(reason + off, sizeof reason - off, "%s%s", r ? "," : "",
                                gang[r]->row.id);
    if (world < j->num_workers && off < sizeof reason)
        off += (size_t)snprintf(reason + off, sizeof reason - off,
                                " (elastic: world size %d of num_workers %d, min_workers %d)",
                                world, j->num_workers, j->min_workers);
    if (step >= 0 && off < sizeof reason)
        snprintf(reason + off, sizeof reason - off, ", resuming from checkpoint step %lld",
                 (long long)step);
    /* Rank 0's assignment carries the shard manifest, the others copy it;
     * it is handed over last, when nothing reads it any more. One that
     * would not fit a worker's message limit fails the job here, with the
     * reason, instead of being lost on the way. */
    j->attempt = attempt;
    j->world_size = world;
    first = sched_assignment(srv, j, 0, step >= 0 ? ckpt : "", step, NULL, files);
    j->attempt = attempt - 1;
    j->world_size = old_world;
    if (first && sched_assignment_too_big(srv, j, first)) {
        protobuf_c_message_free_unpacked(&first->base, NULL);
        return E2_ERR;
    }
    if (!(run = sched_run_new(srv, j->id, attempt, world, step > 0 ? step : 0))) {
        if (first) protobuf_c_message_free_unpacked(&first->base, NULL);
        return E2_ERR;
    }
    if (e2_store_begin(srv->db, err, sizeof err) < 0) goto fail;
    j->attempt = attempt;
    j->world_size = world;
    j->step = step > 0 ? step : 0;
    for (int r = 0; r < world; r++) {
        e2d_worker *w = gang[r];
        w->row.state = WS_BUSY;
        snprintf(w->row.job, sizeof w->row.job, "%s", j->id);
        w->row.attempt = attempt;
        w->row.rank = r;
        w->draining = 0;
        w->abort_ms = 0;
        w->assign_out = 0;
        e2_sched_worker_save(srv, w);
        snprintf(run->workers[r], sizeof run->workers[r], "%s", w->row.id);
    }
    if (e2_store_end(srv->db,
                     e2_store_rdv_clear(srv->db, j->id, attempt, err, sizeof err) == 0 &&
                         e2_store_metric_trim(srv->db, j->id, j->step, err, sizeof err) == 0 &&
                         e2d_job_transition(srv, j, E2_JOBSTATE_STARTING, reason) == 0,
                     err, sizeof err) < 0)
        goto fail_tx;
    if (world < j->num_workers)
        e2d_log("job %s: elastic restart: attempt %d runs on %d of %d workers (min_workers %d)",
                j->id, attempt, world, j->num_workers, j->min_workers);
    for (int r = 1; r < world; r++) {
        E2__V1__Command *c = sched_assignment(srv, j, r, step >= 0 ? ckpt : "", step,
                                              first ? first->assignment : NULL, NULL);
        if (c) e2_sched_worker_push(gang[r], c);
    }
    if (first) e2_sched_worker_push(gang[0], first);
    return 0;
fail_tx:
    e2d_log("job %s: start failed: %s", j->id, err);
    j->attempt = attempt - 1;
    j->world_size = old_world;
    for (int r = 0; r < world; r++) {
        gang[r]->row.state = WS_IDLE;
        gang[r]->row.job[0] = 0;
        gang[r]->row.attempt = 0;
        gang[r]->row.rank = -1;
    }
fail:
    e2d_run_unlink(srv, run);
    sched_run_free(run);
    if (first) protobuf_c_message_free_unpacked(&first->base, NULL);
    return E2_ERR;
}

typedef struct sched_queue_ctx {
    char (*ids)[E2_STORE_IDLEN];
    char (*devs)[16]; /* each job's device, to skip a blocked one unread */
    size_t n, cap;
} sched_queue_ctx;

static int sched_collect(void *ud, const char *id, const char *device) {
    sched_queue_ctx *q = ud;
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        void *v = realloc(q->ids, cap * sizeof *q->ids);
        if (!v) return 1;
        q->ids = v;
        if (!(v = realloc(q->devs, cap * sizeof *q->devs))) return 1;
        q->devs = v;
        q->cap = cap;
    }
    snprintf(q->devs[q->n], sizeof q->devs[0], "%s", device);
    snprintf(q->ids[q->n++], E2_STORE_IDLEN, "%s", id);
    return 0;
}

static int sched_collect_job(void *ud, const e2_store_job *j) {
    return sched_collect(ud, j->id, j->device);
}

static int sched_idle(const e2d_worker *w, const char *device) {
    return w->row.state == WS_IDLE && !w->draining && !w->leaving && !strcmp(w->row.device, device);
}

/* Workers of a device kind that are registered and not LOST. */
/* 1 when an assignment failed to reach w in the last minute. */
static int sched_missed(const e2d_worker *w) {
    return w->missed_ms && e2d_mono_ms() - w->missed_ms < 60000;
}

static int sched_registered(e2d_server *srv, const char *device) {
    int n = 0;
    for (e2d_worker *w = srv->workers; w; w = w->next)
        n += w->row.state != WS_LOST && !strcmp(w->row.device, device);
    return n;
}

#define SCHED_UNSCHEDULABLE "unschedulable: "

/* Says in the job's reason (stored, shown by GetJob; no event) why it
 * waits, when that changed: too few workers of its device registered
 * (parked; it blocks nothing), or enough registered but busy. `need`:
 * the workers it can start on (num_workers, or min_workers when elastic).
 * The saves of one pass share one transaction (*tx: open), which the pass
 * commits before it starts a job and at its end: one commit instead of
 * one per queued job (with 1,000 parked jobs, 1,000 fsyncs stalled the
 * loop for seconds). */
static void sched_wait_reason(e2d_server *srv, e2_store_job *j, int registered, int need, int *tx) {
    char why[256], err[E2_ERRLEN];
    int parked = registered < need;
    int was = j->reason && !strncmp(j->reason, SCHED_UNSCHEDULABLE, strlen(SCHED_UNSCHEDULABLE));
    char *copy;
    if (!parked && !was) return;
    if (parked)
        snprintf(why, sizeof why,
                 SCHED_UNSCHEDULABLE "needs %d %s worker%s, "
                                     "%d registered; it waits for more and holds up no other job",
                 need, j->device, need == 1 ? "" : "s", registered);
    else
        snprintf(why, sizeof why, "waiting for %d idle %s worker%s", need, j->device,
                 need == 1 ? "" : "s");
    if (j->reason && !strcmp(j->reason, why)) return;
    if (!(copy = strdup(why))) return;
    free(j->reason);
    j->reason = copy;
    if (!*tx) {
        if (e2_store_begin(srv->db, err, sizeof err) < 0)
            e2d_log("scheduler: %s", err);
        else
            *tx = 1;
    }
    if (e2d_job_save(srv, j) == 0 && parked) e2d_log("job %s: %s", j->id, why);
}

/* The job may restart on fewer than num_workers workers (see the top). */
static int sched_elastic(const e2_store_job *j) {
    return j->state == E2_JOBSTATE_RESTARTING && j->min_workers > 0 &&
           j->min_workers < j->num_workers;
}

/* A rank of j's last attempt is still stopping on w (its Abort less than
 * a heartbeat timeout ago): an elastic restart waits for it. */
static int sched_draining_for(e2d_server *srv, const e2d_worker *w, const e2_store_job *j) {
    return w->row.state == WS_BUSY && w->draining && !strcmp(w->row.job, j->id) &&
           w->row.attempt == j->attempt &&
           (!w->abort_ms || e2d_mono_ms() - w->abort_ms < srv->hb_timeout_ms);
}

/* spec.train.global_batch of j (defaults applied); 0 if unreadable. */
static uint32_t sched_global_batch(const e2_store_job *j) {
    char err[E2_ERRLEN];
    uint32_t gb = 0;
    E2__V1__JobSpec *s = j->spec_pb
                             ? e2__v1__job_spec__unpack(NULL, j->spec_pb_len, j->spec_pb)
                             : e2_spec_parse(j->spec_json, strlen(j->spec_json), err, sizeof err);
    if (s && e2_spec_apply_defaults(s, err, sizeof err) == 0) gb = s->train->global_batch;
    if (s) e2_spec_free(s);
    return gb;
}

/* The world size of an elastic restart on `idle` workers: the largest
 * n in [min_workers, idle] that divides the global batch; 0: none. */
static int sched_elastic_world(const e2_store_job *j, int idle) {
    uint32_t gb = sched_global_batch(j);
    for (int n = idle; gb && n >= j->min_workers; n--)
        if (gb % (uint32_t)n == 0) return n;
    return 0;
}

/* Commits the waiting reasons a pass saved (sched_wait_reason). */
static void sched_reasons_commit(e2d_server *srv, int *tx) {
    char err[E2_ERRLEN];
    if (*tx && e2_store_end(srv->db, 1, err, sizeof err) < 0)
        e2d_log("scheduler: saving why jobs wait: %s", err);
    *tx = 0;
}

/* A held gang's shard manifest is ready (expand.c): the attempt starts as
 * it would have at once, when the job is still queued at the same attempt
 * (not cancelled meanwhile) and every worker of the gang is still idle
 * (none lost or drained); otherwise the workers are free for another
 * pass. A manifest that failed leaves the ranks to expand the patterns. */
static void sched_manifest_ready(e2d_server *srv, const e2d_expand_req *x,
                                 const e2_shard_list *files, const char *err) {
    e2_store_job j;
    e2d_worker **gang = calloc((size_t)x->n, sizeof *gang);
    int ok = gang && !srv->shutting_down && sched_load(srv, x->job, &j) == 0;
    if (ok) {
        ok = e2_jobstate_queued(j.state) && j.attempt == x->attempt;
        for (int r = 0; ok && r < x->n; r++)
            ok = (gang[r] = e2d_worker_find(srv, x->gang[r])) && sched_idle(gang[r], j.device);
        if (ok && !files) e2d_log("job %s: no shard manifest (%s)", j.id, err);
        if (ok) sched_start(srv, &j, gang, x->n, files);
        e2_store_job_free(&j);
    }
    if (!ok) srv->sched_pending = 1;
    free(gang);
}

void e2_sched_run_queue(e2d_server *srv) {
    char err[E2_ERRLEN], blocked[8][16];
    int nblocked = 0, idle = 0, tx = 0;
    sched_queue_ctx q = { 0 };
    struct timespec t0, t1;
    int64_t gap_ms;
    srv->sched_pending = 0;
    if (srv->shutting_down) return;
    for (e2d_worker *w = srv->workers; w; w = w->next)
        idle += w->row.state == WS_IDLE && !w->draining;
    if (!idle) return;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    if (e2_store_job_queued_ids(srv->db, sched_collect, &q, err, sizeof err) < 0)
        e2d_log("scheduler: %s", err);
    for (size_t i = 0; i < q.n; i++) {
        e2_store_job j;
        e2d_worker **gang;
        int n = 0, skip = 0, registered, need, world = 0;
        /* Behind a blocked job of its device: skipped without reading its
         * row again (the pass is O(queue); a read per job made it slow). */
        for (int b = 0; b < nblocked; b++) skip |= !strcmp(blocked[b], q.devs[i]);
        if (skip || e2d_expand_job_pending(srv, q.ids[i]) || sched_load(srv, q.ids[i], &j) < 0)
            continue;
        /* A job the registered workers can never hold blocks nothing. */
        registered = sched_registered(srv, j.device);
        need = sched_elastic(&j) ? j.min_workers : j.num_workers;
        sched_wait_reason(srv, &j, registered, need, &tx);
        skip = registered < need;
        if (skip || j.num_workers <= 0 || !(gang = calloc((size_t)j.num_workers, sizeof *gang))) {
            e2_store_job_free(&j);
            continue;
        }
        /* Workers an assignment recently failed to reach come last. */
        for (int late = 0; late < 2; late++)
            for (e2d_worker *w = srv->workers; w && n < j.num_workers; w = w->next)
                if (sched_idle(w, j.device) && sched_missed(w) == late &&
                    !e2d_expand_worker_held(srv, w))
                    gang[n++] = w;
        if (n == j.num_workers) {
            world = n;
        } else if (n >= need) { /* elastic, once the last attempt's ranks stopped */
            int stopping = 0;
            for (e2d_worker *w = srv->workers; w && !stopping; w = w->next)
                stopping = sched_draining_for(srv, w, &j);
            if (!stopping) world = sched_elastic_world(&j, n);
        }
        if (world > 0) {
            sched_reasons_commit(srv, &tx);
            if (e2d_expand_start(srv, &j, gang, world, sched_manifest_ready) != 0)
                sched_start(srv, &j, gang, world, NULL);
        } else if (nblocked < 8)
            snprintf(blocked[nblocked++], sizeof blocked[0], "%s", j.device);
        free(gang);
        e2_store_job_free(&j);
    }
    sched_reasons_commit(srv, &tx);
    free(q.ids);
    free(q.devs);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    srv->sched_passes++;
    srv->sched_pass_s += dt;
    if (dt > srv->sched_pass_max_s) srv->sched_pass_max_s = dt;
    gap_ms = (int64_t)(dt * 1e3 * E2D_SCHED_GAP_X);
    srv->sched_next_ms =
        e2d_mono_ms() + (gap_ms < E2D_SCHED_GAP_MAX_MS ? gap_ms : E2D_SCHED_GAP_MAX_MS);
}

/* A timer, not a synchronous pass: the handlers of one loop turn only
 * arm it, and the pass runs once, in the next turn's timer phase (0 ms) or
 * when the gap after the last pass has passed. */
static void sched_wake_cb(uv_timer_t *h) {
    e2d_server *srv = h->data;
    if (srv->sched_pending) e2_sched_run_queue(srv);
}

void e2_sched_request(e2d_server *srv) {
    int64_t wait;
    srv->sched_pending = 1;
    if (srv->shutting_down || !srv->loop) return;
    if (!srv->sched_wake_init) {
        if (uv_timer_init(srv->loop, &srv->sched_wake) != 0) return; /* cron runs it */
        srv->sched_wake.data = srv;
        srv->sched_wake_init = 1;
    }
    if (uv_is_active((uv_handle_t *)&srv->sched_wake)) return;
    wait = srv->sched_next_ms - e2d_mono_ms();
    uv_timer_start(&srv->sched_wake, sched_wake_cb, wait > 0 ? (uint64_t)wait : 0, 0);
}

void e2_sched_close(e2d_server *srv) {
    if (srv->sched_wake_init && !uv_is_closing((uv_handle_t *)&srv->sched_wake))
        uv_close((uv_handle_t *)&srv->sched_wake, NULL);
}

/* ---- faults ---- */

static void sched_cancel_settle(e2d_server *srv, e2d_run *run, int late);

static void sched_worker_lost(e2d_server *srv, e2d_worker *w, const char *reason, int exit_code,
                              int sig) {
    char job[E2_STORE_IDLEN], why[512];
    int attempt = w->row.attempt, rank = w->row.rank, draining = w->draining;
    e2d_run *run;
    snprintf(job, sizeof job, "%s", w->row.job);
    e2d_log("worker %s: %s", w->row.id, reason);
    w->row.state = WS_LOST;
    w->row.job[0] = 0;
    w->row.attempt = 0;
    w->row.rank = -1;
    w->draining = 0;
    w->abort_ms = 0;
    w->assign_out = 0;
    sched_worker_clear_cmds(w);
    e2_sched_worker_save(srv, w);
    srv->sched_pending = 1; /* capacity changed: parked jobs' reasons */
    if (!job[0] || draining || !(run = e2d_run_find(srv, job)) || run->attempt != attempt ||
        run->outcome[rank])
        return;
    if (run->killed) {
        /* A rank cancel terminated has exited: part of the cancel. */
        run->outcome[rank] = E2__V1__OUTCOME__OUTCOME_CANCELLED;
        sched_cancel_settle(srv, run, 0);
        return;
    }
    snprintf(why, sizeof why, "worker %s (rank %d): %s", w->row.id, rank, reason);
    e2_sched_attempt_failed(srv, run, rank, exit_code, sig, why);
}

void e2_sched_process_exited(e2d_server *srv, int pid, int64_t status, int sig) {
    char why[128];
    if (srv->shutting_down) return;
    if (sig)
        snprintf(why, sizeof why, "process %d was killed by signal %d", pid, sig);
    else
        snprintf(why, sizeof why, "process %d exited with code %lld", pid, (long long)status);
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (w->row.spawned && w->row.pid == pid && w->row.state != WS_LOST)
            sched_worker_lost(srv, w, why, sig ? 0 : (int)status, sig);
}

/* CANCELLED once every rank that got SIGTERM at the end of the grace has
 * exited (its process group is killed when it does, local.c); the ranks
 * on workers e2d did not spawn get an Abort. `late`: the backstop after
 * SIGKILL fired; ends the wait whatever is left. */
static void sched_cancel_settle(e2d_server *srv, e2d_run *run, int late) {
    e2_store_job j;
    for (int r = 0; r < run->world && !late; r++)
        if (run->killed[r] && !run->outcome[r]) return;
    if (sched_load(srv, run->job, &j) < 0) {
        e2_sched_run_end(srv, run, "cancelled");
        return;
    }
    e2_sched_run_end(srv, run, "cancelled: grace period over");
    e2d_job_transition(srv, &j, E2_JOBSTATE_CANCELLED,
                       late ? "cancelled: grace period over; a rank's process "
                              "did not exit after SIGKILL"
                            : "cancelled: grace period over, remaining ranks "
                              "terminated (their processes have exited)");
    e2_store_job_free(&j);
}

/* Grace is over: SIGTERM the process groups of the ranks e2d spawned
 * (SIGKILL follows E2D_KILL_AFTER_MS later) and wait for them to exit
 * (sched_cancel_settle); without such ranks the job is CANCELLED now. */
static void sched_cancel_expire(e2d_server *srv, e2d_run *run) {
    e2_store_job j;
    int killed = 0;
    if (run->killed) {
        /* SIGKILL went out a heartbeat timeout ago (backstop). */
        sched_cancel_settle(srv, run, 1);
        return;
    }
    for (int r = 0; r < run->world; r++) {
        e2d_worker *w = e2d_worker_find(srv, run->workers[r]);
        e2d_kill *k;
        if (!w || run->outcome[r] || !sched_worker_holds(w, run->job, run->attempt)) continue;
        if (!w->row.spawned || !e2_local_owns_pid(srv, w->row.pid)) continue;
        if (!run->killed && !(run->killed = calloc((size_t)run->world, 1))) break;
        kill(-w->row.pid, SIGTERM);
        run->killed[r] = 1;
        killed++;
        if ((k = calloc(1, sizeof *k))) {
            k->pgid = w->row.pid;
            k->at_ms = e2d_mono_ms() + E2D_KILL_AFTER_MS;
            k->next = srv->kills;
            srv->kills = k;
        }
    }
    if (killed) {
        e2d_log("job %s: grace period over; SIGTERM to %d rank%s (SIGKILL "
                "%d s later); CANCELLED once they have exited",
                run->job, killed, killed == 1 ? "" : "s", E2D_KILL_AFTER_MS / 1000);
        run->cancel_deadline_ms = e2d_mono_ms() + E2D_KILL_AFTER_MS + srv->hb_timeout_ms;
        return;
    }
    if (sched_load(srv, run->job, &j) < 0) {
        e2_sched_run_end(srv, run, "cancelled");
        return;
    }
    e2_sched_run_end(srv, run, "cancelled: grace period over");
    e2d_job_transition(srv, &j, E2_JOBSTATE_CANCELLED,
                       "cancelled: grace period over (ranks on workers e2d "
                       "did not spawn were told to abort)");
    e2_store_job_free(&j);
}

int e2_sched_cancel(e2d_server *srv, e2_store_job *j, int64_t grace_ms) {
    char why[128];
    e2d_run *run;
    if (e2_jobstate_terminal(j->state) || j->state == E2_JOBSTATE_CANCELLING) return 0;
    j->cancellations++;
    if (e2_jobstate_queued(j->state))
        return e2d_job_transition(srv, j, E2_JOBSTATE_CANCELLED,
                                  "cancelled on request before it started");
    if (!(run = e2d_run_find(srv, j->id))) {
        /* Active without a run cannot outlive startup recovery; should it
         * happen, there are no workers to wait for. */
        if (e2d_job_transition(srv, j, E2_JOBSTATE_CANCELLING, "cancel requested") < 0)
            return E2_ERR;
        return e2d_job_transition(srv, j, E2_JOBSTATE_CANCELLED,
                                  "cancelled on request (no workers held it)");
    }
    snprintf(why, sizeof why, "cancel requested (grace %.0f s)", (double)grace_ms / 1000.0);
    if (e2d_job_transition(srv, j, E2_JOBSTATE_CANCELLING, why) < 0) return E2_ERR;
    run->cancel_deadline_ms = e2d_mono_ms() + grace_ms;
    for (int r = 0; r < run->world; r++) {
        e2d_worker *w = e2d_worker_find(srv, run->workers[r]);
        if (w && !run->outcome[r] && sched_worker_holds(w, run->job, run->attempt))
            sched_queue_cancel(w, run->job, run->attempt, grace_ms);
    }
    return 0;
}

void e2_sched_cron(e2d_server *srv) {
    int64_t now = e2d_mono_ms();
    e2d_run *r, *rnext;
    e2d_kill **kp;
    char why[128];
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (w->row.state != WS_LOST && now - w->seen_ms > srv->hb_timeout_ms) {
            snprintf(why, sizeof why, "lost: no heartbeat for %.1f s",
                     (double)(now - w->seen_ms) / 1000.0);
            sched_worker_lost(srv, w, why, 0, 0);
            /* A silent worker e2d spawned (stopped, wedged) is killed so
             * that local.c starts a fresh one in its place. */
            if (w->row.spawned && e2_local_owns_pid(srv, w->row.pid)) kill(-w->row.pid, SIGKILL);
        } else if (w->draining && w->abort_ms && now - w->abort_ms > srv->hb_timeout_ms &&
                   w->row.spawned && e2_local_owns_pid(srv, w->row.pid)) {
            /* Its rank ignored the Abort (stuck in a system call, a
             * deadlock): a fresh process takes its place. */
            e2d_log("worker %s (pid %d): still in job %s %.1f s after its "
                    "abort; killing it",
                    w->row.id, w->row.pid, w->row.job, (double)(now - w->abort_ms) / 1000.0);
            w->abort_ms = 0;
            kill(-w->row.pid, SIGKILL);
        }
    for (r = srv->runs; r; r = rnext) {
        rnext = r->next;
        if (r->cancel_deadline_ms) {
            if (now >= r->cancel_deadline_ms) sched_cancel_expire(srv, r);
        } else if (srv->hang_timeout_ms > 0 && now - r->last_progress_ms > srv->hang_timeout_ms) {
            snprintf(why, sizeof why, "hang: no step progress for %.1f s",
                     (double)(now - r->last_progress_ms) / 1000.0);
            e2_sched_attempt_failed(srv, r, -1, 0, 0, why);
        }
    }
    for (kp = &srv->kills; *kp;) {
        e2d_kill *k = *kp;
        if (k->at_ms > now) {
            kp = &k->next;
            continue;
        }
        if (e2_local_owns_pid(srv, k->pgid)) kill(-k->pgid, SIGKILL);
        *kp = k->next;
        free(k);
    }
    /* Within the gap after the last pass, the timer runs it. */
    if (srv->sched_pending && e2d_mono_ms() >= srv->sched_next_ms)
        e2_sched_run_queue(srv);
    else if (srv->sched_pending)
        e2_sched_request(srv);
}

/* ---- startup ---- */

static void sched_restore_worker(void *ud, const e2_store_worker *row) {
    e2d_server *srv = ud;
    e2d_worker *w = calloc(1, sizeof *w), **p;
    if (!w) return;
    w->row = *row;
    w->seen_ms = e2d_mono_ms();
    w->seen_wall_ms = e2d_now_ms();
    /* Workers this e2d's predecessor spawned were stopped with it. */
    if (w->row.spawned && w->row.state != WS_LOST) {
        w->row.state = WS_LOST;
        w->row.job[0] = 0;
        w->row.attempt = 0;
        w->row.rank = -1;
    }
    for (p = &srv->workers; *p; p = &(*p)->next)
        ;
    *p = w;
}

/* An attempt found running at startup carries on when every rank's
 * worker is still registered (not LOST); it then has one heartbeat
 * timeout to check in, like any worker. Otherwise the attempt is over. */
static void sched_recover_job(e2d_server *srv, e2_store_job *j) {
    /* The attempt's own world size (an elastic restart's may be smaller
     * than num_workers; 0 in rows from before schema 5). */
    int world = j->world_size > 0 ? j->world_size : j->num_workers;
    e2d_worker **gang = calloc((size_t)world, sizeof *gang);
    int n = 0;
    char why[256];
    e2d_run *run;
    if (!gang) return;
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (sched_worker_holds(w, j->id, j->attempt) && w->row.rank >= 0 && w->row.rank < world &&
            !gang[w->row.rank]) {
            gang[w->row.rank] = w;
            n++;
        }
    if (n == world && (run = sched_run_new(srv, j->id, j->attempt, world, j->step))) {
        for (int r = 0; r < n; r++)
            snprintf(run->workers[r], sizeof run->workers[r], "%s", gang[r]->row.id);
        /* A cancel in progress gets its workers a fresh short grace (the
         * deadline was not stored). */
        if (j->state == E2_JOBSTATE_CANCELLING) {
            run->cancel_deadline_ms = e2d_mono_ms() + E2D_KILL_AFTER_MS;
            for (int r = 0; r < n; r++)
                sched_queue_cancel(gang[r], j->id, j->attempt, E2D_KILL_AFTER_MS);
        }
        e2d_log("job %s: attempt %d carries on after restart", j->id, j->attempt);
        free(gang);
        return;
    }
    for (int r = 0; r < world; r++)
        if (gang[r]) {
            e2_sched_queue_abort(gang[r], j->id, j->attempt, "e2d restarted; the attempt is over");
            gang[r]->draining = 1;
        }
    free(gang);
    if (j->state == E2_JOBSTATE_CANCELLING) {
        e2d_job_transition(srv, j, E2_JOBSTATE_CANCELLED,
                           "cancelled (e2d restarted during the cancel)");
        return;
    }
    /* Not counted against max_restarts: the fault was e2d's own. */
    snprintf(why, sizeof why,
             "e2d restarted and attempt %d's workers are gone; restarting "
             "from the last committed checkpoint",
             j->attempt);
    e2d_job_transition(srv, j, E2_JOBSTATE_RESTARTING, why);
}

int e2_sched_recover(e2d_server *srv, char *err, size_t errlen) {
    sched_queue_ctx q = { 0 };
    unsigned active =
        (1u << E2_JOBSTATE_STARTING) | (1u << E2_JOBSTATE_RUNNING) | (1u << E2_JOBSTATE_CANCELLING);
    if (e2_store_worker_list(srv->db, sched_restore_worker, srv, err, errlen) < 0) return E2_ERR;
    for (e2d_worker *w = srv->workers; w; w = w->next) e2_sched_worker_save(srv, w);
    if (e2_store_job_in_states(srv->db, active, sched_collect_job, &q, err, errlen) < 0) {
        free(q.ids);
        free(q.devs);
        return E2_ERR;
    }
    for (size_t i = 0; i < q.n; i++) {
        e2_store_job j;
        if (sched_load(srv, q.ids[i], &j) < 0) continue;
        sched_recover_job(srv, &j);
        e2_store_job_free(&j);
    }
    free(q.ids);
    free(q.devs);
    /* BUSY workers whose attempt did not survive only drain. */
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (w->row.state == WS_BUSY && !w->draining) {
            e2d_run *r = e2d_run_find(srv, w->row.job);
            if (!r || r->attempt != w->row.attempt) w->draining = 1;
        }
    srv->sched_pending = 1;
    return 0;
}

void e2_sched_free(e2d_server *srv) {
    if (srv->sched_passes)
        e2d_log("scheduler: %ld passes, CPU time mean %.3f ms, max %.3f ms", srv->sched_passes,
                srv->sched_pass_s * 1e3 / (double)srv->sched_passes, srv->sched_pass_max_s * 1e3);
    while (srv->workers) {
        e2d_worker *w = srv->workers;
        srv->workers = w->next;
        sched_worker_clear_cmds(w);
        free(w);
    }
    memset(srv->worker_tab, 0, sizeof srv->worker_tab);
    while (srv->runs) {
        e2d_run *r = srv->runs;
        e2d_run_unlink(srv, r);
        sched_run_free(r);
    }
    while (srv->kills) {
        e2d_kill *k = srv->kills;
        srv->kills = k->next;
        free(k);
    }
}
