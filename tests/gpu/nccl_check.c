/* nccl_check.c -- e2w_comm's NCCL engine on one GPU (tests/gpu/run.sh):
 * a 1-rank communicator through the directory store; all-reduce (F32, BF16,
 * SUM and AVG), all-gather, broadcast and barrier keep the data; the
 * gradient reducer sums buckets whose data a copy on the compute stream
 * writes just before each push (the mark and allreduce_spans path); and
 * the communicator closes (finalize, then destroy) within the timeout.
 * With one rank a sum changes nothing, so the values check that nothing
 * was lost or overwritten and the calls that every GPU job makes run
 * without an error; the ordering between ranks needs several GPUs.
 *
 * Exit status 0 when all held, 1 when a check failed, 2 without a device.
 * Device-only: not registered with ctest. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cuda_runtime.h>

#include "base.h"
#include "comm.h"
#include "reducer.h"

static int failures;

#define EXPECT(cond, ...)                                 \
    do {                                                  \
        if (!(cond)) {                                    \
            printf("  FAIL %s:%d: ", __FILE__, __LINE__); \
            printf(__VA_ARGS__);                          \
            printf("\n");                                 \
            failures++;                                   \
        }                                                 \
    } while (0)

#define CUDA_OK(call)                                                      \
    do {                                                                   \
        cudaError_t e_ = (call);                                           \
        if (e_ != cudaSuccess) {                                           \
            printf("nccl_check: %s: %s\n", #call, cudaGetErrorString(e_)); \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Device buffer of n floats i * 0.5 - 3 (exact in fp32 and, for small i,
 * bf16); compares the device buffer with that pattern. */
static void fill(float *d, size_t n) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = (float)(i % 64) * 0.5f - 3.0f;
    CUDA_OK(cudaMemcpy(d, h, n * sizeof *h, cudaMemcpyHostToDevice));
    free(h);
}

static size_t mismatches(const float *d, size_t n) {
    float *h = malloc(n * sizeof *h);
    CUDA_OK(cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += h[i] != (float)(i % 64) * 0.5f - 3.0f;
    free(h);
    return bad;
}

static void collectives(e2w_comm *c) {
    char err[E2_ERRLEN];
    size_t n = (size_t)1 << 20;
    float *d;
    CUDA_OK(cudaMalloc((void **)&d, n * sizeof *d));
    fill(d, n);
    EXPECT(e2w_comm_allreduce(c, d, n, E2W_COMM_F32, E2W_COMM_SUM, err, sizeof err) == 0, "%s",
           err);
    EXPECT(mismatches(d, n) == 0, "allreduce F32 SUM changed the data");
    EXPECT(e2w_comm_allreduce(c, d, n, E2W_COMM_F32, E2W_COMM_AVG, err, sizeof err) == 0, "%s",
           err);
    EXPECT(mismatches(d, n) == 0, "allreduce F32 AVG changed the data");
    /* bf16: the same bytes as 2n bf16 elements (the low halves are not
     * valid on their own, but one rank's sum is the identity) */
    EXPECT(e2w_comm_allreduce(c, d, 2 * n, E2W_COMM_BF16, E2W_COMM_SUM, err, sizeof err) == 0, "%s",
           err);
    EXPECT(e2w_comm_allgather(c, d, n, E2W_COMM_F32, err, sizeof err) == 0, "%s", err);
    EXPECT(mismatches(d, n) == 0, "allgather changed the data");
    EXPECT(e2w_comm_broadcast(c, d, n * sizeof *d, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(mismatches(d, n) == 0, "broadcast changed the data");
    EXPECT(e2w_comm_barrier(c, err, sizeof err) == 0, "%s", err);
    CUDA_OK(cudaFree(d));
    printf("  collectives (allreduce F32/BF16 SUM/AVG, allgather, broadcast, barrier)  %s\n",
           failures ? "FAIL" : "ok");
}

/* The trainer's pattern: the backward writes a bucket's gradients on the
 * compute stream, pushes it, goes on; the optimizer waits for all. */
static void reducer(e2w_comm *c) {
    char err[E2_ERRLEN];
    int f0 = failures;
    size_t per = 300000, buckets = 24, n = per * buckets;
    float *grads, *h;
    cudaStream_t s;
    CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    CUDA_OK(cudaMalloc((void **)&grads, n * sizeof *grads));
    CUDA_OK(cudaMemset(grads, 0, n * sizeof *grads));
    CUDA_OK(cudaMallocHost((void **)&h, n * sizeof *h));
    for (size_t i = 0; i < n; i++) h[i] = (float)(i % 64) * 0.5f - 3.0f;
    e2w_reducer *r = NULL;
    EXPECT(e2w_reducer_create(&r, c, grads, E2W_COMM_F32, s, err, sizeof err) == 0, "%s", err);
    if (r == NULL) return;
    for (int step = 0; step < 3; step++) {
        for (size_t b = buckets; b-- > 0;) { /* last layer first, as the backward */
            CUDA_OK(cudaMemcpyAsync(grads + b * per, h + b * per, per * sizeof *h,
                                    cudaMemcpyHostToDevice, s));
            /* two ranges per bucket, as a layer's tensors */
            e2w_reducer_range rr[2] = { { b * per, per / 3 },
                                        { b * per + per / 3, per - per / 3 } };
            e2w_reducer_push(r, rr, 2);
        }
        double waited = 0;
        EXPECT(e2w_reducer_wait(r, &waited, err, sizeof err) == 0, "%s", err);
        CUDA_OK(cudaStreamSynchronize(s));
        EXPECT(mismatches(grads, n) == 0, "step %d: the reduced gradients differ", step);
        CUDA_OK(cudaMemsetAsync(grads, 0, n * sizeof *grads, s));
    }
    EXPECT(e2w_reducer_busy_seconds(r) > 0, "the reducer's thread reports no time");
    e2w_reducer_free(r);
    CUDA_OK(cudaFreeHost(h));
    CUDA_OK(cudaFree(grads));
    CUDA_OK(cudaStreamDestroy(s));
    printf("  reducer: 3 steps of %zu buckets (mark at push, wait before the all-reduce)  %s\n",
           buckets, failures == f0 ? "ok" : "FAIL");
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev < 1) {
        printf("nccl_check: no CUDA device\n");
        return 2;
    }
    if (!e2w_comm_engine_available(E2W_COMM_NCCL)) {
        printf("nccl_check: this build has no NCCL engine\n");
        return 2;
    }
    char dir[] = "/tmp/e2-nccl-check-XXXXXX", err[E2_ERRLEN];
    if (!mkdtemp(dir)) {
        printf("nccl_check: mkdtemp failed\n");
        return 2;
    }
    e2w_comm_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.engine = E2W_COMM_NCCL;
    cfg.rank = 0;
    cfg.world_size = 1;
    cfg.device = 0;
    cfg.timeout_ms = 20000;
    if (e2w_comm_dirstore_open(&cfg.store, dir, err, sizeof err) < 0) {
        printf("nccl_check: %s\n", err);
        return 2;
    }
    printf("== nccl: one rank on device 0\n");
    double t0 = now();
    e2w_comm *c = NULL;
    EXPECT(e2w_comm_init(&c, &cfg, err, sizeof err) == 0, "init: %s", err);
    printf("  connect %.2f s  %s\n", now() - t0, c ? "ok" : "FAIL");
    if (c) {
        collectives(c);
        reducer(c);
        t0 = now();
        e2w_comm_free(c);
        double dt = now() - t0;
        EXPECT(dt < 15.0, "teardown took %.1f s", dt);
        printf("  teardown (finalize, destroy) %.2f s  %s\n", dt, dt < 15.0 ? "ok" : "FAIL");
    }
    e2w_comm_dirstore_close(&cfg.store);
    char cmd[64];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("nccl_check: could not remove %s\n", dir);
    printf("nccl_check: %s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
