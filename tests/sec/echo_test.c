/* echo_test.c: errors about files a spec names say which file and which
 * check failed, never bytes of the file: a spec path may point at a file
 * the submitter could not read (a secret in another format), and e2's
 * error lines reach the submitter through job reasons and logs.
 * Usage: sec_echo_test case. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_config.h"
#include "safetensors.h"
#include "shard.h"

#include "../expect.h"

static char dir[] = "/tmp/e2-echo-XXXXXX";
static char err[1024];

static const char *in_dir(const char *name) {
    static char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static int write_text(const char *path, const char *text, size_t pad) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    for (size_t i = 0; i < pad; i++) fputc('x', f);
    return fclose(f);
}

/* A "shard" that is a secret text file: the first 4 bytes "ACBA" are
 * 1094861633 as an int32, the file 1300 bytes. */
static void test_shard_error_echoes_no_content(void) {
    CHECK(write_text(in_dir("secret.bin"), "ACBA:root:$6$hash", 1300 - 17) == 0);
    e2w_shard s;
    CHECK(e2w_shard_open(&s, in_dir("secret.bin"), err, sizeof err) != 0);
    fprintf(stderr, "error: %s\n", err);
    CHECK(strstr(err, "secret.bin: bad magic") != NULL);
    CHECK(strstr(err, "1094861633") == NULL);
    CHECK(strstr(err, "1300") == NULL);
    /* A header that passes the magic but not the size check. */
    int32_t h[3] = { E2W_SHARD_MAGIC_U16, E2W_SHARD_VERSION_U16, 123457 };
    FILE *f = fopen(in_dir("size.bin"), "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(h, 4, 3, f);
        for (int i = 12; i < 1500; i++) fputc(0, f);
        fclose(f);
    }
    CHECK(e2w_shard_open(&s, in_dir("size.bin"), err, sizeof err) != 0);
    fprintf(stderr, "error: %s\n", err);
    CHECK(strstr(err, "size mismatch") != NULL);
    CHECK(strstr(err, "123457") == NULL && strstr(err, "1500") == NULL);
}

/* An hf_dir whose config.json is a link to a secret that is not JSON:
 * the parse error gives the line and column, not jansson's quote of the
 * first token. */
static void test_config_json_error_echoes_no_content(void) {
    CHECK(write_text(in_dir("shadow"), "root:$6$salt$hash:19000:0:99999:7:::\n", 0) == 0);
    CHECK(mkdir(in_dir("model"), 0755) == 0);
    char link[256];
    snprintf(link, sizeof link, "%s/model/config.json", dir);
    CHECK(symlink(in_dir("shadow"), link) == 0);
    E2__V1__LlamaConfig cfg;
    e2__v1__llama_config__init(&cfg);
    CHECK(e2w_hf_config_read(in_dir("model"), &cfg, NULL, err, sizeof err) != 0);
    fprintf(stderr, "error: %s\n", err);
    CHECK(strstr(err, "config.json: not valid JSON (line 1") != NULL);
    CHECK(strstr(err, "root") == NULL);
}

/* A safetensors file whose first 8 bytes are text: its "header length"
 * (those bytes as a number) is not printed. */
static void test_safetensors_error_echoes_no_content(void) {
    CHECK(write_text(in_dir("m.safetensors"), "AAAAAAAA{}", 0) == 0);
    e2w_st *st = NULL;
    CHECK(e2w_st_open(&st, in_dir("m.safetensors"), err, sizeof err) != 0);
    fprintf(stderr, "error: %s\n", err);
    CHECK(strstr(err, "m.safetensors") != NULL);
    CHECK(strstr(err, "4702111234474983745") == NULL); /* "AAAAAAAA" */
    /* A header length that fits but is not JSON: no quote of it. */
    char buf[40] = { 0 };
    uint64_t n = 16;
    memcpy(buf, &n, 8);
    memcpy(buf + 8, "root:x:0:0:root", 16);
    FILE *f = fopen(in_dir("j.safetensors"), "wb");
    CHECK(f != NULL);
    if (f) {
        fwrite(buf, 1, 24, f);
        fclose(f);
    }
    CHECK(e2w_st_open(&st, in_dir("j.safetensors"), err, sizeof err) != 0);
    fprintf(stderr, "error: %s\n", err);
    CHECK(strstr(err, "not valid JSON") != NULL);
    CHECK(strstr(err, "root") == NULL);
}

static const struct {
    const char *name;
    void (*fn)(void);
} cases[] = {
    { "shard_error_echoes_no_content", test_shard_error_echoes_no_content },
    { "config_json_error_echoes_no_content", test_config_json_error_echoes_no_content },
    { "safetensors_error_echoes_no_content", test_safetensors_error_echoes_no_content },
};

int main(int argc, char **argv) {
    if (argc != 2 || !mkdtemp(dir)) return 2;
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!strcmp(argv[1], cases[i].name)) {
            cases[i].fn();
            ran = 1;
        }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) failures++;
    if (!ran) {
        fprintf(stderr, "no case named %s\n", argv[1]);
        return 2;
    }
    return failures ? 1 : 0;
}
