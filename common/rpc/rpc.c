/* rpc.c: the parts of e2_rpc shared by server and client: gRPC start-up
 * reference counting, log routing, error and status names, and the
 * protobuf-c <-> gRPC byte buffer conversions, reading PEM files for TLS. */
#include "rpc.h"
#include "rpc_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>

static uv_mutex_t log_mu;
static uv_once_t log_once = UV_ONCE_INIT;
static rpc_log_cb log_cb;
static void *log_data;
static _Thread_local char last_error[512];

static void log_init(void) { uv_mutex_init(&log_mu); }

static void log_route(gpr_log_func_args *args) {
  if (args->severity == GPR_LOG_SEVERITY_ERROR)
    snprintf(last_error, sizeof last_error, "%s", args->message);
  uv_mutex_lock(&log_mu);
  rpc_log_cb cb = log_cb;
  void *data = log_data;
  uv_mutex_unlock(&log_mu);
  if (cb != NULL)
    cb((int)args->severity, args->file, args->line, args->message, data);
}

void rpc_log_set(rpc_log_cb cb, void *data) {
  uv_once(&log_once, log_init);
  uv_mutex_lock(&log_mu);
  log_cb = cb;
  log_data = data;
  uv_mutex_unlock(&log_mu);
}

const char *rpc__last_error(void) { return last_error; }
void rpc__last_error_clear(void) { last_error[0] = '\0'; }

void rpc__grpc_ref(void) {
  uv_once(&log_once, log_init);
  gpr_set_log_function(log_route);
  grpc_init();
}

void rpc__grpc_unref(void) { grpc_shutdown(); }

const char *rpc_strerror(int err) {
  switch (err) {
  case 0: return "success";
  case RPC_EINVAL: return "RPC_EINVAL: invalid argument";
  case RPC_ENOMEM: return "RPC_ENOMEM: out of memory";
  case RPC_EBIND: return "RPC_EBIND: could not listen on the address";
  case RPC_ESTATE: return "RPC_ESTATE: not allowed in the current state";
  case RPC_ENOTSUP: return "RPC_ENOTSUP: not supported";
  case RPC_ECANCELLED: return "RPC_ECANCELLED: the call was cancelled";
  case RPC_EGRPC: return "RPC_EGRPC: gRPC refused the operation";
  default: return "RPC_E?: unknown error";
  }
}

const char *rpc_status_name(int code) {
  static const char *const names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
      "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  if (code < 0 || code >= (int)(sizeof names / sizeof names[0]))
    return "UNKNOWN_STATUS";
  return names[code];
}

grpc_byte_buffer *rpc__pack(const ProtobufCMessage *message) {
  size_t n = protobuf_c_message_get_packed_size(message);
  grpc_slice slice = grpc_slice_malloc(n);
  protobuf_c_message_pack(message, GRPC_SLICE_START_PTR(slice));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  return bb;
}

ProtobufCMessage *rpc__unpack(const ProtobufCMessageDescriptor *type,
                              grpc_byte_buffer *buffer) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, buffer))
    return NULL;
  grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  ProtobufCMessage *m = protobuf_c_message_unpack(
      type, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
  grpc_slice_unref(all);
  return m;
}

void rpc__errf(char *buf, size_t len, const char *fmt, ...) {
  if (buf == NULL || len == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, len, fmt, ap);
  va_end(ap);
}

char *rpc__read_pem(const char *path, const char *what, char *err,
                    size_t errlen) {
  if (path == NULL || path[0] == '\0') {
    rpc__errf(err, errlen, "no %s file given", what);
    return NULL;
  }
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    rpc__errf(err, errlen, "cannot read %s file %s: %s", what, path,
              strerror(errno));
    return NULL;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n - 1, f);
    if (n < cap - 1)
      break;
    char *grown = realloc(buf, cap * 2);
    if (grown == NULL) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = grown;
    cap *= 2;
  }
  int bad = ferror(f);
  fclose(f);
  if (buf == NULL) {
    rpc__errf(err, errlen, "out of memory reading %s", path);
    return NULL;
  }
  buf[n] = '\0';
  if (bad || strstr(buf, "-----BEGIN ") == NULL) {
    rpc__errf(err, errlen, "%s file %s is not PEM (no -----BEGIN line)", what,
              path);
    free(buf);
    return NULL;
  }
  return buf;
}

void rpc__wipe_free(char *s) {
  if (s == NULL)
    return;
  volatile char *v = s;
  while (*v)
    *v++ = '\0';
  free(s);
}
