/* expand.c -- shard manifests built off the event loop (expand.h). */
#include "expand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

int e2d_expand_job_pending(const e2d_server *srv, const char *job) {
    for (const e2d_expand_req *x = srv->expanding; x; x = x->next)
        if (!strcmp(x->job, job)) return 1;
    return 0;
}

int e2d_expand_worker_held(const e2d_server *srv, const e2d_worker *w) {
    for (const e2d_expand_req *x = srv->expanding; x; x = x->next)
        for (int r = 0; r < x->n; r++)
            if (!strcmp(x->gang[r], w->row.id)) return 1;
    return 0;
}

static void expand_free(e2d_expand_req *x) {
    for (size_t i = 0; i < x->npat; i++) free(x->patterns[i]);
    free(x->patterns);
    free(x->gang);
    e2_shards_free(&x->files);
    free(x);
}

/* The job's training shard patterns, copied into x when every one is
 * absolute; x->npat = 0 otherwise. E2_ERR when out of memory. */
static int expand_patterns(const e2_store_job *j, e2d_expand_req *x) {
    E2__V1__JobSpec *s = j->spec_pb ? e2__v1__job_spec__unpack(NULL, j->spec_pb_len, j->spec_pb)
                                    : e2_spec_parse(j->spec_json, strlen(j->spec_json), NULL, 0);
    const E2__V1__DataSpec *d = s ? s->data : NULL;
    size_t n = d ? d->n_train_shards : 0;
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (d->train_shards[i][0] != '/') n = 0;
    if (n && !(x->patterns = calloc(n, sizeof *x->patterns))) rc = E2_ERR;
    for (size_t i = 0; rc == 0 && i < n; i++, x->npat++)
        if (!(x->patterns[i] = strdup(d->train_shards[i]))) rc = E2_ERR;
    if (s) protobuf_c_message_free_unpacked(&s->base, NULL);
    return rc;
}

static void expand_work(uv_work_t *req) {
    e2d_expand_req *x = req->data;
    x->rc = e2_shards_expand(x->patterns, x->npat, "spec.data.train_shards", &x->files, x->err,
                             sizeof x->err);
}

static void expand_after(uv_work_t *req, int status) {
    e2d_expand_req *x = req->data;
    for (e2d_expand_req **p = &x->srv->expanding; *p; p = &(*p)->next)
        if (*p == x) {
            *p = x->next;
            break;
        }
    if (status < 0) snprintf(x->err, sizeof x->err, "expansion cancelled");
    x->done(x->srv, x, status == 0 && x->rc == 0 ? &x->files : NULL, x->err);
    expand_free(x);
}

int e2d_expand_start(e2d_server *srv, const e2_store_job *j, e2d_worker **gang, int world,
                     e2d_expand_done_cb done) {
    e2d_expand_req *x = calloc(1, sizeof *x);
    if (!x || !(x->gang = calloc((size_t)world, sizeof *x->gang)) || expand_patterns(j, x) < 0 ||
        x->npat == 0) {
        if (x) expand_free(x);
        return 1;
    }
    x->srv = srv;
    x->done = done;
    x->req.data = x;
    x->attempt = j->attempt;
    x->n = world;
    snprintf(x->job, sizeof x->job, "%s", j->id);
    for (int r = 0; r < x->n; r++) snprintf(x->gang[r], sizeof x->gang[r], "%s", gang[r]->row.id);
    if (uv_queue_work(srv->loop, &x->req, expand_work, expand_after) < 0) {
        expand_free(x);
        return 1;
    }
    x->next = srv->expanding;
    srv->expanding = x;
    return 0;
}
