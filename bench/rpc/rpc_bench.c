/* rpc_bench.c: unary round trips per second through e2_rpc on loopback,
 * against a trivial handler on the server's libuv loop (the path every e2d
 * RPC takes: completion-queue thread -> uv_async -> loop -> reply), with 1
 * and 8 client threads, over a unix socket and over 127.0.0.1 TCP. Each
 * client thread has its own e2_rpc_client (as separate e2ctl/e2worker
 * processes would). Prints the configuration and the figures; asserts
 * nothing.
 *
 * Usage: rpc_bench [seconds per configuration, default 2] */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2/v1/coordinator.pb-c.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t thread;
    e2_rpc_server *srv;
} server;

static void handle_get_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__GetJobRequest *req = (const E2__V1__GetJobRequest *)request;
    E2__V1__Job job = E2__V1__JOB__INIT;
    E2__V1__GetJobResponse resp = E2__V1__GET_JOB_RESPONSE__INIT;
    job.id = req->id;
    job.has_state = 1;
    job.state = E2__V1__JOB_STATE__JOB_STATE_RUNNING;
    resp.job = &job;
    e2_rpc_call_reply(call, &resp.base);
}

static void on_shut_down(e2_rpc_server *srv) {
    server *s = e2_rpc_server_data(srv);
    uv_close((uv_handle_t *)&s->stop, NULL);
}

static void on_stop(uv_async_t *a) {
    server *s = a->data;
    e2_rpc_server_shutdown(s->srv, 100, on_shut_down);
}

static void run_loop(void *arg) {
    uv_run(&((server *)arg)->loop, UV_RUN_DEFAULT);
}

static const e2_rpc_method methods[] = { { "GetJob", E2_RPC_UNARY, handle_get_job, NULL, 0 } };

static int server_start(server *s, const char *listen, int *port) {
    char err[256];
    uv_loop_init(&s->loop);
    s->srv = e2_rpc_server_new(&s->loop, s);
    if (e2_rpc_server_add_service(s->srv, &e2__v1__coordinator__descriptor, methods, 1, err,
                                  sizeof err) != 0 ||
        e2_rpc_server_listen(s->srv, listen, NULL, port, err, sizeof err) != 0 ||
        e2_rpc_server_start(s->srv, err, sizeof err) != 0) {
        fprintf(stderr, "rpc_bench: %s\n", err);
        return -1;
    }
    uv_async_init(&s->loop, &s->stop, on_stop);
    s->stop.data = s;
    uv_thread_create(&s->thread, run_loop, s);
    return 0;
}

static void server_stop(server *s) {
    uv_async_send(&s->stop);
    uv_thread_join(&s->thread);
    e2_rpc_server_free(s->srv);
    uv_loop_close(&s->loop);
}

typedef struct {
    const char *target;
    double seconds;
    long calls, errors;
    double *lat; /* seconds per call, first cap_lat calls */
    long cap_lat;
} client_job;

static void client_thread(void *arg) {
    client_job *j = arg;
    e2_rpc_client *c = e2_rpc_client_new(j->target, NULL, 0);
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    req.id = "j-000042";
    char msg[128];
    double end = now_s() + j->seconds;
    for (;;) {
        double t0 = now_s();
        if (t0 >= end) break;
        ProtobufCMessage *resp = NULL;
        int code =
            e2_rpc_client_call(c, "/e2.v1.Coordinator/GetJob", &req.base,
                               &e2__v1__get_job_response__descriptor, &resp, 5000, msg, sizeof msg);
        double dt = now_s() - t0;
        if (code == E2_RPC_OK) {
            protobuf_c_message_free_unpacked(resp, NULL);
            if (j->calls < j->cap_lat) j->lat[j->calls] = dt;
            j->calls++;
        } else {
            j->errors++;
        }
    }
    e2_rpc_client_free(c);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void bench(const char *transport, const char *target, int threads, double seconds) {
    client_job *jobs = calloc((size_t)threads, sizeof *jobs);
    uv_thread_t *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; i < threads; i++) {
        jobs[i].target = target;
        jobs[i].seconds = seconds;
        jobs[i].cap_lat = 1000000;
        jobs[i].lat = malloc((size_t)jobs[i].cap_lat * sizeof(double));
    }
    double t0 = now_s();
    for (int i = 0; i < threads; i++) uv_thread_create(&t[i], client_thread, &jobs[i]);
    long calls = 0, errors = 0, n_lat = 0;
    for (int i = 0; i < threads; i++) {
        uv_thread_join(&t[i]);
        calls += jobs[i].calls;
        errors += jobs[i].errors;
    }
    double elapsed = now_s() - t0;
    double *lat = malloc((size_t)(calls > 0 ? calls : 1) * sizeof *lat);
    for (int i = 0; i < threads; i++) {
        long n = jobs[i].calls < jobs[i].cap_lat ? jobs[i].calls : jobs[i].cap_lat;
        memcpy(lat + n_lat, jobs[i].lat, (size_t)n * sizeof *lat);
        n_lat += n;
        free(jobs[i].lat);
    }
    qsort(lat, (size_t)n_lat, sizeof *lat, cmp_double);
    double p50 = n_lat ? lat[n_lat / 2] : 0, p99 = n_lat ? lat[(long)(n_lat * 0.99)] : 0;
    printf("%-5s %7d %10ld %8ld %12.0f %10.0f %10.0f\n", transport, threads, calls, errors,
           calls / elapsed, p50 * 1e6, p99 * 1e6);
    fflush(stdout);
    free(lat);
    free(jobs);
    free(t);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 2.0;
    if (!(seconds > 0)) {
        fprintf(stderr, "usage: rpc_bench [seconds per configuration]\n");
        return 2;
    }
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    printf("rpc_bench: unary GetJob round trips, trivial handler on the server's libuv loop\n");
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    req.id = "j-000042";
    printf("config: %.1f s per row, %ld CPUs online, request %zu bytes, one e2_rpc_client per "
           "thread\n",
           seconds, cpus, protobuf_c_message_get_packed_size(&req.base));
    printf("%-5s %7s %10s %8s %12s %10s %10s\n", "via", "threads", "calls", "errors", "calls/s",
           "p50_us", "p99_us");
    char dir[] = "/tmp/e2-rpc-bench-XXXXXX", addr[128], target[128];
    if (mkdtemp(dir) == NULL) return 1;
    snprintf(addr, sizeof addr, "unix:%s/b.sock", dir);
    server s;
    int port = 0;
    if (server_start(&s, addr, &port) != 0) return 1;
    bench("unix", addr, 1, seconds);
    bench("unix", addr, 8, seconds);
    server_stop(&s);
    char sock[128];
    snprintf(sock, sizeof sock, "%s/b.sock", dir);
    unlink(sock);
    rmdir(dir);

    if (server_start(&s, "127.0.0.1:0", &port) != 0) return 1;
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    bench("tcp", target, 1, seconds);
    bench("tcp", target, 8, seconds);
    server_stop(&s);
    return 0;
}
