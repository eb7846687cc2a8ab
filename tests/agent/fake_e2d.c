/* fake_e2d.c -- the scripted WorkerControl server of fake_e2d.h. */
#include "fake_e2d.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_str(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "");
}

/* Like e2d: a request must carry the secret of its worker (mu held).
 * Returns 0, or refuses the call with PERMISSION_DENIED. */
static int secret_ok(fake_e2d *f, e2_rpc_call *call, const char *secret) {
    if (secret && !strcmp(secret, f->secret)) return 0;
    f->bad_secrets++;
    e2_rpc_call_finish(call, E2_RPC_PERMISSION_DENIED, "worker_secret is not the worker's");
    return -1;
}

static void h_register(e2_rpc_call *call, const ProtobufCMessage *m, void *data) {
    fake_e2d *f = data;
    const E2__V1__RegisterWorkerRequest *r = (const void *)m;
    E2__V1__RegisterWorkerResponse resp = E2__V1__REGISTER_WORKER_RESPONSE__INIT;
    pthread_mutex_lock(&f->mu);
    f->registers++;
    copy_str(f->last_hostname, sizeof f->last_hostname, r->hostname);
    copy_str(f->last_device, sizeof f->last_device, r->device);
    copy_str(f->last_prev_id, sizeof f->last_prev_id, r->previous_worker_id);
    copy_str(f->last_prev_secret, sizeof f->last_prev_secret, r->previous_worker_secret);
    f->last_pid = r->pid;
    f->last_spawned = r->spawned_by_e2d;
    f->last_had_running = r->running != NULL;
    f->last_running_step = r->running ? (int)r->running->step : -1;
    snprintf(f->worker_id, sizeof f->worker_id, "w-%d", f->registers);
    snprintf(f->secret, sizeof f->secret, "secret-%d", f->registers);
    f->forget = 0;
    resp.worker_id = f->worker_id;
    resp.worker_secret = f->secret;
    resp.has_heartbeat_interval_ms = 1;
    resp.heartbeat_interval_ms = f->interval_ms;
    e2_rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&f->mu);
}

static void h_heartbeat(e2_rpc_call *call, const ProtobufCMessage *m, void *data) {
    fake_e2d *f = data;
    const E2__V1__HeartbeatRequest *r = (const void *)m;
    pthread_mutex_lock(&f->mu);
    if (f->forget || !r->worker_id || strcmp(r->worker_id, f->worker_id)) {
        pthread_mutex_unlock(&f->mu);
        e2_rpc_call_finish(call, E2_RPC_NOT_FOUND, "unknown worker");
        return;
    }
    if (secret_ok(f, call, r->worker_secret) < 0) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    if (f->stale && r->progress) {
        pthread_mutex_unlock(&f->mu);
        e2_rpc_call_finish(call, E2_RPC_FAILED_PRECONDITION, "attempt is not current");
        return;
    }
    f->heartbeats++;
    if (r->state == E2__V1__WORKER_STATE__WORKER_STATE_BUSY) f->busy_heartbeats++;
    if (r->progress) {
        f->last_step = r->progress->step;
        f->last_loss = r->progress->loss;
    }
    for (size_t i = 0; i < r->n_log_lines && f->n_lines < FAKE_MAX_LINES; i++)
        f->lines[f->n_lines++] = strdup(r->log_lines[i]);
    E2__V1__HeartbeatResponse resp = E2__V1__HEARTBEAT_RESPONSE__INIT;
    resp.n_commands = (size_t)f->n_cmds;
    resp.commands = (E2__V1__Command **)f->cmds;
    e2_rpc_call_reply(call, &resp.base);
    for (int i = 0; i < f->n_cmds; i++) protobuf_c_message_free_unpacked(f->cmds[i], NULL);
    f->n_cmds = 0;
    pthread_mutex_unlock(&f->mu);
}

static void h_checkpoint(e2_rpc_call *call, const ProtobufCMessage *m, void *data) {
    fake_e2d *f = data;
    const E2__V1__ReportCheckpointRequest *r = (const void *)m;
    pthread_mutex_lock(&f->mu);
    if (secret_ok(f, call, r->worker_secret) < 0) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    f->ckpts++;
    f->ckpt_step = r->step;
    f->ckpt_n_files = (int)r->n_files;
    for (size_t i = 0; i < r->n_files && i < FAKE_MAX_FILES; i++) {
        copy_str(f->ckpt_name[i], sizeof f->ckpt_name[i], r->files[i]->name);
        copy_str(f->ckpt_sha[i], sizeof f->ckpt_sha[i], r->files[i]->sha256);
        f->ckpt_size[i] = r->files[i]->size;
    }
    pthread_mutex_unlock(&f->mu);
    E2__V1__ReportCheckpointResponse resp = E2__V1__REPORT_CHECKPOINT_RESPONSE__INIT;
    resp.has_committed = 1;
    resp.committed = 1;
    e2_rpc_call_reply(call, &resp.base);
}

static void h_put(e2_rpc_call *call, const ProtobufCMessage *m, void *data) {
    fake_e2d *f = data;
    const E2__V1__RendezvousPutRequest *r = (const void *)m;
    pthread_mutex_lock(&f->mu);
    if (secret_ok(f, call, r->worker_secret) < 0) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    copy_str(f->rdzv_key, sizeof f->rdzv_key, r->key);
    f->rdzv_len = r->value.len < sizeof f->rdzv_val ? r->value.len : sizeof f->rdzv_val;
    if (f->rdzv_len) memcpy(f->rdzv_val, r->value.data, f->rdzv_len);
    f->rdzv_set = 1;
    pthread_mutex_unlock(&f->mu);
    E2__V1__RendezvousPutResponse resp = E2__V1__RENDEZVOUS_PUT_RESPONSE__INIT;
    e2_rpc_call_reply(call, &resp.base);
}

/* Answers at once (wait_ms is not honoured: the agent loops). */
static void h_get(e2_rpc_call *call, const ProtobufCMessage *m, void *data) {
    fake_e2d *f = data;
    const E2__V1__RendezvousGetRequest *r = (const void *)m;
    E2__V1__RendezvousGetResponse resp = E2__V1__RENDEZVOUS_GET_RESPONSE__INIT;
    pthread_mutex_lock(&f->mu);
    if (secret_ok(f, call, r->worker_secret) < 0) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    resp.has_found = 1;
    resp.found = f->rdzv_set && r->key && !strcmp(r->key, f->rdzv_key);
    if (resp.found) {
        resp.has_value = 1;
        resp.value.data = f->rdzv_val;
        resp.value.len = f->rdzv_len;
    }
    e2_rpc_call_reply(call, &resp.base);
    pthread_mutex_unlock(&f->mu);
}

static void h_done(e2_rpc_call *call, const ProtobufCMessage *m, void *data) {
    fake_e2d *f = data;
    const E2__V1__ReportDoneRequest *r = (const void *)m;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    pthread_mutex_lock(&f->mu);
    if (secret_ok(f, call, r->worker_secret) < 0) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    if (f->stale) {
        f->refused_dones++;
        pthread_mutex_unlock(&f->mu);
        e2_rpc_call_finish(call, E2_RPC_FAILED_PRECONDITION, "attempt is not current");
        return;
    }
    f->dones++;
    f->done_last_step = f->last_step;
    f->done_outcome = r->outcome;
    f->done_exit_code = r->exit_code;
    f->done_unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    copy_str(f->done_reason, sizeof f->done_reason, r->reason);
    copy_str(f->done_eval, sizeof f->done_eval, r->eval_json);
    for (size_t i = 0; i < r->n_log_lines && f->n_lines < FAKE_MAX_LINES; i++)
        f->lines[f->n_lines++] = strdup(r->log_lines[i]);
    pthread_mutex_unlock(&f->mu);
    E2__V1__ReportDoneResponse resp = E2__V1__REPORT_DONE_RESPONSE__INIT;
    e2_rpc_call_reply(call, &resp.base);
}

static void on_shutdown(e2_rpc_server *s) {
    fake_e2d *f = e2_rpc_server_data(s);
    e2_rpc_server_free(s);
    f->server = NULL;
    uv_close((uv_handle_t *)&f->wake, NULL);
}

static void on_wake(uv_async_t *h) {
    fake_e2d *f = h->data;
    if (f->stopping == 1) {
        f->stopping = 2;
        e2_rpc_server_shutdown(f->server, 100, on_shutdown);
    }
}

static void *loop_main(void *arg) {
    fake_e2d *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

int fake_start(fake_e2d *f, const char *path) {
    char err[256];
    static const e2_rpc_method methods[] = {
        { "RegisterWorker", E2_RPC_UNARY, h_register, NULL, 0 },
        { "Heartbeat", E2_RPC_UNARY, h_heartbeat, NULL, 0 },
        { "ReportCheckpoint", E2_RPC_UNARY, h_checkpoint, NULL, 0 },
        { "RendezvousPut", E2_RPC_UNARY, h_put, NULL, 0 },
        { "RendezvousGet", E2_RPC_UNARY, h_get, NULL, 0 },
        { "ReportDone", E2_RPC_UNARY, h_done, NULL, 0 },
    };
    e2_rpc_method m[6];
    for (int i = 0; i < 6; i++) {
        m[i] = methods[i];
        m[i].data = f;
    }
    if (!f->interval_ms) f->interval_ms = 50;
    f->stopping = 0;
    snprintf(f->address, sizeof f->address, "unix:%s", path);
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->wake, on_wake);
    f->wake.data = f;
    f->server = e2_rpc_server_new(&f->loop, f);
    if (!f->server ||
        e2_rpc_server_add_service(f->server, &e2__v1__worker_control__descriptor, m, 6, err,
                                  sizeof err) < 0 ||
        e2_rpc_server_listen(f->server, f->address, NULL, NULL, err, sizeof err) < 0 ||
        e2_rpc_server_start(f->server, err, sizeof err) < 0) {
        fprintf(stderr, "fake_e2d: %s\n", err);
        return -1;
    }
    return pthread_create(&f->thread, NULL, loop_main, f) == 0 ? 0 : -1;
}

void fake_stop(fake_e2d *f) {
    f->stopping = 1;
    uv_async_send(&f->wake);
    pthread_join(f->thread, NULL);
    uv_loop_close(&f->loop);
}

void fake_free(fake_e2d *f) {
    for (int i = 0; i < f->n_lines; i++) free(f->lines[i]);
    for (int i = 0; i < f->n_cmds; i++) protobuf_c_message_free_unpacked(f->cmds[i], NULL);
    f->n_lines = f->n_cmds = 0;
}

/* Queues a copy of cmd (packed and unpacked, so the queue owns it). */
static void queue(fake_e2d *f, const E2__V1__Command *cmd) {
    size_t n = protobuf_c_message_get_packed_size(&cmd->base);
    uint8_t *buf = malloc(n ? n : 1);
    protobuf_c_message_pack(&cmd->base, buf);
    pthread_mutex_lock(&f->mu);
    if (f->n_cmds < FAKE_MAX_CMDS)
        f->cmds[f->n_cmds++] = &e2__v1__command__unpack(NULL, n, buf)->base;
    pthread_mutex_unlock(&f->mu);
    free(buf);
}

void fake_assign(fake_e2d *f, const char *job_id, uint32_t attempt, uint32_t rank, uint32_t world,
                 uint32_t steps, uint32_t ckpt_every, const char *job_dir) {
    E2__V1__TrainSpec ts = E2__V1__TRAIN_SPEC__INIT;
    ts.has_steps = 1, ts.steps = steps;
    E2__V1__CheckpointSpec cs = E2__V1__CHECKPOINT_SPEC__INIT;
    cs.has_every = 1, cs.every = ckpt_every;
    E2__V1__JobSpec spec = E2__V1__JOB_SPEC__INIT;
    spec.train = &ts;
    spec.checkpoint = &cs;
    E2__V1__Assignment as = E2__V1__ASSIGNMENT__INIT;
    as.job_id = (char *)job_id;
    as.has_attempt = 1, as.attempt = attempt;
    as.has_rank = 1, as.rank = rank;
    as.has_world_size = 1, as.world_size = world;
    as.spec = &spec;
    as.job_dir = (char *)job_dir;
    E2__V1__Command c = E2__V1__COMMAND__INIT;
    c.kind_case = E2__V1__COMMAND__KIND_ASSIGNMENT;
    c.assignment = &as;
    queue(f, &c);
}

void fake_cancel(fake_e2d *f, const char *job_id, uint32_t attempt, int64_t deadline_unix_ms) {
    E2__V1__Cancel cn = E2__V1__CANCEL__INIT;
    cn.job_id = (char *)job_id;
    cn.has_attempt = 1, cn.attempt = attempt;
    cn.has_deadline_unix_ms = 1, cn.deadline_unix_ms = deadline_unix_ms;
    E2__V1__Command c = E2__V1__COMMAND__INIT;
    c.kind_case = E2__V1__COMMAND__KIND_CANCEL;
    c.cancel = &cn;
    queue(f, &c);
}

void fake_abort(fake_e2d *f, const char *job_id, uint32_t attempt) {
    E2__V1__Abort ab = E2__V1__ABORT__INIT;
    ab.job_id = (char *)job_id;
    ab.has_attempt = 1, ab.attempt = attempt;
    ab.reason = "rank 1 failed";
    E2__V1__Command c = E2__V1__COMMAND__INIT;
    c.kind_case = E2__V1__COMMAND__KIND_ABORT;
    c.abort = &ab;
    queue(f, &c);
}
