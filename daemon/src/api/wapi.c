/* wapi.c -- the e2.v1.WorkerControl handlers: RegisterWorker, Heartbeat
 * (progress and log lines up, queued commands down), ReportCheckpoint,
 * RendezvousPut/Get (a Get may wait on the loop for the key) and
 * ReportDone. A request naming an unknown worker gets NOT_FOUND (the
 * worker registers again); one naming an attempt the worker no longer
 * holds gets FAILED_PRECONDITION.
 *
 * Worker identity: RegisterWorker draws an unguessable id and a secret
 * (getrandom) and keeps only the secret's SHA-256 (store.c, so that it
 * survives an e2d restart); every other request must carry the secret of
 * the worker it names, else PERMISSION_DENIED. A re-registration keeps
 * its id only with that id's secret. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "api.h"
#include "auth.h"
#include "base.h"
#include "local.h"
#include "pbjson.h"
#include "scheduler.h"

#define WS_IDLE              E2__V1__WORKER_STATE__WORKER_STATE_IDLE
#define WS_BUSY              E2__V1__WORKER_STATE__WORKER_STATE_BUSY
#define WS_LOST              E2__V1__WORKER_STATE__WORKER_STATE_LOST
#define WAPI_RDV_MAX_VALUE   (1u << 20)
#define WAPI_RDV_MAX_WAIT_MS 60000u
#define WAPI_SECRET_BYTES    32 /* worker secret: 64 hex digits */
#define WAPI_ID_BYTES        12 /* worker id: "w-" and 24 hex digits */

static void wapi_fail(e2_rpc_call *call, e2_rpc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void wapi_fail(e2_rpc_call *call, e2_rpc_status code, const char *fmt, ...) {
    char msg[E2_ERRLEN + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e2_rpc_call_finish(call, code, msg);
}

static void wapi_reply(e2_rpc_call *call, void *msg) {
    if (!msg) {
        e2_rpc_call_finish(call, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    e2_rpc_call_reply(call, msg);
    protobuf_c_message_free_unpacked(msg, NULL);
}

/* Joins the loop turn's group commit (batch.c) before a write: the
 * heartbeats and ReportDone calls of one turn share one transaction and
 * one fsync, and their replies (e2d_batch_reply) leave after it commits.
 * When BEGIN fails the writes commit one by one, as before. */
static void wapi_join(e2d_server *srv) {
    char err[E2_ERRLEN];
    if (e2d_batch_join(srv, err, sizeof err) < 0) e2d_log("group commit not opened: %s", err);
}

/* ---- worker identity ---- */

/* nbytes (<= 32) random bytes from getrandom as lowercase hex. */
static int wapi_random_hex(char *out, size_t nbytes) {
    static const char hex[] = "0123456789abcdef";
    unsigned char b[32];
    size_t got = 0;
    while (got < nbytes) {
        ssize_t r = getrandom(b + got, nbytes - got, 0);
        if (r < 0 && errno != EINTR) return E2_ERR;
        got += r > 0 ? (size_t)r : 0;
    }
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = 0;
    return 0;
}

static void wapi_secret_hash(const char *secret, char hex[65]) {
    uint8_t d[E2_SHA256_LEN];
    e2_sha256(secret, strlen(secret), d);
    e2_sha256_hex(d, hex);
}

/* 1 when secret is w's (compared in constant time). */
static int wapi_secret_ok(const e2d_worker *w, const char *secret) {
    char h[65];
    unsigned diff = 0;
    if (!w->row.secret_sha256[0] || !secret || !*secret) return 0;
    wapi_secret_hash(secret, h);
    for (size_t i = 0; i < 64; i++) diff |= (unsigned)(h[i] ^ w->row.secret_sha256[i]);
    return diff == 0;
}

/* The worker named by a request, if `secret` is its own; else NULL with
 * the call answered: NOT_FOUND (unknown id, or a row from before worker
 * secrets: register again) or PERMISSION_DENIED (another's secret). */
static e2d_worker *wapi_worker(e2d_server *srv, e2_rpc_call *call, const char *id,
                               const char *secret) {
    e2d_worker *w = e2d_worker_find(srv, id);
    if (!w || !w->row.secret_sha256[0]) {
        wapi_fail(call, E2_RPC_NOT_FOUND,
                  "worker %.40s is not registered: "
                  "register again",
                  id ? id : "(none)");
        return NULL;
    }
    if (!wapi_secret_ok(w, secret)) {
        e2d_log("access: %s request for worker %s refused: worker_secret "
                "is not its secret",
                e2_rpc_call_method(call), w->row.id);
        wapi_fail(call, E2_RPC_PERMISSION_DENIED,
                  "worker_secret is %s the secret of worker %s (a worker "
                  "may act only as itself)",
                  secret && *secret ? "not" : "required:", w->row.id);
        return NULL;
    }
    return w;
}

/* The current run of (job, attempt) with the worker holding `rank`, or
 * NULL with the call answered FAILED_PRECONDITION. */
static e2d_run *wapi_run(e2d_server *srv, e2_rpc_call *call, e2d_worker *w, const char *job,
                         int attempt, int rank) {
    e2d_run *run = e2d_run_find(srv, job);
    if (!job || !run || run->attempt != attempt || rank < 0 || rank >= run->world ||
        strcmp(run->workers[rank], w->row.id) || w->draining) {
        wapi_fail(call, E2_RPC_FAILED_PRECONDITION,
                  "attempt %d of job %s is not current for worker %s (rank "
                  "%d): stop it",
                  attempt, job ? job : "(none)", w->row.id, rank);
        return NULL;
    }
    return run;
}

/* A new worker with a fresh id (unused by any row, LOST ones included:
 * every row is in srv->workers) and secret (written to secret). */
static e2d_worker *wapi_worker_new(e2d_server *srv, char secret[65], char *err, size_t errlen) {
    char hex[2 * WAPI_ID_BYTES + 1], id[E2_STORE_IDLEN];
    e2d_worker *w, **p;
    do {
        if (wapi_random_hex(hex, WAPI_ID_BYTES) < 0) {
            e2_errf(err, errlen, "getrandom: %s", strerror(errno));
            return NULL;
        }
        snprintf(id, sizeof id, "w-%s", hex);
    } while (e2d_worker_find(srv, id));
    if (wapi_random_hex(secret, WAPI_SECRET_BYTES) < 0) {
        e2_errf(err, errlen, "getrandom: %s", strerror(errno));
        return NULL;
    }
    if (!(w = calloc(1, sizeof *w))) {
        e2_errf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(w->row.id, sizeof w->row.id, "%s", id);
    wapi_secret_hash(secret, w->row.secret_sha256);
    w->row.rank = -1;
    for (p = &srv->workers; *p; p = &(*p)->next)
        ;
    *p = w;
    return w;
}

/* ---- RegisterWorker ---- */

/* Another live worker already registered as the spawned process pid: a
 * second claim is not believed (e2d signals the process groups of the
 * workers it spawned). */
static int wapi_pid_claimed(e2d_server *srv, const e2d_worker *self, int pid) {
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (w != self && w->row.spawned && w->row.pid == pid && w->row.state != WS_LOST) return 1;
    return 0;
}

static void wapi_register_worker(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__RegisterWorkerRequest *req = (const void *)msg;
    const E2__V1__Progress *run_p = req->running;
    e2d_server *srv = ud;
    const char *device = req->device && *req->device ? req->device : "cpu";
    char err[E2_ERRLEN], secret[65];
    E2__V1__RegisterWorkerResponse *r;
    e2d_worker *w;
    e2d_run *run;
    e2d_batch_flush(srv);
    if (srv->shutting_down) {
        wapi_fail(call, E2_RPC_UNAVAILABLE, "e2d is shutting down");
        return;
    }
    if (strcmp(device, "cpu") && strcmp(device, "cuda")) {
        wapi_fail(call, E2_RPC_INVALID_ARGUMENT,
                  "device must be \"cpu\" or \"cuda\" (got \"%.32s\")", device);
        return;
    }
    w = e2d_worker_find(srv, req->previous_worker_id);
    if (w && !wapi_secret_ok(w, req->previous_worker_secret)) {
        /* Not its secret: never another worker's id, a new one. */
        e2d_log("access: RegisterWorker with previous_worker_id %s but not "
                "its secret: registered as a new worker",
                w->row.id);
        w = NULL;
    }
    if (w) snprintf(secret, sizeof secret, "%s", req->previous_worker_secret);
    if (w && w->row.state == WS_BUSY && !w->draining && (run = e2d_run_find(srv, w->row.job)) &&
        run->attempt == w->row.attempt &&
        !(run_p && run_p->job_id && !strcmp(run_p->job_id, w->row.job) &&
          (int)run_p->attempt == w->row.attempt)) {
        char why[128];
        snprintf(why, sizeof why,
                 "worker %s (rank %d) registered again "
                 "without its rank",
                 w->row.id, w->row.rank);
        e2_sched_attempt_failed(srv, run, w->row.rank, 0, 0, why);
    }
    if (!w && !(w = wapi_worker_new(srv, secret, err, sizeof err))) {
        wapi_fail(call, E2_RPC_INTERNAL, "registering failed: %s", err);
        return;
    }
    /* Shown by ListWorkers and logged: control characters escaped. */
    e2d_log_escape(w->row.host, sizeof w->row.host, req->hostname ? req->hostname : "");
    snprintf(w->row.device, sizeof w->row.device, "%s", device);
    e2d_log_escape(w->row.version, sizeof w->row.version, req->version ? req->version : "");
    w->row.device_index = (int)req->device_index;
    w->row.pid = req->pid;
    w->row.spawned = req->spawned_by_e2d && e2_local_owns_pid(srv, req->pid) &&
                     !wapi_pid_claimed(srv, w, req->pid);
    w->row.registered_ms = w->seen_wall_ms = e2d_now_ms();
    w->seen_ms = e2d_mono_ms();
    w->draining = 0;
    w->assign_out = 0;
    w->leaving = 0;
    w->row.state = WS_IDLE;
    w->row.job[0] = 0;
    w->row.attempt = 0;
    w->row.rank = -1;
    if (run_p && run_p->job_id) {
        /* It still runs a rank: carry on if that attempt is current and
         * the rank is this worker's, else stop it. */
        int rank = (int)run_p->rank;
        w->row.state = WS_BUSY;
        snprintf(w->row.job, sizeof w->row.job, "%s", run_p->job_id);
        w->row.attempt = (int)run_p->attempt;
        w->row.rank = rank;
        run = e2d_run_find(srv, run_p->job_id);
        if (!run || run->attempt != (int)run_p->attempt || rank < 0 || rank >= run->world ||
            strcmp(run->workers[rank], w->row.id)) {
            e2_sched_queue_abort(w, run_p->job_id, (int)run_p->attempt,
                                 "the attempt is no longer current");
            w->draining = 1;
        }
    }
    e2_sched_worker_save(srv, w);
    e2d_log("worker %s registered (%s, %s:%d, pid %d%s)", w->row.id, w->row.host, w->row.device,
            w->row.device_index, w->row.pid, w->row.spawned ? ", spawned by e2d" : "");
    if ((r = malloc(sizeof *r))) {
        e2__v1__register_worker_response__init(r);
        r->worker_id = strdup(w->row.id);
        r->worker_secret = strdup(secret);
        r->has_heartbeat_interval_ms = r->has_heartbeat_timeout_ms = 1;
        r->heartbeat_interval_ms = (uint32_t)srv->hb_interval_ms;
        r->heartbeat_timeout_ms = (uint32_t)srv->hb_timeout_ms;
    }
    wapi_reply(call, r);
    e2_sched_request(srv);
}

/* ---- Heartbeat ---- */

static void wapi_metric_line(e2d_server *srv, const e2_store_job *j, const E2__V1__Progress *p,
                             int64_t now) {
    char line[512], err[E2_ERRLEN];
    snprintf(line, sizeof line,
             "{\"step\":%u,\"attempt\":%d,\"loss\":%.9g,\"lr\":%.9g,"
             "\"grad_norm\":%.9g,\"tokens_per_second\":%.6g,"
             "\"time_unix_ms\":%lld}",
             p->step, j->attempt, p->loss, p->lr, p->grad_norm, j->tokens_per_second,
             (long long)now);
    if (e2_jobdir_metrics_append(srv->cfg.state_dir, j->id, line, err, sizeof err) < 0)
        e2d_log("job %s: %s", j->id, err);
}

/* A progress report of a current rank: hang clock, RUNNING once every
 * rank reported, and rank 0's step becomes the job's (its progress columns
 * and metric point in one transaction, inside the turn's group commit).
 * The job's row is read only until the run is known RUNNING, and for a
 * watcher's event: a report of a running job writes without reading. */
static void wapi_progress(e2d_server *srv, e2d_run *run, int rank, const E2__V1__Progress *p) {
    char err[E2_ERRLEN], why[64];
    int64_t now = e2d_now_ms(), mono = e2d_mono_ms();
    int all = 1, advanced = 0;
    e2_store_job j;
    run->progressed[rank] = 1;
    run->tps[rank] = p->tokens_per_second;
    if ((int64_t)p->step > run->steps[rank]) {
        run->steps[rank] = p->step;
        run->last_progress_ms = mono;
        advanced = rank == 0;
    }
    for (int r = 0; r < run->world && !run->running; r++) all &= run->progressed[r];
    if (advanced || (!run->running && all)) wapi_join(srv);
    if (!run->running && all && e2_store_job_get(srv->db, run->job, &j, err, sizeof err) == 0) {
        run->running = 1;
        if (j.state == E2_JOBSTATE_STARTING) {
            snprintf(why, sizeof why, "all %d rank%s training", run->world,
                     run->world == 1 ? "" : "s");
            run->running = e2d_job_transition(srv, &j, E2_JOBSTATE_RUNNING, why) == 0;
        }
        e2_store_job_free(&j);
    }
    if (advanced) {
        double tps = 0;
        for (int r = 0; r < run->world; r++) tps += run->tps[r];
        run->last_step = p->step;
        memset(&j, 0, sizeof j);
        snprintf(j.id, sizeof j.id, "%s", run->job);
        j.attempt = run->attempt;
        j.step = p->step;
        j.loss = p->loss;
        j.lr = p->lr;
        j.tokens_per_second = tps;
        j.updated_ms = now;
        e2_store_metric m = { p->step, j.attempt, p->loss, p->lr, p->grad_norm, tps, now };
        if (e2_store_begin(srv->db, err, sizeof err) < 0 ||
            e2_store_end(srv->db,
                         e2_store_job_progress(srv->db, &j, err, sizeof err) == 0 &&
                             e2_store_metric_add(srv->db, j.id, &m, err, sizeof err) == 0,
                         err, sizeof err) < 0) {
            e2d_log("job %s: progress not stored: %s", j.id, err);
        } else {
            wapi_metric_line(srv, &j, p, now);
            if (e2d_job_watched(srv, run->job) &&
                e2_store_job_get(srv->db, run->job, &j, err, sizeof err) == 0) {
                e2d_job_notify_progress(srv, &j);
                e2_store_job_free(&j);
            }
        }
    }
}

/* The worker's heartbeat says IDLE, without progress, after its
 * assignment went out: the reply was lost on the way (above the worker's
 * message limit, or the connection dropped), so the attempt fails now
 * with that reason instead of waiting for the hang timeout. */
static void wapi_assignment_lost(e2d_server *srv, e2d_worker *w,
                                 const E2__V1__HeartbeatRequest *req) {
    char why[256];
    e2d_run *run;
    int rank = w->row.rank;
    if (!w->assign_out || w->row.state != WS_BUSY || w->draining ||
        (req->progress && req->progress->job_id) || !req->has_state || req->state != WS_IDLE)
        return;
    w->assign_out = 0;
    w->missed_ms = e2d_mono_ms();
    run = e2d_run_find(srv, w->row.job);
    if (!run || run->attempt != w->row.attempt || rank < 0 || rank >= run->world ||
        run->outcome[rank])
        return;
    wapi_join(srv);
    snprintf(why, sizeof why,
             "the assignment of rank %d did not reach worker "
             "%s (its next heartbeat says IDLE): the reply was lost (too "
             "large for the worker, or the connection dropped)",
             rank, w->row.id);
    e2_sched_attempt_failed(srv, run, rank, 0, 0, why);
}

static void wapi_heartbeat(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__HeartbeatRequest *req = (const void *)msg;
    const E2__V1__Progress *p = req->progress;
    e2d_server *srv = ud;
    char err[E2_ERRLEN];
    E2__V1__HeartbeatResponse *r;
    e2d_worker *w;
    /* No flush here: a heartbeat joins the turn's group commit when it
     * writes (wapi_join), and its reply waits for that commit whenever
     * one is open (it may carry commands that rows of it decided). */
    if (!(w = wapi_worker(srv, call, req->worker_id, req->worker_secret))) return;
    w->seen_ms = e2d_mono_ms();
    w->seen_wall_ms = e2d_now_ms();
    if (req->has_stopping && req->stopping && !w->leaving) {
        /* Shutting down: no new rank (an elastic restart of its job runs
         * on the others); LOST once it is silent. */
        w->leaving = 1;
        e2d_log("worker %s: stopping (its process is shutting down); no new rank", w->row.id);
    }
    if (w->row.state == WS_LOST) {
        /* Back after being declared lost: its attempt has ended. One that
         * still runs that rank drains it first (the Abort below; IDLE once
         * it reports the rank done or itself idle), as at RegisterWorker:
         * given a new rank now, it would never start it. */
        w->row.state = WS_IDLE;
        if (p && p->job_id) {
            w->row.state = WS_BUSY;
            snprintf(w->row.job, sizeof w->row.job, "%s", p->job_id);
            w->row.attempt = (int)p->attempt;
            w->row.rank = (int)p->rank;
            w->draining = 1;
        }
        e2d_log("worker %s: heartbeat again after being lost%s", w->row.id,
                w->draining ? "; stopping the rank it still runs" : "");
        wapi_join(srv);
        e2_sched_worker_save(srv, w);
        srv->sched_pending = 1;
    }
    wapi_assignment_lost(srv, w, req);
    if (p && p->job_id) {
        int mine = w->row.state == WS_BUSY && !strcmp(w->row.job, p->job_id) &&
                   w->row.attempt == (int)p->attempt && w->row.rank == (int)p->rank;
        e2d_run *run = e2d_run_find(srv, p->job_id);
        if (mine && req->n_log_lines &&
            e2_jobdir_log_append(srv->cfg.state_dir, p->job_id, (int)p->attempt, (int)p->rank,
                                 req->log_lines, req->n_log_lines, err, sizeof err) < 0)
            e2d_log("job %s: %s", p->job_id, err);
        if (mine) w->assign_out = 0;
        if (mine && !w->draining && run && run->attempt == (int)p->attempt)
            wapi_progress(srv, run, (int)p->rank, p);
        else if (!w->ncmds)
            e2_sched_queue_abort(w, p->job_id, (int)p->attempt, "the attempt is no longer current");
    } else if (req->has_state && req->state == WS_IDLE && w->draining) {
        wapi_join(srv);
        e2_sched_worker_idle(srv, w);
    } else if (req->n_log_lines && w->row.state == WS_BUSY &&
               e2_jobdir_log_append(srv->cfg.state_dir, w->row.job, w->row.attempt, w->row.rank,
                                    req->log_lines, req->n_log_lines, err, sizeof err) < 0) {
        e2d_log("job %s: %s", w->row.job, err);
    }
    if (!(r = malloc(sizeof *r))) {
        wapi_reply(call, NULL);
        return;
    }
    e2__v1__heartbeat_response__init(r);
    for (size_t i = 0; i < w->ncmds; i++)
        if (w->cmds[i]->kind_case == E2__V1__COMMAND__KIND_ASSIGNMENT && w->row.state == WS_BUSY)
            w->assign_out = 1;
    r->commands = w->cmds;
    r->n_commands = w->ncmds;
    w->cmds = NULL;
    w->ncmds = 0;
    e2d_batch_reply(srv, call, &r->base);
}

/* ---- ReportCheckpoint ---- */

static void wapi_report_checkpoint(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__ReportCheckpointRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    char emsg[E2_ERRLEN], path[E2_JOBDIR_PATHLEN];
    E2__V1__ReportCheckpointResponse *r;
    e2d_worker *w;
    e2d_run *run;
    int committed, rc;
    if (!(w = wapi_worker(srv, call, req->worker_id, req->worker_secret)) ||
        !(run = wapi_run(srv, call, w, req->job_id, (int)req->attempt, (int)req->rank)))
        return;
    if (!req->has_step) {
        wapi_fail(call, E2_RPC_INVALID_ARGUMENT, "step is required");
        return;
    }
    /* Only the report that completes the set writes (files, then its own
     * commits, then retention deletes older checkpoints' files, which must
     * not happen before the commit): it commits the turn's batch first.
     * The others only note their files in memory and are answered at once,
     * leaving the batch open for the rest of the turn. */
    if (e2_ckpt_completes(run, (int)req->rank, req->step)) e2d_batch_flush(srv);
    rc = e2_ckpt_report(srv, run, (int)req->rank, req->step, req, &committed, path, emsg,
                        sizeof emsg);
    if (rc != E2_RPC_OK) {
        wapi_fail(call, rc, "%s", emsg);
        return;
    }
    if ((r = malloc(sizeof *r))) {
        e2__v1__report_checkpoint_response__init(r);
        r->has_committed = 1;
        r->committed = committed;
        if (committed) r->path = strdup(path);
    }
    e2d_batch_reply(srv, call, r ? &r->base : NULL);
}

/* ---- Rendezvous ---- */

static void wapi_rdv_answer(e2_rpc_call *call, const void *val, size_t len, int found) {
    E2__V1__RendezvousGetResponse *r = malloc(sizeof *r);
    if (r) {
        e2__v1__rendezvous_get_response__init(r);
        r->has_found = 1;
        r->found = found;
        if (found) {
            r->has_value = 1;
            r->value.len = len;
            r->value.data = malloc(len ? len : 1);
            if (r->value.data && len) memcpy(r->value.data, val, len);
        }
    }
    wapi_reply(call, r);
}

static void wapi_rdv_put(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__RendezvousPutRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    char err[E2_ERRLEN];
    E2__V1__RendezvousPutResponse *r;
    e2d_worker *w;
    e2d_batch_flush(srv);
    if (!(w = wapi_worker(srv, call, req->worker_id, req->worker_secret)) ||
        !wapi_run(srv, call, w, req->job_id, (int)req->attempt, w->row.rank))
        return;
    if (!req->key || !*req->key || req->value.len > WAPI_RDV_MAX_VALUE) {
        wapi_fail(call, E2_RPC_INVALID_ARGUMENT, "%s",
                  !req->key || !*req->key ? "key is required" : "value must be at most 1 MiB");
        return;
    }
    if (e2_store_rdv_put(srv->db, req->job_id, (int)req->attempt, req->key, req->value.data,
                         req->value.len, err, sizeof err) < 0) {
        wapi_fail(call, E2_RPC_INTERNAL, "state store: %s", err);
        return;
    }
    if ((r = malloc(sizeof *r))) e2__v1__rendezvous_put_response__init(r);
    wapi_reply(call, r);
    e2_wapi_rdv_wake(srv, req->job_id, (int)req->attempt, req->key);
}

static void wapi_rdv_get(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__RendezvousGetRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    char err[E2_ERRLEN];
    void *val;
    size_t len;
    e2d_worker *w;
    e2d_waiter *wt;
    int rc;
    e2d_batch_flush(srv);
    if (!(w = wapi_worker(srv, call, req->worker_id, req->worker_secret)) ||
        !wapi_run(srv, call, w, req->job_id, (int)req->attempt, w->row.rank))
        return;
    if (!req->key || !*req->key || req->wait_ms > WAPI_RDV_MAX_WAIT_MS) {
        wapi_fail(call, E2_RPC_INVALID_ARGUMENT, "%s",
                  !req->key || !*req->key ? "key is required" : "wait_ms must be in [0, 60000]");
        return;
    }
    rc = e2_store_rdv_get(srv->db, req->job_id, (int)req->attempt, req->key, &val, &len, err,
                          sizeof err);
    if (rc == 0 || (rc == E2_NOTFOUND && !req->wait_ms)) {
        wapi_rdv_answer(call, val, len, rc == 0);
        free(val);
        return;
    }
    if (rc < 0 && rc != E2_NOTFOUND) {
        wapi_fail(call, E2_RPC_INTERNAL, "state store: %s", err);
        return;
    }
    if (!(wt = e2d_waiter_add(&srv->rdvwaits, call, req->job_id)) ||
        !(wt->key = strdup(req->key))) {
        if (wt)
            e2d_waiter_done(wt, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        else
            wapi_fail(call, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    wt->attempt = (int)req->attempt;
    wt->deadline_ms = e2d_mono_ms() + req->wait_ms;
}

static void wapi_rdv_finish(e2d_waiter *wt, const void *val, size_t len, int found) {
    e2_rpc_call *call = wt->call;
    e2_rpc_call_set_data(call, NULL);
    e2d_waiter_remove(wt);
    wapi_rdv_answer(call, val, len, found);
}

void e2_wapi_rdv_wake(e2d_server *srv, const char *job, int attempt, const char *key) {
    e2d_waiter *wt, *next;
    for (wt = srv->rdvwaits; wt; wt = next) {
        char err[E2_ERRLEN];
        void *val;
        size_t len;
        next = wt->next;
        if (strcmp(wt->job, job) || wt->attempt != attempt || strcmp(wt->key, key)) continue;
        if (e2_store_rdv_get(srv->db, job, attempt, key, &val, &len, err, sizeof err) == 0) {
            wapi_rdv_finish(wt, val, len, 1);
            free(val);
        }
    }
}

void e2_wapi_cron(e2d_server *srv) {
    int64_t now = e2d_mono_ms();
    e2d_waiter *wt, *next;
    for (wt = srv->rdvwaits; wt; wt = next) {
        e2d_run *run = e2d_run_find(srv, wt->job);
        next = wt->next;
        if (!run || run->attempt != wt->attempt)
            e2d_waiter_done(wt, E2_RPC_FAILED_PRECONDITION,
                            "the attempt ended while waiting for the key");
        else if (now >= wt->deadline_ms)
            wapi_rdv_finish(wt, NULL, 0, 0);
    }
}

/* ---- ReportDone ---- */

static void wapi_store_eval(e2d_server *srv, e2_store_job *j,
                            const E2__V1__ReportDoneRequest *req) {
    char err[E2_ERRLEN];
    E2__V1__GetMetricsResponse ev;
    if (req->eval_json && *req->eval_json &&
        e2_jobdir_write_eval(srv->cfg.state_dir, j->id, req->eval_json, err, sizeof err) < 0)
        e2d_log("job %s: %s", j->id, err);
    if (!req->n_eval) return;
    e2__v1__get_metrics_response__init(&ev);
    ev.eval = req->eval;
    ev.n_eval = req->n_eval;
    free(j->eval_json);
    j->eval_json = e2_pbjson_to_string(&ev.base, 0);
}

static void wapi_done_outcome(e2d_server *srv, e2d_run *run, int rank,
                              const E2__V1__ReportDoneRequest *req, const char *worker) {
    char why[1024];
    const char *reason = req->reason && *req->reason ? req->reason : "no reason given";
    int all = 1, all_ok = 1;
    e2_store_job j;
    char err[E2_ERRLEN];
    if (e2_store_job_get(srv->db, run->job, &j, err, sizeof err) < 0) {
        e2d_log("job %s: %s", run->job, err);
        return;
    }
    run->outcome[rank] = req->outcome ? (int)req->outcome : E2__V1__OUTCOME__OUTCOME_FAILED_INFRA;
    for (int r = 0; r < run->world; r++) {
        all &= run->outcome[r] != 0;
        all_ok &= run->outcome[r] == E2__V1__OUTCOME__OUTCOME_SUCCEEDED;
    }
    switch (run->outcome[rank]) {
    case E2__V1__OUTCOME__OUTCOME_SUCCEEDED:
        if (rank == 0) wapi_store_eval(srv, &j, req);
        if (all_ok) {
            snprintf(why, sizeof why, "finished: all %d rank%s succeeded", run->world,
                     run->world == 1 ? "" : "s");
            e2_sched_run_end(srv, run, why);
            e2d_job_transition(srv, &j, E2_JOBSTATE_SUCCEEDED, why);
        } else if (rank == 0) {
            e2d_job_save(srv, &j);
        }
        break;
    case E2__V1__OUTCOME__OUTCOME_FAILED_USER:
        j.user_errors++;
        e2d_job_set_failure(srv, &j, rank, worker, req->exit_code, 0, 1);
        snprintf(why, sizeof why,
                 "rank %d failed: %s (exit code %d; user "
                 "error, not retried)",
                 rank, reason, req->exit_code);
        e2_sched_run_end(srv, run, why);
        e2d_job_transition(srv, &j, E2_JOBSTATE_FAILED, why);
        break;
    case E2__V1__OUTCOME__OUTCOME_CANCELLED:
        if (j.state == E2_JOBSTATE_CANCELLING) {
            if (all) {
                e2_sched_run_end(srv, run, "cancelled");
                e2d_job_transition(srv, &j, E2_JOBSTATE_CANCELLED,
                                   "cancelled on request: every rank "
                                   "stopped");
            }
            break;
        }
        snprintf(why, sizeof why,
                 "rank %d stopped without a cancel request "
                 "(%s)",
                 rank, reason);
        e2_sched_attempt_failed(srv, run, rank, req->exit_code, 0, why);
        break;
    default:
        snprintf(why, sizeof why, "rank %d on %s failed: %s (exit code %d)", rank, worker, reason,
                 req->exit_code);
        e2_sched_attempt_failed(srv, run, rank, req->exit_code, 0, why);
        break;
    }
    e2_store_job_free(&j);
}

static void wapi_report_done(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__ReportDoneRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    char err[E2_ERRLEN], worker[E2_STORE_IDLEN];
    E2__V1__ReportDoneResponse *r;
    e2d_worker *w;
    e2d_run *run;
    int rank = (int)req->rank, attempt = (int)req->attempt, current;
    if (!(w = wapi_worker(srv, call, req->worker_id, req->worker_secret))) return;
    if (!req->job_id || w->row.state != WS_BUSY || strcmp(w->row.job, req->job_id) ||
        w->row.attempt != attempt || w->row.rank != rank) {
        wapi_fail(call, E2_RPC_FAILED_PRECONDITION,
                  "worker %s holds no rank %d of job %s attempt %d", w->row.id, rank,
                  req->job_id ? req->job_id : "(none)", attempt);
        return;
    }
    if (req->n_log_lines &&
        e2_jobdir_log_append(srv->cfg.state_dir, req->job_id, attempt, rank, req->log_lines,
                             req->n_log_lines, err, sizeof err) < 0)
        e2d_log("job %s: %s", req->job_id, err);
    run = e2d_run_find(srv, req->job_id);
    current =
        run && run->attempt == attempt && !w->draining && rank < run->world && !run->outcome[rank];
    snprintf(worker, sizeof worker, "%s", w->row.id);
    /* The worker's IDLE row and the job's outcome join the turn's group
     * commit; the reply leaves after it (the report is durable when
     * acknowledged). */
    wapi_join(srv);
    e2_sched_worker_idle(srv, w);
    if (current) wapi_done_outcome(srv, run, rank, req, worker);
    if ((r = malloc(sizeof *r))) e2__v1__report_done_response__init(r);
    e2d_batch_reply(srv, call, r ? &r->base : NULL);
    e2_sched_request(srv);
}

int e2_wapi_register(e2d_server *srv, char *err, size_t errlen) {
    /* The last column is the role a caller needs (see e2_api_register). */
    const e2_rpc_method methods[] = {
        { "RegisterWorker", E2_RPC_UNARY, wapi_register_worker, srv, E2_AUTH_ROLE_WORKER },
        { "Heartbeat", E2_RPC_UNARY, wapi_heartbeat, srv, E2_AUTH_ROLE_WORKER },
        { "ReportCheckpoint", E2_RPC_UNARY, wapi_report_checkpoint, srv, E2_AUTH_ROLE_WORKER },
        { "RendezvousPut", E2_RPC_UNARY, wapi_rdv_put, srv, E2_AUTH_ROLE_WORKER },
        { "RendezvousGet", E2_RPC_UNARY, wapi_rdv_get, srv, E2_AUTH_ROLE_WORKER },
        { "ReportDone", E2_RPC_UNARY, wapi_report_done, srv, E2_AUTH_ROLE_WORKER },
    };
    return e2_rpc_server_add_service(srv->rpc, &e2__v1__worker_control__descriptor, methods,
                                     sizeof methods / sizeof methods[0], err, errlen);
}
