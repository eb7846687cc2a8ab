/* pbjson: JSON <-> protobuf-c messages, driven only by the message
 * descriptor, so it works for any message protoc-c generated (the job spec,
 * API requests and responses printed by `e2ctl --json`, stored specs).
 *
 * The mapping follows protobuf's proto3 JSON conventions:
 *   - a field is named by its original proto name (`g_max`) or its
 *     lowerCamelCase JSON name (`gMax`); both spellings of one field in one
 *     object is an error;
 *   - an unknown field is an error naming its full path
 *     (`spec.augment.gmax: unknown field (did you mean g_max?)`);
 *   - int64/uint64/sint64/fixed64 are numbers or decimal strings; 32-bit
 *     integers are numbers only; a real with an integral value (`4.0`) is
 *     accepted for an integer; a uint64 above 2^63-1 must be a string
 *     (jansson's integers are signed 64-bit);
 *   - float/double are numbers, or the strings "NaN", "Infinity",
 *     "-Infinity";
 *   - enums by value name, or by number;
 *   - bools are true/false; strings are JSON strings without NUL; bytes
 *     are base64 (standard or URL-safe alphabet, padding optional);
 *   - repeated fields are arrays; map<K,V> fields are objects (protoc's
 *     map entries: a repeated `<Field>Entry` message with fields key = 1
 *     and value = 2);
 *   - null means "not set".
 *
 * Output (message -> JSON) emits only fields that are set (proto2 `has_` /
 * non-NULL, proto3 non-default, repeated non-empty, the chosen oneof member),
 * named by their ORIGINAL proto names (the names job.proto documents and the
 * error messages use); 64-bit integers are strings and non-finite doubles
 * are "NaN"/"Infinity"/"-Infinity", as in proto3 JSON.
 *
 * Messages built here are allocated with malloc and are freed with
 * protobuf_c_message_free_unpacked(msg, NULL), like unpacked messages.
 * Errors return E2_ERR (base.h's error convention: bad input or out of
 * memory) and write one line into the caller's buffer; nothing is printed. */
#ifndef E2_PBJSON_H
#define E2_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Parses text into a new message of `desc`. `root` names the message in
 * error paths ("spec" gives "spec.train.lr: ..."). Malformed JSON is
 * reported with its line and column. */
ProtobufCMessage *e2_pbjson_parse(const ProtobufCMessageDescriptor *desc, const char *text,
                                  size_t len, const char *root, char *err, size_t errlen);

/* Merges a JSON object into an initialised message: fields present in
 * `json` replace those in `msg` (repeated and map fields are replaced as a
 * whole). On error, `msg` stays valid (freeable) but may be partly merged. */
int e2_pbjson_merge(ProtobufCMessage *msg, const json_t *json, const char *root, char *err,
                    size_t errlen);

/* Sets one field by dotted path ("train.lr", "labels.team", "gMax") from
 * its command-line text, creating the sub-messages on the way: numbers and
 * enum names as written, bools as true/false/1/0, strings verbatim,
 * repeated fields as comma-separated lists (an empty value clears them) or
 * as a JSON array when the value starts with '[', a map entry as
 * "<map>.<key>", a message (or map, or repeated message) as JSON text;
 * "null" for a message clears it. */
int e2_pbjson_set(ProtobufCMessage *msg, const char *path, const char *value, const char *root,
                  char *err, size_t errlen);

/* Message -> new JSON object (NULL only when out of memory). */
json_t *e2_pbjson_from_message(const ProtobufCMessage *msg);

/* Message -> malloc'd JSON text, indented by `indent` spaces per level
 * (0: one line), doubles in their shortest round-trip form. */
char *e2_pbjson_to_string(const ProtobufCMessage *msg, int indent);

/* Any JSON value -> malloc'd text, formatted like e2_pbjson_to_string
 * (object keys in insertion order). NULL only when out of memory. */
char *e2_pbjson_format(const json_t *json, int indent);

/* A new heap copy of `msg` (NULL when out of memory, or when a proto2
 * required field is unset). */
ProtobufCMessage *e2_pbjson_copy(const ProtobufCMessage *msg);

#endif
