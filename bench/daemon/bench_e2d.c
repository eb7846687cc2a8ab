/* bench_e2d.c -- e2d round trips per second, latency, e2d CPU per call and
 * memory, on loopback.
 *
 * Starts the real e2d on a temporary state dir (unix socket), stores
 * --jobs jobs through it (1 000 by default; e2d's VmRSS from /proc before
 * and after), then for each client thread count of --threads (1, 8 and 32
 * by default) measures GetJob (each call names the next of the stored
 * jobs), idle worker Heartbeat and SubmitJob: calls per second, p50 and
 * p99 latency, and e2d's CPU time per call (utime + stime of the e2d
 * process from /proc/PID/stat, which survives a loaded machine better
 * than calls per second). Each client thread has its own e2_rpc_client
 * (connection), as separate processes would; each heartbeating thread is
 * one registered worker. SubmitJob is durable (SQLite WAL,
 * synchronous=FULL; concurrent submits share a commit), so its rate is
 * bounded by fsync; it runs last so that the other figures see exactly
 * --jobs jobs. Prints the configuration and the figures; asserts nothing.
 *
 * usage: bench_e2d [--seconds S] [--e2d PATH] [--threads 1,8,32]
 *                  [--jobs N] [--calls get,heartbeat,submit] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2/v1/coordinator.pb-c.h"
#include "e2/v1/worker.pb-c.h"
#include "rpc.h"
#include "spec.h"

#define BENCH_MAX_THREADS 64

static const char bench_spec_json[] =
    "{\"name\":\"bench\",\"num_workers\":1,"
    "\"model\":{\"config\":{\"hidden_size\":32,\"num_hidden_layers\":1,"
    "\"num_attention_heads\":2,\"intermediate_size\":64,\"vocab_size\":256,"
    "\"max_position_embeddings\":64}},"
    "\"data\":{\"train_shards\":[\"/data/train_*.bin\"]},"
    "\"augment\":{\"train_length\":64},\"train\":{\"steps\":10,"
    "\"global_batch\":4},\"eval\":{\"windows\":[64]}}";

enum { BENCH_GET, BENCH_SUBMIT, BENCH_HEARTBEAT, BENCH_REGISTER };
static const char *bench_names[] = { "GetJob", "SubmitJob", "Heartbeat" };

typedef struct bench_ctx {
    e2_rpc_client *client;
    E2__V1__JobSpec *spec;
    char **jobs; /* GetJob targets, taken in turn from `next` */
    int njobs, next;
    int kind;        /* BENCH_* */
    char worker[32]; /* Heartbeat: this thread's worker id */
    char secret[80]; /* and its worker secret */
    double seconds;
    long calls, errors;
    double *lat; /* seconds per call */
    size_t nlat, caplat;
} bench_ctx;

static double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_call(bench_ctx *c, char **id_out) {
    char msg[256];
    ProtobufCMessage *resp = NULL;
    int rc;
    if (c->kind == BENCH_HEARTBEAT) {
        E2__V1__HeartbeatRequest req = E2__V1__HEARTBEAT_REQUEST__INIT;
        req.worker_id = c->worker;
        req.worker_secret = c->secret;
        req.has_state = 1;
        req.state = E2__V1__WORKER_STATE__WORKER_STATE_IDLE;
        rc = e2_rpc_client_call(c->client, "/e2.v1.WorkerControl/Heartbeat", &req.base,
                                &e2__v1__heartbeat_response__descriptor, &resp, 10000, msg,
                                sizeof msg);
    } else if (c->kind == BENCH_REGISTER) {
        E2__V1__RegisterWorkerRequest req = E2__V1__REGISTER_WORKER_REQUEST__INIT;
        req.hostname = "bench";
        req.device = "cuda"; /* no cpu job is ever given to it */
        rc = e2_rpc_client_call(c->client, "/e2.v1.WorkerControl/RegisterWorker", &req.base,
                                &e2__v1__register_worker_response__descriptor, &resp, 10000, msg,
                                sizeof msg);
        if (rc == E2_RPC_OK) {
            const E2__V1__RegisterWorkerResponse *r = (const void *)resp;
            snprintf(c->worker, sizeof c->worker, "%s", r->worker_id);
            snprintf(c->secret, sizeof c->secret, "%s", r->worker_secret ? r->worker_secret : "");
        }
    } else if (c->kind == BENCH_SUBMIT) {
        E2__V1__SubmitJobRequest req = E2__V1__SUBMIT_JOB_REQUEST__INIT;
        req.spec = c->spec;
        rc = e2_rpc_client_call(c->client, "/e2.v1.Coordinator/SubmitJob", &req.base,
                                &e2__v1__submit_job_response__descriptor, &resp, 10000, msg,
                                sizeof msg);
        if (rc == E2_RPC_OK && id_out)
            *id_out = strdup(((E2__V1__SubmitJobResponse *)resp)->job->id);
    } else {
        E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
        req.id = c->jobs[c->next];
        c->next = (c->next + 1) % c->njobs;
        rc = e2_rpc_client_call(c->client, "/e2.v1.Coordinator/GetJob", &req.base,
                                &e2__v1__get_job_response__descriptor, &resp, 10000, msg,
                                sizeof msg);
    }
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    if (rc != E2_RPC_OK)
        fprintf(stderr, "bench: call failed: %s: %s\n", e2_rpc_status_name(rc), msg);
    return rc;
}

static void *bench_thread(void *arg) {
    bench_ctx *c = arg;
    double end = bench_now() + c->seconds;
    while (bench_now() < end) {
        double t0 = bench_now();
        if (bench_call(c, NULL) != E2_RPC_OK) c->errors++;
        if (c->nlat == c->caplat) {
            size_t cap = c->caplat ? 2 * c->caplat : 4096;
            double *v = realloc(c->lat, cap * sizeof *v);
            if (!v) break;
            c->lat = v;
            c->caplat = cap;
        }
        c->lat[c->nlat++] = bench_now() - t0;
        c->calls++;
    }
    return NULL;
}

static int bench_cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* e2d's CPU seconds so far (utime + stime), or -1. */
static double bench_cpu_s(pid_t pid) {
    char p[64], buf[1024], *s;
    unsigned long ut = 0, st = 0;
    FILE *f;
    size_t n;
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    if (!(f = fopen(p, "r"))) return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields 14 and 15, counted after the ")" that ends the name. */
    if (!(s = strrchr(buf, ')')) ||
        sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static void bench_run(const char *addr, pid_t pid, E2__V1__JobSpec *spec, char **jobs, int njobs,
                      int kind, int threads, double secs) {
    static bench_ctx ctx[BENCH_MAX_THREADS];
    pthread_t th[BENCH_MAX_THREADS];
    char err[256];
    long calls = 0, errors = 0;
    double *lat = NULL, t0, dt, cpu0, cpu1, p50 = 0, p99 = 0;
    size_t nlat = 0;
    for (int i = 0; i < threads; i++) {
        ctx[i] = (bench_ctx){ .spec = spec, .jobs = jobs, .njobs = njobs, .kind = kind };
        ctx[i].seconds = secs;
        ctx[i].next = (int)((long)i * njobs / threads);
        if (!(ctx[i].client = e2_rpc_client_new(addr, err, sizeof err))) {
            fprintf(stderr, "bench: %s\n", err);
            exit(1);
        }
        if (kind == BENCH_HEARTBEAT) {
            ctx[i].kind = BENCH_REGISTER;
            bench_call(&ctx[i], NULL);
            ctx[i].kind = kind;
        }
    }
    cpu0 = bench_cpu_s(pid);
    t0 = bench_now();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, bench_thread, &ctx[i]);
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        calls += ctx[i].calls;
        errors += ctx[i].errors;
    }
    dt = bench_now() - t0;
    cpu1 = bench_cpu_s(pid);
    for (int i = 0; i < threads; i++) nlat += ctx[i].nlat;
    if (nlat && (lat = malloc(nlat * sizeof *lat))) {
        size_t off = 0;
        for (int i = 0; i < threads; i++) {
            memcpy(lat + off, ctx[i].lat, ctx[i].nlat * sizeof *lat);
            off += ctx[i].nlat;
        }
        qsort(lat, nlat, sizeof *lat, bench_cmp);
        p50 = lat[nlat / 2];
        p99 = lat[(size_t)((double)(nlat - 1) * 0.99)];
    }
    printf("%-9s threads=%-2d calls=%-7ld errors=%-3ld %8.0f calls/s  p50 %7.3f ms  "
           "p99 %7.3f ms  e2d CPU %6.1f us/call (%.2f s)\n",
           bench_names[kind], threads, calls, errors, (double)calls / dt, p50 * 1e3, p99 * 1e3,
           calls && cpu0 >= 0 ? (cpu1 - cpu0) / (double)calls * 1e6 : 0.0, cpu1 - cpu0);
    fflush(stdout);
    free(lat);
    for (int i = 0; i < threads; i++) {
        free(ctx[i].lat);
        e2_rpc_client_free(ctx[i].client);
    }
}

static long bench_rss_kb(pid_t pid) {
    char p[64], line[256];
    long kb = -1;
    FILE *f;
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    if (!(f = fopen(p, "r"))) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

/* Starts e2d on a new temporary state dir; fills dir and addr. */
static pid_t bench_daemon(const char *e2d, char *dir, char *addr, size_t n) {
    char sock[160];
    pid_t pid;
    if (!mkdtemp(dir)) {
        perror("bench: mkdtemp");
        return -1;
    }
    snprintf(sock, sizeof sock, "%s/e2d.sock", dir);
    snprintf(addr, n, "unix:%s", sock);
    if ((pid = fork()) == 0) {
        if (!freopen("/dev/null", "w", stderr)) _exit(127);
        execl(e2d, "e2d", "--state-dir", dir, (char *)NULL);
        _exit(127);
    }
    /* gRPC binds (the socket file appears) some time before it listens:
     * wait until a connect succeeds, or the first calls are refused. */
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t socklen = strlen(sock);
    if (socklen < sizeof sa.sun_path) memcpy(sa.sun_path, sock, socklen + 1);
    for (int i = 0; i < 200; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0), ok = 0;
        if (fd >= 0) {
            ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
            close(fd);
        }
        if (ok) break;
        usleep(50000);
    }
    return pid;
}

static void bench_daemon_stop(pid_t pid, const char *dir) {
    char cmd[256];
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench: could not remove %s\n", dir);
}

typedef struct bench_fill {
    bench_ctx c;
    char **ids;
    int n;
} bench_fill;

static void *bench_fill_thread(void *arg) {
    bench_fill *f = arg;
    for (int i = 0; i < f->n; i++)
        if (bench_call(&f->c, &f->ids[i]) != E2_RPC_OK) f->c.errors++;
    return NULL;
}

int main(int argc, char **argv) {
    char dir[] = "/tmp/bench_e2d_XXXXXX";
    char addr[200], err[256], threads_arg[128] = "1,8,32", calls_arg[128] = "get,heartbeat,submit";
    const char *e2d = E2D_PATH;
    double secs = 3;
    int nthreads = 0, threads[16], njobs = 1000, stored = 0;
    e2_rpc_client *client;
    E2__V1__JobSpec *spec;
    bench_fill fill[8];
    pthread_t th[8];
    char **jobs;
    long rss0;
    pid_t pid;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--e2d"))
            e2d = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            snprintf(threads_arg, sizeof threads_arg, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--calls"))
            snprintf(calls_arg, sizeof calls_arg, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--jobs"))
            njobs = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "bench: unknown flag %s (see the usage at the top of bench_e2d.c)\n",
                    argv[i]);
            return 2;
        }
    }
    for (char *t = strtok(threads_arg, ","); t && nthreads < 16; t = strtok(NULL, ",")) {
        threads[nthreads] = atoi(t);
        if (threads[nthreads] < 1 || threads[nthreads] > BENCH_MAX_THREADS) {
            fprintf(stderr, "bench: --threads: %s is not in 1..%d\n", t, BENCH_MAX_THREADS);
            return 2;
        }
        nthreads++;
    }
    if (njobs < 8) {
        fprintf(stderr, "bench: --jobs must be at least 8\n");
        return 2;
    }
    if (!(spec = e2_spec_parse(bench_spec_json, strlen(bench_spec_json), err, sizeof err))) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    if (!(jobs = calloc((size_t)njobs, sizeof *jobs))) return 1;
    if ((pid = bench_daemon(e2d, dir, addr, sizeof addr)) < 0) return 1;
    if (!(client = e2_rpc_client_new(addr, err, sizeof err))) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    printf("e2d bench: %s, state dir under /tmp, unix socket, %.1f s per figure, "
           "%d stored jobs (GetJob names each in turn), client threads",
           e2d, secs, njobs);
    for (int t = 0; t < nthreads; t++) printf("%s%d", t ? "," : " ", threads[t]);
    printf(" (one connection each), calls %s, %ld CPUs\n", calls_arg,
           sysconf(_SC_NPROCESSORS_ONLN));
    /* The store: exactly njobs jobs, submitted by 8 threads. */
    rss0 = bench_rss_kb(pid);
    for (int i = 0; i < 8; i++) {
        int from = i * njobs / 8, to = (i + 1) * njobs / 8;
        fill[i] = (bench_fill){ { .client = client, .spec = spec, .kind = BENCH_SUBMIT },
                                jobs + from,
                                to - from };
        pthread_create(&th[i], NULL, bench_fill_thread, &fill[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < njobs; i++) stored += jobs[i] != NULL;
    if (stored != njobs) {
        fprintf(stderr, "bench: only %d of %d jobs were stored\n", stored, njobs);
        kill(pid, SIGKILL);
        return 1;
    }
    printf("e2d VmRSS: %ld KiB at start, %ld KiB with %d stored jobs\n", rss0, bench_rss_kb(pid),
           njobs);
    e2_rpc_client_free(client);
    if (strstr(calls_arg, "get"))
        for (int t = 0; t < nthreads; t++)
            bench_run(addr, pid, spec, jobs, njobs, BENCH_GET, threads[t], secs);
    if (strstr(calls_arg, "heartbeat"))
        for (int t = 0; t < nthreads; t++)
            bench_run(addr, pid, spec, jobs, njobs, BENCH_HEARTBEAT, threads[t], secs);
    if (strstr(calls_arg, "submit"))
        for (int t = 0; t < nthreads; t++)
            bench_run(addr, pid, spec, jobs, njobs, BENCH_SUBMIT, threads[t], secs);
    bench_daemon_stop(pid, dir);
    e2_spec_free(spec);
    for (int i = 0; i < njobs; i++) free(jobs[i]);
    free(jobs);
    return 0;
}
