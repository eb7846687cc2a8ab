/* comm.c -- e2w_comm's engine-independent half: argument checks, dispatch
 * to the engine's table, and the directory-backed rendezvous store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base.h"
#include "comm_internal.h"

struct e2w_comm {
    const e2w_comm_ops *ops;
    void *impl;
    int rank, world_size;
};

int e2w_comm_engine_available(e2w_comm_engine engine) {
#ifdef E2_HAVE_CUDA
    if (engine == E2W_COMM_NCCL) return 1;
#endif
    return engine == E2W_COMM_GLOO;
}

int e2w_comm_init(e2w_comm **out, const e2w_comm_config *cfg, char *err, size_t errlen) {
    *out = NULL;
    if (cfg->world_size < 1)
        return e2_errf(err, errlen, "comm: world_size must be >= 1 (got %d)", cfg->world_size);
    if (cfg->rank < 0 || cfg->rank >= cfg->world_size)
        return e2_errf(err, errlen, "comm: rank must be in [0, %d) (got %d)", cfg->world_size,
                       cfg->rank);
    if (!cfg->store.set || !cfg->store.get)
        return e2_errf(err, errlen, "comm: the rendezvous store needs set and get callbacks");
    if (!e2w_comm_engine_available(cfg->engine))
        return e2_errf(err, errlen,
                       "comm: engine %s is not in this build (NCCL needs CUDA at build time)",
                       cfg->engine == E2W_COMM_NCCL ? "nccl" : "?");
    e2w_comm_config c = *cfg;
    if (c.timeout_ms <= 0) c.timeout_ms = 60000;
    e2w_comm *comm = calloc(1, sizeof *comm);
    if (!comm) return e2_errf(err, errlen, "comm: out of memory");
    comm->rank = c.rank;
    comm->world_size = c.world_size;
    int rc;
#ifdef E2_HAVE_CUDA
    if (c.engine == E2W_COMM_NCCL)
        rc = e2w_comm_nccl_create(&c, &comm->impl, &comm->ops, err, errlen);
    else
#endif
        rc = e2w_comm_gloo_create(&c, &comm->impl, &comm->ops, err, errlen);
    if (rc < 0) {
        free(comm);
        return rc;
    }
    *out = comm;
    return 0;
}

int e2w_comm_allreduce(e2w_comm *c, void *buf, size_t n, e2w_comm_dtype dtype, e2w_comm_op op,
                       char *err, size_t errlen) {
    if (n == 0) return 0;
    return c->ops->allreduce(c->impl, buf, n, dtype, op, err, errlen);
}

int e2w_comm_allgather(e2w_comm *c, void *buf, size_t n, e2w_comm_dtype dtype, char *err,
                       size_t errlen) {
    if (n == 0) return 0;
    size_t esz = dtype == E2W_COMM_F64 ? 8 : dtype == E2W_COMM_BF16 ? 2 : 4;
    return c->ops->allgather(c->impl, buf, n, esz, err, errlen);
}

int e2w_comm_broadcast(e2w_comm *c, void *buf, size_t bytes, int root, char *err, size_t errlen) {
    if (root < 0 || root >= c->world_size)
        return e2_errf(err, errlen, "comm: broadcast root must be in [0, %d) (got %d)",
                       c->world_size, root);
    if (bytes == 0) return 0;
    return c->ops->broadcast(c->impl, buf, bytes, root, err, errlen);
}

int e2w_comm_barrier(e2w_comm *c, char *err, size_t errlen) {
    return c->ops->barrier(c->impl, err, errlen);
}

int e2w_comm_order_after(e2w_comm *c, void *stream, char *err, size_t errlen) {
    if (!c->ops->order_after || !stream) return 0;
    return c->ops->order_after(c->impl, stream, err, errlen);
}

int e2w_comm_mark(e2w_comm *c, void *stream, void **mark, char *err, size_t errlen) {
    *mark = NULL;
    if (!c->ops->mark || !stream) return 0;
    return c->ops->mark(c->impl, stream, mark, err, errlen);
}

void e2w_comm_mark_free(e2w_comm *c, void *mark) {
    if (mark && c->ops->mark_free) c->ops->mark_free(c->impl, mark);
}

int e2w_comm_allreduce_spans(e2w_comm *c, void *after, const e2w_comm_span *spans, int n,
                             e2w_comm_dtype dtype, e2w_comm_op op, char *err, size_t errlen) {
    if (c->ops->allreduce_spans)
        return c->ops->allreduce_spans(c->impl, after, spans, n, dtype, op, err, errlen);
    for (int i = 0; i < n; i++) {
        int rc = e2w_comm_allreduce(c, spans[i].buf, spans[i].n, dtype, op, err, errlen);
        if (rc < 0) return rc;
    }
    return 0;
}

void e2w_comm_abort(e2w_comm *c) {
    c->ops->abort(c->impl);
}

void e2w_comm_free(e2w_comm *c) {
    if (!c) return;
    c->ops->free(c->impl);
    free(c);
}

int e2w_comm_rank(const e2w_comm *c) {
    return c->rank;
}
int e2w_comm_world_size(const e2w_comm *c) {
    return c->world_size;
}

/* ---- directory store ---- */

/* A key as a file name: [A-Za-z0-9._-] kept, every other byte as %XX. */
static int dir_path(const char *dir, const char *key, char *path, size_t len) {
    int n = snprintf(path, len, "%s/", dir);
    for (const unsigned char *k = (const unsigned char *)key; *k && n < (int)len - 4; k++) {
        if ((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
            *k == '-' || *k == '_' || (*k == '.' && k != (const unsigned char *)key))
            path[n++] = (char)*k;
        else
            n += snprintf(path + n, len - (size_t)n, "%%%02X", *k);
    }
    path[n] = 0;
    return n < (int)len - 4 ? 0 : -1;
}

static int dir_set(void *ud, const char *key, const void *value, size_t len, char *err,
                   size_t errlen) {
    char path[4096];
    if (dir_path(ud, key, path, sizeof path) < 0)
        return e2_errf(err, errlen, "dirstore: key too long: %s", key);
    return e2_write_file_atomic(path, value, len, err, errlen);
}

/* Polls every 2 ms: the directory store serves tests and set-up only. */
static int dir_get(void *ud, const char *key, int timeout_ms, void **value, size_t *len, char *err,
                   size_t errlen) {
    char path[4096];
    if (dir_path(ud, key, path, sizeof path) < 0)
        return e2_errf(err, errlen, "dirstore: key too long: %s", key);
    struct timespec t0, now, nap = { 0, 2000000 };
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        char *data;
        int rc = e2_read_file(path, 1u << 26, &data, len, err, errlen);
        if (rc == 0) {
            *value = data;
            return 0;
        }
        if (rc != E2_NOTFOUND) return rc;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long ms = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
        if (ms >= timeout_ms) {
            e2_errf(err, errlen, "dirstore: key %s not set within %d ms", key, timeout_ms);
            return E2_NOTFOUND;
        }
        nanosleep(&nap, NULL);
    }
}

int e2w_comm_dirstore_open(e2w_comm_store *store, const char *dir, char *err, size_t errlen) {
    memset(store, 0, sizeof *store);
    if (e2_mkdir_p(dir, 0755, err, errlen) < 0) return E2_ERR;
    if (!(store->ud = strdup(dir))) return e2_errf(err, errlen, "out of memory");
    store->set = dir_set;
    store->get = dir_get;
    return 0;
}

void e2w_comm_dirstore_close(e2w_comm_store *store) {
    free(store->ud);
    memset(store, 0, sizeof *store);
}
