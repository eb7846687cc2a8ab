/* comm.h -- collectives between the data-parallel ranks of one job attempt.
 *
 * Library e2w_comm, prefix e2w_comm_. One interface, two engines:
 *   Gloo (CPU ranks): Debian's libgloo over TCP, through gloo_shim.cc;
 *   NCCL (GPU ranks): nccl.c, built when CUDA is found (E2_HAVE_CUDA).
 * The ranks find each other through a rendezvous store given as callbacks:
 * e2d's RendezvousPut/Get in production (worker/agent), a directory in
 * tests (e2w_comm_dirstore). No fixed ports: each Gloo rank listens on an
 * ephemeral port and publishes its address in the store; NCCL's unique id
 * is put by rank 0 and read by the others.
 *
 * A collective that cannot complete (a peer died, was aborted, or hangs)
 * fails after timeout_ms instead of blocking forever; e2w_comm_abort, from
 * any thread, makes the collective in progress and every later one fail at
 * once, and closes the connections so the peers' collectives fail too.
 * After a failure the communicator is unusable: destroy it. The process
 * must ignore SIGPIPE (e2worker does): a write to a dead peer's socket
 * has to fail with EPIPE rather than kill the rank.
 *
 * Errors follow common/base/base.h: negative return, one line in err. */
#ifndef E2W_COMM_H
#define E2W_COMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define E2W_COMM_EABORTED  (-20) /* e2w_comm_abort was called */
#define E2W_COMM_ETIMEDOUT (-21) /* a peer did not answer within timeout_ms */

typedef enum { E2W_COMM_GLOO = 0, E2W_COMM_NCCL = 1 } e2w_comm_engine;
typedef enum { E2W_COMM_F32 = 0, E2W_COMM_F64 = 1, E2W_COMM_BF16 = 2 } e2w_comm_dtype;
typedef enum { E2W_COMM_SUM = 0, E2W_COMM_AVG = 1 } e2w_comm_op;

/* The rendezvous store of one job attempt: a key-value map every rank sees.
 * Callbacks may run on any thread of the caller of e2w_comm_init. */
typedef struct {
    void *ud;
    /* Stores value under key (overwrites). */
    int (*set)(void *ud, const char *key, const void *value, size_t len, char *err, size_t errlen);
    /* Waits up to timeout_ms for key and returns a malloc'd copy of its
     * value; E2_NOTFOUND (base.h) when it did not appear in time. */
    int (*get)(void *ud, const char *key, int timeout_ms, void **value, size_t *len, char *err,
               size_t errlen);
} e2w_comm_store;

typedef struct {
    e2w_comm_engine engine;
    int rank, world_size; /* 0 <= rank < world_size */
    int timeout_ms;       /* set-up and each collective; default 60000 */
    /* Gloo: address this rank listens on and advertises; NULL with iface
     * NULL: 127.0.0.1 (all ranks on one machine). */
    const char *hostname;
    const char *iface; /* Gloo: network interface instead ("eth0") */
    int device;        /* NCCL: CUDA device ordinal */
    void *stream;      /* NCCL: cudaStream_t of the collectives; NULL: default */
    e2w_comm_store store;
} e2w_comm_config;

typedef struct e2w_comm e2w_comm;

/* Connects the ranks (every rank calls it with the same world_size). */
int e2w_comm_init(e2w_comm **out, const e2w_comm_config *cfg, char *err, size_t errlen);

/* In-place all-reduce of n elements: SUM, or AVG (sum / world_size).
 * Gloo: host memory, F32 or F64. NCCL: device memory, F32, F64 or BF16. */
int e2w_comm_allreduce(e2w_comm *c, void *buf, size_t n, e2w_comm_dtype dtype, e2w_comm_op op,
                       char *err, size_t errlen);

/* In-place all-gather of n elements (ZeRO-1's parameters): the buffer is
 * cut into W chunks of S = ceil(n / W) elements, the last ones shorter or
 * empty (chunk c is [min(c S, n), min((c + 1) S, n))); rank r contributes
 * chunk r of its buf, and afterwards every rank's buf holds every chunk.
 * No padding: n is the buffer's length. A plain copy, so any dtype. Gloo:
 * host memory; NCCL: device memory. */
int e2w_comm_allgather(e2w_comm *c, void *buf, size_t n, e2w_comm_dtype dtype, char *err,
                       size_t errlen);

/* Copies `bytes` bytes of root's buf into every rank's buf. */
int e2w_comm_broadcast(e2w_comm *c, void *buf, size_t bytes, int root, char *err, size_t errlen);

/* Returns once every rank entered it. */
int e2w_comm_barrier(e2w_comm *c, char *err, size_t errlen);

/* Device engines: the collectives this rank issues after this call start
 * only once the work queued so far on `stream` (the cudaStream_t of the
 * compute kernels) is done, and the host does not wait for it. Call it on
 * the thread that queued that work. Host engines: nothing to order. */
int e2w_comm_order_after(e2w_comm *c, void *stream, char *err, size_t errlen);

/* Overlap for the gradient reducer (reducer.h). A mark is the work queued
 * on `stream` (the compute stream) at the time of the call, taken on the
 * thread that queued it; *mark is NULL for host engines or a NULL stream.
 * e2w_comm_allreduce_spans then sums the spans in place (SUM or AVG), on
 * any thread, after the marked work only (not the work queued on stream
 * since), and returns when they are summed; after NULL: no ordering. Give
 * every mark back with e2w_comm_mark_free (any thread; NULL is fine). */
typedef struct {
    void *buf;
    size_t n;
} e2w_comm_span;
int e2w_comm_mark(e2w_comm *c, void *stream, void **mark, char *err, size_t errlen);
void e2w_comm_mark_free(e2w_comm *c, void *mark);
int e2w_comm_allreduce_spans(e2w_comm *c, void *after, const e2w_comm_span *spans, int n,
                             e2w_comm_dtype dtype, e2w_comm_op op, char *err, size_t errlen);

/* Breaks the communicator: the collective in progress (on another thread)
 * and every later one fail with E2W_COMM_EABORTED; the peers' collectives
 * fail as their connections close. Safe from any thread, more than once. */
void e2w_comm_abort(e2w_comm *c);

/* Frees the communicator (no collective may be in progress). */
void e2w_comm_free(e2w_comm *c);

int e2w_comm_rank(const e2w_comm *c);
int e2w_comm_world_size(const e2w_comm *c);

/* Whether this build has the engine (NCCL needs CUDA at build time). */
int e2w_comm_engine_available(e2w_comm_engine engine);

/* A store kept in a directory every rank can read (one file per key,
 * written atomically); for tests and single-machine runs. The directory is
 * created if missing. */
int e2w_comm_dirstore_open(e2w_comm_store *store, const char *dir, char *err, size_t errlen);
void e2w_comm_dirstore_close(e2w_comm_store *store);

#ifdef __cplusplus
}
#endif

#endif
