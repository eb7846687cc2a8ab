/* rpc.h: e2's small RPC layer over gRPC C core (1.51) and protobuf-c.
 *
 * Server side: a method table built from protoc-c descriptors; one thread
 * drains gRPC's completion queue and hands every event to a libuv loop, so
 * handlers and every rpc_call_* function run on that loop's thread only.
 * Handlers may answer later (after a database commit, or whenever a stream
 * has something to say). Unknown methods get UNIMPLEMENTED at once and
 * undecodable bodies INVALID_ARGUMENT, without reaching a handler.
 *
 * Client side: blocking unary and server-streaming calls for e2ctl and
 * e2worker. One rpc_client may be used from several threads at once, each
 * thread with its own calls.
 *
 * Errors: functions return 0 or a negative RPC_E* code and, where they take
 * (err, errlen), write one line naming the cause there. Nothing is printed;
 * gRPC's own log goes to the callback given to rpc_log_set.
 *
 * Lifetime of a server call: every call handed to a handler must be
 * finished exactly once by rpc_call_reply or rpc_call_finish, also after
 * the cancel callback reported that the client went away (cancel, deadline
 * or dropped connection). The call is freed after it is finished and gRPC
 * is done with it; do not touch it after finishing it.
 */
#ifndef E2_RPC_H
#define E2_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>
#include <uv.h>

/* Library error codes (negative). */
#define RPC_EINVAL     (-1) /* bad argument or address */
#define RPC_ENOMEM     (-2)
#define RPC_EBIND      (-3) /* could not listen on the address */
#define RPC_ESTATE     (-4) /* not allowed in the object's current state */
#define RPC_ENOTSUP    (-5) /* not supported (yet) */
#define RPC_ECANCELLED (-6) /* the call was cancelled; nothing was sent */
#define RPC_EGRPC      (-7) /* gRPC refused an operation */

/* The name of an RPC_E* code ("RPC_EBIND: could not listen"). */
const char *rpc_strerror(int err);

/* gRPC status codes, with gRPC's numbers. */
typedef enum {
    RPC_OK = 0,
    RPC_CANCELLED = 1,
    RPC_UNKNOWN = 2,
    RPC_INVALID_ARGUMENT = 3,
    RPC_DEADLINE_EXCEEDED = 4,
    RPC_NOT_FOUND = 5,
    RPC_ALREADY_EXISTS = 6,
    RPC_PERMISSION_DENIED = 7,
    RPC_RESOURCE_EXHAUSTED = 8,
    RPC_FAILED_PRECONDITION = 9,
    RPC_ABORTED = 10,
    RPC_OUT_OF_RANGE = 11,
    RPC_UNIMPLEMENTED = 12,
    RPC_INTERNAL = 13,
    RPC_UNAVAILABLE = 14,
    RPC_DATA_LOSS = 15,
    RPC_UNAUTHENTICATED = 16
} rpc_status;

/* "INVALID_ARGUMENT", ...; "UNKNOWN_STATUS" for numbers outside the enum. */
const char *rpc_status_name(int code);

/* gRPC's log, routed: severity 0 debug, 1 info, 2 error. Process-wide; a
 * NULL callback (the default once an rpc object exists) discards it. */
typedef void (*rpc_log_cb)(int severity, const char *file, int line, const char *message,
                           void *data);
void rpc_log_set(rpc_log_cb cb, void *data);

/* ---------------------------------------------------------------- server */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef enum { RPC_UNARY = 0, RPC_SERVER_STREAMING = 1 } rpc_kind;

/* A handler gets the decoded request (owned by the call: valid until the
 * handler finishes the call) and the data of its rpc_method. */
typedef void (*rpc_handler_cb)(rpc_call *call, const ProtobufCMessage *request, void *data);
/* The client is gone (cancelled, deadline passed, connection dropped, or
 * the server cancelled all calls at the end of its shutdown grace). The
 * handler must still finish the call; sends are dropped from now on. */
typedef void (*rpc_cancel_cb)(rpc_call *call);
/* The server has shut down completely; rpc_server_free may be called. */
typedef void (*rpc_shutdown_cb)(rpc_server *server);

/* One method of a service, named as in the .proto ("SubmitJob"). The
 * protoc-c descriptor gives the path and the message types; the kind is
 * stated here because protoc-c drops `stream`. `role` is the role a caller
 * needs, kept in the row so that a method and who may call it are one
 * entry; its meaning is the auth hook's (e2d: an auth_role, see
 * daemon/src/api/authz.c), which reads it with rpc_call_role. */
typedef struct {
    const char *name;
    rpc_kind kind;
    rpc_handler_cb handler;
    void *data;
    int role;
} rpc_method;

/* Optional TLS for a listener (NULL: plaintext). The files are read when
 * the listener is added. With ca_file, every client must present a
 * certificate signed by that CA (mutual TLS); a client without one fails
 * the handshake and never reaches a handler. */
typedef struct {
    const char *cert_file; /* PEM server certificate chain */
    const char *key_file;  /* PEM private key */
    const char *ca_file;   /* PEM CA for client certificates; NULL: none asked */
} rpc_tls;

/* Who made a call, as the server's auth hook decided. */
typedef struct {
    char name[64]; /* e.g. the token's name; "" when anonymous */
    char role[16]; /* e.g. "admin"; meaning is the hook's business */
} rpc_principal;

/* Runs on the loop thread for every call (unknown methods included) after
 * its metadata arrived and before its body is decoded or a handler runs;
 * rpc_call_method and rpc_call_metadata work on `call`. Return RPC_OK and
 * fill *principal to let the call go on; any other status (normally
 * RPC_UNAUTHENTICATED or RPC_PERMISSION_DENIED) ends the call with that
 * status and `message`. */
typedef rpc_status (*rpc_auth_cb)(const rpc_call *call, rpc_principal *principal, char *message,
                                  size_t message_len, void *data);

/* A server whose handlers run on `loop`. NULL when out of memory. */
rpc_server *rpc_server_new(uv_loop_t *loop, void *data);
void *rpc_server_data(const rpc_server *server);

/* Install the auth hook (NULL: none; every call proceeds without a
 * principal). Before rpc_server_start only. */
int rpc_server_set_auth(rpc_server *server, rpc_auth_cb cb, void *data);

/* Register the methods of a protoc-c service descriptor. Every entry of
 * `methods` must name a method of `service`; methods left out answer
 * UNIMPLEMENTED. Before rpc_server_start only. */
int rpc_server_add_service(rpc_server *server, const ProtobufCServiceDescriptor *service,
                           const rpc_method *methods, size_t n_methods, char *err, size_t errlen);

/* Requests of the methods of `service` added so far are refused with
 * INVALID_ARGUMENT, naming the field, when a string field at any depth
 * holds a NUL byte or is not valid UTF-8: protobuf-c would accept both and
 * change them (a C string ends at the NUL; the JSON form of a stored
 * message cannot hold invalid UTF-8). For services whose strings are
 * stored or acted on; others keep protobuf-c's leniency. */
void rpc_server_check_strings(rpc_server *server, const ProtobufCServiceDescriptor *service);

/* Listen on "unix:/path" or "host:port" (port 0 picks a free port). The
 * port bound is stored in *port when port is not NULL (0 for unix:). A TCP
 * port another process holds fails (SO_REUSEPORT is off). Before
 * rpc_server_start only. */
int rpc_server_listen(rpc_server *server, const char *address, const rpc_tls *tls, int *port,
                      char *err, size_t errlen);

/* Start serving: the completion-queue thread starts and requests are
 * accepted. Call from the loop's thread. */
int rpc_server_start(rpc_server *server, char *err, size_t errlen);

/* Stop accepting calls; calls in flight get `grace_ms` to finish, then they
 * are cancelled (their cancel callbacks run and handlers must finish them).
 * `cb` runs on the loop once everything is torn down. Once only. */
int rpc_server_shutdown(rpc_server *server, uint64_t grace_ms, rpc_shutdown_cb cb);

/* Free a server that was never started, or one whose shutdown callback ran. */
void rpc_server_free(rpc_server *server);

/* --- a server call (loop thread only) */

rpc_server *rpc_call_server(const rpc_call *call);
const char *rpc_call_method(const rpc_call *call); /* "/e2.v1.Coordinator/GetJob" */
/* The role column of the call's method row (rpc_method.role); -1 when the
 * server has no row for the method (it will answer UNIMPLEMENTED). */
int rpc_call_role(const rpc_call *call);
/* The same for a method path ("/e2.v1.Coordinator/GetJob"), e.g. for
 * another front end that mirrors the methods; -1 when no row. */
int rpc_server_method_role(const rpc_server *server, const char *path);
const char *rpc_call_peer(const rpc_call *call); /* "unix:", "ipv4:127.0.0.1:5123" */
/* Value of a request metadata key (lower case, e.g. "authorization"), or
 * NULL when the client sent none. Valid while the call lives. */
const char *rpc_call_metadata(const rpc_call *call, const char *key);
/* The principal the auth hook set; NULL when the server has no hook. */
const rpc_principal *rpc_call_principal(const rpc_call *call);
/* Milliseconds until the client's deadline (0 once passed), or -1 when the
 * client set none. */
int64_t rpc_call_deadline_ms(const rpc_call *call);
/* Non-zero once the client is gone (see rpc_cancel_cb). */
int rpc_call_cancelled(const rpc_call *call);

void rpc_call_set_data(rpc_call *call, void *data);
void *rpc_call_get_data(const rpc_call *call);
void rpc_call_on_cancel(rpc_call *call, rpc_cancel_cb cb);

/* Unary: answer with `response` and status OK; this finishes the call. */
int rpc_call_reply(rpc_call *call, const ProtobufCMessage *response);
/* Streaming: queue one message (sent in order, one at a time).
 * RPC_ECANCELLED when the client is gone; RPC_EINVAL on a unary method
 * (use rpc_call_reply). */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *message);
/* Finish with a status (after the queued messages) and a one-line message
 * (NULL for none). Unary calls use it for errors. */
int rpc_call_finish(rpc_call *call, rpc_status code, const char *message);
/* Messages queued but not yet sent (for a stream's back-pressure). */
size_t rpc_call_queued(const rpc_call *call);

/* ---------------------------------------------------------------- client */

typedef struct rpc_client rpc_client;
typedef struct rpc_stream rpc_stream;

/* A channel to "unix:/path" or "host:port" (plaintext). Connecting happens
 * on the first call; a server that is not there gives UNAVAILABLE. */
rpc_client *rpc_client_new(const char *target, char *err, size_t errlen);

/* TLS for a client. The server's certificate must chain to ca_file (NULL:
 * gRPC's default roots) and name the target's host (or server_name). For
 * mutual TLS give cert_file and key_file together. */
typedef struct {
    const char *ca_file;     /* PEM roots that sign the server certificate */
    const char *cert_file;   /* PEM client certificate chain, or NULL */
    const char *key_file;    /* PEM client private key, or NULL */
    const char *server_name; /* name to check instead of the target host, or NULL */
} rpc_client_tls;

/* Like rpc_client_new, over TLS when tls is not NULL. The files are read
 * here; NULL with a line in err when one cannot be read. A TLS handshake
 * that fails later shows up as UNAVAILABLE on the calls. */
rpc_client *rpc_client_new_tls(const char *target, const rpc_client_tls *tls, char *err,
                               size_t errlen);
void rpc_client_free(rpc_client *client);

/* Metadata sent with every later call of this client (e.g.
 * "authorization", "Bearer ..."); a second call with the same key replaces
 * the value. Not while calls are running. */
int rpc_client_set_metadata(rpc_client *client, const char *key, const char *value);

/* Unary call of `path` ("/e2.v1.Coordinator/GetJob"). Returns the gRPC
 * status code; on RPC_OK *response holds the decoded reply (free with
 * protobuf_c_message_free_unpacked(*response, NULL)); otherwise *response
 * is NULL and `message` holds the server's (or gRPC's) status text.
 * timeout_ms <= 0: no deadline. */
int rpc_client_call(rpc_client *client, const char *path, const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response,
                    int64_t timeout_ms, char *message, size_t message_len);

/* Server-streaming call. NULL only when out of memory; a failure to reach
 * the server shows up in the first rpc_stream_next. */
rpc_stream *rpc_client_stream(rpc_client *client, const char *path, const ProtobufCMessage *request,
                              const ProtobufCMessageDescriptor *message_type, int64_t timeout_ms);
/* Block for the next message: 1 and *message set (free it with
 * protobuf_c_message_free_unpacked), or 0 when the stream has ended; then
 * rpc_stream_status tells how. */
int rpc_stream_next(rpc_stream *stream, ProtobufCMessage **message);
/* Status of an ended stream, its text copied into `message`. */
int rpc_stream_status(const rpc_stream *stream, char *message, size_t message_len);
/* Cancel from any thread (e.g. while another blocks in rpc_stream_next,
 * which then returns 0 with status CANCELLED). */
void rpc_stream_cancel(rpc_stream *stream);
void rpc_stream_free(rpc_stream *stream);

#endif
