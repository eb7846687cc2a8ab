/* pbjson: descriptor-driven JSON <-> protobuf-c mapping (see pbjson.h for
 * the conventions). The parser walks the JSON value and the descriptor
 * together, keeping the field path for error lines; every allocation is
 * hooked into the message as soon as it is made, so a message that failed
 * half-way is still freed completely by protobuf_c_message_free_unpacked. */
#include "pbjson.h"
#include "base.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PJ_PATH_MAX 1024

typedef struct {
    char *err;
    size_t errlen;
    char path[PJ_PATH_MAX];
    size_t plen;
    int lenient; /* command-line text: numbers and bools may be strings */
} pj_ctx;

#define MEMBER(msg, off, type)  ((type *)((char *)(msg) + (off)))
#define CMEMBER(msg, off, type) ((const type *)((const char *)(msg) + (off)))

static int pj_fail(pj_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int pj_fail(pj_ctx *c, const char *fmt, ...) {
    if (c->err == NULL || c->errlen == 0) return E2_ERR;
    int n = snprintf(c->err, c->errlen, "%s: ", c->path);
    if (n < 0 || (size_t)n >= c->errlen) return E2_ERR;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return E2_ERR;
}

static int pj_oom(pj_ctx *c) {
    if (c->err && c->errlen) snprintf(c->err, c->errlen, "%s: out of memory", c->path);
    return E2_ERR;
}

/* Appends ".name" or "[i]"-style segments; pj_pop restores the length. */
static size_t pj_push(pj_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static size_t pj_push(pj_ctx *c, const char *fmt, ...) {
    size_t old = c->plen;
    if (c->plen < sizeof c->path) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
        va_end(ap);
        if (n > 0) c->plen += (size_t)n;
        if (c->plen >= sizeof c->path) c->plen = sizeof c->path - 1;
    }
    return old;
}

static void pj_pop(pj_ctx *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

static void pj_init(pj_ctx *c, const char *root, char *err, size_t errlen, int lenient) {
    c->err = err;
    c->errlen = errlen;
    c->lenient = lenient;
    snprintf(c->path, sizeof c->path, "%s", root ? root : "");
    c->plen = strlen(c->path);
    if (err && errlen) err[0] = '\0';
}

static const char *pj_typename(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER:
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "bool";
    case JSON_NULL: return "null";
    }
    return "value";
}

/* The value as the user wrote it, for "got ..." in error lines. */
static const char *pj_got(const json_t *j, char *buf, size_t n) {
    if (json_is_string(j))
        snprintf(buf, n, "\"%.40s\"", json_string_value(j));
    else if (json_is_integer(j))
        snprintf(buf, n, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
    else if (json_is_real(j))
        snprintf(buf, n, "%.17g", json_real_value(j));
    else
        snprintf(buf, n, "%s", pj_typename(j));
    return buf;
}

/* --- names --------------------------------------------------------------- */

/* protoc's JSON name: underscores dropped, the letter after one uppercased. */
static void pj_json_name(const char *name, char *out, size_t n) {
    size_t k = 0;
    int up = 0;
    for (const char *p = name; *p && k + 1 < n; p++) {
        if (*p == '_') {
            up = 1;
            continue;
        }
        out[k++] = up ? (char)toupper((unsigned char)*p) : *p;
        up = 0;
    }
    out[k] = '\0';
}

static const ProtobufCFieldDescriptor *pj_field(const ProtobufCMessageDescriptor *d,
                                                const char *key) {
    char jn[256];
    for (unsigned i = 0; i < d->n_fields; i++) {
        if (strcmp(d->fields[i].name, key) == 0) return &d->fields[i];
        pj_json_name(d->fields[i].name, jn, sizeof jn);
        if (strcmp(jn, key) == 0) return &d->fields[i];
    }
    return NULL;
}

static size_t pj_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return SIZE_MAX;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t sub =
                diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            size_t best = sub;
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static int pj_unknown(pj_ctx *c, const ProtobufCMessageDescriptor *d, const char *key) {
    const char *best = NULL;
    size_t bestd = 3;
    char a[256], b[256];
    size_t k = 0;
    for (const char *p = key; *p && k + 1 < sizeof a; p++)
        if (*p != '_') a[k++] = (char)tolower((unsigned char)*p);
    a[k] = '\0';
    for (unsigned i = 0; i < d->n_fields; i++) {
        k = 0;
        for (const char *p = d->fields[i].name; *p && k + 1 < sizeof b; p++)
            if (*p != '_') b[k++] = (char)tolower((unsigned char)*p);
        b[k] = '\0';
        size_t dist = strcmp(a, b) == 0 ? 0 : pj_edit_distance(key, d->fields[i].name);
        if (dist < bestd) {
            bestd = dist;
            best = d->fields[i].name;
        }
    }
    if (best) return pj_fail(c, "unknown field (did you mean %s?)", best);
    return pj_fail(c, "unknown field of %s", d->name);
}

/* A protoc map entry: repeated <Name>Entry { key = 1; value = 2; }. */
static int pj_is_map(const ProtobufCFieldDescriptor *f) {
    if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return 0;
    const ProtobufCMessageDescriptor *e = f->descriptor;
    size_t nl = strlen(e->name);
    return e->n_fields == 2 && nl > 5 && strcmp(e->name + nl - 5, "Entry") == 0 &&
           e->fields[0].id == 1 && strcmp(e->fields[0].name, "key") == 0 && e->fields[1].id == 2 &&
           strcmp(e->fields[1].name, "value") == 0;
}

/* --- clearing ------------------------------------------------------------- */

static size_t pj_elt_size(ProtobufCType t) {
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM: return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: return 8;
    case PROTOBUF_C_TYPE_FLOAT: return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE: return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(ProtobufCMessage *);
    }
    return 0;
}

static int pj_has_flag(const ProtobufCFieldDescriptor *f) {
    return f->label == PROTOBUF_C_LABEL_OPTIONAL && !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
           f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE;
}

static void pj_free_string(const ProtobufCFieldDescriptor *f, char *s) {
    if (s && s != f->default_value && s != protobuf_c_empty_string) free(s);
}

/* Frees the value of a singular field in place, leaving it unset. */
static void pj_clear_singular(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    void *slot = MEMBER(m, f->offset, char);
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        uint32_t *cs = MEMBER(m, f->quantifier_offset, uint32_t);
        if (*cs != f->id) return;
        *cs = 0;
    }
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        char **s = slot;
        pj_free_string(f, *s);
        *s = f->default_value ? (char *)f->default_value : NULL;
        if (f->label == PROTOBUF_C_LABEL_NONE) *s = (char *)protobuf_c_empty_string;
        break;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = slot;
        const ProtobufCBinaryData *def = f->default_value;
        if (b->data && (def == NULL || def->data != b->data)) free(b->data);
        if (def)
            *b = *def;
        else {
            b->data = NULL;
            b->len = 0;
        }
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        ProtobufCMessage **sm = slot;
        if (*sm && *sm != f->default_value) protobuf_c_message_free_unpacked(*sm, NULL);
        *sm = NULL;
        break;
    }
    default:
        if (f->default_value)
            memcpy(slot, f->default_value, pj_elt_size(f->type));
        else
            memset(slot, 0, pj_elt_size(f->type));
        break;
    }
    if (pj_has_flag(f)) *MEMBER(m, f->quantifier_offset, protobuf_c_boolean) = 0;
}

static void pj_clear_repeated(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    size_t *n = MEMBER(m, f->quantifier_offset, size_t);
    void **arr = MEMBER(m, f->offset, void *);
    if (*arr) {
        for (size_t i = 0; i < *n; i++) {
            if (f->type == PROTOBUF_C_TYPE_STRING)
                free(((char **)*arr)[i]);
            else if (f->type == PROTOBUF_C_TYPE_BYTES)
                free(((ProtobufCBinaryData *)*arr)[i].data);
            else if (f->type == PROTOBUF_C_TYPE_MESSAGE)
                protobuf_c_message_free_unpacked(((ProtobufCMessage **)*arr)[i], NULL);
        }
        free(*arr);
    }
    *arr = NULL;
    *n = 0;
}

static void pj_clear(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        pj_clear_repeated(m, f);
    else
        pj_clear_singular(m, f);
}

/* --- JSON -> values -------------------------------------------------------- */

static int pj_merge_object(pj_ctx *c, ProtobufCMessage *m, const json_t *obj);
static json_t *pj_map_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f);

/* Reads an integer (JSON integer, integral real, or decimal string when
 * allowed) into *s (signed) or *u (unsigned), 64-bit range checked. */
static int pj_integer(pj_ctx *c, const json_t *j, int is_unsigned, int allow_str,
                      const char *expect, int64_t *s, uint64_t *u) {
    char got[64];
    if (json_is_integer(j)) {
        json_int_t v = json_integer_value(j);
        if (is_unsigned && v < 0)
            return pj_fail(c, "%" JSON_INTEGER_FORMAT " is negative (expected %s)", v, expect);
        *s = v;
        *u = (uint64_t)v;
        return 0;
    }
    if (json_is_real(j)) {
        double d = json_real_value(j);
        if (d != floor(d))
            return pj_fail(c, "expected %s, got %s", expect, pj_got(j, got, sizeof got));
        if (is_unsigned) {
            if (d < 0 || d >= 18446744073709551616.0) return pj_fail(c, "%.17g is out of range", d);
            *u = (uint64_t)d;
        } else {
            if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
                return pj_fail(c, "%.17g is out of range", d);
            *s = (int64_t)d;
        }
        return 0;
    }
    if (json_is_string(j) && allow_str) {
        const char *t = json_string_value(j);
        char *end;
        if (*t == '\0' || isspace((unsigned char)*t) || (is_unsigned && *t == '-'))
            return pj_fail(c, "expected %s, got %s", expect, pj_got(j, got, sizeof got));
        errno = 0;
        if (is_unsigned)
            *u = strtoull(t, &end, 10);
        else
            *s = strtoll(t, &end, 10);
        if (*end != '\0')
            return pj_fail(c, "expected %s, got %s", expect, pj_got(j, got, sizeof got));
        if (errno == ERANGE) return pj_fail(c, "%s is out of range", t);
        return 0;
    }
    return pj_fail(c, "expected %s, got %s", expect, pj_typename(j));
}

static int pj_double(pj_ctx *c, const json_t *j, double *out) {
    if (json_is_number(j)) {
        *out = json_number_value(j);
        return 0;
    }
    if (json_is_string(j)) {
        const char *t = json_string_value(j);
        if (strcmp(t, "NaN") == 0) {
            *out = NAN;
            return 0;
        }
        if (strcmp(t, "Infinity") == 0) {
            *out = INFINITY;
            return 0;
        }
        if (strcmp(t, "-Infinity") == 0) {
            *out = -INFINITY;
            return 0;
        }
        if (c->lenient && *t && !isspace((unsigned char)*t)) {
            char *end;
            *out = strtod(t, &end);
            if (*end == '\0') return 0;
        }
        if (c->lenient) return pj_fail(c, "expected a number, got \"%.40s\"", t);
    }
    return pj_fail(c, "expected a number, got %s", pj_typename(j));
}

static int pj_b64_value(int ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+' || ch == '-') return 62;
    if (ch == '/' || ch == '_') return 63;
    return 64; /* not a base64 digit */
}

static int pj_bytes(pj_ctx *c, const json_t *j, ProtobufCBinaryData *out) {
    if (!json_is_string(j)) return pj_fail(c, "expected a base64 string, got %s", pj_typename(j));
    const char *t = json_string_value(j);
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == '=') n--;
    if (n % 4 == 1) return pj_fail(c, "invalid base64 length");
    uint8_t *buf = malloc(n * 3 / 4 + 1);
    if (!buf) return pj_oom(c);
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = pj_b64_value((unsigned char)t[i]);
        if (v > 63) {
            free(buf);
            return pj_fail(c, "invalid base64 character '%c'", t[i]);
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[k++] = (uint8_t)(acc >> bits);
        }
    }
    out->data = buf;
    out->len = k;
    return 0;
}

/* Parses one value of field f's type into slot (which holds nothing that
 * needs freeing, except a message slot, which is merged into). */
static int pj_value(pj_ctx *c, const ProtobufCFieldDescriptor *f, const json_t *j, void *slot) {
    int64_t s = 0;
    uint64_t u = 0;
    int rc;
    char got[64];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((rc = pj_integer(c, j, 0, c->lenient, "an integer", &s, &u))) return rc;
        if (s < INT32_MIN || s > INT32_MAX)
            return pj_fail(c, "%" PRId64 " is out of range for int32", s);
        *(int32_t *)slot = (int32_t)s;
        return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = pj_integer(c, j, 1, c->lenient, "a non-negative integer", &s, &u))) return rc;
        if (u > UINT32_MAX) return pj_fail(c, "%" PRIu64 " is out of range for uint32", u);
        *(uint32_t *)slot = (uint32_t)u;
        return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((rc = pj_integer(c, j, 0, 1, "an integer or a decimal string", &s, &u))) return rc;
        *(int64_t *)slot = s;
        return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = pj_integer(c, j, 1, 1, "a non-negative integer or a decimal string", &s, &u)))
            return rc;
        *(uint64_t *)slot = u;
        return 0;
    case PROTOBUF_C_TYPE_FLOAT: {
        double d;
        if ((rc = pj_double(c, j, &d))) return rc;
        if (isfinite(d) && fabs(d) > FLT_MAX) return pj_fail(c, "%g is out of range for float", d);
        *(float *)slot = (float)d;
        return 0;
    }
    case PROTOBUF_C_TYPE_DOUBLE: return pj_double(c, j, (double *)slot);
    case PROTOBUF_C_TYPE_BOOL:
        if (json_is_boolean(j)) {
            *(protobuf_c_boolean *)slot = json_is_true(j);
            return 0;
        }
        if (c->lenient && json_is_string(j)) {
            const char *t = json_string_value(j);
            if (strcmp(t, "true") == 0 || strcmp(t, "1") == 0) {
                *(protobuf_c_boolean *)slot = 1;
                return 0;
            }
            if (strcmp(t, "false") == 0 || strcmp(t, "0") == 0) {
                *(protobuf_c_boolean *)slot = 0;
                return 0;
            }
        }
        return pj_fail(c, "expected true or false, got %s", pj_got(j, got, sizeof got));
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        const ProtobufCEnumValue *ev = NULL;
        if (json_is_string(j)) {
            ev = protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(j));
            if (!ev && c->lenient) {
                if (pj_integer(c, j, 0, 1, "an enum", &s, &u) == 0 && s >= INT32_MIN &&
                    s <= INT32_MAX)
                    ev = protobuf_c_enum_descriptor_get_value(ed, (int)s);
            }
        } else if (json_is_number(j)) {
            if ((rc = pj_integer(c, j, 0, 0, "an enum name", &s, &u))) return rc;
            if (s >= INT32_MIN && s <= INT32_MAX)
                ev = protobuf_c_enum_descriptor_get_value(ed, (int)s);
        } else {
            return pj_fail(c, "expected an enum name (string), got %s", pj_typename(j));
        }
        if (!ev) {
            char list[512];
            size_t k = 0;
            list[0] = '\0';
            for (unsigned i = 0; i < ed->n_values && k + 1 < sizeof list; i++) {
                int n =
                    snprintf(list + k, sizeof list - k, "%s%s", i ? ", " : "", ed->values[i].name);
                if (n < 0) break;
                k += (size_t)n;
            }
            return pj_fail(c, "unknown %s value %s (expected one of: %s)", ed->short_name,
                           pj_got(j, got, sizeof got), list);
        }
        *(int *)slot = ev->value;
        return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(j)) return pj_fail(c, "expected a string, got %s", pj_typename(j));
        const char *t = json_string_value(j);
        if (strlen(t) != json_string_length(j))
            return pj_fail(c, "string contains a NUL character");
        char *d = strdup(t);
        if (!d) return pj_oom(c);
        *(char **)slot = d;
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: return pj_bytes(c, j, (ProtobufCBinaryData *)slot);
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(j)) return pj_fail(c, "expected an object, got %s", pj_typename(j));
        ProtobufCMessage **sm = slot;
        if (*sm == NULL) {
            const ProtobufCMessageDescriptor *md = f->descriptor;
            ProtobufCMessage *n = malloc(md->sizeof_message);
            if (!n) return pj_oom(c);
            protobuf_c_message_init(md, n);
            *sm = n;
        }
        return pj_merge_object(c, *sm, j);
    }
    }
    return pj_fail(c, "unsupported field type");
}

/* Sets a singular field. A scalar is parsed aside first, so a bad value
 * leaves the old one; a message field is merged into (created if unset). */
static int pj_set_singular(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                           const json_t *j) {
    void *slot = MEMBER(m, f->offset, char);
    int oneof = (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) != 0;
    uint32_t *cs = oneof ? MEMBER(m, f->quantifier_offset, uint32_t) : NULL;
    if (oneof && *cs != 0 && *cs != f->id) {
        const ProtobufCFieldDescriptor *other =
            protobuf_c_message_descriptor_get_field(m->descriptor, (unsigned)*cs);
        if (other) pj_clear_singular(m, other);
        *cs = 0;
    }
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        if (oneof && *cs != f->id) {
            *(ProtobufCMessage **)slot = NULL;
            *cs = f->id;
        }
        return pj_value(c, f, j, slot);
    }
    _Alignas(16) char tmp[32] = { 0 };
    int rc = pj_value(c, f, j, tmp);
    if (rc) return rc;
    pj_clear_singular(m, f);
    memcpy(slot, tmp, pj_elt_size(f->type));
    if (oneof) *cs = f->id;
    if (pj_has_flag(f)) *MEMBER(m, f->quantifier_offset, protobuf_c_boolean) = 1;
    return 0;
}

/* Map key text -> the key field's type (keys are always JSON strings). */
static int pj_map(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                  const json_t *j) {
    if (!json_is_object(j)) return pj_fail(c, "expected an object (map), got %s", pj_typename(j));
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    pj_clear_repeated(m, f);
    size_t cnt = json_object_size(j);
    if (cnt == 0) return 0;
    ProtobufCMessage **arr = calloc(cnt, sizeof *arr);
    if (!arr) return pj_oom(c);
    *MEMBER(m, f->offset, ProtobufCMessage **) = arr;
    size_t *n = MEMBER(m, f->quantifier_offset, size_t);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)j, key, val) {
        size_t old = pj_push(c, ".%s", key);
        ProtobufCMessage *e = malloc(ed->sizeof_message);
        if (!e) return pj_oom(c);
        protobuf_c_message_init(ed, e);
        arr[(*n)++] = e;
        json_t *jk = json_string(key);
        if (!jk) return pj_oom(c);
        int lenient = c->lenient;
        c->lenient = 1;
        int rc = pj_set_singular(c, e, &ed->fields[0], jk);
        c->lenient = lenient;
        json_decref(jk);
        if (rc) return rc;
        if (!json_is_null(val) && (rc = pj_set_singular(c, e, &ed->fields[1], val))) return rc;
        pj_pop(c, old);
    }
    return 0;
}

static int pj_repeated(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       const json_t *j) {
    if (pj_is_map(f)) return pj_map(c, m, f, j);
    if (!json_is_array(j)) return pj_fail(c, "expected an array, got %s", pj_typename(j));
    pj_clear_repeated(m, f);
    size_t cnt = json_array_size(j);
    if (cnt == 0) return 0;
    size_t es = pj_elt_size(f->type);
    char *arr = calloc(cnt, es);
    if (!arr) return pj_oom(c);
    *MEMBER(m, f->offset, void *) = arr;
    size_t *n = MEMBER(m, f->quantifier_offset, size_t);
    for (size_t i = 0; i < cnt; i++) {
        size_t old = pj_push(c, "[%zu]", i);
        const json_t *e = json_array_get(j, i);
        if (json_is_null(e)) return pj_fail(c, "null is not allowed in a repeated field");
        (*n)++;
        int rc = pj_value(c, f, e, arr + i * es);
        if (rc) return rc;
        pj_pop(c, old);
    }
    return 0;
}

static int pj_merge_object(pj_ctx *c, ProtobufCMessage *m, const json_t *obj) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    unsigned char seen[512];
    if (d->n_fields > sizeof seen) return pj_fail(c, "message %s has too many fields", d->name);
    memset(seen, 0, d->n_fields);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        const ProtobufCFieldDescriptor *f = pj_field(d, key);
        if (!f) {
            size_t old = pj_push(c, ".%s", key);
            int rc = pj_unknown(c, d, key);
            pj_pop(c, old);
            return rc;
        }
        size_t idx = (size_t)(f - d->fields);
        size_t old = pj_push(c, ".%s", f->name);
        if (seen[idx]) return pj_fail(c, "set twice (as %s and its other spelling)", key);
        seen[idx] = 1;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            for (unsigned i = 0; i < d->n_fields; i++)
                if (i != idx && seen[i] && (d->fields[i].flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                    d->fields[i].quantifier_offset == f->quantifier_offset)
                    return pj_fail(c, "only one of %s and %s may be set", d->fields[i].name,
                                   f->name);
        }
        int rc = 0;
        if (json_is_null(val))
            pj_clear(m, f);
        else if (f->label == PROTOBUF_C_LABEL_REPEATED)
            rc = pj_repeated(c, m, f, val);
        else
            rc = pj_set_singular(c, m, f, val);
        if (rc) return rc;
        pj_pop(c, old);
    }
    return 0;
}

int e2_pbjson_merge(ProtobufCMessage *msg, const json_t *json, const char *root, char *err,
                    size_t errlen) {
    pj_ctx c;
    pj_init(&c, root, err, errlen, 0);
    if (!json_is_object(json)) return pj_fail(&c, "expected an object, got %s", pj_typename(json));
    return pj_merge_object(&c, msg, json);
}

ProtobufCMessage *e2_pbjson_parse(const ProtobufCMessageDescriptor *desc, const char *text,
                                  size_t len, const char *root, char *err, size_t errlen) {
    pj_ctx c;
    pj_init(&c, root, err, errlen, 0);
    size_t k = 0;
    while (k < len && isspace((unsigned char)text[k])) k++;
    if (k == len) {
        pj_fail(&c, "empty document (expected a JSON object)");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        pj_fail(&c, "invalid JSON at line %d, column %d: %s", je.line, je.column, je.text);
        return NULL;
    }
    ProtobufCMessage *m = malloc(desc->sizeof_message);
    if (!m) {
        json_decref(j);
        pj_oom(&c);
        return NULL;
    }
    protobuf_c_message_init(desc, m);
    int rc = e2_pbjson_merge(m, j, root, err, errlen);
    json_decref(j);
    if (rc) {
        protobuf_c_message_free_unpacked(m, NULL);
        return NULL;
    }
    return m;
}

/* --- set by path ---------------------------------------------------------- */

/* The command-line text of one value as a JSON value for pj_value. */
static json_t *pj_text_value(const ProtobufCFieldDescriptor *f, const char *text,
                             json_error_t *je) {
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, je);
    return json_string(text);
}

static int pj_set_text(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                       const char *value) {
    json_error_t je;
    int rc;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        json_t *j = pj_text_value(f, value, &je);
        if (!j)
            return f->type == PROTOBUF_C_TYPE_MESSAGE
                       ? pj_fail(c, "invalid JSON at column %d: %s", je.column, je.text)
                       : pj_oom(c);
        if (json_is_null(j)) pj_clear(m, f);
        rc = json_is_null(j) ? 0 : pj_set_singular(c, m, f, j);
        json_decref(j);
        return rc;
    }
    json_t *arr;
    if (pj_is_map(f) || f->type == PROTOBUF_C_TYPE_MESSAGE || value[0] == '[') {
        arr = json_loads(value, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
        if (!arr) return pj_fail(c, "invalid JSON at column %d: %s", je.column, je.text);
    } else {
        arr = json_array();
        if (!arr) return pj_oom(c);
        const char *p = value;
        while (*value) {
            const char *q = strchr(p, ',');
            size_t n = q ? (size_t)(q - p) : strlen(p);
            json_t *e = json_stringn(p, n);
            if (!e || json_array_append_new(arr, e)) {
                json_decref(arr);
                return pj_oom(c);
            }
            if (!q) break;
            p = q + 1;
        }
    }
    rc = pj_repeated(c, m, f, arr);
    json_decref(arr);
    return rc;
}

int e2_pbjson_set(ProtobufCMessage *msg, const char *path, const char *value, const char *root,
                  char *err, size_t errlen) {
    pj_ctx c;
    pj_init(&c, root, err, errlen, 1);
    char seg[256];
    const char *p = path;
    ProtobufCMessage *m = msg;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n == 0 || n >= sizeof seg) {
            pj_push(&c, ".%s", p);
            return pj_fail(&c, "invalid field path \"%s\"", path);
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        const ProtobufCFieldDescriptor *f = pj_field(m->descriptor, seg);
        if (!f) {
            pj_push(&c, ".%s", seg);
            return pj_unknown(&c, m->descriptor, seg);
        }
        pj_push(&c, ".%s", f->name);
        if (!dot) return pj_set_text(&c, m, f, value);
        if (pj_is_map(f)) {
            /* "<map>.<key>": replace or add one entry; the key is the rest. */
            json_t *obj = pj_map_json(m, f);
            json_t *ev = json_string(value);
            int rc = (!obj || !ev || json_object_set(obj, dot + 1, ev)) ? pj_oom(&c)
                                                                        : pj_map(&c, m, f, obj);
            json_decref(ev);
            json_decref(obj);
            return rc;
        }
        if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label == PROTOBUF_C_LABEL_REPEATED)
            return pj_fail(&c, "is not a message, cannot set \"%s\" inside it", dot + 1);
        ProtobufCMessage **sm = MEMBER(m, f->offset, ProtobufCMessage *);
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *cs = MEMBER(m, f->quantifier_offset, uint32_t);
            if (*cs != f->id) {
                if (*cs) {
                    const ProtobufCFieldDescriptor *other =
                        protobuf_c_message_descriptor_get_field(m->descriptor, (unsigned)*cs);
                    if (other) pj_clear_singular(m, other);
                }
                *sm = NULL;
                *cs = f->id;
            }
        }
        if (*sm == NULL) {
            const ProtobufCMessageDescriptor *md = f->descriptor;
            ProtobufCMessage *nm = malloc(md->sizeof_message);
            if (!nm) return pj_oom(&c);
            protobuf_c_message_init(md, nm);
            *sm = nm;
        }
        m = *sm;
        p = dot + 1;
    }
}

/* --- message -> JSON ------------------------------------------------------- */

static int pj_is_set(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    const void *slot = CMEMBER(m, f->offset, char);
    if (f->label == PROTOBUF_C_LABEL_REPEATED) return *CMEMBER(m, f->quantifier_offset, size_t) > 0;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *CMEMBER(m, f->quantifier_offset, uint32_t) == f->id;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) return *(ProtobufCMessage *const *)slot != NULL;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) return 1;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(char *const *)slot;
        if (f->label == PROTOBUF_C_LABEL_NONE) return s && *s;
        return s && s != f->default_value;
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        return *CMEMBER(m, f->quantifier_offset, protobuf_c_boolean);
    /* proto3 scalar: set when not the zero value. */
    if (f->type == PROTOBUF_C_TYPE_BYTES) return ((const ProtobufCBinaryData *)slot)->len > 0;
    static const char zero[8];
    return memcmp(slot, zero, pj_elt_size(f->type)) != 0;
}

static json_t *pj_string_json(const char *s) {
    if (!s) s = ""; /* a map entry unpacked without its value */
    json_t *j = json_string(s);
    if (j) return j;
    /* Not UTF-8 (wire strings are not validated): replace non-ASCII bytes. */
    char *t = strdup(s);
    if (!t) return NULL;
    for (char *p = t; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(t);
    free(t);
    return j;
}

static json_t *pj_b64_json(const ProtobufCBinaryData *b) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((b->len + 2) / 3 * 4 + 1);
    if (!out) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < b->len; i += 3) {
        uint32_t v = (uint32_t)b->data[i] << 16;
        if (i + 1 < b->len) v |= (uint32_t)b->data[i + 1] << 8;
        if (i + 2 < b->len) v |= b->data[i + 2];
        out[k++] = tab[(v >> 18) & 63];
        out[k++] = tab[(v >> 12) & 63];
        out[k++] = i + 1 < b->len ? tab[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < b->len ? tab[v & 63] : '=';
    }
    out[k] = '\0';
    json_t *j = json_string(out);
    free(out);
    return j;
}

static json_t *pj_double_json(double d) {
    if (isnan(d)) return json_string("NaN");
    if (isinf(d)) return json_string(d > 0 ? "Infinity" : "-Infinity");
    return json_real(d);
}

static json_t *pj_value_json(const ProtobufCFieldDescriptor *f, const void *slot) {
    char buf[32];
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: return json_integer(*(const int32_t *)slot);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: return json_integer(*(const uint32_t *)slot);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, sizeof buf, "%" PRId64, *(const int64_t *)slot);
        return json_string(buf);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, sizeof buf, "%" PRIu64, *(const uint64_t *)slot);
        return json_string(buf);
    case PROTOBUF_C_TYPE_FLOAT: return pj_double_json(*(const float *)slot);
    case PROTOBUF_C_TYPE_DOUBLE: return pj_double_json(*(const double *)slot);
    case PROTOBUF_C_TYPE_BOOL: return json_boolean(*(const protobuf_c_boolean *)slot);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)slot;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: return pj_string_json(*(char *const *)slot);
    case PROTOBUF_C_TYPE_BYTES: return pj_b64_json(slot);
    case PROTOBUF_C_TYPE_MESSAGE: return e2_pbjson_from_message(*(ProtobufCMessage *const *)slot);
    }
    return NULL;
}

/* Map key as JSON object key text. */
static char *pj_key_text(const ProtobufCFieldDescriptor *kf, const void *slot) {
    if (kf->type == PROTOBUF_C_TYPE_STRING)
        return strdup(*(char *const *)slot ? *(char *const *)slot : "");
    if (kf->type == PROTOBUF_C_TYPE_BOOL)
        return strdup(*(const protobuf_c_boolean *)slot ? "true" : "false");
    json_t *j = pj_value_json(kf, slot);
    if (!j) return NULL;
    char *t = json_is_string(j) ? strdup(json_string_value(j)) : e2_pbjson_format(j, 0);
    json_decref(j);
    return t;
}

static json_t *pj_map_json(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
    json_t *obj = json_object();
    size_t n = *CMEMBER(m, f->quantifier_offset, size_t);
    ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)((const char *)m + f->offset);
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    for (size_t i = 0; obj && i < n; i++) {
        char *key = pj_key_text(&ed->fields[0], CMEMBER(arr[i], ed->fields[0].offset, char));
        json_t *v = pj_value_json(&ed->fields[1], CMEMBER(arr[i], ed->fields[1].offset, char));
        if (!key || !v || json_object_set_new(obj, key, v)) {
            json_decref(obj);
            obj = NULL;
        }
        free(key);
    }
    return obj;
}

json_t *e2_pbjson_from_message(const ProtobufCMessage *msg) {
    json_t *obj = json_object();
    if (!obj || !msg) return obj;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (!pj_is_set(msg, f)) continue;
        json_t *v;
        if (pj_is_map(f)) {
            v = pj_map_json(msg, f);
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            v = json_array();
            size_t n = *CMEMBER(msg, f->quantifier_offset, size_t);
            const char *arr = *CMEMBER(msg, f->offset, char *);
            size_t es = pj_elt_size(f->type);
            for (size_t k = 0; v && k < n; k++)
                if (json_array_append_new(v, pj_value_json(f, arr + k * es))) {
                    json_decref(v);
                    v = NULL;
                }
        } else {
            v = pj_value_json(f, CMEMBER(msg, f->offset, char));
        }
        if (!v || json_object_set_new(obj, f->name, v)) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* --- formatting ------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} pj_buf;

static void pj_put(pj_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void pj_puts(pj_buf *b, const char *s) {
    pj_put(b, s, strlen(s));
}

static void pj_newline(pj_buf *b, int indent, int depth) {
    if (indent <= 0) return;
    pj_puts(b, "\n");
    for (int i = 0; i < indent * depth; i++) pj_put(b, " ", 1);
}

static void pj_quote(pj_buf *b, const char *s, size_t n) {
    pj_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[8];
        if (ch == '"')
            pj_puts(b, "\\\"");
        else if (ch == '\\')
            pj_puts(b, "\\\\");
        else if (ch == '\n')
            pj_puts(b, "\\n");
        else if (ch == '\t')
            pj_puts(b, "\\t");
        else if (ch == '\r')
            pj_puts(b, "\\r");
        else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            pj_puts(b, esc);
        } else
            pj_put(b, (const char *)&s[i], 1);
    }
    pj_put(b, "\"", 1);
}

/* Shortest %.Ng that reads back as the same double. */
static void pj_real(pj_buf *b, double d) {
    char s[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, d);
        if (strtod(s, NULL) == d) break;
    }
    if (!strpbrk(s, ".eE")) strcat(s, ".0");
    pj_puts(b, s);
}

static void pj_emit(pj_buf *b, const json_t *j, int indent, int depth) {
    char num[32];
    switch (json_typeof(j)) {
    case JSON_NULL: pj_puts(b, "null"); break;
    case JSON_TRUE: pj_puts(b, "true"); break;
    case JSON_FALSE: pj_puts(b, "false"); break;
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        pj_puts(b, num);
        break;
    case JSON_REAL: pj_real(b, json_real_value(j)); break;
    case JSON_STRING: pj_quote(b, json_string_value(j), json_string_length(j)); break;
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        pj_puts(b, "[");
        for (size_t i = 0; i < n; i++) {
            if (i) pj_puts(b, indent > 0 ? "," : ", ");
            pj_newline(b, indent, depth + 1);
            pj_emit(b, json_array_get(j, i), indent, depth + 1);
        }
        if (n) pj_newline(b, indent, depth);
        pj_puts(b, "]");
        break;
    }
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        int first = 1;
        pj_puts(b, "{");
        json_object_foreach((json_t *)j, key, v) {
            if (!first) pj_puts(b, indent > 0 ? "," : ", ");
            first = 0;
            pj_newline(b, indent, depth + 1);
            pj_quote(b, key, strlen(key));
            pj_puts(b, ": ");
            pj_emit(b, v, indent, depth + 1);
        }
        if (!first) pj_newline(b, indent, depth);
        pj_puts(b, "}");
        break;
    }
    }
}

char *e2_pbjson_format(const json_t *json, int indent) {
    pj_buf b = { 0 };
    pj_emit(&b, json, indent, 0);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

char *e2_pbjson_to_string(const ProtobufCMessage *msg, int indent) {
    json_t *j = e2_pbjson_from_message(msg);
    if (!j) return NULL;
    char *s = e2_pbjson_format(j, indent);
    json_decref(j);
    return s;
}

ProtobufCMessage *e2_pbjson_copy(const ProtobufCMessage *msg) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) return NULL;
    protobuf_c_message_pack(msg, buf);
    ProtobufCMessage *c = protobuf_c_message_unpack(msg->descriptor, NULL, n, buf);
    free(buf);
    return c;
}
