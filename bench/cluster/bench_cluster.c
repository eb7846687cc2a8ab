/* bench_cluster.c -- a simulated cluster against a real e2d.
 *
 * Starts the real e2d on a temporary state dir (unix socket), submits a
 * queue of tiny jobs with mixed gang sizes (1, 2, 4, 8 in turn) through the
 * Coordinator API, then runs N fake workers that speak the real
 * WorkerControl API: RegisterWorker, a Heartbeat every --heartbeat-ms
 * (IDLE, or BUSY with the rank's progress), assignments taken from the
 * heartbeat replies, one checkpoint per rank at the last step
 * (ReportCheckpoint, with an empty file in step_N.tmp/ so that e2d commits
 * it) and ReportDone(SUCCEEDED). A fake rank "trains" one step per
 * heartbeat. The workers are multiplexed over --threads threads (blocking
 * calls, each thread walks its workers on a staggered 1 Hz schedule).
 *
 * Prints its configuration and: e2d CPU % (utime+stime from /proc/PID/stat)
 * and RSS over the run, over its middle half (25 %..75 % of the jobs done)
 * and with the cluster idle afterwards; heartbeat latency p50/p99;
 * submit-to-start latency p50/p99 (e2d's created/started times); e2d's
 * scheduling pass time (its exit log line); ListJobs page times with the
 * whole queue stored, before and during the run. Asserts nothing about
 * time. Exit status 0 only when every job ended SUCCEEDED.
 *
 * usage: bench_cluster [--workers N] [--jobs M] [--threads T] [--steps S]
 *                      [--heartbeat-ms MS] [--idle-seconds S]
 *                      [--timeout S] [--e2d PATH] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "e2/v1/coordinator.pb-c.h"
#include "e2/v1/worker.pb-c.h"
#include "rpc.h"
#include "spec.h"

#define SIM_TIMEOUT_MS   30000
#define SIM_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

typedef struct sim_cfg {
    int workers, jobs, threads, steps, heartbeat_ms;
    double idle_s, timeout_s;
    const char *e2d;
} sim_cfg;

typedef struct sim_worker {
    char id[40], secret[80];
    int busy;
    char job[48], job_dir[512];
    uint32_t attempt, rank, world, step, total;
} sim_worker;

typedef struct sim_lat {
    double *v;
    size_t n, cap;
} sim_lat;

typedef struct sim_thread {
    int index;
    sim_worker **w; /* this thread's workers */
    int nw;
    sim_lat hb;
    long calls, errors;
} sim_thread;

static sim_cfg cfg = { 1000, 10000, 8, 3, 1000, 10, 3600, E2D_PATH };
static e2_rpc_client *client;
static atomic_int stop;
static atomic_long ranks_done, ranks_failed, heartbeats, jobs_rank0_done;
static atomic_int registered;
static sim_worker *workers_base;
static double t_start;

static double sim_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sim_sleep_until(double t) {
    struct timespec ts;
    ts.tv_sec = (time_t)t;
    ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void sim_lat_add(sim_lat *l, double v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 4096;
        double *p = realloc(l->v, cap * sizeof *p);
        if (!p) return;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

static int sim_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile (nearest rank) of v[0..n), sorted in place. */
static double sim_pct(double *v, size_t n, double q) {
    size_t k;
    if (!n) return 0;
    qsort(v, n, sizeof *v, sim_cmp);
    k = (size_t)(q * (double)n);
    return v[k < n ? k : n - 1];
}

static int sim_call(const char *method, const ProtobufCMessage *req,
                    const ProtobufCMessageDescriptor *rt, ProtobufCMessage **resp) {
    char msg[256];
    int rc = e2_rpc_client_call(client, method, req, rt, resp, SIM_TIMEOUT_MS, msg, sizeof msg);
    if (rc != E2_RPC_OK)
        fprintf(stderr, "bench_cluster: %s: %s: %s\n", method, e2_rpc_status_name(rc), msg);
    return rc;
}

/* ---- process figures from /proc */

static double sim_cpu_s(pid_t pid) {
    char p[64], buf[1024], *s;
    unsigned long ut = 0, st = 0;
    FILE *f;
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(p, "r"))) return -1;
    s = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!s || !(s = strrchr(buf, ')'))) return -1;
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long sim_status_kb(pid_t pid, const char *key) {
    char p[64], line[256];
    long kb = -1;
    size_t n = strlen(key);
    FILE *f;
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    if (!(f = fopen(p, "r"))) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n)) kb = strtol(line + n, NULL, 10);
    fclose(f);
    return kb;
}

/* ---- e2d */

static pid_t sim_daemon(char *dir, char *addr, size_t n) {
    char sock[200], log[200], hbt[32];
    pid_t pid;
    if (!mkdtemp(dir)) {
        perror("bench_cluster: mkdtemp");
        return -1;
    }
    snprintf(sock, sizeof sock, "%s/e2d.sock", dir);
    snprintf(log, sizeof log, "%s/e2d.log", dir);
    snprintf(addr, n, "unix:%s", sock);
    /* A generous heartbeat timeout: a loaded machine must not turn a late
     * fake worker into a LOST one (the bench measures, it does not test
     * failure detection). */
    snprintf(hbt, sizeof hbt, "%d", 30 + 3 * cfg.heartbeat_ms / 1000);
    if ((pid = fork()) == 0) {
        if (!freopen(log, "w", stderr)) _exit(127);
        execl(cfg.e2d, "e2d", "--state-dir", dir, "--heartbeat-timeout", hbt, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400 && access(sock, F_OK) < 0; i++) usleep(50000);
    if (access(sock, F_OK) < 0) {
        fprintf(stderr, "bench_cluster: e2d did not start (see %s)\n", log);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* Stops e2d and prints its scheduler line (and, when e2d did not exit 0,
 * the sanitizer or error lines of its log); removes the state dir.
 * Returns e2d's exit status. */
static int sim_daemon_stop(pid_t pid, const char *dir) {
    char path[256], line[1024], cmd[300];
    const char *s;
    int st = 0, code;
    FILE *f;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    snprintf(path, sizeof path, "%s/e2d.log", dir);
    if ((f = fopen(path, "r"))) {
        while (fgets(line, sizeof line, f))
            if ((s = strstr(line, "scheduler: ")) && strstr(s, "passes"))
                printf("scheduling pass (e2d's log): %s", s + 11);
            else if (code && (strstr(line, "ERROR") || strstr(line, "runtime error")))
                printf("e2d: %s", line);
        fclose(f);
    }
    if (code) printf("e2d exited with status %d\n", code);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_cluster: could not remove %s\n", dir);
    return code;
}

/* ---- Coordinator calls */

static E2__V1__JobSpec *sim_spec(int world) {
    char json[1024], err[256];
    E2__V1__JobSpec *s;
    snprintf(json, sizeof json,
             "{\"name\":\"sim-gang%d\",\"num_workers\":%d,"
             "\"model\":{\"config\":{\"hidden_size\":32,\"num_hidden_layers\":1,"
             "\"num_attention_heads\":2,\"intermediate_size\":64,"
             "\"vocab_size\":256,\"max_position_embeddings\":64}},"
             "\"data\":{\"train_shards\":[\"/nonexistent/train_*.bin\"]},"
             "\"augment\":{\"train_length\":64},\"train\":{\"steps\":%d,"
             "\"global_batch\":8},\"eval\":{\"windows\":[64]}}",
             world, world, cfg.steps);
    if (!(s = e2_spec_parse(json, strlen(json), err, sizeof err)))
        fprintf(stderr, "bench_cluster: spec: %s\n", err);
    return s;
}

static const int sim_gangs[4] = { 1, 2, 4, 8 };
static E2__V1__JobSpec *specs[4];
static atomic_int submit_next;
static long total_ranks;

static void *sim_submit_thread(void *arg) {
    long *errors = arg;
    int i;
    while ((i = atomic_fetch_add(&submit_next, 1)) < cfg.jobs) {
        E2__V1__SubmitJobRequest req = E2__V1__SUBMIT_JOB_REQUEST__INIT;
        ProtobufCMessage *resp = NULL;
        req.spec = specs[i % 4];
        if (sim_call("/e2.v1.Coordinator/SubmitJob", &req.base,
                     &e2__v1__submit_job_response__descriptor, &resp) != E2_RPC_OK)
            (*errors)++;
        if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    }
    return NULL;
}

/* One ListJobs page of `size` jobs: its time in ms (-1 on error). */
static double sim_list_page(int size, size_t *bytes, int *njobs) {
    E2__V1__ListJobsRequest req = E2__V1__LIST_JOBS_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    double t0 = sim_now(), dt;
    req.has_page_size = 1;
    req.page_size = (uint32_t)size;
    if (sim_call("/e2.v1.Coordinator/ListJobs", &req.base, &e2__v1__list_jobs_response__descriptor,
                 &resp) != E2_RPC_OK)
        return -1;
    dt = (sim_now() - t0) * 1e3;
    if (bytes) *bytes = protobuf_c_message_get_packed_size(resp);
    if (njobs) *njobs = (int)((E2__V1__ListJobsResponse *)resp)->n_jobs;
    protobuf_c_message_free_unpacked(resp, NULL);
    return dt;
}

/* Median of 5 first pages of `size` jobs, printed. */
static void sim_list_figure(const char *when, int size) {
    double v[5], med;
    size_t bytes = 0;
    int n = 0;
    for (int i = 0; i < 5; i++) v[i] = sim_list_page(size, &bytes, &n);
    med = sim_pct(v, 5, 0.5); /* sorts v */
    printf("ListJobs page (%s, %d jobs stored): page_size %d -> %d jobs, "
           "%zu bytes: median of 5 %.2f ms (min %.2f, max %.2f)\n",
           when, cfg.jobs, size, n, bytes, med, v[0], v[4]);
}

/* Walks every job; counts SUCCEEDED ones and collects submit-to-start and
 * start-to-finish latencies (seconds). */
static int sim_list_all(int *succeeded, sim_lat *s2s, sim_lat *run) {
    char token[256] = "";
    int total = 0;
    *succeeded = 0;
    do {
        E2__V1__ListJobsRequest req = E2__V1__LIST_JOBS_REQUEST__INIT;
        E2__V1__ListJobsResponse *r = NULL;
        req.has_page_size = 1;
        req.page_size = 1000;
        req.page_token = token;
        if (sim_call("/e2.v1.Coordinator/ListJobs", &req.base,
                     &e2__v1__list_jobs_response__descriptor, (ProtobufCMessage **)&r) != E2_RPC_OK)
            return -1;
        for (size_t i = 0; i < r->n_jobs; i++) {
            const E2__V1__Job *j = r->jobs[i];
            total++;
            *succeeded += j->state == E2__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
            if (j->started_unix_ms > 0) {
                sim_lat_add(s2s, (double)(j->started_unix_ms - j->created_unix_ms) * 1e-3);
                if (j->finished_unix_ms > 0)
                    sim_lat_add(run, (double)(j->finished_unix_ms - j->started_unix_ms) * 1e-3);
            }
        }
        snprintf(token, sizeof token, "%s", r->next_page_token ? r->next_page_token : "");
        protobuf_c_message_free_unpacked(&r->base, NULL);
    } while (token[0]);
    return total;
}

/* ---- fake workers */

static int sim_register(sim_worker *w, int i) {
    E2__V1__RegisterWorkerRequest req = E2__V1__REGISTER_WORKER_REQUEST__INIT;
    E2__V1__RegisterWorkerResponse *r = NULL;
    char host[32];
    snprintf(host, sizeof host, "sim-%05d", i);
    req.hostname = host;
    req.device = "cpu";
    req.has_pid = 1;
    req.pid = getpid();
    req.version = "bench_cluster";
    if (sim_call("/e2.v1.WorkerControl/RegisterWorker", &req.base,
                 &e2__v1__register_worker_response__descriptor,
                 (ProtobufCMessage **)&r) != E2_RPC_OK)
        return -1;
    snprintf(w->id, sizeof w->id, "%s", r->worker_id);
    snprintf(w->secret, sizeof w->secret, "%s", r->worker_secret ? r->worker_secret : "");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return 0;
}

/* The rank's checkpoint of its last step: an empty file in step_N.tmp/. */
static void sim_checkpoint(sim_thread *t, sim_worker *w) {
    E2__V1__ReportCheckpointRequest req = E2__V1__REPORT_CHECKPOINT_REQUEST__INIT;
    E2__V1__CheckpointFile f = E2__V1__CHECKPOINT_FILE__INIT;
    E2__V1__CheckpointFile *fp = &f;
    ProtobufCMessage *resp = NULL;
    char dir[700], name[32], path[740];
    int fd;
    snprintf(dir, sizeof dir, "%s/checkpoints", w->job_dir);
    mkdir(dir, 0755);
    snprintf(dir, sizeof dir, "%s/checkpoints/step_%u.tmp", w->job_dir, w->step);
    mkdir(dir, 0755);
    snprintf(name, sizeof name, "rank-%u.bin", w->rank);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0) close(fd);
    f.name = name;
    f.has_size = 1;
    f.size = 0;
    f.sha256 = SIM_EMPTY_SHA256;
    req.worker_id = w->id;
    req.worker_secret = w->secret;
    req.job_id = w->job;
    req.has_attempt = req.has_rank = req.has_step = 1;
    req.attempt = w->attempt;
    req.rank = w->rank;
    req.step = w->step;
    req.n_files = 1;
    req.files = &fp;
    t->calls++;
    if (sim_call("/e2.v1.WorkerControl/ReportCheckpoint", &req.base,
                 &e2__v1__report_checkpoint_response__descriptor, &resp) != E2_RPC_OK)
        t->errors++;
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
}

static void sim_done(sim_thread *t, sim_worker *w, E2__V1__Outcome outcome) {
    E2__V1__ReportDoneRequest req = E2__V1__REPORT_DONE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    req.worker_id = w->id;
    req.worker_secret = w->secret;
    req.job_id = w->job;
    req.has_attempt = req.has_rank = req.has_outcome = req.has_exit_code = 1;
    req.attempt = w->attempt;
    req.rank = w->rank;
    req.outcome = outcome;
    req.exit_code = 0;
    req.reason = outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED ? "trained" : "cancelled";
    t->calls++;
    if (sim_call("/e2.v1.WorkerControl/ReportDone", &req.base,
                 &e2__v1__report_done_response__descriptor, &resp) != E2_RPC_OK) {
        t->errors++;
        atomic_fetch_add(&ranks_failed, 1);
    } else if (outcome == E2__V1__OUTCOME__OUTCOME_SUCCEEDED) {
        atomic_fetch_add(&ranks_done, 1);
        if (w->rank == 0) atomic_fetch_add(&jobs_rank0_done, 1);
    }
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    w->busy = 0;
}

static void sim_command(sim_thread *t, sim_worker *w, const E2__V1__Command *c) {
    if (c->kind_case == E2__V1__COMMAND__KIND_ASSIGNMENT) {
        const E2__V1__Assignment *a = c->assignment;
        if (w->busy) return;
        w->busy = 1;
        snprintf(w->job, sizeof w->job, "%s", a->job_id ? a->job_id : "");
        snprintf(w->job_dir, sizeof w->job_dir, "%s", a->job_dir ? a->job_dir : "");
        w->attempt = a->attempt;
        w->rank = a->rank;
        w->world = a->world_size;
        w->step = a->start_step;
        w->total = a->spec && a->spec->train && a->spec->train->has_steps ? a->spec->train->steps
                                                                          : (uint32_t)cfg.steps;
    } else if (c->kind_case == E2__V1__COMMAND__KIND_CANCEL) {
        if (w->busy && !strcmp(w->job, c->cancel->job_id))
            sim_done(t, w, E2__V1__OUTCOME__OUTCOME_CANCELLED);
    } else if (c->kind_case == E2__V1__COMMAND__KIND_ABORT) {
        if (w->busy && !strcmp(w->job, c->abort->job_id)) {
            atomic_fetch_add(&ranks_failed, 1);
            w->busy = 0;
        }
    }
}

/* One heartbeat of one worker: a step of training when busy, then the
 * commands of the reply; at the last step the checkpoint and ReportDone. */
static void sim_tick(sim_thread *t, sim_worker *w) {
    E2__V1__HeartbeatRequest req = E2__V1__HEARTBEAT_REQUEST__INIT;
    E2__V1__Progress p = E2__V1__PROGRESS__INIT;
    E2__V1__HeartbeatResponse *r = NULL;
    double t0;
    int rc;
    if (!w->id[0]) {
        /* First turn of this worker: register, then beat from now on. */
        if (sim_register(w, (int)(w - workers_base)) < 0) {
            t->errors++;
            return;
        }
        atomic_fetch_add(&registered, 1);
    }
    req.worker_id = w->id;
    req.worker_secret = w->secret;
    req.has_state = 1;
    req.state =
        w->busy ? E2__V1__WORKER_STATE__WORKER_STATE_BUSY : E2__V1__WORKER_STATE__WORKER_STATE_IDLE;
    if (w->busy) {
        if (w->step < w->total) w->step++;
        p.job_id = w->job;
        p.has_attempt = p.has_rank = p.has_step = p.has_total_steps = 1;
        p.attempt = w->attempt;
        p.rank = w->rank;
        p.step = w->step;
        p.total_steps = w->total;
        p.has_loss = p.has_lr = p.has_tokens_per_second = 1;
        p.has_time_unix_ms = 1;
        p.loss = 5.0 / (1.0 + w->step);
        p.lr = 1e-3;
        p.tokens_per_second = 1000;
        p.time_unix_ms = (int64_t)time(NULL) * 1000;
        req.progress = &p;
    }
    t0 = sim_now();
    rc = sim_call("/e2.v1.WorkerControl/Heartbeat", &req.base,
                  &e2__v1__heartbeat_response__descriptor, (ProtobufCMessage **)&r);
    sim_lat_add(&t->hb, sim_now() - t0);
    t->calls++;
    atomic_fetch_add(&heartbeats, 1);
    if (rc != E2_RPC_OK) {
        t->errors++;
        return;
    }
    for (size_t i = 0; i < r->n_commands; i++) sim_command(t, w, r->commands[i]);
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (w->busy && w->step >= w->total && req.progress) {
        sim_checkpoint(t, w);
        sim_done(t, w, E2__V1__OUTCOME__OUTCOME_SUCCEEDED);
    }
}

static void *sim_worker_thread(void *arg) {
    sim_thread *t = arg;
    double period = cfg.heartbeat_ms * 1e-3;
    /* Worker k of thread i beats at phase (k * T + i) / N of the period:
     * the N workers spread evenly over it. */
    for (long round = 0; !atomic_load(&stop); round++)
        for (int k = 0; k < t->nw && !atomic_load(&stop); k++) {
            double phase = (double)(k * cfg.threads + t->index) / (double)cfg.workers;
            sim_sleep_until(t_start + ((double)round + phase) * period);
            sim_tick(t, t->w[k]);
        }
    return NULL;
}

/* ---- main */

static int sim_args(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_cluster: %s needs a value\n", k);
            return -1;
        }
        if (!strcmp(k, "--workers"))
            cfg.workers = atoi(v);
        else if (!strcmp(k, "--jobs"))
            cfg.jobs = atoi(v);
        else if (!strcmp(k, "--threads"))
            cfg.threads = atoi(v);
        else if (!strcmp(k, "--steps"))
            cfg.steps = atoi(v);
        else if (!strcmp(k, "--heartbeat-ms"))
            cfg.heartbeat_ms = atoi(v);
        else if (!strcmp(k, "--idle-seconds"))
            cfg.idle_s = atof(v);
        else if (!strcmp(k, "--timeout"))
            cfg.timeout_s = atof(v);
        else if (!strcmp(k, "--e2d"))
            cfg.e2d = v;
        else {
            fprintf(stderr,
                    "bench_cluster: unknown flag %s (see the usage "
                    "at the top of bench_cluster.c)\n",
                    k);
            return -1;
        }
        i++;
    }
    if (cfg.workers < 8 || cfg.jobs < 1 || cfg.threads < 1 || cfg.threads > cfg.workers ||
        cfg.steps < 1 || cfg.heartbeat_ms < 10) {
        fprintf(stderr, "bench_cluster: --workers must be >= 8 (the largest "
                        "gang), --jobs, --threads (<= workers) and --steps >= 1, "
                        "--heartbeat-ms >= 10\n");
        return -1;
    }
    return 0;
}

static void sim_cpu_line(const char *what, double cpu, double wall, long beats) {
    printf("e2d CPU (%s): %.2f s over %.1f s = %.1f %% of one core", what, cpu, wall,
           wall > 0 ? 100.0 * cpu / wall : 0.0);
    if (beats > 0)
        printf("; %ld heartbeats, %.0f us of e2d CPU per heartbeat "
               "(all calls counted)",
               beats, cpu * 1e6 / (double)beats);
    printf("\n");
}

int main(int argc, char **argv) {
    char dir[] = "/tmp/bench_cluster_XXXXXX", addr[256], err[256];
    sim_worker *workers;
    sim_thread *th;
    pthread_t *tid;
    pthread_t sub[4];
    long sub_errors[4] = { 0 };
    sim_lat hb = { 0 }, s2s = { 0 }, run = { 0 };
    double t0, t_sub, cpu0, cpu_mid0 = -1, cpu_mid1 = -1, tm0 = 0, tm1 = 0;
    double cpu_end, t_end, cpu_idle0, t_idle0;
    long beats0, beats_mid0 = 0, beats_mid1 = 0, beats_end, calls = 0, errors = 0;
    int succeeded = 0, listed, status = 0, listed_mid = 0;
    pid_t pid;

    if (sim_args(argc, argv) < 0) return 2;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int g = 0; g < 4; g++)
        if (!(specs[g] = sim_spec(sim_gangs[g]))) return 1;
    for (int i = 0; i < cfg.jobs; i++) total_ranks += sim_gangs[i % 4];
    printf("bench_cluster: e2d %s, state dir under /tmp, unix socket, "
           "%ld CPUs online\n",
           cfg.e2d, sysconf(_SC_NPROCESSORS_ONLN));
    printf("config: %d workers (device cpu) on %d threads, heartbeat every "
           "%d ms; %d jobs, gang sizes 1/2/4/8 in turn (%ld ranks), %d steps "
           "each (one step per heartbeat), one checkpoint per rank at the "
           "last step\n",
           cfg.workers, cfg.threads, cfg.heartbeat_ms, cfg.jobs, total_ranks, cfg.steps);
    fflush(stdout);
    if ((pid = sim_daemon(dir, addr, sizeof addr)) < 0) return 1;
    if (!(client = e2_rpc_client_new(addr, err, sizeof err))) {
        fprintf(stderr, "bench_cluster: %s\n", err);
        kill(pid, SIGKILL);
        return 1;
    }

    /* The queue. */
    t0 = sim_now();
    for (int i = 0; i < 4; i++) pthread_create(&sub[i], NULL, sim_submit_thread, &sub_errors[i]);
    for (int i = 0; i < 4; i++) {
        pthread_join(sub[i], NULL);
        errors += sub_errors[i];
    }
    t_sub = sim_now() - t0;
    printf("submitted %d jobs in %.1f s (%.0f jobs/s, 4 client threads, "
           "%ld errors)\n",
           cfg.jobs, t_sub, cfg.jobs / t_sub, errors);
    sim_list_figure("queue stored, no workers", 100);
    sim_list_figure("queue stored, no workers", 1000);
    fflush(stdout);

    /* The workers. */
    workers = calloc((size_t)cfg.workers, sizeof *workers);
    th = calloc((size_t)cfg.threads, sizeof *th);
    tid = calloc((size_t)cfg.threads, sizeof *tid);
    if (!workers || !th || !tid) return 1;
    workers_base = workers;
    for (int i = 0; i < cfg.threads; i++) {
        th[i].index = i;
        th[i].w = calloc((size_t)cfg.workers / (size_t)cfg.threads + 1, sizeof *th[i].w);
    }
    for (int i = 0; i < cfg.workers; i++) {
        sim_thread *t = &th[i % cfg.threads];
        t->w[t->nw++] = &workers[i];
    }
    cpu0 = sim_cpu_s(pid);
    beats0 = atomic_load(&heartbeats);
    t_start = sim_now();
    for (int i = 0; i < cfg.threads; i++) pthread_create(&tid[i], NULL, sim_worker_thread, &th[i]);
    /* Each worker registers at its first turn and heartbeats from then on
     * (registering all first would leave the early ones silent). */
    while (atomic_load(&registered) < cfg.workers && sim_now() - t_start < cfg.timeout_s)
        usleep(20000);
    printf("registered %d workers in %.2f s (each at its first turn)\n", atomic_load(&registered),
           sim_now() - t_start);

    /* Until every rank reported done (or the timeout). */
    for (;;) {
        long done = atomic_load(&ranks_done);
        double now = sim_now();
        if (cpu_mid0 < 0 && done >= total_ranks / 4) {
            cpu_mid0 = sim_cpu_s(pid);
            tm0 = now;
            beats_mid0 = atomic_load(&heartbeats);
        }
        if (cpu_mid1 < 0 && done >= 3 * total_ranks / 4) {
            cpu_mid1 = sim_cpu_s(pid);
            tm1 = now;
            beats_mid1 = atomic_load(&heartbeats);
        }
        if (!listed_mid && done >= total_ranks / 2) {
            listed_mid = 1;
            sim_list_figure("during the run, half the ranks done", 100);
            sim_list_figure("during the run, half the ranks done", 1000);
            fflush(stdout);
        }
        /* Every job's rank 0 succeeded (restarted attempts included);
         * ListJobs below checks that every job ended SUCCEEDED. */
        if (atomic_load(&jobs_rank0_done) >= cfg.jobs) break;
        if (now - t_start > cfg.timeout_s) {
            printf("TIMEOUT after %.0f s: %ld of %ld ranks done\n", now - t_start, done,
                   total_ranks);
            status = 1;
            break;
        }
        usleep(100000);
    }
    cpu_end = sim_cpu_s(pid);
    t_end = sim_now();
    beats_end = atomic_load(&heartbeats);
    printf("run: %ld ranks done, %ld failed or aborted, %.1f s wall "
           "(%.1f jobs/s)\n",
           atomic_load(&ranks_done), atomic_load(&ranks_failed), t_end - t_start,
           cfg.jobs / (t_end - t_start));
    sim_cpu_line("whole run", cpu_end - cpu0, t_end - t_start, beats_end - beats0);
    if (cpu_mid1 >= 0)
        sim_cpu_line("middle half of the run", cpu_mid1 - cpu_mid0, tm1 - tm0,
                     beats_mid1 - beats_mid0);

    /* The same workers, idle: heartbeats only. */
    cpu_idle0 = sim_cpu_s(pid);
    t_idle0 = sim_now();
    beats0 = atomic_load(&heartbeats);
    sim_sleep_until(t_idle0 + cfg.idle_s);
    sim_cpu_line("all workers idle", sim_cpu_s(pid) - cpu_idle0, sim_now() - t_idle0,
                 atomic_load(&heartbeats) - beats0);
    printf("e2d memory: VmRSS %ld KiB, VmHWM (peak) %ld KiB\n", sim_status_kb(pid, "VmRSS:"),
           sim_status_kb(pid, "VmHWM:"));

    atomic_store(&stop, 1);
    for (int i = 0; i < cfg.threads; i++) {
        pthread_join(tid[i], NULL);
        for (size_t k = 0; k < th[i].hb.n; k++) sim_lat_add(&hb, th[i].hb.v[k]);
        calls += th[i].calls;
        errors += th[i].errors;
        free(th[i].hb.v);
        free(th[i].w);
    }
    printf("worker calls: %ld (%ld errors); heartbeat latency over %zu "
           "heartbeats: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           calls, errors, hb.n, sim_pct(hb.v, hb.n, 0.5) * 1e3, sim_pct(hb.v, hb.n, 0.99) * 1e3,
           sim_pct(hb.v, hb.n, 1.0) * 1e3);

    listed = sim_list_all(&succeeded, &s2s, &run);
    printf("jobs: %d listed, %d SUCCEEDED\n", listed, succeeded);
    printf("submit-to-start latency (e2d's created/started times, the queue "
           "wait included): p50 %.1f s, p99 %.1f s over %zu jobs\n",
           sim_pct(s2s.v, s2s.n, 0.5), sim_pct(s2s.v, s2s.n, 0.99), s2s.n);
    printf("start-to-finish: p50 %.2f s, p99 %.2f s\n", sim_pct(run.v, run.n, 0.5),
           sim_pct(run.v, run.n, 0.99));
    if (listed != cfg.jobs || succeeded != cfg.jobs) status = 1;
    e2_rpc_client_free(client);
    if (sim_daemon_stop(pid, dir) != 0) status = 1;
    printf("result: %s\n", status ? "NOT every job SUCCEEDED" : "every job SUCCEEDED");
    free(hb.v);
    free(s2s.v);
    free(run.v);
    free(workers);
    free(th);
    free(tid);
    for (int g = 0; g < 4; g++) e2_spec_free(specs[g]);
    return status;
}
