/* fake_coordinator.c: a stand-in e2.v1.Coordinator on e2_rpc for client
 * tests (e2ctl end to end, the Python dashboard example) that must not
 * depend on training a model. Jobs live in memory and "run" on WatchJob:
 * the stream sends a SNAPSHOT, RUNNING, one PROGRESS event per step
 * (spec.train.steps, default 3) and then the final state, which depends on
 * the spec's name: "fail" -> FAILED, "cancel" -> CANCELLED, else SUCCEEDED.
 * SubmitJob rejects spec.augment.g_max = 0 with the validator's wording,
 * and a spec without a name, so that clients show the server's message.
 *
 * Usage: fake_coordinator ADDRESS   (prints "ready" when listening; SIGTERM
 * or SIGINT shut it down gracefully) */
#include "rpc.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2/v1/coordinator.pb-c.h"

#define MAX_JOBS 256

typedef struct {
    char id[16];
    char request_id[130];
    E2__V1__JobSpec *spec; /* unpacked copy */
    E2__V1__JobState state;
    uint32_t step, total;
} fake_job;

static fake_job jobs[MAX_JOBS];
static int n_jobs;
static e2_rpc_server *server;
static uv_signal_t sig_term, sig_int;

static fake_job *find_job(const char *id) {
    for (int i = 0; i < n_jobs; i++)
        if (id != NULL && strcmp(jobs[i].id, id) == 0) return &jobs[i];
    return NULL;
}

static void fill_job(const fake_job *f, E2__V1__Job *j) {
    j->id = (char *)f->id;
    j->spec = f->spec;
    j->has_state = 1;
    j->state = f->state;
    j->has_step = j->has_total_steps = 1;
    j->step = f->step;
    j->total_steps = f->total;
    j->has_created_unix_ms = 1;
    j->created_unix_ms = 1700000000000;
    if (f->request_id[0] != '\0') j->request_id = (char *)f->request_id;
    if (f->state == E2__V1__JOB_STATE__JOB_STATE_SUCCEEDED)
        j->eval_table = "| window | ppl |\n|---:|---:|\n| 64 | 9.50 |\n| 256 | 11.25 |\n";
}

static int not_found(e2_rpc_call *call, const char *id) {
    char msg[160];
    snprintf(msg, sizeof msg, "job %s not found", id != NULL ? id : "");
    return e2_rpc_call_finish(call, E2_RPC_NOT_FOUND, msg);
}

static void submit_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__SubmitJobRequest *req = (const E2__V1__SubmitJobRequest *)request;
    const E2__V1__JobSpec *spec = req->spec;
    if (spec == NULL || spec->name == NULL || spec->name[0] == '\0') {
        e2_rpc_call_finish(call, E2_RPC_INVALID_ARGUMENT,
                           "spec.name must be set ([A-Za-z0-9._-]{1,64})");
        return;
    }
    if (spec->augment != NULL && spec->augment->has_g_max && spec->augment->g_max == 0) {
        e2_rpc_call_finish(call, E2_RPC_INVALID_ARGUMENT,
                           "spec.augment.g_max must be in [1, 1024] (got 0)");
        return;
    }
    E2__V1__SubmitJobResponse resp = E2__V1__SUBMIT_JOB_RESPONSE__INIT;
    E2__V1__Job job = E2__V1__JOB__INIT;
    resp.job = &job;
    resp.has_created = 1;
    if (req->request_id != NULL && req->request_id[0] != '\0')
        for (int i = 0; i < n_jobs; i++)
            if (strcmp(jobs[i].request_id, req->request_id) == 0) {
                fill_job(&jobs[i], &job);
                resp.created = 0;
                e2_rpc_call_reply(call, &resp.base);
                return;
            }
    if (n_jobs == MAX_JOBS) {
        e2_rpc_call_finish(call, E2_RPC_RESOURCE_EXHAUSTED, "too many jobs");
        return;
    }
    fake_job *f = &jobs[n_jobs++];
    snprintf(f->id, sizeof f->id, "j-%06d", n_jobs);
    snprintf(f->request_id, sizeof f->request_id, "%s",
             req->request_id != NULL ? req->request_id : "");
    size_t n = protobuf_c_message_get_packed_size(&spec->base);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(&spec->base, buf);
    f->spec = e2__v1__job_spec__unpack(NULL, n, buf);
    free(buf);
    f->state = E2__V1__JOB_STATE__JOB_STATE_PENDING;
    f->total = spec->train != NULL && spec->train->has_steps ? spec->train->steps : 3;
    fill_job(f, &job);
    resp.created = 1;
    e2_rpc_call_reply(call, &resp.base);
}

static void get_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__GetJobRequest *req = (const E2__V1__GetJobRequest *)request;
    fake_job *f = find_job(req->id);
    if (f == NULL) {
        not_found(call, req->id);
        return;
    }
    E2__V1__GetJobResponse resp = E2__V1__GET_JOB_RESPONSE__INIT;
    E2__V1__Job job = E2__V1__JOB__INIT;
    fill_job(f, &job);
    resp.job = &job;
    e2_rpc_call_reply(call, &resp.base);
}

static int has_label(const fake_job *f, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (eq == NULL || f->spec == NULL) return 0;
    for (size_t i = 0; i < f->spec->n_labels; i++)
        if (strlen(f->spec->labels[i]->key) == (size_t)(eq - kv) &&
            strncmp(f->spec->labels[i]->key, kv, (size_t)(eq - kv)) == 0 &&
            strcmp(f->spec->labels[i]->value, eq + 1) == 0)
            return 1;
    return 0;
}

/* Newest first; page_token is the index to continue from. */
static void list_jobs(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__ListJobsRequest *req = (const E2__V1__ListJobsRequest *)request;
    uint32_t page = req->page_size ? req->page_size : 100;
    int start = req->page_token != NULL && req->page_token[0] ? atoi(req->page_token) : n_jobs - 1;
    static E2__V1__Job out[MAX_JOBS];
    static E2__V1__Job *ptr[MAX_JOBS];
    E2__V1__ListJobsResponse resp = E2__V1__LIST_JOBS_RESPONSE__INIT;
    char next[16] = "";
    int i;
    for (i = start; i >= 0; i--) {
        const fake_job *f = &jobs[i];
        int ok = req->n_states == 0;
        for (size_t k = 0; k < req->n_states; k++) ok |= req->states[k] == f->state;
        for (size_t k = 0; k < req->n_labels; k++) ok &= has_label(f, req->labels[k]);
        if (!ok) continue;
        if (resp.n_jobs == page) {
            snprintf(next, sizeof next, "%d", i);
            break;
        }
        e2__v1__job__init(&out[resp.n_jobs]);
        fill_job(f, &out[resp.n_jobs]);
        ptr[resp.n_jobs] = &out[resp.n_jobs];
        resp.n_jobs++;
    }
    resp.jobs = ptr;
    resp.next_page_token = next;
    e2_rpc_call_reply(call, &resp.base);
}

static void cancel_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__CancelJobRequest *req = (const E2__V1__CancelJobRequest *)request;
    fake_job *f = find_job(req->id);
    if (f == NULL) {
        not_found(call, req->id);
        return;
    }
    if (f->state == E2__V1__JOB_STATE__JOB_STATE_PENDING)
        f->state = E2__V1__JOB_STATE__JOB_STATE_CANCELLED;
    E2__V1__CancelJobResponse resp = E2__V1__CANCEL_JOB_RESPONSE__INIT;
    E2__V1__Job job = E2__V1__JOB__INIT;
    fill_job(f, &job);
    resp.job = &job;
    e2_rpc_call_reply(call, &resp.base);
}

static void send_event(e2_rpc_call *call, fake_job *f, E2__V1__JobEventKind kind,
                       const char *reason) {
    E2__V1__JobEvent ev = E2__V1__JOB_EVENT__INIT;
    ev.job_id = f->id;
    ev.has_kind = ev.has_state = ev.has_step = ev.has_total_steps = 1;
    ev.kind = kind;
    ev.state = f->state;
    ev.reason = (char *)reason;
    ev.step = f->step;
    ev.total_steps = f->total;
    ev.has_loss = ev.has_tokens_per_second = ev.has_eta_seconds = 1;
    ev.loss = 5.0 / (1.0 + f->step);
    ev.tokens_per_second = 1000.0 + f->step;
    ev.eta_seconds = (double)(f->total - f->step);
    e2_rpc_call_send(call, &ev.base);
}

static void watch_job(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__WatchJobRequest *req = (const E2__V1__WatchJobRequest *)request;
    fake_job *f = find_job(req->id);
    if (f == NULL) {
        not_found(call, req->id);
        return;
    }
    send_event(call, f, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_SNAPSHOT, "submitted");
    if (f->state == E2__V1__JOB_STATE__JOB_STATE_PENDING) {
        f->state = E2__V1__JOB_STATE__JOB_STATE_RUNNING;
        send_event(call, f, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_TRANSITION, "assigned to w-1");
        for (f->step = 1; f->step <= f->total; f->step++)
            send_event(call, f, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_PROGRESS, NULL);
        f->step = f->total;
        const char *name = f->spec->name;
        const char *why = "training and evaluation finished";
        f->state = E2__V1__JOB_STATE__JOB_STATE_SUCCEEDED;
        if (strcmp(name, "fail") == 0) {
            f->state = E2__V1__JOB_STATE__JOB_STATE_FAILED;
            why = "rank 0 exited with code 2";
        } else if (strcmp(name, "cancel") == 0) {
            f->state = E2__V1__JOB_STATE__JOB_STATE_CANCELLED;
            why = "cancelled by request";
        }
        send_event(call, f, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_TRANSITION, why);
    }
    e2_rpc_call_finish(call, E2_RPC_OK, NULL);
}

static void stream_logs(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__StreamLogsRequest *req = (const E2__V1__StreamLogsRequest *)request;
    fake_job *f = find_job(req->id);
    if (f == NULL) {
        not_found(call, req->id);
        return;
    }
    for (int r = 0; r < 2; r++) {
        if (req->rank >= 0 && req->rank != r) continue;
        char text[64];
        snprintf(text, sizeof text, "rank %d line 1\nrank %d line 2\n", r, r);
        E2__V1__LogChunk c = E2__V1__LOG_CHUNK__INIT;
        c.has_attempt = c.has_rank = c.has_data = 1;
        c.attempt = req->attempt ? req->attempt : 1;
        c.rank = r;
        c.data.data = (uint8_t *)text;
        c.data.len = strlen(text);
        e2_rpc_call_send(call, &c.base);
    }
    e2_rpc_call_finish(call, E2_RPC_OK, NULL);
}

static void list_workers(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)request;
    (void)data;
    E2__V1__Worker w = E2__V1__WORKER__INIT, *wp = &w;
    w.id = "w-1";
    w.hostname = "fakehost";
    w.device = "cpu";
    w.has_state = w.has_pid = 1;
    w.state = E2__V1__WORKER_STATE__WORKER_STATE_IDLE;
    w.pid = 4242;
    E2__V1__ListWorkersResponse resp = E2__V1__LIST_WORKERS_RESPONSE__INIT;
    resp.n_workers = 1;
    resp.workers = &wp;
    e2_rpc_call_reply(call, &resp.base);
}

static void get_metrics(e2_rpc_call *call, const ProtobufCMessage *request, void *data) {
    (void)data;
    const E2__V1__GetMetricsRequest *req = (const E2__V1__GetMetricsRequest *)request;
    fake_job *f = find_job(req->id);
    if (f == NULL) {
        not_found(call, req->id);
        return;
    }
    E2__V1__MetricPoint pts[3], *pp[3];
    for (int i = 0; i < 3; i++) {
        e2__v1__metric_point__init(&pts[i]);
        pts[i].has_step = pts[i].has_loss = pts[i].has_lr = 1;
        pts[i].step = (uint32_t)i + 1;
        pts[i].loss = 4.0 - i;
        pts[i].lr = 1e-4;
        pp[i] = &pts[i];
    }
    E2__V1__GetMetricsResponse resp = E2__V1__GET_METRICS_RESPONSE__INIT;
    resp.n_points = 3;
    resp.points = pp;
    e2_rpc_call_reply(call, &resp.base);
}

static void on_shut_down(e2_rpc_server *s) {
    (void)s;
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)h;
    (void)signum;
    e2_rpc_server_shutdown(server, 1000, on_shut_down);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fake_coordinator ADDRESS\n");
        return 2;
    }
    static const e2_rpc_method methods[] = {
        { "SubmitJob", E2_RPC_UNARY, submit_job, NULL, 0 },
        { "GetJob", E2_RPC_UNARY, get_job, NULL, 0 },
        { "ListJobs", E2_RPC_UNARY, list_jobs, NULL, 0 },
        { "CancelJob", E2_RPC_UNARY, cancel_job, NULL, 0 },
        { "WatchJob", E2_RPC_SERVER_STREAMING, watch_job, NULL, 0 },
        { "StreamLogs", E2_RPC_SERVER_STREAMING, stream_logs, NULL, 0 },
        { "ListWorkers", E2_RPC_UNARY, list_workers, NULL, 0 },
        { "GetMetrics", E2_RPC_UNARY, get_metrics, NULL, 0 },
    };
    uv_loop_t *loop = uv_default_loop();
    char err[256];
    server = e2_rpc_server_new(loop, NULL);
    if (e2_rpc_server_add_service(server, &e2__v1__coordinator__descriptor, methods,
                                  sizeof methods / sizeof methods[0], err, sizeof err) != 0 ||
        e2_rpc_server_listen(server, argv[1], NULL, NULL, err, sizeof err) != 0 ||
        e2_rpc_server_start(server, err, sizeof err) != 0) {
        fprintf(stderr, "fake_coordinator: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &sig_term);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    printf("ready\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    e2_rpc_server_free(server);
    for (int i = 0; i < n_jobs; i++) e2__v1__job_spec__free_unpacked(jobs[i].spec, NULL);
    uv_loop_close(loop);
    return 0;
}
