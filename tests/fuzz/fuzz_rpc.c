/* fuzz_rpc.c -- decoding the RPC messages (protobuf-c) and what e2d does
 * with a request before it needs its server.
 *
 * The first input byte picks a message: the request, then the response, of
 * each method of e2.v1.Coordinator and e2.v1.WorkerControl (responses are
 * what e2ctl and e2worker decode); the rest is its wire form, unpacked
 * with the same descriptor the RPC layer uses. A message that unpacks must
 * pack to the size it claims and print as JSON
 * (e2ctl --json, e2d's logs) that parses back to the same JSON. A
 * SubmitJobRequest's spec then goes through SubmitJob's checks in order:
 * e2_spec_validate, e2_spec_copy + e2_spec_apply_defaults,
 * e2w_plan_check_job (with and without a GPU memory limit), and the
 * stored form (e2_spec_to_json) must parse back. The other handlers'
 * checks (request_id, job and worker lookups, roles) need a running e2d
 * with its store and are not reached here. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2/v1/coordinator.pb-c.h"
#include "e2/v1/worker.pb-c.h"
#include "pbjson.h"
#include "plan.h"
#include "spec.h"

static const ProtobufCMessageDescriptor *msgs[64];
static size_t n_msgs;

static void setup(void) {
    const ProtobufCServiceDescriptor *svc[] = { &e2__v1__coordinator__descriptor,
                                                &e2__v1__worker_control__descriptor };
    for (size_t s = 0; s < 2; s++)
        for (unsigned m = 0; m < svc[s]->n_methods; m++) {
            msgs[n_msgs++] = svc[s]->methods[m].input;
            msgs[n_msgs++] = svc[s]->methods[m].output;
        }
}

static void fail(const ProtobufCMessageDescriptor *d, const char *what, const char *a,
                 const char *b) {
    fprintf(stderr, "fuzz_rpc: %s: %s\n  first:  %s\n  second: %s\n", d->name, what,
            a ? a : "(null)", b ? b : "(null)");
    abort();
}

static uint8_t *pack(const ProtobufCMessage *m, size_t *n) {
    *n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(*n ? *n : 1);
    if (!buf) abort();
    if (protobuf_c_message_pack(m, buf) != *n)
        fail(m->descriptor, "packed size differs from get_packed_size", NULL, NULL);
    return buf;
}

static void submit_checks(const E2__V1__JobSpec *spec) {
    char err[512];
    if (e2_spec_validate(spec, err, sizeof err) < 0) return;
    E2__V1__JobSpec *full = e2_spec_copy(spec);
    if (!full) return;
    if (e2_spec_apply_defaults(full, err, sizeof err) == 0) {
        (void)e2w_plan_check_job(full, 0, err, sizeof err);
        (void)e2w_plan_check_job(full, 80, err, sizeof err);
    }
    e2_spec_free(full);
    char *stored = e2_spec_to_json(spec, 0);
    if (!stored) fail(spec->base.descriptor, "validated spec does not print", NULL, NULL);
    E2__V1__JobSpec *back = e2_spec_parse(stored, strlen(stored), err, sizeof err);
    if (!back) fail(spec->base.descriptor, "stored spec does not parse back", stored, err);
    e2_spec_free(back);
    free(stored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    if (!n_msgs) setup();
    if (size < 1) return 0;
    const ProtobufCMessageDescriptor *d = msgs[data[0] % n_msgs];
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, size - 1, data + 1);
    if (!m) return 0;
    /* Packing must write the size it claims. (Repacking is not required
     * to give bytes that unpack again: protobuf-c keeps an unknown field
     * whose tag is a non-canonical varint 0 and writes it back as a bare
     * 0 byte, which its own unpack refuses. e2d never repacks a request.) */
    size_t n1;
    uint8_t *b1 = pack(m, &n1);
    ProtobufCMessage *m3 = NULL;
    char *j2 = NULL;

    if (d == &e2__v1__submit_job_request__descriptor) {
        const E2__V1__SubmitJobRequest *req = (const void *)m;
        if (req->spec) submit_checks(req->spec);
    }

    /* Known and reported: a map key that is not UTF-8 (e2d's validation
     * refuses such label keys; a response could carry one) makes the
     * whole message unprintable (NULL). */
    char *j1 = e2_pbjson_to_string(m, 0);
    if (!j1) goto out;
    m3 = e2_pbjson_parse(d, j1, strlen(j1), "msg", err, sizeof err);
    /* Known and reported: an enum number the proto does not name unpacks
     * (protobuf-c keeps it), prints as a number and is refused on parse. */
    if (!m3 && !(strstr(err, ": unknown ") && strstr(err, " value ")))
        fail(d, "printed JSON does not parse back", j1, err);
    if (m3 && (!(j2 = e2_pbjson_to_string(m3, 0)) || strcmp(j1, j2)))
        fail(d, "JSON round trip changed the message", j1, j2);

out:
    free(j1);
    free(j2);
    free(b1);
    protobuf_c_message_free_unpacked(m, NULL);
    if (m3) protobuf_c_message_free_unpacked(m3, NULL);
    return 0;
}
