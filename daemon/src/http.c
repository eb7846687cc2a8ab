/* http.c -- the HTTP/1.1 listener of e2d (see http.h): connections,
 * request parsing, routing, Prometheus text, JSON API and static files.
 *
 * A connection reads into one fixed buffer of HTTP_MAX_HEAD bytes; a
 * request is handled once its head (up to the empty line) is complete, and
 * the bytes after it stay for the next request (pipelining). Requests carry
 * no body: this API is read-only, so a Content-Length above 0 or any
 * Transfer-Encoding is answered 413 and the connection closed. Replies are
 * whole buffers handed to uv_write; a client that lets more than
 * HTTP_MAX_UNSENT bytes pile up is dropped. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "e2d.h"
#include "pbjson.h"

#define HTTP_MAX_HEAD 16384        /* request line + headers */
#define HTTP_MAX_CONNS 64
#define HTTP_IDLE_MS 30000         /* a connection silent this long is closed */
#define HTTP_MAX_UNSENT (16 << 20) /* bytes queued to a client that reads not */
#define HTTP_MAX_FILE (4 << 20)    /* largest static file served */
#define HTTP_MAX_QUERY 16          /* query parameters of one request */

struct http_server {
    e2d_server *srv;
    uv_tcp_t tcp;
    struct http_conn *conns;
    int nconns;
    int closing;
    int tcp_open;                  /* the listener's handle is open */
    char root[512];
    http_auth_cb auth;
    void *auth_data;
    int metrics_public;
};

typedef struct http_conn {
    struct http_conn *next;
    http_server *h;
    uv_tcp_t tcp;
    uv_timer_t idle;
    int open_handles;              /* freed when it drops to 0 */
    int closing;
    int close_after;               /* close once the queued replies are sent */
    int writes;                    /* uv_write requests in flight */
    size_t len;                    /* bytes in buf */
    char buf[HTTP_MAX_HEAD];
} http_conn;

typedef struct http_write {
    uv_write_t req;
    http_conn *c;
    char data[];
} http_write;

/* One parsed request; strings point into a NUL-terminated copy of the
 * head. */
typedef struct http_req {
    const char *method;
    char *path;                    /* percent-decoded */
    char *query;                   /* raw, NULL when none */
    int head_only;                 /* HEAD */
    int keep_alive;
    const char *authorization;
    struct {
        char *key, *value;         /* percent-decoded */
    } q[HTTP_MAX_QUERY];
    int nq;
} http_req;

/* A growable text buffer; `failed` is set once an allocation failed. */
typedef struct http_buf {
    char *p;
    size_t len, cap;
    int failed;
} http_buf;

static void http_bprintf(http_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void http_bprintf(http_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (b->failed)
        return;
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
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* ---- connections ---- */

static void http_server_maybe_free(http_server *h)
{
    if (h->closing && !h->tcp_open && !h->conns)
        free(h);
}

static void http_conn_closed(uv_handle_t *handle)
{
    http_conn *c = handle->data;
    http_server *h = c->h;
    if (--c->open_handles > 0)
        return;
    for (http_conn **p = &h->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    h->nconns--;
    free(c);
    http_server_maybe_free(h);
}

static void http_conn_close(http_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, http_conn_closed);
    uv_close((uv_handle_t *)&c->idle, http_conn_closed);
}

static void http_write_done(uv_write_t *req, int status)
{
    http_write *w = (http_write *)req;
    http_conn *c = w->c;
    free(w);
    c->writes--;
    if (status < 0 || (c->close_after && !c->writes))
        http_conn_close(c);
}

static const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Queues one reply. `extra` holds more header lines, each ending "\r\n". */
static void http_send(http_conn *c, int status, const char *ctype,
                      const char *extra, const char *body, size_t len,
                      int head_only)
{
    char head[512];
    int n;
    http_write *w;
    uv_buf_t buf;
    if (c->closing)
        return;
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                 "X-Content-Type-Options: nosniff\r\n%s%s\r\n",
                 status, http_reason(status), ctype, len, extra ? extra : "",
                 c->close_after ? "Connection: close\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof head) {
        http_conn_close(c);
        return;
    }
    if (head_only)
        len = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) +
            (size_t)n + len > HTTP_MAX_UNSENT ||
        !(w = malloc(sizeof *w + (size_t)n + len))) {
        http_conn_close(c);
        return;
    }
    memcpy(w->data, head, (size_t)n);
    if (len)
        memcpy(w->data + n, body, len);
    w->c = c;
    buf = uv_buf_init(w->data, (unsigned)((size_t)n + len));
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, http_write_done) <
        0) {
        free(w);
        http_conn_close(c);
        return;
    }
    c->writes++;
}

/* A plain-text error; `fatal` closes the connection after it (framing
 * lost, or the request was refused before its end was known). */
static void http_error(http_conn *c, int status, int fatal, int head_only,
                       const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void http_error(http_conn *c, int status, int fatal, int head_only,
                       const char *fmt, ...)
{
    char msg[E2_ERRLEN + 64];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof msg - 2)
        n = (int)sizeof msg - 2;
    msg[n++] = '\n';
    msg[n] = 0;
    if (fatal) {
        c->close_after = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    http_send(c, status, "text/plain; charset=utf-8",
              status == 405   ? "Allow: GET, HEAD\r\n"
              : status == 401 ? "WWW-Authenticate: Bearer realm=\"e2d\"\r\n"
                              : NULL,
              msg, (size_t)n, head_only);
}

/* ---- JSON API ---- */

static int http_status_of(rpc_status code)
{
    switch (code) {
    case RPC_INVALID_ARGUMENT: return 400;
    case RPC_NOT_FOUND: return 404;
    case RPC_UNAVAILABLE:
    case RPC_RESOURCE_EXHAUSTED: return 503;
    default: return 500;
    }
}

static void http_json_error(http_conn *c, const http_req *r, rpc_status code,
                            const char *msg)
{
    json_t *o = json_pack("{s:{s:s,s:s}}", "error", "code",
                          rpc_status_name(code), "message", msg);
    char *text = o ? e2_pbjson_format(o, 0) : NULL;
    json_decref(o);
    if (!text) {
        http_error(c, 500, 0, r->head_only, "e2d: out of memory");
        return;
    }
    http_send(c, http_status_of(code), "application/json", NULL, text,
              strlen(text), r->head_only);
    free(text);
}

/* Sends reply (and frees it) or the error of a builder. */
static void http_json_reply(http_conn *c, const http_req *r, rpc_status code,
                            void *reply, const char *msg)
{
    char *text;
    if (code != RPC_OK) {
        http_json_error(c, r, code, msg);
        return;
    }
    text = e2_pbjson_to_string(reply, 0);
    protobuf_c_message_free_unpacked(reply, NULL);
    if (!text) {
        http_json_error(c, r, RPC_RESOURCE_EXHAUSTED, "e2d: out of memory");
        return;
    }
    http_send(c, 200, "application/json", NULL, text, strlen(text),
              r->head_only);
    free(text);
}

/* A whole non-negative number of at most `max`, or -1. */
static long long http_number(const char *s, long long max)
{
    char *end;
    long long v;
    if (!isdigit((unsigned char)*s))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    return *end || errno || v > max ? -1 : v;
}

static int http_state_value(const char *s)
{
    char name[64];
    const ProtobufCEnumValue *v;
    if (strncmp(s, "JOB_STATE_", 10)) {
        snprintf(name, sizeof name, "JOB_STATE_%s", s);
        for (char *p = name; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        s = name;
    }
    v = protobuf_c_enum_descriptor_get_value_by_name(
        &e2__v1__job_state__descriptor, s);
    return v && v->value > 0 ? v->value : -1;
}

static void http_api_list(http_conn *c, http_req *r)
{
    e2d_server *srv = c->h->srv;
    E2__V1__ListJobsRequest q = E2__V1__LIST_JOBS_REQUEST__INIT;
    E2__V1__JobState states[HTTP_MAX_QUERY];
    char *labels[HTTP_MAX_QUERY], msg[E2_ERRLEN + 64];
    E2__V1__ListJobsResponse *out = NULL;
    rpc_status code;
    q.states = states;
    q.labels = labels;
    for (int i = 0; i < r->nq; i++) {
        const char *k = r->q[i].key, *v = r->q[i].value;
        long long n;
        if (!strcmp(k, "state")) {
            int s = http_state_value(v);
            if (s < 0) {
                http_json_error(c, r, RPC_INVALID_ARGUMENT,
                                "state: unknown job state (use PENDING, "
                                "STARTING, RUNNING, RESTARTING, SUCCEEDED, "
                                "FAILED, CANCELLING or CANCELLED)");
                return;
            }
            states[q.n_states++] = (E2__V1__JobState)s;
        } else if (!strcmp(k, "label")) {
            labels[q.n_labels++] = r->q[i].value;
        } else if (!strcmp(k, "page_size")) {
            if ((n = http_number(v, 1000000)) < 0) {
                http_json_error(c, r, RPC_INVALID_ARGUMENT,
                                "page_size must be a whole number");
                return;
            }
            q.has_page_size = 1;
            q.page_size = (uint32_t)n;
        } else if (!strcmp(k, "page_token")) {
            q.page_token = r->q[i].value;
        } else {
            snprintf(msg, sizeof msg,
                     "%.64s: unknown query parameter (use state, label, "
                     "page_size, page_token)", k);
            http_json_error(c, r, RPC_INVALID_ARGUMENT, msg);
            return;
        }
    }
    code = api_build_list_jobs(srv, &q, &out, msg, sizeof msg);
    http_json_reply(c, r, code, out, msg);
}

static void http_api_job(http_conn *c, http_req *r, char *id)
{
    E2__V1__GetJobRequest q = E2__V1__GET_JOB_REQUEST__INIT;
    E2__V1__GetJobResponse *out = NULL;
    char msg[E2_ERRLEN + 64];
    rpc_status code;
    if (r->nq) {
        http_json_error(c, r, RPC_INVALID_ARGUMENT,
                        "this resource takes no query parameters");
        return;
    }
    q.id = id;
    code = api_build_get_job(c->h->srv, &q, &out, msg, sizeof msg);
    http_json_reply(c, r, code, out, msg);
}

static void http_api_metrics(http_conn *c, http_req *r, char *id)
{
    E2__V1__GetMetricsRequest q = E2__V1__GET_METRICS_REQUEST__INIT;
    E2__V1__GetMetricsResponse *out = NULL;
    char msg[E2_ERRLEN + 64];
    rpc_status code;
    long long n;
    q.id = id;
    for (int i = 0; i < r->nq; i++) {
        if (strcmp(r->q[i].key, "since_step")) {
            snprintf(msg, sizeof msg,
                     "%.64s: unknown query parameter (use since_step)",
                     r->q[i].key);
            http_json_error(c, r, RPC_INVALID_ARGUMENT, msg);
            return;
        }
        if ((n = http_number(r->q[i].value, UINT32_MAX)) < 0) {
            http_json_error(c, r, RPC_INVALID_ARGUMENT,
                            "since_step must be a whole number");
            return;
        }
        q.has_since_step = 1;
        q.since_step = (uint32_t)n;
    }
    code = api_build_metrics(c->h->srv, &q, &out, msg, sizeof msg);
    http_json_reply(c, r, code, out, msg);
}

/* ---- /metrics ---- */

/* The gauges of each live job, one family per row of http_job_gauges. */
enum {
    HTTP_G_STEP, HTTP_G_TOTAL, HTTP_G_LOSS, HTTP_G_TPS, HTTP_G_RESTARTS,
    HTTP_G_ATTEMPT, HTTP_G_CKPT_AGE, HTTP_G_N
};

static const struct {
    const char *name, *help;
} http_job_gauges[HTTP_G_N] = {
    [HTTP_G_STEP] = {"e2_job_step", "Newest training step of a live job."},
    [HTTP_G_TOTAL] = {"e2_job_total_steps", "Steps the job trains for."},
    [HTTP_G_LOSS] = {"e2_job_loss", "Training loss at the newest step."},
    [HTTP_G_TPS] = {"e2_job_tokens_per_second",
                    "Training throughput of the job (all ranks)."},
    [HTTP_G_RESTARTS] = {"e2_job_restarts",
                         "Restarts after infrastructure faults."},
    [HTTP_G_ATTEMPT] = {"e2_job_attempt", "Current attempt number."},
    [HTTP_G_CKPT_AGE] = {"e2_job_checkpoint_age_seconds",
                         "Seconds since the newest committed checkpoint "
                         "(absent before the first)."},
};

typedef struct http_active {
    char id[STORE_IDLEN];
    double v[HTTP_G_N];
    int has_ckpt;
} http_active;

typedef struct http_scan {
    int64_t by_state[JOBSTATE_N];
    http_active *active;
    size_t nactive, cap;
    int failed;
} http_scan;

/* Jobs that hold or wait for workers without being finished. */
static int http_job_live(int state)
{
    return state == JOBSTATE_STARTING || state == JOBSTATE_RUNNING ||
           state == JOBSTATE_RESTARTING || state == JOBSTATE_CANCELLING;
}

static int http_scan_job(void *ud, const store_job *j)
{
    http_scan *s = ud;
    http_active *a;
    if (j->state > 0 && j->state < JOBSTATE_N)
        s->by_state[j->state]++;
    if (!http_job_live(j->state))
        return 0;
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

static void http_newest_ckpt(void *ud, const store_ckpt *c)
{
    *(int64_t *)ud = c->committed_ms; /* ascending steps: the last wins */
}

static void http_gauge_head(http_buf *b, const char *name, const char *help)
{
    http_bprintf(b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* Prometheus spells NaN and +Inf/-Inf so; %.17g would give "nan", "inf". */
static void http_value(http_buf *b, double v)
{
    if (v != v)
        http_bprintf(b, "NaN\n");
    else if (v > 1e308 || v < -1e308)
        http_bprintf(b, "%sInf\n", v > 0 ? "+" : "-");
    else
        http_bprintf(b, "%.17g\n", v);
}

/* Counts every stored job by state (one pass over the jobs table, O(jobs)
 * per scrape) and collects the live ones with their newest checkpoint. */
static int http_scan_jobs(e2d_server *srv, http_scan *s, char *err,
                          size_t errlen)
{
    int64_t now = e2d_now_ms();
    unsigned all = 0;
    for (int st = 1; st < JOBSTATE_N; st++)
        all |= 1u << st;
    if (store_job_in_states(srv->db, all, http_scan_job, s, err, errlen) < 0)
        return E2_ERR;
    if (s->failed)
        return e2_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < s->nactive; i++) {
        http_active *a = &s->active[i];
        int64_t at = -1;
        if (store_ckpt_list(srv->db, a->id, http_newest_ckpt, &at, err,
                            errlen) < 0)
            return E2_ERR;
        a->has_ckpt = at >= 0;
        a->v[HTTP_G_CKPT_AGE] = at >= 0 && now > at ? (now - at) / 1000.0 : 0;
    }
    return 0;
}

static void http_metrics(http_conn *c, const http_req *r)
{
    e2d_server *srv = c->h->srv;
    static const char *wstates[] = {"UNSPECIFIED", "IDLE", "BUSY", "LOST"};
    int64_t workers[4] = {0};
    http_scan s = {{0}, NULL, 0, 0, 0};
    http_buf b = {0};
    char err[E2_ERRLEN];
    e2d_batch_flush(srv);
    if (http_scan_jobs(srv, &s, err, sizeof err) < 0) {
        free(s.active);
        http_error(c, 500, 0, r->head_only, "state store: %s", err);
        return;
    }
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (w->row.state >= 0 && w->row.state < 4)
            workers[w->row.state]++;
    http_gauge_head(&b, "e2_up", "1 while e2d serves (0 while shutting down).");
    http_bprintf(&b, "e2_up %d\n", !srv->shutting_down);
    http_gauge_head(&b, "e2_jobs", "Stored jobs by state.");
    for (int st = 1; st < JOBSTATE_N; st++)
        http_bprintf(&b, "e2_jobs{state=\"%s\"} %lld\n", jobstate_name(st),
                     (long long)s.by_state[st]);
    http_gauge_head(&b, "e2_workers", "Registered workers by state.");
    for (int st = 1; st < 4; st++)
        http_bprintf(&b, "e2_workers{state=\"%s\"} %lld\n", wstates[st],
                     (long long)workers[st]);
    for (int g = 0; g < HTTP_G_N; g++) {
        http_gauge_head(&b, http_job_gauges[g].name, http_job_gauges[g].help);
        for (size_t i = 0; i < s.nactive; i++) {
            if (g == HTTP_G_CKPT_AGE && !s.active[i].has_ckpt)
                continue;
            http_bprintf(&b, "%s{job=\"%s\"} ", http_job_gauges[g].name,
                         s.active[i].id);
            http_value(&b, s.active[i].v[g]);
        }
    }
    free(s.active);
    if (b.failed)
        http_error(c, 500, 0, r->head_only, "e2d: out of memory");
    else
        http_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL,
                  b.p, b.len, r->head_only);
    free(b.p);
}

/* ---- static files ---- */

static const char *http_ctype(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return NULL;
}

/* Files directly in the root only, by a plain name: no '/', no leading
 * dot, so no path can leave the root. O_NONBLOCK: a FIFO put there must
 * not block the loop (it then fails the regular-file check). */
static void http_file(http_conn *c, const http_req *r, const char *name)
{
    char path[1024];
    const char *ctype = http_ctype(name);
    struct stat st;
    char *data;
    int fd;
    ssize_t got = 0;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
            ctype = NULL;
    if (!ctype || name[0] == '.' ||
        (size_t)snprintf(path, sizeof path, "%s/%s", c->h->root, name) >=
            sizeof path ||
        (fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) < 0) {
        http_error(c, 404, 0, r->head_only, "%s: no such page", r->path);
        return;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        st.st_size > HTTP_MAX_FILE ||
        !(data = malloc((size_t)st.st_size + 1))) {
        close(fd);
        http_error(c, 404, 0, r->head_only, "%s: no such page", r->path);
        return;
    }
    while (got < st.st_size) {
        ssize_t n = read(fd, data + got, (size_t)(st.st_size - got));
        if (n <= 0)
            break;
        got += n;
    }
    close(fd);
    if (got != st.st_size)
        http_error(c, 500, 0, r->head_only, "%s: read failed", r->path);
    else
        http_send(c, 200, ctype, NULL, data, (size_t)got, r->head_only);
    free(data);
}

/* ---- parsing and routing ---- */

static int http_hex(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decodes %XX (and '+' as space when plus) in place; -1 on a bad or NUL
 * escape. */
static int http_unescape(char *s, int plus)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '%') {
            int hi = http_hex((unsigned char)s[1]), lo;
            if (hi < 0 || (lo = http_hex((unsigned char)s[2])) < 0 ||
                !(hi | lo))
                return -1;
            *o++ = (char)(hi * 16 + lo);
            s += 2;
        } else {
            *o++ = plus && *s == '+' ? ' ' : *s;
        }
    }
    *o = 0;
    return 0;
}

static int http_parse_query(http_req *r)
{
    char *p = r->query;
    while (p && *p) {
        char *amp = strchr(p, '&'), *eq;
        if (amp)
            *amp = 0;
        if (*p) {
            if (r->nq == HTTP_MAX_QUERY)
                return -1;
            if ((eq = strchr(p, '=')))
                *eq = 0;
            r->q[r->nq].key = p;
            r->q[r->nq].value = eq ? eq + 1 : p + strlen(p);
            if (http_unescape(r->q[r->nq].key, 1) < 0 ||
                http_unescape(r->q[r->nq].value, 1) < 0)
                return -1;
            r->nq++;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* Asks the auth hook about a request that reads what the gRPC method
 * `method` reads; answers 401/403 itself when refused. */
static int http_authorized(http_conn *c, const http_req *r,
                           const char *method)
{
    http_server *h = c->h;
    char msg[E2_ERRLEN];
    int status;
    if (!h->auth)
        return 1;
    msg[0] = 0;
    if (!(status = h->auth(r->authorization, method, msg, sizeof msg,
                           h->auth_data)))
        return 1;
    http_error(c, status, 0, r->head_only, "%s", msg[0] ? msg : "denied");
    return 0;
}

#define HTTP_COORD "/e2.v1.Coordinator/"

/* /healthz and the page's files hold no data and need no token; /metrics
 * counts as ListJobs unless --http-metrics-public; the API as the methods
 * it mirrors. */
static void http_route(http_conn *c, http_req *r)
{
    char *p = r->path, *id, *slash;
    if (!strcmp(p, "/healthz")) {
        int down = c->h->srv->shutting_down;
        http_send(c, down ? 503 : 200, "text/plain; charset=utf-8", NULL,
                  down ? "shutting down\n" : "ok\n", down ? 14 : 3,
                  r->head_only);
        return;
    }
    if (!strcmp(p, "/metrics")) {
        if (c->h->metrics_public ||
            http_authorized(c, r, HTTP_COORD "ListJobs"))
            http_metrics(c, r);
        return;
    }
    if (!strcmp(p, "/api/v1/jobs")) {
        if (http_authorized(c, r, HTTP_COORD "ListJobs"))
            http_api_list(c, r);
        return;
    }
    if (!strncmp(p, "/api/v1/jobs/", 13) && p[13]) {
        id = p + 13;
        slash = strchr(id, '/');
        if (!slash) {
            if (http_authorized(c, r, HTTP_COORD "GetJob"))
                http_api_job(c, r, id);
            return;
        }
        if (!strcmp(slash, "/metrics")) {
            *slash = 0;
            if (http_authorized(c, r, HTTP_COORD "GetMetrics"))
                http_api_metrics(c, r, id);
            return;
        }
    }
    if (!strncmp(p, "/api/", 5)) {
        http_json_error(c, r, RPC_NOT_FOUND,
                        "no such API path (use /api/v1/jobs, "
                        "/api/v1/jobs/<id>, /api/v1/jobs/<id>/metrics)");
        return;
    }
    http_file(c, r, !strcmp(p, "/") ? "index.html" : p + 1);
}

static int http_token_char(int ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* 1 when the comma-separated header value v lists token (any case). */
static int http_has_token(const char *v, const char *token)
{
    size_t n = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        if (!strncasecmp(v, token, n) &&
            (!v[n] || v[n] == ',' || v[n] == ' ' || v[n] == '\t'))
            return 1;
        while (*v && *v != ',')
            v++;
    }
    return 0;
}

/* Handles the request whose head is head[0..len) (NUL-terminated, the
 * final CRLF CRLF included). */
static void http_handle(http_conn *c, char *head)
{
    http_req r;
    char *line, *next, *sp1, *sp2, *version;
    memset(&r, 0, sizeof r);
    next = strstr(head, "\r\n");
    *next = 0;
    line = head;
    next += 2;
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || strchr(sp2 + 1, ' ')) {
        http_error(c, 400, 1, 0,
                   "malformed request line (expected `GET /path HTTP/1.1`)");
        return;
    }
    *sp1 = *sp2 = 0;
    version = sp2 + 1;
    for (char *p = line; *p; p++)
        if (!http_token_char((unsigned char)*p)) {
            http_error(c, 400, 1, 0, "malformed method in the request line");
            return;
        }
    if (strcmp(version, "HTTP/1.1") && strcmp(version, "HTTP/1.0")) {
        http_error(c, 400, 1, 0,
                   "unsupported protocol version (HTTP/1.0 or HTTP/1.1)");
        return;
    }
    r.method = line;
    r.head_only = !strcmp(line, "HEAD");
    r.keep_alive = !strcmp(version, "HTTP/1.1");
    r.path = sp1 + 1;
    if (r.path[0] != '/') {
        http_error(c, 400, 1, r.head_only,
                   "request target must be an absolute path such as /metrics");
        return;
    }
    while (*next) {
        char *end = strstr(next, "\r\n"), *colon, *v;
        *end = 0;
        if (!(colon = strchr(next, ':')) || colon == next) {
            http_error(c, 400, 1, r.head_only,
                       "malformed header line (expected `Name: value`)");
            return;
        }
        *colon = 0;
        for (char *p = next; *p; p++)
            if (!http_token_char((unsigned char)*p)) {
                http_error(c, 400, 1, r.head_only,
                           "malformed header name");
                return;
            }
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        for (char *e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');)
            *--e = 0;
        if (!strcasecmp(next, "Connection")) {
            /* HTTP/1.0 connections always close: its keep-alive
             * extension is not worth supporting. */
            if (http_has_token(v, "close"))
                r.keep_alive = 0;
        } else if (!strcasecmp(next, "Content-Length")) {
            long long n = http_number(v, INT64_MAX);
            if (n != 0) {
                http_error(c, n < 0 ? 400 : 413, 1, r.head_only,
                           n < 0 ? "malformed Content-Length"
                                 : "request bodies are not accepted: this "
                                   "API is read-only");
                return;
            }
        } else if (!strcasecmp(next, "Transfer-Encoding")) {
            http_error(c, 413, 1, r.head_only,
                       "request bodies are not accepted: this API is "
                       "read-only");
            return;
        } else if (!strcasecmp(next, "Authorization")) {
            r.authorization = v;
        }
        next = end + 2;
    }
    if (!r.keep_alive || c->h->closing)
        c->close_after = 1;
    if ((r.query = strchr(r.path, '?')))
        *r.query++ = 0;
    if (http_unescape(r.path, 0) < 0 || http_parse_query(&r) < 0) {
        http_error(c, 400, 1, r.head_only,
                   "malformed percent-escape or too many query parameters "
                   "(at most %d)", HTTP_MAX_QUERY);
        return;
    }
    if (strcmp(r.method, "GET") && !r.head_only) {
        http_error(c, 405, 0, 0, "%s: method not allowed (this API is "
                   "read-only: GET or HEAD)", r.method);
        return;
    }
    http_route(c, &r);
}

/* Handles every complete request head in the buffer. */
static void http_process(http_conn *c)
{
    while (!c->closing && !c->close_after) {
        char *end, head[HTTP_MAX_HEAD + 1];
        size_t n;
        if (memchr(c->buf, 0, c->len)) {
            http_error(c, 400, 1, 0, "NUL byte in the request head");
            return;
        }
        memcpy(head, c->buf, c->len);
        head[c->len] = 0;
        if (!(end = strstr(head, "\r\n\r\n"))) {
            if (c->len == sizeof c->buf)
                http_error(c, 431, 1, 0,
                           "request head larger than %d bytes",
                           HTTP_MAX_HEAD);
            return;
        }
        n = (size_t)(end - head) + 4;
        end[2] = 0;
        http_handle(c, head);
        memmove(c->buf, c->buf + n, c->len - n);
        c->len -= n;
    }
}

static void http_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    http_conn *c = handle->data;
    (void)suggested;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
}

static void http_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    http_conn *c = stream->data;
    (void)buf;
    if (nread == UV_EOF && c->writes) {
        /* The client is done sending: finish the replies queued, then
         * close. */
        c->close_after = 1;
        uv_read_stop(stream);
        return;
    }
    if (nread < 0) {
        http_conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->len += (size_t)nread;
    uv_timer_again(&c->idle);
    http_process(c);
    /* A full buffer means a head was refused: reading stopped above. */
}

static void http_idle(uv_timer_t *t)
{
    http_conn_close(t->data);
}

static void http_accept(uv_stream_t *server, int status)
{
    http_server *h = server->data;
    http_conn *c;
    if (status < 0 || h->closing || !(c = calloc(1, sizeof *c)))
        return;
    c->h = h;
    uv_tcp_init(h->srv->loop, &c->tcp);
    uv_timer_init(h->srv->loop, &c->idle);
    c->tcp.data = c->idle.data = c;
    c->open_handles = 2;
    c->next = h->conns;
    h->conns = c;
    h->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        http_conn_close(c);
        return;
    }
    uv_timer_start(&c->idle, http_idle, HTTP_IDLE_MS, HTTP_IDLE_MS);
    if (h->nconns > HTTP_MAX_CONNS) {
        http_error(c, 503, 1, 0, "too many connections (at most %d)",
                   HTTP_MAX_CONNS);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, http_alloc, http_read);
}

/* "host:port" -> sockaddr; IPv6 as "[::1]:port". */
static int http_addr(const char *listen, struct sockaddr_storage *sa,
                     char *err, size_t errlen)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    long long port;
    size_t n;
    if (!colon || colon == listen || (port = http_number(colon + 1, 65535)) < 0)
        return e2_errf(err, errlen,
                       "http-listen must be host:port such as 127.0.0.1:8080 "
                       "(got '%s')", listen);
    n = (size_t)(colon - listen);
    if (listen[0] == '[' && colon[-1] == ']') {
        listen++;
        n -= 2;
    }
    if (n >= sizeof host)
        return e2_errf(err, errlen, "http-listen: host too long");
    memcpy(host, listen, n);
    host[n] = 0;
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0 ||
        uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    return e2_errf(err, errlen,
                   "http-listen: '%s' is not an IP address (give a numeric "
                   "address such as 127.0.0.1 or [::1])", host);
}

static int http_loopback(const struct sockaddr_storage *sa)
{
    static const unsigned char v6_loopback[16] = {[15] = 1};
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >>
                24) == 127;
    return !memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, v6_loopback,
                   16);
}

static void http_listener_closed(uv_handle_t *handle)
{
    http_server *h = handle->data;
    h->tcp_open = 0;
    http_server_maybe_free(h);
}

int http_start(http_server **out, e2d_server *srv, const http_options *opt,
               int *port, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    int namelen = sizeof sa, rc;
    http_server *h;
    *out = NULL;
    if (http_addr(opt->listen, &sa, err, errlen) < 0)
        return E2_ERR;
    if (!opt->insecure && !http_loopback(&sa))
        return e2_errf(err, errlen,
                       "http-listen %s: the HTTP listener is plaintext: bind "
                       "a loopback address (127.0.0.1:PORT, [::1]:PORT) and "
                       "put a TLS proxy in front, or give --insecure on a "
                       "fenced network", opt->listen);
    if (!(h = calloc(1, sizeof *h)))
        return e2_errf(err, errlen, "out of memory");
    h->srv = srv;
    snprintf(h->root, sizeof h->root, "%s", opt->root ? opt->root : "");
    h->auth = opt->auth;
    h->auth_data = opt->auth_data;
    h->metrics_public = opt->metrics_public;
    uv_tcp_init(srv->loop, &h->tcp);
    h->tcp.data = h;
    h->tcp_open = 1;
    if ((rc = uv_tcp_bind(&h->tcp, (struct sockaddr *)&sa, 0)) < 0 ||
        (rc = uv_listen((uv_stream_t *)&h->tcp, 128, http_accept)) < 0) {
        h->closing = 1;
        uv_close((uv_handle_t *)&h->tcp, http_listener_closed);
        return e2_errf(err, errlen, "http-listen %s: %s", opt->listen,
                       uv_strerror(rc));
    }
    uv_tcp_getsockname(&h->tcp, (struct sockaddr *)&sa, &namelen);
    *port = ntohs(sa.ss_family == AF_INET6
                      ? ((struct sockaddr_in6 *)&sa)->sin6_port
                      : ((struct sockaddr_in *)&sa)->sin_port);
    *out = h;
    return 0;
}

void http_close(http_server *h)
{
    if (!h || h->closing)
        return;
    h->closing = 1;
    for (http_conn *c = h->conns; c; c = c->next)
        http_conn_close(c);
    uv_close((uv_handle_t *)&h->tcp, http_listener_closed);
}
