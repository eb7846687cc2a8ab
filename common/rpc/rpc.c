/* rpc.c: the parts of e2_rpc shared by server and client: gRPC start-up
 * reference counting, log routing, error and status names, and the
 * protobuf-c <-> gRPC byte buffer conversions, reading PEM files for TLS. */
#include "rpc.h"
#include "rpc_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>

static uv_mutex_t log_mu;
static uv_once_t log_once = UV_ONCE_INIT;
static e2_rpc_log_cb log_cb;
static void *log_data;
static _Thread_local char last_error[512];

/* Once per process, before the first grpc_init (so before gRPC holds any
 * lock). */
static void log_init(void) {
    uv_mutex_init(&log_mu);
    e2_rpc__absl_tune();
}

static void log_route(gpr_log_func_args *args) {
    if (args->severity == GPR_LOG_SEVERITY_ERROR)
        snprintf(last_error, sizeof last_error, "%s", args->message);
    uv_mutex_lock(&log_mu);
    e2_rpc_log_cb cb = log_cb;
    void *data = log_data;
    uv_mutex_unlock(&log_mu);
    if (cb != NULL) cb((int)args->severity, args->file, args->line, args->message, data);
}

void e2_rpc_log_set(e2_rpc_log_cb cb, void *data) {
    uv_once(&log_once, log_init);
    uv_mutex_lock(&log_mu);
    log_cb = cb;
    log_data = data;
    uv_mutex_unlock(&log_mu);
}

const char *e2_rpc__last_error(void) {
    return last_error;
}
void e2_rpc__last_error_clear(void) {
    last_error[0] = '\0';
}

void e2_rpc__grpc_ref(void) {
    uv_once(&log_once, log_init);
    gpr_set_log_function(log_route);
    grpc_init();
}

/* Blocking: gRPC's plain shutdown finishes on a thread of its own, so a
 * process that exits right after its last client or server is freed could
 * end before the TLS objects of that channel were released (LeakSanitizer
 * saw them once in sec_auth_hook). Never called from a gRPC thread. */
void e2_rpc__grpc_unref(void) {
    grpc_shutdown_blocking();
}

const char *e2_rpc_strerror(int err) {
    switch (err) {
    case 0: return "success";
    case E2_RPC_EINVAL: return "E2_RPC_EINVAL: invalid argument";
    case E2_RPC_ENOMEM: return "E2_RPC_ENOMEM: out of memory";
    case E2_RPC_EBIND: return "E2_RPC_EBIND: could not listen on the address";
    case E2_RPC_ESTATE: return "E2_RPC_ESTATE: not allowed in the current state";
    case E2_RPC_ENOTSUP: return "E2_RPC_ENOTSUP: not supported";
    case E2_RPC_ECANCELLED: return "E2_RPC_ECANCELLED: the call was cancelled";
    case E2_RPC_EGRPC: return "E2_RPC_EGRPC: gRPC refused the operation";
    default: return "E2_RPC_E?: unknown error";
    }
}

const char *e2_rpc_status_name(int code) {
    static const char *const names[] = { "OK",
                                         "CANCELLED",
                                         "UNKNOWN",
                                         "INVALID_ARGUMENT",
                                         "DEADLINE_EXCEEDED",
                                         "NOT_FOUND",
                                         "ALREADY_EXISTS",
                                         "PERMISSION_DENIED",
                                         "RESOURCE_EXHAUSTED",
                                         "FAILED_PRECONDITION",
                                         "ABORTED",
                                         "OUT_OF_RANGE",
                                         "UNIMPLEMENTED",
                                         "INTERNAL",
                                         "UNAVAILABLE",
                                         "DATA_LOSS",
                                         "UNAUTHENTICATED" };
    if (code < 0 || code >= (int)(sizeof names / sizeof names[0])) return "UNKNOWN_STATUS";
    return names[code];
}

grpc_byte_buffer *e2_rpc__pack(const ProtobufCMessage *message) {
    size_t n = protobuf_c_message_get_packed_size(message);
    grpc_slice slice = grpc_slice_malloc(n);
    protobuf_c_message_pack(message, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

ProtobufCMessage *e2_rpc__unpack(const ProtobufCMessageDescriptor *type, grpc_byte_buffer *buffer) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, buffer)) return NULL;
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *m =
        protobuf_c_message_unpack(type, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    return m;
}

/* ---- string checks on the wire form ---- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_seq(const uint8_t *p, size_t n) {
    uint8_t c = p[0];
    if (c < 0x80) return 1;
    size_t len;
    uint32_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return len;
}

static int wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
    *v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) return 0;
    }
    return -1;
}

/* Walks one message's fields; path holds the dotted name so far. */
static int wire_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, const uint8_t *end,
                        char *path, size_t pathlen, int depth, char *msg, size_t msglen) {
    size_t at = strlen(path);
    while (p < end) {
        uint64_t tag, len;
        if (wire_varint(&p, end, &tag) < 0)
            return 0; /* protobuf-c accepted it: nothing more to check here */
        switch (tag & 7) {
        case 0:
            if (wire_varint(&p, end, &len) < 0) return 0;
            continue;
        case 1: p += (size_t)(end - p) < 8 ? (size_t)(end - p) : 8; continue;
        case 5: p += (size_t)(end - p) < 4 ? (size_t)(end - p) : 4; continue;
        case 2: break;
        default: return 0;
        }
        if (wire_varint(&p, end, &len) < 0 || len > (uint64_t)(end - p)) return 0;
        const uint8_t *v = p;
        p += len;
        const ProtobufCFieldDescriptor *f =
            tag >> 3 <= UINT32_MAX
                ? protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3))
                : NULL;
        if (f == NULL || (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE))
            continue;
        snprintf(path + at, pathlen - at, "%s%s", at ? "." : "", f->name);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            if (depth < 32 &&
                wire_strings(f->descriptor, v, v + len, path, pathlen, depth + 1, msg, msglen) < 0)
                return -1;
        } else {
            for (size_t i = 0; i < len;) {
                size_t k = v[i] ? utf8_seq(v + i, len - i) : 0;
                if (k == 0) {
                    e2_rpc__errf(msg, msglen,
                                 "%s: the string %s at byte %zu: send it as UTF-8 text "
                                 "without NUL",
                                 path, v[i] ? "is not valid UTF-8" : "holds a NUL byte", i);
                    return -1;
                }
                i += k;
            }
        }
        path[at] = '\0';
    }
    return 0;
}

ProtobufCMessage *e2_rpc__unpack_request(const ProtobufCMessageDescriptor *type,
                                         grpc_byte_buffer *buffer, int check_strings, char *msg,
                                         size_t msglen) {
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, buffer)) {
        e2_rpc__errf(msg, msglen, "request body is unreadable");
        return NULL;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    const uint8_t *data = GRPC_SLICE_START_PTR(all);
    size_t n = GRPC_SLICE_LENGTH(all);
    ProtobufCMessage *m = protobuf_c_message_unpack(type, NULL, n, data);
    char path[512] = "";
    if (m == NULL)
        e2_rpc__errf(msg, msglen, "request body is not a valid %s (protobuf decoding failed)",
                     type->name);
    else if (check_strings &&
             wire_strings(type, data, data + n, path, sizeof path, 0, msg, msglen) < 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    grpc_slice_unref(all);
    return m;
}

void e2_rpc__errf(char *buf, size_t len, const char *fmt, ...) {
    if (buf == NULL || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

char *e2_rpc__read_pem(const char *path, const char *what, char *err, size_t errlen) {
    if (path == NULL || path[0] == '\0') {
        e2_rpc__errf(err, errlen, "no %s file given", what);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        e2_rpc__errf(err, errlen, "cannot read %s file %s: %s", what, path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (n < cap - 1) break;
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
        e2_rpc__errf(err, errlen, "out of memory reading %s", path);
        return NULL;
    }
    buf[n] = '\0';
    if (bad || strstr(buf, "-----BEGIN ") == NULL) {
        e2_rpc__errf(err, errlen, "%s file %s is not PEM (no -----BEGIN line)", what, path);
        free(buf);
        return NULL;
    }
    return buf;
}

char *e2_rpc__read_key(const char *path, const char *what, char *err, size_t errlen) {
    struct stat st;
    if (path != NULL && path[0] != '\0' && stat(path, &st) == 0 &&
        (st.st_mode & (S_IROTH | S_IWOTH))) {
        e2_rpc__errf(err, errlen,
                     "%s file %s is accessible by other users (mode %03o): it holds "
                     "a private key, run chmod 600 %s (or 640 with the daemon's "
                     "group)",
                     what, path, (unsigned)(st.st_mode & 0777), path);
        return NULL;
    }
    return e2_rpc__read_pem(path, what, err, errlen);
}

void e2_rpc__wipe_free(char *s) {
    if (s == NULL) return;
    volatile char *v = s;
    while (*v) *v++ = '\0';
    free(s);
}
