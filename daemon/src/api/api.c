/* api.c -- the e2.v1.Coordinator handlers (SubmitJob, GetJob, ListJobs,
 * CancelJob, WatchJob, StreamLogs, ListWorkers, GetMetrics) and the
 * conversion of stored rows into API messages. Every reply is built on the
 * heap and freed with protobuf_c_message_free_unpacked once sent. */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "authz.h"
#include "base.h"
#include "pbjson.h"
#include "plan.h"
#include "scheduler.h"
#include "spec.h"

#define API_PAGE_DEFAULT 100
#define API_PAGE_MAX     1000
/* ListJobs stops a page at this many bytes of jobs (next_page_token goes
 * on from there): half of gRPC's default 4 MiB receive limit, so that no
 * client needs a larger one. */
#define API_PAGE_MAX_BYTES  (2u << 20)
#define API_CANCEL_GRACE_MS 30000

static void api_reply(e2_rpc_call *call, void *msg) {
    if (!msg) {
        e2_rpc_call_finish(call, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    e2_rpc_call_reply(call, msg);
    protobuf_c_message_free_unpacked(msg, NULL);
}

static void api_fail(e2_rpc_call *call, e2_rpc_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void api_fail(e2_rpc_call *call, e2_rpc_status code, const char *fmt, ...) {
    char msg[E2_ERRLEN + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e2_rpc_call_finish(call, code, msg);
}

/* Formats an error line into msg; returns code. */
static e2_rpc_status api_err(char *msg, size_t msglen, e2_rpc_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static e2_rpc_status api_err(char *msg, size_t msglen, e2_rpc_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    return code;
}

/* Answers a call with a builder's result (api_build_*). */
static void api_answer(e2_rpc_call *call, e2_rpc_status code, void *reply, const char *msg) {
    if (code != E2_RPC_OK)
        e2_rpc_call_finish(call, code, msg);
    else
        api_reply(call, reply);
}

/* Loads a job named by a request, or says why not in msg. */
static e2_rpc_status api_find(e2d_server *srv, const char *id, e2_store_job *j, char *msg,
                              size_t msglen) {
    char err[E2_ERRLEN];
    int rc;
    if (!id || !*id)
        return api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                       "id is required (a job id such as j-000001)");
    rc = e2_store_job_get(srv->db, id, j, err, sizeof err);
    if (rc == E2_NOTFOUND) return api_err(msg, msglen, E2_RPC_NOT_FOUND, "job %s not found", id);
    if (rc < 0) return api_err(msg, msglen, E2_RPC_INTERNAL, "state store: %s", err);
    return E2_RPC_OK;
}

/* Loads a job named by a request, or answers the call with the error. */
static int api_load(e2d_server *srv, e2_rpc_call *call, const char *id, e2_store_job *j) {
    char msg[E2_ERRLEN + 64];
    e2_rpc_status code = api_find(srv, id, j, msg, sizeof msg);
    if (code != E2_RPC_OK) {
        e2_rpc_call_finish(call, code, msg);
        return E2_ERR;
    }
    return 0;
}

/* ---- rows -> messages ---- */

static E2__V1__GetMetricsResponse *api_eval_parse(const char *text) {
    char err[E2_ERRLEN];
    if (!text || !*text) return NULL;
    return (E2__V1__GetMetricsResponse *)e2_pbjson_parse(
        &e2__v1__get_metrics_response__descriptor, text, strlen(text), "eval", err, sizeof err);
}

static char *api_eval_table(E2__V1__EvalResult **ev, size_t n) {
    size_t cap = 256 + 128 * n, off = 0;
    char *t = malloc(cap);
    if (!t) return NULL;
    off += (size_t)snprintf(t + off, cap - off,
                            "| model | window | scale | loss | perplexity | "
                            "passkey |\n|---|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < n && off < cap; i++) {
        char pk[32] = "-";
        if (ev[i]->passkey_trials)
            snprintf(pk, sizeof pk, "%u/%u", ev[i]->passkey_correct, ev[i]->passkey_trials);
        off += (size_t)snprintf(t + off, cap - off, "| %s | %u | %g | %.4f | %.3f | %s |\n",
                                ev[i]->before_training ? "base" : "trained", ev[i]->window,
                                ev[i]->scale, ev[i]->loss, ev[i]->perplexity, pk);
    }
    return t;
}

typedef struct api_list {
    void **v;
    size_t n;
} api_list;

static void api_push(api_list *l, void *m) {
    void **v;
    if (!m || !(v = realloc(l->v, (l->n + 1) * sizeof *v))) {
        if (m) protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    l->v = v;
    l->v[l->n++] = m;
}

static void api_ckpt_msg(void *ud, const e2_store_ckpt *c) {
    E2__V1__Checkpoint *m = malloc(sizeof *m);
    if (m) {
        e2__v1__checkpoint__init(m);
        m->has_step = m->has_committed_unix_ms = m->has_attempt = 1;
        m->step = (uint32_t)c->step;
        m->path = strdup(c->path);
        m->committed_unix_ms = c->committed_ms;
        m->attempt = (uint32_t)c->attempt;
    }
    api_push(ud, m);
}

static void api_event_msg(void *ud, const e2_store_event *e) {
    api_list *l = ud;
    E2__V1__JobEvent *m = malloc(sizeof *m);
    if (m) {
        e2__v1__job_event__init(m);
        m->has_kind = m->has_state = m->has_time_unix_ms = 1;
        m->kind = E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_TRANSITION;
        m->state = e->to;
        m->reason = strdup(e->reason ? e->reason : "");
        m->time_unix_ms = e->time_ms;
    }
    api_push(l, m);
}

static E2__V1__Failure *api_failure_msg(const e2_store_job *j) {
    E2__V1__Failure *f;
    size_t n = 0;
    if (j->fail_rank < 0 && !j->fail_exit_code && !j->fail_signal && !j->fail_user &&
        !j->fail_log && !j->fail_worker[0])
        return NULL;
    if (!(f = malloc(sizeof *f))) return NULL;
    e2__v1__failure__init(f);
    f->has_exit_code = f->has_signal = f->has_rank = f->has_user_error = 1;
    f->exit_code = j->fail_exit_code;
    f->signal = j->fail_signal;
    f->rank = j->fail_rank;
    f->user_error = j->fail_user != 0;
    f->worker_id = strdup(j->fail_worker);
    if (j->fail_log) {
        for (const char *p = j->fail_log; *p; p++) n += *p == '\n';
        n++;
        if ((f->last_log_lines = calloc(n, sizeof *f->last_log_lines))) {
            const char *p = j->fail_log;
            for (size_t i = 0; i < n; i++) {
                const char *e = strchr(p, '\n');
                size_t len = e ? (size_t)(e - p) : strlen(p);
                f->last_log_lines[f->n_last_log_lines++] = strndup(p, len);
                p = e ? e + 1 : p + len;
            }
        }
    }
    return f;
}

/* Attaches the bytes a then b to m as one length-delimited unknown field
 * `tag`, which protobuf-c packs verbatim (so bytes that are already a
 * packed message go out without being unpacked). */
static int api_unknown_bytes(ProtobufCMessage *m, uint32_t tag, const void *a, size_t na,
                             const void *b, size_t nb) {
    ProtobufCMessageUnknownField *uf;
    size_t n = na + nb, pre = 1;
    for (size_t v = n; v >= 0x80; v >>= 7) pre++;
    if (!(uf = calloc(1, sizeof *uf)) || !(uf->data = malloc(pre + n))) {
        free(uf);
        return E2_ERR;
    }
    uf->tag = tag;
    uf->wire_type = PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED;
    uf->len = pre + n;
    for (size_t v = n, i = 0; i < pre; i++, v >>= 7)
        uf->data[i] = (uint8_t)((v & 0x7f) | (i + 1 < pre ? 0x80 : 0));
    if (na) memcpy(uf->data + pre, a, na);
    if (nb) memcpy(uf->data + pre + na, b, nb);
    m->unknown_fields = uf;
    m->n_unknown_fields = 1;
    return 0;
}

/* Job.spec from the stored row, without parsing JSON on the loop thread:
 * raw (gRPC replies): the packed bytes go out as they are, as an unknown
 * field 2 (= Job.spec) that protobuf-c writes verbatim; otherwise (the
 * HTTP JSON API needs a message) the packed bytes are unpacked. Rows
 * stored before schema 4 have only the JSON. < 0: no spec (out of memory,
 * or stored JSON that no longer parses). */
static int api_job_spec(E2__V1__Job *m, const e2_store_job *j, int raw) {
    char err[E2_ERRLEN];
    size_t n = j->spec_pb_len;
    if (!j->spec_pb) {
        m->spec = e2_spec_parse(j->spec_json, strlen(j->spec_json), err, sizeof err);
        return m->spec ? 0 : E2_ERR;
    }
    if (!raw) {
        m->spec = e2__v1__job_spec__unpack(NULL, n, j->spec_pb);
        return m->spec ? 0 : E2_ERR;
    }
    return api_unknown_bytes(&m->base, 2 /* Job.spec */, j->spec_pb, n, NULL, 0);
}

/* The Job message of a stored row; *whole (when not NULL) says whether
 * every table it reads was read (0: a read failed, something is missing). */
static E2__V1__Job *api_job_msg_whole(e2d_server *srv, const e2_store_job *j, int with_events,
                                      int raw, int *whole) {
    char err[E2_ERRLEN], dir[E2_JOBDIR_PATHLEN];
    E2__V1__Job *m = malloc(sizeof *m);
    E2__V1__GetMetricsResponse *ev;
    api_list l = { 0 };
    e2d_run *run;
    if (!m) return NULL;
    e2__v1__job__init(m);
    m->id = strdup(j->id);
    if (api_job_spec(m, j, raw) < 0 && whole) *whole = 0;
    m->has_state = m->has_created_unix_ms = m->has_updated_unix_ms = 1;
    m->state = j->state;
    m->reason = strdup(j->reason ? j->reason : "");
    m->created_unix_ms = j->created_ms;
    m->updated_unix_ms = j->updated_ms;
    m->has_attempt = m->has_restarts = m->has_user_errors = 1;
    m->attempt = (uint32_t)j->attempt;
    m->restarts = (uint32_t)j->restarts;
    m->user_errors = (uint32_t)j->user_errors;
    m->has_cancellations = m->has_world_size = 1;
    m->cancellations = (uint32_t)j->cancellations;
    /* 0 before the first start; rows from before schema 5: num_workers. */
    m->world_size = (uint32_t)(j->world_size ? j->world_size : j->attempt ? j->num_workers : 0);
    m->has_step = m->has_total_steps = m->has_loss = 1;
    m->step = (uint32_t)j->step;
    m->total_steps = (uint32_t)j->total_steps;
    m->loss = j->loss;
    m->has_tokens_per_second = m->has_eta_seconds = 1;
    m->tokens_per_second = j->tokens_per_second;
    m->eta_seconds = e2d_job_eta(srv, j);
    m->has_started_unix_ms = m->has_finished_unix_ms = 1;
    m->started_unix_ms = j->started_ms;
    m->finished_unix_ms = j->finished_ms;
    if (j->request_id) m->request_id = strdup(j->request_id);
    e2_jobdir_path(srv->cfg.state_dir, j->id, dir);
    m->job_dir = strdup(dir);
    if (e2_store_ckpt_list(srv->db, j->id, api_ckpt_msg, &l, err, sizeof err) == 0) {
        m->checkpoints = (E2__V1__Checkpoint **)l.v;
        m->n_checkpoints = l.n;
    } else {
        free(l.v);
        if (whole) *whole = 0;
    }
    if (with_events) {
        memset(&l, 0, sizeof l);
        if (e2_store_event_list(srv->db, j->id, api_event_msg, &l, err, sizeof err) == 0) {
            for (size_t i = 0; i < l.n; i++) ((E2__V1__JobEvent *)l.v[i])->job_id = strdup(j->id);
            m->events = (E2__V1__JobEvent **)l.v;
            m->n_events = l.n;
        } else {
            free(l.v);
            if (whole) *whole = 0;
        }
    }
    m->failure = api_failure_msg(j);
    if ((ev = api_eval_parse(j->eval_json))) {
        m->eval = ev->eval;
        m->n_eval = ev->n_eval;
        ev->eval = NULL;
        ev->n_eval = 0;
        protobuf_c_message_free_unpacked(&ev->base, NULL);
        m->eval_table = api_eval_table(m->eval, m->n_eval);
    }
    if ((run = e2d_run_find(srv, j->id)) &&
        (m->worker_ids = calloc((size_t)run->world, sizeof(char *)))) {
        for (int r = 0; r < run->world; r++)
            m->worker_ids[m->n_worker_ids++] = strdup(run->workers[r]);
    }
    return m;
}

static E2__V1__Job *api_job_msg(e2d_server *srv, const e2_store_job *j, int with_events, int raw) {
    return api_job_msg_whole(srv, j, with_events, raw, NULL);
}

/* ---- SubmitJob ---- */

static int api_request_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 128) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s)) return 0;
    return 1;
}

/* The reply leaves with its batch's commit (batch.c). */
static void api_reply_submit(e2d_server *srv, e2_rpc_call *call, const e2_store_job *j,
                             int created) {
    E2__V1__SubmitJobResponse *r = malloc(sizeof *r);
    if (r) {
        e2__v1__submit_job_response__init(r);
        r->job = api_job_msg(srv, j, 0, 1);
        r->has_created = 1;
        r->created = created;
    }
    e2d_batch_reply(srv, call, r ? &r->base : NULL);
}

/* Inserts the job, its first event and its directory in one savepoint of
 * the open batch: the reply goes out only once all three are durable. */
static int api_store_job(e2d_server *srv, const E2__V1__JobSpec *spec, const E2__V1__JobSpec *full,
                         const char *rid, e2_store_job *j, char *err, size_t errlen) {
    e2_store_label *labels = calloc(spec->n_labels + 1, sizeof *labels);
    char *pretty = e2_spec_to_json(spec, 2);
    int rc = E2_ERR;
    memset(j, 0, sizeof *j);
    j->request_id = rid ? strdup(rid) : NULL;
    j->spec_json = e2_spec_to_json(spec, 0);
    j->reason = strdup("submitted");
    j->spec_pb_len = e2__v1__job_spec__get_packed_size(spec);
    if ((j->spec_pb = malloc(j->spec_pb_len ? j->spec_pb_len : 1)))
        e2__v1__job_spec__pack(spec, j->spec_pb);
    if (!labels || !pretty || !j->spec_json || !j->reason || !j->spec_pb) {
        e2_errf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < spec->n_labels; i++) {
        labels[i].key = spec->labels[i]->key;
        /* A map entry may arrive without its value: it means "". */
        labels[i].value = spec->labels[i]->value ? spec->labels[i]->value : "";
    }
    j->state = E2_JOBSTATE_PENDING;
    j->priority = full->priority;
    snprintf(j->device, sizeof j->device, "%s", full->device);
    j->num_workers = (int)full->num_workers;
    j->min_workers = (int)full->min_workers;
    j->max_restarts = (int)full->max_restarts;
    j->keep_last = (int)full->checkpoint->keep_last;
    j->total_steps = full->train->steps;
    j->created_ms = e2d_now_ms();
    if (e2_store_begin(srv->db, err, errlen) < 0) goto out;
    e2_store_event e = { j->created_ms, E2_JOBSTATE_UNSPECIFIED, E2_JOBSTATE_PENDING, "submitted" };
    if (e2_store_end(srv->db,
                     e2_store_job_insert(srv->db, j, labels, (int)spec->n_labels, err, errlen) ==
                             0 &&
                         e2_store_event_add(srv->db, j->id, &e, err, errlen) == 0 &&
                         e2_jobdir_create(srv->cfg.state_dir, j->id, pretty, err, errlen) == 0,
                     err, errlen) < 0)
        goto out;
    rc = 0;
out:
    free(labels);
    free(pretty);
    return rc;
}

/* ---- submit limits: what a job may ask for (docs/limits.md) ---- */

/* The caller is an admin: its token's role, or no token file at all. */
static int api_caller_admin(e2_rpc_call *call) {
    const e2_rpc_principal *p = e2_rpc_call_principal(call);
    return !p || !strcmp(p->role, "admin");
}

/* Memory per cpu worker in GB: --cpu-mem, else this host's memory. */
static double api_cpu_mem_gb(const e2d_server *srv) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (srv->cfg.cpu_mem > 0) return srv->cfg.cpu_mem;
    return pages > 0 && size > 0 ? (double)pages * (double)size / 1e9 : 0;
}

/* A cpu job's memory plan against the bound (the cuda one is
 * e2w_plan_check_job's, with --gpu-mem). Inline model configs only: an
 * hf_dir is read by the workers. */
static int api_check_cpu_mem(const e2d_server *srv, const E2__V1__JobSpec *full, char *err,
                             size_t errlen) {
    const E2__V1__LlamaConfig *cfg = full->model ? full->model->config : NULL;
    double gb = api_cpu_mem_gb(srv);
    e2w_plan p;
    e2w_plan_opts o = {
        .gpus = (int)full->num_workers,
        .recompute = full->train->has_recompute && full->train->recompute,
        .micro_batch = full->train->has_micro_batch ? (int)full->train->micro_batch : 1,
        .seq = (int)full->augment->train_length,
        .act_bytes = 4,
        .gpu_mem_gb = gb,
    };
    if (strcmp(full->device, "cpu") || !cfg || gb <= 0) return 0;
    if (e2w_plan_compute(&p, cfg, &o, err, errlen) < 0) return E2_ERR;
    p.reserve = 0; /* no CUDA context on a cpu worker */
    p.total = p.params + p.grads + p.optim + p.acts + p.scratch;
    if (p.total <= p.capacity) return 0;
    return e2_errf(err, errlen,
                   "spec: a cpu worker needs %.2f GB for this job (parameters "
                   "%.2f, activations %.2f at T=%d) but the limit cpu-mem is "
                   "%.2f GB: use a smaller model, micro_batch or train_length",
                   (double)p.total / 1e9, (double)p.params / 1e9, (double)p.acts / 1e9, o.seq, gb);
}

/* Limits of e2d.conf a valid spec (defaults applied) must also meet:
 * spec.num_workers (max-workers-per-job), spec.priority (the caller's
 * role's ceiling) and the memory plan. E2_RPC_OK, or INVALID_ARGUMENT /
 * PERMISSION_DENIED with one line naming the limit. */
static e2_rpc_status api_check_limits(e2d_server *srv, e2_rpc_call *call,
                                      const E2__V1__JobSpec *full, char *msg, size_t msglen) {
    int admin = api_caller_admin(call);
    int ceiling = admin ? srv->cfg.priority_max_admin : srv->cfg.priority_max_submitter;
    if ((int)full->num_workers > srv->cfg.max_workers_per_job)
        return api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                       "spec.num_workers: %u is above the limit "
                       "max-workers-per-job = %d of this e2d",
                       full->num_workers, srv->cfg.max_workers_per_job);
    if (full->priority > ceiling)
        return api_err(msg, msglen, E2_RPC_PERMISSION_DENIED,
                       "spec.priority: %d is above %d, the ceiling of role %s "
                       "(priority-max-%s in e2d.conf)",
                       full->priority, ceiling, admin ? "admin" : "submitter",
                       admin ? "admin" : "submitter");
    if (api_check_cpu_mem(srv, full, msg, msglen) < 0) return E2_RPC_INVALID_ARGUMENT;
    return E2_RPC_OK;
}

/* A request_id seen before: the same spec gets the stored job back
 * (created = false); another spec is refused naming that job. */
static void api_submit_again(e2d_server *srv, e2_rpc_call *call,
                             const E2__V1__SubmitJobRequest *req, e2_store_job *j) {
    char *json = req->spec ? e2_spec_to_json(req->spec, 0) : NULL;
    int same = json && j->spec_json && !strcmp(json, j->spec_json);
    free(json);
    if (same) {
        api_reply_submit(srv, call, j, 0);
        return;
    }
    api_fail(call, E2_RPC_ALREADY_EXISTS,
             "request_id \"%.64s\" was used by job %s with a different spec: "
             "use a new request_id, or resend that job's spec",
             j->request_id, j->id);
}

static void api_submit(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__SubmitJobRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    const char *rid = req->request_id && *req->request_id ? req->request_id : NULL;
    char err[E2_ERRLEN];
    E2__V1__JobSpec *full;
    e2_store_job j;
    int rc;
    if (srv->shutting_down) {
        api_fail(call, E2_RPC_UNAVAILABLE, "e2d is shutting down");
        return;
    }
    if (rid && !api_request_id_ok(rid)) {
        api_fail(call, E2_RPC_INVALID_ARGUMENT,
                 "request_id must match [A-Za-z0-9._-]{1,128} (got \"%.64s\")", rid);
        return;
    }
    if (rid) {
        rc = e2_store_job_by_request(srv->db, rid, &j, err, sizeof err);
        if (rc == 0) {
            api_submit_again(srv, call, req, &j);
            e2_store_job_free(&j);
            return;
        }
        if (rc != E2_NOTFOUND) {
            api_fail(call, E2_RPC_INTERNAL, "state store: %s", err);
            return;
        }
    }
    if (!req->spec) {
        api_fail(call, E2_RPC_INVALID_ARGUMENT,
                 "spec is required: the request carries no job spec");
        return;
    }
    if (e2_spec_validate(req->spec, err, sizeof err) < 0) {
        api_fail(call, E2_RPC_INVALID_ARGUMENT, "%s", err);
        return;
    }
    /* Data access: paths outside --data-roots / --export-root. */
    if (e2_spec_check_roots(req->spec, srv->cfg.data_roots, srv->cfg.export_root, 0, err,
                            sizeof err) < 0) {
        api_fail(call, E2_RPC_INVALID_ARGUMENT, "%s", err);
        return;
    }
    if (!(full = e2_spec_copy(req->spec)) || e2_spec_apply_defaults(full, err, sizeof err) < 0) {
        if (full) e2_spec_free(full);
        api_fail(call, E2_RPC_INVALID_ARGUMENT, "%s", full ? err : "out of memory");
        return;
    }
    if (e2w_plan_check_job(full, srv->cfg.gpu_mem, err, sizeof err) < 0) {
        e2_spec_free(full);
        api_fail(call, E2_RPC_INVALID_ARGUMENT, "%s", err);
        return;
    }
    {
        char lmsg[E2_ERRLEN];
        e2_rpc_status code = api_check_limits(srv, call, full, lmsg, sizeof lmsg);
        if (code != E2_RPC_OK) {
            e2_spec_free(full);
            e2_rpc_call_finish(call, code, lmsg);
            return;
        }
    }
    rc = e2d_batch_join(srv, err, sizeof err);
    if (rc == 0) rc = api_store_job(srv, req->spec, full, rid, &j, err, sizeof err);
    if (rc == 0) rc = e2_authz_set_owner(srv, call, j.id, err, sizeof err);
    e2_spec_free(full);
    if (rc < 0) {
        e2_store_job_free(&j);
        api_fail(call, E2_RPC_INTERNAL, "storing the job failed: %s", err);
        return;
    }
    e2d_log("job %s: submitted (%s, %d %s worker%s, priority %d)", j.id, req->spec->name,
            j.num_workers, j.device, j.num_workers == 1 ? "" : "s", j.priority);
    api_reply_submit(srv, call, &j, 1);
    e2_store_job_free(&j);
    srv->sched_pending = 1;
    srv->batch_pass = 1;
}

/* ---- GetJob, CancelJob ---- */

static e2_rpc_status api_get_job_reply(e2d_server *srv, const E2__V1__GetJobRequest *req,
                                       E2__V1__GetJobResponse **out, char *msg, size_t msglen,
                                       int raw, int *whole);

e2_rpc_status e2_api_build_get_job(e2d_server *srv, const E2__V1__GetJobRequest *req,
                                   E2__V1__GetJobResponse **out, char *msg, size_t msglen) {
    return api_get_job_reply(srv, req, out, msg, msglen, 0, NULL);
}

/* GetJob's reply; raw: the spec as stored bytes (gRPC); *whole as for
 * api_job_msg_whole. */
static e2_rpc_status api_get_job_reply(e2d_server *srv, const E2__V1__GetJobRequest *req,
                                       E2__V1__GetJobResponse **out, char *msg, size_t msglen,
                                       int raw, int *whole) {
    E2__V1__GetJobResponse *r;
    e2_store_job j;
    e2_rpc_status code;
    e2d_batch_flush(srv);
    *out = NULL;
    if ((code = api_find(srv, req->id, &j, msg, msglen)) != E2_RPC_OK) return code;
    if ((r = malloc(sizeof *r))) {
        e2__v1__get_job_response__init(r);
        r->job = api_job_msg_whole(srv, &j, 1, raw, whole);
    }
    e2_store_job_free(&j);
    if (!(*out = r)) return api_err(msg, msglen, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
    return E2_RPC_OK;
}

/* GetJob over gRPC answers from the job's memo (store.h) when it has one:
 * the packed Job less what changes without a store write (eta_seconds and
 * worker_ids follow the run in memory), after the step counts the ETA
 * needs. The reply carries those bytes and then the live fields, packed
 * on their own, as one unknown field 1 (= GetJobResponse.job): two packed
 * Jobs back to back parse as their merge, the same Job the reply built
 * from the rows carries. */
typedef struct api_memo_head {
    int64_t step, total_steps;
} api_memo_head;

/* eta_seconds and worker_ids of a job, packed as a Job; NULL when out of
 * memory. */
static uint8_t *api_job_live(e2d_server *srv, const char *id, const api_memo_head *h, size_t *len) {
    E2__V1__Job live = E2__V1__JOB__INIT;
    e2d_run *run = e2d_run_find(srv, id);
    e2_store_job j;
    uint8_t *buf = NULL;
    memset(&j, 0, sizeof j);
    snprintf(j.id, sizeof j.id, "%s", id);
    j.step = h->step;
    j.total_steps = h->total_steps;
    live.has_eta_seconds = 1;
    live.eta_seconds = e2d_job_eta(srv, &j);
    if (run && run->world > 0) {
        if (!(live.worker_ids = malloc((size_t)run->world * sizeof(char *)))) return NULL;
        for (int r = 0; r < run->world; r++) live.worker_ids[r] = run->workers[r];
        live.n_worker_ids = (size_t)run->world;
    }
    *len = e2__v1__job__get_packed_size(&live);
    if ((buf = malloc(*len ? *len : 1))) e2__v1__job__pack(&live, buf);
    free(live.worker_ids);
    return buf;
}

/* GetJob's reply from the job's memo; NULL when it has none (or out of
 * memory): then the rows are read. */
static E2__V1__GetJobResponse *api_get_job_memo(e2d_server *srv, const char *id) {
    api_memo_head h;
    size_t n, nlive = 0;
    const uint8_t *memo = e2_store_memo_get(srv->db, id, &n);
    E2__V1__GetJobResponse *r;
    uint8_t *live;
    if (!memo || n < sizeof h) return NULL;
    memcpy(&h, memo, sizeof h);
    /* No store call until memo is copied: it lives until the next one. */
    if (!(live = api_job_live(srv, id, &h, &nlive))) return NULL;
    if ((r = malloc(sizeof *r))) {
        e2__v1__get_job_response__init(r);
        if (api_unknown_bytes(&r->base, 1 /* GetJobResponse.job */, memo + sizeof h, n - sizeof h,
                              live, nlive) < 0) {
            free(r);
            r = NULL;
        }
    }
    free(live);
    return r;
}

/* Keeps m (GetJob's Job, built from the rows) as the job's memo. */
static void api_get_job_keep(e2d_server *srv, E2__V1__Job *m) {
    api_memo_head h = { m->step, m->total_steps };
    size_t nw = m->n_worker_ids, n;
    uint8_t *buf;
    m->has_eta_seconds = 0;
    m->n_worker_ids = 0;
    n = e2__v1__job__get_packed_size(m);
    if ((buf = malloc(sizeof h + n))) {
        memcpy(buf, &h, sizeof h);
        e2__v1__job__pack(m, buf + sizeof h);
        e2_store_memo_put(srv->db, m->id, buf, sizeof h + n);
        free(buf);
    }
    m->has_eta_seconds = 1;
    m->n_worker_ids = nw;
}

static void api_get(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    e2d_server *srv = ud;
    const E2__V1__GetJobRequest *req = (const void *)msg;
    E2__V1__GetJobResponse *r;
    char m[E2_ERRLEN + 64];
    e2_rpc_status code;
    int whole = 1;
    e2d_batch_flush(srv);
    if (req->id && *req->id && (r = api_get_job_memo(srv, req->id))) {
        api_reply(call, r);
        return;
    }
    code = api_get_job_reply(srv, req, &r, m, sizeof m, 1, &whole);
    if (code == E2_RPC_OK && r->job && whole) api_get_job_keep(srv, r->job);
    api_answer(call, code, r, m);
}

/* A job already SUCCEEDED, FAILED or CANCELLED: FAILED_PRECONDITION (as
 * coordinator.proto says), the call answered. */
static int api_cancel_finished(e2_rpc_call *call, const e2_store_job *j) {
    if (!e2_jobstate_terminal(j->state)) return 0;
    api_fail(call, E2_RPC_FAILED_PRECONDITION, "job %s is already %s: there is nothing to cancel",
             j->id, e2_jobstate_name(j->state));
    return E2_ERR;
}

static void api_cancel(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__CancelJobRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    E2__V1__CancelJobResponse *r;
    int64_t grace =
        req->has_grace_seconds ? (int64_t)req->grace_seconds * 1000 : API_CANCEL_GRACE_MS;
    e2_store_job j;
    e2d_batch_flush(srv);
    if (api_load(srv, call, req->id, &j) < 0) return;
    if (e2_authz_check_cancel(srv, call, j.id) < 0 || api_cancel_finished(call, &j) < 0) {
        e2_store_job_free(&j);
        return;
    }
    if (e2_sched_cancel(srv, &j, grace) < 0) {
        api_fail(call, E2_RPC_INTERNAL, "job %s: the cancel could not be stored", j.id);
        e2_store_job_free(&j);
        return;
    }
    if ((r = malloc(sizeof *r))) {
        e2__v1__cancel_job_response__init(r);
        r->job = api_job_msg(srv, &j, 0, 1);
    }
    api_reply(call, r);
    e2_store_job_free(&j);
}

/* ---- ListJobs ---- */

typedef struct api_page {
    e2d_server *srv;
    api_list jobs;
    int64_t prev_seq, last_seq; /* of the last two jobs listed */
    int raw;                    /* specs as stored bytes (gRPC) */
    size_t bytes;               /* packed size of the jobs so far */
    int full;                   /* API_PAGE_MAX_BYTES reached: more follow */
} api_page;

/* Adds a job unless the page's bytes would pass API_PAGE_MAX_BYTES (a
 * page holds at least one job): then the page ends there. */
static int api_page_add(void *ud, const e2_store_job *j) {
    api_page *p = ud;
    E2__V1__Job *m = api_job_msg(p->srv, j, 0, p->raw);
    size_t n = m ? protobuf_c_message_get_packed_size(&m->base) + 8 : 0;
    if (m && p->jobs.n && p->bytes + n > API_PAGE_MAX_BYTES) {
        protobuf_c_message_free_unpacked(&m->base, NULL);
        p->full = 1;
        return 1;
    }
    p->bytes += n;
    api_push(&p->jobs, m);
    p->prev_seq = p->last_seq;
    p->last_seq = j->seq;
    return 0;
}

static e2_rpc_status api_list_jobs_reply(e2d_server *srv, const E2__V1__ListJobsRequest *req,
                                         E2__V1__ListJobsResponse **out, char *msg, size_t msglen,
                                         int raw);

e2_rpc_status e2_api_build_list_jobs(e2d_server *srv, const E2__V1__ListJobsRequest *req,
                                     E2__V1__ListJobsResponse **out, char *msg, size_t msglen) {
    return api_list_jobs_reply(srv, req, out, msg, msglen, 0);
}

/* ListJobs's reply; raw: the specs as stored bytes (gRPC). */
static e2_rpc_status api_list_jobs_reply(e2d_server *srv, const E2__V1__ListJobsRequest *req,
                                         E2__V1__ListJobsResponse **out, char *msg, size_t msglen,
                                         int raw) {
    e2_store_jobq q;
    api_page page = { srv, { 0 }, 0, 0, raw, 0, 0 };
    char err[E2_ERRLEN], *labels[E2_STORE_MAX_SELECTORS] = { 0 };
    uint32_t size = req->has_page_size && req->page_size ? req->page_size : API_PAGE_DEFAULT;
    E2__V1__ListJobsResponse *r;
    e2_rpc_status code = E2_RPC_OK;
    e2d_batch_flush(srv);
    *out = NULL;
    memset(&q, 0, sizeof q);
    if (size > API_PAGE_MAX)
        return api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                       "page_size must be in [0, %d] (got %u)", API_PAGE_MAX, size);
    for (size_t i = 0; i < req->n_states; i++) {
        if ((int)req->states[i] <= 0 || (int)req->states[i] >= E2_JOBSTATE_N)
            return api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                           "states[%zu]: unknown job state %d (use PENDING "
                           ".. CANCELLED)",
                           i, (int)req->states[i]);
        q.states |= 1u << req->states[i];
    }
    if (req->n_labels > E2_STORE_MAX_SELECTORS)
        return api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                       "labels: at most %d selectors (got %zu)", E2_STORE_MAX_SELECTORS,
                       req->n_labels);
    if (req->page_token && *req->page_token) {
        char *end;
        errno = 0;
        q.before_seq = strtoll(req->page_token, &end, 10);
        if (*end || errno || q.before_seq <= 0)
            return api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                           "page_token: \"%.32s\" is not a next_page_token "
                           "of ListJobs",
                           req->page_token);
    }
    for (size_t i = 0; i < req->n_labels; i++) {
        char *eq;
        if (!(labels[i] = strdup(req->labels[i])) || !(eq = strchr(labels[i], '=')) ||
            eq == labels[i]) {
            code = api_err(msg, msglen, E2_RPC_INVALID_ARGUMENT,
                           "labels[%zu]: expected key=value (got \"%.64s\")", i, req->labels[i]);
            goto out;
        }
        *eq = 0;
        q.labels[i].key = labels[i];
        q.labels[i].value = eq + 1;
    }
    q.nlabels = (int)req->n_labels;
    q.limit = (int)size + 1;
    if (e2_store_job_list(srv->db, &q, api_page_add, &page, err, sizeof err) < 0) {
        code = api_err(msg, msglen, E2_RPC_INTERNAL, "state store: %s", err);
        goto out;
    }
    if (!(r = malloc(sizeof *r))) {
        code = api_err(msg, msglen, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        goto out;
    }
    e2__v1__list_jobs_response__init(r);
    if (page.full) {
        /* Cut by bytes: the token resumes after the last job shown. */
        char tok[32];
        snprintf(tok, sizeof tok, "%lld", (long long)page.last_seq);
        r->next_page_token = strdup(tok);
    } else if (page.jobs.n > size) {
        /* One more than a page exists: the token resumes before the last
         * job shown. */
        E2__V1__Job *extra = page.jobs.v[--page.jobs.n];
        char tok[32];
        protobuf_c_message_free_unpacked(&extra->base, NULL);
        snprintf(tok, sizeof tok, "%lld", (long long)page.prev_seq);
        r->next_page_token = strdup(tok);
    }
    r->jobs = (E2__V1__Job **)page.jobs.v;
    r->n_jobs = page.jobs.n;
    page.jobs.v = NULL;
    page.jobs.n = 0;
    *out = r;
out:
    for (size_t i = 0; i < page.jobs.n; i++) protobuf_c_message_free_unpacked(page.jobs.v[i], NULL);
    free(page.jobs.v);
    for (size_t i = 0; i < E2_STORE_MAX_SELECTORS; i++) free(labels[i]);
    return code;
}

static void api_list_jobs(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    E2__V1__ListJobsResponse *r;
    char m[E2_ERRLEN + 64];
    e2_rpc_status code = api_list_jobs_reply(ud, (const void *)msg, &r, m, sizeof m, 1);
    api_answer(call, code, r, m);
}

/* ---- WatchJob ---- */

static void api_watch(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__WatchJobRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    E2__V1__JobEvent *e;
    e2_store_job j;
    e2d_batch_flush(srv);
    if (api_load(srv, call, req->id, &j) < 0) return;
    if ((e = e2d_job_event_msg(srv, &j, E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_SNAPSHOT, NULL))) {
        e2_rpc_call_send(call, &e->base);
        protobuf_c_message_free_unpacked(&e->base, NULL);
    }
    if (e2_jobstate_terminal(j.state))
        e2_rpc_call_finish(call, E2_RPC_OK, NULL);
    else if (!e2d_waiter_add(&srv->watches, call, j.id))
        e2_rpc_call_finish(call, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
    e2_store_job_free(&j);
}

static void api_logs(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    e2d_batch_flush(ud);
    e2_logs_start(ud, call, (const E2__V1__StreamLogsRequest *)msg);
}

/* ---- ListWorkers ---- */

static E2__V1__Worker *api_worker_msg(const e2d_worker *w) {
    E2__V1__Worker *m = malloc(sizeof *m);
    if (!m) return NULL;
    e2__v1__worker__init(m);
    m->id = strdup(w->row.id);
    m->hostname = strdup(w->row.host);
    m->device = strdup(w->row.device);
    m->has_device_index = m->has_pid = m->has_state = 1;
    m->device_index = (uint32_t)w->row.device_index;
    m->pid = w->row.pid;
    m->state = w->row.state;
    m->job_id = strdup(w->row.job);
    m->has_attempt = m->has_rank = 1;
    m->attempt = (uint32_t)w->row.attempt;
    m->rank = w->row.rank > 0 ? (uint32_t)w->row.rank : 0;
    m->has_last_heartbeat_unix_ms = m->has_registered_unix_ms = 1;
    m->last_heartbeat_unix_ms = w->seen_wall_ms;
    m->registered_unix_ms = w->row.registered_ms;
    m->version = strdup(w->row.version);
    m->has_spawned_by_e2d = 1;
    m->spawned_by_e2d = w->row.spawned != 0;
    return m;
}

static void api_workers(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    const E2__V1__ListWorkersRequest *req = (const void *)msg;
    e2d_server *srv = ud;
    E2__V1__ListWorkersResponse *r = malloc(sizeof *r);
    api_list l = { 0 };
    e2d_batch_flush(srv);
    if (r) {
        e2__v1__list_workers_response__init(r);
        for (e2d_worker *w = srv->workers; w; w = w->next)
            if (w->row.state != E2__V1__WORKER_STATE__WORKER_STATE_LOST || req->include_lost)
                api_push(&l, api_worker_msg(w));
        r->workers = (E2__V1__Worker **)l.v;
        r->n_workers = l.n;
    }
    api_reply(call, r);
}

/* ---- GetMetrics ---- */

typedef struct api_points {
    api_list l;
    uint32_t since;
} api_points;

static void api_point_msg(void *ud, const e2_store_metric *s) {
    api_points *p = ud;
    E2__V1__MetricPoint *m;
    if (s->step <= p->since || !(m = malloc(sizeof *m))) return;
    e2__v1__metric_point__init(m);
    m->has_step = m->has_loss = m->has_lr = m->has_grad_norm = 1;
    m->has_tokens_per_second = m->has_time_unix_ms = m->has_attempt = 1;
    m->step = (uint32_t)s->step;
    m->loss = s->loss;
    m->lr = s->lr;
    m->grad_norm = s->grad_norm;
    m->tokens_per_second = s->tokens_per_second;
    m->time_unix_ms = s->time_ms;
    m->attempt = (uint32_t)s->attempt;
    api_push(&p->l, m);
}

e2_rpc_status e2_api_build_metrics(e2d_server *srv, const E2__V1__GetMetricsRequest *req,
                                   E2__V1__GetMetricsResponse **out, char *msg, size_t msglen) {
    char err[E2_ERRLEN];
    api_points p = { { 0 }, req->has_since_step ? req->since_step : 0 };
    E2__V1__GetMetricsResponse *r = NULL;
    e2_store_job j;
    e2_rpc_status code;
    e2d_batch_flush(srv);
    *out = NULL;
    if ((code = api_find(srv, req->id, &j, msg, msglen)) != E2_RPC_OK) return code;
    if (e2_store_metric_list(srv->db, j.id, api_point_msg, &p, err, sizeof err) < 0)
        code = api_err(msg, msglen, E2_RPC_INTERNAL, "state store: %s", err);
    else if (!(r = api_eval_parse(j.eval_json)) && (r = malloc(sizeof *r)))
        e2__v1__get_metrics_response__init(r);
    e2_store_job_free(&j);
    if (code == E2_RPC_OK && r) {
        r->points = (E2__V1__MetricPoint **)p.l.v;
        r->n_points = p.l.n;
        *out = r;
        return E2_RPC_OK;
    }
    for (size_t i = 0; i < p.l.n; i++) protobuf_c_message_free_unpacked(p.l.v[i], NULL);
    free(p.l.v);
    if (code == E2_RPC_OK)
        code = api_err(msg, msglen, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
    return code;
}

static void api_metrics(e2_rpc_call *call, const ProtobufCMessage *msg, void *ud) {
    E2__V1__GetMetricsResponse *r;
    char m[E2_ERRLEN + 64];
    e2_rpc_status code = e2_api_build_metrics(ud, (const void *)msg, &r, m, sizeof m);
    api_answer(call, code, r, m);
}

int e2_api_register(e2d_server *srv, char *err, size_t errlen) {
    /* Each row: method, kind, handler, data, and the role a caller needs
     * (e2_auth_role_allows: admin may call all, a submitter what a viewer may;
     * ctest -R daemon_methods checks every method of the service has one). */
    const e2_rpc_method methods[] = {
        { "SubmitJob", E2_RPC_UNARY, api_submit, srv, E2_AUTH_ROLE_SUBMITTER },
        { "GetJob", E2_RPC_UNARY, api_get, srv, E2_AUTH_ROLE_VIEWER },
        { "ListJobs", E2_RPC_UNARY, api_list_jobs, srv, E2_AUTH_ROLE_VIEWER },
        { "CancelJob", E2_RPC_UNARY, api_cancel, srv, E2_AUTH_ROLE_SUBMITTER },
        { "WatchJob", E2_RPC_SERVER_STREAMING, api_watch, srv, E2_AUTH_ROLE_VIEWER },
        { "StreamLogs", E2_RPC_SERVER_STREAMING, api_logs, srv, E2_AUTH_ROLE_VIEWER },
        { "ListWorkers", E2_RPC_UNARY, api_workers, srv, E2_AUTH_ROLE_VIEWER },
        { "GetMetrics", E2_RPC_UNARY, api_metrics, srv, E2_AUTH_ROLE_VIEWER },
    };
    if (e2_rpc_server_add_service(srv->rpc, &e2__v1__coordinator__descriptor, methods,
                                  sizeof methods / sizeof methods[0], err, errlen) != 0)
        return E2_ERR;
    /* Specs are stored as JSON and paths are globbed: a NUL or invalid
     * UTF-8 would change them silently. */
    e2_rpc_server_check_strings(srv->rpc, &e2__v1__coordinator__descriptor);
    return 0;
}
