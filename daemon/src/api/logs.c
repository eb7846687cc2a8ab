/* logs.c -- StreamLogs: serves <job dir>/attempt-N/rank-R.log files in
 * chunks of whole lines. With follow, the call stays on the follows list
 * and the cron tick sends what the files gained, until the attempt has
 * ended and everything (including a last unterminated line) was sent.
 * Reads are small and bounded per tick, so a large log never stalls the
 * loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "base.h"

#define LOGS_CHUNK      65536
#define LOGS_MAX_QUEUED 16 /* messages in flight before a follower waits */

/* Sends what rank r's log holds from its offset: whole lines, or
 * everything when final. Returns 1 when more is left to send. */
static int logs_pump_rank(e2d_server *srv, e2d_waiter *w, int r, int final) {
    char path[E2_JOBDIR_PATHLEN];
    char *buf = malloc(LOGS_CHUNK);
    int fd, more = 0;
    int rank = w->rank >= 0 ? w->rank : r;
    if (!buf) return 0;
    e2_jobdir_log_path(srv->cfg.state_dir, w->job, w->attempt, rank, path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        free(buf);
        return 0;
    }
    while (e2_rpc_call_queued(w->call) < LOGS_MAX_QUEUED) {
        ssize_t n = pread(fd, buf, LOGS_CHUNK, (off_t)w->offsets[r]);
        size_t len;
        E2__V1__LogChunk c;
        if (n <= 0) break;
        len = (size_t)n;
        if (!final || n == LOGS_CHUNK) {
            while (len && buf[len - 1] != '\n') len--;
            if (!len && n == LOGS_CHUNK) len = (size_t)n; /* one line longer than a chunk */
            if (!len) break;
        }
        e2__v1__log_chunk__init(&c);
        c.has_attempt = c.has_rank = c.has_offset = c.has_data = 1;
        c.attempt = (uint32_t)w->attempt;
        c.rank = rank;
        c.offset = w->offsets[r];
        c.data.data = (uint8_t *)buf;
        c.data.len = len;
        if (e2_rpc_call_send(w->call, &c.base) < 0) break;
        w->offsets[r] += len;
    }
    more = e2_rpc_call_queued(w->call) >= LOGS_MAX_QUEUED;
    close(fd);
    free(buf);
    return more;
}

/* The attempt a follower reads has ended (or never started and the job
 * is over). */
static int logs_attempt_over(e2d_server *srv, const e2d_waiter *w) {
    e2_store_job j;
    char err[E2_ERRLEN];
    e2d_run *run = e2d_run_find(srv, w->job);
    int over;
    if (run && run->attempt == w->attempt) return 0;
    if (e2_store_job_get(srv->db, w->job, &j, err, sizeof err) < 0) return 1;
    over = w->attempt ? (j.attempt != w->attempt || !e2_jobstate_active(j.state))
                      : e2_jobstate_terminal(j.state);
    e2_store_job_free(&j);
    return over;
}

/* Resolves "latest attempt" once the job has one. */
static int logs_resolve(e2d_server *srv, e2d_waiter *w) {
    e2_store_job j;
    char err[E2_ERRLEN];
    if (w->attempt) return 1;
    if (e2_store_job_get(srv->db, w->job, &j, err, sizeof err) < 0) return 0;
    w->attempt = j.attempt;
    e2_store_job_free(&j);
    return w->attempt > 0;
}

/* Returns 1 when the waiter is finished (and freed). */
static int logs_pump(e2d_server *srv, e2d_waiter *w, int follow) {
    int over, more = 0;
    if (!logs_resolve(srv, w)) {
        if (follow && !logs_attempt_over(srv, w)) return 0;
        e2d_waiter_done(w, E2_RPC_OK, NULL);
        return 1;
    }
    over = !follow || logs_attempt_over(srv, w);
    for (int r = 0; r < w->nranks; r++) more |= logs_pump_rank(srv, w, r, over);
    if (over && !more) {
        e2d_waiter_done(w, E2_RPC_OK, NULL);
        return 1;
    }
    return 0;
}

void e2_logs_start(e2d_server *srv, e2_rpc_call *call, const E2__V1__StreamLogsRequest *req) {
    char err[E2_ERRLEN];
    e2_store_job j;
    e2d_waiter *w;
    int rc, rank = req->has_rank ? req->rank : -1;
    if (!req->id || !*req->id) {
        e2_rpc_call_finish(call, E2_RPC_INVALID_ARGUMENT, "id is required");
        return;
    }
    if ((rc = e2_store_job_get(srv->db, req->id, &j, err, sizeof err)) < 0) {
        e2_rpc_call_finish(call, rc == E2_NOTFOUND ? E2_RPC_NOT_FOUND : E2_RPC_INTERNAL, err);
        return;
    }
    if ((int)req->attempt > j.attempt || rank < -1 || rank >= j.num_workers) {
        snprintf(err, sizeof err, "%s must be in [%d, %d] (got %d)",
                 (int)req->attempt > j.attempt ? "attempt" : "rank",
                 (int)req->attempt > j.attempt ? 0 : -1,
                 (int)req->attempt > j.attempt ? j.attempt : j.num_workers - 1,
                 (int)req->attempt > j.attempt ? (int)req->attempt : rank);
        e2_rpc_call_finish(call, E2_RPC_INVALID_ARGUMENT, err);
        e2_store_job_free(&j);
        return;
    }
    if (!(w = e2d_waiter_add(&srv->follows, call, j.id))) {
        e2_rpc_call_finish(call, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        e2_store_job_free(&j);
        return;
    }
    w->attempt = (int)req->attempt;
    w->rank = rank;
    w->nranks = rank >= 0 ? 1 : j.num_workers;
    /* A one-shot read that must wait for the client to drain its queue
     * stays on the list too, until everything is sent. */
    w->follow = req->follow;
    e2_store_job_free(&j);
    if (!(w->offsets = calloc((size_t)w->nranks, sizeof *w->offsets))) {
        e2d_waiter_done(w, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    for (int r = 0; r < w->nranks; r++) w->offsets[r] = req->offset;
    logs_pump(srv, w, req->follow);
}

void e2_logs_cron(e2d_server *srv) {
    e2d_waiter *w, *next;
    for (w = srv->follows; w; w = next) {
        next = w->next;
        logs_pump(srv, w, w->follow);
    }
}
