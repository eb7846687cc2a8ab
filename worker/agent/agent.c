/* agent.c -- the agent's control loop and its training thread.
 *
 * The control thread owns the conversation with e2d: RegisterWorker, then a
 * Heartbeat every heartbeat_interval_ms carrying the rank's last progress
 * and the queued log lines, whose reply carries the commands. The training
 * thread runs the runner and talks to e2d only for what must happen inside
 * the step loop (ReportCheckpoint, rendezvous), over its own channel. When
 * the runner returns, the control thread joins it and sends ReportDone.
 *
 * Reconnecting: every failed call backs off (50 ms doubling to
 * backoff_max_ms) and replaces the failing thread's channel, so a restarted
 * e2d is dialled afresh instead of waiting out gRPC's own reconnect backoff.
 * NOT_FOUND means e2d forgot this worker: register again, naming the old id
 * and the rank still running, and carry on.
 *
 * Shared state (worker id, job, log queue, stop flags) is guarded by one
 * mutex; the condition variable wakes the control thread early (stop, rank
 * finished). The stop level a runner polls is an atomic. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_internal.h"
#include "auth.h"
#include "base.h"
#include "rpc.h"

#define LOG_CAP             8192 /* queued trainer lines; more are dropped and counted */
#define LOG_BATCH           512  /* lines per Heartbeat */
#define DONE_TRIES_STOPPING 3    /* ReportDone tries once the worker is ending */
#define DEFAULT_INTERVAL_MS 1000
#define PROGRESS_GAP_MS     100 /* a new step is sent this soon after the last beat */

#define PATH_WC             "/e2.v1.WorkerControl/"

struct e2w_agent_job {
    e2w_agent *agent;
    E2__V1__Assignment *asg; /* own unpacked copy */
    pthread_t thread;
    atomic_int stop;          /* E2W_AGENT_RUN / CANCEL / ABORT */
    atomic_llong deadline_ms; /* Cancel's deadline, 0 none */
    int stop_by_worker;       /* under agent->mu: stop came from e2w_agent_stop */
    e2_rpc_client *client;    /* training thread's channel */
    /* under agent->mu */
    int has_progress;
    E2__V1__Progress progress;
    int finished;   /* the runner returned */
    int joined;     /* control thread only */
    int final_beat; /* control thread only: last progress sent */
    e2w_agent_result result;
    e2w_agent_abort_cb abort_cb; /* collectives to break on Abort */
    void *abort_data;
};

struct e2w_agent {
    e2w_agent_config cfg;
    char *coordinator, *device, *name;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop_requested;
    char worker_id[128];
    char prev_worker_id[128];
    /* RegisterWorkerResponse.worker_secret: sent with every request (and
     * when registering again); never logged. */
    char worker_secret[128];
    char prev_worker_secret[128];
    uint32_t interval_ms;
    int64_t last_beat_ms; /* monotonic, when the last Heartbeat left */
    int progress_dirty;   /* a step ended since that Heartbeat */
    e2w_agent_job *job;
    char **logs; /* ring of LOG_CAP lines */
    size_t log_head, log_n;
    uint64_t log_dropped;
    e2_rpc_client *client;              /* control thread's channel */
    char bearer[E2_AUTH_TOKEN_MAX + 8]; /* "Bearer <token>"; "" without one */
};

/* ---- small helpers ---- */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void emit(e2w_agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(e2w_agent *a, const char *fmt, ...) {
    if (!a->cfg.on_event) return;
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    a->cfg.on_event(line, a->cfg.on_event_data);
}

/* Waits on the agent's condition for up to ms (mu held). */
static void timed_wait(e2w_agent *a, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
}

static char *xstrdup(const char *s) {
    return s ? strdup(s) : NULL;
}

/* One unary call on *client; an unreachable server replaces the channel so
 * the next try dials afresh. Returns the gRPC status (or E2_RPC_UNAVAILABLE
 * when no channel could be made). */
static int call(e2w_agent *a, e2_rpc_client **client, const char *method,
                const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rt,
                ProtobufCMessage **resp, int64_t timeout_ms, char *msg, size_t msglen) {
    char path[128];
    snprintf(path, sizeof path, PATH_WC "%s", method);
    *resp = NULL;
    if (!*client) {
        e2_rpc_client_tls tls = { a->cfg.tls_ca, a->cfg.tls_cert, a->cfg.tls_key, NULL };
        int use_tls = a->cfg.tls_ca || a->cfg.tls_cert || a->cfg.tls_key;
        *client = e2_rpc_client_new_tls(a->coordinator, use_tls ? &tls : NULL, msg, msglen);
        if (!*client) return E2_RPC_UNAVAILABLE;
        if (a->bearer[0] && e2_rpc_client_set_metadata(*client, "authorization", a->bearer) < 0) {
            e2_rpc_client_free(*client);
            *client = NULL;
            return E2_RPC_UNAVAILABLE;
        }
    }
    int st = e2_rpc_client_call(*client, path, req, rt, resp, timeout_ms, msg, msglen);
    if (st == E2_RPC_UNAVAILABLE || st == E2_RPC_DEADLINE_EXCEEDED) {
        e2_rpc_client_free(*client);
        *client = NULL;
    }
    return st;
}

static void copy_worker_id(e2w_agent *a, char *buf, size_t len) {
    pthread_mutex_lock(&a->mu);
    snprintf(buf, len, "%s", a->worker_id);
    pthread_mutex_unlock(&a->mu);
}

static void copy_worker_secret(e2w_agent *a, char *buf, size_t len) {
    pthread_mutex_lock(&a->mu);
    snprintf(buf, len, "%s", a->worker_secret);
    pthread_mutex_unlock(&a->mu);
}

/* ---- log queue ---- */

static void log_push(e2w_agent *a, const char *line) {
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') n--;
    char *copy = malloc(n + 1);
    if (copy) {
        memcpy(copy, line, n);
        copy[n] = 0;
    }
    pthread_mutex_lock(&a->mu);
    if (!copy || a->log_n == LOG_CAP) {
        a->log_dropped++;
        free(copy);
    } else {
        a->logs[(a->log_head + a->log_n) % LOG_CAP] = copy;
        a->log_n++;
    }
    pthread_mutex_unlock(&a->mu);
}

/* Points out[] at up to max queued lines without removing them (only the
 * control thread removes, so they stay valid until log_drop). A count of
 * dropped lines is queued first as a line of its own. */
static size_t log_peek(e2w_agent *a, char **out, size_t max) {
    pthread_mutex_lock(&a->mu);
    if (a->log_dropped && a->log_n < LOG_CAP) {
        char note[96];
        snprintf(note, sizeof note, "e2worker: %llu log lines dropped (queue full)",
                 (unsigned long long)a->log_dropped);
        char *copy = strdup(note);
        if (copy) {
            a->log_head = (a->log_head + LOG_CAP - 1) % LOG_CAP;
            a->logs[a->log_head] = copy;
            a->log_n++;
            a->log_dropped = 0;
        }
    }
    size_t n = a->log_n < max ? a->log_n : max;
    for (size_t i = 0; i < n; i++) out[i] = a->logs[(a->log_head + i) % LOG_CAP];
    pthread_mutex_unlock(&a->mu);
    return n;
}

static void log_drop(e2w_agent *a, size_t n) {
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < n; i++) {
        free(a->logs[a->log_head]);
        a->logs[a->log_head] = NULL;
        a->log_head = (a->log_head + 1) % LOG_CAP;
    }
    a->log_n -= n;
    pthread_mutex_unlock(&a->mu);
}

/* ---- the agent object ---- */

int e2w_agent_new(e2w_agent **out, const e2w_agent_config *cfg, char *err, size_t errlen) {
    *out = NULL;
    if (!cfg->coordinator || !*cfg->coordinator)
        return e2_errf(err, errlen, "--coordinator is required (unix:/path or host:port)");
    const char *dev = cfg->device ? cfg->device : "cpu";
    if (strcmp(dev, "cpu") && strcmp(dev, "cuda"))
        return e2_errf(err, errlen, "--device must be cpu or cuda (got %s)", dev);
    e2w_agent *a = calloc(1, sizeof *a);
    if (!a) return e2_errf(err, errlen, "out of memory");
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cv, &ca);
    pthread_condattr_destroy(&ca);
    a->cfg = *cfg;
    a->coordinator = xstrdup(cfg->coordinator);
    a->device = xstrdup(dev);
    a->name = xstrdup(cfg->name);
    a->logs = calloc(LOG_CAP, sizeof *a->logs);
    if (!a->coordinator || !a->device || (cfg->name && !a->name) || !a->logs) {
        e2w_agent_free(a);
        return e2_errf(err, errlen, "out of memory");
    }
    if (a->cfg.rpc_timeout_ms <= 0) a->cfg.rpc_timeout_ms = 5000;
    if (a->cfg.backoff_max_ms <= 0) a->cfg.backoff_max_ms = 2000;
    if (!a->cfg.runner) {
        a->cfg.runner = e2w_agent_train_runner;
        a->cfg.runner_data = NULL;
    }
    a->interval_ms = DEFAULT_INTERVAL_MS;
    if (cfg->token_file && *cfg->token_file) {
        char tok[E2_AUTH_TOKEN_MAX + 1];
        if (e2_auth_token_read(cfg->token_file, tok, sizeof tok, err, errlen) < 0) {
            e2w_agent_free(a);
            return E2_ERR;
        }
        snprintf(a->bearer, sizeof a->bearer, "Bearer %s", tok);
        memset(tok, 0, sizeof tok);
    }
    *out = a;
    return 0;
}

void e2w_agent_free(e2w_agent *a) {
    if (!a) return;
    if (a->logs) {
        for (size_t i = 0; i < a->log_n; i++) free(a->logs[(a->log_head + i) % LOG_CAP]);
        free(a->logs);
    }
    if (a->client) e2_rpc_client_free(a->client);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free(a->coordinator);
    free(a->device);
    free(a->name);
    memset(a->bearer, 0, sizeof a->bearer);
    free(a);
}

void e2w_agent_worker_id(e2w_agent *a, char *buf, size_t len) {
    copy_worker_id(a, buf, len);
}

static void raise_stop(e2w_agent_job *j, int level) {
    int cur = atomic_load(&j->stop);
    while (cur < level && !atomic_compare_exchange_weak(&j->stop, &cur, level)) {
    }
}

void e2w_agent_stop(e2w_agent *a, int graceful) {
    pthread_mutex_lock(&a->mu);
    a->stop_requested = 1;
    if (a->job) {
        a->job->stop_by_worker = 1;
        raise_stop(a->job, graceful ? E2W_AGENT_CANCEL : E2W_AGENT_ABORT);
    }
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

/* ---- hooks for runners ---- */

const E2__V1__Assignment *e2w_agent_job_assignment(const e2w_agent_job *job) {
    return job->asg;
}

const e2w_agent_config *e2w_agent_job_config(const e2w_agent_job *job) {
    return &job->agent->cfg;
}

int e2w_agent_job_should_stop(e2w_agent_job *job) {
    return atomic_load(&job->stop);
}

int64_t e2w_agent_job_cancel_deadline(e2w_agent_job *job) {
    return atomic_load(&job->deadline_ms);
}

void e2w_agent_job_progress(e2w_agent_job *job, uint32_t step, double loss, double lr,
                            double grad_norm, double tokens_per_second) {
    e2w_agent *a = job->agent;
    pthread_mutex_lock(&a->mu);
    E2__V1__Progress *p = &job->progress;
    job->has_progress = 1;
    p->has_step = 1, p->step = step;
    p->has_loss = 1, p->loss = loss;
    p->has_lr = 1, p->lr = lr;
    p->has_grad_norm = 1, p->grad_norm = grad_norm;
    p->has_tokens_per_second = 1, p->tokens_per_second = tokens_per_second;
    p->has_time_unix_ms = 1, p->time_unix_ms = now_ms();
    a->progress_dirty = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

void e2w_agent_job_log(e2w_agent_job *job, const char *line) {
    e2w_agent *a = job->agent;
    if (a->cfg.on_log) a->cfg.on_log(line, a->cfg.on_log_data);
    log_push(a, line);
}

void e2w_agent_job_set_abort(e2w_agent_job *job, e2w_agent_abort_cb cb, void *data) {
    e2w_agent *a = job->agent;
    pthread_mutex_lock(&a->mu);
    job->abort_cb = cb;
    job->abort_data = data;
    int aborted = atomic_load(&job->stop) == E2W_AGENT_ABORT;
    pthread_mutex_unlock(&a->mu);
    if (cb && aborted) cb(data);
}

/* Sets the Abort level and breaks the rank's collectives (mu held). */
static void abort_job(e2w_agent_job *j) {
    raise_stop(j, E2W_AGENT_ABORT);
    if (j->abort_cb) j->abort_cb(j->abort_data);
}

/* Is a call from the training thread worth retrying? */
static int retryable(int st) {
    return st == E2_RPC_UNAVAILABLE || st == E2_RPC_DEADLINE_EXCEEDED || st == E2_RPC_NOT_FOUND ||
           st == E2_RPC_INTERNAL || st == E2_RPC_UNKNOWN || st == E2_RPC_RESOURCE_EXHAUSTED;
}

/* A training-thread call, retried with backoff while e2d is unreachable (or
 * does not know the worker yet: the control thread re-registers), until
 * the rank is aborted. */
static int job_call(e2w_agent_job *j, const char *method, ProtobufCMessage *req,
                    char **worker_id_field, char **secret_field,
                    const ProtobufCMessageDescriptor *rt, ProtobufCMessage **resp,
                    int64_t timeout_ms, char *err, size_t errlen) {
    e2w_agent *a = j->agent;
    char wid[128], secret[128], msg[512];
    int backoff = 50;
    for (;;) {
        copy_worker_id(a, wid, sizeof wid);
        copy_worker_secret(a, secret, sizeof secret);
        *worker_id_field = wid;
        *secret_field = secret;
        int st = call(a, &j->client, method, req, rt, resp, timeout_ms, msg, sizeof msg);
        *worker_id_field = NULL;
        *secret_field = NULL;
        if (st == E2_RPC_OK) return 0;
        if (!retryable(st))
            return e2_errf(err, errlen, "%s: %s: %s", method, e2_rpc_status_name(st), msg);
        if (atomic_load(&j->stop) == E2W_AGENT_ABORT)
            return e2_errf(err, errlen, "%s: %s (rank aborted)", method, msg);
        pthread_mutex_lock(&a->mu);
        timed_wait(a, backoff);
        pthread_mutex_unlock(&a->mu);
        backoff = backoff * 2 > a->cfg.backoff_max_ms ? a->cfg.backoff_max_ms : backoff * 2;
    }
}

static int cmp_str(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Appends the regular files below dir/rel to *names (sorted later). */
static int list_files(const char *dir, const char *rel, char ***names, size_t *n, size_t *cap,
                      char *err, size_t errlen) {
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
    DIR *d = opendir(path);
    if (!d) return e2_errf(err, errlen, "open %s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char sub[4096], full[8192];
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", dir, sub);
        struct stat sb;
        if (lstat(full, &sb) < 0) {
            rc = e2_errf(err, errlen, "stat %s: %s", full, strerror(errno));
        } else if (S_ISDIR(sb.st_mode)) {
            rc = list_files(dir, sub, names, n, cap, err, errlen);
        } else if (S_ISREG(sb.st_mode)) {
            if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 16;
                char **nn = realloc(*names, nc * sizeof *nn);
                if (!nn) {
                    rc = e2_errf(err, errlen, "out of memory");
                    break;
                }
                *names = nn, *cap = nc;
            }
            if (!((*names)[*n] = strdup(sub)))
                rc = e2_errf(err, errlen, "out of memory");
            else
                (*n)++;
        }
    }
    closedir(d);
    return rc;
}

int e2w_agent_job_checkpoint(e2w_agent_job *job, uint32_t step, const char *const *names,
                             size_t n_names, int *committed, char *err, size_t errlen) {
    const E2__V1__Assignment *asg = job->asg;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/checkpoints/step_%u.tmp", asg->job_dir, step);
    char **list = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (names) {
        list = calloc(n_names ? n_names : 1, sizeof *list);
        if (!list) return e2_errf(err, errlen, "out of memory");
        for (; n < n_names; n++)
            if (!(list[n] = strdup(names[n]))) {
                rc = e2_errf(err, errlen, "out of memory");
                goto out;
            }
    } else {
        if ((rc = list_files(dir, "", &list, &n, &cap, err, errlen)) < 0) goto out;
        qsort(list, n, sizeof *list, cmp_str);
    }
    E2__V1__CheckpointFile *files = calloc(n ? n : 1, sizeof *files);
    E2__V1__CheckpointFile **fp = calloc(n ? n : 1, sizeof *fp);
    char(*hex)[E2_SHA256_HEXLEN] = calloc(n ? n : 1, sizeof *hex);
    if (!files || !fp || !hex) {
        rc = e2_errf(err, errlen, "out of memory");
        goto out_files;
    }
    for (size_t i = 0; i < n; i++) {
        char path[8192];
        uint8_t d[E2_SHA256_LEN];
        uint64_t size;
        snprintf(path, sizeof path, "%s/%s", dir, list[i]);
        if ((rc = e2_sha256_file(path, d, &size, err, errlen)) < 0) goto out_files;
        e2_sha256_hex(d, hex[i]);
        e2__v1__checkpoint_file__init(&files[i]);
        files[i].name = list[i];
        files[i].has_size = 1, files[i].size = size;
        files[i].sha256 = hex[i];
        fp[i] = &files[i];
    }
    E2__V1__ReportCheckpointRequest req = E2__V1__REPORT_CHECKPOINT_REQUEST__INIT;
    req.job_id = asg->job_id;
    req.has_attempt = 1, req.attempt = asg->attempt;
    req.has_rank = 1, req.rank = asg->rank;
    req.has_step = 1, req.step = step;
    req.n_files = n;
    req.files = fp;
    ProtobufCMessage *resp = NULL;
    rc = job_call(job, "ReportCheckpoint", &req.base, &req.worker_id, &req.worker_secret,
                  &e2__v1__report_checkpoint_response__descriptor, &resp,
                  job->agent->cfg.rpc_timeout_ms, err, errlen);
    if (rc == 0) {
        E2__V1__ReportCheckpointResponse *r = (E2__V1__ReportCheckpointResponse *)resp;
        if (committed) *committed = r->has_committed && r->committed;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
out_files:
    free(files);
    free(fp);
    free(hex);
out:
    for (size_t i = 0; i < n; i++) free(list[i]);
    free(list);
    return rc;
}

int e2w_agent_job_rdzv_put(e2w_agent_job *job, const char *key, const void *value, size_t len,
                           char *err, size_t errlen) {
    E2__V1__RendezvousPutRequest req = E2__V1__RENDEZVOUS_PUT_REQUEST__INIT;
    req.job_id = job->asg->job_id;
    req.has_attempt = 1, req.attempt = job->asg->attempt;
    req.key = (char *)key;
    req.has_value = 1;
    req.value.data = (uint8_t *)value;
    req.value.len = len;
    ProtobufCMessage *resp = NULL;
    int rc = job_call(job, "RendezvousPut", &req.base, &req.worker_id, &req.worker_secret,
                      &e2__v1__rendezvous_put_response__descriptor, &resp,
                      job->agent->cfg.rpc_timeout_ms, err, errlen);
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

int e2w_agent_job_rdzv_get(e2w_agent_job *job, const char *key, int timeout_ms, void **value,
                           size_t *len, char *err, size_t errlen) {
    *value = NULL;
    *len = 0;
    int64_t end = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        int64_t left = end - now_ms();
        if (left < 0) left = 0;
        if (left > 60000) left = 60000;
        E2__V1__RendezvousGetRequest req = E2__V1__RENDEZVOUS_GET_REQUEST__INIT;
        req.job_id = job->asg->job_id;
        req.has_attempt = 1, req.attempt = job->asg->attempt;
        req.key = (char *)key;
        req.has_wait_ms = 1, req.wait_ms = (uint32_t)left;
        ProtobufCMessage *resp = NULL;
        int rc = job_call(job, "RendezvousGet", &req.base, &req.worker_id, &req.worker_secret,
                          &e2__v1__rendezvous_get_response__descriptor, &resp,
                          job->agent->cfg.rpc_timeout_ms + left, err, errlen);
        if (rc < 0) return rc;
        E2__V1__RendezvousGetResponse *r = (E2__V1__RendezvousGetResponse *)resp;
        if (r->has_found && r->found) {
            *len = r->value.len;
            *value = malloc(*len ? *len : 1);
            if (!*value) {
                protobuf_c_message_free_unpacked(resp, NULL);
                return e2_errf(err, errlen, "out of memory");
            }
            if (*len) memcpy(*value, r->value.data, *len);
            protobuf_c_message_free_unpacked(resp, NULL);
            return 0;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
        if (now_ms() >= end) {
            e2_errf(err, errlen, "rendezvous key %s not put within %d ms", key, timeout_ms);
            return E2_NOTFOUND;
        }
        if (atomic_load(&job->stop) == E2W_AGENT_ABORT)
            return e2_errf(err, errlen, "rendezvous key %s: rank aborted", key);
    }
}

/* ---- the training thread ---- */

static void *job_main(void *arg) {
    e2w_agent_job *j = arg;
    e2w_agent *a = j->agent;
    j->result.outcome = E2__V1__OUTCOME__OUTCOME_FAILED_INFRA;
    j->result.exit_code = 1;
    snprintf(j->result.reason, sizeof j->result.reason, "the runner returned no outcome");
    a->cfg.runner(j, &j->result, a->cfg.runner_data);
    pthread_mutex_lock(&a->mu);
    j->finished = 1;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void job_free(e2w_agent_job *j) {
    if (!j) return;
    if (j->asg) protobuf_c_message_free_unpacked(&j->asg->base, NULL);
    if (j->client) e2_rpc_client_free(j->client);
    free(j->result.eval_json);
    for (size_t i = 0; i < j->result.n_eval; i++)
        protobuf_c_message_free_unpacked(&j->result.eval[i]->base, NULL);
    free(j->result.eval);
    free(j);
}

/* Copies the assignment and starts its training thread (mu held). */
static int job_start(e2w_agent *a, const E2__V1__Assignment *asg) {
    e2w_agent_job *j = calloc(1, sizeof *j);
    if (!j) return E2_ERR;
    j->agent = a;
    size_t sz = protobuf_c_message_get_packed_size(&asg->base);
    uint8_t *buf = malloc(sz ? sz : 1);
    if (buf) {
        protobuf_c_message_pack(&asg->base, buf);
        j->asg = e2__v1__assignment__unpack(NULL, sz, buf);
        free(buf);
    }
    if (!j->asg) {
        free(j);
        return E2_ERR;
    }
    e2__v1__progress__init(&j->progress);
    atomic_init(&j->stop, E2W_AGENT_RUN);
    atomic_init(&j->deadline_ms, 0);
    if (pthread_create(&j->thread, NULL, job_main, j) != 0) {
        job_free(j);
        return E2_ERR;
    }
    a->job = j;
    return 0;
}

/* Fills a Progress of the running rank (mu held); its strings point into
 * the job's assignment. */
static void job_progress(e2w_agent_job *j, E2__V1__Progress *p) {
    *p = j->progress;
    p->job_id = j->asg->job_id;
    p->has_attempt = 1, p->attempt = j->asg->attempt;
    p->has_rank = 1, p->rank = j->asg->rank;
    p->has_step = 1;
    if (!j->has_progress) p->step = j->asg->start_step;
    const E2__V1__JobSpec *s = j->asg->spec;
    if (s && s->train && s->train->has_steps)
        p->has_total_steps = 1, p->total_steps = s->train->steps;
}

static int same_attempt(const e2w_agent_job *j, const char *job_id, int has_attempt,
                        uint32_t attempt) {
    return j && job_id && !strcmp(j->asg->job_id, job_id) &&
           (!has_attempt || attempt == j->asg->attempt);
}

/* ---- the control thread ---- */

static void apply_commands(e2w_agent *a, const E2__V1__HeartbeatResponse *r) {
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < r->n_commands; i++) {
        const E2__V1__Command *c = r->commands[i];
        e2w_agent_job *j = a->job;
        switch (c->kind_case) {
        case E2__V1__COMMAND__KIND_ASSIGNMENT: {
            const E2__V1__Assignment *as = c->assignment;
            if (j || a->stop_requested || !as->job_id) break;
            if (job_start(a, as) < 0)
                emit(a, "cannot start job %s: out of memory", as->job_id);
            else
                emit(a, "assigned %s attempt %u rank %u/%u", as->job_id, as->attempt, as->rank,
                     as->world_size);
            break;
        }
        case E2__V1__COMMAND__KIND_CANCEL:
            if (!same_attempt(j, c->cancel->job_id, c->cancel->has_attempt, c->cancel->attempt))
                break;
            atomic_store(&j->deadline_ms, c->cancel->deadline_unix_ms);
            raise_stop(j, E2W_AGENT_CANCEL);
            emit(a, "cancel of %s", j->asg->job_id);
            break;
        case E2__V1__COMMAND__KIND_ABORT:
            if (!same_attempt(j, c->abort->job_id, c->abort->has_attempt, c->abort->attempt)) break;
            abort_job(j);
            emit(a, "abort of %s: %s", j->asg->job_id, c->abort->reason ? c->abort->reason : "");
            break;
        default: break;
        }
    }
    pthread_mutex_unlock(&a->mu);
}

static int do_register(e2w_agent *a, char *msg, size_t msglen) {
    char host[256];
    if (a->name)
        snprintf(host, sizeof host, "%s", a->name);
    else if (gethostname(host, sizeof host) < 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    E2__V1__RegisterWorkerRequest req = E2__V1__REGISTER_WORKER_REQUEST__INIT;
    E2__V1__Progress running;
    char prev[128], prev_secret[128];
    req.hostname = host;
    req.device = a->device;
    req.has_device_index = 1, req.device_index = a->cfg.device_index;
    req.has_pid = 1, req.pid = (int32_t)getpid();
    req.version = (char *)E2W_AGENT_VERSION;
    req.has_spawned_by_e2d = 1, req.spawned_by_e2d = a->cfg.spawned_by_e2d != 0;
    pthread_mutex_lock(&a->mu);
    snprintf(prev, sizeof prev, "%s", a->prev_worker_id);
    snprintf(prev_secret, sizeof prev_secret, "%s", a->prev_worker_secret);
    if (*prev) req.previous_worker_id = prev;
    if (*prev && *prev_secret) req.previous_worker_secret = prev_secret;
    if (a->job && !a->job->finished) {
        job_progress(a->job, &running);
        req.running = &running;
    }
    pthread_mutex_unlock(&a->mu);
    ProtobufCMessage *resp = NULL;
    int st = call(a, &a->client, "RegisterWorker", &req.base,
                  &e2__v1__register_worker_response__descriptor, &resp, a->cfg.rpc_timeout_ms, msg,
                  msglen);
    if (st != E2_RPC_OK) return st;
    E2__V1__RegisterWorkerResponse *r = (E2__V1__RegisterWorkerResponse *)resp;
    if (!r->worker_id || !*r->worker_id) {
        protobuf_c_message_free_unpacked(resp, NULL);
        snprintf(msg, msglen, "RegisterWorker answered without a worker id");
        return E2_RPC_INTERNAL;
    }
    snprintf(prev, sizeof prev, "%s", r->worker_id);
    pthread_mutex_lock(&a->mu);
    snprintf(a->worker_id, sizeof a->worker_id, "%s", prev);
    snprintf(a->prev_worker_id, sizeof a->prev_worker_id, "%s", prev);
    /* An e2d without worker identity answers none: requests go without. */
    snprintf(a->worker_secret, sizeof a->worker_secret, "%s",
             r->worker_secret ? r->worker_secret : "");
    snprintf(a->prev_worker_secret, sizeof a->prev_worker_secret, "%s", a->worker_secret);
    a->interval_ms = r->has_heartbeat_interval_ms && r->heartbeat_interval_ms
                         ? r->heartbeat_interval_ms
                         : DEFAULT_INTERVAL_MS;
    pthread_mutex_unlock(&a->mu);
    protobuf_c_message_free_unpacked(resp, NULL);
    emit(a, "registered with %s as %s (heartbeat every %u ms)", a->coordinator, prev,
         a->interval_ms);
    return E2_RPC_OK;
}

/* The RPC runs with mu released; the job cannot go away meanwhile because
 * only this thread frees it. */
static int do_heartbeat(e2w_agent *a, char *msg, size_t msglen) {
    E2__V1__HeartbeatRequest req = E2__V1__HEARTBEAT_REQUEST__INIT;
    E2__V1__Progress prog;
    char wid[128], secret[128];
    char *lines[LOG_BATCH];
    pthread_mutex_lock(&a->mu);
    snprintf(wid, sizeof wid, "%s", a->worker_id);
    snprintf(secret, sizeof secret, "%s", a->worker_secret);
    req.worker_id = wid;
    if (*secret) req.worker_secret = secret;
    req.has_state = 1;
    req.state =
        a->job ? E2__V1__WORKER_STATE__WORKER_STATE_BUSY : E2__V1__WORKER_STATE__WORKER_STATE_IDLE;
    /* Shutting down: e2d gives this worker no new rank. */
    if (a->stop_requested) req.has_stopping = req.stopping = 1;
    if (a->job) {
        job_progress(a->job, &prog);
        req.progress = &prog;
    }
    a->last_beat_ms = mono_ms();
    a->progress_dirty = 0;
    pthread_mutex_unlock(&a->mu);
    req.n_log_lines = a->job ? log_peek(a, lines, LOG_BATCH) : 0;
    req.log_lines = lines;
    ProtobufCMessage *resp = NULL;
    int st = call(a, &a->client, "Heartbeat", &req.base, &e2__v1__heartbeat_response__descriptor,
                  &resp, a->cfg.rpc_timeout_ms, msg, msglen);
    if (st == E2_RPC_FAILED_PRECONDITION) {
        /* the attempt this rank belongs to is over: stop it */
        pthread_mutex_lock(&a->mu);
        if (a->job) abort_job(a->job);
        pthread_mutex_unlock(&a->mu);
        emit(a, "e2d ended the attempt: %s", msg);
        return E2_RPC_OK;
    }
    if (st != E2_RPC_OK) return st;
    log_drop(a, req.n_log_lines);
    apply_commands(a, (E2__V1__HeartbeatResponse *)resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    return E2_RPC_OK;
}

static const char *outcome_name(int o) {
    switch (o) {
    case E2__V1__OUTCOME__OUTCOME_SUCCEEDED: return "SUCCEEDED";
    case E2__V1__OUTCOME__OUTCOME_FAILED_USER: return "FAILED_USER";
    case E2__V1__OUTCOME__OUTCOME_FAILED_INFRA: return "FAILED_INFRA";
    case E2__V1__OUTCOME__OUTCOME_CANCELLED: return "CANCELLED";
    default: return "UNSPECIFIED";
    }
}

/* Turns a rank stopped by the worker itself (SIGTERM) into an infrastructure
 * failure: e2d must run the rank elsewhere, not call the job cancelled. */
static void settle_result(e2w_agent *a, e2w_agent_job *j) {
    e2w_agent_result *r = &j->result;
    pthread_mutex_lock(&a->mu);
    int by_worker = j->stop_by_worker;
    pthread_mutex_unlock(&a->mu);
    if (by_worker && r->outcome == E2__V1__OUTCOME__OUTCOME_CANCELLED) {
        r->outcome = E2__V1__OUTCOME__OUTCOME_FAILED_INFRA;
        r->exit_code = 1;
        snprintf(r->reason, sizeof r->reason, "e2worker was stopped (signal)");
    }
}

/* ReportDone of the finished rank. E2_RPC_OK also when e2d refused it for
 * good (the attempt is over): there is nothing left to tell. */
static int do_report_done(e2w_agent *a, char *msg, size_t msglen) {
    e2w_agent_job *j = a->job;
    E2__V1__ReportDoneRequest req = E2__V1__REPORT_DONE_REQUEST__INIT;
    char wid[128], secret[128];
    char *lines[LOG_BATCH];
    copy_worker_id(a, wid, sizeof wid);
    copy_worker_secret(a, secret, sizeof secret);
    req.worker_id = wid;
    if (*secret) req.worker_secret = secret;
    req.job_id = j->asg->job_id;
    req.has_attempt = 1, req.attempt = j->asg->attempt;
    req.has_rank = 1, req.rank = j->asg->rank;
    req.has_outcome = 1, req.outcome = j->result.outcome;
    req.has_exit_code = 1, req.exit_code = j->result.exit_code;
    req.reason = j->result.reason;
    req.eval_json = j->result.eval_json;
    req.n_eval = j->result.n_eval;
    req.eval = j->result.eval;
    req.n_log_lines = log_peek(a, lines, LOG_BATCH);
    req.log_lines = lines;
    ProtobufCMessage *resp = NULL;
    int st = call(a, &a->client, "ReportDone", &req.base, &e2__v1__report_done_response__descriptor,
                  &resp, a->cfg.rpc_timeout_ms, msg, msglen);
    if (resp) protobuf_c_message_free_unpacked(resp, NULL);
    if (st == E2_RPC_FAILED_PRECONDITION || st == E2_RPC_INVALID_ARGUMENT) {
        emit(a, "ReportDone of %s refused: %s: %s", j->asg->job_id, e2_rpc_status_name(st), msg);
        st = E2_RPC_OK;
    }
    if (st == E2_RPC_OK) log_drop(a, req.n_log_lines);
    return st;
}

/* Joins the finished training thread once and settles its result. */
static void job_join(e2w_agent *a, e2w_agent_job *j) {
    if (j->joined) return;
    pthread_join(j->thread, NULL);
    j->joined = 1;
    settle_result(a, j);
    emit(a, "%s rank %u ended: %s%s%s", j->asg->job_id, j->asg->rank,
         outcome_name(j->result.outcome), *j->result.reason ? ": " : "", j->result.reason);
}

/* Forgets the reported rank: the worker is idle again. */
static void job_release(e2w_agent *a, e2w_agent_job *j) {
    char *lines[LOG_BATCH];
    size_t n;
    pthread_mutex_lock(&a->mu);
    a->job = NULL;
    pthread_mutex_unlock(&a->mu);
    while ((n = log_peek(a, lines, LOG_BATCH)) > 0) log_drop(a, n);
    job_free(j);
}

/* Sleeps until the next Heartbeat is due (mu held): heartbeat_interval_ms
 * after the last one, or PROGRESS_GAP_MS after it once a step ended, so
 * e2d sees (nearly) every step; wakes early on stop or a finished rank. */
static void wait_next_beat(e2w_agent *a) {
    for (;;) {
        if (a->stop_requested || (a->job && a->job->finished)) return;
        int64_t since = mono_ms() - a->last_beat_ms;
        int64_t due = (int64_t)a->interval_ms - since;
        if (a->progress_dirty && PROGRESS_GAP_MS - since < due) due = PROGRESS_GAP_MS - since;
        if (due <= 0) return;
        timed_wait(a, (int)due);
    }
}

static void forget_worker_id(e2w_agent *a) {
    pthread_mutex_lock(&a->mu);
    *a->worker_id = 0;
    pthread_mutex_unlock(&a->mu);
}

int e2w_agent_run(e2w_agent *a, char *err, size_t errlen) {
    char msg[512];
    int backoff = 50, unreachable = 0, give_up = 0;
    (void)err, (void)errlen;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        int stopping = a->stop_requested;
        e2w_agent_job *j = a->job;
        int finished = j && j->finished;
        int registered = *a->worker_id != 0;
        pthread_mutex_unlock(&a->mu);
        if (stopping && !j) {
            /* e2d hears it is going (one try): no rank lands on it while
             * it would still look idle until its heartbeat timeout. */
            if (registered) do_heartbeat(a, msg, sizeof msg);
            break;
        }
        if (finished) job_join(a, j);

        int st;
        if (!registered) {
            st = do_register(a, msg, sizeof msg);
        } else if (finished && !j->final_beat) {
            /* the last step's progress and lines go before ReportDone */
            st = do_heartbeat(a, msg, sizeof msg);
            if (st == E2_RPC_OK) {
                j->final_beat = 1;
                continue;
            }
        } else if (finished) {
            st = do_report_done(a, msg, sizeof msg);
            if (st == E2_RPC_OK) {
                job_release(a, j);
                give_up = 0;
                continue;
            }
        } else {
            st = do_heartbeat(a, msg, sizeof msg);
        }
        if (st == E2_RPC_NOT_FOUND) {
            emit(a, "e2d does not know this worker: registering again");
            forget_worker_id(a);
            continue;
        }
        if (st == E2_RPC_OK && !registered) {
            unreachable = 0;
            continue; /* heartbeat at once: commands may be waiting */
        }
        /* A worker asked to end does not wait for an unreachable e2d. */
        if (st != E2_RPC_OK && stopping && finished && ++give_up >= DONE_TRIES_STOPPING) {
            emit(a, "giving up reporting %s: e2d unreachable (%s)", j->asg->job_id, msg);
            job_release(a, j);
            continue;
        }

        pthread_mutex_lock(&a->mu);
        if (st == E2_RPC_OK) {
            backoff = 50;
            if (unreachable) emit(a, "e2d reachable again");
            unreachable = 0;
            wait_next_beat(a);
        } else {
            if (!unreachable)
                emit(a, "e2d at %s unreachable (%s: %s): retrying", a->coordinator,
                     e2_rpc_status_name(st), msg);
            unreachable = 1;
            timed_wait(a, backoff);
            backoff = backoff * 2 > a->cfg.backoff_max_ms ? a->cfg.backoff_max_ms : backoff * 2;
        }
        pthread_mutex_unlock(&a->mu);
    }
    return 0;
}
