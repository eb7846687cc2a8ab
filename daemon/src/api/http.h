/* http.h -- e2d's HTTP listener for dashboards (prefix http_): Prometheus
 * /metrics, /healthz, a read-only JSON API mirroring GetJob, ListJobs and
 * GetMetrics, and the status page's static files (web/ in the source tree).
 *
 * libmicrohttpd serves HTTP/1.1 for it, driven from e2d's libuv loop:
 * handlers run on the loop thread and read the same state the gRPC
 * handlers read (api.c builds the replies), so nothing is locked. GET and
 * HEAD only; keep-alive; bounded connections (in all and per address),
 * memory per connection, and time per request head (an absolute deadline
 * that a trickle of bytes does not extend). Bad input gets a 4xx with one
 * line saying what was wrong, and the connection is closed when its
 * framing cannot be trusted.
 *
 * Routes:
 *   /healthz                       "ok" (503 while shutting down)
 *   /metrics                       Prometheus text format 0.0.4
 *   /api/v1/jobs                   ListJobsResponse as JSON; query:
 *                                  state=S (repeatable), label=k=v
 *                                  (repeatable), page_size=N, page_token=T
 *   /api/v1/jobs/<id>              GetJobResponse
 *   /api/v1/jobs/<id>/metrics      GetMetricsResponse; query: since_step=N
 *   /, /<file>                     index.html and files of the web root
 * JSON is e2_pbjson's (proto field names), like `e2ctl --json`. API errors
 * are {"error": {"code": "NOT_FOUND", "message": "..."}}. */
#ifndef E2D_HTTP_H
#define E2D_HTTP_H

#include <stddef.h>

struct e2d_server;
typedef struct e2_http_server e2_http_server;

/* Decides whether a request may proceed: returns 0 to allow it, or an
 * HTTP status (401, 403) with a line in msg. authorization is the
 * request's Authorization header or NULL; method the gRPC method whose
 * data the request reads ("/e2.v1.Coordinator/GetJob"). /healthz and the
 * page's static files are not asked about: they hold no job data. */
typedef int (*e2_http_auth_cb)(const char *authorization, const char *method, char *msg,
                               size_t msglen, void *data);

typedef struct e2_http_options {
    const char *listen;   /* "host:port" (port 0: any free port) */
    const char *root;     /* directory of index.html, app.js, ... */
    e2_http_auth_cb auth; /* NULL: every request is allowed */
    void *auth_data;
    int metrics_public; /* /metrics is not asked about */
    /* The listener is plaintext: an address other than loopback is
     * refused unless this is set (e2d's --insecure). */
    int insecure;
} e2_http_options;

/* Binds and starts listening on srv->loop. *port gets the bound port. */
int e2_http_start(e2_http_server **out, struct e2d_server *srv, const e2_http_options *opt,
                  int *port, char *err, size_t errlen);
/* Closes the listener and every connection; the server is freed once
 * their handles have closed (the loop must run on). NULL is fine. */
void e2_http_close(e2_http_server *h);

#endif
