/* test_base.c -- tests of e2_base (common/base): SHA-256 against the FIPS
 * 180-4 / NIST example vectors, atomic writes, mkdir -p, bounded reads and
 * the one-line error convention. Run as `test_base <case>`; each case is one
 * ctest test. */
#include "base.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                                \
        }                                                                            \
    } while (0)

/* A fresh scratch directory under the test's working directory; removed
 * when the case passes, kept for inspection when it fails. */
static char g_dir[256];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int make_scratch(const char *name) {
    char err[E2_ERRLEN];
    snprintf(g_dir, sizeof g_dir, "base_scratch_%s_%ld", name, (long)getpid());
    return e2_mkdir_p(g_dir, 0755, err, sizeof err);
}

static int hex_of(const void *data, size_t len, const char *want) {
    uint8_t d[E2_SHA256_LEN];
    char hex[E2_SHA256_HEXLEN];
    e2_sha256(data, len, d);
    e2_sha256_hex(d, hex);
    if (strcmp(hex, want) != 0) {
        fprintf(stderr, "sha256 len %zu: got %s want %s\n", len, hex, want);
        return 1;
    }
    return 0;
}

static int test_sha256_vectors(void) {
    CHECK(hex_of("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    CHECK(hex_of("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") ==
          0);
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK(hex_of(m2, strlen(m2),
                 "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    const char *m4 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
                     "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
    CHECK(hex_of(m4, strlen(m4),
                 "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1") == 0);
    /* One million 'a', hashed in uneven pieces to exercise buffering. */
    char *a = malloc(1000000);
    CHECK(a != NULL);
    memset(a, 'a', 1000000);
    e2_sha256_ctx c;
    e2_sha256_init(&c);
    size_t off = 0, step = 1;
    while (off < 1000000) {
        size_t k = step < 1000000 - off ? step : 1000000 - off;
        e2_sha256_update(&c, a + off, k);
        off += k;
        step = step * 3 % 997 + 1;
    }
    uint8_t d[E2_SHA256_LEN];
    char hex[E2_SHA256_HEXLEN];
    e2_sha256_final(&c, d);
    e2_sha256_hex(d, hex);
    free(a);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
    return 0;
}

/* Lengths around the block and padding boundaries, streamed in two
 * pieces at every split point; digests from Python's hashlib. */
static int test_sha256_lengths(void) {
    static const struct {
        size_t n;
        const char *hex;
    } v[] = {
        { 55, "8af594de0e003fdee5c8bb088216c824349b4137070f559574f4a4bddd27b714" },
        { 56, "db81bc2bfd43620591df192139062da77d4c376f1888ea3d2190bd07c8d901f9" },
        { 63, "bd535b38bf0d0d1a09d370b7e34b2696cea3767801a45d5611a4aaa6954e8527" },
        { 64, "292be91abe8c0909fe3d26575af5755eee74d23816dc68c3ba41765136967654" },
        { 65, "ba65aedf7884642499a59ae124894611d986cf429e69f569488048af3a99e25a" },
        { 119, "d367ab298e74477421127b0b448667c37c006c636f5738f081c39388756e5fad" },
        { 120, "be7beb9c82089eb08da8fe6eb30c13b9d56869014e228a8c3eb0fdfe832efab2" },
        { 127, "770cba7b80c7615a327db5812ccd3f80895d801b587448fcd0b2c1a10f5c88a3" },
        { 128, "cb5311e1d7aa8e11d6af7081f3ffc3e4efa008c7483a1a791fe170bf37546ba7" },
        { 1000, "59425e4412e296fc74736673ce067027f384203f59c0d2c3e6be7b13347b3ffc" },
        { 4097, "cccd1be35d39d5af1686e69fcdcab1831ffbecbd9e95c9205326ebfb16dbe2c1" },
    };
    static uint8_t buf[4097];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7 % 251);
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        CHECK(hex_of(buf, v[k].n, v[k].hex) == 0);
        for (size_t split = 0; split <= v[k].n && v[k].n <= 128; split++) {
            e2_sha256_ctx c;
            uint8_t d[E2_SHA256_LEN];
            char hex[E2_SHA256_HEXLEN];
            e2_sha256_init(&c);
            e2_sha256_update(&c, buf, split);
            e2_sha256_update(&c, buf + split, v[k].n - split);
            e2_sha256_final(&c, d);
            e2_sha256_hex(d, hex);
            CHECK(strcmp(hex, v[k].hex) == 0);
        }
    }
    return 0;
}

static int test_sha256_file(void) {
    char err[E2_ERRLEN], path[512];
    CHECK(make_scratch("sha") == 0);
    snprintf(path, sizeof path, "%s/f", g_dir);
    CHECK(e2_write_file_atomic(path, "abc", 3, err, sizeof err) == 0);
    uint8_t d[E2_SHA256_LEN];
    char hex[E2_SHA256_HEXLEN];
    uint64_t size = 0;
    CHECK(e2_sha256_file(path, d, &size, err, sizeof err) == 0);
    e2_sha256_hex(d, hex);
    CHECK(size == 3);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    snprintf(path, sizeof path, "%s/missing", g_dir);
    CHECK(e2_sha256_file(path, d, NULL, err, sizeof err) == E2_NOTFOUND);
    CHECK(strstr(err, "missing") != NULL);
    return 0;
}

static int test_atomic_write_replaces(void) {
    char err[E2_ERRLEN], path[512];
    CHECK(make_scratch("atomic") == 0);
    snprintf(path, sizeof path, "%s/state.json", g_dir);
    CHECK(e2_write_file_atomic(path, "old", 3, err, sizeof err) == 0);
    CHECK(e2_write_file_atomic(path, "newer", 5, err, sizeof err) == 0);
    char *buf;
    size_t len;
    CHECK(e2_read_file(path, 100, &buf, &len, err, sizeof err) == 0);
    CHECK(len == 5 && memcmp(buf, "newer", 6) == 0); /* NUL-terminated */
    free(buf);
    /* No temporary file is left behind. */
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    return 0;
}

static int test_afile_abort_keeps_old(void) {
    char err[E2_ERRLEN], path[512];
    CHECK(make_scratch("abort") == 0);
    snprintf(path, sizeof path, "%s/f", g_dir);
    CHECK(e2_write_file_atomic(path, "old", 3, err, sizeof err) == 0);
    e2_afile f;
    CHECK(e2_afile_open(&f, path, err, sizeof err) == 0);
    CHECK(e2_afile_write(&f, "partial", 7, err, sizeof err) == 0);
    CHECK(e2_afile_pad(&f, 100, err, sizeof err) == 0);
    CHECK(f.written == 107);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) == 0);
    e2_afile_abort(&f);
    CHECK(access(tmp, F_OK) != 0);
    char *buf;
    size_t len;
    CHECK(e2_read_file(path, 100, &buf, &len, err, sizeof err) == 0);
    CHECK(len == 3 && memcmp(buf, "old", 3) == 0);
    free(buf);
    return 0;
}

static int test_atomic_write_bad_dir_fails(void) {
    char err[E2_ERRLEN] = "";
    CHECK(e2_write_file_atomic("/nonexistent-e2-dir/x", "a", 1, err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent-e2-dir/x") != NULL);
    return 0;
}

static int test_mkdir_p(void) {
    char err[E2_ERRLEN], path[512];
    CHECK(make_scratch("mkdir") == 0);
    snprintf(path, sizeof path, "%s/a/b//c/", g_dir);
    CHECK(e2_mkdir_p(path, 0755, err, sizeof err) == 0);
    CHECK(e2_mkdir_p(path, 0755, err, sizeof err) == 0); /* exists: fine */
    struct stat st;
    snprintf(path, sizeof path, "%s/a/b/c", g_dir);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(e2_fsync_dir(path, err, sizeof err) == 0);
    snprintf(path, sizeof path, "%s/a/file", g_dir);
    CHECK(e2_write_file_atomic(path, "x", 1, err, sizeof err) == 0);
    CHECK(e2_mkdir_p(path, 0755, err, sizeof err) < 0);
    CHECK(strstr(err, "not a directory") != NULL);
    CHECK(e2_mkdir_p("", 0755, err, sizeof err) < 0);
    return 0;
}

static int test_read_file_limit(void) {
    char err[E2_ERRLEN], path[512];
    CHECK(make_scratch("read") == 0);
    snprintf(path, sizeof path, "%s/f", g_dir);
    CHECK(e2_write_file_atomic(path, "0123456789", 10, err, sizeof err) == 0);
    char *buf = (char *)1;
    size_t len = 1;
    CHECK(e2_read_file(path, 9, &buf, &len, err, sizeof err) == E2_ETOOBIG);
    CHECK(buf == NULL && len == 0);
    CHECK(strstr(err, "limit is 9") != NULL);
    CHECK(e2_read_file(path, 10, &buf, &len, err, sizeof err) == 0);
    CHECK(len == 10 && buf[10] == '\0');
    free(buf);
    snprintf(path, sizeof path, "%s/nope", g_dir);
    CHECK(e2_read_file(path, 10, &buf, &len, err, sizeof err) == E2_NOTFOUND);
    CHECK(e2_read_file(g_dir, 10, &buf, &len, err, sizeof err) < 0);
    return 0;
}

static int test_errf_one_line(void) {
    char err[16];
    CHECK(e2_errf(err, sizeof err, "a\nb %d\r", 5) == E2_ERR);
    CHECK(strcmp(err, "a b 5 ") == 0);
    CHECK(e2_errf(err, sizeof err, "%s", "0123456789abcdefghij") == E2_ERR);
    CHECK(strlen(err) == 15); /* truncated, terminated */
    CHECK(e2_errf(NULL, 0, "x") == E2_ERR);
    return 0;
}

static const struct {
    const char *name;
    int (*fn)(void);
} cases[] = {
    { "sha256_vectors", test_sha256_vectors },
    { "sha256_lengths", test_sha256_lengths },
    { "sha256_file", test_sha256_file },
    { "atomic_write_replaces", test_atomic_write_replaces },
    { "afile_abort_keeps_old", test_afile_abort_keeps_old },
    { "atomic_write_bad_dir_fails", test_atomic_write_bad_dir_fails },
    { "mkdir_p", test_mkdir_p },
    { "read_file_limit", test_read_file_limit },
    { "errf_one_line", test_errf_one_line },
};

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_base <case>\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (strcmp(argv[1], cases[i].name) != 0) continue;
        int rc = cases[i].fn();
        if (rc == 0 && g_dir[0]) nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        return rc;
    }
    fprintf(stderr, "test_base: unknown case %s\n", argv[1]);
    return 2;
}
