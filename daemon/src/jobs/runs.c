/* runs.c -- the lookups of the daemon's in-memory registry (e2d.h): a
 * registered worker by id, the current run of a job. Moved out of sched.c
 * so that the layers above the scheduler's (jobs.c, logs.c) and the
 * scheduler itself share them from below. */
#include <string.h>

#include "e2d.h"

e2d_worker *e2d_worker_find(e2d_server *srv, const char *id) {
    if (!id) return NULL;
    for (e2d_worker *w = srv->workers; w; w = w->next)
        if (!strcmp(w->row.id, id)) return w;
    return NULL;
}

e2d_run *e2d_run_find(e2d_server *srv, const char *job) {
    if (!job) return NULL;
    for (e2d_run *r = srv->runs; r; r = r->next)
        if (!strcmp(r->job, job)) return r;
    return NULL;
}
