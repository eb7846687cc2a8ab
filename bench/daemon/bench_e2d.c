/* bench_e2d.c -- e2d round trips per second and memory, on loopback.
 *
 * Starts the real e2d on a temporary state dir (unix socket), then for 1
 * and 8 client threads measures SubmitJob, GetJob and (idle) worker
 * Heartbeat round trips per second (each thread its own blocking calls
 * over one shared e2_rpc_client; each heartbeating thread is one registered
 * worker), and finally e2d's resident memory (VmRSS from /proc) with
 * 1 000 stored jobs on a fresh e2d. SubmitJob is durable (SQLite WAL,
 * synchronous=FULL; concurrent submits share a commit), so its rate is
 * bounded by fsync. Prints the configuration and the figures; asserts
 * nothing.
 *
 * usage: bench_e2d [--seconds S] [--e2d PATH] */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2/v1/coordinator.pb-c.h"
#include "e2/v1/worker.pb-c.h"
#include "rpc.h"
#include "spec.h"

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
    const char *job_id; /* GetJob target */
    int kind;           /* BENCH_* */
    char worker[32];    /* Heartbeat: this thread's worker id */
    char secret[80];    /* and its worker secret */
    double seconds;
    long calls, errors;
    double lat_sum; /* seconds */
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
        req.id = (char *)c->job_id;
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
        c->lat_sum += bench_now() - t0;
        c->calls++;
    }
    return NULL;
}

static void bench_run(e2_rpc_client *client, E2__V1__JobSpec *spec, const char *job, int kind,
                      int threads, double secs) {
    bench_ctx ctx[8];
    pthread_t th[8];
    long calls = 0, errors = 0;
    double lat = 0, t0 = bench_now(), dt;
    for (int i = 0; i < threads; i++) {
        ctx[i] = (bench_ctx){ client, spec, job, kind, "", "", secs, 0, 0, 0 };
        if (kind == BENCH_HEARTBEAT) {
            ctx[i].kind = BENCH_REGISTER;
            bench_call(&ctx[i], NULL);
            ctx[i].kind = kind;
        }
    }
    for (int i = 0; i < threads; i++) {
        pthread_create(&th[i], NULL, bench_thread, &ctx[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        calls += ctx[i].calls;
        errors += ctx[i].errors;
        lat += ctx[i].lat_sum;
    }
    dt = bench_now() - t0;
    printf("%-9s threads=%d  calls=%-7ld errors=%-3ld  %8.0f calls/s  "
           "mean latency %7.3f ms\n",
           bench_names[kind], threads, calls, errors, (double)calls / dt,
           calls ? lat / (double)calls * 1e3 : 0.0);
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
    for (int i = 0; i < 200 && access(sock, F_OK) < 0; i++) usleep(50000);
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
    int n;
} bench_fill;

static void *bench_fill_thread(void *arg) {
    bench_fill *f = arg;
    for (int i = 0; i < f->n; i++)
        if (bench_call(&f->c, NULL) != E2_RPC_OK) f->c.errors++;
    return NULL;
}

int main(int argc, char **argv) {
    char dir[] = "/tmp/bench_e2d_XXXXXX", dir2[] = "/tmp/bench_e2d_XXXXXX";
    char addr[200], err[256];
    const char *e2d = E2D_PATH;
    double secs = 3;
    e2_rpc_client *client;
    E2__V1__JobSpec *spec;
    bench_ctx one;
    bench_fill fill[8];
    pthread_t th[8];
    char *job = NULL;
    long rss0;
    pid_t pid;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            secs = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--e2d"))
            e2d = argv[i + 1];
    }
    if (!(spec = e2_spec_parse(bench_spec_json, strlen(bench_spec_json), err, sizeof err))) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    if ((pid = bench_daemon(e2d, dir, addr, sizeof addr)) < 0) return 1;
    if (!(client = e2_rpc_client_new(addr, err, sizeof err))) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    printf("e2d bench: %s, state dir under /tmp, unix socket, %.1f s per "
           "figure, %ld CPUs\n",
           e2d, secs, sysconf(_SC_NPROCESSORS_ONLN));
    one = (bench_ctx){ client, spec, NULL, BENCH_SUBMIT, "", "", 0, 0, 0, 0 };
    if (bench_call(&one, &job) != E2_RPC_OK) {
        kill(pid, SIGKILL);
        return 1;
    }
    bench_run(client, spec, job, BENCH_SUBMIT, 1, secs);
    bench_run(client, spec, job, BENCH_SUBMIT, 8, secs);
    bench_run(client, spec, job, BENCH_GET, 1, secs);
    bench_run(client, spec, job, BENCH_GET, 8, secs);
    bench_run(client, spec, job, BENCH_HEARTBEAT, 1, secs);
    bench_run(client, spec, job, BENCH_HEARTBEAT, 8, secs);
    e2_rpc_client_free(client);
    bench_daemon_stop(pid, dir);

    /* Memory: a fresh e2d, exactly 1 000 jobs stored through it. */
    if ((pid = bench_daemon(e2d, dir2, addr, sizeof addr)) < 0 ||
        !(client = e2_rpc_client_new(addr, err, sizeof err)))
        return 1;
    rss0 = bench_rss_kb(pid);
    for (int i = 0; i < 8; i++) {
        fill[i] = (bench_fill){ { client, spec, NULL, BENCH_SUBMIT, "", "", 0, 0, 0, 0 }, 125 };
        pthread_create(&th[i], NULL, bench_fill_thread, &fill[i]);
    }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    printf("e2d VmRSS: %ld KiB at start, %ld KiB with 1000 stored jobs\n", rss0, bench_rss_kb(pid));
    e2_rpc_client_free(client);
    bench_daemon_stop(pid, dir2);
    e2_spec_free(spec);
    free(job);
    return 0;
}
