/* bench_comm.c -- e2w_comm's Gloo all-reduce on loopback: W processes
 * (fork + exec of this binary) rendezvous through a directory store and
 * time an in-place f32 SUM all-reduce per buffer size. Prints the
 * configuration, time per call and bus bandwidth (2 (W-1)/W * bytes / time,
 * the traffic a ring moves per rank). Nothing is asserted.
 *
 * Usage: bench_comm [W [MAX_FLOATS]]   (default 2 ranks, up to 4M floats) */
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

static int run_rank(int rank, int world, size_t max_n, const char *dir) {
    char err[E2_ERRLEN];
    e2w_comm_config cfg = {0};
    cfg.engine = E2W_COMM_GLOO;
    cfg.rank = rank;
    cfg.world_size = world;
    cfg.timeout_ms = 60000;
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
        printf("%12s %8s %12s %12s\n", "floats", "iters", "us/call", "busbw GB/s");
    for (size_t n = 1024; n <= max_n; n *= 4) {
        int iters = n <= 65536 ? 200 : n <= (1u << 20) ? 20 : 5;
        if (e2w_comm_allreduce(c, x, n, E2W_COMM_F32, E2W_COMM_SUM, err, sizeof err) < 0 ||
            e2w_comm_barrier(c, err, sizeof err) < 0)
            goto fail;
        double t0 = now_s();
        for (int i = 0; i < iters; i++)
            if (e2w_comm_allreduce(c, x, n, E2W_COMM_F32, E2W_COMM_SUM, err, sizeof err) < 0)
                goto fail;
        double dt = (now_s() - t0) / iters;
        double bus = 2.0 * (world - 1) / world * (double)(n * sizeof *x) / dt / 1e9;
        if (rank == 0) printf("%12zu %8d %12.1f %12.3f\n", n, iters, dt * 1e6, bus);
    }
    free(x);
    e2w_comm_free(c);
    return 0;
fail:
    fprintf(stderr, "rank %d: %s\n", rank, err);
    return 1;
}

int main(int argc, char **argv) {
    if (argc == 5) return run_rank(atoi(argv[1]), atoi(argv[2]), strtoul(argv[3], NULL, 10), argv[4]);
    int world = argc > 1 ? atoi(argv[1]) : 2;
    size_t max_n = argc > 2 ? strtoul(argv[2], NULL, 10) : (4u << 20);
    if (world < 2 || world > 16 || max_n < 1024) {
        fprintf(stderr, "usage: bench_comm [W (2..16) [MAX_FLOATS (>= 1024)]]\n");
        return 2;
    }
    char dir[] = "/tmp/e2-bench-comm-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    printf("e2w_comm Gloo ring all-reduce, f32 SUM, %d ranks on loopback, %ld CPUs\n",
           world, sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);
    char ws[16], rs[16], ns[32];
    snprintf(ws, sizeof ws, "%d", world);
    snprintf(ns, sizeof ns, "%zu", max_n);
    for (int r = 0; r < world; r++) {
        snprintf(rs, sizeof rs, "%d", r);
        if (fork() == 0) {
            execl("/proc/self/exe", argv[0], rs, ws, ns, dir, (char *)NULL);
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
