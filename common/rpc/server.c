/* server.c: the gRPC server half of e2_rpc.
 *
 * gRPC's completion queue has no file descriptor a libuv loop could poll,
 * so one thread blocks in grpc_completion_queue_next and appends events
 * to a mutex-protected array, waking the loop through an eventfd. The loop
 * drains the whole array each time (wake-ups coalesce) and makes every
 * other gRPC call itself: grpc_call_start_batch is not thread-safe per
 * call, and handlers must see all state from one thread.
 *
 * Thread wake-ups, not gRPC's work, are most of a small call's cost on a
 * busy machine, so the queue thread keeps them few: after each blocking
 * wait it takes every completion that is already ready (one lock, one
 * wake for the lot), and it wakes the loop only for events the loop must
 * act on soon; it writes the eventfd only when the loop is not already
 * awake for the array (`signalled`, cleared by the loop under the lock
 * when it finds the array empty). uv_async_t is not used: its loop side
 * spins until the sending thread's write(2) returns, every wake.
 *
 * A unary call's two last events (its status was sent; it closed without
 * cancellation) only let the loop free the call: they wait in the array
 * for the next wake, at most LAZY_MS (the thread wakes the loop for them
 * itself then), so that each call wakes the loop once instead of twice.
 *
 * A call object (e2_rpc_call) is allocated when a request slot is armed and
 * lives until (1) its RECV_CLOSE_ON_SERVER op completed, (2) no send batch
 * is in flight and (3) its handler finished it. RECV_CLOSE_ON_SERVER is
 * armed first on every call: it is gRPC's only notice that the client
 * cancelled, passed its deadline or dropped the connection.
 *
 * Each registered method keeps RPC_SLOTS more requests armed than it has
 * calls in progress (up to RPC_SLOTS_MAX), re-armed before the handler
 * runs: a request that finds no armed slot waits in gRPC until the loop
 * arms one, and its completion then costs the queue thread an extra
 * wake-up. A catch-all request answers methods nobody registered with
 * UNIMPLEMENTED right away (without it, such a client would wait for its
 * deadline).
 */
#include "rpc.h"
#include "rpc_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#define RPC_SLOTS     4  /* armed requests per method (and for the catch-all) */
#define RPC_SLOTS_MAX 64 /* most armed requests per method (see call_accept) */
#define CQ_BATCH      64 /* completions the queue thread takes per lock */
#define LAZY_MS       2  /* longest a free-only event waits for a loop wake */

typedef enum { TAG_REQUEST, TAG_CLOSE, TAG_SEND, TAG_STATUS, TAG_SHUTDOWN } tag_kind;

typedef struct {
    tag_kind kind;
    void *owner; /* e2_rpc_call, or e2_rpc_server for TAG_SHUTDOWN */
} rpc_tag;

typedef struct {
    char *path;
    const ProtobufCMessageDescriptor *request_type;
    e2_rpc_kind kind;
    e2_rpc_handler_cb handler;
    void *data;
    int role;          /* e2_rpc_method.role */
    void *registered;  /* grpc_server_register_method handle */
    int check_strings; /* e2_rpc_server_check_strings */
    size_t armed;      /* request slots armed */
    size_t active;     /* calls accepted and not yet freed */
} method_entry;

typedef struct outmsg {
    struct outmsg *next;
    grpc_byte_buffer *buffer;
} outmsg;

struct e2_rpc_call {
    e2_rpc_server *server;
    method_entry *method; /* NULL: the catch-all (unknown method) */
    struct e2_rpc_call *prev, *next;
    rpc_tag tag_request, tag_close, tag_send, tag_status;

    /* Filled by gRPC when the request slot completes. */
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md_in;
    grpc_byte_buffer *payload;
    grpc_call_details details; /* catch-all only */

    char *path; /* method path; owned when catch-all */
    char *peer; /* gpr_malloc'ed by gRPC, on the first e2_rpc_call_peer */
    char **md;  /* request metadata as C strings: key, value, ...; one block */
    size_t n_md;
    ProtobufCMessage *request;

    int close_cancelled; /* RECV_CLOSE_ON_SERVER out-parameter */
    unsigned close_pending : 1, batch_pending : 1, status_done : 1, finished : 1, cancelled : 1,
        initial_md_sent : 1, counted : 1 /* in method->active */;
    outmsg *q_head, *q_tail;
    size_t queued;
    grpc_byte_buffer *sending; /* message of the batch in flight */
    e2_rpc_status code;
    grpc_slice status_details;

    void *data;
    e2_rpc_cancel_cb on_cancel;
    e2_rpc_principal principal;
    int has_principal;
};

typedef struct {
    rpc_tag *tag; /* NULL: the completion-queue thread has ended */
    int success;
} cq_event;

typedef enum { SRV_NEW, SRV_STARTED, SRV_SHUTTING, SRV_DONE } srv_state;

struct e2_rpc_server {
    uv_loop_t *loop;
    void *data;
    grpc_server *srv;
    grpc_completion_queue *cq;
    method_entry *methods;
    size_t n_methods;
    srv_state state;

    uv_thread_t thread;
    int wake_fd; /* eventfd: the queue thread wakes the loop; -1 until started */
    uv_poll_t wake;
    uv_timer_t grace;
    int handles_open;
    uv_mutex_t mu; /* guards events, n_events, cap_events, signalled */
    cq_event *events;
    size_t n_events, cap_events;
    int signalled;   /* wake_fd written; the loop has not yet found the array empty */
    cq_event *spare; /* loop only: the array it drained last, reused */
    size_t cap_spare;

    e2_rpc_call *calls; /* live calls, armed request slots included */
    size_t live;
    rpc_tag tag_shutdown;
    int shutdown_notified, cq_shut;
    e2_rpc_shutdown_cb on_shutdown;
    e2_rpc_auth_cb auth;
    void *auth_data;
};

static void call_pump(e2_rpc_call *c);

/* ------------------------------------------------------------ call objects */

static void call_drop_queue(e2_rpc_call *c) {
    while (c->q_head != NULL) {
        outmsg *m = c->q_head;
        c->q_head = m->next;
        grpc_byte_buffer_destroy(m->buffer);
        free(m);
    }
    c->q_tail = NULL;
    c->queued = 0;
}

static void server_maybe_teardown(e2_rpc_server *s);

static void call_free(e2_rpc_call *c) {
    e2_rpc_server *s = c->server;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->calls = c->next;
    if (c->next != NULL) c->next->prev = c->prev;
    s->live--;
    if (c->counted) c->method->active--;

    call_drop_queue(c);
    if (c->call != NULL) grpc_call_unref(c->call);
    grpc_metadata_array_destroy(&c->md_in);
    if (c->payload != NULL) grpc_byte_buffer_destroy(c->payload);
    if (c->method == NULL) {
        grpc_call_details_destroy(&c->details);
        gpr_free(c->path);
    }
    gpr_free(c->peer);
    free(c->md);
    if (c->request != NULL) protobuf_c_message_free_unpacked(c->request, NULL);
    grpc_slice_unref(c->status_details);
    free(c);
    server_maybe_teardown(s);
}

static void call_maybe_free(e2_rpc_call *c) {
    if (!c->close_pending && !c->batch_pending && c->finished && (c->status_done || c->cancelled))
        call_free(c);
}

/* Arm one request slot for `m` (NULL: the catch-all). */
static int server_arm(e2_rpc_server *s, method_entry *m) {
    e2_rpc_call *c = calloc(1, sizeof *c);
    if (c == NULL) return E2_RPC_ENOMEM;
    c->server = s;
    c->method = m;
    c->tag_request = (rpc_tag){ TAG_REQUEST, c };
    c->tag_close = (rpc_tag){ TAG_CLOSE, c };
    c->tag_send = (rpc_tag){ TAG_SEND, c };
    c->tag_status = (rpc_tag){ TAG_STATUS, c };
    c->status_details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md_in);
    grpc_call_error e;
    if (m != NULL) {
        e = grpc_server_request_registered_call(s->srv, m->registered, &c->call, &c->deadline,
                                                &c->md_in, &c->payload, s->cq, s->cq,
                                                &c->tag_request);
    } else {
        grpc_call_details_init(&c->details);
        e = grpc_server_request_call(s->srv, &c->call, &c->details, &c->md_in, s->cq, s->cq,
                                     &c->tag_request);
    }
    if (e != GRPC_CALL_OK) {
        grpc_metadata_array_destroy(&c->md_in);
        if (m == NULL) grpc_call_details_destroy(&c->details);
        free(c);
        return E2_RPC_EGRPC;
    }
    c->next = s->calls;
    if (s->calls != NULL) s->calls->prev = c;
    s->calls = c;
    s->live++;
    if (m != NULL) m->armed++;
    return 0;
}

/* The request metadata as C strings, pointers and text in one allocation. */
static int call_copy_metadata(e2_rpc_call *c) {
    size_t n = c->md_in.count, ptrs = (n * 2 + 1) * sizeof *c->md, bytes = ptrs;
    for (size_t i = 0; i < n; i++)
        bytes += GRPC_SLICE_LENGTH(c->md_in.metadata[i].key) +
                 GRPC_SLICE_LENGTH(c->md_in.metadata[i].value) + 2;
    c->md = malloc(bytes);
    if (c->md == NULL) return E2_RPC_ENOMEM;
    char *text = (char *)c->md + ptrs;
    for (size_t i = 0; i < n; i++) {
        const grpc_slice *kv[2] = { &c->md_in.metadata[i].key, &c->md_in.metadata[i].value };
        for (int j = 0; j < 2; j++) {
            size_t len = GRPC_SLICE_LENGTH(*kv[j]);
            memcpy(text, GRPC_SLICE_START_PTR(*kv[j]), len);
            text[len] = '\0';
            c->md[2 * i + (size_t)j] = text;
            text += len + 1;
        }
    }
    c->md[2 * n] = NULL;
    c->n_md = n;
    return 0;
}

/* A request slot completed: a new call has arrived. */
static void call_accept(e2_rpc_call *c) {
    e2_rpc_server *s = c->server;
    method_entry *m = c->method;
    if (m != NULL) {
        m->armed--;
        m->active++;
        c->counted = 1;
        size_t want = m->active + RPC_SLOTS < RPC_SLOTS_MAX ? m->active + RPC_SLOTS : RPC_SLOTS_MAX;
        while (s->state == SRV_STARTED && m->armed < want)
            if (server_arm(s, m) != 0) break;
    } else if (s->state == SRV_STARTED) {
        server_arm(s, NULL);
    }

    if (c->method != NULL) {
        c->path = c->method->path;
    } else {
        c->path = grpc_slice_to_c_string(c->details.method);
        c->deadline = c->details.deadline;
    }

    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    if (grpc_call_start_batch(c->call, &op, 1, &c->tag_close, NULL) == GRPC_CALL_OK)
        c->close_pending = 1;
    else
        c->cancelled = 1;

    char msg[512];
    if (call_copy_metadata(c) != 0) {
        e2_rpc_call_finish(c, E2_RPC_RESOURCE_EXHAUSTED, "server out of memory");
        return;
    }
    if (s->auth != NULL) {
        msg[0] = '\0';
        e2_rpc_status st = s->auth(c, &c->principal, msg, sizeof msg, s->auth_data);
        if (st != E2_RPC_OK) {
            e2_rpc_call_finish(c, st, msg[0] ? msg : e2_rpc_status_name(st));
            return;
        }
        c->has_principal = 1;
    }
    if (c->method == NULL) {
        snprintf(msg, sizeof msg, "unknown method %s", c->path);
        e2_rpc_call_finish(c, E2_RPC_UNIMPLEMENTED, msg);
        return;
    }
    const ProtobufCMessageDescriptor *t = c->method->request_type;
    if (c->payload == NULL) {
        snprintf(msg, sizeof msg, "request of %s has no message body", c->path);
        e2_rpc_call_finish(c, E2_RPC_INVALID_ARGUMENT, msg);
        return;
    }
    c->request = e2_rpc__unpack_request(t, c->payload, c->method->check_strings, msg, sizeof msg);
    if (c->request == NULL) {
        e2_rpc_call_finish(c, E2_RPC_INVALID_ARGUMENT, msg);
        return;
    }
    c->method->handler(c, c->request, c->method->data);
}

/* close_pending stays set while the cancel callback runs, so that a
 * handler finishing the call from inside it does not free it under us. */
static void call_on_close(e2_rpc_call *c) {
    if (c->close_cancelled && !c->status_done) {
        c->cancelled = 1;
        call_drop_queue(c);
        if (!c->finished && c->on_cancel != NULL) c->on_cancel(c);
    }
    c->close_pending = 0;
    call_maybe_free(c);
}

/* Start the next batch if none is in flight: queued messages one at a
 * time, then the status once the handler finished and the queue is empty.
 * The first batch carries the initial metadata; a unary reply goes out as
 * one batch (metadata, message, status). */
static void call_pump(e2_rpc_call *c) {
    if (c->batch_pending || c->status_done) return;
    if (c->cancelled) {
        call_drop_queue(c);
        return;
    }
    if (c->q_head == NULL && !c->finished) return;
    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->initial_md_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_md_sent = 1;
    }
    if (c->q_head != NULL) {
        outmsg *m = c->q_head;
        c->q_head = m->next;
        if (c->q_head == NULL) c->q_tail = NULL;
        c->queued--;
        c->sending = m->buffer;
        free(m);
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c->sending;
    }
    rpc_tag *tag = &c->tag_send;
    if (c->finished && c->q_head == NULL) {
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n].data.send_status_from_server.status = (grpc_status_code)c->code;
        ops[n++].data.send_status_from_server.status_details = &c->status_details;
        tag = &c->tag_status;
    }
    if (grpc_call_start_batch(c->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
        if (c->sending != NULL) {
            grpc_byte_buffer_destroy(c->sending);
            c->sending = NULL;
        }
        c->cancelled = 1;
        call_drop_queue(c);
        return;
    }
    c->batch_pending = 1;
}

static void call_on_batch(e2_rpc_call *c, int is_status, int success) {
    c->batch_pending = 0;
    if (c->sending != NULL) {
        grpc_byte_buffer_destroy(c->sending);
        c->sending = NULL;
    }
    if (is_status)
        c->status_done = 1;
    else if (!success)
        c->cancelled = 1;
    call_pump(c);
    call_maybe_free(c);
}

/* ---------------------------------------------------------- the call API */

e2_rpc_server *e2_rpc_call_server(const e2_rpc_call *call) {
    return call->server;
}
const char *e2_rpc_call_method(const e2_rpc_call *call) {
    return call->path;
}
int e2_rpc_call_role(const e2_rpc_call *call) {
    return call->method != NULL ? call->method->role : -1;
}
int e2_rpc_server_method_role(const e2_rpc_server *s, const char *path) {
    for (size_t i = 0; s != NULL && path != NULL && i < s->n_methods; i++)
        if (strcmp(s->methods[i].path, path) == 0) return s->methods[i].role;
    return -1;
}
/* Asked for only when something is logged about the call: gRPC builds the
 * string under its own lock. */
const char *e2_rpc_call_peer(const e2_rpc_call *call) {
    e2_rpc_call *c = (e2_rpc_call *)call;
    if (c->peer == NULL && c->call != NULL) c->peer = grpc_call_get_peer(c->call);
    return c->peer != NULL ? c->peer : "";
}

const char *e2_rpc_call_metadata(const e2_rpc_call *call, const char *key) {
    for (size_t i = 0; i < call->n_md; i++)
        if (strcmp(call->md[2 * i], key) == 0) return call->md[2 * i + 1];
    return NULL;
}

int64_t e2_rpc_call_deadline_ms(const e2_rpc_call *call) {
    gpr_timespec dl = gpr_convert_clock_type(call->deadline, GPR_CLOCK_MONOTONIC);
    if (gpr_time_cmp(dl, gpr_inf_future(GPR_CLOCK_MONOTONIC)) >= 0) return -1;
    gpr_timespec left = gpr_time_sub(dl, gpr_now(GPR_CLOCK_MONOTONIC));
    int64_t ms = gpr_time_to_millis(left);
    return ms > 0 ? ms : 0;
}

const e2_rpc_principal *e2_rpc_call_principal(const e2_rpc_call *call) {
    return call->has_principal ? &call->principal : NULL;
}

int e2_rpc_call_cancelled(const e2_rpc_call *call) {
    return call->cancelled;
}
void e2_rpc_call_set_data(e2_rpc_call *call, void *data) {
    call->data = data;
}
void *e2_rpc_call_get_data(const e2_rpc_call *call) {
    return call->data;
}
void e2_rpc_call_on_cancel(e2_rpc_call *call, e2_rpc_cancel_cb cb) {
    call->on_cancel = cb;
}
size_t e2_rpc_call_queued(const e2_rpc_call *call) {
    return call->queued;
}

/* Packs message onto the end of c's send queue (not sent yet: call_pump
 * sends). Nonzero when out of memory. */
static int call_enqueue(e2_rpc_call *c, const ProtobufCMessage *message) {
    outmsg *m = malloc(sizeof *m);
    if (m == NULL) return 1;
    m->buffer = e2_rpc__pack(message);
    m->next = NULL;
    if (c->q_tail != NULL)
        c->q_tail->next = m;
    else
        c->q_head = m;
    c->q_tail = m;
    c->queued++;
    return 0;
}

int e2_rpc_call_send(e2_rpc_call *c, const ProtobufCMessage *message) {
    if (c->method == NULL || c->method->kind != E2_RPC_SERVER_STREAMING) return E2_RPC_EINVAL;
    if (c->finished) return E2_RPC_ESTATE;
    if (c->cancelled) return E2_RPC_ECANCELLED;
    if (call_enqueue(c, message) != 0) return E2_RPC_ENOMEM;
    call_pump(c);
    return 0;
}

int e2_rpc_call_finish(e2_rpc_call *c, e2_rpc_status code, const char *message) {
    if (c->finished) return E2_RPC_ESTATE;
    c->finished = 1;
    c->code = code;
    if (message != NULL) c->status_details = grpc_slice_from_copied_string(message);
    call_pump(c);
    call_maybe_free(c);
    return 0;
}

int e2_rpc_call_reply(e2_rpc_call *c, const ProtobufCMessage *response) {
    if (c->finished) return E2_RPC_ESTATE;
    int rc = 0;
    if (!c->cancelled) {
        /* queue without pumping, so that message and status leave together */
        if (call_enqueue(c, response) != 0) {
            e2_rpc_call_finish(c, E2_RPC_RESOURCE_EXHAUSTED, "server out of memory");
            return E2_RPC_ENOMEM;
        }
    } else {
        rc = E2_RPC_ECANCELLED;
    }
    e2_rpc_call_finish(c, E2_RPC_OK, NULL);
    return rc;
}

/* ------------------------------------------------------ the event pump */

/* Whether the loop must see this completion soon: everything but a sent
 * status and a close that was no cancellation, which only free the call.
 * c->close_cancelled is gRPC's to write until this completion and the
 * loop's to read after it; the loop never writes it. */
static int cq_event_urgent(const cq_event *e) {
    if (e->tag == NULL) return 1;
    if (e->tag->kind == TAG_STATUS) return 0;
    if (e->tag->kind == TAG_CLOSE) return ((e2_rpc_call *)e->tag->owner)->close_cancelled != 0;
    return 1;
}

/* Called with s->mu held; releases it. Writes the eventfd unless the loop
 * is already due to look at the array. */
static void cq_wake_locked(e2_rpc_server *s) {
    int write_fd = !s->signalled && s->n_events > 0;
    if (write_fd) s->signalled = 1;
    uv_mutex_unlock(&s->mu);
    if (write_fd) {
        uint64_t one = 1;
        while (write(s->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        /* EAGAIN: the counter is full, so the loop is woken anyway */
    }
}

static void cq_thread(void *arg) {
    e2_rpc_server *s = arg;
    int lazy = 0;       /* free-only events handed over without a wake */
    gpr_timespec until; /* ... the oldest of them handed over at until - LAZY_MS */
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            s->cq, lazy ? until : gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            /* the lazy events waited LAZY_MS: wake the loop for them */
            uv_mutex_lock(&s->mu);
            cq_wake_locked(s);
            lazy = 0;
            continue;
        }
        cq_event batch[CQ_BATCH];
        size_t n = 0;
        int urgent = 0, done = 0;
        for (;;) {
            cq_event *e = &batch[n++];
            e->tag = ev.type == GRPC_OP_COMPLETE ? ev.tag : NULL;
            e->success = ev.success;
            urgent |= cq_event_urgent(e);
            if (ev.type == GRPC_QUEUE_SHUTDOWN) {
                done = 1;
                break;
            }
            if (n == CQ_BATCH) break;
            ev = grpc_completion_queue_next(s->cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
            if (ev.type == GRPC_QUEUE_TIMEOUT) break;
        }
        uv_mutex_lock(&s->mu);
        if (s->n_events + n > s->cap_events) {
            size_t cap = s->cap_events ? s->cap_events : 64;
            while (cap < s->n_events + n) cap *= 2;
            cq_event *grown = realloc(s->events, cap * sizeof *grown);
            if (grown == NULL) abort(); /* losing a completion would leak a call forever */
            s->events = grown;
            s->cap_events = cap;
        }
        memcpy(s->events + s->n_events, batch, n * sizeof *batch);
        s->n_events += n;
        if (urgent) {
            cq_wake_locked(s);
            lazy = 0;
        } else {
            uv_mutex_unlock(&s->mu);
        }
        if (!urgent && !lazy) {
            lazy = 1;
            until = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                 gpr_time_from_millis(LAZY_MS, GPR_TIMESPAN));
        }
        if (done) return;
    }
}

static void on_handle_closed(uv_handle_t *h) {
    e2_rpc_server *s = h->data;
    if (--s->handles_open == 0) {
        s->state = SRV_DONE;
        if (s->on_shutdown != NULL) s->on_shutdown(s);
    }
}

static void server_on_thread_end(e2_rpc_server *s) {
    uv_thread_join(&s->thread);
    grpc_completion_queue_destroy(s->cq);
    s->cq = NULL;
    uv_poll_stop(&s->wake);
    uv_close((uv_handle_t *)&s->wake, on_handle_closed);
    uv_close((uv_handle_t *)&s->grace, on_handle_closed);
}

static void server_dispatch(e2_rpc_server *s, rpc_tag *tag, int success) {
    if (tag == NULL) {
        server_on_thread_end(s);
        return;
    }
    e2_rpc_call *c = tag->owner;
    switch (tag->kind) {
    case TAG_REQUEST:
        if (success && c->call != NULL)
            call_accept(c);
        else {
            if (c->method != NULL) c->method->armed--;
            c->finished = 1;
            c->cancelled = 1;
            call_free(c);
        }
        break;
    case TAG_CLOSE: call_on_close(c); break;
    case TAG_SEND: call_on_batch(c, 0, success); break;
    case TAG_STATUS: call_on_batch(c, 1, success); break;
    case TAG_SHUTDOWN:
        s->shutdown_notified = 1;
        uv_timer_stop(&s->grace);
        server_maybe_teardown(s);
        break;
    }
}

/* Swaps the filled array for the one drained last time (no allocation in
 * the steady state) and dispatches its events, until none are left; only
 * then may the queue thread write the eventfd again. */
static void on_wake(uv_poll_t *h, int status, int events_mask) {
    (void)status;
    (void)events_mask;
    e2_rpc_server *s = h->data;
    uint64_t count;
    while (read(s->wake_fd, &count, sizeof count) < 0 && errno == EINTR)
        ;
    for (;;) {
        uv_mutex_lock(&s->mu);
        cq_event *events = s->events;
        size_t n = s->n_events, cap = s->cap_events;
        if (n == 0) {
            s->signalled = 0;
            uv_mutex_unlock(&s->mu);
            return;
        }
        s->events = s->spare;
        s->cap_events = s->cap_spare;
        s->n_events = 0;
        uv_mutex_unlock(&s->mu);
        s->spare = events;
        s->cap_spare = cap;
        for (size_t i = 0; i < n; i++) server_dispatch(s, events[i].tag, events[i].success);
    }
}

/* Once gRPC reported the shutdown and every call is gone: destroy the
 * server, then shut the queue down; the thread sees QUEUE_SHUTDOWN, posts
 * its last event and ends (server_on_thread_end). */
static void server_maybe_teardown(e2_rpc_server *s) {
    if (s->state != SRV_SHUTTING || !s->shutdown_notified || s->live != 0 || s->cq_shut) return;
    s->cq_shut = 1;
    grpc_server_destroy(s->srv);
    s->srv = NULL;
    grpc_completion_queue_shutdown(s->cq);
}

static void on_grace(uv_timer_t *t) {
    e2_rpc_server *s = t->data;
    if (s->srv != NULL) grpc_server_cancel_all_calls(s->srv);
}

/* ------------------------------------------------------------ server API */

e2_rpc_server *e2_rpc_server_new(uv_loop_t *loop, void *data) {
    e2_rpc_server *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    e2_rpc__grpc_ref();
    s->loop = loop;
    s->data = data;
    s->tag_shutdown = (rpc_tag){ TAG_SHUTDOWN, s };
    s->wake_fd = -1;
    grpc_arg arg;
    arg.type = GRPC_ARG_INTEGER;
    arg.key = (char *)GRPC_ARG_ALLOW_REUSEPORT;
    arg.value.integer = 0;
    grpc_channel_args args = { 1, &arg };
    s->srv = grpc_server_create(&args, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->srv, s->cq, NULL);
    uv_mutex_init(&s->mu);
    return s;
}

void *e2_rpc_server_data(const e2_rpc_server *server) {
    return server->data;
}

int e2_rpc_server_set_auth(e2_rpc_server *s, e2_rpc_auth_cb cb, void *data) {
    if (s->state != SRV_NEW) return E2_RPC_ESTATE;
    s->auth = cb;
    s->auth_data = data;
    return 0;
}

/* TLS server credentials from the files of `tls`; NULL with err set. */
static grpc_server_credentials *server_tls_creds(const e2_rpc_tls *tls, char *err, size_t errlen) {
    grpc_server_credentials *creds = NULL;
    char *cert = e2_rpc__read_pem(tls->cert_file, "TLS certificate", err, errlen);
    char *key = cert ? e2_rpc__read_key(tls->key_file, "TLS key", err, errlen) : NULL;
    char *ca = NULL;
    if (key != NULL && tls->ca_file != NULL)
        ca = e2_rpc__read_pem(tls->ca_file, "TLS client CA", err, errlen);
    if (key != NULL && (tls->ca_file == NULL || ca != NULL)) {
        grpc_ssl_pem_key_cert_pair pair = { key, cert };
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca != NULL ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                       : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (creds == NULL)
            e2_rpc__errf(err, errlen, "gRPC refused the TLS certificate %s / key %s",
                         tls->cert_file, tls->key_file);
    }
    free(cert);
    e2_rpc__wipe_free(key);
    free(ca);
    return creds;
}

int e2_rpc_server_add_service(e2_rpc_server *s, const ProtobufCServiceDescriptor *service,
                              const e2_rpc_method *methods, size_t n_methods, char *err,
                              size_t errlen) {
    if (s->state != SRV_NEW) {
        e2_rpc__errf(err, errlen, "methods must be added before e2_rpc_server_start");
        return E2_RPC_ESTATE;
    }
    method_entry *grown = realloc(s->methods, (s->n_methods + n_methods) * sizeof *grown);
    if (grown == NULL) return E2_RPC_ENOMEM;
    s->methods = grown;
    for (size_t i = 0; i < n_methods; i++) {
        const ProtobufCMethodDescriptor *md = NULL;
        for (unsigned j = 0; j < service->n_methods; j++)
            if (strcmp(service->methods[j].name, methods[i].name) == 0) md = &service->methods[j];
        if (md == NULL || methods[i].handler == NULL) {
            e2_rpc__errf(err, errlen, "service %s has no method %s (or no handler given)",
                         service->name, methods[i].name);
            return E2_RPC_EINVAL;
        }
        size_t n = strlen(service->name) + strlen(md->name) + 3;
        char *path = malloc(n);
        if (path == NULL) return E2_RPC_ENOMEM;
        snprintf(path, n, "/%s/%s", service->name, md->name);
        void *reg = grpc_server_register_method(s->srv, path, NULL,
                                                GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (reg == NULL) {
            e2_rpc__errf(err, errlen, "method %s registered twice", path);
            free(path);
            return E2_RPC_EINVAL;
        }
        s->methods[s->n_methods++] = (method_entry){ path,
                                                     md->input,
                                                     methods[i].kind,
                                                     methods[i].handler,
                                                     methods[i].data,
                                                     methods[i].role,
                                                     reg,
                                                     0,
                                                     0,
                                                     0 };
    }
    return 0;
}

void e2_rpc_server_check_strings(e2_rpc_server *s, const ProtobufCServiceDescriptor *service) {
    size_t n = strlen(service->name);
    for (size_t i = 0; i < s->n_methods; i++)
        if (s->methods[i].path[0] == '/' &&
            strncmp(s->methods[i].path + 1, service->name, n) == 0 &&
            s->methods[i].path[n + 1] == '/')
            s->methods[i].check_strings = 1;
}

int e2_rpc_server_listen(e2_rpc_server *s, const char *address, const e2_rpc_tls *tls, int *port,
                         char *err, size_t errlen) {
    if (s->state != SRV_NEW) {
        e2_rpc__errf(err, errlen, "listeners must be added before e2_rpc_server_start");
        return E2_RPC_ESTATE;
    }
    if (address == NULL || address[0] == '\0') {
        e2_rpc__errf(err, errlen, "empty listen address: use unix:/path or host:port");
        return E2_RPC_EINVAL;
    }
    grpc_server_credentials *creds = tls != NULL ? server_tls_creds(tls, err, errlen)
                                                 : grpc_insecure_server_credentials_create();
    if (creds == NULL) return E2_RPC_EINVAL;
    e2_rpc__last_error_clear();
    int p = grpc_server_add_http2_port(s->srv, address, creds);
    grpc_server_credentials_release(creds);
    if (p == 0) {
        const char *why = e2_rpc__last_error();
        e2_rpc__errf(err, errlen, "cannot listen on %s%s%s", address, why[0] ? ": " : "", why);
        return E2_RPC_EBIND;
    }
    if (port != NULL) *port = strncmp(address, "unix:", 5) == 0 ? 0 : p;
    return 0;
}

int e2_rpc_server_start(e2_rpc_server *s, char *err, size_t errlen) {
    if (s->state != SRV_NEW) {
        e2_rpc__errf(err, errlen, "server already started");
        return E2_RPC_ESTATE;
    }
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->wake_fd < 0 || uv_poll_init(s->loop, &s->wake, s->wake_fd) != 0) {
        e2_rpc__errf(err, errlen, "cannot create the completion-queue eventfd: %s",
                     strerror(errno));
        if (s->wake_fd >= 0) close(s->wake_fd);
        s->wake_fd = -1;
        return E2_RPC_EGRPC;
    }
    s->wake.data = s;
    uv_poll_start(&s->wake, UV_READABLE, on_wake);
    uv_timer_init(s->loop, &s->grace);
    s->grace.data = s;
    s->handles_open = 2;
    grpc_server_start(s->srv);
    s->state = SRV_STARTED;
    if (uv_thread_create(&s->thread, cq_thread, s) != 0) {
        e2_rpc__errf(err, errlen, "cannot start the completion-queue thread");
        abort(); /* a started gRPC server without its queue thread cannot be torn down */
    }
    for (size_t i = 0; i < s->n_methods; i++)
        for (int k = 0; k < RPC_SLOTS; k++)
            if (server_arm(s, &s->methods[i]) != 0) {
                e2_rpc__errf(err, errlen, "cannot arm a request for %s", s->methods[i].path);
                return E2_RPC_EGRPC;
            }
    for (int k = 0; k < RPC_SLOTS; k++)
        if (server_arm(s, NULL) != 0) {
            e2_rpc__errf(err, errlen, "cannot arm the catch-all request");
            return E2_RPC_EGRPC;
        }
    return 0;
}

int e2_rpc_server_shutdown(e2_rpc_server *s, uint64_t grace_ms, e2_rpc_shutdown_cb cb) {
    if (s->state != SRV_STARTED) return E2_RPC_ESTATE;
    s->state = SRV_SHUTTING;
    s->on_shutdown = cb;
    grpc_server_shutdown_and_notify(s->srv, s->cq, &s->tag_shutdown);
    uv_timer_start(&s->grace, on_grace, grace_ms, 0);
    return 0;
}

void e2_rpc_server_free(e2_rpc_server *s) {
    if (s == NULL) return;
    if (s->state == SRV_STARTED || s->state == SRV_SHUTTING)
        abort(); /* freeing a running server would leave gRPC holding its calls */
    if (s->state == SRV_NEW) {
        /* gRPC insists on a shutdown before destroy once a listener exists */
        grpc_server_shutdown_and_notify(s->srv, s->cq, &s->tag_shutdown);
        grpc_server_cancel_all_calls(s->srv);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).tag !=
               &s->tag_shutdown)
            ;
        grpc_server_destroy(s->srv);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
    }
    for (size_t i = 0; i < s->n_methods; i++) free(s->methods[i].path);
    free(s->methods);
    if (s->wake_fd >= 0) close(s->wake_fd);
    free(s->events);
    free(s->spare);
    uv_mutex_destroy(&s->mu);
    free(s);
    e2_rpc__grpc_unref();
}
