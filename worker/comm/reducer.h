/* reducer.h -- gradient buckets summed over the ranks while the backward
 * goes on.
 *
 * Library e2w_comm, prefix e2w_reducer_. The trainer hands over each group
 * of gradient ranges as soon as the backward has finished it (one layer, the
 * head, the embeddings: a bucket); a thread of the reducer sums the buckets
 * over all ranks in the order they came, so the all-reduce of the upper
 * layers runs during the backward of the lower ones. e2w_reducer_wait
 * returns once every bucket handed over is summed. Every rank must hand
 * over the same buckets in the same order (they do: the model's layout).
 *
 * Host engines (Gloo): a bucket of several ranges is packed into one
 * staging buffer (at most E2W_REDUCER_STAGE_BYTES; larger buckets are
 * summed range by range in place), so a layer costs one collective.
 * Device engines (NCCL): e2w_reducer_push marks the compute stream (an
 * event: the kernels that wrote the bucket), and the reducer's thread makes
 * the engine's stream wait for that mark only right before it enqueues the
 * bucket's in-place all-reduces (e2w_comm_mark, e2w_comm_allreduce_spans),
 * so the first bucket's sum runs while the backward of the later ones is
 * still queued.
 *
 * The bucket boundaries depend only on the model, so the sums are the same
 * from step to step and run to run (bit-identical results for a fixed
 * world size).
 *
 * Errors follow common/base/base.h: negative return, one line in err. */
#ifndef E2W_REDUCER_H
#define E2W_REDUCER_H

#include <stddef.h>

#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define E2W_REDUCER_STAGE_BYTES ((size_t)64 << 20)

typedef struct e2w_reducer e2w_reducer;

/* A range of the reducer's buffer, in elements. */
typedef struct {
    size_t offset, n;
} e2w_reducer_range;

/* The reducer of buffer base (n elements of dtype F32 or BF16; device
 * memory when stream is not NULL, the cudaStream_t of the kernels that
 * write it). Starts the reducer's thread. */
int e2w_reducer_create(e2w_reducer **out, e2w_comm *comm, void *base, e2w_comm_dtype dtype,
                       void *stream, char *err, size_t errlen);

/* Hands over one bucket: ranges whose gradients are final. Never blocks on
 * the collective; a failure shows in e2w_reducer_wait. */
void e2w_reducer_push(e2w_reducer *r, const e2w_reducer_range *ranges, int nranges);

/* Waits until every bucket pushed so far is summed. Returns 0, or the first
 * failure of any of them (then the communicator is broken: abort it). The
 * seconds this call waited are added to *waited_s when not NULL. */
int e2w_reducer_wait(e2w_reducer *r, double *waited_s, char *err, size_t errlen);

/* Seconds the reducer's thread spent in collectives since creation. */
double e2w_reducer_busy_seconds(e2w_reducer *r);

/* Stops the thread (after the bucket in progress, if any; the waiting ones
 * are dropped) and frees. Abort the communicator first when a collective
 * may hang. */
void e2w_reducer_free(e2w_reducer *r);

#ifdef __cplusplus
}
#endif

#endif
