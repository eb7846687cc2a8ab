/* bench_comm.c -- e2w_comm's Gloo all-reduce on loopback: W processes
 * (fork + exec of this binary) rendezvous through a directory store and
 * time an in-place f32 SUM all-reduce per buffer size. Prints the
 * configuration, time per call and bus bandwidth (2 (W-1)/W * bytes / time,
 * the traffic a ring moves per rank) for buffers of MIN_MB to MAX_MB
 * (doubling). Nothing is asserted.
 *
 * Usage: bench_comm [W [MIN_MB [MAX_MB]]]   (default 2 ranks, 1 to 256 MB) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "comm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_rank(int rank, int world, size_t min_n, size_t max_n, const char *dir) {
    char err[E2_ERRLEN];
    e2w_comm_config cfg = { 0 };
    cfg.engine = E2W_COMM_GLOO;
    cfg.rank = rank;
    cfg.world_size = world;
    cfg.timeout_ms = 120000;
    if (e2w_comm_dirstore_open(&cfg.store, dir, err, sizeof err) < 0) return 1;
    e2w_comm *c;
    if (e2w_comm_init(&c, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "rank %d: %s\n", rank, err);
        return 1;
    }
    e2w_comm_dirstore_close(&cfg.store);
    float *x = calloc(max_n, sizeof *x);
    if (!x) return 1;
    if (rank == 0)
        printf("%10s %12s %6s %12s %12s\n", "MB", "floats", "iters", "ms/call", "busbw GB/s");
    for (size_t n = min_n; n <= max_n; n *= 2) {
        size_t bytes = n * sizeof *x;
        int iters = bytes <= (8u << 20) ? 20 : bytes <= (64u << 20) ? 5 : 3;
        if (e2w_comm_allreduce(c, x, n, E2W_COMM_F32, E2W_COMM_SUM, err, sizeof err) < 0 ||
            e2w_comm_barrier(c, err, sizeof err) < 0)
            goto fail;
        double t0 = now_s();
        for (int i = 0; i < iters; i++)
            if (e2w_comm_allreduce(c, x, n, E2W_COMM_F32, E2W_COMM_SUM, err, sizeof err) < 0)
                goto fail;
        double dt = (now_s() - t0) / iters;
        double bus = 2.0 * (world - 1) / world * (double)bytes / dt / 1e9;
        if (rank == 0) {
            printf("%10.0f %12zu %6d %12.2f %12.3f\n", (double)bytes / (1 << 20), n, iters,
                   dt * 1e3, bus);
            fflush(stdout);
        }
    }
    free(x);
    e2w_comm_free(c);
    return 0;
fail:
    fprintf(stderr, "rank %d: %s\n", rank, err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 6)
        return run_rank(atoi(argv[1]), atoi(argv[2]), strtoul(argv[3], NULL, 10),
                        strtoul(argv[4], NULL, 10), argv[5]);
    int world = argc > 1 ? atoi(argv[1]) : 2;
    size_t min_mb = argc > 2 ? strtoul(argv[2], NULL, 10) : 1;
    size_t max_mb = argc > 3 ? strtoul(argv[3], NULL, 10) : 256;
    if (world < 2 || world > 16 || min_mb < 1 || max_mb < min_mb || max_mb > 4096) {
        fprintf(stderr, "usage: bench_comm [W (2..16) [MIN_MB (>= 1) [MAX_MB (MIN_MB..4096)]]]\n");
        return 2;
    }
    size_t min_n = min_mb << 18, max_n = max_mb << 18; /* floats: 2^20 / 4 per MB */
    char dir[] = "/tmp/e2-bench-comm-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("e2w_comm Gloo ring all-reduce, f32 SUM, %d ranks on loopback, %zu-%zu MB, %ld CPUs\n",
           world, min_mb, max_mb, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    char ws[16], rs[16], mins[32], maxs[32];
    snprintf(ws, sizeof ws, "%d", world);
    snprintf(mins, sizeof mins, "%zu", min_n);
    snprintf(maxs, sizeof maxs, "%zu", max_n);
    for (int r = 0; r < world; r++) {
        snprintf(rs, sizeof rs, "%d", r);
        if (fork() == 0) {
            execl("/proc/self/exe", argv[0], rs, ws, mins, maxs, dir, (char *)NULL);
            _exit(127);
        }
    }
    int failed = 0, st;
    while (wait(&st) > 0)
        if (!WIFEXITED(st) || WEXITSTATUS(st)) failed = 1;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) failed = 1;
    return failed;
}
