/* test_sched_unit.c -- e2d's scheduler (sched.c) without RPC: a real
 * SQLite store and job directories in a temporary state dir, workers put
 * in the registry directly, then e2_sched_run_queue / e2_sched_cancel, and the
 * commands queued on the workers and the stored job rows checked.
 * Usage: test_daemon_sched_unit CASE (one ctest test per case). */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "check.h"
#include "scheduler.h"

#define WS_IDLE E2__V1__WORKER_STATE__WORKER_STATE_IDLE
#define WS_BUSY E2__V1__WORKER_STATE__WORKER_STATE_BUSY
#define WS_LOST E2__V1__WORKER_STATE__WORKER_STATE_LOST

static e2d_server g_srv;

static int setup(void) {
    char dir[] = "/tmp/e2d_sched_XXXXXX", db[600], err[E2_ERRLEN];
    if (!mkdtemp(dir)) return 1;
    memset(&g_srv, 0, sizeof g_srv);
    e2_config_init(&g_srv.cfg);
    snprintf(g_srv.cfg.state_dir, sizeof g_srv.cfg.state_dir, "%s", dir);
    snprintf(db, sizeof db, "%s/e2d.db", dir);
    g_srv.hb_interval_ms = 1000;
    g_srv.hb_timeout_ms = 10000;
    g_srv.hang_timeout_ms = 600000;
    CHECK(e2_store_open(&g_srv.db, db, E2_STORE_SCHEMA_VERSION, err, sizeof err) == 0);
    return 0;
}

static void teardown(void) {
    char cmd[600];
    e2_sched_free(&g_srv);
    e2_store_close(g_srv.db);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_srv.cfg.state_dir);
    if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", g_srv.cfg.state_dir);
}

/* A registered worker of `device` in `state`, appended to the registry. */
static e2d_worker *worker(const char *id, const char *device, int state) {
    e2d_worker *w = calloc(1, sizeof *w), **p;
    if (!w) abort();
    snprintf(w->row.id, sizeof w->row.id, "%s", id);
    snprintf(w->row.device, sizeof w->row.device, "%s", device);
    w->row.state = state;
    w->row.rank = -1;
    w->seen_ms = e2d_mono_ms();
    for (p = &g_srv.workers; *p; p = &(*p)->next)
        ;
    *p = w;
    return w;
}

/* A PENDING job stored as SubmitJob would (row, directory); its id. */
static const char *job(int num_workers, int priority, char *id) {
    char err[E2_ERRLEN];
    e2_store_job j;
    memset(&j, 0, sizeof j);
    j.spec_json = strdup("{\"name\":\"t\"}");
    j.reason = strdup("submitted");
    j.state = E2_JOBSTATE_PENDING;
    j.priority = priority;
    snprintf(j.device, sizeof j.device, "cpu");
    j.num_workers = num_workers;
    j.max_restarts = 3;
    j.keep_last = 2;
    j.total_steps = 10;
    j.created_ms = e2d_now_ms();
    if (e2_store_job_insert(g_srv.db, &j, NULL, 0, err, sizeof err) < 0 ||
        e2_jobdir_create(g_srv.cfg.state_dir, j.id, "{}", err, sizeof err) < 0) {
        fprintf(stderr, "job: %s\n", err);
        abort();
    }
    snprintf(id, E2_STORE_IDLEN, "%s", j.id);
    e2_store_job_free(&j);
    return id;
}

/* The job an assignment queued on w names, or "" when none. */
static const char *assigned(const e2d_worker *w) {
    for (size_t i = 0; i < w->ncmds; i++)
        if (w->cmds[i]->kind_case == E2__V1__COMMAND__KIND_ASSIGNMENT)
            return w->cmds[i]->assignment->job_id;
    return "";
}

static int state_of(const char *id, char *reason, size_t n) {
    char err[E2_ERRLEN];
    e2_store_job j;
    int s;
    if (e2_store_job_get(g_srv.db, id, &j, err, sizeof err) < 0) return -1;
    s = j.state;
    if (reason) snprintf(reason, n, "%s", j.reason ? j.reason : "");
    e2_store_job_free(&j);
    return s;
}

static int parked_job_does_not_block(void) {
    char big[E2_STORE_IDLEN], small[E2_STORE_IDLEN], why[256];
    e2d_worker *w = worker("w-a", "cpu", WS_IDLE);
    job(2, 0, big);
    job(1, 0, small);
    e2_sched_run_queue(&g_srv);
    CHECK(!strcmp(assigned(w), small));
    CHECK(state_of(small, NULL, 0) == E2_JOBSTATE_STARTING);
    CHECK(state_of(big, why, sizeof why) == E2_JOBSTATE_PENDING);
    CHECK(strstr(why, "unschedulable: needs 2 cpu workers, 1 registered"));
    return 0;
}

static int fitting_job_blocks_the_queue(void) {
    char big[E2_STORE_IDLEN], small[E2_STORE_IDLEN], why[256];
    e2d_worker *busy = worker("w-a", "cpu", WS_BUSY);
    e2d_worker *idle = worker("w-b", "cpu", WS_IDLE);
    job(2, 0, big);
    job(1, 0, small);
    e2_sched_run_queue(&g_srv);
    CHECK(idle->ncmds == 0 && busy->ncmds == 0);
    CHECK(state_of(small, NULL, 0) == E2_JOBSTATE_PENDING);
    CHECK(state_of(big, why, sizeof why) == E2_JOBSTATE_PENDING);
    CHECK(!strstr(why, "unschedulable"));
    return 0;
}

static int lost_workers_are_not_capacity(void) {
    char big[E2_STORE_IDLEN], why[256];
    worker("w-a", "cpu", WS_IDLE);
    worker("w-b", "cpu", WS_LOST);
    worker("w-c", "cuda", WS_IDLE);
    job(2, 0, big);
    e2_sched_run_queue(&g_srv);
    CHECK(state_of(big, why, sizeof why) == E2_JOBSTATE_PENDING);
    CHECK(strstr(why, "needs 2 cpu workers, 1 registered"));
    /* A second cpu worker registers: the job becomes schedulable. */
    worker("w-d", "cpu", WS_IDLE);
    e2_sched_run_queue(&g_srv);
    CHECK(state_of(big, NULL, 0) == E2_JOBSTATE_STARTING);
    return 0;
}

static int higher_priority_first(void) {
    char lo[E2_STORE_IDLEN], hi[E2_STORE_IDLEN];
    e2d_worker *w = worker("w-a", "cpu", WS_IDLE);
    job(1, 0, lo);
    job(1, 5, hi);
    e2_sched_run_queue(&g_srv);
    CHECK(!strcmp(assigned(w), hi));
    CHECK(state_of(lo, NULL, 0) == E2_JOBSTATE_PENDING);
    return 0;
}

static int cancel_of_pending_head_asks_for_a_pass(void) {
    char big[E2_STORE_IDLEN], err[E2_ERRLEN];
    e2_store_job j;
    worker("w-a", "cpu", WS_BUSY);
    worker("w-b", "cpu", WS_IDLE);
    job(2, 0, big);
    e2_sched_run_queue(&g_srv);
    CHECK(g_srv.sched_pending == 0);
    CHECK(e2_store_job_get(g_srv.db, big, &j, err, sizeof err) == 0);
    CHECK(e2_sched_cancel(&g_srv, &j, 0) == 0);
    e2_store_job_free(&j);
    CHECK(state_of(big, NULL, 0) == E2_JOBSTATE_CANCELLED);
    CHECK(g_srv.sched_pending == 1);
    return 0;
}

/* e2_sched_request coalesces: the requests of one loop turn (as many
 * heartbeats, ReportDones and commits as it handled) run no pass until the
 * loop turns, then exactly one, which assigns; a later request runs again,
 * after the gap; a closed handle runs none and lets the loop end. */
static int requests_in_one_turn_run_one_pass(void) {
    char a[E2_STORE_IDLEN], b[E2_STORE_IDLEN];
    uv_loop_t loop;
    e2d_worker *w1 = worker("w-a", "cpu", WS_IDLE), *w2 = worker("w-b", "cpu", WS_BUSY);
    CHECK(uv_loop_init(&loop) == 0);
    g_srv.loop = &loop;
    job(1, 0, a);
    for (int i = 0; i < 50; i++) e2_sched_request(&g_srv);
    CHECK(g_srv.sched_pending == 1);
    CHECK(g_srv.sched_passes == 0);
    CHECK(!strcmp(assigned(w1), ""));
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(g_srv.sched_passes == 1);
    CHECK(!strcmp(assigned(w1), a));
    CHECK(state_of(a, NULL, 0) == E2_JOBSTATE_STARTING);
    /* Nothing asked: a turn runs no pass. */
    uv_run(&loop, UV_RUN_NOWAIT);
    CHECK(g_srv.sched_passes == 1);
    /* The next turn's requests get their own pass. */
    job(1, 0, b);
    e2_sched_worker_idle(&g_srv, w2);
    for (int i = 0; i < 50; i++) e2_sched_request(&g_srv);
    /* (after the gap that the first pass's CPU time sets, <= 50 ms) */
    for (int i = 0; i < 100 && g_srv.sched_passes == 1; i++) uv_run(&loop, UV_RUN_ONCE);
    CHECK(g_srv.sched_passes == 2);
    CHECK(!strcmp(assigned(w2), b));
    /* Shutdown: closed, the loop has nothing left and ends. */
    e2_sched_request(&g_srv);
    e2_sched_close(&g_srv);
    CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(g_srv.sched_passes == 2);
    CHECK(uv_loop_close(&loop) == 0);
    g_srv.loop = NULL;
    return 0;
}

/* Size of the store's write-ahead log. */
static long long wal_bytes(void) {
    char p[600];
    struct stat st;
    snprintf(p, sizeof p, "%s/e2d.db-wal", g_srv.cfg.state_dir);
    return stat(p, &st) == 0 ? (long long)st.st_size : -1;
}

/* Why a queue of parked jobs waits is saved in one transaction per pass,
 * committed before a job starts and at the end (not one commit, and
 * fsync, per job): another connection sees every reason, no write
 * transaction is left open, and the log grew by a few pages, not by one
 * commit per job. */
static int parked_reasons_are_committed_by_the_pass(void) {
    char ids[41][E2_STORE_IDLEN], fit[E2_STORE_IDLEN], db[600];
    e2d_worker *w = worker("w-a", "cpu", WS_IDLE);
    sqlite3 *other;
    sqlite3_stmt *st;
    long long wal0;
    int n = -1;
    for (int i = 0; i < 20; i++) job(2, 0, ids[i]);
    job(1, 0, fit);
    for (int i = 20; i < 41; i++) job(2, 0, ids[i]);
    wal0 = wal_bytes();
    e2_sched_run_queue(&g_srv);
    CHECK(!strcmp(assigned(w), fit));
    CHECK(state_of(fit, NULL, 0) == E2_JOBSTATE_STARTING);
    /* WAL frames are a page (4 KiB) plus a 24-byte header; 41 commits
     * would append at least 41. */
    CHECK(wal0 > 0 && wal_bytes() - wal0 < 20 * (4096 + 24));
    snprintf(db, sizeof db, "%s/e2d.db", g_srv.cfg.state_dir);
    CHECK(sqlite3_open_v2(db, &other, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
    CHECK(sqlite3_prepare_v2(other,
                             "SELECT count(*) FROM jobs WHERE state = 1 AND reason ="
                             " 'unschedulable: needs 2 cpu workers, 1 registered;"
                             " it waits for more and holds up no other job'",
                             -1, &st, NULL) == SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    CHECK(n == 41);
    CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE; COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(other);
    /* Nothing changed: the next pass writes nothing. */
    e2_sched_run_queue(&g_srv);
    CHECK(state_of(ids[40], NULL, 0) == E2_JOBSTATE_PENDING);
    return 0;
}

static int log_escape_controls(void) {
    char out[128];
    e2d_log_escape(out, sizeof out, "a\x1b[1m\nb\xc2\x9b\xc3\xa9\xff");
    CHECK(!strcmp(out, "a\\x1b[1m\\x0ab\\x9b\xc3\xa9\\xff"));
    e2d_log_escape(out, 8, "abcdefghij");
    CHECK(!strcmp(out, "abcdefg"));
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(void);
} cases[] = {
    { "parked_job_does_not_block", parked_job_does_not_block },
    { "fitting_job_blocks_the_queue", fitting_job_blocks_the_queue },
    { "lost_workers_are_not_capacity", lost_workers_are_not_capacity },
    { "higher_priority_first", higher_priority_first },
    { "cancel_of_pending_head_asks_for_a_pass", cancel_of_pending_head_asks_for_a_pass },
    { "parked_reasons_are_committed_by_the_pass", parked_reasons_are_committed_by_the_pass },
    { "log_escape_controls", log_escape_controls },
    { "requests_in_one_turn_run_one_pass", requests_in_one_turn_run_one_pass },
};

int main(int argc, char **argv) {
    int fails = 0, ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name)) continue;
        ran++;
        if (setup()) {
            fails++;
            continue;
        }
        if (cases[i].fn()) {
            fprintf(stderr, "FAIL %s\n", cases[i].name);
            fails++;
        }
        teardown();
    }
    if (!ran) {
        fprintf(stderr, "unknown case %s\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    return fails ? 1 : 0;
}
