/* comm_internal.h -- the table each engine of e2w_comm fills (gloo_shim.cc,
 * nccl.c) and comm.c dispatches to. Not for users of the library. */
#ifndef E2W_COMM_INTERNAL_H
#define E2W_COMM_INTERNAL_H

#include "comm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int (*allreduce)(void *impl, void *buf, size_t n, e2w_comm_dtype dtype, e2w_comm_op op,
                     char *err, size_t errlen);
    int (*broadcast)(void *impl, void *buf, size_t bytes, int root, char *err, size_t errlen);
    /* n elements of esz bytes, chunks as in e2w_comm_allgather. */
    int (*allgather)(void *impl, void *buf, size_t n, size_t esz, char *err, size_t errlen);
    int (*barrier)(void *impl, char *err, size_t errlen);
    void (*abort)(void *impl); /* any thread */
    void (*free)(void *impl);
    /* Device engines: order later collectives after the work queued on a
     * compute stream (e2w_comm_order_after); NULL for host engines. */
    int (*order_after)(void *impl, void *stream, char *err, size_t errlen);
    /* Device engines, for the gradient reducer (e2w_comm_mark,
     * e2w_comm_allreduce_spans); NULL for host engines. mark records an
     * event on stream now, on the thread that queued the work; mark_free
     * gives it back (any thread); allreduce_spans makes the engine's stream
     * wait for the mark right before it enqueues the spans' all-reduces, and
     * waits for an event of its own recorded after them. */
    int (*mark)(void *impl, void *stream, void **mark, char *err, size_t errlen);
    void (*mark_free)(void *impl, void *mark);
    int (*allreduce_spans)(void *impl, void *after, const e2w_comm_span *spans, int n,
                           e2w_comm_dtype dtype, e2w_comm_op op, char *err, size_t errlen);
} e2w_comm_ops;

/* Connect an engine for cfg (already validated by comm.c). */
int e2w_comm_gloo_create(const e2w_comm_config *cfg, void **impl, const e2w_comm_ops **ops,
                         char *err, size_t errlen);
#ifdef E2_HAVE_CUDA
int e2w_comm_nccl_create(const e2w_comm_config *cfg, void **impl, const e2w_comm_ops **ops,
                         char *err, size_t errlen);
#endif

#ifdef __cplusplus
}
#endif

#endif
