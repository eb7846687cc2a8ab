/* nccl.c -- e2w_comm's NCCL engine for GPU ranks (built with E2_HAVE_CUDA).
 *
 * Rank 0 creates the ncclUniqueId and puts it in the rendezvous store under
 * "nccl/uid"; the others get it. The communicator is non-blocking
 * (ncclCommInitRankConfig with blocking = 0), so neither its creation nor a
 * collective can trap the thread: every wait is a poll loop (the watcher)
 * that reads ncclCommGetAsyncError and the stream's state every 200 us and,
 * on e2w_comm_abort, a timeout or an asynchronous error, calls
 * ncclCommAbort, which also makes the peers' collectives fail.
 *
 * Buffers are device memory on cfg->device; collectives run on cfg->stream
 * (NULL: a non-blocking stream of the engine's own, so that they can run
 * beside the compute kernels) and the call returns once the stream has
 * finished them. order_after makes that stream wait for an event recorded
 * on the compute stream.
 *
 * The gradient reducer overlaps its all-reduces with the backward: the
 * trainer's thread records an event per bucket on the compute stream when
 * it hands the bucket over (mark), and the reducer's thread makes the
 * collective stream wait for that event only right before it enqueues that
 * bucket's all-reduces (allreduce_spans). Had the wait been queued at hand
 * over, the host, far ahead of the device, would queue every bucket's wait
 * before the first all-reduce, which then waited for the last bucket. Each
 * call then waits for an event recorded after its own collectives, not for
 * the whole stream. Events come from a small pool (any thread).
 *
 * Teardown follows NCCL's sequence for a non-blocking communicator:
 * ncclCommFinalize, poll ncclCommGetAsyncError until it is no longer in
 * progress, then ncclCommDestroy; after a failure, an abort or a finalize
 * that does not finish within the timeout, ncclCommAbort instead. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "base.h"
#include "comm_internal.h"

#define NCCL_EVENT_POOL 64

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
    int own_stream;   /* created here, destroyed in free */
    cudaEvent_t mark; /* order_after's event on the compute stream */
    int device, rank, world_size;
    int timeout_ms;
    float *scratch; /* one float on the device, for barrier */
    atomic_int abort_requested;
    int aborted;             /* ncclCommAbort done (owner thread only) */
    pthread_mutex_t pool_mu; /* the free events below */
    cudaEvent_t pool[NCCL_EVENT_POOL];
    int n_pool;
} nccl_engine;

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void nap(void) {
    struct timespec ts = { 0, 200000 };
    nanosleep(&ts, NULL);
}

/* Aborts the communicator once (the owner thread's side of an abort). */
static void kill_comm(nccl_engine *e) {
    if (e->aborted || !e->comm) return;
    ncclCommAbort(e->comm);
    e->aborted = 1;
}

/* An event from the pool (or a new one): NULL when CUDA has none. */
static cudaEvent_t event_get(nccl_engine *e) {
    cudaEvent_t ev = NULL;
    pthread_mutex_lock(&e->pool_mu);
    if (e->n_pool > 0) ev = e->pool[--e->n_pool];
    pthread_mutex_unlock(&e->pool_mu);
    if (!ev && cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess) {
        (void)cudaGetLastError();
        ev = NULL;
    }
    return ev;
}

static void event_put(nccl_engine *e, cudaEvent_t ev) {
    if (!ev) return;
    pthread_mutex_lock(&e->pool_mu);
    if (e->n_pool < NCCL_EVENT_POOL) {
        e->pool[e->n_pool++] = ev;
        ev = NULL;
    }
    pthread_mutex_unlock(&e->pool_mu);
    if (ev) cudaEventDestroy(ev);
}

/* The watcher: waits until NCCL has finished the last call (host side:
 * the collective is on the stream) and then, when stream_too, until the
 * device has run it: an event recorded on the stream once NCCL's host side
 * is done (recorded earlier, it could pass before the collective was
 * queued) or, without an event from the pool, the whole stream. Aborts on
 * request, on an asynchronous error or after timeout_ms. */
static int watch(nccl_engine *e, const char *what, int stream_too, char *err, size_t errlen) {
    double end = mono_ms() + e->timeout_ms;
    cudaEvent_t done = NULL;
    int recorded = 0, rc = 0;
    for (;;) {
        if (atomic_load(&e->abort_requested)) {
            kill_comm(e);
            e2_errf(err, errlen, "comm %s: aborted", what);
            rc = E2W_COMM_EABORTED;
            break;
        }
        ncclResult_t async;
        ncclResult_t r = ncclCommGetAsyncError(e->comm, &async);
        if (r != ncclSuccess) async = r;
        if (async != ncclSuccess && async != ncclInProgress) {
            const char *msg = ncclGetErrorString(async);
            kill_comm(e);
            rc = e2_errf(err, errlen, "comm %s: NCCL: %s", what, msg);
            break;
        }
        if (async == ncclSuccess) {
            if (!stream_too) break;
            if (!recorded) {
                done = event_get(e);
                if (done && cudaEventRecord(done, e->stream) != cudaSuccess) {
                    (void)cudaGetLastError();
                    event_put(e, done);
                    done = NULL;
                }
                recorded = 1;
            }
            cudaError_t q = done ? cudaEventQuery(done) : cudaStreamQuery(e->stream);
            if (q == cudaSuccess) break;
            if (q != cudaErrorNotReady) {
                kill_comm(e);
                rc = e2_errf(err, errlen, "comm %s: CUDA: %s", what, cudaGetErrorString(q));
                break;
            }
        }
        if (mono_ms() > end) {
            kill_comm(e);
            e2_errf(err, errlen, "comm %s: no progress within %d ms (a peer is gone or hangs)",
                    what, e->timeout_ms);
            rc = E2W_COMM_ETIMEDOUT;
            break;
        }
        nap();
    }
    event_put(e, done);
    return rc;
}

/* Checks a call that only enqueues; ncclInProgress is fine (non-blocking). */
static int enqueued(nccl_engine *e, ncclResult_t r, const char *what, char *err, size_t errlen) {
    if (r == ncclSuccess || r == ncclInProgress) return 0;
    kill_comm(e);
    return e2_errf(err, errlen, "comm %s: NCCL: %s", what, ncclGetErrorString(r));
}

static int usable(nccl_engine *e, const char *what, char *err, size_t errlen) {
    if (e->aborted || atomic_load(&e->abort_requested)) {
        kill_comm(e);
        e2_errf(err, errlen, "comm %s: aborted", what);
        return E2W_COMM_EABORTED;
    }
    cudaError_t c = cudaSetDevice(e->device);
    if (c != cudaSuccess)
        return e2_errf(err, errlen, "comm %s: cudaSetDevice(%d): %s", what, e->device,
                       cudaGetErrorString(c));
    return 0;
}

static int nccl_allreduce(void *impl, void *buf, size_t n, e2w_comm_dtype dtype, e2w_comm_op op,
                          char *err, size_t errlen) {
    nccl_engine *e = impl;
    int rc = usable(e, "allreduce", err, errlen);
    if (rc < 0) return rc;
    ncclDataType_t t = dtype == E2W_COMM_F64    ? ncclFloat64
                       : dtype == E2W_COMM_BF16 ? ncclBfloat16
                                                : ncclFloat32;
    ncclRedOp_t o = op == E2W_COMM_AVG ? ncclAvg : ncclSum;
    if ((rc = enqueued(e, ncclAllReduce(buf, buf, n, t, o, e->comm, e->stream), "allreduce", err,
                       errlen)) < 0)
        return rc;
    return watch(e, "allreduce", 1, err, errlen);
}

static int nccl_broadcast(void *impl, void *buf, size_t bytes, int root, char *err, size_t errlen) {
    nccl_engine *e = impl;
    int rc = usable(e, "broadcast", err, errlen);
    if (rc < 0) return rc;
    if ((rc = enqueued(e, ncclBroadcast(buf, buf, bytes, ncclUint8, root, e->comm, e->stream),
                       "broadcast", err, errlen)) < 0)
        return rc;
    return watch(e, "broadcast", 1, err, errlen);
}

/* Equal chunks (W divides n): one in-place ncclAllGather (this rank's
 * chunk already sits at its place in the output). Otherwise the chunks of
 * e2w_comm_allgather are uneven and ncclAllGather's equal counts do not
 * fit: one ncclBroadcast per rank's chunk, fused in a group. As bytes. */
static int nccl_allgather(void *impl, void *buf, size_t n, size_t esz, char *err, size_t errlen) {
    nccl_engine *e = impl;
    int rc = usable(e, "allgather", err, errlen);
    if (rc < 0) return rc;
    size_t W = (size_t)e->world_size, S = (n + W - 1) / W;
    char *b = buf;
    ncclResult_t r;
    if (S * W == n) {
        r = ncclAllGather(b + (size_t)e->rank * S * esz, b, S * esz, ncclUint8, e->comm, e->stream);
    } else {
        r = ncclGroupStart();
        for (size_t q = 0; q < W && (r == ncclSuccess || r == ncclInProgress); q++) {
            size_t lo = q * S < n ? q * S : n, hi = (q + 1) * S < n ? (q + 1) * S : n;
            if (hi > lo)
                r = ncclBroadcast(b + lo * esz, b + lo * esz, (hi - lo) * esz, ncclUint8, (int)q,
                                  e->comm, e->stream);
        }
        ncclResult_t end = ncclGroupEnd();
        if (r == ncclSuccess || r == ncclInProgress) r = end;
    }
    if ((rc = enqueued(e, r, "allgather", err, errlen)) < 0) return rc;
    return watch(e, "allgather", 1, err, errlen);
}

/* NCCL has no barrier: an all-reduce of one float is one. */
static int nccl_barrier(void *impl, char *err, size_t errlen) {
    nccl_engine *e = impl;
    int rc = usable(e, "barrier", err, errlen);
    if (rc < 0) return rc;
    if ((rc = enqueued(
             e, ncclAllReduce(e->scratch, e->scratch, 1, ncclFloat32, ncclSum, e->comm, e->stream),
             "barrier", err, errlen)) < 0)
        return rc;
    return watch(e, "barrier", 1, err, errlen);
}

/* Any thread: the owner's watcher (or free) performs the abort. */
static void nccl_abort(void *impl) {
    nccl_engine *e = impl;
    atomic_store(&e->abort_requested, 1);
}

/* A healthy communicator: ncclCommFinalize flushes its outstanding work
 * (non-blocking: it may return ncclInProgress), ncclCommGetAsyncError says
 * when that is done, then ncclCommDestroy frees it. Anything else aborts. */
static void close_comm(nccl_engine *e) {
    if (e->aborted || atomic_load(&e->abort_requested)) {
        kill_comm(e);
        return;
    }
    ncclResult_t r = ncclCommFinalize(e->comm), async = r;
    double end = mono_ms() + e->timeout_ms;
    while (async == ncclInProgress && mono_ms() <= end && !atomic_load(&e->abort_requested)) {
        nap();
        if (ncclCommGetAsyncError(e->comm, &async) != ncclSuccess) async = ncclInternalError;
    }
    if (async == ncclSuccess)
        ncclCommDestroy(e->comm);
    else
        kill_comm(e);
}

static void nccl_free(void *impl) {
    nccl_engine *e = impl;
    if (e->comm) {
        cudaSetDevice(e->device);
        close_comm(e);
    }
    if (e->scratch) cudaFree(e->scratch);
    if (e->mark) cudaEventDestroy(e->mark);
    for (int i = 0; i < e->n_pool; i++) cudaEventDestroy(e->pool[i]);
    pthread_mutex_destroy(&e->pool_mu);
    if (e->own_stream) cudaStreamDestroy(e->stream);
    free(e);
}

/* The collective stream waits (on the device) for the compute stream's work
 * queued so far; one event serves every call, since the wait takes the
 * event's state at the time it is queued. */
static int nccl_order_after(void *impl, void *stream, char *err, size_t errlen) {
    nccl_engine *e = impl;
    cudaStream_t s = (cudaStream_t)stream;
    if (s == e->stream) return 0;
    cudaError_t c = cudaEventRecord(e->mark, s);
    if (c == cudaSuccess) c = cudaStreamWaitEvent(e->stream, e->mark, 0);
    if (c != cudaSuccess)
        return e2_errf(err, errlen, "comm order_after: CUDA: %s", cudaGetErrorString(c));
    return 0;
}

/* The work queued on the compute stream so far, as an event (the trainer's
 * thread, at a bucket's hand-over). */
static int nccl_mark(void *impl, void *stream, void **mark, char *err, size_t errlen) {
    nccl_engine *e = impl;
    *mark = NULL;
    cudaEvent_t ev = event_get(e);
    if (!ev) return e2_errf(err, errlen, "comm mark: cannot create a CUDA event");
    cudaError_t c = cudaEventRecord(ev, (cudaStream_t)stream);
    if (c != cudaSuccess) {
        event_put(e, ev);
        return e2_errf(err, errlen, "comm mark: CUDA: %s", cudaGetErrorString(c));
    }
    *mark = ev;
    return 0;
}

static void nccl_mark_free(void *impl, void *mark) {
    event_put(impl, (cudaEvent_t)mark);
}

/* The reducer's thread: the collective stream waits for the bucket's mark
 * now, right before its all-reduces (one group), then this call waits for
 * them. */
static int nccl_allreduce_spans(void *impl, void *after, const e2w_comm_span *spans, int n,
                                e2w_comm_dtype dtype, e2w_comm_op op, char *err, size_t errlen) {
    nccl_engine *e = impl;
    int rc = usable(e, "allreduce", err, errlen);
    if (rc < 0) return rc;
    if (after) {
        cudaError_t c = cudaStreamWaitEvent(e->stream, (cudaEvent_t)after, 0);
        if (c != cudaSuccess)
            return e2_errf(err, errlen, "comm allreduce: CUDA: %s", cudaGetErrorString(c));
    }
    ncclDataType_t t = dtype == E2W_COMM_F64    ? ncclFloat64
                       : dtype == E2W_COMM_BF16 ? ncclBfloat16
                                                : ncclFloat32;
    ncclRedOp_t o = op == E2W_COMM_AVG ? ncclAvg : ncclSum;
    ncclResult_t r = ncclGroupStart();
    for (int i = 0; i < n && (r == ncclSuccess || r == ncclInProgress); i++)
        if (spans[i].n > 0)
            r = ncclAllReduce(spans[i].buf, spans[i].buf, spans[i].n, t, o, e->comm, e->stream);
    ncclResult_t end = ncclGroupEnd();
    if (r == ncclSuccess || r == ncclInProgress) r = end;
    if ((rc = enqueued(e, r, "allreduce", err, errlen)) < 0) return rc;
    return watch(e, "allreduce", 1, err, errlen);
}

static const e2w_comm_ops nccl_ops = { nccl_allreduce,      nccl_broadcast, nccl_allgather,
                                       nccl_barrier,        nccl_abort,     nccl_free,
                                       nccl_order_after,    nccl_mark,      nccl_mark_free,
                                       nccl_allreduce_spans };

/* Rank 0 publishes the unique id; the others wait for it. */
static int exchange_uid(const e2w_comm_config *cfg, ncclUniqueId *id, char *err, size_t errlen) {
    if (cfg->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(id);
        if (r != ncclSuccess)
            return e2_errf(err, errlen, "comm connect: ncclGetUniqueId: %s", ncclGetErrorString(r));
        return cfg->store.set(cfg->store.ud, "nccl/uid", id, sizeof *id, err, errlen);
    }
    void *v = NULL;
    size_t n = 0;
    int rc = cfg->store.get(cfg->store.ud, "nccl/uid", cfg->timeout_ms, &v, &n, err, errlen);
    if (rc < 0) return rc;
    if (n != sizeof *id) {
        free(v);
        return e2_errf(err, errlen, "comm connect: nccl/uid holds %zu bytes, want %zu", n,
                       sizeof *id);
    }
    memcpy(id, v, n);
    free(v);
    return 0;
}

int e2w_comm_nccl_create(const e2w_comm_config *cfg, void **impl, const e2w_comm_ops **ops,
                         char *err, size_t errlen) {
    nccl_engine *e = calloc(1, sizeof *e);
    if (!e) return e2_errf(err, errlen, "comm: out of memory");
    e->device = cfg->device;
    e->rank = cfg->rank;
    e->world_size = cfg->world_size;
    e->timeout_ms = cfg->timeout_ms;
    e->stream = (cudaStream_t)cfg->stream;
    atomic_init(&e->abort_requested, 0);
    pthread_mutex_init(&e->pool_mu, NULL);
    ncclUniqueId id;
    int rc = exchange_uid(cfg, &id, err, errlen);
    if (rc < 0) goto fail;
    cudaError_t c = cudaSetDevice(e->device);
    if (c == cudaSuccess) c = cudaMalloc((void **)&e->scratch, sizeof(float));
    if (c == cudaSuccess) c = cudaEventCreateWithFlags(&e->mark, cudaEventDisableTiming);
    if (c == cudaSuccess && !e->stream) {
        c = cudaStreamCreateWithFlags(&e->stream, cudaStreamNonBlocking);
        e->own_stream = c == cudaSuccess;
    }
    if (c != cudaSuccess) {
        rc = e2_errf(err, errlen, "comm connect: CUDA device %d: %s", e->device,
                     cudaGetErrorString(c));
        goto fail;
    }
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&e->comm, cfg->world_size, id, cfg->rank, &config);
    if (r != ncclSuccess && r != ncclInProgress) {
        e->comm = NULL;
        rc =
            e2_errf(err, errlen, "comm connect: ncclCommInitRankConfig: %s", ncclGetErrorString(r));
        goto fail;
    }
    if ((rc = watch(e, "connect", 0, err, errlen)) < 0) goto fail;
    *impl = e;
    *ops = &nccl_ops;
    return 0;
fail:
    nccl_free(e);
    return rc;
}
