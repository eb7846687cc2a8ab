/* store.c -- SQLite persistence for e2d: schema migrations, cached prepared
 * statements and one small function per query. See store.h for the rules. */
#include "store.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"

/* Migration i takes user_version i to i+1. Never edit a shipped entry:
 * append a new one and bump E2_STORE_SCHEMA_VERSION. */
static const char *store_migrations[E2_STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the tables. */
    "CREATE TABLE jobs("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " request_id TEXT UNIQUE,"
    " spec TEXT NOT NULL,"
    " state INTEGER NOT NULL,"
    " reason TEXT NOT NULL DEFAULT '',"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " device TEXT NOT NULL,"
    " num_workers INTEGER NOT NULL,"
    " max_restarts INTEGER NOT NULL,"
    " keep_last INTEGER NOT NULL,"
    " created_ms INTEGER NOT NULL,"
    " updated_ms INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL DEFAULT 0,"
    " restarts INTEGER NOT NULL DEFAULT 0,"
    " user_errors INTEGER NOT NULL DEFAULT 0,"
    " cancellations INTEGER NOT NULL DEFAULT 0,"
    " step INTEGER NOT NULL DEFAULT 0,"
    " total_steps INTEGER NOT NULL DEFAULT 0,"
    " loss REAL NOT NULL DEFAULT 0,"
    " lr REAL NOT NULL DEFAULT 0,"
    " tokens_per_second REAL NOT NULL DEFAULT 0,"
    " started_ms INTEGER NOT NULL DEFAULT 0,"
    " fail_exit_code INTEGER NOT NULL DEFAULT 0,"
    " fail_signal INTEGER NOT NULL DEFAULT 0,"
    " fail_rank INTEGER NOT NULL DEFAULT -1,"
    " fail_log TEXT,"
    " fail_worker TEXT NOT NULL DEFAULT '',"
    " fail_user INTEGER NOT NULL DEFAULT 0,"
    " finished_ms INTEGER NOT NULL DEFAULT 0,"
    " eval TEXT);"
    "CREATE TABLE job_labels(job TEXT NOT NULL, key TEXT NOT NULL,"
    " value TEXT NOT NULL, PRIMARY KEY(job, key));"
    "CREATE TABLE job_events(id INTEGER PRIMARY KEY, job TEXT NOT NULL,"
    " time_ms INTEGER NOT NULL, from_state INTEGER NOT NULL,"
    " to_state INTEGER NOT NULL, reason TEXT NOT NULL);"
    "CREATE TABLE workers(id TEXT PRIMARY KEY, host TEXT NOT NULL,"
    " device TEXT NOT NULL, device_index INTEGER NOT NULL,"
    " pid INTEGER NOT NULL, state INTEGER NOT NULL, job TEXT NOT NULL,"
    " attempt INTEGER NOT NULL, rank INTEGER NOT NULL,"
    " last_heartbeat_ms INTEGER NOT NULL, registered_ms INTEGER NOT NULL,"
    " version TEXT NOT NULL, spawned INTEGER NOT NULL);"
    "CREATE TABLE checkpoints(job TEXT NOT NULL, step INTEGER NOT NULL,"
    " path TEXT NOT NULL, committed_ms INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, manifest TEXT NOT NULL,"
    " PRIMARY KEY(job, step));"
    "CREATE TABLE metrics(job TEXT NOT NULL, step INTEGER NOT NULL,"
    " attempt INTEGER NOT NULL, loss REAL, lr REAL, grad_norm REAL,"
    " tokens_per_second REAL, time_ms INTEGER NOT NULL,"
    " PRIMARY KEY(job, step));"
    "CREATE TABLE rendezvous(job TEXT NOT NULL, attempt INTEGER NOT NULL,"
    " key TEXT NOT NULL, value BLOB NOT NULL,"
    " PRIMARY KEY(job, attempt, key));",
    /* 1 -> 2: persistent counters (worker ids are never reused) and the
     * indexes the scheduler and event listing read through. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta VALUES('worker_seq', 0);"
    "CREATE INDEX jobs_state ON jobs(state, priority, seq);"
    "CREATE INDEX job_events_job ON job_events(job, id);",
    /* 2 -> 3: who submitted each job (the bearer token's name; '' when
     * e2d runs without a token file). */
    "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';",
    /* 3 -> 4: worker identity (the SHA-256 of each worker's secret, never
     * the secret) and each job's spec packed as protobuf, which replies
     * embed as it is instead of parsing spec's JSON. */
    ("ALTER TABLE workers ADD COLUMN secret_sha256 TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE jobs ADD COLUMN spec_pb BLOB;"),
    /* 4 -> 5: elastic restarts: each job's smallest gang (spec.min_workers)
     * and the ranks of its current attempt (0: num_workers). */
    ("ALTER TABLE jobs ADD COLUMN min_workers INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE jobs ADD COLUMN world_size INTEGER NOT NULL DEFAULT 0;"),
};

enum {
    Q_JOB_INSERT,
    Q_JOB_SETID,
    Q_JOB_SETPB,
    Q_JOB_SETMIN,
    Q_LABEL_INSERT,
    Q_JOB_GET,
    Q_JOB_BY_REQ,
    Q_JOB_UPDATE,
    Q_JOB_PROGRESS,
    Q_JOB_COUNT,
    Q_EVENT_ADD,
    Q_EVENT_LIST,
    Q_WSEQ_BUMP,
    Q_WSEQ_GET,
    Q_WORKER_PUT,
    Q_WORKER_LIST,
    Q_CKPT_ADD,
    Q_CKPT_DEL,
    Q_CKPT_LIST,
    Q_METRIC_ADD,
    Q_METRIC_LIST,
    Q_METRIC_TRIM,
    Q_RDV_PUT,
    Q_RDV_GET,
    Q_RDV_CLEAR,
    Q_JOB_QUEUED,
    Q_JOB_QUEUED_IDS,
    Q_JOB_STATES,
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SAVEPOINT,
    Q_RELEASE,
    Q_ROLLBACK_TO,
    Q_OWNER_SET,
    Q_OWNER_GET,
    Q_N
};

#define JOB_COLS                                                         \
    "seq, id, request_id, spec, state, reason, priority, device,"        \
    " num_workers, max_restarts, keep_last, created_ms, updated_ms,"     \
    " attempt, restarts, user_errors, cancellations, step, total_steps," \
    " loss, lr, tokens_per_second, started_ms, fail_exit_code,"          \
    " fail_signal, fail_rank, fail_log, eval, fail_worker, fail_user,"   \
    " finished_ms, spec_pb, min_workers, world_size"

static const char *store_sql[Q_N] = {
    [Q_JOB_INSERT] = "INSERT INTO jobs(id, request_id, spec, state, reason, priority,"
                     " device, num_workers, max_restarts, keep_last, created_ms,"
                     " updated_ms, total_steps) VALUES('', ?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                     " ?8, ?9, ?10, ?10, ?11)",
    [Q_JOB_SETPB] = "UPDATE jobs SET spec_pb = ?2 WHERE seq = ?1",
    [Q_JOB_SETMIN] = "UPDATE jobs SET min_workers = ?2 WHERE seq = ?1",
    [Q_JOB_SETID] = "UPDATE jobs SET id = ?2 WHERE seq = ?1",
    [Q_LABEL_INSERT] = "INSERT INTO job_labels VALUES(?1, ?2, ?3)",
    [Q_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [Q_JOB_BY_REQ] = "SELECT " JOB_COLS " FROM jobs WHERE request_id = ?1",
    [Q_JOB_UPDATE] = "UPDATE jobs SET state = ?2, reason = ?3, updated_ms = ?4,"
                     " attempt = ?5, restarts = ?6, user_errors = ?7, cancellations = ?8,"
                     " step = ?9, total_steps = ?10, loss = ?11, lr = ?12,"
                     " tokens_per_second = ?13, started_ms = ?14, fail_exit_code = ?15,"
                     " fail_signal = ?16, fail_rank = ?17, fail_log = ?18, eval = ?19,"
                     " fail_worker = ?20, fail_user = ?21, finished_ms = ?22,"
                     " world_size = ?23 WHERE id = ?1",
    [Q_JOB_PROGRESS] = "UPDATE jobs SET step = ?2, loss = ?3, lr = ?4,"
                       " tokens_per_second = ?5, updated_ms = ?6"
                       " WHERE id = ?1 AND attempt = ?7",
    [Q_JOB_COUNT] = "SELECT count(*) FROM jobs",
    [Q_OWNER_SET] = "UPDATE jobs SET owner = ?2 WHERE id = ?1",
    [Q_OWNER_GET] = "SELECT owner FROM jobs WHERE id = ?1",
    [Q_EVENT_ADD] = "INSERT INTO job_events(job, time_ms, from_state,"
                    " to_state, reason) VALUES(?1, ?2, ?3, ?4, ?5)",
    [Q_EVENT_LIST] = "SELECT time_ms, from_state, to_state, reason"
                     " FROM job_events WHERE job = ?1 ORDER BY id",
    [Q_WSEQ_BUMP] = "UPDATE meta SET value = value + 1"
                    " WHERE key = 'worker_seq'",
    [Q_WSEQ_GET] = "SELECT value FROM meta WHERE key = 'worker_seq'",
    [Q_WORKER_PUT] = "INSERT OR REPLACE INTO workers(id, host, device,"
                     " device_index, pid, state, job, attempt, rank,"
                     " last_heartbeat_ms, registered_ms, version, spawned,"
                     " secret_sha256) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                     " ?9, ?10, ?11, ?12, ?13, ?14)",
    [Q_WORKER_LIST] = "SELECT id, host, device, device_index, pid, state,"
                      " job, attempt, rank, last_heartbeat_ms,"
                      " registered_ms, version, spawned, secret_sha256"
                      " FROM workers ORDER BY registered_ms, id",
    [Q_CKPT_ADD] = "INSERT OR REPLACE INTO checkpoints VALUES(?1, ?2, ?3,"
                   " ?4, ?5, ?6)",
    [Q_CKPT_DEL] = "DELETE FROM checkpoints WHERE job = ?1 AND step = ?2",
    [Q_CKPT_LIST] = "SELECT step, path, committed_ms, attempt, manifest"
                    " FROM checkpoints WHERE job = ?1 ORDER BY step",
    [Q_METRIC_ADD] = "INSERT OR REPLACE INTO metrics VALUES(?1, ?2, ?3, ?4,"
                     " ?5, ?6, ?7, ?8)",
    [Q_METRIC_LIST] = "SELECT step, attempt, loss, lr, grad_norm,"
                      " tokens_per_second, time_ms FROM metrics"
                      " WHERE job = ?1 ORDER BY step",
    [Q_METRIC_TRIM] = "DELETE FROM metrics WHERE job = ?1 AND step > ?2",
    [Q_RDV_PUT] = "INSERT OR REPLACE INTO rendezvous VALUES(?1, ?2, ?3, ?4)",
    [Q_RDV_GET] = "SELECT value FROM rendezvous WHERE job = ?1"
                  " AND attempt = ?2 AND key = ?3",
    [Q_RDV_CLEAR] = "DELETE FROM rendezvous WHERE job = ?1 AND attempt < ?2",
    [Q_JOB_QUEUED] = "SELECT " JOB_COLS " FROM jobs WHERE state IN (1, 4)"
                     " ORDER BY priority DESC, seq",
    /* The same order, id and device only: a small in-memory sort. */
    [Q_JOB_QUEUED_IDS] = "SELECT id, device FROM jobs WHERE state IN (1, 4)"
                         " ORDER BY priority DESC, seq",
    [Q_JOB_STATES] = "SELECT " JOB_COLS " FROM jobs"
                     " WHERE ((1 << state) & ?1) != 0 ORDER BY seq",
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SAVEPOINT] = "SAVEPOINT n",
    [Q_RELEASE] = "RELEASE n",
    [Q_ROLLBACK_TO] = "ROLLBACK TO n",
};

/* A memo (store.h): bytes derived from one job's committed state. */
typedef struct store_memo {
    struct store_memo *hnext;       /* hash chain */
    struct store_memo *prev, *next; /* recency list, newest first */
    char job[E2_STORE_IDLEN];
    size_t len;
    unsigned char data[];
} store_memo;

#define STORE_MEMO_BUCKETS 4096 /* power of two */

struct e2_store {
    sqlite3 *db;
    sqlite3_stmt *stmt[Q_N];
    int in_tx; /* open levels: 1 = BEGIN, each further one a SAVEPOINT */
    store_memo *memo_tab[STORE_MEMO_BUCKETS];
    store_memo *memo_new, *memo_old; /* recency list ends */
    size_t memo_n, memo_bytes, memo_max_n, memo_max_bytes;
};

static void store_memo_drop(e2_store *s, const char *job);
static void store_memo_clear(e2_store *s);

static int store_fail(e2_store *s, char *err, size_t errlen, const char *what) {
    return e2_errf(err, errlen, "sqlite %s: %s", what, sqlite3_errmsg(s->db));
}

/* The cached statement for q, reset and with its bindings cleared. */
static sqlite3_stmt *store_q(e2_store *s, int q, char *err, size_t errlen) {
    if (!s->stmt[q] && sqlite3_prepare_v3(s->db, store_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
                                          &s->stmt[q], NULL) != SQLITE_OK) {
        store_fail(s, err, errlen, "prepare");
        return NULL;
    }
    sqlite3_reset(s->stmt[q]);
    sqlite3_clear_bindings(s->stmt[q]);
    return s->stmt[q];
}

static void bind_text(sqlite3_stmt *st, int i, const char *v) {
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows. */
static int store_done(e2_store *s, sqlite3_stmt *st, char *err, size_t errlen) {
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return store_fail(s, err, errlen, "write");
    return 0;
}

static int store_exec(e2_store *s, const char *sql, char *err, size_t errlen) {
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        e2_errf(err, errlen, "sqlite: %s", msg ? msg : "error");
        sqlite3_free(msg);
        return E2_ERR;
    }
    return 0;
}

int e2_store_version(e2_store *s) {
    sqlite3_stmt *st;
    int v = E2_ERR;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) return E2_ERR;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* Applies the migrations from the database's version up to `upto`, each in
 * one transaction together with its user_version bump. */
static int store_migrate(e2_store *s, int upto, char *err, size_t errlen) {
    int v = e2_store_version(s);
    if (v < 0) return store_fail(s, err, errlen, "user_version");
    if (v > E2_STORE_SCHEMA_VERSION)
        return e2_errf(err, errlen,
                       "state database schema version %d is newer than this "
                       "e2d supports (%d): upgrade e2d",
                       v, E2_STORE_SCHEMA_VERSION);
    for (; v < upto; v++) {
        char bump[64];
        snprintf(bump, sizeof bump, "PRAGMA user_version = %d", v + 1);
        if (store_exec(s, "BEGIN IMMEDIATE", err, errlen) < 0) return E2_ERR;
        if (store_exec(s, store_migrations[v], err, errlen) < 0 ||
            store_exec(s, bump, err, errlen) < 0 || store_exec(s, "COMMIT", err, errlen) < 0) {
            store_exec(s, "ROLLBACK", NULL, 0);
            return E2_ERR;
        }
    }
    return 0;
}

int e2_store_open(e2_store **out, const char *path, int upto_version, char *err, size_t errlen) {
    e2_store *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s) return e2_errf(err, errlen, "out of memory");
    s->memo_max_n = STORE_MEMO_MAX;
    s->memo_max_bytes = STORE_MEMO_MAX_BYTES;
    if (upto_version < 0 || upto_version > E2_STORE_SCHEMA_VERSION)
        upto_version = E2_STORE_SCHEMA_VERSION;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        e2_errf(err, errlen, "open %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto err;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (store_exec(s, "PRAGMA journal_mode = WAL", err, errlen) < 0 ||
        store_exec(s, "PRAGMA synchronous = FULL", err, errlen) < 0 ||
        store_exec(s, "PRAGMA foreign_keys = ON", err, errlen) < 0 ||
        store_migrate(s, upto_version, err, errlen) < 0)
        goto err;
    *out = s;
    return 0;
err:
    e2_store_close(s);
    return E2_ERR;
}

void e2_store_close(e2_store *s) {
    if (!s) return;
    for (int i = 0; i < Q_N; i++) sqlite3_finalize(s->stmt[i]);
    store_memo_clear(s);
    sqlite3_close(s->db);
    free(s);
}

static int store_simple(e2_store *s, int q, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, q, err, errlen);
    return st ? store_done(s, st, err, errlen) : E2_ERR;
}

int e2_store_begin(e2_store *s, char *err, size_t errlen) {
    if (store_simple(s, s->in_tx ? Q_SAVEPOINT : Q_BEGIN, err, errlen) < 0) return E2_ERR;
    s->in_tx++;
    return 0;
}

int e2_store_commit(e2_store *s, char *err, size_t errlen) {
    if (s->in_tx <= 0) return e2_errf(err, errlen, "commit without a transaction");
    if (store_simple(s, s->in_tx > 1 ? Q_RELEASE : Q_COMMIT, err, errlen) < 0) {
        e2_store_rollback(s);
        return E2_ERR;
    }
    s->in_tx--;
    return 0;
}

int e2_store_end(e2_store *s, int ok, char *err, size_t errlen) {
    if (ok) return e2_store_commit(s, err, errlen);
    e2_store_rollback(s);
    return E2_ERR;
}

void e2_store_rollback(e2_store *s) {
    if (s->in_tx <= 0) return;
    /* Writes inside the transaction dropped their jobs' memos and none
     * was kept meanwhile; dropping all is the simple guarantee. */
    store_memo_clear(s);
    if (s->in_tx > 1) {
        store_simple(s, Q_ROLLBACK_TO, NULL, 0);
        store_simple(s, Q_RELEASE, NULL, 0);
    } else {
        store_simple(s, Q_ROLLBACK, NULL, 0);
    }
    s->in_tx--;
}

/* ---- jobs ---- */

void e2_store_job_free(e2_store_job *j) {
    free(j->request_id);
    free(j->spec_json);
    free(j->spec_pb);
    free(j->reason);
    free(j->fail_log);
    free(j->eval_json);
    memset(j, 0, sizeof *j);
}

static char *col_dup(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t n) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, n, "%s", t ? (const char *)t : "");
}

static void job_from_row(sqlite3_stmt *st, e2_store_job *j) {
    memset(j, 0, sizeof *j);
    j->seq = sqlite3_column_int64(st, 0);
    col_copy(st, 1, j->id, sizeof j->id);
    j->request_id = col_dup(st, 2);
    j->spec_json = col_dup(st, 3);
    j->state = sqlite3_column_int(st, 4);
    j->reason = col_dup(st, 5);
    j->priority = sqlite3_column_int(st, 6);
    col_copy(st, 7, j->device, sizeof j->device);
    j->num_workers = sqlite3_column_int(st, 8);
    j->max_restarts = sqlite3_column_int(st, 9);
    j->keep_last = sqlite3_column_int(st, 10);
    j->created_ms = sqlite3_column_int64(st, 11);
    j->updated_ms = sqlite3_column_int64(st, 12);
    j->attempt = sqlite3_column_int(st, 13);
    j->restarts = sqlite3_column_int(st, 14);
    j->user_errors = sqlite3_column_int(st, 15);
    j->cancellations = sqlite3_column_int(st, 16);
    j->step = sqlite3_column_int64(st, 17);
    j->total_steps = sqlite3_column_int64(st, 18);
    j->loss = sqlite3_column_double(st, 19);
    j->lr = sqlite3_column_double(st, 20);
    j->tokens_per_second = sqlite3_column_double(st, 21);
    j->started_ms = sqlite3_column_int64(st, 22);
    j->fail_exit_code = sqlite3_column_int(st, 23);
    j->fail_signal = sqlite3_column_int(st, 24);
    j->fail_rank = sqlite3_column_int(st, 25);
    j->fail_log = col_dup(st, 26);
    j->eval_json = col_dup(st, 27);
    col_copy(st, 28, j->fail_worker, sizeof j->fail_worker);
    j->fail_user = sqlite3_column_int(st, 29);
    j->finished_ms = sqlite3_column_int64(st, 30);
    if (sqlite3_column_type(st, 31) == SQLITE_BLOB) {
        int n = sqlite3_column_bytes(st, 31);
        const void *b = sqlite3_column_blob(st, 31);
        if (n > 0 && b && (j->spec_pb = malloc((size_t)n))) {
            memcpy(j->spec_pb, b, (size_t)n);
            j->spec_pb_len = (size_t)n;
        }
    }
    j->min_workers = sqlite3_column_int(st, 32);
    j->world_size = sqlite3_column_int(st, 33);
}

int e2_store_job_insert(e2_store *s, e2_store_job *j, const e2_store_label *labels, int nlabels,
                        char *err, size_t errlen) {
    sqlite3_stmt *st;
    if (e2_store_begin(s, err, errlen) < 0) return E2_ERR;
    if (!(st = store_q(s, Q_JOB_INSERT, err, errlen))) goto err;
    bind_text(st, 1, j->request_id);
    bind_text(st, 2, j->spec_json);
    sqlite3_bind_int(st, 3, j->state);
    bind_text(st, 4, j->reason ? j->reason : "");
    sqlite3_bind_int(st, 5, j->priority);
    bind_text(st, 6, j->device);
    sqlite3_bind_int(st, 7, j->num_workers);
    sqlite3_bind_int(st, 8, j->max_restarts);
    sqlite3_bind_int(st, 9, j->keep_last);
    sqlite3_bind_int64(st, 10, j->created_ms);
    sqlite3_bind_int64(st, 11, j->total_steps);
    if (store_done(s, st, err, errlen) < 0) goto err;
    if (j->spec_pb) {
        if (!(st = store_q(s, Q_JOB_SETPB, err, errlen))) goto err;
        sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(s->db));
        sqlite3_bind_blob(st, 2, j->spec_pb, (int)j->spec_pb_len, SQLITE_TRANSIENT);
        if (store_done(s, st, err, errlen) < 0) goto err;
    }
    if (j->min_workers > 0) { /* schema 5 */
        if (!(st = store_q(s, Q_JOB_SETMIN, err, errlen))) goto err;
        sqlite3_bind_int64(st, 1, sqlite3_last_insert_rowid(s->db));
        sqlite3_bind_int(st, 2, j->min_workers);
        if (store_done(s, st, err, errlen) < 0) goto err;
    }
    j->seq = sqlite3_last_insert_rowid(s->db);
    j->updated_ms = j->created_ms;
    j->fail_rank = -1;
    snprintf(j->id, sizeof j->id, "j-%06lld", (long long)j->seq);
    store_memo_drop(s, j->id);
    if (!(st = store_q(s, Q_JOB_SETID, err, errlen))) goto err;
    sqlite3_bind_int64(st, 1, j->seq);
    bind_text(st, 2, j->id);
    if (store_done(s, st, err, errlen) < 0) goto err;
    for (int i = 0; i < nlabels; i++) {
        if (!(st = store_q(s, Q_LABEL_INSERT, err, errlen))) goto err;
        bind_text(st, 1, j->id);
        bind_text(st, 2, labels[i].key);
        bind_text(st, 3, labels[i].value);
        if (store_done(s, st, err, errlen) < 0) goto err;
    }
    return e2_store_commit(s, err, errlen);
err:
    e2_store_rollback(s);
    return E2_ERR;
}

static int store_job_one(e2_store *s, int q, const char *key, e2_store_job *j, char *err,
                         size_t errlen) {
    sqlite3_stmt *st = store_q(s, q, err, errlen);
    int rc;
    if (!st) return E2_ERR;
    bind_text(st, 1, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        job_from_row(st, j);
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        e2_errf(err, errlen, "job %s not found", key);
        return E2_NOTFOUND;
    }
    return store_fail(s, err, errlen, "read job");
}

int e2_store_job_get(e2_store *s, const char *id, e2_store_job *j, char *err, size_t errlen) {
    return store_job_one(s, Q_JOB_GET, id, j, err, errlen);
}

int e2_store_job_by_request(e2_store *s, const char *request_id, e2_store_job *j, char *err,
                            size_t errlen) {
    return store_job_one(s, Q_JOB_BY_REQ, request_id, j, err, errlen);
}

int e2_store_job_update(e2_store *s, const e2_store_job *j, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_JOB_UPDATE, err, errlen);
    if (!st) return E2_ERR;
    store_memo_drop(s, j->id);
    bind_text(st, 1, j->id);
    sqlite3_bind_int(st, 2, j->state);
    bind_text(st, 3, j->reason ? j->reason : "");
    sqlite3_bind_int64(st, 4, j->updated_ms);
    sqlite3_bind_int(st, 5, j->attempt);
    sqlite3_bind_int(st, 6, j->restarts);
    sqlite3_bind_int(st, 7, j->user_errors);
    sqlite3_bind_int(st, 8, j->cancellations);
    sqlite3_bind_int64(st, 9, j->step);
    sqlite3_bind_int64(st, 10, j->total_steps);
    sqlite3_bind_double(st, 11, j->loss);
    sqlite3_bind_double(st, 12, j->lr);
    sqlite3_bind_double(st, 13, j->tokens_per_second);
    sqlite3_bind_int64(st, 14, j->started_ms);
    sqlite3_bind_int(st, 15, j->fail_exit_code);
    sqlite3_bind_int(st, 16, j->fail_signal);
    sqlite3_bind_int(st, 17, j->fail_rank);
    bind_text(st, 18, j->fail_log);
    bind_text(st, 19, j->eval_json);
    bind_text(st, 20, j->fail_worker);
    sqlite3_bind_int(st, 21, j->fail_user);
    sqlite3_bind_int64(st, 22, j->finished_ms);
    sqlite3_bind_int(st, 23, j->world_size);
    if (store_done(s, st, err, errlen) < 0) return E2_ERR;
    if (sqlite3_changes(s->db) != 1) return e2_errf(err, errlen, "job %s not found", j->id);
    return 0;
}

int e2_store_job_progress(e2_store *s, const e2_store_job *j, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_JOB_PROGRESS, err, errlen);
    if (!st) return E2_ERR;
    store_memo_drop(s, j->id);
    bind_text(st, 1, j->id);
    sqlite3_bind_int64(st, 2, j->step);
    sqlite3_bind_double(st, 3, j->loss);
    sqlite3_bind_double(st, 4, j->lr);
    sqlite3_bind_double(st, 5, j->tokens_per_second);
    sqlite3_bind_int64(st, 6, j->updated_ms);
    sqlite3_bind_int(st, 7, j->attempt);
    if (store_done(s, st, err, errlen) < 0) return E2_ERR;
    if (sqlite3_changes(s->db) != 1)
        return e2_errf(err, errlen, "job %s attempt %d not found", j->id, j->attempt);
    return 0;
}

/* Steps st and calls fn per row; finalizes st when `own` (an uncached
 * statement), else resets it. */
static int store_job_rows(e2_store *s, sqlite3_stmt *st, int own,
                          int (*fn)(void *ud, const e2_store_job *j), void *ud, char *err,
                          size_t errlen) {
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e2_store_job j;
        int stop;
        job_from_row(st, &j);
        stop = fn(ud, &j);
        e2_store_job_free(&j);
        n++;
        if (stop) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) n = store_fail(s, err, errlen, "list jobs");
    if (own)
        sqlite3_finalize(st);
    else
        sqlite3_reset(st);
    return n;
}

/* The list query is built per call (its WHERE clause depends on the filter)
 * and is therefore not cached; ListJobs is not a hot path. */
int e2_store_job_list(e2_store *s, const e2_store_jobq *q,
                      int (*fn)(void *ud, const e2_store_job *j), void *ud, char *err,
                      size_t errlen) {
    char sql[2048];
    size_t n;
    sqlite3_stmt *st;
    if (q->nlabels < 0 || q->nlabels > E2_STORE_MAX_SELECTORS)
        return e2_errf(err, errlen, "at most %d label selectors", E2_STORE_MAX_SELECTORS);
    n = (size_t)snprintf(sql, sizeof sql, "SELECT " JOB_COLS " FROM jobs WHERE seq < ?1%s",
                         q->states ? " AND ((1 << state) & ?2) != 0" : "");
    for (int i = 0; i < q->nlabels && n < sizeof sql; i++)
        n += (size_t)snprintf(sql + n, sizeof sql - n,
                              " AND EXISTS (SELECT 1 FROM job_labels l"
                              " WHERE l.job = jobs.id AND l.key = ?%d"
                              " AND l.value = ?%d)",
                              4 + 2 * i, 5 + 2 * i);
    if (n < sizeof sql) snprintf(sql + n, sizeof sql - n, " ORDER BY seq DESC LIMIT ?3");
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return store_fail(s, err, errlen, "prepare list");
    sqlite3_bind_int64(st, 1, q->before_seq > 0 ? q->before_seq : INT64_MAX);
    if (q->states) sqlite3_bind_int64(st, 2, q->states);
    sqlite3_bind_int(st, 3, q->limit > 0 ? q->limit : -1);
    for (int i = 0; i < q->nlabels; i++) {
        bind_text(st, 4 + 2 * i, q->labels[i].key);
        bind_text(st, 5 + 2 * i, q->labels[i].value);
    }
    return store_job_rows(s, st, 1, fn, ud, err, errlen);
}

int e2_store_job_queued(e2_store *s, int (*fn)(void *ud, const e2_store_job *j), void *ud,
                        char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_JOB_QUEUED, err, errlen);
    return st ? store_job_rows(s, st, 0, fn, ud, err, errlen) : E2_ERR;
}

int e2_store_job_queued_ids(e2_store *s, int (*fn)(void *ud, const char *id, const char *device),
                            void *ud, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_JOB_QUEUED_IDS, err, errlen);
    int n = 0, rc;
    if (!st) return E2_ERR;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *dev = (const char *)sqlite3_column_text(st, 1);
        n++;
        if (fn(ud, id ? id : "", dev ? dev : "")) break;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) n = store_fail(s, err, errlen, "list queued jobs");
    sqlite3_reset(st);
    return n;
}

int e2_store_job_in_states(e2_store *s, unsigned states, int (*fn)(void *ud, const e2_store_job *j),
                           void *ud, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_JOB_STATES, err, errlen);
    if (!st) return E2_ERR;
    sqlite3_bind_int64(st, 1, states);
    return store_job_rows(s, st, 0, fn, ud, err, errlen);
}

int e2_store_job_count(e2_store *s) {
    sqlite3_stmt *st = store_q(s, Q_JOB_COUNT, NULL, 0);
    int n = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    if (st) sqlite3_reset(st);
    return n;
}

int e2_store_job_set_owner(e2_store *s, const char *id, const char *owner, char *err,
                           size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_OWNER_SET, err, errlen);
    if (!st) return E2_ERR;
    store_memo_drop(s, id);
    bind_text(st, 1, id);
    bind_text(st, 2, owner);
    return store_done(s, st, err, errlen);
}

int e2_store_job_owner(e2_store *s, const char *id, char *owner, size_t len, char *err,
                       size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_OWNER_GET, err, errlen);
    int rc;
    if (!st) return E2_ERR;
    bind_text(st, 1, id);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) col_copy(st, 0, owner, len);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 0;
    if (rc == SQLITE_DONE) {
        e2_errf(err, errlen, "job %s not found", id);
        return E2_NOTFOUND;
    }
    return store_fail(s, err, errlen, "read job owner");
}

/* ---- events ---- */

int e2_store_event_add(e2_store *s, const char *job, const e2_store_event *e, char *err,
                       size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_EVENT_ADD, err, errlen);
    if (!st) return E2_ERR;
    store_memo_drop(s, job);
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, e->time_ms);
    sqlite3_bind_int(st, 3, e->from);
    sqlite3_bind_int(st, 4, e->to);
    bind_text(st, 5, e->reason ? e->reason : "");
    return store_done(s, st, err, errlen);
}

int e2_store_event_list(e2_store *s, const char *job, void (*fn)(void *ud, const e2_store_event *e),
                        void *ud, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_EVENT_LIST, err, errlen);
    int rc;
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e2_store_event e = {
            .time_ms = sqlite3_column_int64(st, 0),
            .from = sqlite3_column_int(st, 1),
            .to = sqlite3_column_int(st, 2),
            .reason = (const char *)sqlite3_column_text(st, 3),
        };
        fn(ud, &e);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, err, errlen, "events");
}

/* ---- workers ---- */

int64_t e2_store_next_worker_seq(e2_store *s, char *err, size_t errlen) {
    sqlite3_stmt *st;
    int64_t v = -1;
    if (store_simple(s, Q_WSEQ_BUMP, err, errlen) < 0 ||
        !(st = store_q(s, Q_WSEQ_GET, err, errlen)))
        return E2_ERR;
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (v < 0) return store_fail(s, err, errlen, "worker_seq");
    return v;
}

int e2_store_worker_put(e2_store *s, const e2_store_worker *w, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_WORKER_PUT, err, errlen);
    if (!st) return E2_ERR;
    bind_text(st, 1, w->id);
    bind_text(st, 2, w->host);
    bind_text(st, 3, w->device);
    sqlite3_bind_int(st, 4, w->device_index);
    sqlite3_bind_int(st, 5, w->pid);
    sqlite3_bind_int(st, 6, w->state);
    bind_text(st, 7, w->job);
    sqlite3_bind_int(st, 8, w->attempt);
    sqlite3_bind_int(st, 9, w->rank);
    sqlite3_bind_int64(st, 10, w->last_heartbeat_ms);
    sqlite3_bind_int64(st, 11, w->registered_ms);
    bind_text(st, 12, w->version);
    sqlite3_bind_int(st, 13, w->spawned);
    bind_text(st, 14, w->secret_sha256);
    return store_done(s, st, err, errlen);
}

int e2_store_worker_list(e2_store *s, void (*fn)(void *ud, const e2_store_worker *w), void *ud,
                         char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_WORKER_LIST, err, errlen);
    int rc;
    if (!st) return E2_ERR;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e2_store_worker w;
        memset(&w, 0, sizeof w);
        col_copy(st, 0, w.id, sizeof w.id);
        col_copy(st, 1, w.host, sizeof w.host);
        col_copy(st, 2, w.device, sizeof w.device);
        w.device_index = sqlite3_column_int(st, 3);
        w.pid = sqlite3_column_int(st, 4);
        w.state = sqlite3_column_int(st, 5);
        col_copy(st, 6, w.job, sizeof w.job);
        w.attempt = sqlite3_column_int(st, 7);
        w.rank = sqlite3_column_int(st, 8);
        w.last_heartbeat_ms = sqlite3_column_int64(st, 9);
        w.registered_ms = sqlite3_column_int64(st, 10);
        col_copy(st, 11, w.version, sizeof w.version);
        w.spawned = sqlite3_column_int(st, 12);
        col_copy(st, 13, w.secret_sha256, sizeof w.secret_sha256);
        fn(ud, &w);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, err, errlen, "workers");
}

/* ---- checkpoints ---- */

int e2_store_ckpt_add(e2_store *s, const char *job, const e2_store_ckpt *c, char *err,
                      size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_CKPT_ADD, err, errlen);
    if (!st) return E2_ERR;
    store_memo_drop(s, job);
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, c->step);
    bind_text(st, 3, c->path);
    sqlite3_bind_int64(st, 4, c->committed_ms);
    sqlite3_bind_int(st, 5, c->attempt);
    bind_text(st, 6, c->manifest ? c->manifest : "{}");
    return store_done(s, st, err, errlen);
}

int e2_store_ckpt_delete(e2_store *s, const char *job, int64_t step, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_CKPT_DEL, err, errlen);
    if (!st) return E2_ERR;
    store_memo_drop(s, job);
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, step);
    return store_done(s, st, err, errlen);
}

int e2_store_ckpt_list(e2_store *s, const char *job, void (*fn)(void *ud, const e2_store_ckpt *c),
                       void *ud, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_CKPT_LIST, err, errlen);
    int rc;
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e2_store_ckpt c = {
            .step = sqlite3_column_int64(st, 0),
            .path = (const char *)sqlite3_column_text(st, 1),
            .committed_ms = sqlite3_column_int64(st, 2),
            .attempt = sqlite3_column_int(st, 3),
            .manifest = (const char *)sqlite3_column_text(st, 4),
        };
        fn(ud, &c);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, err, errlen, "checkpoints");
}

/* ---- metrics ---- */

int e2_store_metric_add(e2_store *s, const char *job, const e2_store_metric *m, char *err,
                        size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_METRIC_ADD, err, errlen);
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, m->step);
    sqlite3_bind_int(st, 3, m->attempt);
    sqlite3_bind_double(st, 4, m->loss);
    sqlite3_bind_double(st, 5, m->lr);
    sqlite3_bind_double(st, 6, m->grad_norm);
    sqlite3_bind_double(st, 7, m->tokens_per_second);
    sqlite3_bind_int64(st, 8, m->time_ms);
    return store_done(s, st, err, errlen);
}

int e2_store_metric_trim(e2_store *s, const char *job, int64_t step, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_METRIC_TRIM, err, errlen);
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    sqlite3_bind_int64(st, 2, step);
    return store_done(s, st, err, errlen);
}

int e2_store_metric_list(e2_store *s, const char *job,
                         void (*fn)(void *ud, const e2_store_metric *m), void *ud, char *err,
                         size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_METRIC_LIST, err, errlen);
    int rc;
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        e2_store_metric m = {
            .step = sqlite3_column_int64(st, 0),
            .attempt = sqlite3_column_int(st, 1),
            .loss = sqlite3_column_double(st, 2),
            .lr = sqlite3_column_double(st, 3),
            .grad_norm = sqlite3_column_double(st, 4),
            .tokens_per_second = sqlite3_column_double(st, 5),
            .time_ms = sqlite3_column_int64(st, 6),
        };
        fn(ud, &m);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : store_fail(s, err, errlen, "metrics");
}

/* ---- rendezvous ---- */

int e2_store_rdv_put(e2_store *s, const char *job, int attempt, const char *key, const void *val,
                     size_t len, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_RDV_PUT, err, errlen);
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    bind_text(st, 3, key);
    sqlite3_bind_blob(st, 4, len ? val : "", (int)len, SQLITE_TRANSIENT);
    return store_done(s, st, err, errlen);
}

int e2_store_rdv_get(e2_store *s, const char *job, int attempt, const char *key, void **val,
                     size_t *len, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_RDV_GET, err, errlen);
    int rc;
    *val = NULL;
    *len = 0;
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    bind_text(st, 3, key);
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(st, 0);
        *val = malloc((size_t)n + 1);
        if (!*val) {
            sqlite3_reset(st);
            return e2_errf(err, errlen, "out of memory");
        }
        if (n) memcpy(*val, sqlite3_column_blob(st, 0), (size_t)n);
        *len = (size_t)n;
        sqlite3_reset(st);
        return 0;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_DONE) {
        e2_errf(err, errlen, "rendezvous key %s of job %s attempt %d not found", key, job, attempt);
        return E2_NOTFOUND;
    }
    return store_fail(s, err, errlen, "rendezvous");
}

int e2_store_rdv_clear(e2_store *s, const char *job, int attempt, char *err, size_t errlen) {
    sqlite3_stmt *st = store_q(s, Q_RDV_CLEAR, err, errlen);
    if (!st) return E2_ERR;
    bind_text(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    return store_done(s, st, err, errlen);
}

/* ---- memos ---- */

static store_memo **store_memo_slot(e2_store *s, const char *job) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)job; *p; p++) h = (h ^ *p) * 16777619u;
    return &s->memo_tab[h & (STORE_MEMO_BUCKETS - 1)];
}

/* Unlinks m from its chain (*slot leads to it) and the recency list. */
static void store_memo_free(e2_store *s, store_memo **slot, store_memo *m) {
    while (*slot != m) slot = &(*slot)->hnext;
    *slot = m->hnext;
    if (m->prev)
        m->prev->next = m->next;
    else
        s->memo_new = m->next;
    if (m->next)
        m->next->prev = m->prev;
    else
        s->memo_old = m->prev;
    s->memo_n--;
    s->memo_bytes -= m->len;
    free(m);
}

static void store_memo_drop(e2_store *s, const char *job) {
    store_memo **slot = store_memo_slot(s, job);
    for (store_memo *m = *slot; m; m = m->hnext)
        if (!strcmp(m->job, job)) {
            store_memo_free(s, slot, m);
            return;
        }
}

static void store_memo_clear(e2_store *s) {
    while (s->memo_old) store_memo_free(s, store_memo_slot(s, s->memo_old->job), s->memo_old);
}

const void *e2_store_memo_get(e2_store *s, const char *job, size_t *len) {
    for (store_memo *m = *store_memo_slot(s, job); m; m = m->hnext) {
        if (strcmp(m->job, job)) continue;
        if (m->prev) { /* to the front of the recency list */
            m->prev->next = m->next;
            if (m->next)
                m->next->prev = m->prev;
            else
                s->memo_old = m->prev;
            m->prev = NULL;
            m->next = s->memo_new;
            s->memo_new->prev = m;
            s->memo_new = m;
        }
        *len = m->len;
        return m->data;
    }
    return NULL;
}

void e2_store_memo_put(e2_store *s, const char *job, const void *data, size_t len) {
    store_memo **slot, *m;
    /* Inside a transaction what was read may not be committed (yet). */
    if (s->in_tx || strlen(job) >= E2_STORE_IDLEN) return;
    store_memo_drop(s, job);
    if (len > s->memo_max_bytes / 8 || !s->memo_max_n) return;
    while (s->memo_old &&
           (s->memo_n + 1 > s->memo_max_n || s->memo_bytes + len > s->memo_max_bytes))
        store_memo_free(s, store_memo_slot(s, s->memo_old->job), s->memo_old);
    if (!(m = malloc(sizeof *m + len))) return;
    snprintf(m->job, sizeof m->job, "%s", job);
    m->len = len;
    memcpy(m->data, data, len);
    slot = store_memo_slot(s, job);
    m->hnext = *slot;
    *slot = m;
    m->prev = NULL;
    m->next = s->memo_new;
    if (s->memo_new)
        s->memo_new->prev = m;
    else
        s->memo_old = m;
    s->memo_new = m;
    s->memo_n++;
    s->memo_bytes += len;
}

void e2_store_memo_limits(e2_store *s, size_t max_entries, size_t max_bytes) {
    s->memo_max_n = max_entries;
    s->memo_max_bytes = max_bytes;
    while (s->memo_old && (s->memo_n > max_entries || s->memo_bytes > max_bytes))
        store_memo_free(s, store_memo_slot(s, s->memo_old->job), s->memo_old);
}

void e2_store_memo_stats(e2_store *s, size_t *entries, size_t *bytes) {
    *entries = s->memo_n;
    *bytes = s->memo_bytes;
}
