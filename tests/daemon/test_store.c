/* test_store.c -- e2d's SQLite store: schema migrations from an older
 * version, reopen keeps every row, a newer schema is refused, idempotency
 * by request_id, list filters and paging, events, checkpoints, metrics and
 * rendezvous, and the memos of job state (dropped by every write of the
 * job, never kept inside a transaction, bounded). Each case runs in a
 * fresh temporary directory. */
#include "store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "check.h"
#include "jobstate.h"

static char g_db[512];

static void scratch(void) {
    char dir[] = "/tmp/e2d_store_XXXXXX";
    if (!mkdtemp(dir)) abort();
    snprintf(g_db, sizeof g_db, "%s/e2d.db", dir);
}

static int insert(e2_store *s, const char *rid, int prio, const char *team, e2_store_job *j) {
    char err[E2_ERRLEN];
    e2_store_label l = { "team", team };
    memset(j, 0, sizeof *j);
    j->request_id = rid ? strdup(rid) : NULL;
    j->spec_json = strdup("{\"name\":\"t\"}");
    j->state = E2_JOBSTATE_PENDING;
    j->priority = prio;
    snprintf(j->device, sizeof j->device, "cpu");
    j->num_workers = 2;
    j->max_restarts = 3;
    j->keep_last = 2;
    j->created_ms = 1000;
    j->total_steps = 10;
    int rc = e2_store_job_insert(s, j, &l, team ? 1 : 0, err, sizeof err);
    if (rc < 0) fprintf(stderr, "insert: %s\n", err);
    return rc;
}

static int migrate_then_reopen(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    e2_store_job j, g;
    scratch();
    CHECK(e2_store_open(&s, g_db, 1, err, sizeof err) == 0);
    CHECK(e2_store_version(s) == 1);
    CHECK(insert(s, "r1", 0, "a", &j) == 0);
    e2_store_close(s);
    /* Version 1 -> 2 keeps the row and adds the meta table. */
    CHECK(e2_store_open(&s, g_db, E2_STORE_SCHEMA_VERSION, err, sizeof err) == 0);
    CHECK(e2_store_version(s) == E2_STORE_SCHEMA_VERSION);
    CHECK(e2_store_next_worker_seq(s, err, sizeof err) == 1);
    CHECK(e2_store_job_get(s, j.id, &g, err, sizeof err) == 0);
    CHECK(strcmp(g.request_id, "r1") == 0);
    CHECK(g.num_workers == 2 && g.state == E2_JOBSTATE_PENDING);
    e2_store_job_free(&g);
    e2_store_close(s);
    /* Reopen at the current version: nothing migrates, data stays. */
    CHECK(e2_store_open(&s, g_db, E2_STORE_SCHEMA_VERSION, err, sizeof err) == 0);
    CHECK(e2_store_next_worker_seq(s, err, sizeof err) == 2);
    CHECK(e2_store_job_count(s) == 1);
    e2_store_close(s);
    e2_store_job_free(&j);
    return 0;
}

static int newer_schema_refused(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    sqlite3 *db;
    scratch();
    CHECK(sqlite3_open(g_db, &db) == SQLITE_OK);
    CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK(e2_store_open(&s, g_db, E2_STORE_SCHEMA_VERSION, err, sizeof err) < 0);
    CHECK(s == NULL);
    CHECK(strstr(err, "99") && strstr(err, "upgrade e2d"));
    return 0;
}

static int update_roundtrip(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    e2_store_job j, g;
    scratch();
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    CHECK(insert(s, NULL, 0, NULL, &j) == 0);
    CHECK(strcmp(j.id, "j-000001") == 0);
    j.state = E2_JOBSTATE_FAILED;
    free(j.reason);
    j.reason = strdup("rank 1 exited with code 2");
    j.fail_exit_code = 2;
    j.fail_rank = 1;
    j.fail_log = strdup("a\nb");
    j.attempt = 3;
    j.restarts = 2;
    j.loss = 1.5;
    CHECK(e2_store_job_update(s, &j, err, sizeof err) == 0);
    e2_store_close(s);
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    CHECK(e2_store_job_get(s, j.id, &g, err, sizeof err) == 0);
    CHECK(g.state == E2_JOBSTATE_FAILED && g.fail_exit_code == 2);
    CHECK(g.fail_rank == 1 && g.attempt == 3 && g.restarts == 2);
    CHECK(strcmp(g.fail_log, "a\nb") == 0 && g.loss == 1.5);
    CHECK(strcmp(g.reason, "rank 1 exited with code 2") == 0);
    CHECK(g.request_id == NULL);
    e2_store_job_free(&g);
    CHECK(e2_store_job_get(s, "j-999999", &g, err, sizeof err) == E2_NOTFOUND);
    e2_store_close(s);
    e2_store_job_free(&j);
    return 0;
}

static int request_id_unique(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    e2_store_job a, b, g;
    scratch();
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    CHECK(insert(s, "same", 0, NULL, &a) == 0);
    CHECK(insert(s, "same", 0, NULL, &b) < 0);
    CHECK(e2_store_job_count(s) == 1);
    CHECK(e2_store_job_by_request(s, "same", &g, err, sizeof err) == 0);
    CHECK(strcmp(g.id, a.id) == 0);
    e2_store_job_free(&g);
    e2_store_close(s);
    e2_store_job_free(&a);
    e2_store_job_free(&b);
    return 0;
}

/* Inner levels are savepoints: rolling one back keeps the outer work. */
static int nested_transactions(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    e2_store_job a, b, g;
    scratch();
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    CHECK(e2_store_begin(s, err, sizeof err) == 0);
    CHECK(insert(s, "outer", 0, NULL, &a) == 0);
    CHECK(e2_store_begin(s, err, sizeof err) == 0);
    CHECK(insert(s, "inner", 0, NULL, &b) == 0);
    e2_store_rollback(s);
    CHECK(e2_store_begin(s, err, sizeof err) == 0);
    CHECK(e2_store_end(s, 1, err, sizeof err) == 0);
    CHECK(e2_store_commit(s, err, sizeof err) == 0);
    CHECK(e2_store_commit(s, err, sizeof err) < 0); /* nothing left open */
    e2_store_close(s);
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    CHECK(e2_store_job_by_request(s, "outer", &g, err, sizeof err) == 0);
    e2_store_job_free(&g);
    CHECK(e2_store_job_by_request(s, "inner", &g, err, sizeof err) == E2_NOTFOUND);
    CHECK(e2_store_job_count(s) == 1);
    /* An uncommitted outer level is gone after close. */
    CHECK(e2_store_begin(s, err, sizeof err) == 0);
    e2_store_job_free(&b);
    CHECK(insert(s, "lost", 0, NULL, &b) == 0);
    e2_store_close(s);
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    CHECK(e2_store_job_count(s) == 1);
    e2_store_close(s);
    e2_store_job_free(&a);
    e2_store_job_free(&b);
    return 0;
}

struct seen {
    int n;
    char ids[16][E2_STORE_IDLEN];
    int64_t last;
};

static int collect(void *ud, const e2_store_job *j) {
    struct seen *v = ud;
    snprintf(v->ids[v->n++], E2_STORE_IDLEN, "%s", j->id);
    v->last = j->seq;
    return 0;
}

static int list_filters_and_pages(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    e2_store_job j;
    struct seen v;
    scratch();
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    for (int i = 0; i < 5; i++) {
        CHECK(insert(s, NULL, i == 3 ? 5 : 0, i % 2 ? "b" : "a", &j) == 0);
        if (i == 4) {
            j.state = E2_JOBSTATE_RUNNING;
            CHECK(e2_store_job_update(s, &j, err, sizeof err) == 0);
        }
        e2_store_job_free(&j);
    }
    /* Newest first, label selector. */
    memset(&v, 0, sizeof v);
    e2_store_jobq q = { .labels = { { "team", "a" } }, .nlabels = 1 };
    CHECK(e2_store_job_list(s, &q, collect, &v, err, sizeof err) == 3);
    CHECK(strcmp(v.ids[0], "j-000005") == 0 && strcmp(v.ids[2], "j-000001") == 0);
    /* Every selector must match. */
    memset(&v, 0, sizeof v);
    e2_store_jobq q2 = { .labels = { { "team", "a" }, { "team", "b" } }, .nlabels = 2 };
    CHECK(e2_store_job_list(s, &q2, collect, &v, err, sizeof err) == 0);
    memset(&v, 0, sizeof v);
    e2_store_jobq r = { .states = 1u << E2_JOBSTATE_RUNNING };
    CHECK(e2_store_job_list(s, &r, collect, &v, err, sizeof err) == 1);
    CHECK(strcmp(v.ids[0], "j-000005") == 0);
    /* Pages of 2 via before_seq. */
    memset(&v, 0, sizeof v);
    e2_store_jobq p = { .limit = 2 };
    CHECK(e2_store_job_list(s, &p, collect, &v, err, sizeof err) == 2);
    p.before_seq = v.last;
    CHECK(e2_store_job_list(s, &p, collect, &v, err, sizeof err) == 2);
    p.before_seq = v.last;
    CHECK(e2_store_job_list(s, &p, collect, &v, err, sizeof err) == 1);
    CHECK(v.n == 5 && strcmp(v.ids[4], "j-000001") == 0);
    /* The queue: priority first, then FIFO; RUNNING is not queued. */
    memset(&v, 0, sizeof v);
    CHECK(e2_store_job_queued(s, collect, &v, err, sizeof err) == 4);
    CHECK(strcmp(v.ids[0], "j-000004") == 0 && strcmp(v.ids[1], "j-000001") == 0);
    CHECK(strcmp(v.ids[3], "j-000003") == 0);
    memset(&v, 0, sizeof v);
    CHECK(e2_store_job_in_states(s, 1u << E2_JOBSTATE_RUNNING, collect, &v, err, sizeof err) == 1);
    e2_store_close(s);
    return 0;
}

static void count_event(void *ud, const e2_store_event *e) {
    int *n = ud;
    if (e->to == E2_JOBSTATE_STARTING && strcmp(e->reason, "assigned") == 0) (*n)++;
}

static void count_ckpt(void *ud, const e2_store_ckpt *c) {
    int64_t *sum = ud;
    *sum += c->step;
}

static void count_metric(void *ud, const e2_store_metric *m) {
    double *sum = ud;
    *sum += m->loss;
}

static int events_ckpts_metrics_rdv(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    int n = 0;
    int64_t steps = 0;
    double loss = 0;
    void *val;
    size_t len;
    scratch();
    CHECK(e2_store_open(&s, g_db, -1, err, sizeof err) == 0);
    e2_store_event e = { 5, E2_JOBSTATE_PENDING, E2_JOBSTATE_STARTING, "assigned" };
    CHECK(e2_store_event_add(s, "j-000001", &e, err, sizeof err) == 0);
    CHECK(e2_store_event_list(s, "j-000001", count_event, &n, err, sizeof err) == 0);
    CHECK(n == 1);
    e2_store_ckpt c = { 10, "/x/step_10", 7, 1, "{}" };
    CHECK(e2_store_ckpt_add(s, "j-000001", &c, err, sizeof err) == 0);
    c.step = 20;
    CHECK(e2_store_ckpt_add(s, "j-000001", &c, err, sizeof err) == 0);
    CHECK(e2_store_ckpt_delete(s, "j-000001", 10, err, sizeof err) == 0);
    CHECK(e2_store_ckpt_list(s, "j-000001", count_ckpt, &steps, err, sizeof err) == 0);
    CHECK(steps == 20);
    /* A step reported again by a later attempt replaces the earlier one. */
    e2_store_metric m = { .step = 1, .attempt = 1, .loss = 2.0 };
    CHECK(e2_store_metric_add(s, "j-000001", &m, err, sizeof err) == 0);
    m.attempt = 2;
    m.loss = 3.0;
    CHECK(e2_store_metric_add(s, "j-000001", &m, err, sizeof err) == 0);
    CHECK(e2_store_metric_list(s, "j-000001", count_metric, &loss, err, sizeof err) == 0);
    CHECK(loss == 3.0);
    m.step = 2;
    CHECK(e2_store_metric_add(s, "j-000001", &m, err, sizeof err) == 0);
    CHECK(e2_store_metric_trim(s, "j-000001", 1, err, sizeof err) == 0);
    loss = 0;
    CHECK(e2_store_metric_list(s, "j-000001", count_metric, &loss, err, sizeof err) == 0);
    CHECK(loss == 3.0);
    CHECK(e2_store_rdv_get(s, "j-000001", 1, "k", &val, &len, err, sizeof err) == E2_NOTFOUND);
    CHECK(e2_store_rdv_put(s, "j-000001", 1, "k", "abc", 3, err, sizeof err) == 0);
    CHECK(e2_store_rdv_get(s, "j-000001", 1, "k", &val, &len, err, sizeof err) == 0);
    CHECK(len == 3 && memcmp(val, "abc", 3) == 0);
    free(val);
    CHECK(e2_store_rdv_clear(s, "j-000001", 2, err, sizeof err) == 0);
    CHECK(e2_store_rdv_get(s, "j-000001", 1, "k", &val, &len, err, sizeof err) == E2_NOTFOUND);
    e2_store_close(s);
    return 0;
}

/* 1 when job has the memo `want`. */
static int memo_is(e2_store *s, const char *job, const char *want) {
    size_t n;
    const void *m = e2_store_memo_get(s, job, &n);
    return m && n == strlen(want) && memcmp(m, want, n) == 0;
}

static int memo_dropped_by_every_write(void) {
    char err[E2_ERRLEN];
    e2_store *s;
    e2_store_job a, b;
    e2_store_event e = { 5, E2_JOBSTATE_PENDING, E2_JOBSTATE_CANCELLED, "x" };
    e2_store_ckpt c = { .step = 2, .path = "/p", .committed_ms = 1, .attempt = 1 };
    size_t n, bytes;
    scratch();
    CHECK(e2_store_open(&s, g_db, E2_STORE_SCHEMA_VERSION, err, sizeof err) == 0);
    CHECK(insert(s, NULL, 0, NULL, &a) == 0 && insert(s, NULL, 0, NULL, &b) == 0);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL);
    e2_store_memo_put(s, a.id, "a1", 2);
    e2_store_memo_put(s, b.id, "b1", 2);
    CHECK(memo_is(s, a.id, "a1") && memo_is(s, b.id, "b1"));
    e2_store_memo_stats(s, &n, &bytes);
    CHECK(n == 2 && bytes == 4);
    /* Each write of a's state drops a's memo, and only a's. */
    a.step = 3;
    CHECK(e2_store_job_update(s, &a, err, sizeof err) == 0);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL && memo_is(s, b.id, "b1"));
    e2_store_memo_put(s, a.id, "a2", 2);
    CHECK(e2_store_event_add(s, a.id, &e, err, sizeof err) == 0);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL && memo_is(s, b.id, "b1"));
    e2_store_memo_put(s, a.id, "a3", 2);
    CHECK(e2_store_ckpt_add(s, a.id, &c, err, sizeof err) == 0);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL);
    e2_store_memo_put(s, a.id, "a4", 2);
    CHECK(e2_store_ckpt_delete(s, a.id, 2, err, sizeof err) == 0);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL);
    e2_store_memo_put(s, a.id, "a5", 2);
    CHECK(e2_store_job_set_owner(s, a.id, "alice", err, sizeof err) == 0);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL);
    /* Writes of other tables leave it. */
    e2_store_memo_put(s, a.id, "a6", 2);
    CHECK(e2_store_rdv_put(s, a.id, 1, "k", "v", 1, err, sizeof err) == 0);
    CHECK(memo_is(s, a.id, "a6"));
    /* Inside a transaction nothing is kept (what was read may roll back),
     * and a rollback drops every memo. */
    CHECK(e2_store_begin(s, err, sizeof err) == 0);
    CHECK(e2_store_job_update(s, &b, err, sizeof err) == 0);
    e2_store_memo_put(s, b.id, "b2", 2);
    CHECK(e2_store_memo_get(s, b.id, &n) == NULL);
    e2_store_rollback(s);
    CHECK(e2_store_memo_get(s, a.id, &n) == NULL);
    e2_store_memo_stats(s, &n, &bytes);
    CHECK(n == 0 && bytes == 0);
    e2_store_memo_put(s, b.id, "b3", 2);
    CHECK(memo_is(s, b.id, "b3"));
    e2_store_close(s);
    e2_store_job_free(&a);
    e2_store_job_free(&b);
    return 0;
}

static int memo_bounded(void) {
    char err[E2_ERRLEN], id[E2_STORE_IDLEN], big[300];
    e2_store *s;
    size_t n, bytes;
    scratch();
    CHECK(e2_store_open(&s, g_db, E2_STORE_SCHEMA_VERSION, err, sizeof err) == 0);
    /* The default bounds hold with many more jobs than memos. */
    for (int i = 0; i < STORE_MEMO_MAX + 500; i++) {
        snprintf(id, sizeof id, "j-%06d", i);
        e2_store_memo_put(s, id, id, strlen(id));
    }
    e2_store_memo_stats(s, &n, &bytes);
    CHECK(n == STORE_MEMO_MAX && bytes == n * 8);
    CHECK(e2_store_memo_get(s, "j-000000", &n) == NULL);
    CHECK(memo_is(s, "j-004595", "j-004595"));
    /* Small bounds: the least recently used go first (a get counts as a
     * use), by count and by bytes; a memo over 1/8 of the bytes is not
     * kept at all. */
    e2_store_memo_limits(s, 3, 2048);
    e2_store_memo_stats(s, &n, &bytes);
    CHECK(n == 3);
    e2_store_memo_put(s, "x", "1", 1);
    e2_store_memo_put(s, "y", "2", 1);
    e2_store_memo_put(s, "z", "3", 1);
    CHECK(memo_is(s, "x", "1"));
    e2_store_memo_put(s, "w", "4", 1);
    CHECK(e2_store_memo_get(s, "y", &n) == NULL);
    CHECK(memo_is(s, "x", "1") && memo_is(s, "z", "3") && memo_is(s, "w", "4"));
    memset(big, 'b', sizeof big);
    e2_store_memo_put(s, "big", big, sizeof big);
    CHECK(e2_store_memo_get(s, "big", &n) == NULL);
    e2_store_memo_limits(s, 100, 8 * 250);
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof id, "k%d", i);
        e2_store_memo_put(s, id, big, 250);
    }
    e2_store_memo_stats(s, &n, &bytes);
    CHECK(bytes <= 8 * 250 && n == 8);
    CHECK(memo_is(s, "w", "4") == 0 && e2_store_memo_get(s, "k19", &n) != NULL);
    e2_store_close(s);
    return 0;
}

int main(void) {
    int fails = 0;
    fails += migrate_then_reopen();
    fails += newer_schema_refused();
    fails += update_roundtrip();
    fails += request_id_unique();
    fails += nested_transactions();
    fails += list_filters_and_pages();
    fails += events_ckpts_metrics_rdv();
    fails += memo_dropped_by_every_write();
    fails += memo_bounded();
    if (fails) fprintf(stderr, "%d case(s) failed\n", fails);
    return fails ? 1 : 0;
}
