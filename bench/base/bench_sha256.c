/* bench_sha256.c -- SHA-256 throughput of e2_sha256_file on one file
 * (1 GiB by default), the way checkpoint manifests and the train-state
 * checksum use it.
 *
 *   bench_sha256 [file] [MiB] [reps]     defaults: bench_sha256.dat 1024 3
 *
 * The file is written (pseudo-random bytes) when it is missing or of
 * another size, read once to warm the page cache, then hashed reps times:
 * the figure is hashing from memory, not disk speed. Prints the
 * configuration, each pass, the mean ± sd and the digest; asserts
 * nothing. bench/base/sha256_compare.sh runs it against an older e2. */
#include "base.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int make_file(const char *path, uint64_t size) {
    struct stat st;
    if (stat(path, &st) == 0 && (uint64_t)st.st_size == size) return 0;
    FILE *f = fopen(path, "wb");
    enum { CHUNK = 1 << 20 };
    uint64_t *buf = malloc(CHUNK);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    if (!f || !buf) {
        perror(path);
        free(buf);
        if (f) fclose(f);
        return -1;
    }
    for (uint64_t done = 0; done < size; done += CHUNK) {
        for (size_t i = 0; i < CHUNK / 8; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
            buf[i] = x;
        }
        size_t n = size - done < CHUNK ? (size_t)(size - done) : CHUNK;
        if (fwrite(buf, 1, n, f) != n) {
            perror(path);
            fclose(f);
            free(buf);
            return -1;
        }
    }
    free(buf);
    return fclose(f) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "bench_sha256.dat";
    uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 1024;
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    uint64_t size = mib << 20;
    uint8_t d[E2_SHA256_LEN];
    char hex[E2_SHA256_HEXLEN], err[E2_ERRLEN];
    double sum = 0, sum2 = 0;
    if (reps < 1 || make_file(path, size) < 0) return 1;
    /* Warm the page cache. */
    if (e2_sha256_file(path, d, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "bench_sha256: %s\n", err);
        return 1;
    }
    printf("sha256 file %s, %llu MiB, %d passes\n", path, (unsigned long long)mib, reps);
    for (int r = 0; r < reps; r++) {
        double t = now();
        if (e2_sha256_file(path, d, NULL, err, sizeof err) < 0) {
            fprintf(stderr, "bench_sha256: %s\n", err);
            return 1;
        }
        double mbs = (double)size / 1e6 / (now() - t);
        sum += mbs;
        sum2 += mbs * mbs;
        printf("  pass %d: %.0f MB/s\n", r + 1, mbs);
    }
    double mean = sum / reps;
    double sd = reps > 1 ? sqrt(fmax(0, (sum2 - reps * mean * mean) / (reps - 1))) : 0;
    e2_sha256_hex(d, hex);
    printf("sha256 %.0f ± %.0f MB/s  digest %s\n", mean, sd, hex);
    return 0;
}
