/* auth_test.c: e2_auth's token files, lookups, role table and bearer
 * parsing. Token files are written to a temp dir per case.
 * Usage: auth_test [case]; no case runs every case. */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../expect.h"

static char dir[64];

#define TOK_A "aaaaaaaaaaaaaaaa-admin-0001"
#define TOK_S "ssssssssssssssss-subm-0002"
#define TOK_V "vvvvvvvvvvvvvvvv-view-0003"
#define TOK_W "wwwwwwwwwwwwwwww-work-0004"

/* Writes `text` to <dir>/name with `mode`; returns the path (static). */
static const char *write_file(const char *name, const char *text, int mode) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
    return path;
}

static const char good[] = "# e2d tokens\n"
                           "\n" TOK_A " root admin\n"
                           "  " TOK_S "\talice submitter  \n" TOK_V " bob.viewer viewer\n"
                           "# a worker\n" TOK_W " worker-1 worker\r\n";

static void test_token_file_parsed(void) {
    e2_auth_tokens t;
    char err[256];
    CHECK(e2_auth_tokens_load(&t, write_file("t", good, 0600), err, sizeof err) == 0);
    CHECK(t.n == 4);
    const e2_auth_token *e = e2_auth_tokens_find(&t, TOK_S);
    CHECK(e != NULL && strcmp(e->name, "alice") == 0 && e->role == E2_AUTH_ROLE_SUBMITTER);
    e = e2_auth_tokens_find(&t, TOK_W);
    CHECK(e != NULL && strcmp(e->name, "worker-1") == 0 && e->role == E2_AUTH_ROLE_WORKER);
    CHECK(e2_auth_tokens_find(&t, TOK_A)->role == E2_AUTH_ROLE_ADMIN);
    CHECK(e2_auth_tokens_find(&t, TOK_V)->role == E2_AUTH_ROLE_VIEWER);
    e2_auth_tokens_free(&t);
    CHECK(t.n == 0 && t.v == NULL);
    /* group-readable is fine (e2d may run as a service user of group e2) */
    CHECK(e2_auth_tokens_load(&t, write_file("t", good, 0640), err, sizeof err) == 0);
    e2_auth_tokens_free(&t);
}

static void test_token_file_readable_by_others_refused(void) {
    e2_auth_tokens t;
    char err[256];
    const char *p = write_file("t", good, 0644);
    CHECK(e2_auth_tokens_load(&t, p, err, sizeof err) < 0);
    CHECK(strstr(err, p) != NULL && strstr(err, "chmod 600") != NULL);
    CHECK(t.n == 0);
    CHECK(e2_auth_tokens_load(&t, write_file("t", good, 0602), err, sizeof err) < 0);
    char tok[300];
    CHECK(e2_auth_token_read(write_file("c", TOK_V "\n", 0604), tok, sizeof tok, err, sizeof err) <
          0);
    CHECK(strstr(err, "chmod 600") != NULL);
    CHECK(e2_auth_tokens_load(&t, "/nonexistent/tokens", err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent/tokens") != NULL);
}

static void expect_error(const char *text, const char *needle) {
    e2_auth_tokens t;
    char err[256] = "";
    const char *p = write_file("bad", text, 0600);
    CHECK(e2_auth_tokens_load(&t, p, err, sizeof err) < 0);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "  error \"%s\" lacks \"%s\"\n", err, needle);
        failures++;
    }
}

static void test_token_file_errors_name_the_line(void) {
    char bad[512];
    snprintf(bad, sizeof bad, "%s root admin\n%s alice owner\n", TOK_A, TOK_S);
    expect_error(bad, "/bad:2: role 'owner' must be admin, submitter");
    snprintf(bad, sizeof bad, "# c\n%s root\n", TOK_A);
    expect_error(bad, "/bad:2: expected `<token> <name> <role>`");
    snprintf(bad, sizeof bad, "%s root admin extra\n", TOK_A);
    expect_error(bad, "/bad:1: expected");
    expect_error("short root admin\n", "/bad:1: token of root must be 16 to");
    snprintf(bad, sizeof bad, "%s ro/ot admin\n", TOK_A);
    expect_error(bad, "/bad:1: name 'ro/ot'");
    snprintf(bad, sizeof bad, "%s root admin\n\n%s again viewer\n", TOK_A, TOK_A);
    expect_error(bad, "/bad:3: token of again is used by an earlier line");
    expect_error("# only comments\n\n", "has no tokens");
}

/* A refused line's token must not leak into the message (it may be a
 * real secret with a typo elsewhere on the line). */
static void test_tokens_not_in_errors(void) {
    e2_auth_tokens t;
    char err[256], bad[512];
    snprintf(bad, sizeof bad, "%s root superuser\n", TOK_A);
    CHECK(e2_auth_tokens_load(&t, write_file("bad", bad, 0600), err, sizeof err) < 0);
    CHECK(strstr(err, "aaaaaaaa") == NULL);
    snprintf(bad, sizeof bad, "%s root admin\n%s dup viewer\n", TOK_A, TOK_A);
    CHECK(e2_auth_tokens_load(&t, write_file("bad", bad, 0600), err, sizeof err) < 0);
    CHECK(strstr(err, "aaaaaaaa") == NULL);
    snprintf(bad, sizeof bad, "%s root\n", TOK_A);
    CHECK(e2_auth_tokens_load(&t, write_file("bad", bad, 0600), err, sizeof err) < 0);
    CHECK(strstr(err, "aaaaaaaa") == NULL);
}

static void test_find_is_exact(void) {
    e2_auth_tokens t;
    char err[256];
    CHECK(e2_auth_tokens_load(&t, write_file("t", good, 0600), err, sizeof err) == 0);
    CHECK(e2_auth_tokens_find(&t, NULL) == NULL);
    CHECK(e2_auth_tokens_find(&t, "") == NULL);
    CHECK(e2_auth_tokens_find(&t, "aaaaaaaaaaaaaaaa-admin-000") == NULL);  /* prefix */
    CHECK(e2_auth_tokens_find(&t, TOK_A "1") == NULL);                     /* longer */
    CHECK(e2_auth_tokens_find(&t, "Aaaaaaaaaaaaaaaa-admin-0001") == NULL); /* case */
    CHECK(e2_auth_equal("abc", 3, "abc", 3) == 1);
    CHECK(e2_auth_equal("abd", 3, "abc", 3) == 0);
    CHECK(e2_auth_equal("ab", 2, "abc", 3) == 0);
    CHECK(e2_auth_equal("abcd", 4, "abc", 3) == 0);
    CHECK(e2_auth_equal("", 0, "", 0) == 1);
    /* e2d adds its local workers' token to the file's */
    CHECK(e2_auth_tokens_add(&t, "0123456789abcdef0123", "e2d-local", E2_AUTH_ROLE_WORKER, err,
                             sizeof err) == 0);
    CHECK(t.n == 5);
    CHECK(e2_auth_tokens_find(&t, "0123456789abcdef0123")->role == E2_AUTH_ROLE_WORKER);
    CHECK(e2_auth_tokens_find(&t, TOK_V)->role == E2_AUTH_ROLE_VIEWER);
    CHECK(e2_auth_tokens_add(&t, TOK_V, "again", E2_AUTH_ROLE_ADMIN, err, sizeof err) < 0);
    CHECK(e2_auth_tokens_add(&t, "short", "x", E2_AUTH_ROLE_ADMIN, err, sizeof err) < 0);
    CHECK(t.n == 5);
    e2_auth_tokens_free(&t);
}

static void test_role_table(void) {
    /* Which role satisfies which need (the need is the role column of a
     * method's row; daemon_methods_* check the rows): allowed[have][need],
     * needs NONE..ADMIN. */
    static const int allowed[5][5] = {
        /* need:       none viewer submitter worker admin */
        /* none */ { 0, 0, 0, 0, 0 },
        /* viewer */ { 0, 1, 0, 0, 0 },
        /* submitter */ { 0, 1, 1, 0, 0 },
        /* worker */ { 0, 0, 0, 1, 0 },
        /* admin */ { 1, 1, 1, 1, 1 },
    };
    for (int have = E2_AUTH_ROLE_NONE; have <= E2_AUTH_ROLE_ADMIN; have++) {
        for (int need = E2_AUTH_ROLE_NONE; need <= E2_AUTH_ROLE_ADMIN; need++)
            CHECK(e2_auth_role_allows((e2_auth_role)have, need) == allowed[have][need]);
        /* No row (-1) or a need that is no role: admin only. */
        CHECK(e2_auth_role_allows((e2_auth_role)have, -1) == (have == E2_AUTH_ROLE_ADMIN));
        CHECK(e2_auth_role_allows((e2_auth_role)have, 99) == (have == E2_AUTH_ROLE_ADMIN));
    }
    CHECK(e2_auth_role_parse("admin") == E2_AUTH_ROLE_ADMIN);
    CHECK(e2_auth_role_parse("Admin") == E2_AUTH_ROLE_NONE);
    CHECK(e2_auth_role_parse("none") == E2_AUTH_ROLE_NONE);
    CHECK(strcmp(e2_auth_role_name(E2_AUTH_ROLE_SUBMITTER), "submitter") == 0);
}

static void test_bearer_header(void) {
    CHECK(strcmp(e2_auth_bearer("Bearer abc"), "abc") == 0);
    CHECK(strcmp(e2_auth_bearer("bearer  abc"), "abc") == 0);
    CHECK(e2_auth_bearer("Bearer ") == NULL);
    CHECK(e2_auth_bearer("Basic abc") == NULL);
    CHECK(e2_auth_bearer("abc") == NULL);
    CHECK(e2_auth_bearer(NULL) == NULL);
}

static void test_client_token_file(void) {
    char tok[300], err[256];
    CHECK(e2_auth_token_read(write_file("c", "# mine\n\n  " TOK_V "\n", 0600), tok, sizeof tok, err,
                             sizeof err) == 0);
    CHECK(strcmp(tok, TOK_V) == 0);
    /* a line copied from e2d's token file works too */
    CHECK(e2_auth_token_read(write_file("c", TOK_S " alice submitter\n", 0600), tok, sizeof tok,
                             err, sizeof err) == 0);
    CHECK(strcmp(tok, TOK_S) == 0);
    CHECK(e2_auth_token_read(write_file("c", "# nothing\n", 0600), tok, sizeof tok, err,
                             sizeof err) < 0);
    CHECK(strstr(err, "holds no token") != NULL);
    CHECK(e2_auth_token_read(write_file("c", TOK_V "\n", 0600), tok, 8, err, sizeof err) < 0);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    { "token_file_parsed", test_token_file_parsed },
    { "token_file_readable_by_others_refused", test_token_file_readable_by_others_refused },
    { "token_file_errors_name_the_line", test_token_file_errors_name_the_line },
    { "tokens_not_in_errors", test_tokens_not_in_errors },
    { "find_is_exact", test_find_is_exact },
    { "role_table", test_role_table },
    { "bearer_header", test_bearer_header },
    { "client_token_file", test_client_token_file },
};

int main(int argc, char **argv) {
    snprintf(dir, sizeof dir, "/tmp/e2-sec-auth-XXXXXX");
    if (mkdtemp(dir) == NULL) return 1;
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
        fprintf(stderr, "== %s\n", cases[i].name);
        cases[i].fn();
        ran++;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) failures++;
    if (ran == 0) {
        fprintf(stderr, "no case named %s\n", argv[1]);
        return 2;
    }
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    return failures ? 1 : 0;
}
