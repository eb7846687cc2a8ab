/* rpc_int.h: helpers shared by the server and client halves of e2_rpc
 * (not installed, not for users of the library). */
#ifndef E2_RPC_INT_H
#define E2_RPC_INT_H

#include <stddef.h>

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

/* grpc_init/grpc_shutdown, counted, with gRPC's log routed to e2_rpc_log_set. */
void e2_rpc__grpc_ref(void);
void e2_rpc__grpc_unref(void);

/* Abseil's mutex deadlock detection off (absl_tune.cc): it costs every
 * lock gRPC takes a walk of a process-wide graph under a global lock. */
void e2_rpc__absl_tune(void);

/* The last ERROR line gRPC logged on this thread ("" if none); cleared by
 * e2_rpc__last_error_clear. Lets e2_rpc_server_listen say why a bind failed. */
const char *e2_rpc__last_error(void);
void e2_rpc__last_error_clear(void);

/* A message serialized into a new byte buffer; NULL when out of memory. */
grpc_byte_buffer *e2_rpc__pack(const ProtobufCMessage *message);
/* A byte buffer decoded as `type`; NULL when it is not a valid encoding. */
ProtobufCMessage *e2_rpc__unpack(const ProtobufCMessageDescriptor *type, grpc_byte_buffer *buffer);

/* A request body decoded as `type`; with check_strings, refusing what
 * protobuf-c would accept but change: a string field (at any depth) that
 * holds a NUL byte (C strings end there) or is not valid UTF-8 (proto3
 * strings are UTF-8). NULL with one line in msg naming the field
 * ("spec.name: the string ...") or the decoding failure. */
ProtobufCMessage *e2_rpc__unpack_request(const ProtobufCMessageDescriptor *type,
                                         grpc_byte_buffer *buffer, int check_strings, char *msg,
                                         size_t msglen);

/* The whole PEM file at `path` as a new string (free it; keys: wipe it
 * first); NULL with "cannot read <what> file ..." in err. */
char *e2_rpc__read_pem(const char *path, const char *what, char *err, size_t errlen);

/* e2_rpc__read_pem for a private key: like a token file, a key file that
 * other users may read or write is refused ("... is accessible by other
 * users (mode 644): ... chmod 600 ..."), before any byte is read. */
char *e2_rpc__read_key(const char *path, const char *what, char *err, size_t errlen);

/* Overwrites a string (a private key) before freeing it, so that it does
 * not linger in freed heap memory a crash dump could show. NULL is fine. */
void e2_rpc__wipe_free(char *s);

/* snprintf into (buf, len) when buf is not NULL. */
void e2_rpc__errf(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
