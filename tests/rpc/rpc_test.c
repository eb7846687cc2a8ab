/* rpc_test.c: behaviour of e2_rpc over real sockets (a unix socket in a
 * temp dir, and 127.0.0.1 with an ephemeral port). A test server serves
 * two e2.v1.Coordinator methods on its own libuv loop thread:
 *   GetJob   id "x"      -> job.id = "x", reason = authorization metadata,
 *                           job_dir = peer, eta_seconds = deadline ms left
 *            id "later"  -> answered 50 ms later from a timer
 *            id "slow"   -> never answered; finished when cancelled
 *   WatchJob id "n=K"    -> K JobEvents (step 1..K), then OK
 *            id "forever"-> one event, then open until cancelled
 * Usage: rpc_test [case]; no argument runs every case. */
#include "rpc.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "e2/v1/coordinator.pb-c.h"

#include "../expect.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ test server */

typedef struct {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t stop;
    e2_rpc_server *srv;
    uint64_t grace_ms;
    char addr[300];
    char dir[64];
    int port;
    atomic_int cancels;   /* cancel callbacks seen */
    atomic_int shut_down; /* shutdown callback ran */
    atomic_int later;     /* "later" calls received */
} harness;

static void on_cancel_finish(e2_rpc_call *call) {
    harness *h = e2_rpc_server_data(e2_rpc_call_server(call));
    atomic_fetch_add(&h->cancels, 1);
    e2_rpc_call_finish(call, E2_RPC_CANCELLED, "cancelled");
}

typedef struct {
    uv_timer_t timer;
    e2_rpc_call *call;
} later_reply;

static void reply_job(e2_rpc_call *call, const char *id) {
    E2__V1__Job job = E2__V1__JOB__INIT;
    E2__V1__GetJobResponse resp = E2__V1__GET_JOB_RESPONSE__INIT;
    const char *auth = e2_rpc_call_metadata(call, "authorization");
    job.id = (char *)id;
    job.reason = (char *)(auth != NULL ? auth : "");
    job.job_dir = (char *)e2_rpc_call_peer(call);
    job.has_eta_seconds = 1;
    job.eta_seconds = (double)e2_rpc_call_deadline_ms(call);
    resp.job = &job;
    e2_rpc_call_reply(call, &resp.base);
}

static void on_timer_closed(uv_handle_t *h) {
    free(h->data);
}

static void on_later(uv_timer_t *t) {
    later_reply *lr = t->data;
    reply_job(lr->call, "later");
    uv_close((uv_handle_t *)t, on_timer_closed);
}

static void handle_get_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__GetJobRequest *req = (const E2__V1__GetJobRequest *)request;
    const char *id = req->id != NULL ? req->id : "";
    if (strcmp(id, "slow") == 0) {
        e2_rpc_call_on_cancel(call, on_cancel_finish);
    } else if (strcmp(id, "later") == 0) {
        atomic_fetch_add(&((harness *)e2_rpc_server_data(e2_rpc_call_server(call)))->later, 1);
        later_reply *lr = calloc(1, sizeof *lr);
        lr->call = call;
        uv_timer_init(&((harness *)e2_rpc_server_data(e2_rpc_call_server(call)))->loop, &lr->timer);
        lr->timer.data = lr;
        uv_timer_start(&lr->timer, on_later, 50, 0);
    } else if (e2_rpc_call_send(call, request) != E2_RPC_EINVAL) {
        /* a unary method must refuse stream sends */
        e2_rpc_call_finish(call, E2_RPC_INTERNAL, "e2_rpc_call_send accepted a unary call");
    } else {
        reply_job(call, id);
    }
}

static void handle_watch_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__WatchJobRequest *req = (const E2__V1__WatchJobRequest *)request;
    const char *id = req->id != NULL ? req->id : "";
    E2__V1__JobEvent ev = E2__V1__JOB_EVENT__INIT;
    ev.job_id = (char *)id;
    ev.has_step = 1;
    if (strcmp(id, "forever") == 0) {
        e2_rpc_call_on_cancel(call, on_cancel_finish);
        ev.step = 1;
        e2_rpc_call_send(call, &ev.base);
        return;
    }
    int k = strncmp(id, "n=", 2) == 0 ? atoi(id + 2) : 0;
    for (int i = 1; i <= k; i++) {
        ev.step = (uint32_t)i;
        CHECK(e2_rpc_call_send(call, &ev.base) == 0);
    }
    /* the first message is in flight at once, the others wait their turn */
    if (k > 0 && e2_rpc_call_queued(call) != (size_t)k - 1)
        e2_rpc_call_finish(call, E2_RPC_INTERNAL, "unexpected e2_rpc_call_queued");
    else
        e2_rpc_call_finish(call, E2_RPC_OK, NULL);
}

static void on_shut_down(e2_rpc_server *srv) {
    harness *h = e2_rpc_server_data(srv);
    atomic_store(&h->shut_down, 1);
    uv_close((uv_handle_t *)&h->stop, NULL);
}

static void on_stop(uv_async_t *a) {
    harness *h = a->data;
    e2_rpc_server_shutdown(h->srv, h->grace_ms, on_shut_down);
}

static void loop_thread(void *arg) {
    harness *h = arg;
    uv_run(&h->loop, UV_RUN_DEFAULT);
}

static const e2_rpc_method test_methods[] = {
    { "GetJob", E2_RPC_UNARY, handle_get_job, NULL, 0 },
    { "WatchJob", E2_RPC_SERVER_STREAMING, handle_watch_job, NULL, 0 },
};

/* Start a server on "unix" (temp dir) or "tcp" (127.0.0.1:0). */
static harness *harness_start(const char *kind) {
    harness *h = calloc(1, sizeof *h);
    char err[256];
    uv_loop_init(&h->loop);
    h->srv = e2_rpc_server_new(&h->loop, h);
    if (e2_rpc_server_add_service(h->srv, &e2__v1__coordinator__descriptor, test_methods, 2, err,
                                  sizeof err) != 0) {
        fprintf(stderr, "add_service: %s\n", err);
        exit(1);
    }
    char listen[300];
    if (strcmp(kind, "unix") == 0) {
        snprintf(h->dir, sizeof h->dir, "/tmp/e2-rpc-test-XXXXXX");
        if (mkdtemp(h->dir) == NULL) exit(1);
        snprintf(listen, sizeof listen, "unix:%s/s.sock", h->dir);
    } else {
        snprintf(listen, sizeof listen, "127.0.0.1:0");
    }
    if (e2_rpc_server_listen(h->srv, listen, NULL, &h->port, err, sizeof err) != 0) {
        fprintf(stderr, "listen: %s\n", err);
        exit(1);
    }
    if (strcmp(kind, "unix") == 0)
        snprintf(h->addr, sizeof h->addr, "%s", listen);
    else
        snprintf(h->addr, sizeof h->addr, "127.0.0.1:%d", h->port);
    uv_async_init(&h->loop, &h->stop, on_stop);
    h->stop.data = h;
    if (e2_rpc_server_start(h->srv, err, sizeof err) != 0) {
        fprintf(stderr, "start: %s\n", err);
        exit(1);
    }
    uv_thread_create(&h->thread, loop_thread, h);
    return h;
}

static void harness_stop(harness *h, uint64_t grace_ms) {
    h->grace_ms = grace_ms;
    uv_async_send(&h->stop);
    uv_thread_join(&h->thread);
    CHECK(atomic_load(&h->shut_down) == 1);
    e2_rpc_server_free(h->srv);
    CHECK(uv_loop_close(&h->loop) == 0);
    if (h->dir[0] != '\0') {
        char sock[128];
        snprintf(sock, sizeof sock, "%s/s.sock", h->dir);
        unlink(sock);
        rmdir(h->dir);
    }
    free(h);
}

static int wait_for(atomic_int *v, int want, double seconds) {
    double end = now_s() + seconds;
    while (atomic_load(v) < want && now_s() < end) usleep(1000);
    return atomic_load(v) >= want;
}

/* Unary GetJob; returns the status, fills job fields into out params. */
static int get_job(e2_rpc_client *c, const char *id, int64_t timeout_ms,
                   E2__V1__GetJobResponse **out, char *msg, size_t msglen) {
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    req.id = (char *)id;
    ProtobufCMessage *resp = NULL;
    int code =
        e2_rpc_client_call(c, "/e2.v1.Coordinator/GetJob", &req.base,
                           &e2__v1__get_job_response__descriptor, &resp, timeout_ms, msg, msglen);
    *out = (E2__V1__GetJobResponse *)resp;
    return code;
}

/* ------------------------------------------------------------------ cases */

static void roundtrip(const char *kind) {
    harness *h = harness_start(kind);
    char err[256], msg[256];
    e2_rpc_client *c = e2_rpc_client_new(h->addr, err, sizeof err);
    CHECK(c != NULL);
    E2__V1__GetJobResponse *r = NULL;
    CHECK(get_job(c, "j-000042", 5000, &r, msg, sizeof msg) == E2_RPC_OK);
    CHECK(r != NULL && r->job != NULL && strcmp(r->job->id, "j-000042") == 0);
    if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

static void test_unary_roundtrip_unix(void) {
    roundtrip("unix");
}
static void test_unary_roundtrip_tcp(void) {
    roundtrip("tcp");
}

static void test_reply_later(void) {
    harness *h = harness_start("unix");
    char msg[256];
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    E2__V1__GetJobResponse *r = NULL;
    double t0 = now_s();
    CHECK(get_job(c, "later", 5000, &r, msg, sizeof msg) == E2_RPC_OK);
    CHECK(now_s() - t0 >= 0.045);
    CHECK(r != NULL && strcmp(r->job->id, "later") == 0);
    if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

static void test_server_streaming(void) {
    harness *h = harness_start("tcp");
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    E2__V1__WatchJobRequest req = E2__V1__WATCH_JOB_REQUEST__INIT;
    req.id = "n=50";
    e2_rpc_stream *s = e2_rpc_client_stream(c, "/e2.v1.Coordinator/WatchJob", &req.base,
                                            &e2__v1__job_event__descriptor, 5000);
    ProtobufCMessage *m;
    uint32_t expect = 1;
    while (e2_rpc_stream_next(s, &m) == 1) {
        E2__V1__JobEvent *ev = (E2__V1__JobEvent *)m;
        CHECK(ev->step == expect);
        expect++;
        protobuf_c_message_free_unpacked(m, NULL);
    }
    CHECK(expect == 51);
    char msg[128];
    CHECK(e2_rpc_stream_status(s, msg, sizeof msg) == E2_RPC_OK);
    e2_rpc_stream_free(s);
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

static void test_deadline_exceeded_tells_handler(void) {
    harness *h = harness_start("unix");
    char msg[256];
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    E2__V1__GetJobResponse *r = NULL;
    double t0 = now_s();
    CHECK(get_job(c, "slow", 200, &r, msg, sizeof msg) == E2_RPC_DEADLINE_EXCEEDED);
    double took = now_s() - t0;
    CHECK(took >= 0.15 && took < 3.0);
    CHECK(r == NULL);
    CHECK(wait_for(&h->cancels, 1, 3.0));
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

static void test_unknown_method_unimplemented_quickly(void) {
    harness *h = harness_start("unix");
    char msg[256];
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    const char *paths[] = { "/e2.v1.Nope/Nothing", "/e2.v1.Coordinator/ListJobs" };
    for (int i = 0; i < 2; i++) {
        ProtobufCMessage *resp = NULL;
        double t0 = now_s();
        int code = e2_rpc_client_call(c, paths[i], &req.base, &e2__v1__get_job_response__descriptor,
                                      &resp, 10000, msg, sizeof msg);
        CHECK(code == E2_RPC_UNIMPLEMENTED);
        CHECK(now_s() - t0 < 2.0);
        CHECK(strstr(msg, paths[i]) != NULL);
        CHECK(resp == NULL);
    }
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

/* Raw gRPC call with a body that is not a protobuf encoding: field 1,
 * length 16, but only two bytes follow. */
static void test_undecodable_body_invalid_argument(void) {
    harness *h = harness_start("tcp");
    grpc_init();
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = grpc_channel_create(h->addr, creds, NULL);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_slice method = grpc_slice_from_static_string("/e2.v1.Coordinator/GetJob");
    grpc_call *call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
        gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_seconds(5, GPR_TIMESPAN)), NULL);
    grpc_slice body = grpc_slice_from_static_buffer("\x0a\x10"
                                                    "ab",
                                                    4);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&body, 1);
    grpc_byte_buffer *resp = NULL;
    grpc_metadata_array imd, tmd;
    grpc_metadata_array_init(&imd);
    grpc_metadata_array_init(&tmd);
    grpc_status_code status;
    grpc_slice details;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    CHECK(grpc_call_start_batch(call, ops, 6, ops, NULL) == GRPC_CALL_OK);
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    CHECK(ev.type == GRPC_OP_COMPLETE);
    CHECK(status == GRPC_STATUS_INVALID_ARGUMENT);
    char *text = grpc_slice_to_c_string(details);
    CHECK(strstr(text, "e2.v1.GetJobRequest") != NULL);
    gpr_free(text);
    CHECK(resp == NULL);
    grpc_slice_unref(details);
    grpc_byte_buffer_destroy(bb);
    grpc_metadata_array_destroy(&imd);
    grpc_metadata_array_destroy(&tmd);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    harness_stop(h, 100);
}

static void test_metadata_peer_deadline_visible(void) {
    harness *h = harness_start("tcp");
    char msg[256];
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    CHECK(e2_rpc_client_set_metadata(c, "authorization", "Bearer old") == 0);
    CHECK(e2_rpc_client_set_metadata(c, "authorization", "Bearer t0k3n") == 0);
    E2__V1__GetJobResponse *r = NULL;
    CHECK(get_job(c, "x", 5000, &r, msg, sizeof msg) == E2_RPC_OK);
    CHECK(r != NULL && strcmp(r->job->reason, "Bearer t0k3n") == 0);
    CHECK(r != NULL && strncmp(r->job->job_dir, "ipv4:127.0.0.1:", 15) == 0);
    /* grpc-timeout is sent rounded up to a coarser unit: allow a little over */
    CHECK(r != NULL && r->job->eta_seconds > 3000 && r->job->eta_seconds <= 5100);
    if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    /* no deadline: -1 */
    CHECK(get_job(c, "x", 0, &r, msg, sizeof msg) == E2_RPC_OK);
    CHECK(r != NULL && r->job->eta_seconds == -1);
    if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

typedef struct {
    e2_rpc_stream *s;
    atomic_int got_first;
    int n;
    int status;
} stream_reader;

static void read_stream(void *arg) {
    stream_reader *r = arg;
    ProtobufCMessage *m;
    while (e2_rpc_stream_next(r->s, &m) == 1) {
        r->n++;
        atomic_store(&r->got_first, 1);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    r->status = e2_rpc_stream_status(r->s, NULL, 0);
    atomic_store(&r->got_first, 1);
}

static void test_shutdown_grace_ends_stream(void) {
    harness *h = harness_start("unix");
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    E2__V1__WatchJobRequest req = E2__V1__WATCH_JOB_REQUEST__INIT;
    req.id = "forever";
    stream_reader r = { 0 };
    r.s = e2_rpc_client_stream(c, "/e2.v1.Coordinator/WatchJob", &req.base,
                               &e2__v1__job_event__descriptor, 0);
    uv_thread_t t;
    uv_thread_create(&t, read_stream, &r);
    CHECK(wait_for(&r.got_first, 1, 5.0));
    double t0 = now_s();
    harness_stop(h, 300);
    double took = now_s() - t0;
    CHECK(took >= 0.25 && took < 2.0);
    uv_thread_join(&t);
    CHECK(r.n == 1);
    CHECK(r.status == E2_RPC_CANCELLED || r.status == E2_RPC_UNAVAILABLE);
    e2_rpc_stream_free(r.s);
    e2_rpc_client_free(c);
}

typedef struct {
    const char *addr;
    int code;
} later_caller;

static void call_later(void *arg) {
    later_caller *k = arg;
    e2_rpc_client *c = e2_rpc_client_new(k->addr, NULL, 0);
    E2__V1__GetJobResponse *r = NULL;
    char msg[128];
    k->code = get_job(c, "later", 5000, &r, msg, sizeof msg);
    if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    e2_rpc_client_free(c);
}

/* A call answered within the grace period succeeds, and the server is down
 * as soon as it is answered (not at the end of the grace period). */
static void test_shutdown_lets_calls_finish(void) {
    harness *h = harness_start("unix");
    later_caller k = { h->addr, -1 };
    uv_thread_t t;
    uv_thread_create(&t, call_later, &k);
    CHECK(wait_for(&h->later, 1, 5.0));
    double t0 = now_s();
    harness_stop(h, 5000);
    CHECK(now_s() - t0 < 2.5);
    uv_thread_join(&t);
    CHECK(k.code == E2_RPC_OK);
}

static void test_client_cancel_tells_handler(void) {
    harness *h = harness_start("tcp");
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    E2__V1__WatchJobRequest req = E2__V1__WATCH_JOB_REQUEST__INIT;
    req.id = "forever";
    stream_reader r = { 0 };
    r.s = e2_rpc_client_stream(c, "/e2.v1.Coordinator/WatchJob", &req.base,
                               &e2__v1__job_event__descriptor, 0);
    uv_thread_t t;
    uv_thread_create(&t, read_stream, &r);
    CHECK(wait_for(&r.got_first, 1, 5.0));
    e2_rpc_stream_cancel(r.s);
    uv_thread_join(&t);
    CHECK(r.status == E2_RPC_CANCELLED);
    CHECK(wait_for(&h->cancels, 1, 3.0));
    e2_rpc_stream_free(r.s);
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

static void test_second_server_same_port_fails(void) {
    harness *h = harness_start("tcp");
    uv_loop_t loop;
    uv_loop_init(&loop);
    e2_rpc_server *s2 = e2_rpc_server_new(&loop, NULL);
    char addr[64], err[256] = "";
    snprintf(addr, sizeof addr, "127.0.0.1:%d", h->port);
    CHECK(e2_rpc_server_listen(s2, addr, NULL, NULL, err, sizeof err) == E2_RPC_EBIND);
    CHECK(strstr(err, addr) != NULL);
    e2_rpc_server_free(s2);
    uv_loop_close(&loop);
    harness_stop(h, 100);
}

static void test_unreachable_server_unavailable(void) {
    char dir[] = "/tmp/e2-rpc-test-XXXXXX", addr[128], msg[256];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(addr, sizeof addr, "unix:%s/none.sock", dir);
    e2_rpc_client *c = e2_rpc_client_new(addr, NULL, 0);
    E2__V1__GetJobResponse *r = NULL;
    double t0 = now_s();
    CHECK(get_job(c, "x", 5000, &r, msg, sizeof msg) == E2_RPC_UNAVAILABLE);
    CHECK(now_s() - t0 < 3.0);
    e2_rpc_client_free(c);
    rmdir(dir);
}

typedef struct {
    e2_rpc_client *c;
    int ok;
    char id[16];
} caller;

static void call_many(void *arg) {
    caller *k = arg;
    char msg[128];
    for (int i = 0; i < 50; i++) {
        E2__V1__GetJobResponse *r = NULL;
        if (get_job(k->c, k->id, 5000, &r, msg, sizeof msg) == E2_RPC_OK &&
            strcmp(r->job->id, k->id) == 0)
            k->ok++;
        if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    }
}

static void test_client_shared_by_threads(void) {
    harness *h = harness_start("unix");
    e2_rpc_client *c = e2_rpc_client_new(h->addr, NULL, 0);
    caller k[2] = { { c, 0, "a" }, { c, 0, "b" } };
    uv_thread_t t[2];
    for (int i = 0; i < 2; i++) uv_thread_create(&t[i], call_many, &k[i]);
    for (int i = 0; i < 2; i++) uv_thread_join(&t[i]);
    CHECK(k[0].ok == 50 && k[1].ok == 50);
    e2_rpc_client_free(c);
    harness_stop(h, 100);
}

/* One client per thread: BURST_CALLS unary calls, then a BURST_EVENTS
 * stream, so that completions of many calls reach the server together. */
#define BURST_THREADS 8
#define BURST_CALLS   200
#define BURST_EVENTS  50

typedef struct {
    const char *addr;
    int ok, events, stream_status;
} burster;

static void burst(void *arg) {
    burster *b = arg;
    e2_rpc_client *c = e2_rpc_client_new(b->addr, NULL, 0);
    char msg[128], id[32];
    for (int i = 0; i < BURST_CALLS; i++) {
        snprintf(id, sizeof id, "b-%d", i);
        E2__V1__GetJobResponse *r = NULL;
        if (get_job(c, id, 10000, &r, msg, sizeof msg) == E2_RPC_OK && r->job != NULL &&
            strcmp(r->job->id, id) == 0)
            b->ok++;
        if (r != NULL) protobuf_c_message_free_unpacked(&r->base, NULL);
    }
    E2__V1__WatchJobRequest req = E2__V1__WATCH_JOB_REQUEST__INIT;
    snprintf(id, sizeof id, "n=%d", BURST_EVENTS);
    req.id = id;
    stream_reader r = { 0 };
    r.s = e2_rpc_client_stream(c, "/e2.v1.Coordinator/WatchJob", &req.base,
                               &e2__v1__job_event__descriptor, 10000);
    read_stream(&r);
    b->events = r.n;
    b->stream_status = r.status;
    e2_rpc_stream_free(r.s);
    e2_rpc_client_free(c);
}

/* Many concurrent calls all complete, and afterwards the server frees every
 * call: the shutdown, with a grace period longer than the test's ctest
 * TIMEOUT, ends only once no call is left (a completion the server's queue
 * thread kept from the loop would hang it). */
static void test_burst_then_shutdown_frees_every_call(void) {
    harness *h = harness_start("unix");
    burster b[BURST_THREADS];
    uv_thread_t t[BURST_THREADS];
    for (int i = 0; i < BURST_THREADS; i++) {
        b[i] = (burster){ h->addr, 0, 0, -1 };
        uv_thread_create(&t[i], burst, &b[i]);
    }
    for (int i = 0; i < BURST_THREADS; i++) {
        uv_thread_join(&t[i]);
        CHECK(b[i].ok == BURST_CALLS);
        CHECK(b[i].events == BURST_EVENTS && b[i].stream_status == E2_RPC_OK);
    }
    harness_stop(h, 600000);
}

static void test_bad_setup_rejected(void) {
    uv_loop_t loop;
    uv_loop_init(&loop);
    e2_rpc_server *s = e2_rpc_server_new(&loop, NULL);
    e2_rpc_method m = { "NoSuchMethod", E2_RPC_UNARY, handle_get_job, NULL, 0 };
    char err[256] = "";
    CHECK(e2_rpc_server_add_service(s, &e2__v1__coordinator__descriptor, &m, 1, err, sizeof err) ==
          E2_RPC_EINVAL);
    CHECK(strstr(err, "NoSuchMethod") != NULL);
    CHECK(e2_rpc_server_listen(s, "", NULL, NULL, err, sizeof err) == E2_RPC_EINVAL);
    e2_rpc_tls tls = { "cert.pem", "key.pem", NULL };
    CHECK(e2_rpc_server_listen(s, "127.0.0.1:0", &tls, NULL, err, sizeof err) == E2_RPC_EINVAL);
    e2_rpc_server_free(s);
    uv_loop_close(&loop);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    { "unary_roundtrip_unix", test_unary_roundtrip_unix },
    { "unary_roundtrip_tcp", test_unary_roundtrip_tcp },
    { "reply_later", test_reply_later },
    { "server_streaming", test_server_streaming },
    { "deadline_exceeded_tells_handler", test_deadline_exceeded_tells_handler },
    { "unknown_method_unimplemented_quickly", test_unknown_method_unimplemented_quickly },
    { "undecodable_body_invalid_argument", test_undecodable_body_invalid_argument },
    { "metadata_peer_deadline_visible", test_metadata_peer_deadline_visible },
    { "shutdown_grace_ends_stream", test_shutdown_grace_ends_stream },
    { "shutdown_lets_calls_finish", test_shutdown_lets_calls_finish },
    { "client_cancel_tells_handler", test_client_cancel_tells_handler },
    { "second_server_same_port_fails", test_second_server_same_port_fails },
    { "unreachable_server_unavailable", test_unreachable_server_unavailable },
    { "client_shared_by_threads", test_client_shared_by_threads },
    { "bad_setup_rejected", test_bad_setup_rejected },
    { "burst_then_shutdown_frees_every_call", test_burst_then_shutdown_frees_every_call },
};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        int before = failures;
        cases[i].fn();
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", cases[i].name);
        ran++;
    }
    if (ran == 0) {
        fprintf(stderr, "rpc_test: no case named %s\n", argv[1]);
        return 2;
    }
    return failures != 0;
}
