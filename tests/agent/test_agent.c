/* test_agent.c -- the agent's protocol loop against fake_e2d, with a
 * scripted runner in place of the trainer: registration fields, progress
 * and log lines in heartbeats, checkpoint reports with SHA-256, ReportDone,
 * Cancel and Abort, re-registration on NOT_FOUND, reconnection after the
 * server restarts, stop, the command-line flags and the --config file.
 *
 * Usage: test_agent CASE (one ctest per case). */
#include <glob.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_internal.h"
#include "base.h"
#include "fake_e2d.h"

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Polls cond (an expression over f, read under f->mu) for up to ms. */
#define WAIT_FOR(f, cond, ms)                                                                \
    do {                                                                                     \
        int64_t end_ = now_ms() + (ms), ok_ = 0;                                             \
        while (!ok_) {                                                                       \
            pthread_mutex_lock(&(f)->mu);                                                    \
            ok_ = (cond);                                                                    \
            pthread_mutex_unlock(&(f)->mu);                                                  \
            if (!ok_) {                                                                      \
                if (now_ms() > end_) {                                                       \
                    fprintf(stderr, "%s:%d: timed out waiting for %s\n", __FILE__, __LINE__, \
                            #cond);                                                          \
                    exit(1);                                                                 \
                }                                                                            \
                sleep_ms(10);                                                                \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* ---- the scripted runner ---- */

static atomic_int runners_active; /* training threads inside the runner */
static atomic_int runner_last_step;
static atomic_int runner_finish; /* set: the rank succeeds before its next step */
static const char ckpt_content[] = "rank weights of a scripted runner\n";

/* Steps of 20 ms; a line and a progress report per step; a checkpoint file
 * rank-<r>.bin every checkpoint.every steps; eval JSON on success, which
 * comes after the spec's steps or, in a long job, once the case sets
 * runner_finish (so a case can act mid-job however slow the machine). */
static void scripted_runner(e2w_agent_job *job, e2w_agent_result *res, void *data) {
    (void)data;
    atomic_fetch_add(&runners_active, 1);
    const E2__V1__Assignment *as = e2w_agent_job_assignment(job);
    uint32_t steps = as->spec->train->steps;
    uint32_t every = as->spec->checkpoint->every;
    char err[E2_ERRLEN];
    for (uint32_t s = as->start_step + 1; s <= steps; s++) {
        int stop = e2w_agent_job_should_stop(job);
        if (stop) {
            res->outcome = E2__V1__OUTCOME__OUTCOME_CANCELLED;
            res->exit_code = 0;
            snprintf(res->reason, sizeof res->reason, "%s at step %u",
                     stop == E2W_AGENT_ABORT ? "aborted" : "cancelled", s - 1);
            atomic_fetch_sub(&runners_active, 1);
            return;
        }
        if (atomic_load(&runner_finish)) break;
        sleep_ms(20);
        char line[64];
        snprintf(line, sizeof line, "step %u loss %.3f\n", s, 5.0 / s);
        e2w_agent_job_log(job, line);
        e2w_agent_job_progress(job, s, 5.0 / s, 1e-3, 1.0, 1000.0);
        atomic_store(&runner_last_step, (int)s);
        if (every && s % every == 0) {
            char dir[4096], path[4200];
            snprintf(dir, sizeof dir, "%s/checkpoints/step_%u.tmp", as->job_dir, s);
            CHECK(e2_mkdir_p(dir, 0755, err, sizeof err) == 0);
            snprintf(path, sizeof path, "%s/rank-%u.bin", dir, as->rank);
            CHECK(e2_write_file_atomic(path, ckpt_content, sizeof ckpt_content - 1, err,
                                       sizeof err) == 0);
            int committed = 0;
            CHECK(e2w_agent_job_checkpoint(job, s, NULL, 0, &committed, err, sizeof err) == 0);
            CHECK(committed == 1);
        }
    }
    res->outcome = E2__V1__OUTCOME__OUTCOME_SUCCEEDED;
    res->exit_code = 0;
    res->reason[0] = 0;
    res->eval_json = strdup("{\"windows\":[64]}");
    atomic_fetch_sub(&runners_active, 1);
}

/* ---- harness: a temp dir, a fake e2d, an agent in its own thread ---- */

typedef struct {
    char dir[256], sock[300], job_dir[300];
    fake_e2d f;
    e2w_agent *agent;
    pthread_t thread;
    int run_rc;
} harness;

static void *agent_thread(void *arg) {
    harness *h = arg;
    char err[E2_ERRLEN];
    h->run_rc = e2w_agent_run(h->agent, err, sizeof err);
    return NULL;
}

static void setup_with(harness *h, int start_server, e2w_agent_runner runner) {
    memset(h, 0, sizeof *h);
    snprintf(h->dir, sizeof h->dir, "/tmp/e2-agent-test-XXXXXX");
    CHECK(mkdtemp(h->dir) != NULL);
    snprintf(h->sock, sizeof h->sock, "%s/e2d.sock", h->dir);
    snprintf(h->job_dir, sizeof h->job_dir, "%s/jobs/j-000001", h->dir);
    pthread_mutex_init(&h->f.mu, NULL);
    if (start_server) CHECK(fake_start(&h->f, h->sock) == 0);
    char addr[320];
    snprintf(addr, sizeof addr, "unix:%s", h->sock);
    e2w_agent_config cfg = { 0 };
    cfg.coordinator = addr;
    cfg.device = "cpu";
    cfg.name = "test-host";
    cfg.rpc_timeout_ms = 2000;
    cfg.backoff_max_ms = 200;
    cfg.runner = runner;
    char err[E2_ERRLEN];
    CHECK(e2w_agent_new(&h->agent, &cfg, err, sizeof err) == 0);
    CHECK(pthread_create(&h->thread, NULL, agent_thread, h) == 0);
}

static void setup(harness *h, int start_server) {
    setup_with(h, start_server, scripted_runner);
}

static void teardown(harness *h, int server_running) {
    e2w_agent_stop(h->agent, 0);
    pthread_join(h->thread, NULL);
    CHECK(h->run_rc == 0);
    e2w_agent_free(h->agent);
    if (server_running) fake_stop(&h->f);
    fake_free(&h->f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", h->dir);
    CHECK(system(cmd) == 0);
    CHECK(atomic_load(&runners_active) == 0);
}

/* ---- cases ---- */

static void test_registers_with_identity(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.registers == 1 && h.f.heartbeats >= 2, 5000);
    CHECK(!strcmp(h.f.last_hostname, "test-host"));
    CHECK(!strcmp(h.f.last_device, "cpu"));
    CHECK(h.f.last_pid == (int)getpid());
    CHECK(h.f.last_spawned == 0);
    CHECK(h.f.last_prev_id[0] == 0);
    CHECK(h.f.busy_heartbeats == 0);
    /* Every heartbeat carried the secret registration answered. */
    CHECK(h.f.bad_secrets == 0);
    char wid[64];
    e2w_agent_worker_id(h.agent, wid, sizeof wid);
    CHECK(!strcmp(wid, "w-1"));
    teardown(&h, 1);
}

static void test_runs_assignment_to_success(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 10, 5, h.job_dir);
    WAIT_FOR(&h.f, h.f.dones == 1, 10000);
    CHECK(h.f.done_outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED);
    CHECK(h.f.done_exit_code == 0);
    CHECK(!strcmp(h.f.done_eval, "{\"windows\":[64]}"));
    CHECK(h.f.done_last_step == 10); /* the last step went up before the end */
    CHECK(h.f.busy_heartbeats >= 1);
    /* two checkpoints (steps 5 and 10), the last one of step 10 */
    CHECK(h.f.ckpts == 2 && h.f.ckpt_step == 10);
    CHECK(h.f.ckpt_n_files == 1);
    CHECK(!strcmp(h.f.ckpt_name[0], "rank-0.bin"));
    CHECK(h.f.ckpt_size[0] == sizeof ckpt_content - 1);
    uint8_t d[E2_SHA256_LEN];
    char hex[E2_SHA256_HEXLEN];
    e2_sha256(ckpt_content, sizeof ckpt_content - 1, d);
    e2_sha256_hex(d, hex);
    CHECK(!strcmp(h.f.ckpt_sha[0], hex));
    /* every step's line arrived once, in order (heartbeats + ReportDone) */
    CHECK(h.f.n_lines == 10);
    for (int i = 0; i < 10; i++) {
        char want[64];
        snprintf(want, sizeof want, "step %d loss %.3f", i + 1, 5.0 / (i + 1));
        CHECK(!strcmp(h.f.lines[i], want));
    }
    /* idle again: later heartbeats say IDLE */
    pthread_mutex_lock(&h.f.mu);
    int busy = h.f.busy_heartbeats, beats = h.f.heartbeats;
    pthread_mutex_unlock(&h.f.mu);
    WAIT_FOR(&h.f, h.f.heartbeats >= beats + 2, 5000);
    CHECK(h.f.busy_heartbeats == busy);
    teardown(&h, 1);
}

static void test_cancel_stops_at_step_boundary(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 3, 5000);
    int64_t deadline = now_ms() + 3000;
    fake_cancel(&h.f, "j-000001", 1, deadline);
    WAIT_FOR(&h.f, h.f.dones == 1, 5000);
    CHECK(h.f.done_outcome == E2__V1__OUTCOME__OUTCOME_CANCELLED);
    CHECK(h.f.done_unix_ms <= deadline);
    CHECK(atomic_load(&runners_active) == 0);
    int last = atomic_load(&runner_last_step);
    CHECK(last >= 3 && last < 100000);
    sleep_ms(100);
    CHECK(atomic_load(&runner_last_step) == last); /* nothing trains on */
    teardown(&h, 1);
}

static void test_cancel_of_other_job_is_ignored(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 2, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 2, 5000);
    fake_cancel(&h.f, "j-000001", 1, now_ms() + 3000); /* stale attempt */
    fake_cancel(&h.f, "j-000009", 2, now_ms() + 3000); /* other job */
    /* Both went out in a reply, and the heartbeat after it means the agent
     * has handled them; the rank trains on, then ends as asked. */
    WAIT_FOR(&h.f, h.f.n_cmds == 0, 5000);
    pthread_mutex_lock(&h.f.mu);
    int beats = h.f.heartbeats;
    pthread_mutex_unlock(&h.f.mu);
    WAIT_FOR(&h.f, h.f.heartbeats > beats, 5000);
    int at = atomic_load(&runner_last_step);
    WAIT_FOR(&h.f, atomic_load(&runner_last_step) > at + 2, 5000);
    atomic_store(&runner_finish, 1);
    WAIT_FOR(&h.f, h.f.dones == 1, 10000);
    CHECK(h.f.done_outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED);
    teardown(&h, 1);
}

static void test_abort_stops_the_rank(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 2, 5000);
    fake_abort(&h.f, "j-000001", 1);
    WAIT_FOR(&h.f, h.f.dones == 1, 5000);
    CHECK(strstr(h.f.done_reason, "aborted") != NULL);
    CHECK(atomic_load(&runners_active) == 0);
    teardown(&h, 1);
}

static void test_reregisters_on_not_found(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 3, 5000);
    pthread_mutex_lock(&h.f.mu);
    h.f.forget = 1;
    pthread_mutex_unlock(&h.f.mu);
    WAIT_FOR(&h.f, h.f.registers == 2, 5000);
    CHECK(!strcmp(h.f.last_prev_id, "w-1"));
    /* It proves the old id is its own with that id's secret. */
    CHECK(!strcmp(h.f.last_prev_secret, "secret-1"));
    CHECK(h.f.last_had_running == 1 && h.f.last_running_step >= 3);
    atomic_store(&runner_finish, 1);
    WAIT_FOR(&h.f, h.f.dones == 1, 10000);
    CHECK(h.f.done_outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED);
    char wid[64];
    e2w_agent_worker_id(h.agent, wid, sizeof wid);
    CHECK(!strcmp(wid, "w-2"));
    teardown(&h, 1);
}

/* e2d says the attempt is over (FAILED_PRECONDITION): the rank is stopped,
 * its refused ReportDone is not retried, and the worker is idle again. */
static void test_stale_attempt_is_dropped(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 2, 5000);
    pthread_mutex_lock(&h.f.mu);
    h.f.stale = 1;
    pthread_mutex_unlock(&h.f.mu);
    WAIT_FOR(&h.f, h.f.refused_dones == 1, 5000);
    CHECK(atomic_load(&runners_active) == 0);
    pthread_mutex_lock(&h.f.mu);
    int beats = h.f.heartbeats, busy = h.f.busy_heartbeats;
    pthread_mutex_unlock(&h.f.mu);
    WAIT_FOR(&h.f, h.f.heartbeats >= beats + 2, 5000);
    CHECK(h.f.busy_heartbeats == busy && h.f.refused_dones == 1 && h.f.dones == 0);
    teardown(&h, 1);
}

/* e2d goes away mid-job and comes back (empty: it forgot the worker): the
 * rank keeps training, the agent reconnects, registers again with the rank
 * it runs, and reports the end to the new server. */
static void test_reconnects_after_server_restart(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 2, 5000);
    fake_stop(&h.f);
    int during = atomic_load(&runner_last_step);
    sleep_ms(400);
    CHECK(atomic_load(&runner_last_step) > during); /* still training */
    pthread_mutex_lock(&h.f.mu);
    h.f.registers = 0, h.f.heartbeats = 0, h.f.worker_id[0] = 0;
    pthread_mutex_unlock(&h.f.mu);
    CHECK(fake_start(&h.f, h.sock) == 0);
    WAIT_FOR(&h.f, h.f.registers == 1, 5000);
    CHECK(!strcmp(h.f.last_prev_id, "w-1"));
    CHECK(h.f.last_had_running == 1);
    atomic_store(&runner_finish, 1);
    WAIT_FOR(&h.f, h.f.dones == 1, 10000);
    CHECK(h.f.done_outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED);
    teardown(&h, 1);
}

/* Stopping the worker (SIGTERM path) mid-job ends the rank at a step
 * boundary and reports it as an infrastructure failure, so e2d reschedules
 * it instead of calling the job cancelled. */
static void test_stop_reports_and_returns(void) {
    harness h;
    setup(&h, 1);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 100000, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.last_step >= 2, 5000);
    e2w_agent_stop(h.agent, 0);
    pthread_join(h.thread, NULL);
    CHECK(h.run_rc == 0);
    CHECK(atomic_load(&runners_active) == 0);
    pthread_mutex_lock(&h.f.mu);
    CHECK(h.f.dones == 1);
    CHECK(h.f.done_outcome == E2__V1__OUTCOME__OUTCOME_FAILED_INFRA);
    pthread_mutex_unlock(&h.f.mu);
    e2w_agent_free(h.agent);
    fake_stop(&h.f);
    fake_free(&h.f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", h.dir);
    CHECK(system(cmd) == 0);
}

/* Without any e2d the agent keeps retrying, and still stops promptly. */
static void test_stop_without_server(void) {
    harness h;
    setup(&h, 0);
    sleep_ms(300);
    char wid[64];
    e2w_agent_worker_id(h.agent, wid, sizeof wid);
    CHECK(wid[0] == 0);
    int64_t t0 = now_ms();
    teardown(&h, 0);
    CHECK(now_ms() - t0 < 2000);
}

static void test_args(void) {
    e2w_agent_config c;
    char err[E2_ERRLEN];
    char *ok[] = { "e2worker", "--coordinator", "unix:/tmp/x.sock",
                   "--device", "cuda",          "--device-index",
                   "3",        "--name",        "n1",
                   "--spawned" };
    unsetenv("E2_SPAWNED_BY_E2D");
    CHECK(e2w_agent_parse_args(10, ok, &c, err, sizeof err) == 0);
    CHECK(!strcmp(c.coordinator, "unix:/tmp/x.sock"));
    CHECK(!strcmp(c.device, "cuda") && c.device_index == 3);
    CHECK(!strcmp(c.name, "n1") && c.spawned_by_e2d == 1);
    char *env[] = { "e2worker", "--coordinator", "h:1" };
    setenv("E2_SPAWNED_BY_E2D", "1", 1);
    CHECK(e2w_agent_parse_args(3, env, &c, err, sizeof err) == 0);
    CHECK(c.spawned_by_e2d == 1 && !strcmp(c.device, "cpu"));
    unsetenv("E2_SPAWNED_BY_E2D");
    char *none[] = { "e2worker" };
    CHECK(e2w_agent_parse_args(1, none, &c, err, sizeof err) < 0);
    CHECK(strstr(err, "--coordinator") != NULL);
    char *dev[] = { "e2worker", "--coordinator", "h:1", "--device", "tpu" };
    CHECK(e2w_agent_parse_args(5, dev, &c, err, sizeof err) < 0);
    CHECK(strstr(err, "--device") && strstr(err, "tpu"));
    char *idx[] = { "e2worker", "--coordinator", "h:1", "--device-index", "x" };
    CHECK(e2w_agent_parse_args(5, idx, &c, err, sizeof err) < 0);
    CHECK(strstr(err, "--device-index") != NULL);
    char *unk[] = { "e2worker", "--coordinator", "h:1", "--bogus" };
    CHECK(e2w_agent_parse_args(4, unk, &c, err, sizeof err) < 0);
    CHECK(strstr(err, "--bogus") != NULL);
    char *miss[] = { "e2worker", "--coordinator" };
    CHECK(e2w_agent_parse_args(2, miss, &c, err, sizeof err) < 0);
    char *eq[] = { "e2worker", "--coordinator=unix:/a.sock", "--device=cpu", "--name=n2" };
    CHECK(e2w_agent_parse_args(4, eq, &c, err, sizeof err) == 0);
    CHECK(!strcmp(c.coordinator, "unix:/a.sock") && !strcmp(c.name, "n2"));
    char *help[] = { "e2worker", "--coordinator", "--help" };
    CHECK(e2w_agent_parse_args(3, help, &c, err, sizeof err) == 1);
}

/* ---- --config FILE ---- */

/* Writes text to a fresh file under /tmp; its path goes to path. */
static void write_conf(char *path, size_t n, const char *text) {
    snprintf(path, n, "/tmp/agent_config_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
}

/* Parses `e2worker --config FILE [extra...]` with FILE holding text;
 * returns parse_args' code, cfg and err filled, FILE's path in path. */
static int parse_conf(const char *text, char **extra, int n_extra, e2w_agent_config *c, char *path,
                      size_t pathn, char *err, size_t errlen) {
    write_conf(path, pathn, text);
    char *argv[16] = { "e2worker", "--config", path };
    CHECK(n_extra <= 13);
    for (int i = 0; i < n_extra; i++) argv[3 + i] = extra[i];
    int rc = e2w_agent_parse_args(3 + n_extra, argv, c, err, errlen);
    unlink(path);
    return rc;
}

static void test_config_good_file(void) {
    e2w_agent_config c;
    char err[E2_ERRLEN], path[64];
    unsetenv("E2_SPAWNED_BY_E2D");
    unsetenv("E2_TOKEN_FILE");
    const char *text = "# worker settings\n"
                       "\n"
                       "coordinator = head.example.org:7070   # the head node\n"
                       "  device=cuda\n"
                       "device-index = 2\r\n"
                       "name = gpu1\n"
                       "token-file = /etc/e2/worker.token\n"
                       "tls-ca = /etc/e2/ca.pem\n"
                       "tls-cert = /etc/e2/c.pem\n"
                       "tls-key = /etc/e2/c.key\n"
                       "comm-iface = eth0\n"
                       "comm-host = 10.0.0.7\n"
                       "spawned = yes\n"
                       "name = gpu2";
    CHECK(parse_conf(text, NULL, 0, &c, path, sizeof path, err, sizeof err) == 0);
    CHECK(!strcmp(c.coordinator, "head.example.org:7070"));
    CHECK(!strcmp(c.device, "cuda") && c.device_index == 2);
    CHECK(!strcmp(c.name, "gpu2")); /* the last line of a key wins */
    CHECK(!strcmp(c.token_file, "/etc/e2/worker.token"));
    CHECK(!strcmp(c.tls_ca, "/etc/e2/ca.pem") && !strcmp(c.tls_cert, "/etc/e2/c.pem") &&
          !strcmp(c.tls_key, "/etc/e2/c.key"));
    CHECK(!strcmp(c.comm_iface, "eth0") && !strcmp(c.comm_host, "10.0.0.7"));
    CHECK(c.spawned_by_e2d == 1 && c.n_env == 0);
    e2w_agent_args_free(&c);
    /* The file is read before --help, so `e2worker --config FILE --help`
     * checks FILE (the deploy test checks the example config that way). */
    char *help[] = { "--help" };
    CHECK(parse_conf("coordinator = h:1\n", help, 1, &c, path, sizeof path, err, sizeof err) == 1);
    e2w_agent_args_free(&c);
    CHECK(parse_conf("cordinator = h:1\n", help, 1, &c, path, sizeof path, err, sizeof err) < 0);
    e2w_agent_args_free(&c);
    /* The file names no coordinator and no flag does either. */
    CHECK(parse_conf("device = cpu\n", NULL, 0, &c, path, sizeof path, err, sizeof err) < 0);
    CHECK(strstr(err, "coordinator") != NULL);
    e2w_agent_args_free(&c);
    char *missing[] = { "e2worker", "--config", "/nonexistent/worker.conf" };
    CHECK(e2w_agent_parse_args(3, missing, &c, err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent/worker.conf") != NULL);
    e2w_agent_args_free(&c);
}

/* err is "FILE:LINE: ..." with the given line and contains want. */
static void check_file_line(const char *err, const char *path, int line, const char *want) {
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    if (strncmp(err, prefix, strlen(prefix)) || !strstr(err, want)) {
        fprintf(stderr, "error line '%s' lacks '%s' or '%s'\n", err, prefix, want);
        exit(1);
    }
}

static void test_config_unknown_key(void) {
    e2w_agent_config c;
    char err[E2_ERRLEN], path[64];
    CHECK(parse_conf("coordinator = h:1\n# fine\ndevice_index = 1\n", NULL, 0, &c, path,
                     sizeof path, err, sizeof err) < 0);
    check_file_line(err, path, 3, "device_index");
    e2w_agent_args_free(&c);
    CHECK(parse_conf("coordinator = h:1\nconfig = /etc/e2/other.conf\n", NULL, 0, &c, path,
                     sizeof path, err, sizeof err) < 0);
    check_file_line(err, path, 2, "nest");
    e2w_agent_args_free(&c);
    CHECK(parse_conf("\n\ncoordinator h:1\n", NULL, 0, &c, path, sizeof path, err, sizeof err) < 0);
    check_file_line(err, path, 3, "key = value");
    e2w_agent_args_free(&c);
}

static void test_config_bad_value(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        { "coordinator = h:1\ndevice = tpu\n", "tpu" },
        { "coordinator = h:1\ndevice-index = 1024\n", "device-index" },
        { "coordinator = h:1\ndevice-index = 1x\n", "device-index" },
        { "coordinator = h:1\ndevice-index =\n", "device-index" },
        { "coordinator = h:1\nspawned = maybe\n", "spawned" },
        { "coordinator = h:1\nname = \n", "name" },
        { "coordinator = h:1\nenv.NCCL_DEBUG =\n", "NCCL_DEBUG" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e2w_agent_config c;
        char err[E2_ERRLEN], path[64];
        CHECK(parse_conf(cases[i].text, NULL, 0, &c, path, sizeof path, err, sizeof err) < 0);
        check_file_line(err, path, 2, cases[i].want);
        e2w_agent_args_free(&c);
    }
}

static void test_config_flag_overrides_file(void) {
    e2w_agent_config c;
    char err[E2_ERRLEN], path[64];
    setenv("E2_TLS_CA", "/env/ca.pem", 1);
    setenv("E2_TOKEN_FILE", "/env/token", 1);
    char *flags[] = { "--coordinator", "unix:/run/e2/e2d.sock", "--device-index=1", "--name",
                      "n9" };
    CHECK(parse_conf("coordinator = head:7070\ndevice = cuda\ndevice-index = 3\n"
                     "name = from-file\ntls-ca = /file/ca.pem\n",
                     flags, 5, &c, path, sizeof path, err, sizeof err) == 0);
    CHECK(!strcmp(c.coordinator, "unix:/run/e2/e2d.sock"));
    CHECK(!strcmp(c.device, "cuda") && c.device_index == 1 && !strcmp(c.name, "n9"));
    CHECK(!strcmp(c.tls_ca, "/file/ca.pem"));   /* the file beats the environment */
    CHECK(!strcmp(c.token_file, "/env/token")); /* which gives the default */
    e2w_agent_args_free(&c);
    /* A bad flag is still an error after a good file. */
    char *bad[] = { "--device", "gpu" };
    CHECK(parse_conf("coordinator = h:1\n", bad, 2, &c, path, sizeof path, err, sizeof err) < 0);
    CHECK(!strncmp(err, "--device", 8));
    e2w_agent_args_free(&c);
    unsetenv("E2_TLS_CA");
    unsetenv("E2_TOKEN_FILE");
}

static void test_config_env_lines(void) {
    e2w_agent_config c;
    char err[E2_ERRLEN], path[64];
    const char *text = "coordinator = h:1\n"
                       "env.NCCL_SOCKET_IFNAME = ib0\n"
                       "env.NCCL_IB_DISABLE = 0\n"
                       "env.NCCL_SOCKET_IFNAME = eth1\n"
                       "comm-iface = eth1\n"
                       "device = cuda\n"
                       "device-index = 1\n";
    CHECK(parse_conf(text, NULL, 0, &c, path, sizeof path, err, sizeof err) == 0);
    CHECK(c.n_env == 2);
    CHECK(!strcmp(c.env[0][0], "NCCL_SOCKET_IFNAME") && !strcmp(c.env[0][1], "eth1"));
    CHECK(!strcmp(c.env[1][0], "NCCL_IB_DISABLE") && !strcmp(c.env[1][1], "0"));
    e2w_agent_args_free(&c);
    static const char *const refused[] = { "env.LD_PRELOAD = /x.so\n", "env.OMP_NUM_THREADS = 4\n",
                                           "env.NCCL_ = 1\n", "env.NCCL_debug = INFO\n",
                                           "env.CUDA_VISIBLE_DEVICES = 1\n" };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        CHECK(parse_conf(refused[i], NULL, 0, &c, path, sizeof path, err, sizeof err) < 0);
        check_file_line(err, path, 1, "NCCL_");
        e2w_agent_args_free(&c);
    }
    /* e2worker sets them before it picks the GPU: here the pick fails
     * (CUDA_VISIBLE_DEVICES lists one GPU, device-index is 1), after the
     * environment was set and before anything connects. */
    unsetenv("NCCL_SOCKET_IFNAME");
    unsetenv("NCCL_IB_DISABLE");
    unsetenv("E2_COMM_IFACE");
    setenv("CUDA_VISIBLE_DEVICES", "0", 1);
    write_conf(path, sizeof path, text);
    char *argv[] = { "e2worker", "--config", path };
    CHECK(e2w_agent_main(3, argv) == 2);
    unlink(path);
    const char *v = getenv("NCCL_SOCKET_IFNAME");
    CHECK(v && !strcmp(v, "eth1"));
    v = getenv("NCCL_IB_DISABLE");
    CHECK(v && !strcmp(v, "0"));
    v = getenv("E2_COMM_IFACE");
    CHECK(v && !strcmp(v, "eth1"));
}

/* ---- rendezvous through the agent's job hooks ---- */

static int rdzv_result = -1;

static void rdzv_runner(e2w_agent_job *job, e2w_agent_result *res, void *data) {
    (void)data;
    char err[E2_ERRLEN];
    void *v = NULL;
    size_t n = 0;
    int ok = e2w_agent_job_rdzv_get(job, "missing", 100, &v, &n, err, sizeof err) == E2_NOTFOUND;
    ok = ok && e2w_agent_job_rdzv_put(job, "uid", "\x01\x02\x03", 3, err, sizeof err) == 0;
    ok = ok && e2w_agent_job_rdzv_get(job, "uid", 1000, &v, &n, err, sizeof err) == 0;
    ok = ok && n == 3 && !memcmp(v, "\x01\x02\x03", 3);
    free(v);
    rdzv_result = ok;
    res->outcome = E2__V1__OUTCOME__OUTCOME_SUCCEEDED;
    res->exit_code = 0;
    res->reason[0] = 0;
}

static void test_rendezvous_roundtrip(void) {
    harness h;
    setup_with(&h, 1, rdzv_runner);
    WAIT_FOR(&h.f, h.f.heartbeats >= 1, 5000);
    fake_assign(&h.f, "j-000001", 1, 0, 1, 1, 0, h.job_dir);
    WAIT_FOR(&h.f, h.f.dones >= 1, 5000);
    CHECK(rdzv_result == 1);
    CHECK(!strcmp(h.f.rdzv_key, "uid"));
    teardown(&h, 1);
}

/* The assignment's shard manifest: files this worker sees with the sizes
 * e2d saw become glob patterns matching exactly those files (special
 * characters in a name included); a size or a file that differs is one
 * error line naming the file. */
static void test_shard_manifest(void) {
    char dir[] = "/tmp/e2-agent-shards-XXXXXX", path[2][256], err[E2_ERRLEN];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path[0], sizeof path[0], "%s/train_[0]*.bin", dir);
    snprintf(path[1], sizeof path[1], "%s/train_1.bin", dir);
    CHECK(e2_write_file_atomic(path[0], "abcdef", 6, err, sizeof err) == 0);
    CHECK(e2_write_file_atomic(path[1], "abc", 3, err, sizeof err) == 0);
    E2__V1__ShardFile f[2] = { E2__V1__SHARD_FILE__INIT, E2__V1__SHARD_FILE__INIT };
    E2__V1__ShardFile *fp[2] = { &f[0], &f[1] };
    for (int i = 0; i < 2; i++) {
        f[i].path = path[i];
        f[i].has_bytes = 1;
        f[i].bytes = i ? 3 : 6;
    }
    E2__V1__Assignment as = E2__V1__ASSIGNMENT__INIT;
    char **files;
    size_t n;
    CHECK(e2w_agent_shard_files(&as, &files, &n, err, sizeof err) == 0 && n == 0 && !files);
    as.train_shards = fp;
    as.n_train_shards = 2;
    CHECK(e2w_agent_shard_files(&as, &files, &n, err, sizeof err) == 0 && n == 2);
    for (size_t i = 0; i < n; i++) {
        glob_t g;
        CHECK(glob(files[i], 0, NULL, &g) == 0);
        CHECK(g.gl_pathc == 1 && !strcmp(g.gl_pathv[0], path[i]));
        globfree(&g);
    }
    e2w_agent_shard_files_free(files, n);
    f[1].bytes = 4;
    CHECK(e2w_agent_shard_files(&as, &files, &n, err, sizeof err) < 0 && !files);
    CHECK(strstr(err, path[1]) && strstr(err, "3 bytes on this worker but 4 bytes"));
    CHECK(!strchr(err, '\n'));
    f[1].bytes = 3;
    CHECK(remove(path[1]) == 0);
    CHECK(e2w_agent_shard_files(&as, &files, &n, err, sizeof err) < 0);
    CHECK(strstr(err, path[1]) && strstr(err, "not readable on this worker"));
    CHECK(remove(path[0]) == 0 && rmdir(dir) == 0);
}

int main(int argc, char **argv) {
    static const struct {
        const char *name;
        void (*fn)(void);
    } cases[] = {
        { "registers_with_identity", test_registers_with_identity },
        { "runs_assignment_to_success", test_runs_assignment_to_success },
        { "cancel_stops_at_step_boundary", test_cancel_stops_at_step_boundary },
        { "cancel_of_other_job_is_ignored", test_cancel_of_other_job_is_ignored },
        { "abort_stops_the_rank", test_abort_stops_the_rank },
        { "reregisters_on_not_found", test_reregisters_on_not_found },
        { "stale_attempt_is_dropped", test_stale_attempt_is_dropped },
        { "reconnects_after_server_restart", test_reconnects_after_server_restart },
        { "stop_reports_and_returns", test_stop_reports_and_returns },
        { "stop_without_server", test_stop_without_server },
        { "rendezvous_roundtrip", test_rendezvous_roundtrip },
        { "args", test_args },
        { "config_good_file", test_config_good_file },
        { "config_unknown_key", test_config_unknown_key },
        { "config_bad_value", test_config_bad_value },
        { "config_flag_overrides_file", test_config_flag_overrides_file },
        { "config_env_lines", test_config_env_lines },
        { "shard_manifest", test_shard_manifest },
    };
    if (argc != 2) {
        fprintf(stderr, "usage: test_agent CASE\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(argv[1], cases[i].name)) {
            cases[i].fn();
            return 0;
        }
    fprintf(stderr, "unknown case %s\n", argv[1]);
    return 2;
}
