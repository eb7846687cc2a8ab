/* jobs.c -- what happens to a job row: transitions (checked against the
 * table in jobstate.c, stored with their event in one transaction, then
 * pushed to WatchJob streams), progress saves, failure details, and the
 * JobEvent messages watchers receive. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "e2d.h"

int e2d_job_save(e2d_server *srv, e2_store_job *j) {
    char err[E2_ERRLEN];
    if (e2_store_job_update(srv->db, j, err, sizeof err) < 0) {
        e2d_log("job %s: saving failed: %s", j->id, err);
        return E2_ERR;
    }
    return 0;
}

int e2d_job_transition(e2d_server *srv, e2_store_job *j, int to, const char *reason) {
    char err[E2_ERRLEN];
    int from = j->state;
    int64_t now = e2d_now_ms(), finished = j->finished_ms, started = j->started_ms,
            updated = j->updated_ms;
    char *old_reason = j->reason;
    e2_store_event e = { now, from, to, reason };
    if (!e2_jobstate_can(from, to)) {
        e2d_log("job %s: refused illegal transition %s -> %s (%s)", j->id, e2_jobstate_name(from),
                e2_jobstate_name(to), reason);
        return E2_ERR;
    }
    j->state = to;
    j->reason = strdup(reason);
    j->updated_ms = now;
    if (e2_jobstate_terminal(to)) j->finished_ms = now;
    if (to == E2_JOBSTATE_STARTING && !j->started_ms) j->started_ms = now;
    if (e2_store_begin(srv->db, err, sizeof err) < 0 ||
        e2_store_end(srv->db,
                     e2_store_job_update(srv->db, j, err, sizeof err) == 0 &&
                         e2_store_event_add(srv->db, j->id, &e, err, sizeof err) == 0,
                     err, sizeof err) < 0) {
        e2d_log("job %s: storing %s -> %s failed: %s", j->id, e2_jobstate_name(from),
                e2_jobstate_name(to), err);
        free(j->reason);
        j->reason = old_reason;
        j->state = from;
        j->finished_ms = finished;
        j->started_ms = started;
        j->updated_ms = updated;
        return E2_ERR;
    }
    free(old_reason);
    e2d_log("job %s: %s -> %s: %s", j->id, e2_jobstate_name(from), e2_jobstate_name(to), reason);
    /* Every transition can change what the queue may start: a job joins
     * it, or one leaves it (a cancelled head no longer blocks the jobs
     * behind it), or an attempt ends. The pass runs at the next cron. */
    srv->sched_pending = 1;
    e2d_watch_notify(srv, j, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_TRANSITION, reason);
    return 0;
}

double e2d_job_eta(e2d_server *srv, const e2_store_job *j) {
    e2d_run *r = e2d_run_find(srv, j->id);
    double done, ms;
    if (!r || r->last_step <= r->start_step || j->total_steps <= j->step) return 0;
    done = (double)(r->last_step - r->start_step);
    ms = (double)(r->last_progress_ms - r->started_ms);
    if (ms <= 0) return 0;
    return (double)(j->total_steps - j->step) * ms / done / 1000.0;
}

E2__V1__JobEvent *e2d_job_event_msg(e2d_server *srv, const e2_store_job *j, int kind,
                                    const char *reason) {
    E2__V1__JobEvent *e = malloc(sizeof *e);
    if (!e) return NULL;
    e2__v1__job_event__init(e);
    e->job_id = strdup(j->id);
    e->has_kind = 1;
    e->kind = kind;
    e->has_state = 1;
    e->state = j->state;
    e->reason = strdup(reason ? reason : (j->reason ? j->reason : ""));
    e->has_time_unix_ms = 1;
    e->time_unix_ms = e2d_now_ms();
    e->has_attempt = 1;
    e->attempt = (uint32_t)j->attempt;
    e->has_step = 1;
    e->step = (uint32_t)j->step;
    e->has_total_steps = 1;
    e->total_steps = (uint32_t)j->total_steps;
    e->has_loss = 1;
    e->loss = j->loss;
    e->has_lr = 1;
    e->lr = j->lr;
    e->has_tokens_per_second = 1;
    e->tokens_per_second = j->tokens_per_second;
    e->has_eta_seconds = 1;
    e->eta_seconds = e2d_job_eta(srv, j);
    return e;
}

void e2d_watch_notify(e2d_server *srv, const e2_store_job *j, int kind, const char *reason) {
    e2d_waiter *w, *next;
    int terminal = e2_jobstate_terminal(j->state);
    for (w = srv->watches; w; w = next) {
        E2__V1__JobEvent *e;
        next = w->next;
        if (strcmp(w->job, j->id)) continue;
        /* A slow reader loses progress events, never transitions. */
        if (kind == E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_PROGRESS &&
            e2_rpc_call_queued(w->call) > 64)
            continue;
        if ((e = e2d_job_event_msg(srv, j, kind, reason))) {
            e2_rpc_call_send(w->call, &e->base);
            protobuf_c_message_free_unpacked(&e->base, NULL);
        }
        if (terminal) e2d_waiter_done(w, E2_RPC_OK, NULL);
    }
}

void e2d_job_notify_progress(e2d_server *srv, const e2_store_job *j) {
    e2d_watch_notify(srv, j, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_PROGRESS, NULL);
}

int e2d_job_watched(const e2d_server *srv, const char *job) {
    for (const e2d_waiter *w = srv->watches; w; w = w->next)
        if (!strcmp(w->job, job)) return 1;
    return 0;
}

void e2d_job_set_failure(e2d_server *srv, e2_store_job *j, int rank, const char *worker,
                         int exit_code, int sig, int user_error) {
    char *lines[E2D_FAIL_LINES];
    size_t len = 0;
    int n = 0;
    j->fail_rank = rank;
    j->fail_exit_code = exit_code;
    j->fail_signal = sig;
    j->fail_user = user_error;
    snprintf(j->fail_worker, sizeof j->fail_worker, "%s", worker ? worker : "");
    free(j->fail_log);
    j->fail_log = NULL;
    if (rank >= 0)
        n = e2_jobdir_log_tail(srv->cfg.state_dir, j->id, j->attempt, rank, lines, E2D_FAIL_LINES);
    for (int i = 0; i < n; i++) len += strlen(lines[i]) + 1;
    if (n && (j->fail_log = malloc(len))) {
        size_t off = 0;
        for (int i = 0; i < n; i++) {
            size_t l = strlen(lines[i]);
            memcpy(j->fail_log + off, lines[i], l);
            off += l;
            j->fail_log[off++] = i + 1 < n ? '\n' : 0;
        }
    }
    for (int i = 0; i < n; i++) free(lines[i]);
}
