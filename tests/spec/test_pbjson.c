/* Tests of the generic JSON <-> protobuf-c mapper on test messages that use
 * every field kind (proto2 All, proto3 Plain), so nothing here depends on
 * the job spec. */
#include "check.h"
#include "pbjson.h"
#include "pbtest2.pb-c.h"
#include "pbtest3.pb-c.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

static char err[1024];

static E2test__All *parse_all(const char *text) {
    return (E2test__All *)e2_pbjson_parse(&e2test__all__descriptor, text, strlen(text), "m", err,
                                          sizeof err);
}

static const char *full_all =
    "{\"i32\": -5, \"s32\": -7, \"u32\": 4000000000, \"i64\": \"-9007199254740993\","
    " \"u64\": \"18446744073709551615\", \"s64\": 12, \"f64\": \"77\", \"fl\": 0.5, \"db\": 3e-4,"
    " \"flag\": true, \"text\": \"h\\u00e9llo \\\"q\\\"\\n\", \"blob\": \"AAEC/w==\", \"color\": "
    "\"GREEN\","
    " \"inner\": {\"a\": 1, \"tags\": [\"x\", \"y\"]}, \"inners\": [{\"a\": 2}, {}],"
    " \"many64\": [1, \"2\", -3], \"colors\": [\"RED\", 2], \"byId\": {\"7\": \"seven\", \"-1\": "
    "\"neg\"},"
    " \"by_name\": {\"k\": {\"a\": 9}}, \"choiceInner\": {\"a\": 4}, \"must\": 1}";

static int case_all_fields(void) {
    E2test__All *m = parse_all(full_all);
    if (!m) fprintf(stderr, "%s\n", err);
    CHECK(m);
    CHECK(m->has_i32 && m->i32 == -5);
    CHECK(m->has_s32 && m->s32 == -7);
    CHECK(m->has_u32 && m->u32 == 4000000000u);
    CHECK(m->has_i64 && m->i64 == -9007199254740993LL);
    CHECK(m->has_u64 && m->u64 == UINT64_MAX);
    CHECK(m->has_s64 && m->s64 == 12);
    CHECK(m->has_f64 && m->f64 == 77);
    CHECK(m->has_fl && m->fl == 0.5f);
    CHECK(m->has_db && m->db == 3e-4);
    CHECK(m->has_flag && m->flag);
    CHECK(strcmp(m->text, "h\xc3\xa9llo \"q\"\n") == 0);
    CHECK(m->has_blob && m->blob.len == 4 && m->blob.data[0] == 0 && m->blob.data[3] == 0xff);
    CHECK(m->has_color && m->color == E2TEST__COLOR__GREEN);
    CHECK(m->inner && m->inner->a == 1 && m->inner->n_tags == 2 &&
          strcmp(m->inner->tags[1], "y") == 0);
    CHECK(m->n_inners == 2 && m->inners[0]->a == 2 && !m->inners[1]->has_a);
    CHECK(m->n_many64 == 3 && m->many64[1] == 2 && m->many64[2] == -3);
    CHECK(m->n_colors == 2 && m->colors[1] == E2TEST__COLOR__GREEN);
    CHECK(m->n_by_id == 2);
    CHECK(m->n_by_name == 1 && strcmp(m->by_name[0]->key, "k") == 0 &&
          m->by_name[0]->value->a == 9);
    CHECK(m->choice_case == E2TEST__ALL__CHOICE_CHOICE_INNER && m->choice_inner->a == 4);
    CHECK(strcmp(m->with_default, "dflt") == 0);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

/* JSON -> message -> JSON -> message -> JSON: the two texts agree, and the
 * first JSON equals the second (names normalised to proto names). */
static int case_round_trip(void) {
    E2test__All *m = parse_all(full_all);
    CHECK(m);
    char *t1 = e2_pbjson_to_string(&m->base, 2);
    CHECK(t1);
    E2test__All *m2 = parse_all(t1);
    if (!m2) fprintf(stderr, "%s\n%s\n", t1, err);
    CHECK(m2);
    char *t2 = e2_pbjson_to_string(&m2->base, 0);
    char *t1flat = e2_pbjson_to_string(&m->base, 0);
    CHECK(t2 && t1flat && strcmp(t1flat, t2) == 0);
    /* Wire encodings are identical too. */
    size_t n1 = protobuf_c_message_get_packed_size(&m->base),
           n2 = protobuf_c_message_get_packed_size(&m2->base);
    CHECK(n1 == n2);
    uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
    protobuf_c_message_pack(&m->base, b1);
    protobuf_c_message_pack(&m2->base, b2);
    CHECK(memcmp(b1, b2, n1) == 0);
    json_t *j = e2_pbjson_from_message(&m->base);
    CHECK(json_is_string(json_object_get(j, "u64")));
    CHECK(strcmp(json_string_value(json_object_get(j, "u64")), "18446744073709551615") == 0);
    CHECK(json_object_get(j, "by_id") && json_object_get(j, "byId") == NULL);
    CHECK(strcmp(json_string_value(json_object_get(j, "blob")), "AAEC/w==") == 0);
    CHECK(json_object_get(j, "choice_text") == NULL);
    CHECK(json_object_get(j, "with_default") == NULL);
    CHECK(json_real_value(json_object_get(j, "db")) == 3e-4);
    json_decref(j);
    CHECK(strstr(t1flat, "\"db\": 0.0003") != NULL);
    free(b1);
    free(b2);
    free(t1);
    free(t2);
    free(t1flat);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    protobuf_c_message_free_unpacked(&m2->base, NULL);
    return 0;
}

static int case_only_set_fields(void) {
    E2test__All *m = parse_all("{\"must\": 0, \"i32\": 0, \"flag\": false}");
    CHECK(m);
    char *t = e2_pbjson_to_string(&m->base, 0);
    CHECK(t && strcmp(t, "{\"i32\": 0, \"flag\": false, \"must\": 0}") == 0);
    free(t);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

static int case_proto3(void) {
    const char *text = "{\"count\": 0, \"label\": \"x\", \"ratio\": 0, \"on\": true, \"ids\": [3]}";
    E2test3__Plain *p = (E2test3__Plain *)e2_pbjson_parse(&e2test3__plain__descriptor, text,
                                                          strlen(text), "p", err, sizeof err);
    CHECK(p);
    CHECK(p->count == 0 && strcmp(p->label, "x") == 0 && p->on && p->n_ids == 1 && p->ids[0] == 3);
    char *t = e2_pbjson_to_string(&p->base, 0);
    /* Zero values carry no presence in proto3 and are not emitted. */
    CHECK(t && strcmp(t, "{\"label\": \"x\", \"on\": true, \"ids\": [3]}") == 0);
    free(t);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return 0;
}

static int case_nonfinite(void) {
    E2test__All *m = parse_all("{\"must\": 1, \"db\": \"-Infinity\", \"fl\": \"NaN\"}");
    CHECK(m && isinf(m->db) && m->db < 0 && isnan(m->fl));
    json_t *j = e2_pbjson_from_message(&m->base);
    CHECK(strcmp(json_string_value(json_object_get(j, "db")), "-Infinity") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "fl")), "NaN") == 0);
    json_decref(j);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

/* Each bad input gives one line naming the path and the problem. */
static int case_type_errors(void) {
    static const struct {
        const char *json, *want;
    } t[] = {
        { "{\"i32\": \"5\"}", "m.i32: expected an integer, got string" },
        { "{\"i32\": 2147483648}", "m.i32: 2147483648 is out of range for int32" },
        { "{\"u32\": -1}", "m.u32: -1 is negative" },
        { "{\"u32\": 1.5}", "m.u32: expected a non-negative integer, got 1.5" },
        { "{\"u64\": \"-3\"}",
          "m.u64: expected a non-negative integer or a decimal string, got \"-3\"" },
        { "{\"i64\": \"12a\"}", "m.i64: expected an integer or a decimal string" },
        { "{\"i64\": \"99999999999999999999\"}", "m.i64: 99999999999999999999 is out of range" },
        { "{\"db\": \"3e-4\"}", "m.db: expected a number, got string" },
        { "{\"fl\": 1e300}", "m.fl: 1e+300 is out of range for float" },
        { "{\"flag\": 1}", "m.flag: expected true or false, got 1" },
        { "{\"text\": 3}", "m.text: expected a string, got number" },
        { "{\"text\": [\"a\"]}", "m.text: expected a string, got array" },
        { "{\"blob\": \"a$==\"}", "m.blob: invalid base64 character '$'" },
        { "{\"color\": \"BLUE\"}", "m.color: unknown Color value \"BLUE\" (expected one of: "
                                   "COLOR_UNSPECIFIED, RED, GREEN)" },
        { "{\"color\": 9}", "m.color: unknown Color value 9" },
        { "{\"inner\": 3}", "m.inner: expected an object, got number" },
        { "{\"inner\": {\"tags\": [\"a\", 1]}}", "m.inner.tags[1]: expected a string, got number" },
        { "{\"inners\": {}}", "m.inners: expected an array, got object" },
        { "{\"many64\": [1, null]}", "m.many64[1]: null is not allowed" },
        { "{\"by_id\": {\"x\": \"v\"}}", "m.by_id.x: expected an integer, got \"x\"" },
        { "{\"by_id\": []}", "m.by_id: expected an object (map), got array" },
        { "{\"by_name\": {\"k\": {\"b\": 1}}}", "m.by_name.k.b: unknown field" },
        { "{\"choice_text\": \"a\", \"choiceInner\": {}}",
          "m.choice_inner: only one of choice_text and choice_inner" },
        { "{\"i32\": 1, \"i_32\": 2}", "m.i_32: unknown field (did you mean i32?)" },
        { "{\"u64\": 1, \"U64\": 2}", "m.U64: unknown field (did you mean u64?)" },
        { "{\"withDefault\": \"a\", \"with_default\": \"b\"}", "m.with_default: set twice" },
        { "{\"zzzzzz\": 1}", "m.zzzzzz: unknown field of e2test.All" },
        { "{\"text\": \"a\\u0000b\"}", "invalid JSON" },
        { "{\"i32\": 1, \"i32\": 2}", "invalid JSON at line 1" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        err[0] = '\0';
        E2test__All *m = parse_all(t[i].json);
        if (m) fprintf(stderr, "accepted: %s\n", t[i].json);
        CHECK(m == NULL);
        CHECK_MSG(err, t[i].want);
    }
    return 0;
}

static int case_accepts(void) {
    static const char *ok[] = {
        "{\"must\": 1, \"u32\": 4.0}",      "{\"must\": 1, \"i64\": 5}",
        "{\"must\": 1, \"db\": 7}",         "{\"must\": 1, \"inner\": null}",
        "{\"must\": 1, \"blob\": \"-_8\"}", "{\"must\": 1, \"color\": 1}",
        "{\"must\": 1, \"byId\": {}}",      "{}",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        E2test__All *m = parse_all(ok[i]);
        if (!m) fprintf(stderr, "%s: %s\n", ok[i], err);
        CHECK(m);
        protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    return 0;
}

static int case_set_path(void) {
    E2test__All *m = parse_all("{\"must\": 1, \"byId\": {\"1\": \"one\"}, \"choice_text\": \"t\"}");
    CHECK(m);
    CHECK(e2_pbjson_set(&m->base, "inner.a", "12", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "inner.tags", "p,q,r", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "many64", "-1,18", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "flag", "true", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "db", "2.5e-3", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "color", "RED", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "byId.2", "two", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "choiceInner.a", "3", "m", err, sizeof err) == 0);
    CHECK(e2_pbjson_set(&m->base, "text", "a,b", "m", err, sizeof err) == 0);
    CHECK(m->inner->a == 12 && m->inner->n_tags == 3 && strcmp(m->inner->tags[2], "r") == 0);
    CHECK(m->n_many64 == 2 && m->many64[0] == -1 && m->many64[1] == 18);
    CHECK(m->flag && m->db == 2.5e-3 && m->color == E2TEST__COLOR__RED);
    CHECK(m->n_by_id == 2);
    CHECK(m->choice_case == E2TEST__ALL__CHOICE_CHOICE_INNER && m->choice_inner->a == 3);
    CHECK(strcmp(m->text, "a,b") == 0);
    CHECK(e2_pbjson_set(&m->base, "many64", "", "m", err, sizeof err) == 0);
    CHECK(m->n_many64 == 0);
    CHECK(e2_pbjson_set(&m->base, "inner.tags", "[\"a,b\", \"c\"]", "m", err, sizeof err) == 0);
    CHECK(m->inner->n_tags == 2 && strcmp(m->inner->tags[0], "a,b") == 0);
    CHECK(e2_pbjson_set(&m->base, "inners", "[{\"a\": 5}]", "m", err, sizeof err) == 0);
    CHECK(m->n_inners == 1 && m->inners[0]->a == 5);
    CHECK(e2_pbjson_set(&m->base, "inner", "null", "m", err, sizeof err) == 0);
    CHECK(m->inner == NULL);
    CHECK(e2_pbjson_set(&m->base, "db", "x1", "m", err, sizeof err) != 0);
    CHECK_MSG(err, "m.db: expected a number, got \"x1\"");
    CHECK(e2_pbjson_set(&m->base, "inner.b", "1", "m", err, sizeof err) != 0);
    CHECK_MSG(err, "m.inner.b: unknown field (did you mean a?)");
    CHECK(e2_pbjson_set(&m->base, "i32.x", "1", "m", err, sizeof err) != 0);
    CHECK_MSG(err, "m.i32: is not a message");
    CHECK(e2_pbjson_set(&m->base, "flag", "maybe", "m", err, sizeof err) != 0);
    CHECK_MSG(err, "m.flag: expected true or false");
    CHECK(e2_pbjson_set(&m->base, "inner..a", "1", "m", err, sizeof err) != 0);
    CHECK_MSG(err, "invalid field path");
    /* A failed set leaves the old value. */
    CHECK(m->db == 2.5e-3 && m->flag);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

static int case_copy(void) {
    E2test__All *m = parse_all(full_all);
    CHECK(m);
    E2test__All *c = (E2test__All *)e2_pbjson_copy(&m->base);
    CHECK(c);
    char *a = e2_pbjson_to_string(&m->base, 0), *b = e2_pbjson_to_string(&c->base, 0);
    CHECK(strcmp(a, b) == 0);
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    protobuf_c_message_free_unpacked(&c->base, NULL);
    return 0;
}

static int case_format(void) {
    json_t *j = json_pack("{s:[f,f,i],s:s,s:{}}", "x", 0.1, 1.0, 3, "s", "\x01\"", "o");
    char *t = e2_pbjson_format(j, 0);
    CHECK(t && strcmp(t, "{\"x\": [0.1, 1.0, 3], \"s\": \"\\u0001\\\"\", \"o\": {}}") == 0);
    free(t);
    t = e2_pbjson_format(j, 2);
    CHECK(t && strcmp(t, "{\n  \"x\": [\n    0.1,\n    1.0,\n    3\n  ],\n  \"s\": "
                         "\"\\u0001\\\"\",\n  \"o\": {}\n}") == 0);
    json_t *back = json_loads(t, 0, NULL);
    CHECK(back && json_equal(back, j));
    json_decref(back);
    free(t);
    json_decref(j);
    return 0;
}

/* Deterministic xorshift for the fuzz cases. */
static uint64_t fz_state = 0x9E3779B97F4A7C15ull;
static uint64_t fz_next(void) {
    fz_state ^= fz_state << 13;
    fz_state ^= fz_state >> 7;
    fz_state ^= fz_state << 17;
    return fz_state;
}

static json_t *fz_value(int depth) {
    static const char *keys[] = { "i32",         "u64",    "db",    "fl",      "flag",
                                  "text",        "blob",   "color", "inner",   "inners",
                                  "many64",      "colors", "byId",  "by_name", "choice_text",
                                  "choiceInner", "a",      "tags",  "must",    "bogus" };
    switch (fz_next() % (depth > 3 ? 6 : 8)) {
    case 0: return json_integer((json_int_t)fz_next() >> (fz_next() % 64));
    case 1: return json_real((double)(int64_t)fz_next() / (double)(1 + fz_next() % 1000));
    case 2: {
        static const char *s[] = { "",     "NaN", "RED", "-1",      "18446744073709551616",
                                   "AAEC", "x y", "1e5", "Infinity" };
        return json_string(s[fz_next() % 9]);
    }
    case 3: return json_boolean(fz_next() & 1);
    case 4: return json_null();
    case 5: return json_integer(-(json_int_t)(fz_next() % 5));
    case 6: {
        json_t *a = json_array();
        for (int i = 0, n = (int)(fz_next() % 4); i < n; i++)
            json_array_append_new(a, fz_value(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (int i = 0, n = (int)(fz_next() % 5); i < n; i++)
            json_object_set_new(o, keys[fz_next() % 20], fz_value(depth + 1));
        return o;
    }
    }
}

/* Random JSON trees shaped like the message, and random byte edits of a
 * valid text: every outcome is a message or one error line, never a crash
 * or leak (run under ASan). */
static int case_fuzz(void) {
    for (int it = 0; it < 3000; it++) {
        json_t *o = json_object();
        for (int i = 0, n = (int)(fz_next() % 6); i < n; i++) {
            json_t *v = fz_value(0);
            json_object_set_new(o,
                                (const char *[]){ "i32", "inner", "inners", "byId", "by_name",
                                                  "many64", "colors", "choiceInner", "choice_text",
                                                  "blob", "db", "u64" }[fz_next() % 12],
                                v);
        }
        char *text = e2_pbjson_format(o, 0);
        err[0] = '\0';
        E2test__All *m = parse_all(text);
        CHECK(m != NULL || err[0] != '\0');
        if (m) {
            char *back = e2_pbjson_to_string(&m->base, 0);
            CHECK(back);
            E2test__All *m2 = parse_all(back);
            CHECK(m2);
            protobuf_c_message_free_unpacked(&m2->base, NULL);
            free(back);
            protobuf_c_message_free_unpacked(&m->base, NULL);
        }
        free(text);
        json_decref(o);
    }
    size_t n = strlen(full_all);
    char *buf = malloc(n + 1);
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, full_all, n + 1);
        for (int k = 0, edits = 1 + (int)(fz_next() % 4); k < edits; k++)
            buf[fz_next() % n] = "{}[]\",:0a-.\\ e"[fz_next() % 15];
        err[0] = '\0';
        E2test__All *m = parse_all(buf);
        CHECK(m != NULL || err[0] != '\0');
        if (m) protobuf_c_message_free_unpacked(&m->base, NULL);
    }
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        { "all_fields", case_all_fields },
        { "round_trip", case_round_trip },
        { "only_set_fields", case_only_set_fields },
        { "proto3", case_proto3 },
        { "nonfinite", case_nonfinite },
        { "type_errors", case_type_errors },
        { "accepts", case_accepts },
        { "set_path", case_set_path },
        { "copy", case_copy },
        { "format", case_format },
        { "fuzz", case_fuzz },
        { NULL, NULL },
    };
    return check_main(cases, argc, argv);
}
