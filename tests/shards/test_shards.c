/* test_shards.c -- common/shards: patterns -> sorted files with sizes, in
 * pattern order; one error line naming the pattern; nothing appended on
 * failure. One case per ctest (shards_<case>). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../expect.h"
#include "base.h"
#include "shards.h"

static char dir[] = "/tmp/e2-shards-test-XXXXXX", err[E2_ERRLEN];

static char *at(const char *name) {
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put(const char *name, size_t n) {
    char buf[64] = { 0 };
    CHECK(n <= sizeof buf && e2_write_file_atomic(at(name), buf, n, err, sizeof err) == 0);
}

static void setup(void) {
    CHECK(mkdtemp(dir) != NULL);
    put("t_2.bin", 3);
    put("t_0.bin", 1);
    put("t_1.bin", 2);
    put("v.bin", 7);
}

static void teardown(void) {
    const char *names[] = { "t_0.bin", "t_1.bin", "t_2.bin", "v.bin", "t_9.bin" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        unlink(at(names[i]));
        rmdir(at(names[i]));
    }
    rmdir(dir);
}

/* Each pattern's matches sorted, patterns in the order given, each file's
 * size; a second expansion appends. */
static void test_sorted_with_sizes(void) {
    setup();
    char *pats[] = { at("v.bin"), at("t_*.bin") };
    e2_shard_list l = { 0 };
    CHECK(e2_shards_expand(pats, 2, "spec.data.train_shards", &l, err, sizeof err) == 0);
    CHECK(l.n == 4);
    if (l.n == 4) {
        CHECK(!strcmp(l.paths[0], at("v.bin")) && l.bytes[0] == 7);
        for (int i = 0; i < 3; i++) {
            char name[16];
            snprintf(name, sizeof name, "t_%d.bin", i);
            EXPECT(!strcmp(l.paths[1 + i], at(name)) && l.bytes[1 + i] == (uint64_t)i + 1,
                   "file %d: %s", i, l.paths[1 + i]);
        }
    }
    CHECK(e2_shards_expand(pats, 1, NULL, &l, err, sizeof err) == 0 && l.n == 5);
    e2_shards_free(&l);
    CHECK(l.n == 0 && l.paths == NULL);
    teardown();
}

/* A pattern that matches nothing: E2_NOTFOUND, one line naming the field, its
 * index and the pattern; what earlier patterns added is taken back. */
static void test_no_match_names_pattern(void) {
    setup();
    char *pats[] = { at("t_*.bin"), at("nothing_*.bin") };
    e2_shard_list l = { 0 };
    CHECK(e2_shards_expand(pats, 2, "spec.data.eval_shards", &l, err, sizeof err) == E2_NOTFOUND);
    EXPECT(strstr(err, "spec.data.eval_shards[1]: no file matches \"") &&
               strstr(err, "nothing_*.bin\"") && !strchr(err, '\n'),
           "got: %s", err);
    CHECK(l.n == 0);
    e2_shards_free(&l);
    teardown();
}

/* A match that is not a regular file fails naming it. */
static void test_directory_is_not_a_shard(void) {
    setup();
    CHECK(mkdir(at("t_9.bin"), 0755) == 0);
    char *pats[] = { at("t_*.bin") };
    e2_shard_list l = { 0 };
    CHECK(e2_shards_expand(pats, 1, "spec.data.train_shards", &l, err, sizeof err) == E2_NOTFOUND);
    EXPECT(strstr(err, "spec.data.train_shards[0]: \"") &&
               strstr(err, "t_9.bin\" is not a readable file"),
           "got: %s", err);
    CHECK(l.n == 0);
    e2_shards_free(&l);
    teardown();
}

/* Added paths are taken as they are: pattern characters stay. */
static void test_add_keeps_path(void) {
    e2_shard_list l = { 0 };
    CHECK(e2_shards_add(&l, "/d/train_[0]*.bin", 6) == 0 && l.n == 1);
    CHECK(!strcmp(l.paths[0], "/d/train_[0]*.bin") && l.bytes[0] == 6);
    for (int i = 0; i < 40; i++) CHECK(e2_shards_add(&l, "/d/x", (uint64_t)i) == 0);
    CHECK(l.n == 41 && l.bytes[40] == 39);
    e2_shards_free(&l);
}

int main(int argc, char **argv) {
    static const expect_case cases[] = {
        { "sorted_with_sizes", test_sorted_with_sizes },
        { "no_match_names_pattern", test_no_match_names_pattern },
        { "directory_is_not_a_shard", test_directory_is_not_a_shard },
        { "add_keeps_path", test_add_keeps_path },
    };
    return expect_main("test_shards", cases, sizeof cases / sizeof cases[0], argc, argv);
}
