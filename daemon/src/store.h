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
 * Errors follow common/base/base.h: negative return, one line in err. */
#ifndef E2D_STORE_H
#define E2D_STORE_H

#include <stddef.h>
#include <stdint.h>

#define STORE_SCHEMA_VERSION 5
#define STORE_NOTFOUND       (-2) /* = E2_ENOENT: no such row */
#define STORE_IDLEN          32

typedef struct store store;

/* A job row. Strings are owned (malloc'd); store_job_free releases them. */
typedef struct store_job {
    int64_t seq;          /* submission order (FIFO key) */
    char id[STORE_IDLEN]; /* "j-000042" */
    char *request_id;     /* NULL when the client gave none */
    char *spec_json;      /* the validated spec, defaults applied */
    /* The same spec packed (protobuf binary), so that replies carry it
     * without parsing anything; NULL for rows stored before schema 4. */
    uint8_t *spec_pb;
    size_t spec_pb_len;
    int state;    /* jobstate_t */
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
    char *fail_log;                /* last log lines, '\n'-separated */
    char *eval_json;               /* eval results (JSON text) or NULL */
    char fail_worker[STORE_IDLEN]; /* worker that held fail_rank */
    int fail_user;                 /* 1: the failure was a user error */
    int64_t finished_ms;           /* entry into a terminal state */
    /* spec.min_workers, the smallest gang of an elastic restart; and the
     * ranks of the current (or last) attempt, 0 before the first start.
     * Rows from before schema 5 hold 0 in both: num_workers. */
    int min_workers;
    int world_size;
} store_job;

typedef struct store_label {
    const char *key, *value;
} store_label;

typedef struct store_event {
    int64_t time_ms;
    int from, to;
    const char *reason;
} store_event;

typedef struct store_worker {
    char id[STORE_IDLEN];
    char host[128];
    char device[16];
    int device_index;
    int pid;
    int state; /* workerstate, see sched.h */
    char job[STORE_IDLEN];
    int attempt;
    int rank;
    int64_t last_heartbeat_ms;
    int64_t registered_ms;
    char version[64];
    int spawned;            /* started by this e2d (--local-workers) */
    char secret_sha256[65]; /* hex SHA-256 of its worker secret; ""
                                      for rows of schema < 4 (no secret) */
} store_worker;

typedef struct store_ckpt {
    int64_t step;
    const char *path;
    int64_t committed_ms;
    int attempt;
    const char *manifest;
} store_ckpt;

typedef struct store_metric {
    int64_t step;
    int attempt;
    double loss, lr, grad_norm, tokens_per_second;
    int64_t time_ms;
} store_metric;

/* ListJobs query, newest first: states is a bit mask (1 << state; 0 =
 * all); a job must carry every label of labels[0..nlabels); before_seq
 * pages (0 = from the newest); limit <= 0 = no limit. */
#define STORE_MAX_SELECTORS 8
typedef struct store_jobq {
    unsigned states;
    store_label labels[STORE_MAX_SELECTORS];
    int nlabels;
    int64_t before_seq;
    int limit;
} store_jobq;

int store_open(store **out, const char *path, int upto_version, char *err, size_t errlen);
void store_close(store *s);
int store_version(store *s);

/* Explicit transactions group several writes into one commit. They nest:
 * the outermost level is a transaction, inner ones are savepoints, so a
 * rollback undoes only its own level. Every store_begin that succeeded is
 * closed by exactly one store_commit or store_rollback; a failed
 * store_commit has already rolled its level back. Only the outermost
 * commit makes anything durable. */
int store_begin(store *s, char *err, size_t errlen);
/* Closes the level: commits when ok, else rolls back and fails. */
int store_end(store *s, int ok, char *err, size_t errlen);
int store_commit(store *s, char *err, size_t errlen);
void store_rollback(store *s);

/* ---- jobs ---- */
void store_job_free(store_job *j);
/* Inserts j (j->id is assigned from the new seq) with its labels. */
int store_job_insert(store *s, store_job *j, const store_label *labels, int nlabels, char *err,
                     size_t errlen);
int store_job_get(store *s, const char *id, store_job *j, char *err, size_t errlen);
/* The job's owner (the name of the token that submitted it; "" without
 * tokens). Kept out of store_job: only access control reads it. */
int store_job_set_owner(store *s, const char *id, const char *owner, char *err, size_t errlen);
int store_job_owner(store *s, const char *id, char *owner, size_t len, char *err, size_t errlen);
int store_job_by_request(store *s, const char *request_id, store_job *j, char *err, size_t errlen);
/* Writes every mutable column of j back. */
int store_job_update(store *s, const store_job *j, char *err, size_t errlen);
/* Calls fn for each matching job, newest first; fn returning non-zero
 * stops. Returns the number visited or < 0. */
int store_job_list(store *s, const store_jobq *q, int (*fn)(void *ud, const store_job *j), void *ud,
                   char *err, size_t errlen);
/* The scheduler's queue: PENDING and RESTARTING jobs, higher priority
 * first, FIFO (submission order) within a priority. */
int store_job_queued(store *s, int (*fn)(void *ud, const store_job *j), void *ud, char *err,
                     size_t errlen);
/* The same queue, id and device of each job only (the scheduler's scan:
 * no row decoded, no large sort). */
int store_job_queued_ids(store *s, int (*fn)(void *ud, const char *id, const char *device),
                         void *ud, char *err, size_t errlen);
/* Jobs in any state of the mask (1 << state), in submission order. */
int store_job_in_states(store *s, unsigned states, int (*fn)(void *ud, const store_job *j),
                        void *ud, char *err, size_t errlen);
int store_job_count(store *s);

/* ---- events ---- */
int store_event_add(store *s, const char *job, const store_event *e, char *err, size_t errlen);
int store_event_list(store *s, const char *job, void (*fn)(void *ud, const store_event *e),
                     void *ud, char *err, size_t errlen);

/* ---- workers ---- */
/* The next worker number (persistent, so ids are never reused). */
int64_t store_next_worker_seq(store *s, char *err, size_t errlen);
int store_worker_put(store *s, const store_worker *w, char *err, size_t errlen);
int store_worker_list(store *s, void (*fn)(void *ud, const store_worker *w), void *ud, char *err,
                      size_t errlen);

/* ---- checkpoints ---- */
int store_ckpt_add(store *s, const char *job, const store_ckpt *c, char *err, size_t errlen);
int store_ckpt_delete(store *s, const char *job, int64_t step, char *err, size_t errlen);
/* Ascending step order. */
int store_ckpt_list(store *s, const char *job, void (*fn)(void *ud, const store_ckpt *c), void *ud,
                    char *err, size_t errlen);

/* ---- metrics ---- */
int store_metric_add(store *s, const char *job, const store_metric *m, char *err, size_t errlen);
/* Drops the points after `step`: a new attempt resumed from there, and
 * the abandoned attempt's later points would mix two timelines. */
int store_metric_trim(store *s, const char *job, int64_t step, char *err, size_t errlen);
int store_metric_list(store *s, const char *job, void (*fn)(void *ud, const store_metric *m),
                      void *ud, char *err, size_t errlen);

/* ---- rendezvous ---- */
int store_rdv_put(store *s, const char *job, int attempt, const char *key, const void *val,
                  size_t len, char *err, size_t errlen);
/* *val is malloc'd (free it); STORE_NOTFOUND when the key is absent. */
int store_rdv_get(store *s, const char *job, int attempt, const char *key, void **val, size_t *len,
                  char *err, size_t errlen);
/* Drops the keys of every attempt of job before `attempt`. */
int store_rdv_clear(store *s, const char *job, int attempt, char *err, size_t errlen);

#endif
