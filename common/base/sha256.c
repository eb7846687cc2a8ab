/* sha256.c -- SHA-256 for checkpoint manifests and train-state checksums,
 * from OpenSSL's libcrypto (EVP): it picks the fastest code for the CPU
 * (SHA extensions, AVX2, ...), which matters when checksumming
 * multi-gigabyte optimizer state. This file only adapts the API. */
#include "base.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A digest that cannot be set up (out of memory) has no honest result:
 * stop rather than hand out a wrong checksum. */
static void e2__sha256_fail(const char *what) {
    fprintf(stderr, "e2: sha256: %s failed (out of memory?)\n", what);
    abort();
}

void e2_sha256_init(e2_sha256_ctx *c) {
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        e2__sha256_fail("EVP_DigestInit_ex");
    c->evp = md;
    c->nbytes = 0;
}

void e2_sha256_update(e2_sha256_ctx *c, const void *data, size_t len) {
    if (len == 0) return;
    if (EVP_DigestUpdate(c->evp, data, len) != 1) e2__sha256_fail("EVP_DigestUpdate");
    c->nbytes += len;
}

void e2_sha256_final(e2_sha256_ctx *c, uint8_t out[E2_SHA256_LEN]) {
    unsigned n = 0;
    if (EVP_DigestFinal_ex(c->evp, out, &n) != 1 || n != E2_SHA256_LEN)
        e2__sha256_fail("EVP_DigestFinal_ex");
    EVP_MD_CTX_free(c->evp);
    c->evp = NULL;
}

void e2_sha256(const void *data, size_t len, uint8_t out[E2_SHA256_LEN]) {
    unsigned n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != E2_SHA256_LEN)
        e2__sha256_fail("EVP_Digest");
}

int e2_sha256_file(const char *path, uint8_t out[E2_SHA256_LEN], uint64_t *size, char *err,
                   size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        e2_errf(err, errlen, "open %s: %s", path, strerror(e));
        return e == ENOENT ? E2_NOTFOUND : E2_ERR;
    }
    enum { CHUNK = 1 << 20 };
    uint8_t *buf = malloc(CHUNK);
    if (buf == NULL) {
        close(fd);
        return e2_errf(err, errlen, "sha256 %s: out of memory", path);
    }
    e2_sha256_ctx c;
    e2_sha256_init(&c);
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, buf, CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = e2_errf(err, errlen, "read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0) break;
        e2_sha256_update(&c, buf, (size_t)r);
    }
    free(buf);
    close(fd);
    if (size) *size = c.nbytes;
    e2_sha256_final(&c, out);
    return rc;
}

void e2_sha256_hex(const uint8_t d[E2_SHA256_LEN], char hex[E2_SHA256_HEXLEN]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < E2_SHA256_LEN; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}
