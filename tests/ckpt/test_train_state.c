/* test_train_state.c -- the training-state container: round trip of f32,
 * u64 and byte blobs; corruption (a flipped byte anywhere, truncation, bad
 * magic) detected on open; misuse reported by name. */
#include "ckpt_test.h"
#include "train_state.h"

#include <sys/stat.h>

static char err[E2_ERRLEN];

enum { NM = 1000 };
static float g_m[NM], g_v[NM];
static const unsigned char g_rng[13] = "rng-state-13";

static int write_sample(const char *path) {
    uint64_t s = 3;
    for (int i = 0; i < NM; i++) g_m[i] = ckpt_randf(&s), g_v[i] = ckpt_randf(&s);
    uint64_t cursor[3] = { 7, 1ull << 40, 99 };
    e2w_ts_writer *w = e2w_ts_writer_new();
    CHECK(w != NULL);
    CHECK_OK(e2w_ts_put(w, "adamw.m", E2W_TS_F32, g_m, NM, err, sizeof err));
    CHECK_OK(e2w_ts_put(w, "adamw.v", E2W_TS_F32, g_v, NM, err, sizeof err));
    CHECK_OK(e2w_ts_put_u64(w, "step", 1234, err, sizeof err));
    CHECK_OK(e2w_ts_put(w, "data.cursor", E2W_TS_U64, cursor, 3, err, sizeof err));
    CHECK_OK(e2w_ts_put(w, "rng", E2W_TS_BYTES, g_rng, 13, err, sizeof err));
    CHECK_OK(e2w_ts_put(w, "empty", E2W_TS_F32, NULL, 0, err, sizeof err));
    int rc = e2w_ts_write(w, path, err, sizeof err);
    e2w_ts_writer_free(w);
    CHECK_OK(rc);
    return 0;
}

static int test_ts_roundtrip(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/state.bin", ckpt_scratch("ts_rt"));
    CHECK(write_sample(path) == 0);
    e2w_ts *ts;
    CHECK_OK(e2w_ts_open(&ts, path, err, sizeof err));
    CHECK(e2w_ts_count(ts) == 6);
    e2w_ts_type ty;
    uint64_t n;
    CHECK(strcmp(e2w_ts_entry(ts, 2, &ty, &n), "step") == 0);
    CHECK(ty == E2W_TS_U64 && n == 1);
    CHECK(e2w_ts_entry(ts, 6, NULL, NULL) == NULL);
    uint64_t step = 0, cursor[3];
    CHECK_OK(e2w_ts_get_u64(ts, "step", &step, err, sizeof err));
    CHECK(step == 1234);
    CHECK_OK(e2w_ts_read(ts, "data.cursor", E2W_TS_U64, cursor, 3, err, sizeof err));
    CHECK(cursor[0] == 7 && cursor[1] == 1ull << 40 && cursor[2] == 99);
    const void *p;
    CHECK_OK(e2w_ts_get(ts, "adamw.v", E2W_TS_F32, &p, &n, err, sizeof err));
    CHECK(n == NM && (uintptr_t)p % 8 == 0 && memcmp(p, g_v, sizeof g_v) == 0);
    static float m[NM];
    CHECK_OK(e2w_ts_read(ts, "adamw.m", E2W_TS_F32, m, NM, err, sizeof err));
    CHECK(memcmp(m, g_m, sizeof g_m) == 0);
    unsigned char rng[13];
    CHECK_OK(e2w_ts_read(ts, "rng", E2W_TS_BYTES, rng, 13, err, sizeof err));
    CHECK(memcmp(rng, g_rng, 13) == 0);
    CHECK_OK(e2w_ts_get(ts, "empty", E2W_TS_F32, &p, &n, err, sizeof err));
    CHECK(n == 0);
    /* Misuse names the blob. */
    CHECK_ERR(e2w_ts_read(ts, "adamw.m", E2W_TS_F32, m, NM - 1, err, sizeof err),
              "blob adamw.m has 1000 elements, expected 999");
    CHECK_ERR(e2w_ts_get_u64(ts, "rng", &step, err, sizeof err), "blob rng is bytes, expected u64");
    CHECK_ERR(e2w_ts_get(ts, "nope", E2W_TS_F32, &p, &n, err, sizeof err), "no blob named nope");
    e2w_ts_close(ts);
    return 0;
}

/* Flips one byte at each of several offsets (header, table, name, data,
 * checksum): every copy is rejected. */
static int test_ts_detects_corruption(void) {
    char path[512], bad[600];
    const char *dir = ckpt_scratch("ts_bad");
    snprintf(path, sizeof path, "%s/state.bin", dir);
    snprintf(bad, sizeof bad, "%s/corrupt.bin", dir);
    CHECK(write_sample(path) == 0);
    char *buf;
    size_t len;
    CHECK_OK(e2_read_file(path, 1 << 20, &buf, &len, err, sizeof err));
    size_t offs[] = { 12, 30, 50, 400, len / 2, len - 40, len - 1 };
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        buf[offs[i]] ^= 0x10;
        if (e2_write_file_atomic(bad, buf, len, err, sizeof err) < 0) {
            free(buf);
            return 1;
        }
        buf[offs[i]] ^= 0x10;
        e2w_ts *ts = NULL;
        err[0] = '\0';
        int rc = e2w_ts_open(&ts, bad, err, sizeof err);
        if (rc >= 0 || ts != NULL || strstr(err, "corrupt.bin") == NULL ||
            (strstr(err, "checksum mismatch") == NULL && strstr(err, "version") == NULL)) {
            fprintf(stderr, "flip at %zu: rc %d err \"%s\"\n", offs[i], rc, err);
            free(buf);
            return 1;
        }
    }
    free(buf);
    return 0;
}

static int test_ts_detects_truncation(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/state.bin", ckpt_scratch("ts_trunc"));
    CHECK(write_sample(path) == 0);
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK(truncate(path, sb.st_size - 100) == 0);
    e2w_ts *ts;
    CHECK_ERR(e2w_ts_open(&ts, path, err, sizeof err), "truncated or corrupt");
    CHECK(truncate(path, 20) == 0);
    CHECK_ERR(e2w_ts_open(&ts, path, err, sizeof err), "too short");
    return 0;
}

static int test_ts_rejects_foreign_file(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/x.bin", ckpt_scratch("ts_foreign"));
    char junk[100];
    memset(junk, 'x', sizeof junk);
    CHECK_OK(e2_write_file_atomic(path, junk, sizeof junk, err, sizeof err));
    e2w_ts *ts;
    CHECK_ERR(e2w_ts_open(&ts, path, err, sizeof err), "not a train-state file");
    CHECK_ERR(e2w_ts_open(&ts, "/nonexistent-e2/state.bin", err, sizeof err), "No such file");
    return 0;
}

static int test_ts_put_misuse(void) {
    e2w_ts_writer *w = e2w_ts_writer_new();
    CHECK(w != NULL);
    float x = 1;
    int rc1 = e2w_ts_put(w, "a", E2W_TS_F32, &x, 1, err, sizeof err);
    int rc2 = e2w_ts_put_u64(w, "a", 5, err, sizeof err);
    char dup[E2_ERRLEN];
    memcpy(dup, err, sizeof dup);
    int rc3 = e2w_ts_put(w, "", E2W_TS_F32, &x, 1, err, sizeof err);
    char empty[E2_ERRLEN];
    memcpy(empty, err, sizeof empty);
    int rc4 = e2w_ts_put(w, "b", E2W_TS_F32, NULL, 3, err, sizeof err);
    e2w_ts_writer_free(w);
    CHECK(rc1 == 0 && rc2 < 0 && rc3 < 0 && rc4 < 0);
    CHECK(strstr(dup, "blob a put twice") != NULL);
    CHECK(strstr(empty, "name must be 1..255 bytes") != NULL);
    CHECK(strstr(err, "blob b: no data") != NULL);
    return 0;
}

static const ckpt_case cases[] = {
    { "ts_roundtrip", test_ts_roundtrip },
    { "ts_detects_corruption", test_ts_detects_corruption },
    { "ts_detects_truncation", test_ts_detects_truncation },
    { "ts_rejects_foreign_file", test_ts_rejects_foreign_file },
    { "ts_put_misuse", test_ts_put_misuse },
};

int main(int argc, char **argv) {
    return ckpt_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
