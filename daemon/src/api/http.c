/* http.c -- the HTTP listener of e2d (see http.h): routing, Prometheus
 * text, JSON API and static files on libmicrohttpd, driven from e2d's
 * libuv loop.
 *
 * libmicrohttpd does the connections, the parsing, pipelining, keep-alive
 * and the limits; it runs in its epoll mode without a thread of its own:
 * a uv_poll_t watches its epoll descriptor and a uv timer follows
 * MHD_get_timeout, and both call MHD_run, so the handlers below run on the
 * loop thread and read e2d's state directly.
 *
 * Limits: HTTP_MAX_CONNS connections in all and HTTP_MAX_PER_IP from one
 * address (past them a connection is closed at accept), HTTP_CONN_MEMORY
 * bytes per connection (a longer request head gets 431), an idle timeout,
 * and an absolute deadline per request: libmicrohttpd's idle timeout is
 * reset by every byte received, so a client trickling its head a byte at
 * a time would hold its connection forever (slowloris). Each connection's
 * next request head must therefore be complete HTTP_HEAD_MS after the
 * connection opened or its previous reply was sent, and the reply sent
 * HTTP_REPLY_MS after the head; a sweep shuts a late connection down
 * (shutdown(2): libmicrohttpd then sees the end of the stream and closes
 * it itself). Requests carry no body: this API is read-only, so a
 * Content-Length above 0 or a Transfer-Encoding gets 413, both at once
 * (ambiguous framing, the request-smuggling pattern) 400, and the
 * connection is closed after that reply. */
#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "api.h"
#include "pbjson.h"

#define HTTP_MAX_CONNS   256       /* connections in all */
#define HTTP_MAX_PER_IP  32        /* connections from one address */
#define HTTP_CONN_MEMORY 16384     /* request head + reply head, per conn */
#define HTTP_IDLE_S      30        /* no byte either way this long: closed */
#define HTTP_HEAD_MS     10000     /* open/last reply -> whole request head */
#define HTTP_REPLY_MS    60000     /* request head -> reply sent */
#define HTTP_SWEEP_MS    500       /* how often deadlines are checked */
#define HTTP_MAX_FILE    (4 << 20) /* largest static file served */
#define HTTP_MAX_QUERY   16        /* query parameters of one request */

/* One TCP connection, as libmicrohttpd reports them (socket context). */
typedef struct http_conn {
    struct http_conn *prev, *next;
    int fd;
    int64_t deadline_ms; /* the current request's absolute end */
    int cut;             /* shut down at its deadline */
} http_conn;

struct e2_http_server {
    e2d_server *srv;
    struct MHD_Daemon *d;
    uv_poll_t poll;   /* libmicrohttpd's epoll descriptor */
    uv_timer_t timer; /* MHD_get_timeout */
    uv_timer_t sweep; /* deadlines */
    int open_handles; /* freed when it drops to 0 */
    http_conn *conns;
    char root[512];
    e2_http_auth_cb auth;
    void *auth_data;
    int metrics_public;
    /* Per-request states, as the request's context pointer: target
     * checked (escapes fine or not), head in, reply queued. */
    char uri_ok, uri_bad, head_ok, head_bad, answered;
};

/* One request being answered. */
typedef struct http_req {
    e2_http_server *h;
    struct MHD_Connection *mc;
    char *path; /* percent-decoded */
    const char *authorization;
    int close;  /* Connection: close on the reply */
    int failed; /* queueing the reply failed */
    struct {
        const char *key, *value; /* percent-decoded */
    } q[HTTP_MAX_QUERY];
    int nq, too_many;
} http_req;

/* A growable text buffer; `failed` is set once an allocation failed. */
typedef struct http_buf {
    char *p;
    size_t len, cap;
    int failed;
} http_buf;

static void http_bprintf(http_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void http_bprintf(http_buf *b, const char *fmt, ...) {
    va_list ap;
    int n;
    if (b->failed) return;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* ---- replies ---- */

/* Queues the reply. `extra` is one more header line ("Name: value") or
 * NULL. libmicrohttpd adds Content-Length and Date, and leaves the body
 * out for HEAD. */
static void http_send(http_req *r, int status, const char *ctype, const char *extra,
                      const char *body, size_t len) {
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    char name[64];
    const char *colon;
    int ok;
    if (!resp) {
        r->failed = 1;
        return;
    }
    ok = MHD_add_response_header(resp, "Content-Type", ctype) == MHD_YES &&
         MHD_add_response_header(resp, "Cache-Control", "no-store") == MHD_YES &&
         MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff") == MHD_YES;
    if (ok && extra && (colon = strchr(extra, ':')) && (size_t)(colon - extra) < sizeof name) {
        memcpy(name, extra, (size_t)(colon - extra));
        name[colon - extra] = 0;
        ok = MHD_add_response_header(resp, name, colon + 2) == MHD_YES;
    }
    if (ok && r->close) ok = MHD_add_response_header(resp, "Connection", "close") == MHD_YES;
    if (!ok || MHD_queue_response(r->mc, (unsigned)status, resp) != MHD_YES) r->failed = 1;
    MHD_destroy_response(resp);
}

/* A plain-text error of one line; `fatal` closes the connection after it
 * (the request's framing cannot be trusted). */
static void http_error(http_req *r, int status, int fatal, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void http_error(http_req *r, int status, int fatal, const char *fmt, ...) {
    char msg[E2_ERRLEN + 64];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    if ((size_t)n > sizeof msg - 2) n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    msg[n] = 0;
    if (fatal) r->close = 1;
    http_send(r, status, "text/plain; charset=utf-8",
              status == 405   ? "Allow: GET, HEAD"
              : status == 401 ? "WWW-Authenticate: Bearer realm=\"e2d\""
                              : NULL,
              msg, (size_t)n);
}

/* ---- JSON API ---- */

static int http_status_of(e2_rpc_status code) {
    switch (code) {
    case E2_RPC_INVALID_ARGUMENT: return 400;
    case E2_RPC_NOT_FOUND: return 404;
    case E2_RPC_UNAVAILABLE:
    case E2_RPC_RESOURCE_EXHAUSTED: return 503;
    default: return 500;
    }
}

static void http_json_error(http_req *r, e2_rpc_status code, const char *msg) {
    json_t *o =
        json_pack("{s:{s:s,s:s}}", "error", "code", e2_rpc_status_name(code), "message", msg);
    char *text = o ? e2_pbjson_format(o, 0) : NULL;
    json_decref(o);
    if (!text) {
        http_error(r, 500, 0, "e2d: out of memory");
        return;
    }
    http_send(r, http_status_of(code), "application/json", NULL, text, strlen(text));
    free(text);
}

/* Sends reply (and frees it) or the error of a builder. */
static void http_json_reply(http_req *r, e2_rpc_status code, void *reply, const char *msg) {
    char *text;
    if (code != E2_RPC_OK) {
        http_json_error(r, code, msg);
        return;
    }
    text = e2_pbjson_to_string(reply, 0);
    protobuf_c_message_free_unpacked(reply, NULL);
    if (!text) {
        http_json_error(r, E2_RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    http_send(r, 200, "application/json", NULL, text, strlen(text));
    free(text);
}

/* A whole non-negative number of at most `max`, or E2_ERR. */
static long long http_number(const char *s, long long max) {
    char *end;
    long long v;
    if (!isdigit((unsigned char)*s)) return E2_ERR;
    errno = 0;
    v = strtoll(s, &end, 10);
    return *end || errno || v > max ? E2_ERR : v;
}

static int http_state_value(const char *s) {
    char name[64];
    const ProtobufCEnumValue *v;
    if (strncmp(s, "JOB_STATE_", 10)) {
        snprintf(name, sizeof name, "JOB_STATE_%s", s);
        for (char *p = name; *p; p++) *p = (char)toupper((unsigned char)*p);
        s = name;
    }
    v = protobuf_c_enum_descriptor_get_value_by_name(&e2__v1__job_state__descriptor, s);
    return v && v->value > 0 ? v->value : -1;
}

static void http_api_list(http_req *r) {
    e2d_server *srv = r->h->srv;
    E2__V1__ListJobsRequest q = E2__V1__LIST_JOBS_REQUEST__INIT;
    E2__V1__JobState states[HTTP_MAX_QUERY];
    char *labels[HTTP_MAX_QUERY], msg[E2_ERRLEN + 64];
    E2__V1__ListJobsResponse *out = NULL;
    e2_rpc_status code;
    q.states = states;
    q.labels = labels;
    for (int i = 0; i < r->nq; i++) {
        const char *k = r->q[i].key, *v = r->q[i].value;
        long long n;
        if (!strcmp(k, "state")) {
            int s = http_state_value(v);
            if (s < 0) {
                http_json_error(r, E2_RPC_INVALID_ARGUMENT,
                                "state: unknown job state (use PENDING, "
                                "STARTING, RUNNING, RESTARTING, SUCCEEDED, "
                                "FAILED, CANCELLING or CANCELLED)");
                return;
            }
            states[q.n_states++] = (E2__V1__JobState)s;
        } else if (!strcmp(k, "label")) {
            labels[q.n_labels++] = (char *)(uintptr_t)r->q[i].value;
        } else if (!strcmp(k, "page_size")) {
            if ((n = http_number(v, 1000000)) < 0) {
                http_json_error(r, E2_RPC_INVALID_ARGUMENT, "page_size must be a whole number");
                return;
            }
            q.has_page_size = 1;
            q.page_size = (uint32_t)n;
        } else if (!strcmp(k, "page_token")) {
            q.page_token = (char *)(uintptr_t)r->q[i].value;
        } else {
            snprintf(msg, sizeof msg,
                     "%.64s: unknown query parameter (use state, label, "
                     "page_size, page_token)",
                     k);
            http_json_error(r, E2_RPC_INVALID_ARGUMENT, msg);
            return;
        }
    }
    code = e2_api_build_list_jobs(srv, &q, &out, msg, sizeof msg);
    http_json_reply(r, code, out, msg);
}

static void http_api_job(http_req *r, char *id) {
    E2__V1__GetJobRequest q = E2__V1__GET_JOB_REQUEST__INIT;
    E2__V1__GetJobResponse *out = NULL;
    char msg[E2_ERRLEN + 64];
    e2_rpc_status code;
    if (r->nq) {
        http_json_error(r, E2_RPC_INVALID_ARGUMENT, "this resource takes no query parameters");
        return;
    }
    q.id = id;
    code = e2_api_build_get_job(r->h->srv, &q, &out, msg, sizeof msg);
    http_json_reply(r, code, out, msg);
}

static void http_api_metrics(http_req *r, char *id) {
    E2__V1__GetMetricsRequest q = E2__V1__GET_METRICS_REQUEST__INIT;
    E2__V1__GetMetricsResponse *out = NULL;
    char msg[E2_ERRLEN + 64];
    e2_rpc_status code;
    long long n;
    q.id = id;
    for (int i = 0; i < r->nq; i++) {
        if (strcmp(r->q[i].key, "since_step")) {
            snprintf(msg, sizeof msg, "%.64s: unknown query parameter (use since_step)",
                     r->q[i].key);
            http_json_error(r, E2_RPC_INVALID_ARGUMENT, msg);
            return;
        }
        if ((n = http_number(r->q[i].value, UINT32_MAX)) < 0) {
            http_json_error(r, E2_RPC_INVALID_ARGUMENT, "since_step must be a whole number");
            return;
        }
        q.has_since_step = 1;
        q.since_step = (uint32_t)n;
    }
    code = e2_api_build_metrics(r->h->srv, &q, &out, msg, sizeof msg);
    http_json_reply(r, code, out, msg);
}

/* ---- /metrics ---- */

/* The gauges of each live job, one family per row of http_job_gauges. */
enum {
    HTTP_G_STEP,
    HTTP_G_TOTAL,
    HTTP_G_LOSS,
    HTTP_G_TPS,
    HTTP_G_RESTARTS,
    HTTP_G_ATTEMPT,
    HTTP_G_CKPT_AGE,
    HTTP_G_N
};

static const struct {
    const char *name, *help;
} http_job_gauges[HTTP_G_N] = {
    [HTTP_G_STEP] = { "e2_job_step", "Newest training step of a live job." },
    [HTTP_G_TOTAL] = { "e2_job_total_steps", "Steps the job trains for." },
    [HTTP_G_LOSS] = { "e2_job_loss", "Training loss at the newest step." },
    [HTTP_G_TPS] = { "e2_job_tokens_per_second", "Training throughput of the job (all ranks)." },
    [HTTP_G_RESTARTS] = { "e2_job_restarts", "Restarts after infrastructure faults." },
    [HTTP_G_ATTEMPT] = { "e2_job_attempt", "Current attempt number." },
    [HTTP_G_CKPT_AGE] = { "e2_job_checkpoint_age_seconds",
                          "Seconds since the newest committed checkpoint "
                          "(absent before the first)." },
};

typedef struct http_active {
    char id[E2_STORE_IDLEN];
    double v[HTTP_G_N];
    int has_ckpt;
} http_active;

typedef struct http_scan {
    int64_t by_state[E2_JOBSTATE_N];
    http_active *active;
    size_t nactive, cap;
    int failed;
} http_scan;

/* Jobs that hold or wait for workers without being finished. */
static int http_job_live(int state) {
    return state == E2_JOBSTATE_STARTING || state == E2_JOBSTATE_RUNNING ||
           state == E2_JOBSTATE_RESTARTING || state == E2_JOBSTATE_CANCELLING;
}

static int http_scan_job(void *ud, const e2_store_job *j) {
    http_scan *s = ud;
    http_active *a;
    if (j->state > 0 && j->state < E2_JOBSTATE_N) s->by_state[j->state]++;
    if (!http_job_live(j->state)) return 0;
    if (s->nactive == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        http_active *p = realloc(s->active, cap * sizeof *p);
        if (!p) {
            s->failed = 1;
            return 1;
        }
        s->active = p;
        s->cap = cap;
    }
    a = &s->active[s->nactive++];
    memset(a, 0, sizeof *a);
    memcpy(a->id, j->id, sizeof a->id);
    a->v[HTTP_G_STEP] = (double)j->step;
    a->v[HTTP_G_TOTAL] = (double)j->total_steps;
    a->v[HTTP_G_LOSS] = j->loss;
    a->v[HTTP_G_TPS] = j->tokens_per_second;
    a->v[HTTP_G_RESTARTS] = j->restarts;
    a->v[HTTP_G_ATTEMPT] = j->attempt;
    return 0;
}

static void http_newest_ckpt(void *ud, const e2_store_ckpt *c) {
    *(int64_t *)ud = c->committed_ms; /* ascending steps: the last wins */
}

static void http_gauge_head(http_buf *b, const char *name, const char *help) {
    http_bprintf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* Prometheus spells NaN and +Inf/-Inf so; %.17g would give "nan", "inf". */
static void http_value(http_buf *b, double v) {
    if (v != v)
        http_bprintf(b, "NaN\n");
    else if (v > 1e308 || v < -1e308)
        http_bprintf(b, "%sInf\n", v > 0 ? "+" : "-");
    else
        http_bprintf(b, "%.17g\n", v);
}

/* Counts every stored job by state (one pass over the jobs table, O(jobs)
 * per scrape) and collects the live ones with their newest checkpoint. */
static int http_scan_jobs(e2d_server *srv, http_scan *s, char *err, size_t errlen) {
    int64_t now = e2d_now_ms();
    unsigned all = 0;
    for (int st = 1; st < E2_JOBSTATE_N; st++) all |= 1u << st;
    if (e2_store_job_in_states(srv->db, all, http_scan_job, s, err, errlen) < 0) return E2_ERR;
    if (s->failed) return e2_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < s->nactive; i++) {
        http_active *a = &s->active[i];
        int64_t at = -1;
        if (e2_store_ckpt_list(srv->db, a->id, http_newest_ckpt, &at, err, errlen) < 0)
            return E2_ERR;
        a->has_ckpt = at >= 0;
        a->v[HTTP_G_CKPT_AGE] = at >= 0 && now > at ? (now - at) / 1000.0 : 0;
    }
    return 0;
}

static void http_metrics(http_req *r) {
    e2d_server *srv = r->h->srv;
    static const char *wstates[] = { "UNSPECIFIED", "IDLE", "BUSY", "LOST" };
    int64_t workers[4] = { 0 };
    http_scan s = { { 0 }, NULL, 0, 0, 0 };
    http_buf b = { 0 };
    char err[E2_ERRLEN];
    e2d_batch_flush(srv);
    if (http_scan_jobs(srv, &s, err, sizeof err) < 0) {
        free(s.active);
        http_error(r, 500, 0, "state store: %s", err);
        return;
    }
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (w->row.state >= 0 && w->row.state < 4) workers[w->row.state]++;
    http_gauge_head(&b, "e2_up", "1 while e2d serves (0 while shutting down).");
    http_bprintf(&b, "e2_up %d\n", !srv->shutting_down);
    http_gauge_head(&b, "e2_jobs", "Stored jobs by state.");
    for (int st = 1; st < E2_JOBSTATE_N; st++)
        http_bprintf(&b, "e2_jobs{state=\"%s\"} %lld\n", e2_jobstate_name(st),
                     (long long)s.by_state[st]);
    http_gauge_head(&b, "e2_workers", "Registered workers by state.");
    for (int st = 1; st < 4; st++)
        http_bprintf(&b, "e2_workers{state=\"%s\"} %lld\n", wstates[st], (long long)workers[st]);
    for (int g = 0; g < HTTP_G_N; g++) {
        http_gauge_head(&b, http_job_gauges[g].name, http_job_gauges[g].help);
        for (size_t i = 0; i < s.nactive; i++) {
            if (g == HTTP_G_CKPT_AGE && !s.active[i].has_ckpt) continue;
            http_bprintf(&b, "%s{job=\"%s\"} ", http_job_gauges[g].name, s.active[i].id);
            http_value(&b, s.active[i].v[g]);
        }
    }
    free(s.active);
    if (b.failed)
        http_error(r, 500, 0, "e2d: out of memory");
    else
        http_send(r, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.p, b.len);
    free(b.p);
}

/* ---- static files ---- */

static const char *http_ctype(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        { ".html", "text/html; charset=utf-8" },
        { ".js", "text/javascript; charset=utf-8" },
        { ".css", "text/css; charset=utf-8" },
        { ".svg", "image/svg+xml" },
        { ".png", "image/png" },
        { ".ico", "image/x-icon" },
        { ".txt", "text/plain; charset=utf-8" },
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext)) return types[i].type;
    return NULL;
}

/* Files directly in the root only, by a plain name: no '/', no leading
 * dot, so no path can leave the root. O_NONBLOCK: a FIFO put there must
 * not block the loop (it then fails the regular-file check). */
static void http_file(http_req *r, const char *name) {
    char path[1024];
    const char *ctype = http_ctype(name);
    struct stat st;
    char *data;
    int fd;
    ssize_t got = 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p)) ctype = NULL;
    if (!ctype || name[0] == '.' ||
        (size_t)snprintf(path, sizeof path, "%s/%s", r->h->root, name) >= sizeof path ||
        (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
        http_error(r, 404, 0, "%s: no such page", r->path);
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > HTTP_MAX_FILE ||
        !(data = malloc((size_t)st.st_size + 1))) {
        close(fd);
        http_error(r, 404, 0, "%s: no such page", r->path);
        return;
    }
    while (got < st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)(st.st_size - got));
        if (n <= 0) break;
        got += n;
    }
    close(fd);
    if (got != st.st_size)
        http_error(r, 500, 0, "%s: read failed", r->path);
    else
        http_send(r, 200, ctype, NULL, data, (size_t)got);
    free(data);
}

/* Asks the auth hook about a request that reads what the gRPC method
 * `method` reads; answers 401/403 itself when refused. */
static int http_authorized(http_req *r, const char *method) {
    e2_http_server *h = r->h;
    char msg[E2_ERRLEN];
    int status;
    if (!h->auth) return 1;
    msg[0] = 0;
    if (!(status = h->auth(r->authorization, method, msg, sizeof msg, h->auth_data))) return 1;
    http_error(r, status, 0, "%s", msg[0] ? msg : "denied");
    return 0;
}

#define HTTP_COORD "/e2.v1.Coordinator/"

/* /healthz and the page's files hold no data and need no token; /metrics
 * counts as ListJobs unless --http-metrics-public; the API as the methods
 * it mirrors. */
static void http_route(http_req *r) {
    char *p = r->path, *id, *slash;
    if (!strcmp(p, "/healthz")) {
        int down = r->h->srv->shutting_down;
        http_send(r, down ? 503 : 200, "text/plain; charset=utf-8", NULL,
                  down ? "shutting down\n" : "ok\n", down ? 14 : 3);
        return;
    }
    if (!strcmp(p, "/metrics")) {
        if (r->h->metrics_public || http_authorized(r, HTTP_COORD "ListJobs")) http_metrics(r);
        return;
    }
    if (!strcmp(p, "/api/v1/jobs")) {
        if (http_authorized(r, HTTP_COORD "ListJobs")) http_api_list(r);
        return;
    }
    if (!strncmp(p, "/api/v1/jobs/", 13) && p[13]) {
        id = p + 13;
        slash = strchr(id, '/');
        if (!slash) {
            if (http_authorized(r, HTTP_COORD "GetJob")) http_api_job(r, id);
            return;
        }
        if (!strcmp(slash, "/metrics")) {
            *slash = 0;
            if (http_authorized(r, HTTP_COORD "GetMetrics")) http_api_metrics(r, id);
            return;
        }
    }
    if (!strncmp(p, "/api/", 5)) {
        http_json_error(r, E2_RPC_NOT_FOUND,
                        "no such API path (use /api/v1/jobs, "
                        "/api/v1/jobs/<id>, /api/v1/jobs/<id>/metrics)");
        return;
    }
    http_file(r, !strcmp(p, "/") ? "index.html" : p + 1);
}

/* ---- requests ---- */

/* The connection's context (see http_notify), or NULL. */
static http_conn *http_conn_of(struct MHD_Connection *mc) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* Called with each request's raw target, before libmicrohttpd decodes
 * it: a bad or NUL escape (%zz, %00) would otherwise be passed through
 * or cut the string short. Its answer is the request's context. */
static void *http_uri(void *cls, const char *uri, struct MHD_Connection *mc) {
    e2_http_server *h = cls;
    (void)mc;
    for (const char *p = uri; *p; p++)
        if (*p == '%' && (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]) ||
                          (p[1] == '0' && p[2] == '0')))
            return &h->uri_bad;
    return &h->uri_ok;
}

static enum MHD_Result http_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    int *n = cls; /* [0] Content-Length, [1] Transfer-Encoding, [2] CL>0 */
    (void)kind;
    if (!strcasecmp(key, "Content-Length")) {
        n[0]++;
        if (!value || strspn(value, "0") != strlen(value) || !*value) n[2] = 1;
    } else if (!strcasecmp(key, "Transfer-Encoding")) {
        n[1]++;
    }
    return MHD_YES;
}

static enum MHD_Result http_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
    http_req *r = cls;
    (void)kind;
    if (r->nq == HTTP_MAX_QUERY) {
        r->too_many = 1;
        return MHD_NO;
    }
    r->q[r->nq].key = key;
    r->q[r->nq].value = value ? value : "";
    r->nq++;
    return MHD_YES;
}

/* The request handler. libmicrohttpd calls it once the head is in, and
 * again once the whole request is: a reply queued on the first call
 * closes the connection without reading any further (right for a request
 * with a body, which is refused there), so the answer to any other request
 * is queued on the second call and the connection stays open. */
static enum MHD_Result http_access(void *cls, struct MHD_Connection *mc, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_size, void **req_cls) {
    e2_http_server *h = cls;
    http_req r;
    char path[2048];
    int framing[3] = { 0, 0, 0 };
    (void)upload_data;
    memset(&r, 0, sizeof r);
    r.h = h;
    r.mc = mc;
    r.path = path;
    /* HTTP/1.0 connections always close: its keep-alive extension is not
     * worth supporting. */
    r.close = strcmp(version, MHD_HTTP_VERSION_1_1) != 0;
    if (*req_cls == &h->answered) {
        *upload_size = 0; /* the body of a refused request */
        return MHD_YES;
    }
    if (*req_cls == &h->uri_ok || *req_cls == &h->uri_bad) {
        /* First call: the head is in. */
        http_conn *c = http_conn_of(mc);
        if (c) c->deadline_ms = e2d_now_ms() + HTTP_REPLY_MS;
        MHD_get_connection_values(mc, MHD_HEADER_KIND, http_header, framing);
        if (framing[0] > 1 || (framing[0] && framing[1])) {
            http_error(&r, 400, 1,
                       "ambiguous request framing (Content-Length given "
                       "twice, or with Transfer-Encoding): refused");
        } else if (framing[1] || framing[2]) {
            http_error(&r, 413, 1,
                       "request bodies are not accepted: this API is "
                       "read-only");
        } else {
            *req_cls = *req_cls == &h->uri_ok ? &h->head_ok : &h->head_bad;
            return MHD_YES;
        }
        *req_cls = &h->answered;
        return r.failed ? MHD_NO : MHD_YES;
    }
    /* Second call: the request is complete (it has no body). */
    if (strcmp(version, MHD_HTTP_VERSION_1_1) && strcmp(version, MHD_HTTP_VERSION_1_0)) {
        http_error(&r, 400, 1, "unsupported protocol version (HTTP/1.0 or HTTP/1.1)");
    } else if (url[0] != '/') {
        http_error(&r, 400, 1,
                   "request target must be an absolute path such as "
                   "/metrics");
    } else if (*req_cls == &h->head_bad ||
               (MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, http_arg, &r), r.too_many)) {
        http_error(&r, 400, 0,
                   "malformed percent-escape or too many query parameters "
                   "(at most %d)",
                   HTTP_MAX_QUERY);
    } else if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        http_error(&r, 405, 0,
                   "%.32s: method not allowed (this API is read-only: GET or "
                   "HEAD)",
                   method);
    } else if ((size_t)snprintf(path, sizeof path, "%s", url) >= sizeof path) {
        http_error(&r, 404, 0, "%.64s...: no such page", url);
    } else {
        r.authorization = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
        http_route(&r);
    }
    *req_cls = &h->answered;
    return r.failed ? MHD_NO : MHD_YES;
}

/* The reply is sent: the next request head is due HTTP_HEAD_MS from now. */
static void http_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                           enum MHD_RequestTerminationCode toe) {
    http_conn *c = http_conn_of(mc);
    (void)cls;
    (void)req_cls;
    (void)toe;
    if (c) c->deadline_ms = e2d_now_ms() + HTTP_HEAD_MS;
}

/* ---- connections and the loop ---- */

static void http_notify(void *cls, struct MHD_Connection *mc, void **ctx,
                        enum MHD_ConnectionNotificationCode toe) {
    e2_http_server *h = cls;
    http_conn *c = *ctx;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!ci || !(c = calloc(1, sizeof *c)))
            return; /* without a deadline: the idle timeout still holds */
        c->fd = ci->connect_fd;
        c->deadline_ms = e2d_now_ms() + HTTP_HEAD_MS;
        c->next = h->conns;
        if (h->conns) h->conns->prev = c;
        h->conns = c;
        *ctx = c;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        if (c->prev)
            c->prev->next = c->next;
        else
            h->conns = c->next;
        if (c->next) c->next->prev = c->prev;
        free(c);
        *ctx = NULL;
    }
}

static void http_timer_cb(uv_timer_t *t);

/* Runs libmicrohttpd and arms the timer for its next timeout. */
static void http_run(e2_http_server *h) {
    MHD_UNSIGNED_LONG_LONG ms;
    MHD_run(h->d);
    if (MHD_get_timeout(h->d, &ms) == MHD_YES)
        uv_timer_start(&h->timer, http_timer_cb, ms < 60000 ? ms : 60000, 0);
    else
        uv_timer_stop(&h->timer);
}

static void http_timer_cb(uv_timer_t *t) {
    http_run(t->data);
}

static void http_poll_cb(uv_poll_t *p, int status, int events) {
    (void)status;
    (void)events;
    http_run(p->data);
}

/* Shuts down every connection past its deadline; libmicrohttpd reads the
 * end of the stream and closes it. */
static void http_sweep_cb(uv_timer_t *t) {
    e2_http_server *h = t->data;
    int64_t now = e2d_now_ms();
    int cut = 0;
    for (http_conn *c = h->conns; c; c = c->next)
        if (!c->cut && now >= c->deadline_ms) {
            shutdown(c->fd, SHUT_RDWR);
            c->cut = 1;
            cut = 1;
        }
    if (cut) http_run(h);
}

static void http_handle_closed(uv_handle_t *handle) {
    e2_http_server *h = handle->data;
    if (--h->open_handles == 0) free(h);
}

/* "host:port" -> sockaddr; IPv6 as "[::1]:port". */
static int http_addr(const char *listen, struct sockaddr_storage *sa, char *err, size_t errlen) {
    char host[256];
    const char *colon = strrchr(listen, ':');
    long long port;
    size_t n;
    if (!colon || colon == listen || (port = http_number(colon + 1, 65535)) < 0)
        return e2_errf(err, errlen,
                       "http-listen must be host:port such as 127.0.0.1:8080 "
                       "(got '%s')",
                       listen);
    n = (size_t)(colon - listen);
    if (listen[0] == '[' && colon[-1] == ']') {
        listen++;
        n -= 2;
    }
    if (n >= sizeof host) return e2_errf(err, errlen, "http-listen: host too long");
    memcpy(host, listen, n);
    host[n] = 0;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    return e2_errf(err, errlen,
                   "http-listen: '%s' is not an IP address (give a numeric "
                   "address such as 127.0.0.1 or [::1])",
                   host);
}

static int http_loopback(const struct sockaddr_storage *sa) {
    static const unsigned char v6_loopback[16] = { [15] = 1 };
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    return !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, v6_loopback, 16);
}

/* Binds and listens on the address; the socket goes to libmicrohttpd. */
static int http_bind(const char *listen_addr, struct sockaddr_storage *sa, int *fd_out, char *err,
                     size_t errlen) {
    socklen_t len =
        sa->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int one = 1, fd;
    *fd_out = -1;
    if ((fd = socket(sa->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        return e2_errf(err, errlen, "http-listen %s: socket: %s", listen_addr, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)sa, len) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)sa, &len) < 0) {
        int e = errno;
        close(fd);
        return e2_errf(err, errlen, "http-listen %s: %s%s", listen_addr, strerror(e),
                       e == EADDRINUSE ? " (another program listens on "
                                         "that port: pick another one)"
                                       : "");
    }
    *fd_out = fd;
    return 0;
}

int e2_http_start(e2_http_server **out, e2d_server *srv, const e2_http_options *opt, int *port,
                  char *err, size_t errlen) {
    struct sockaddr_storage sa;
    const union MHD_DaemonInfo *di;
    e2_http_server *h;
    int fd;
    *out = NULL;
    memset(&sa, 0, sizeof sa);
    if (http_addr(opt->listen, &sa, err, errlen) < 0) return E2_ERR;
    if (!opt->insecure && !http_loopback(&sa))
        return e2_errf(err, errlen,
                       "http-listen %s: the HTTP listener is plaintext: bind "
                       "a loopback address (127.0.0.1:PORT, [::1]:PORT) and "
                       "put a TLS proxy in front, or give --insecure on a "
                       "fenced network",
                       opt->listen);
    if (http_bind(opt->listen, &sa, &fd, err, errlen) < 0) return E2_ERR;
    if (!(h = calloc(1, sizeof *h))) {
        close(fd);
        return e2_errf(err, errlen, "out of memory");
    }
    h->srv = srv;
    snprintf(h->root, sizeof h->root, "%s", opt->root ? opt->root : "");
    h->auth = opt->auth;
    h->auth_data = opt->auth_data;
    h->metrics_public = opt->metrics_public;
    h->d = MHD_start_daemon(
        MHD_USE_EPOLL | (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0, NULL, NULL, http_access,
        h, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_IDLE_S, MHD_OPTION_URI_LOG_CALLBACK, http_uri, h,
        MHD_OPTION_NOTIFY_COMPLETED, http_completed, h, MHD_OPTION_NOTIFY_CONNECTION, http_notify,
        h, MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, MHD_OPTION_END);
    if (!h->d || !(di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD))) {
        if (h->d)
            MHD_stop_daemon(h->d);
        else
            close(fd);
        free(h);
        return e2_errf(err, errlen,
                       "http-listen %s: libmicrohttpd did not "
                       "start",
                       opt->listen);
    }
    uv_poll_init(srv->loop, &h->poll, di->epoll_fd);
    uv_timer_init(srv->loop, &h->timer);
    uv_timer_init(srv->loop, &h->sweep);
    h->poll.data = h->timer.data = h->sweep.data = h;
    h->open_handles = 3;
    uv_poll_start(&h->poll, UV_READABLE, http_poll_cb);
    uv_timer_start(&h->sweep, http_sweep_cb, HTTP_SWEEP_MS, HTTP_SWEEP_MS);
    http_run(h);
    *port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                           : ((struct sockaddr_in *)&sa)->sin_port);
    *out = h;
    return 0;
}

void e2_http_close(e2_http_server *h) {
    if (!h) return;
    /* The poll handle lets go of the epoll descriptor before
     * libmicrohttpd closes it (with the listener and every connection). */
    uv_poll_stop(&h->poll);
    MHD_stop_daemon(h->d);
    h->d = NULL;
    uv_close((uv_handle_t *)&h->poll, http_handle_closed);
    uv_close((uv_handle_t *)&h->timer, http_handle_closed);
    uv_close((uv_handle_t *)&h->sweep, http_handle_closed);
}
