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
 * e2worker. One e2_rpc_client may be used from several threads at once, each
 * thread with its own calls.
 *
 * Errors: functions return 0 or a negative E2_RPC_E* code and, where they take
 * (err, errlen), write one line naming the cause there. Nothing is printed;
 * gRPC's own log goes to the callback given to e2_rpc_log_set.
 *
 * Lifetime of a server call: every call handed to a handler must be
 * finished exactly once by e2_rpc_call_reply or e2_rpc_call_finish, also after
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
#define E2_RPC_EINVAL     (-1) /* bad argument or address */
#define E2_RPC_ENOMEM     (-2)
#define E2_RPC_EBIND      (-3) /* could not listen on the address */
#define E2_RPC_ESTATE     (-4) /* not allowed in the object's current state */
#define E2_RPC_ENOTSUP    (-5) /* not supported (yet) */
#define E2_RPC_ECANCELLED (-6) /* the call was cancelled; nothing was sent */
#define E2_RPC_EGRPC      (-7) /* gRPC refused an operation */

/* The name of an E2_RPC_E* code ("E2_RPC_EBIND: could not listen"). */
const char *e2_rpc_strerror(int err);

/* gRPC status codes, with gRPC's numbers. */
typedef enum {
    E2_RPC_OK = 0,
    E2_RPC_CANCELLED = 1,
    E2_RPC_UNKNOWN = 2,
    E2_RPC_INVALID_ARGUMENT = 3,
    E2_RPC_DEADLINE_EXCEEDED = 4,
    E2_RPC_NOT_FOUND = 5,
    E2_RPC_ALREADY_EXISTS = 6,
    E2_RPC_PERMISSION_DENIED = 7,
    E2_RPC_RESOURCE_EXHAUSTED = 8,
    E2_RPC_FAILED_PRECONDITION = 9,
    E2_RPC_ABORTED = 10,
    E2_RPC_OUT_OF_RANGE = 11,
    E2_RPC_UNIMPLEMENTED = 12,
    E2_RPC_INTERNAL = 13,
    E2_RPC_UNAVAILABLE = 14,
    E2_RPC_DATA_LOSS = 15,
    E2_RPC_UNAUTHENTICATED = 16
} e2_rpc_status;

/* "INVALID_ARGUMENT", ...; "UNKNOWN_STATUS" for numbers outside the enum. */
const char *e2_rpc_status_name(int code);

/* gRPC's log, routed: severity 0 debug, 1 info, 2 error. Process-wide; a
 * NULL callback (the default once an rpc object exists) discards it. */
typedef void (*e2_rpc_log_cb)(int severity, const char *file, int line, const char *message,
                              void *data);
void e2_rpc_log_set(e2_rpc_log_cb cb, void *data);

/* ---------------------------------------------------------------- server */

typedef struct e2_rpc_server e2_rpc_server;
typedef struct e2_rpc_call e2_rpc_call;

typedef enum { E2_RPC_UNARY = 0, E2_RPC_SERVER_STREAMING = 1 } e2_rpc_kind;

/* A handler gets the decoded request (owned by the call: valid until the
 * handler finishes the call) and the data of its e2_rpc_method. */
typedef void (*e2_rpc_handler_cb)(e2_rpc_call *call, const ProtobufCMessage *request, void *data);
/* The client is gone (cancelled, deadline passed, connection dropped, or
 * the server cancelled all calls at the end of its shutdown grace). The
 * handler must still finish the call; sends are dropped from now on. */
typedef void (*e2_rpc_cancel_cb)(e2_rpc_call *call);
/* The server has shut down completely; e2_rpc_server_free may be called. */
typedef void (*e2_rpc_shutdown_cb)(e2_rpc_server *server);

/* One method of a service, named as in the .proto ("SubmitJob"). The
 * protoc-c descriptor gives the path and the message types; the kind is
 * stated here because protoc-c drops `stream`. `role` is the role a caller
 * needs, kept in the row so that a method and who may call it are one
 * entry; its meaning is the auth hook's (e2d: an e2_auth_role, see
 * daemon/src/api/authz.c), which reads it with e2_rpc_call_role. */
typedef struct {
    const char *name;
    e2_rpc_kind kind;
    e2_rpc_handler_cb handler;
    void *data;
    int role;
} e2_rpc_method;

/* Optional TLS for a listener (NULL: plaintext). The files are read when
 * the listener is added. With ca_file, every client must present a
 * certificate signed by that CA (mutual TLS); a client without one fails
 * the handshake and never reaches a handler. */
typedef struct {
    const char *cert_file; /* PEM server certificate chain */
    const char *key_file;  /* PEM private key */
    const char *ca_file;   /* PEM CA for client certificates; NULL: none asked */
} e2_rpc_tls;

/* Who made a call, as the server's auth hook decided. */
typedef struct {
    char name[64]; /* e.g. the token's name; "" when anonymous */
    char role[16]; /* e.g. "admin"; meaning is the hook's business */
} e2_rpc_principal;

/* Runs on the loop thread for every call (unknown methods included) after
 * its metadata arrived and before its body is decoded or a handler runs;
 * e2_rpc_call_method and e2_rpc_call_metadata work on `call`. Return E2_RPC_OK and
 * fill *principal to let the call go on; any other status (normally
 * E2_RPC_UNAUTHENTICATED or E2_RPC_PERMISSION_DENIED) ends the call with that
 * status and `message`. */
typedef e2_rpc_status (*e2_rpc_auth_cb)(const e2_rpc_call *call, e2_rpc_principal *principal,
                                        char *message, size_t message_len, void *data);

/* A server whose handlers run on `loop`. NULL when out of memory. */
e2_rpc_server *e2_rpc_server_new(uv_loop_t *loop, void *data);
void *e2_rpc_server_data(const e2_rpc_server *server);

/* Install the auth hook (NULL: none; every call proceeds without a
 * principal). Before e2_rpc_server_start only. */
int e2_rpc_server_set_auth(e2_rpc_server *server, e2_rpc_auth_cb cb, void *data);

/* Register the methods of a protoc-c service descriptor. Every entry of
 * `methods` must name a method of `service`; methods left out answer
 * UNIMPLEMENTED. Before e2_rpc_server_start only. */
int e2_rpc_server_add_service(e2_rpc_server *server, const ProtobufCServiceDescriptor *service,
                              const e2_rpc_method *methods, size_t n_methods, char *err,
                              size_t errlen);

/* Requests of the methods of `service` added so far are refused with
 * INVALID_ARGUMENT, naming the field, when a string field at any depth
 * holds a NUL byte or is not valid UTF-8: protobuf-c would accept both and
 * change them (a C string ends at the NUL; the JSON form of a stored
 * message cannot hold invalid UTF-8). For services whose strings are
 * stored or acted on; others keep protobuf-c's leniency. */
void e2_rpc_server_check_strings(e2_rpc_server *server, const ProtobufCServiceDescriptor *service);

/* Listen on "unix:/path" or "host:port" (port 0 picks a free port). The
 * port bound is stored in *port when port is not NULL (0 for unix:). A TCP
 * port another process holds fails (SO_REUSEPORT is off). Before
 * e2_rpc_server_start only. */
int e2_rpc_server_listen(e2_rpc_server *server, const char *address, const e2_rpc_tls *tls,
                         int *port, char *err, size_t errlen);

/* Start serving: the completion-queue thread starts and requests are
 * accepted. Call from the loop's thread. */
int e2_rpc_server_start(e2_rpc_server *server, char *err, size_t errlen);

/* Stop accepting calls; calls in flight get `grace_ms` to finish, then they
 * are cancelled (their cancel callbacks run and handlers must finish them).
 * `cb` runs on the loop once everything is torn down. Once only. */
int e2_rpc_server_shutdown(e2_rpc_server *server, uint64_t grace_ms, e2_rpc_shutdown_cb cb);

/* Free a server that was never started, or one whose shutdown callback ran. */
void e2_rpc_server_free(e2_rpc_server *server);

/* --- a server call (loop thread only) */

e2_rpc_server *e2_rpc_call_server(const e2_rpc_call *call);
const char *e2_rpc_call_method(const e2_rpc_call *call); /* "/e2.v1.Coordinator/GetJob" */
/* The role column of the call's method row (e2_rpc_method.role); -1 when the
 * server has no row for the method (it will answer UNIMPLEMENTED). */
int e2_rpc_call_role(const e2_rpc_call *call);
/* The same for a method path ("/e2.v1.Coordinator/GetJob"), e.g. for
 * another front end that mirrors the methods; -1 when no row. */
int e2_rpc_server_method_role(const e2_rpc_server *server, const char *path);
const char *e2_rpc_call_peer(const e2_rpc_call *call); /* "unix:", "ipv4:127.0.0.1:5123" */
/* Value of a request metadata key (lower case, e.g. "authorization"), or
 * NULL when the client sent none. Valid while the call lives. */
const char *e2_rpc_call_metadata(const e2_rpc_call *call, const char *key);
/* The principal the auth hook set; NULL when the server has no hook. */
const e2_rpc_principal *e2_rpc_call_principal(const e2_rpc_call *call);
/* Milliseconds until the client's deadline (0 once passed), or -1 when the
 * client set none. */
int64_t e2_rpc_call_deadline_ms(const e2_rpc_call *call);
/* Non-zero once the client is gone (see e2_rpc_cancel_cb). */
int e2_rpc_call_cancelled(const e2_rpc_call *call);

void e2_rpc_call_set_data(e2_rpc_call *call, void *data);
void *e2_rpc_call_get_data(const e2_rpc_call *call);
void e2_rpc_call_on_cancel(e2_rpc_call *call, e2_rpc_cancel_cb cb);

/* Unary: answer with `response` and status OK; this finishes the call. */
int e2_rpc_call_reply(e2_rpc_call *call, const ProtobufCMessage *response);
/* Streaming: queue one message (sent in order, one at a time).
 * E2_RPC_ECANCELLED when the client is gone; E2_RPC_EINVAL on a unary method
 * (use e2_rpc_call_reply). */
int e2_rpc_call_send(e2_rpc_call *call, const ProtobufCMessage *message);
/* Finish with a status (after the queued messages) and a one-line message
 * (NULL for none). Unary calls use it for errors. */
int e2_rpc_call_finish(e2_rpc_call *call, e2_rpc_status code, const char *message);
/* Messages queued but not yet sent (for a stream's back-pressure). */
size_t e2_rpc_call_queued(const e2_rpc_call *call);

/* ---------------------------------------------------------------- client */

typedef struct e2_rpc_client e2_rpc_client;
typedef struct e2_rpc_stream e2_rpc_stream;

/* A channel to "unix:/path" or "host:port" (plaintext). Connecting happens
 * on the first call; a server that is not there gives UNAVAILABLE. */
e2_rpc_client *e2_rpc_client_new(const char *target, char *err, size_t errlen);

/* TLS for a client. The server's certificate must chain to ca_file (NULL:
 * gRPC's default roots) and name the target's host (or server_name). For
 * mutual TLS give cert_file and key_file together. */
typedef struct {
    const char *ca_file;     /* PEM roots that sign the server certificate */
    const char *cert_file;   /* PEM client certificate chain, or NULL */
    const char *key_file;    /* PEM client private key, or NULL */
    const char *server_name; /* name to check instead of the target host, or NULL */
} e2_rpc_client_tls;

/* Like e2_rpc_client_new, over TLS when tls is not NULL. The files are read
 * here; NULL with a line in err when one cannot be read. A TLS handshake
 * that fails later shows up as UNAVAILABLE on the calls. */
e2_rpc_client *e2_rpc_client_new_tls(const char *target, const e2_rpc_client_tls *tls, char *err,
                                     size_t errlen);
void e2_rpc_client_free(e2_rpc_client *client);

/* Metadata sent with every later call of this client (e.g.
 * "authorization", "Bearer ..."); a second call with the same key replaces
 * the value. Not while calls are running. */
int e2_rpc_client_set_metadata(e2_rpc_client *client, const char *key, const char *value);

/* Unary call of `path` ("/e2.v1.Coordinator/GetJob"). Returns the gRPC
 * status code; on E2_RPC_OK *response holds the decoded reply (free with
 * protobuf_c_message_free_unpacked(*response, NULL)); otherwise *response
 * is NULL and `message` holds the server's (or gRPC's) status text.
 * timeout_ms <= 0: no deadline. */
int e2_rpc_client_call(e2_rpc_client *client, const char *path, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response,
                       int64_t timeout_ms, char *message, size_t message_len);

/* Server-streaming call. NULL only when out of memory; a failure to reach
 * the server shows up in the first e2_rpc_stream_next. */
e2_rpc_stream *e2_rpc_client_stream(e2_rpc_client *client, const char *path,
                                    const ProtobufCMessage *request,
                                    const ProtobufCMessageDescriptor *message_type,
                                    int64_t timeout_ms);
/* Block for the next message: 1 and *message set (free it with
 * protobuf_c_message_free_unpacked), or 0 when the stream has ended; then
 * e2_rpc_stream_status tells how. */
int e2_rpc_stream_next(e2_rpc_stream *stream, ProtobufCMessage **message);
/* Status of an ended stream, its text copied into `message`. */
int e2_rpc_stream_status(const e2_rpc_stream *stream, char *message, size_t message_len);
/* Cancel from any thread (e.g. while another blocks in e2_rpc_stream_next,
 * which then returns 0 with status CANCELLED). */
void e2_rpc_stream_cancel(e2_rpc_stream *stream);
void e2_rpc_stream_free(e2_rpc_stream *stream);

#endif
