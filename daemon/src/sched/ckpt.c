/* ckpt.c -- the two-phase checkpoint commit. Each rank of an attempt
 * writes its files into <job dir>/checkpoints/step_N.tmp/ and reports them
 * (names, sizes, sha256). When every rank of the attempt has reported step
 * N, e2d checks the sizes, writes manifest.json, renames the folder to
 * step_N, fsyncs the parent, records the commit in SQLite and applies
 * keep_last retention (never deleting the newest). Resume only ever uses a
 * committed checkpoint. Partial sets live in memory: a restart of e2d
 * forgets them, and the next attempt's start removes their .tmp folders. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "scheduler.h"

void e2_ckpt_pending_free(e2d_pending_ckpt *p) {
    for (size_t i = 0; i < p->nfiles; i++) {
        free((char *)p->files[i].name);
        free((char *)p->files[i].sha256);
    }
    free(p->files);
    free(p->reported);
    free(p);
}

typedef struct ckpt_last {
    int64_t step;
    char *path;
} ckpt_last;

static void ckpt_take_last(void *ud, const e2_store_ckpt *c) {
    ckpt_last *l = ud;
    l->step = c->step;
    snprintf(l->path, E2_JOBDIR_PATHLEN, "%s", c->path);
}

int64_t e2_ckpt_latest(e2d_server *srv, const char *job, char *path) {
    char err[E2_ERRLEN];
    ckpt_last l = { -1, path };
    path[0] = 0;
    if (e2_store_ckpt_list(srv->db, job, ckpt_take_last, &l, err, sizeof err) < 0)
        e2d_log("job %s: %s", job, err);
    return l.step;
}

static e2d_pending_ckpt *ckpt_pending_get(e2d_run *run, int64_t step) {
    e2d_pending_ckpt *p;
    for (p = run->pending; p; p = p->next)
        if (p->step == step) return p;
    if (!(p = calloc(1, sizeof *p)) || !(p->reported = calloc((size_t)run->world, 1))) {
        free(p);
        return NULL;
    }
    p->step = step;
    p->next = run->pending;
    run->pending = p;
    return p;
}

int e2_ckpt_completes(const e2d_run *run, int rank, int64_t step) {
    const e2d_pending_ckpt *p;
    for (p = run->pending; p && p->step != step; p = p->next)
        ;
    for (int r = 0; r < run->world; r++)
        if (r != rank && (!p || !p->reported[r])) return 0;
    return 1;
}

static void ckpt_pending_drop(e2d_run *run, e2d_pending_ckpt *p) {
    for (e2d_pending_ckpt **q = &run->pending; *q; q = &(*q)->next)
        if (*q == p) {
            *q = p->next;
            break;
        }
    e2_ckpt_pending_free(p);
}

/* Replaces rank's files in p by the reported ones. */
static int ckpt_pending_set(e2d_pending_ckpt *p, int rank,
                            const E2__V1__ReportCheckpointRequest *req) {
    size_t k = 0;
    e2_jobdir_file *v;
    for (size_t i = 0; i < p->nfiles; i++) {
        if (p->files[i].rank == rank) {
            free((char *)p->files[i].name);
            free((char *)p->files[i].sha256);
        } else {
            p->files[k++] = p->files[i];
        }
    }
    p->nfiles = k;
    v = realloc(p->files, (k + req->n_files + 1) * sizeof *v);
    if (!v) return E2_ERR;
    p->files = v;
    for (size_t i = 0; i < req->n_files; i++) {
        const E2__V1__CheckpointFile *f = req->files[i];
        e2_jobdir_file *d = &p->files[p->nfiles++];
        d->rank = rank;
        d->name = strdup(f->name ? f->name : "");
        d->size = f->size;
        d->sha256 = strdup(f->sha256 ? f->sha256 : "");
    }
    p->reported[rank] = 1;
    return 0;
}

static char *ckpt_manifest(const e2d_run *run, const e2d_pending_ckpt *p, int64_t now) {
    json_t *m = json_object(), *files = json_array();
    char *text;
    for (size_t i = 0; i < p->nfiles; i++)
        json_array_append_new(files,
                              json_pack("{s:i, s:s, s:I, s:s}", "rank", p->files[i].rank, "name",
                                        p->files[i].name, "size", (json_int_t)p->files[i].size,
                                        "sha256", p->files[i].sha256));
    json_object_set_new(m, "job_id", json_string(run->job));
    json_object_set_new(m, "attempt", json_integer(run->attempt));
    json_object_set_new(m, "step", json_integer(p->step));
    json_object_set_new(m, "world_size", json_integer(run->world));
    json_object_set_new(m, "committed_unix_ms", json_integer(now));
    json_object_set_new(m, "files", files);
    text = json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(m);
    return text;
}

typedef struct ckpt_all {
    int64_t *steps;
    char **paths;
    int n, cap;
} ckpt_all;

static void ckpt_collect(void *ud, const e2_store_ckpt *c) {
    ckpt_all *a = ud;
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 16;
        int64_t *s = realloc(a->steps, (size_t)cap * sizeof *s);
        char **p = s ? realloc(a->paths, (size_t)cap * sizeof *p) : NULL;
        if (s) a->steps = s;
        if (!p) return;
        a->paths = p;
        a->cap = cap;
    }
    a->steps[a->n] = c->step;
    a->paths[a->n++] = strdup(c->path);
}

/* keep_last retention: the oldest go first; the newest always stays. */
static void ckpt_retain(e2d_server *srv, const char *job, int keep_last) {
    char err[E2_ERRLEN];
    ckpt_all a = { 0 };
    if (keep_last < 1) keep_last = 1;
    if (e2_store_ckpt_list(srv->db, job, ckpt_collect, &a, err, sizeof err) < 0)
        e2d_log("job %s: %s", job, err);
    for (int i = 0; i + keep_last < a.n; i++) {
        if (!a.paths[i] || e2_store_ckpt_delete(srv->db, job, a.steps[i], err, sizeof err) < 0 ||
            e2_jobdir_ckpt_remove(a.paths[i], err, sizeof err) < 0)
            e2d_log("job %s: retention of step %lld: %s", job, (long long)a.steps[i],
                    a.paths[i] ? err : "out of memory");
    }
    for (int i = 0; i < a.n; i++) free(a.paths[i]);
    free(a.paths);
    free(a.steps);
}

int e2_ckpt_report(e2d_server *srv, e2d_run *run, int rank, int64_t step,
                   const E2__V1__ReportCheckpointRequest *req, int *committed, char *path,
                   char *msg, size_t msglen) {
    char err[E2_ERRLEN];
    e2d_pending_ckpt *p = ckpt_pending_get(run, step), *q, *qn;
    int64_t now = e2d_now_ms();
    e2_store_job j;
    char *manifest;
    *committed = 0;
    path[0] = 0;
    if (!p || ckpt_pending_set(p, rank, req) < 0) {
        snprintf(msg, msglen, "out of memory");
        return E2_RPC_RESOURCE_EXHAUSTED;
    }
    for (int r = 0; r < run->world; r++)
        if (!p->reported[r]) return E2_RPC_OK;
    if (!(manifest = ckpt_manifest(run, p, now))) {
        snprintf(msg, msglen, "out of memory");
        return E2_RPC_RESOURCE_EXHAUSTED;
    }
    if (e2_jobdir_ckpt_commit(srv->cfg.state_dir, run->job, step, manifest, p->files, p->nfiles,
                              path, err, sizeof err) < 0) {
        free(manifest);
        ckpt_pending_drop(run, p);
        snprintf(msg, msglen, "%s", err);
        e2d_log("job %s: checkpoint not committed: %s", run->job, err);
        return E2_RPC_FAILED_PRECONDITION;
    }
    e2_store_ckpt c = { step, path, now, run->attempt, manifest };
    if (e2_store_ckpt_add(srv->db, run->job, &c, err, sizeof err) < 0) {
        free(manifest);
        ckpt_pending_drop(run, p);
        snprintf(msg, msglen, "state store: %s", err);
        return E2_RPC_INTERNAL;
    }
    free(manifest);
    e2d_log("job %s: checkpoint step %lld committed", run->job, (long long)step);
    /* Older partial sets can no longer complete usefully. */
    for (q = run->pending; q; q = qn) {
        qn = q->next;
        if (q->step <= step) ckpt_pending_drop(run, q);
    }
    if (e2_store_job_get(srv->db, run->job, &j, err, sizeof err) == 0) {
        ckpt_retain(srv, run->job, j.keep_last);
        /* Every rank saved a trained step: the job runs even if no
         * heartbeat has carried progress yet (a fast job can commit a
         * checkpoint between two heartbeats). */
        if (j.state == E2_JOBSTATE_STARTING) {
            for (int r = 0; r < run->world; r++) run->progressed[r] = 1;
            e2d_job_transition(srv, &j, E2_JOBSTATE_RUNNING, "all ranks saved a checkpoint");
        }
        e2_store_job_free(&j);
    }
    *committed = 1;
    return E2_RPC_OK;
}
