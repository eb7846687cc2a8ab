/* e2d.h -- the coordinator daemon's central state (layer jobs/) and the
 * functions of that layer: job transitions and watchers (jobs.c), run and
 * worker lookups (runs.c), waiting calls (waiter.c).
 *
 * One e2d_server holds everything. Every field is touched from the libuv
 * loop thread only: RPC handlers, timers, signal and child-exit callbacks
 * all run there, so nothing here is locked. SQLite (store.h) is the truth
 * for jobs; the in-memory structures below are what a restart rebuilds
 * from it: registered workers, the current attempt ("run") of each job
 * that holds workers, and the calls waiting for something (watchers, log
 * followers, rendezvous readers).
 *
 * Layers (folders of daemon/src; a file includes and calls only its own
 * layer and the ones below it, checked by ctest -R daemon_layers):
 *   base/   log.c (clocks, log line), config.c (flags, --config),
 *           notify.c (systemd readiness and watchdog)
 *   store/  store.c (SQLite), jobstate.c (legal transitions), jobdir.c
 *   jobs/   this header; jobs.c (transitions: store + event + watchers,
 *           progress, failures), runs.c (run and worker lookups),
 *           waiter.c (calls waiting on the loop)
 *   sched/  sched.c (worker registry, gang scheduling, faults, cancel,
 *           cron), ckpt.c (two-phase checkpoint commit and retention),
 *           local.c (--local-workers: spawn, capture, restart; reports
 *           exits through the callback given to e2_local_init)
 *   api/    api.c (e2.v1.Coordinator), wapi.c (e2.v1.WorkerControl),
 *           logs.c (StreamLogs), batch.c (group commit: SubmitJob,
 *           Heartbeat, ReportDone),
 *           authz.c (who may call what), http.c (--http-listen)
 *   main.c  flags, startup recovery, signals, shutdown
 */
#ifndef E2D_H
#define E2D_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "log.h"
#include "e2/v1/coordinator.pb-c.h"
#include "e2/v1/worker.pb-c.h"
#include "jobdir.h"
#include "jobstate.h"
#include "notify.h"
#include "rpc.h"
#include "store.h"

#define E2D_FAIL_LINES   20   /* Failure.last_log_lines kept */
#define E2D_HASH_BUCKETS 1024 /* worker and run hashes (runs.c; a power of 2) */
#define E2D_CRON_MS      100  /* period of e2d_cron */
/* A requested pass waits E2D_SCHED_GAP_X times the CPU time of the last one
 * (at most E2D_SCHED_GAP_MAX_MS) after it: passes then take at most about
 * 1/(1 + X) of a core, however many heartbeats and reports ask for them. */
#define E2D_SCHED_GAP_X      10
#define E2D_SCHED_GAP_MAX_MS 50
/* SIGTERM -> SIGKILL for spawned workers: short enough that nothing of a
 * cancelled job survives grace + 5 s. */
#define E2D_KILL_AFTER_MS 3000
/* The largest Assignment e2d sends: a heartbeat reply must stay under the
 * worker's 4 MiB gRPC receive limit with room for other commands. */
#define E2D_ASSIGNMENT_MAX_BYTES (2u << 20)

/* A registered worker (ids are never reused; LOST ones stay listed). */
typedef struct e2d_worker {
    struct e2d_worker *next;
    struct e2d_worker *hnext; /* chain of srv->worker_tab (runs.c) */
    e2_store_worker row;      /* what ListWorkers shows and SQLite keeps */
    int64_t seen_ms;          /* last heartbeat (or registration/restart),
                                  monotonic */
    int64_t seen_wall_ms;     /* the same on the wall clock (shown) */
    E2__V1__Command **cmds;   /* queued for the next heartbeat reply */
    size_t ncmds;
    /* Holds an attempt that has ended (aborted, cancelled): stays BUSY
     * until it says IDLE or reports done, so it is not double-booked. */
    int draining;
    /* When (monotonic) the first Abort since its last assignment or idle
     * was queued:
     * a worker e2d spawned still draining a heartbeat timeout later (its
     * rank is wedged) is killed. 0: none. */
    int64_t abort_ms;
    /* An Assignment went out in a heartbeat reply and the worker has not
     * reported that rank since: its next heartbeat saying IDLE without
     * progress means the reply never reached it (too large, connection
     * dropped), and the attempt fails at once. */
    int assign_out;
    /* When (monotonic) an assignment last failed to reach it; 0: never.
     * The scheduler gives such a worker a rank only when no other idle
     * worker can take it, so a restart does not land on it again. */
    int64_t missed_ms;
    /* Its last heartbeat said it is shutting down (HeartbeatRequest.
     * stopping): it gets no new rank until it registers again. */
    int leaving;
} e2d_worker;

/* A checkpoint step some ranks of a run have reported. */
typedef struct e2d_pending_ckpt {
    struct e2d_pending_ckpt *next;
    int64_t step;
    unsigned char *reported; /* (world) */
    e2_jobdir_file *files;   /* strings owned */
    size_t nfiles;
} e2d_pending_ckpt;

/* The current attempt of a job in STARTING, RUNNING or CANCELLING. */
typedef struct e2d_run {
    struct e2d_run *next;
    struct e2d_run *hnext; /* chain of srv->run_tab (runs.c) */
    char job[E2_STORE_IDLEN];
    int attempt, world;
    char (*workers)[E2_STORE_IDLEN]; /* (world) worker id per rank */
    int *outcome;                    /* (world) Outcome reported, 0 = none */
    unsigned char *progressed;       /* (world) sent progress this attempt */
    int64_t *steps;                  /* (world) newest step per rank */
    double *tps;                     /* (world) tokens/s per rank */
    int64_t start_step;              /* step resumed from */
    int64_t started_ms;              /* assignment time (monotonic) */
    int64_t last_progress_ms;        /* newest step advance (hang check;
                                     monotonic) */
    int64_t last_step;               /* newest step of rank 0 */
    /* Every rank has reported and the job's row was read past STARTING
     * (moved to RUNNING then if it was): progress reports read no row. */
    int running;
    int64_t cancel_deadline_ms; /* 0: no cancel asked (monotonic) */
    /* The grace is over and these ranks' processes (spawned by e2d) got
     * SIGTERM: the job is CANCELLED once each of them has exited.
     * NULL: not in that phase. (world) */
    unsigned char *killed;
    e2d_pending_ckpt *pending;
} e2d_run;

/* A call waiting on the loop: WatchJob, StreamLogs --follow, or a
 * RendezvousGet with wait_ms. */
typedef struct e2d_waiter {
    struct e2d_waiter *next;
    e2_rpc_call *call;
    char job[E2_STORE_IDLEN];
    int attempt;
    int rank;                 /* logs: -1 = all */
    int nranks;               /* logs: ranks followed */
    uint64_t *offsets;        /* logs: (nranks) next byte per rank */
    int follow;               /* logs: keep going until the attempt ends */
    char *key;                /* rendezvous key */
    int64_t deadline_ms;      /* rendezvous: answer not-found after
                                  (monotonic) */
    struct e2d_waiter **list; /* the list it is on */
} e2d_waiter;

/* A process group to SIGKILL at a time (after SIGTERM). */
typedef struct e2d_kill {
    struct e2d_kill *next;
    int pgid;
    int64_t at_ms; /* monotonic */
} e2d_kill;

/* A reply waiting for its batch's commit (batch.c). */
typedef struct e2d_reply {
    struct e2d_reply *next;
    e2_rpc_call *call;
    ProtobufCMessage *msg;
} e2d_reply;

/* One --local-workers process. */
typedef struct e2d_local {
    struct e2d_server *srv;
    int index;
    uv_process_t proc;
    uv_timer_t timer; /* restart backoff */
    int alive;        /* proc is running (handle open) */
    int pid;
    int backoff_ms;
    int64_t started_ms; /* monotonic */
} e2d_local;

typedef struct e2d_server {
    e2d_config cfg;
    uv_loop_t *loop;
    e2_store *db;
    e2_rpc_server *rpc;
    uv_timer_t cron;
    uv_signal_t sigterm, sigint;
    e2d_worker *workers; /* registration order */
    /* e2d_worker_find's hash of srv->workers by id (runs.c): a worker
     * enters it at its first lookup; workers are freed only at exit
     * (e2_sched_free, which empties it). */
    e2d_worker *worker_tab[E2D_HASH_BUCKETS];
    /* e2d_run_find's hash of srv->runs by job (e2d_run_link/unlink). */
    struct e2d_run *run_tab[E2D_HASH_BUCKETS];
    e2d_run *runs;
    e2d_waiter *watches, *follows, *rdvwaits;
    e2d_kill *kills;
    e2d_local *locals;
    int nlocals;
    /* e2_local_init's on_exit: a spawned worker process exited. */
    void (*local_exited)(struct e2d_server *srv, int pid, int64_t status, int sig);
    int64_t hb_interval_ms, hb_timeout_ms, hang_timeout_ms;
    uv_check_t batch_check;           /* flushes the batch at the end of a turn */
    e2d_reply *batch, **batch_tail;   /* replies waiting for the commit */
    int batch_open;                   /* a group-commit transaction is open */
    int batch_pass;                   /* a SubmitJob joined it: a pass after the commit */
    int sched_pending;                /* run the scheduler at the next cron */
    uv_timer_t sched_wake;            /* e2_sched_request: one pass next turn */
    int sched_wake_init;              /* sched_wake initialized (closed at exit) */
    int64_t sched_next_ms;            /* no requested pass before (monotonic) */
    struct e2d_expand_req *expanding; /* held gangs whose shard manifest expands (expand.c) */
    /* Scheduling passes over the queue: count, total and longest CPU seconds
     * (logged at exit; bench/cluster reads them). */
    long sched_passes;
    double sched_pass_s, sched_pass_max_s;
    int shutting_down;           /* SIGTERM/SIGINT seen */
    int rpc_down;                /* the RPC server has shut down */
    int64_t kill_locals_ms;      /* shutdown: SIGKILL local workers then
                                  (monotonic) */
    int lock_fd;                 /* flock on <state-dir>/e2d.lock */
    struct e2_http_server *http; /* --http-listen; NULL when off (api/http.h) */
    e2_notify_state notify;      /* systemd readiness and watchdog */
} e2d_server;

/* ---- jobs.c ---- */
/* Moves j to state `to` (must be legal), stores row + event in one
 * transaction, tells watchers. Returns < 0 when the store failed. */
int e2d_job_transition(e2d_server *srv, e2_store_job *j, int to, const char *reason);
/* Writes j's row (progress, counters) without a transition. */
int e2d_job_save(e2d_server *srv, e2_store_job *j);
/* Sends a PROGRESS event to j's watchers. */
void e2d_job_notify_progress(e2d_server *srv, const e2_store_job *j);
/* 1 when a WatchJob stream follows job (its progress events need the row). */
int e2d_job_watched(const e2d_server *srv, const char *job);
/* Fills j's failure fields from a rank's report and its log's tail. */
void e2d_job_set_failure(e2d_server *srv, e2_store_job *j, int rank, const char *worker,
                         int exit_code, int sig, int user_error);
/* JobEvent for j (kind, with current progress), heap-allocated. */
E2__V1__JobEvent *e2d_job_event_msg(e2d_server *srv, const e2_store_job *j, int kind,
                                    const char *reason);
/* ETA in seconds from the run's rate; 0 when unknown. */
double e2d_job_eta(e2d_server *srv, const e2_store_job *j);
/* Finishes every watcher of a job (terminal state reached). */
void e2d_watch_notify(e2d_server *srv, const e2_store_job *j, int kind, const char *reason);

/* ---- runs.c ---- */
/* The registered worker with this id, or NULL. */
e2d_worker *e2d_worker_find(e2d_server *srv, const char *id);
/* The current run of a job, or NULL. */
e2d_run *e2d_run_find(e2d_server *srv, const char *job);
/* Puts a new run on srv->runs (first) and in the hash e2d_run_find uses;
 * e2d_run_unlink takes it off both (the caller frees it). */
void e2d_run_link(e2d_server *srv, e2d_run *r);
void e2d_run_unlink(e2d_server *srv, e2d_run *r);

/* ---- waiter.c ---- */
/* A waiter on *list for call, whose client going away finishes the call
 * and frees the waiter. NULL when out of memory. */
e2d_waiter *e2d_waiter_add(e2d_waiter **list, e2_rpc_call *call, const char *job);
/* Finishes the waiter's call with a status, unlinks and frees it. */
void e2d_waiter_done(e2d_waiter *w, e2_rpc_status code, const char *msg);
/* Unlinks and frees a waiter whose call was finished by other means. */
void e2d_waiter_remove(e2d_waiter *w);
/* Finishes (with code) and frees every waiter of every list (shutdown). */
void e2d_waiters_finish_all(e2d_server *srv);

#endif
