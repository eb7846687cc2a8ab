/* expand.h -- the shard manifest of an assignment (the files the job's
 * training shard patterns match, with their sizes: common/shards), built
 * on libuv's thread pool so that glob and stat, which can block on a
 * network file system, never stall the event loop (prefix expand_).
 *
 * While it runs, the gang the scheduler chose is held: e2d_expand_job_pending
 * and e2d_expand_worker_held tell the scheduling pass to skip the job and
 * those workers. The scheduler gets the files back in a callback on the
 * loop thread, and decides there whether the attempt still starts. */
#ifndef E2D_EXPAND_H
#define E2D_EXPAND_H

#include "base.h"
#include "e2d.h"
#include "shards.h"

typedef struct e2d_expand_req e2d_expand_req;

/* On the loop thread when the expansion is done (also at shutdown, with
 * srv->shutting_down set): files is NULL when it failed (err says why, one
 * line naming the pattern). The request is freed after it returns. */
typedef void (*e2d_expand_done_cb)(e2d_server *srv, const e2d_expand_req *x,
                                   const e2_shard_list *files, const char *err);

struct e2d_expand_req {
    uv_work_t req;
    struct e2d_expand_req *next; /* srv->expanding */
    e2d_server *srv;
    e2d_expand_done_cb done;
    char job[E2_STORE_IDLEN];
    int attempt;                  /* the job's attempt when the gang was chosen */
    int n;                        /* gang size */
    char (*gang)[E2_STORE_IDLEN]; /* (n) worker ids, by rank */
    char **patterns;              /* (npat) spec.data.train_shards, all absolute */
    size_t npat;
    e2_shard_list files;
    int rc;
    char err[E2_ERRLEN];
};

/* Holds the first world workers of gang (world <= j->num_workers: fewer
 * on an elastic restart) for j and expands j's training shard
 * patterns on the thread pool; done follows. Returns 0 when queued; 1 when
 * there is nothing to expand (no patterns, or a relative one: the ranks'
 * working directory is not e2d's) or no memory for it: the caller starts
 * the attempt without a manifest, as it did before. */
int e2d_expand_start(e2d_server *srv, const e2_store_job *j, e2d_worker **gang, int world,
                     e2d_expand_done_cb done);

/* 1 while job's manifest is being expanded. */
int e2d_expand_job_pending(const e2d_server *srv, const char *job);

/* 1 while w is held for such a job. */
int e2d_expand_worker_held(const e2d_server *srv, const e2d_worker *w);

#endif
