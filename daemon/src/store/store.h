/* store.h -- e2d's durable state in SQLite (prefix store_).
 *
 * One database file, <state-dir>/e2d.db, opened in WAL mode with a busy
 * timeout and synchronous=FULL: a function below that changes state returns
 * only after the change is committed (and fsynced), which is what lets the
 * daemon answer an RPC after the store call and survive kill -9.
 *
 * The schema is versioned with PRAGMA user_version: migration i brings a
 * database from version i to i+1, each in its own transaction, so an old
 * database is upgraded in place and a newer one is refused.
 *
 * Prepared statements are cached per store (one per query kind) and reset
 * after each use. The store is used from the libuv loop thread only.
 * Errors follow common/base/base.h: E2_ERR with one line in err, and
 * E2_NOTFOUND (with its line) where a row or key asked for by id does not
 * exist: e2_store_job_get, e2_store_job_by_request, e2_store_job_owner,
 * e2_store_rdv_get. */
#ifndef E2D_STORE_H
#define E2D_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define E2_STORE_SCHEMA_VERSION 5
#define E2_STORE_IDLEN          32

typedef struct e2_store e2_store;

/* A job row. Strings are owned (malloc'd); e2_store_job_free releases them. */
typedef struct e2_store_job {
    int64_t seq;             /* submission order (FIFO key) */
    char id[E2_STORE_IDLEN]; /* "j-000042" */
    char *request_id;        /* NULL when the client gave none */
    char *spec_json;         /* the validated spec, defaults applied */
    /* The same spec packed (protobuf binary), so that replies carry it
     * without parsing anything; NULL for rows stored before schema 4. */
    uint8_t *spec_pb;
    size_t spec_pb_len;
    int state;    /* e2_jobstate_t */
    char *reason; /* why the last transition happened */
    int priority;
    char device[16]; /* "cpu" or "cuda" */
    int num_workers;
    int max_restarts;
    int keep_last;
    int64_t created_ms, updated_ms;
    int attempt;  /* 0 before the first start */
    int restarts; /* infrastructure restarts used */
    int user_errors;
    int cancellations;
    int64_t step, total_steps;
    double loss, lr, tokens_per_second;
    int64_t started_ms; /* start of the current attempt */
    int fail_exit_code, fail_signal, fail_rank;
    char *fail_log;                   /* last log lines, '\n'-separated */
    char *eval_json;                  /* eval results (JSON text) or NULL */
    char fail_worker[E2_STORE_IDLEN]; /* worker that held fail_rank */
    int fail_user;                    /* 1: the failure was a user error */
    int64_t finished_ms;              /* entry into a terminal state */
    /* spec.min_workers, the smallest gang of an elastic restart; and the
     * ranks of the current (or last) attempt, 0 before the first start.
     * Rows from before schema 5 hold 0 in both: num_workers. */
    int min_workers;
    int world_size;
} e2_store_job;

typedef struct e2_store_label {
    const char *key, *value;
} e2_store_label;

typedef struct e2_store_event {
    int64_t time_ms;
    int from, to;
    const char *reason;
} e2_store_event;

typedef struct e2_store_worker {
    char id[E2_STORE_IDLEN];
    char host[128];
    char device[16];
    int device_index;
    int pid;
    int state; /* workerstate, see sched.h */
    char job[E2_STORE_IDLEN];
    int attempt;
    int rank;
    int64_t last_heartbeat_ms;
    int64_t registered_ms;
    char version[64];
    int spawned;            /* started by this e2d (--local-workers) */
    char secret_sha256[65]; /* hex SHA-256 of its worker secret; ""
                                      for rows of schema < 4 (no secret) */
} e2_store_worker;

typedef struct e2_store_ckpt {
    int64_t step;
    const char *path;
    int64_t committed_ms;
    int attempt;
    const char *manifest;
} e2_store_ckpt;

typedef struct e2_store_metric {
    int64_t step;
    int attempt;
    double loss, lr, grad_norm, tokens_per_second;
    int64_t time_ms;
} e2_store_metric;

/* ListJobs query, newest first: states is a bit mask (1 << state; 0 =
 * all); a job must carry every label of labels[0..nlabels); before_seq
 * pages (0 = from the newest); limit <= 0 = no limit. */
#define E2_STORE_MAX_SELECTORS 8
typedef struct e2_store_jobq {
    unsigned states;
    e2_store_label labels[E2_STORE_MAX_SELECTORS];
    int nlabels;
    int64_t before_seq;
    int limit;
} e2_store_jobq;

int e2_store_open(e2_store **out, const char *path, int upto_version, char *err, size_t errlen);
void e2_store_close(e2_store *s);
/* The schema version (PRAGMA user_version), or E2_ERR. */
int e2_store_version(e2_store *s);

/* Explicit transactions group several writes into one commit. They nest:
 * the outermost level is a transaction, inner ones are savepoints, so a
 * rollback undoes only its own level. Every e2_store_begin that succeeded is
 * closed by exactly one e2_store_commit or e2_store_rollback; a failed
 * e2_store_commit has already rolled its level back. Only the outermost
 * commit makes anything durable. */
int e2_store_begin(e2_store *s, char *err, size_t errlen);
/* Closes the level: commits when ok, else rolls back and fails. */
int e2_store_end(e2_store *s, int ok, char *err, size_t errlen);
int e2_store_commit(e2_store *s, char *err, size_t errlen);
void e2_store_rollback(e2_store *s);

/* ---- jobs ---- */
void e2_store_job_free(e2_store_job *j);
/* Inserts j (j->id is assigned from the new seq) with its labels. */
int e2_store_job_insert(e2_store *s, e2_store_job *j, const e2_store_label *labels, int nlabels,
                        char *err, size_t errlen);
/* E2_NOTFOUND when there is no job id. */
int e2_store_job_get(e2_store *s, const char *id, e2_store_job *j, char *err, size_t errlen);
/* The job's owner (the name of the token that submitted it; "" without
 * tokens). Kept out of e2_store_job: only access control reads it. */
int e2_store_job_set_owner(e2_store *s, const char *id, const char *owner, char *err,
                           size_t errlen);
/* E2_NOTFOUND when there is no job id. */
int e2_store_job_owner(e2_store *s, const char *id, char *owner, size_t len, char *err,
                       size_t errlen);
/* The job submitted with request_id; E2_NOTFOUND when none was. */
int e2_store_job_by_request(e2_store *s, const char *request_id, e2_store_job *j, char *err,
                            size_t errlen);
/* Writes every mutable column of j back. */
int e2_store_job_update(e2_store *s, const e2_store_job *j, char *err, size_t errlen);
/* Writes the progress columns of j only (step, loss, lr, tokens_per_second,
 * updated_ms), for the row of j->id whose attempt is j->attempt: a
 * heartbeat's progress needs no read of the row. E2_ERR (with its line)
 * when no such row exists (the job moved on to another attempt). */
int e2_store_job_progress(e2_store *s, const e2_store_job *j, char *err, size_t errlen);
/* Calls fn for each matching job, newest first; fn returning non-zero
 * stops. Returns the number visited or < 0. */
int e2_store_job_list(e2_store *s, const e2_store_jobq *q,
                      int (*fn)(void *ud, const e2_store_job *j), void *ud, char *err,
                      size_t errlen);
/* The scheduler's queue: PENDING and RESTARTING jobs, higher priority
 * first, FIFO (submission order) within a priority. */
int e2_store_job_queued(e2_store *s, int (*fn)(void *ud, const e2_store_job *j), void *ud,
                        char *err, size_t errlen);
/* The same queue, id and device of each job only (the scheduler's scan:
 * no row decoded, no large sort). */
int e2_store_job_queued_ids(e2_store *s, int (*fn)(void *ud, const char *id, const char *device),
                            void *ud, char *err, size_t errlen);
/* Jobs in any state of the mask (1 << state), in submission order. */
int e2_store_job_in_states(e2_store *s, unsigned states, int (*fn)(void *ud, const e2_store_job *j),
                           void *ud, char *err, size_t errlen);
int e2_store_job_count(e2_store *s);

/* ---- events ---- */
int e2_store_event_add(e2_store *s, const char *job, const e2_store_event *e, char *err,
                       size_t errlen);
int e2_store_event_list(e2_store *s, const char *job, void (*fn)(void *ud, const e2_store_event *e),
                        void *ud, char *err, size_t errlen);

/* ---- workers ---- */
/* The next worker number (persistent, so ids are never reused). */
int64_t e2_store_next_worker_seq(e2_store *s, char *err, size_t errlen);
int e2_store_worker_put(e2_store *s, const e2_store_worker *w, char *err, size_t errlen);
int e2_store_worker_list(e2_store *s, void (*fn)(void *ud, const e2_store_worker *w), void *ud,
                         char *err, size_t errlen);

/* ---- checkpoints ---- */
int e2_store_ckpt_add(e2_store *s, const char *job, const e2_store_ckpt *c, char *err,
                      size_t errlen);
int e2_store_ckpt_delete(e2_store *s, const char *job, int64_t step, char *err, size_t errlen);
/* Ascending step order. */
int e2_store_ckpt_list(e2_store *s, const char *job, void (*fn)(void *ud, const e2_store_ckpt *c),
                       void *ud, char *err, size_t errlen);

/* ---- metrics ---- */
int e2_store_metric_add(e2_store *s, const char *job, const e2_store_metric *m, char *err,
                        size_t errlen);
/* Drops the points after `step`: a new attempt resumed from there, and
 * the abandoned attempt's later points would mix two timelines. */
int e2_store_metric_trim(e2_store *s, const char *job, int64_t step, char *err, size_t errlen);
int e2_store_metric_list(e2_store *s, const char *job,
                         void (*fn)(void *ud, const e2_store_metric *m), void *ud, char *err,
                         size_t errlen);

/* ---- rendezvous ---- */
int e2_store_rdv_put(e2_store *s, const char *job, int attempt, const char *key, const void *val,
                     size_t len, char *err, size_t errlen);
/* *val is malloc'd (free it); E2_NOTFOUND when the key is absent. */
int e2_store_rdv_get(e2_store *s, const char *job, int attempt, const char *key, void **val,
                     size_t *len, char *err, size_t errlen);
/* Drops the keys of every attempt of job before `attempt`. */
int e2_store_rdv_clear(e2_store *s, const char *job, int attempt, char *err, size_t errlen);

/* ---- memos ----
 * A bounded cache of bytes derived from one job's stored state (its row,
 * events and checkpoints), such as a packed GetJob reply, so that a read
 * of an unchanged job touches no table. A memo never shows anything but
 * the committed state: every function above that writes a job's row,
 * events, checkpoints or owner drops that job's memo (before writing), a
 * rollback drops them all, and e2_store_memo_put keeps nothing while a
 * transaction is open. Past STORE_MEMO_MAX memos or STORE_MEMO_MAX_BYTES
 * the least recently used go; a memo over 1/8 of the byte bound is not
 * kept. */
#define STORE_MEMO_MAX       4096
#define STORE_MEMO_MAX_BYTES (32u << 20)
/* The job's memo and its length, or NULL; valid until the next store
 * call. */
const void *e2_store_memo_get(e2_store *s, const char *job, size_t *len);
/* Keeps a copy of data as the job's memo (replacing any). */
void e2_store_memo_put(e2_store *s, const char *job, const void *data, size_t len);
/* Changes the bounds (evicting at once); tests use small ones. */
void e2_store_memo_limits(e2_store *s, size_t max_entries, size_t max_bytes);
void e2_store_memo_stats(e2_store *s, size_t *entries, size_t *bytes);

#endif
