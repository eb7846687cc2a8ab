/* sha256.c -- SHA-256 (FIPS 180-4) for checkpoint manifests and train-state
 * checksums. Portable C (about 150-250 MB/s), plus the x86 SHA extensions
 * when the CPU has them (checked at run time; about 1.5 GB/s), because
 * checksumming multi-gigabyte optimizer state must not cost minutes. */
#include "base.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const uint32_t e2__k256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t e2__ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* Compresses one 64-byte block into the state (portable). */
static void e2__sha256_block(uint32_t h[8], const uint8_t *p) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = e2__ror(w[i - 15], 7) ^ e2__ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = e2__ror(w[i - 2], 17) ^ e2__ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    uint32_t e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = e2__ror(e, 6) ^ e2__ror(e, 11) ^ e2__ror(e, 25);
        uint32_t t1 = k + S1 + ((e & f) ^ (~e & g)) + e2__k256[i] + w[i];
        uint32_t S0 = e2__ror(a, 2) ^ e2__ror(a, 13) ^ e2__ror(a, 22);
        uint32_t t2 = S0 + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d;
    h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

#if defined(__x86_64__)
/* The SHA-NI form keeps the state as two vectors, ABEF and CDGH (lanes high
 * to low); sha256rnds2 does two rounds, sha256msg1/msg2 extend the message
 * schedule four words at a time. */
__attribute__((target("sha,sse4.1,ssse3")))
static void e2__sha256_blocks_ni(uint32_t h[8], const uint8_t *p, size_t n) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&h[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&h[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for (; n > 0; n--, p += 64) {
        __m128i abef0 = abef, cdgh0 = cdgh, m[4];
        for (int i = 0; i < 4; i++)
            m[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)),
                                    bswap);
        for (int g = 0; g < 16; g++) {
            __m128i cur = m[g & 3];
            __m128i k = _mm_add_epi32(
                cur, _mm_loadu_si128((const __m128i *)&e2__k256[4 * g]));
            /* Two rounds turn ABEF into the next CDGH: after both calls the
             * variables hold ABEF and CDGH again. */
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, k);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(k, 0x0E));
            if (g >= 3 && g <= 14) { /* words 4(g+1) .. 4(g+1)+3 */
                __m128i w7 = _mm_alignr_epi8(cur, m[(g + 3) & 3], 4);
                m[(g + 1) & 3] = _mm_sha256msg2_epu32(
                    _mm_add_epi32(m[(g + 1) & 3], w7), cur);
            }
            if (g >= 1 && g <= 12)
                m[(g + 3) & 3] = _mm_sha256msg1_epu32(m[(g + 3) & 3], cur);
        }
        abef = _mm_add_epi32(abef, abef0);
        cdgh = _mm_add_epi32(cdgh, cdgh0);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(dchg, feba, 8));
}

/* 1 when the CPU has SHA, SSE4.1 and SSSE3; asked once. */
static int e2__have_sha_ni(void) {
    static _Atomic int have = -1;
    int v = have;
    if (v < 0) {
        unsigned a, b, c, d;
        v = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 19)) && (c & (1u << 9)) &&
            __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & (1u << 29)) &&
            getenv("E2_SHA256_PORTABLE") == NULL;
        have = v;
    }
    return v;
}
#endif

/* Compresses n consecutive 64-byte blocks. */
static void e2__sha256_blocks(uint32_t h[8], const uint8_t *p, size_t n) {
#if defined(__x86_64__)
    if (e2__have_sha_ni()) {
        e2__sha256_blocks_ni(h, p, n);
        return;
    }
#endif
    for (; n > 0; n--, p += 64) e2__sha256_block(h, p);
}

void e2_sha256_init(e2_sha256_ctx *c) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, h0, sizeof h0);
    c->nbytes = 0;
    c->nbuf = 0;
}

void e2_sha256_update(e2_sha256_ctx *c, const void *data, size_t len) {
    const uint8_t *p = data;
    c->nbytes += len;
    if (c->nbuf > 0) {
        size_t k = 64 - c->nbuf < len ? 64 - c->nbuf : len;
        memcpy(c->buf + c->nbuf, p, k);
        c->nbuf += k;
        p += k;
        len -= k;
        if (c->nbuf < 64) return;
        e2__sha256_blocks(c->h, c->buf, 1);
        c->nbuf = 0;
    }
    e2__sha256_blocks(c->h, p, len / 64);
    p += len / 64 * 64;
    len %= 64;
    memcpy(c->buf, p, len);
    c->nbuf = len;
}

void e2_sha256_final(e2_sha256_ctx *c, uint8_t out[E2_SHA256_LEN]) {
    uint64_t bits = c->nbytes * 8;
    uint8_t pad[72] = {0x80};
    /* Pad with 0x80, zeros, then the 64-bit big-endian bit count, to a
     * multiple of 64 bytes. */
    size_t npad = (c->nbuf < 56 ? 56 : 120) - c->nbuf;
    for (int i = 0; i < 8; i++) pad[npad + i] = (uint8_t)(bits >> (56 - 8 * i));
    e2_sha256_update(c, pad, npad + 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void e2_sha256(const void *data, size_t len, uint8_t out[E2_SHA256_LEN]) {
    e2_sha256_ctx c;
    e2_sha256_init(&c);
    e2_sha256_update(&c, data, len);
    e2_sha256_final(&c, out);
}

int e2_sha256_file(const char *path, uint8_t out[E2_SHA256_LEN],
                   uint64_t *size, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        e2_errf(err, errlen, "open %s: %s", path, strerror(e));
        return e == ENOENT ? E2_ENOENT : E2_ERR;
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
    if (rc < 0) return rc;
    if (size) *size = c.nbytes;
    e2_sha256_final(&c, out);
    return 0;
}

void e2_sha256_hex(const uint8_t d[E2_SHA256_LEN], char hex[E2_SHA256_HEXLEN]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < E2_SHA256_LEN; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}
