/* fuzz_spec.c -- the job spec's JSON form (common/spec, pbjson).
 *
 * Input: zero or more leading lines "--set path=value", then spec JSON.
 * A spec that parses is checked against its own round trips: JSON text ->
 * message -> JSON text -> message -> JSON text gives the same text twice,
 * and so does the binary protobuf form (what e2d stores and sends); the
 * overrides, defaults and the validator must return, whatever they say. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pbjson.h"
#include "spec.h"

static void fuzz_fail(const char *what, const char *a, const char *b) {
    fprintf(stderr, "fuzz_spec: %s\n  first:  %s\n  second: %s\n", what, a ? a : "(null)",
            b ? b : "(null)");
    abort();
}

static void round_trips(const E2__V1__JobSpec *s) {
    char err[512];
    char *j1 = e2_spec_to_json(s, 0);
    if (!j1) fuzz_fail("spec -> JSON failed", NULL, NULL);
    E2__V1__JobSpec *s2 = e2_spec_parse(j1, strlen(j1), err, sizeof err);
    if (!s2) fuzz_fail("printed spec does not parse", j1, err);
    char *j2 = e2_spec_to_json(s2, 0);
    if (!j2 || strcmp(j1, j2)) fuzz_fail("JSON round trip changed the spec", j1, j2);

    /* The binary form e2d stores and sends. */
    size_t n = protobuf_c_message_get_packed_size(&s->base);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) abort();
    if (protobuf_c_message_pack(&s->base, buf) != n)
        fuzz_fail("packed size differs from get_packed_size", j1, NULL);
    E2__V1__JobSpec *s3 = e2__v1__job_spec__unpack(NULL, n, buf);
    if (!s3) fuzz_fail("packed spec does not unpack", j1, NULL);
    char *j3 = e2_spec_to_json(s3, 0);
    if (!j3 || strcmp(j1, j3)) fuzz_fail("binary round trip changed the spec", j1, j3);

    /* The copy e2d makes before filling defaults. */
    E2__V1__JobSpec *c = e2_spec_copy(s);
    if (c) {
        char *jc = e2_spec_to_json(c, 2);
        free(jc);
        e2_spec_free(c);
    }
    free(j1);
    free(j2);
    free(j3);
    free(buf);
    e2_spec_free(s2);
    e2__v1__job_spec__free_unpacked(s3, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512];
    char *text = fuzz_strdup(data, size), *json = text;
    /* The --set lines, cut off the text. */
    char *sets[8];
    int nset = 0;
    while (!strncmp(json, "--set ", 6) && nset < 8) {
        char *nl = strchr(json, '\n');
        if (!nl) break;
        *nl = 0;
        sets[nset++] = json + 6;
        json = nl + 1;
    }
    size_t len = size - (size_t)(json - text);
    E2__V1__JobSpec *s = e2_spec_parse(json, len, err, sizeof err);
    if (!s) {
        free(text);
        return 0;
    }
    round_trips(s);
    for (int i = 0; i < nset; i++)
        if (e2_spec_set_arg(s, sets[i], err, sizeof err) < 0) break;
    round_trips(s);
    if (e2_spec_validate(s, err, sizeof err) == 0) {
        E2__V1__JobSpec *full = e2_spec_copy(s);
        if (full && e2_spec_apply_defaults(full, err, sizeof err) == 0) {
            round_trips(full);
            (void)e2_spec_validate(full, err, sizeof err);
            for (size_t i = 0; full->eval && i < full->eval->n_windows; i++)
                (void)e2_spec_eval_stride(full, full->eval->windows[i]);
        }
        if (full) e2_spec_free(full);
    }
    e2_spec_free(s);
    free(text);
    return 0;
}
