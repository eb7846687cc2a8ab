/* client.c: the blocking gRPC client half of e2_rpc (e2ctl, e2worker).
 *
 * Each call gets its own completion queue and keeps at most one batch in
 * flight, so a thread blocks only on its own events; the channel is shared
 * (gRPC channels are thread-safe), which makes one e2_rpc_client usable from
 * several threads with separate calls. A unary call's queue is empty once
 * its one event is taken, so it goes back to a small pool in the client
 * for the next call (creating and shutting down a queue per call cost
 * about as much as the call). A channel is plaintext or TLS
 * (optionally with a client certificate for mutual TLS).
 */
#include "rpc.h"
#include "rpc_int.h"

#include <stdlib.h>
#include <string.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#define CQ_POOL 8 /* idle completion queues a client keeps */

struct e2_rpc_client {
    grpc_channel *channel;
    grpc_metadata *md;
    size_t n_md;
    uv_mutex_t pool_mu; /* guards pool, n_pool */
    grpc_completion_queue *pool[CQ_POOL];
    size_t n_pool;
};

struct e2_rpc_stream {
    grpc_completion_queue *cq;
    grpc_call *call;
    const ProtobufCMessageDescriptor *type;
    grpc_byte_buffer *request;
    grpc_metadata_array initial_md, trailing_md;
    grpc_status_code status;
    grpc_slice details;
    int pending;        /* batches started whose event was not taken yet */
    int got_initial_md; /* RECV_INITIAL_METADATA was asked for */
    int ended;
    char local_error[128]; /* set when the client itself ended the stream */
};

static gpr_timespec deadline_after(int64_t timeout_ms) {
    if (timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_REALTIME);
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                        gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

static void wait_one(grpc_completion_queue *cq) {
    grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
}

static void cq_destroy(grpc_completion_queue *cq) {
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* An empty completion queue for one unary call: from the pool, or new. */
static grpc_completion_queue *cq_get(e2_rpc_client *c) {
    grpc_completion_queue *cq = NULL;
    uv_mutex_lock(&c->pool_mu);
    if (c->n_pool > 0) cq = c->pool[--c->n_pool];
    uv_mutex_unlock(&c->pool_mu);
    return cq != NULL ? cq : grpc_completion_queue_create_for_next(NULL);
}

/* Back to the pool; the caller took every event the queue will get. */
static void cq_put(e2_rpc_client *c, grpc_completion_queue *cq) {
    uv_mutex_lock(&c->pool_mu);
    int kept = c->n_pool < CQ_POOL;
    if (kept) c->pool[c->n_pool++] = cq;
    uv_mutex_unlock(&c->pool_mu);
    if (!kept) cq_destroy(cq);
}

static void copy_slice(char *dst, size_t len, grpc_slice s) {
    if (dst == NULL || len == 0) return;
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= len) n = len - 1;
    memcpy(dst, GRPC_SLICE_START_PTR(s), n);
    dst[n] = '\0';
}

/* TLS channel credentials from the files of `tls`; NULL with err set. */
static grpc_channel_credentials *client_tls_creds(const e2_rpc_client_tls *tls, char *err,
                                                  size_t errlen) {
    if ((tls->cert_file == NULL) != (tls->key_file == NULL)) {
        e2_rpc__errf(err, errlen,
                     "mutual TLS needs both a client certificate and "
                     "its key (only one was given)");
        return NULL;
    }
    char *ca = NULL, *cert = NULL, *key = NULL;
    grpc_channel_credentials *creds = NULL;
    if (tls->ca_file != NULL &&
        (ca = e2_rpc__read_pem(tls->ca_file, "TLS CA", err, errlen)) == NULL)
        goto done;
    if (tls->cert_file != NULL &&
        ((cert = e2_rpc__read_pem(tls->cert_file, "TLS client certificate", err, errlen)) == NULL ||
         (key = e2_rpc__read_key(tls->key_file, "TLS client key", err, errlen)) == NULL))
        goto done;
    grpc_ssl_pem_key_cert_pair pair = { key, cert };
    creds = grpc_ssl_credentials_create(ca, cert != NULL ? &pair : NULL, NULL, NULL);
    if (creds == NULL) e2_rpc__errf(err, errlen, "gRPC refused the TLS client settings");
done:
    free(ca);
    free(cert);
    e2_rpc__wipe_free(key);
    return creds;
}

e2_rpc_client *e2_rpc_client_new(const char *target, char *err, size_t errlen) {
    return e2_rpc_client_new_tls(target, NULL, err, errlen);
}

e2_rpc_client *e2_rpc_client_new_tls(const char *target, const e2_rpc_client_tls *tls, char *err,
                                     size_t errlen) {
    if (target == NULL || target[0] == '\0') {
        e2_rpc__errf(err, errlen, "empty server address: use unix:/path or host:port");
        return NULL;
    }
    e2_rpc_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        e2_rpc__errf(err, errlen, "out of memory");
        return NULL;
    }
    e2_rpc__grpc_ref();
    grpc_channel_credentials *creds =
        tls != NULL ? client_tls_creds(tls, err, errlen) : grpc_insecure_credentials_create();
    if (creds == NULL) {
        free(c);
        e2_rpc__grpc_unref();
        return NULL;
    }
    grpc_arg arg;
    arg.type = GRPC_ARG_STRING;
    arg.key = (char *)GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    arg.value.string = (char *)(tls != NULL ? tls->server_name : NULL);
    grpc_channel_args args = { 1, &arg };
    c->channel = grpc_channel_create(target, creds, arg.value.string != NULL ? &args : NULL);
    grpc_channel_credentials_release(creds);
    uv_mutex_init(&c->pool_mu);
    return c;
}

void e2_rpc_client_free(e2_rpc_client *c) {
    if (c == NULL) return;
    for (size_t i = 0; i < c->n_md; i++) {
        grpc_slice_unref(c->md[i].key);
        grpc_slice_unref(c->md[i].value);
    }
    free(c->md);
    for (size_t i = 0; i < c->n_pool; i++) cq_destroy(c->pool[i]);
    uv_mutex_destroy(&c->pool_mu);
    grpc_channel_destroy(c->channel);
    free(c);
    e2_rpc__grpc_unref();
}

int e2_rpc_client_set_metadata(e2_rpc_client *c, const char *key, const char *value) {
    if (key == NULL || value == NULL || key[0] == '\0') return E2_RPC_EINVAL;
    for (size_t i = 0; i < c->n_md; i++) {
        if (grpc_slice_str_cmp(c->md[i].key, key) == 0) {
            grpc_slice_unref(c->md[i].value);
            c->md[i].value = grpc_slice_from_copied_string(value);
            return 0;
        }
    }
    grpc_metadata *grown = realloc(c->md, (c->n_md + 1) * sizeof *grown);
    if (grown == NULL) return E2_RPC_ENOMEM;
    c->md = grown;
    memset(&c->md[c->n_md], 0, sizeof c->md[0]);
    c->md[c->n_md].key = grpc_slice_from_copied_string(key);
    c->md[c->n_md].value = grpc_slice_from_copied_string(value);
    c->n_md++;
    return 0;
}

static grpc_call *client_create_call(e2_rpc_client *c, grpc_completion_queue *cq, const char *path,
                                     int64_t timeout_ms) {
    grpc_slice method = grpc_slice_from_copied_string(path);
    grpc_call *call = grpc_channel_create_call(c->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                               method, NULL, deadline_after(timeout_ms), NULL);
    grpc_slice_unref(method);
    return call;
}

int e2_rpc_client_call(e2_rpc_client *c, const char *path, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response,
                       int64_t timeout_ms, char *message, size_t message_len) {
    *response = NULL;
    e2_rpc__errf(message, message_len, "%s", "");
    grpc_completion_queue *cq = cq_get(c);
    grpc_call *call = client_create_call(c, cq, path, timeout_ms);
    grpc_byte_buffer *req = e2_rpc__pack(request), *resp = NULL;
    grpc_metadata_array initial_md, trailing_md;
    grpc_metadata_array_init(&initial_md);
    grpc_metadata_array_init(&trailing_md);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();

    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->n_md;
    ops[0].data.send_initial_metadata.metadata = c->md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial_md;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing_md;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;

    int code, started = 0;
    if (grpc_call_start_batch(call, ops, 6, ops, NULL) != GRPC_CALL_OK) {
        code = E2_RPC_INTERNAL;
        e2_rpc__errf(message, message_len, "gRPC refused to start the call %s", path);
    } else {
        started = 1;
        wait_one(cq);
        code = (int)status;
        copy_slice(message, message_len, details);
        if (code == E2_RPC_OK) {
            *response = resp != NULL ? e2_rpc__unpack(response_type, resp) : NULL;
            if (*response == NULL) {
                code = E2_RPC_INTERNAL;
                e2_rpc__errf(message, message_len, "the server's reply to %s is not a valid %s",
                             path, response_type->name);
            }
        }
    }
    if (resp != NULL) grpc_byte_buffer_destroy(resp);
    grpc_byte_buffer_destroy(req);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial_md);
    grpc_metadata_array_destroy(&trailing_md);
    grpc_call_unref(call);
    if (started)
        cq_put(c, cq);
    else
        cq_destroy(cq);
    return code;
}

e2_rpc_stream *e2_rpc_client_stream(e2_rpc_client *c, const char *path,
                                    const ProtobufCMessage *request,
                                    const ProtobufCMessageDescriptor *message_type,
                                    int64_t timeout_ms) {
    e2_rpc_stream *s = calloc(1, sizeof *s);
    if (s == NULL) return NULL;
    s->type = message_type;
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->call = client_create_call(c, s->cq, path, timeout_ms);
    s->request = e2_rpc__pack(request);
    s->details = grpc_empty_slice();
    s->status = GRPC_STATUS_UNKNOWN;
    grpc_metadata_array_init(&s->initial_md);
    grpc_metadata_array_init(&s->trailing_md);

    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = c->n_md;
    ops[0].data.send_initial_metadata.metadata = c->md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = s->request;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    if (grpc_call_start_batch(s->call, ops, 3, s, NULL) == GRPC_CALL_OK) s->pending++;
    return s;
}

static void stream_wait(e2_rpc_stream *s) {
    while (s->pending > 0) {
        wait_one(s->cq);
        s->pending--;
    }
}

/* Receive the final status; the stream is over. */
static void stream_end(e2_rpc_stream *s) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &s->trailing_md;
    op.data.recv_status_on_client.status = &s->status;
    op.data.recv_status_on_client.status_details = &s->details;
    if (grpc_call_start_batch(s->call, &op, 1, s, NULL) == GRPC_CALL_OK) {
        s->pending++;
        stream_wait(s);
    }
    s->ended = 1;
}

int e2_rpc_stream_next(e2_rpc_stream *s, ProtobufCMessage **message) {
    *message = NULL;
    if (s->ended) return 0;
    stream_wait(s);
    grpc_byte_buffer *bb = NULL;
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!s->got_initial_md) {
        ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
        ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
        s->got_initial_md = 1;
    }
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &bb;
    if (grpc_call_start_batch(s->call, ops, n, s, NULL) == GRPC_CALL_OK) {
        s->pending++;
        stream_wait(s);
    }
    if (bb == NULL) {
        stream_end(s);
        return 0;
    }
    *message = e2_rpc__unpack(s->type, bb);
    grpc_byte_buffer_destroy(bb);
    if (*message == NULL) {
        snprintf(s->local_error, sizeof s->local_error, "a message of the stream is not a valid %s",
                 s->type->name);
        grpc_call_cancel(s->call, NULL);
        stream_end(s);
        s->status = GRPC_STATUS_INTERNAL;
        return 0;
    }
    return 1;
}

int e2_rpc_stream_status(const e2_rpc_stream *s, char *message, size_t message_len) {
    if (s->local_error[0] != '\0')
        e2_rpc__errf(message, message_len, "%s", s->local_error);
    else
        copy_slice(message, message_len, s->details);
    return (int)s->status;
}

void e2_rpc_stream_cancel(e2_rpc_stream *s) {
    grpc_call_cancel(s->call, NULL);
}

void e2_rpc_stream_free(e2_rpc_stream *s) {
    if (s == NULL) return;
    if (!s->ended) {
        grpc_call_cancel(s->call, NULL);
        stream_wait(s);
    }
    grpc_byte_buffer_destroy(s->request);
    grpc_slice_unref(s->details);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_call_unref(s->call);
    cq_destroy(s->cq);
    free(s);
}
