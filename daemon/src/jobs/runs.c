/* runs.c -- the lookups of the daemon's in-memory registry (e2d.h): a
 * registered worker by id, the current run of a job. Moved out of sched.c
 * so that the layers above the scheduler's (jobs.c, logs.c) and the
 * scheduler itself share them from below. */
#include <stdint.h>
#include <string.h>

#include "e2d.h"

static uint32_t runs_hash(const char *id) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)id; *c; c++) h = (h ^ *c) * 16777619u;
    return h & (E2D_HASH_BUCKETS - 1);
}

static e2d_worker **runs_worker_slot(e2d_server *srv, const char *id) {
    return &srv->worker_tab[runs_hash(id)];
}

/* Every request of a worker looks it up (1,000 workers: 1,000 heartbeats a
 * second), so by hash; a worker not yet in the hash is found on the list
 * and entered, whichever code path linked it there. */
e2d_worker *e2d_worker_find(e2d_server *srv, const char *id) {
    e2d_worker **slot;
    if (!id) return NULL;
    slot = runs_worker_slot(srv, id);
    for (e2d_worker *w = *slot; w; w = w->hnext)
        if (!strcmp(w->row.id, id)) return w;
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (!strcmp(w->row.id, id)) {
            w->hnext = *slot;
            *slot = w;
            return w;
        }
    return NULL;
}

/* Every worker call looks its job's run up: by hash as well. */
e2d_run *e2d_run_find(e2d_server *srv, const char *job) {
    if (!job) return NULL;
    for (e2d_run *r = srv->run_tab[runs_hash(job)]; r; r = r->hnext)
        if (!strcmp(r->job, job)) return r;
    return NULL;
}

void e2d_run_link(e2d_server *srv, e2d_run *r) {
    e2d_run **slot = &srv->run_tab[runs_hash(r->job)];
    r->next = srv->runs;
    srv->runs = r;
    r->hnext = *slot;
    *slot = r;
}

void e2d_run_unlink(e2d_server *srv, e2d_run *r) {
    for (e2d_run **p = &srv->runs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            break;
        }
    for (e2d_run **p = &srv->run_tab[runs_hash(r->job)]; *p; p = &(*p)->hnext)
        if (*p == r) {
            *p = r->hnext;
            break;
        }
}
