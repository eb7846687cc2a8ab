/* scheduler.h -- the scheduler layer (sched/): the worker registry and gang
 * scheduling (sched.c, prefix sched_) and the checkpoint commit (ckpt.c,
 * prefix ckpt_). It calls down into jobs/, store/ and base/ only; the API
 * layer above calls it. --local-workers is local.h. (Not sched.h: that
 * name is the C library's, which uv.h includes.) */
#ifndef E2D_SCHEDULER_H
#define E2D_SCHEDULER_H

#include "e2d.h"

/* ---- sched.c ---- */
/* Saves the worker's row. */
void e2_sched_worker_save(e2d_server *srv, e2d_worker *w);
/* The worker holds nothing any more (it reported done or went idle). */
void e2_sched_worker_idle(e2d_server *srv, e2d_worker *w);
/* Queues a command (takes ownership). */
void e2_sched_worker_push(e2d_worker *w, E2__V1__Command *c);
void e2_sched_queue_abort(e2d_worker *w, const char *job, int attempt, const char *reason);
/* Gang scheduling pass: starts every queued job whose gang fits. */
void e2_sched_run_queue(e2d_server *srv);
/* Asks for a pass: the requests of one loop turn (every heartbeat,
 * ReportDone and commit it handled) share ONE pass, run in the next turn,
 * before the loop waits again, or, under load, once the gap after the last
 * pass has passed (E2D_SCHED_GAP_X). Without a loop (unit tests) it only
 * sets sched_pending. */
void e2_sched_request(e2d_server *srv);
/* Closes the request's handle at shutdown (uv_close; the loop then ends). */
void e2_sched_close(e2d_server *srv);
/* Ends the run of j for an infrastructure fault at `rank` (-1: not rank
 * specific): aborts the other ranks, then RESTARTING (budget left),
 * FAILED (spent) or CANCELLED (it was being cancelled). */
void e2_sched_attempt_failed(e2d_server *srv, e2d_run *run, int rank, int exit_code, int sig,
                             const char *reason);
/* Ends a run without a fault (job terminal): frees its workers that have
 * reported, marks the others draining with an Abort. */
void e2_sched_run_end(e2d_server *srv, e2d_run *run, const char *why);
/* CancelJob: returns < 0 on store failure. */
int e2_sched_cancel(e2d_server *srv, e2_store_job *j, int64_t grace_ms);
/* A spawned worker process exited (local.c). */
void e2_sched_process_exited(e2d_server *srv, int pid, int64_t status, int sig);
/* Rebuilds workers and runs from SQLite at startup. */
int e2_sched_recover(e2d_server *srv, char *err, size_t errlen);
/* Periodic checks: lost workers, hangs, cancel deadlines, kills. */
void e2_sched_cron(e2d_server *srv);
void e2_sched_free(e2d_server *srv);

/* ---- ckpt.c ---- */
/* One rank's report; *committed and path set when it completed the set.
 * Returns an rpc status (E2_RPC_OK or an error with msg). */
int e2_ckpt_report(e2d_server *srv, e2d_run *run, int rank, int64_t step,
                   const E2__V1__ReportCheckpointRequest *req, int *committed, char *path,
                   char *msg, size_t msglen);
/* 1 when rank's report of step would complete the set (every other rank
 * has reported it): that report writes the store and the job directory;
 * any other only notes the files in memory. */
int e2_ckpt_completes(const e2d_run *run, int rank, int64_t step);
/* The newest committed checkpoint of a job: step (or -1) and path. */
int64_t e2_ckpt_latest(e2d_server *srv, const char *job, char *path);
void e2_ckpt_pending_free(e2d_pending_ckpt *p);

#endif
