/* test_comm.c -- e2w_comm's Gloo engine across real processes on loopback:
 * the parent forks W ranks (fork + exec of this binary) that rendezvous
 * through a directory store, run one case, and exit 0 only when every
 * check of their rank held.
 *
 * Usage: test_comm CASE W            (parent: runs W ranks of CASE)
 *        test_comm CASE W RANK DIR   (one rank; started by the parent)
 * Cases: allreduce, broadcast, allgather, barrier, abort, allgather_abort,
 *        peer_exit, timeout, reducer, reducer_abort, spans. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "comm.h"
#include "reducer.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s\n", g_rank, __FILE__, __LINE__, #c); \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

static int g_rank = -1, g_world;
static char g_err[E2_ERRLEN];

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_ms(int ms) {
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* A file in the test's directory, as a signal between the rank processes. */
static void mark(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK(e2_write_file_atomic(path, "x", 1, g_err, sizeof g_err) == 0);
}

static void await_mark(const char *dir, const char *name) {
    char path[4200];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    double end = now_s() + 20.0;
    while (stat(path, &st) != 0) {
        CHECK(now_s() < end);
        sleep_ms(2);
    }
}

/* Every rank process is up before any connects: the ranks start one after
 * another, and the timeout case connects with its 0.5 s timeout. */
static void start_together(const char *dir) {
    char name[32];
    snprintf(name, sizeof name, "ready-%d", g_rank);
    mark(dir, name);
    for (int r = 0; r < g_world; r++) {
        snprintf(name, sizeof name, "ready-%d", r);
        await_mark(dir, name);
    }
}

static e2w_comm *connect_rank(const char *dir, int timeout_ms) {
    e2w_comm_config cfg = { 0 };
    cfg.engine = E2W_COMM_GLOO;
    cfg.rank = g_rank;
    cfg.world_size = g_world;
    cfg.timeout_ms = timeout_ms;
    CHECK(e2w_comm_dirstore_open(&cfg.store, dir, g_err, sizeof g_err) == 0);
    e2w_comm *c = NULL;
    int rc = e2w_comm_init(&c, &cfg, g_err, sizeof g_err);
    if (rc < 0) fprintf(stderr, "rank %d: %s\n", g_rank, g_err);
    CHECK(rc == 0);
    e2w_comm_dirstore_close(&cfg.store);
    CHECK(e2w_comm_rank(c) == g_rank && e2w_comm_world_size(c) == g_world);
    return c;
}

/* ---- cases (one rank each) ---- */

/* Rank r contributes (r + 1) * (i % 7 + 1): the average is
 * (W + 1) / 2 * (i % 7 + 1) and the sum W (W + 1) / 2 * (i % 7 + 1). */
static void case_allreduce(e2w_comm *c) {
    static const size_t sizes[] = { 1, 1000, 1u << 20 };
    for (size_t s = 0; s < 3; s++) {
        size_t n = sizes[s];
        float *x = malloc(n * sizeof *x);
        CHECK(x != NULL);
        for (size_t i = 0; i < n; i++) x[i] = (float)((g_rank + 1) * (int)(i % 7 + 1));
        CHECK(e2w_comm_allreduce(c, x, n, E2W_COMM_F32, E2W_COMM_AVG, g_err, sizeof g_err) == 0);
        for (size_t i = 0; i < n; i++) {
            double want = (g_world + 1) / 2.0 * (double)(i % 7 + 1);
            double d = x[i] - want;
            if (d < 0) d = -d;
            CHECK(d <= 1e-6 * want);
        }
        free(x);
    }
    double h[3] = { g_rank, 1.0, 0.5 * g_rank };
    CHECK(e2w_comm_allreduce(c, h, 3, E2W_COMM_F64, E2W_COMM_SUM, g_err, sizeof g_err) == 0);
    double tri = g_world * (g_world - 1) / 2.0;
    CHECK(h[0] == tri && h[1] == (double)g_world && h[2] == 0.5 * tri);
    CHECK(e2w_comm_allreduce(c, h, 1, E2W_COMM_BF16, E2W_COMM_SUM, g_err, sizeof g_err) < 0);
}

static void case_broadcast(e2w_comm *c) {
    int root = g_world - 1;
    size_t n = 4099;
    unsigned char *b = calloc(n, 1);
    CHECK(b != NULL);
    if (g_rank == root)
        for (size_t i = 0; i < n; i++) b[i] = (unsigned char)(i * 31 + 7);
    CHECK(e2w_comm_broadcast(c, b, n, root, g_err, sizeof g_err) == 0);
    for (size_t i = 0; i < n; i++) CHECK(b[i] == (unsigned char)(i * 31 + 7));
    CHECK(e2w_comm_broadcast(c, b, n, g_world, g_err, sizeof g_err) < 0);
    free(b);
}

/* Byte j of element i (of esz bytes) after an all-gather, on every rank. */
static unsigned char gather_byte(size_t i, size_t j) {
    return (unsigned char)((i * 2654435761u >> 5) + j * 77 + 1);
}

/* Odd sizes (n < W, so some chunks are empty; n = 1; n not a multiple of
 * W; a large one) in 2-, 4- and 8-byte elements: each rank fills only its
 * chunk [min(r S, n), min((r + 1) S, n)), S = ceil(n / W), and garbage
 * elsewhere; afterwards every byte is right on every rank. */
static void case_allgather(e2w_comm *c) {
    static const size_t sizes[] = { 1, 2, 7, 1001, (1u << 20) + 3 };
    static const e2w_comm_dtype dts[] = { E2W_COMM_BF16, E2W_COMM_F32, E2W_COMM_F64 };
    static const size_t eszs[] = { 2, 4, 8 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t d = 0; d < 3; d++) {
            size_t n = sizes[s], esz = eszs[d], W = (size_t)g_world;
            size_t S = (n + W - 1) / W, lo = (size_t)g_rank * S, hi = lo + S;
            if (lo > n) lo = n;
            if (hi > n) hi = n;
            unsigned char *b = malloc(n * esz);
            CHECK(b != NULL);
            memset(b, 0xA5 ^ g_rank, n * esz);
            for (size_t i = lo; i < hi; i++)
                for (size_t j = 0; j < esz; j++) b[i * esz + j] = gather_byte(i, j);
            CHECK(e2w_comm_allgather(c, b, n, dts[d], g_err, sizeof g_err) == 0);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < esz; j++) CHECK(b[i * esz + j] == gather_byte(i, j));
            free(b);
        }
    }
    CHECK(e2w_comm_allgather(c, NULL, 0, E2W_COMM_F32, g_err, sizeof g_err) == 0);
}

/* Every rank leaves a mark before the barrier, the last one late: after
 * the barrier every mark must be there. */
static void case_barrier(e2w_comm *c, const char *dir) {
    char path[4200], name[32];
    if (g_rank == g_world - 1) sleep_ms(300);
    snprintf(name, sizeof name, "mark-%d", g_rank);
    mark(dir, name);
    CHECK(e2w_comm_barrier(c, g_err, sizeof g_err) == 0);
    for (int r = 0; r < g_world; r++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/mark-%d", dir, r);
        CHECK(stat(path, &st) == 0);
    }
}

static void *abort_later(void *arg) {
    sleep_ms(300);
    e2w_comm_abort(arg);
    return NULL;
}

/* Rank 0 is aborted (from another thread) while it waits in an all-reduce
 * the last rank joins only after that abort: rank 0's call returns
 * EABORTED, and the others fail soon after instead of waiting for the 20 s
 * timeout. */
static void case_abort(e2w_comm *c, const char *dir) {
    float x[256] = { 0 };
    double t0 = now_s();
    if (g_rank == 0) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, abort_later, c) == 0);
        int rc = e2w_comm_allreduce(c, x, 256, E2W_COMM_F32, E2W_COMM_AVG, g_err, sizeof g_err);
        pthread_join(t, NULL);
        CHECK(rc == E2W_COMM_EABORTED);
        CHECK(now_s() - t0 < 3.0);
        mark(dir, "aborted");
        double t1 = now_s();
        CHECK(e2w_comm_allreduce(c, x, 256, E2W_COMM_F32, E2W_COMM_AVG, g_err, sizeof g_err) ==
              E2W_COMM_EABORTED);
        CHECK(e2w_comm_barrier(c, g_err, sizeof g_err) == E2W_COMM_EABORTED);
        CHECK(now_s() - t1 < 1.0); /* at once, not after the 20 s timeout */
        e2w_comm_abort(c);         /* twice is harmless */
        return;
    }
    if (g_rank == g_world - 1) await_mark(dir, "aborted");
    int rc = e2w_comm_allreduce(c, x, 256, E2W_COMM_F32, E2W_COMM_AVG, g_err, sizeof g_err);
    CHECK(rc < 0);
    CHECK(now_s() - t0 < 4.0);
}

/* As case_abort, in an all-gather: rank 0 is aborted while the last rank
 * has not joined yet (it joins after the abort); rank 0 returns EABORTED at
 * once, the others fail within seconds (timeout 20 s). */
static void case_allgather_abort(e2w_comm *c, const char *dir) {
    size_t n = 4097;
    float *x = calloc(n, sizeof *x);
    CHECK(x != NULL);
    double t0 = now_s();
    if (g_rank == 0) {
        pthread_t t;
        CHECK(pthread_create(&t, NULL, abort_later, c) == 0);
        int rc = e2w_comm_allgather(c, x, n, E2W_COMM_F32, g_err, sizeof g_err);
        pthread_join(t, NULL);
        CHECK(rc == E2W_COMM_EABORTED);
        CHECK(strstr(g_err, "allgather") != NULL);
        CHECK(now_s() - t0 < 3.0);
        mark(dir, "aborted");
        CHECK(e2w_comm_allgather(c, x, n, E2W_COMM_F32, g_err, sizeof g_err) == E2W_COMM_EABORTED);
    } else {
        if (g_rank == g_world - 1) await_mark(dir, "aborted");
        CHECK(e2w_comm_allgather(c, x, n, E2W_COMM_F32, g_err, sizeof g_err) < 0);
        CHECK(now_s() - t0 < 4.0);
    }
    free(x);
}

/* The last rank's process dies after connecting; the others' all-reduce
 * fails within seconds (timeout 20 s). */
static void case_peer_exit(e2w_comm *c) {
    CHECK(e2w_comm_barrier(c, g_err, sizeof g_err) == 0);
    if (g_rank == g_world - 1) _exit(0);
    float x[1000] = { 0 };
    double t0 = now_s();
    CHECK(e2w_comm_allreduce(c, x, 1000, E2W_COMM_F32, E2W_COMM_SUM, g_err, sizeof g_err) < 0);
    CHECK(now_s() - t0 < 4.0);
}

/* The last rank is alive but never joins: the others time out. */
static void case_timeout(e2w_comm *c) {
    CHECK(e2w_comm_barrier(c, g_err, sizeof g_err) == 0);
    if (g_rank == g_world - 1) {
        sleep_ms(2500);
        return;
    }
    float x[10] = { 0 };
    double t0 = now_s();
    int rc = e2w_comm_allreduce(c, x, 10, E2W_COMM_F32, E2W_COMM_SUM, g_err, sizeof g_err);
    CHECK(rc == E2W_COMM_ETIMEDOUT);
    CHECK(strstr(g_err, "allreduce") != NULL);
    double dt = now_s() - t0;
    CHECK(dt >= 0.4 && dt < 2.0);
}

/* The reducer's device API on a host engine: no mark (nothing to order
 * after), and allreduce_spans sums each span and nothing between them. */
static void case_spans(e2w_comm *c) {
    float x[40];
    for (int i = 0; i < 40; i++) x[i] = (float)((g_rank + 1) * (i + 1));
    void *mark = (void *)&g_rank;
    CHECK(e2w_comm_mark(c, NULL, &mark, g_err, sizeof g_err) == 0 && mark == NULL);
    e2w_comm_span sp[3] = { { x, 5 }, { x + 10, 1 }, { x + 30, 10 } };
    CHECK(e2w_comm_allreduce_spans(c, mark, sp, 3, E2W_COMM_F32, E2W_COMM_SUM, g_err,
                                   sizeof g_err) == 0);
    e2w_comm_mark_free(c, mark);
    for (int i = 0; i < 40; i++) {
        int summed = i < 5 || i == 10 || i >= 30;
        double w = summed ? g_world * (g_world + 1) / 2.0 : g_rank + 1;
        CHECK(x[i] == (float)(w * (i + 1)));
    }
}

/* The reducer sums the buckets pushed (packed groups of small ranges, one
 * large range alone) while this thread goes on, and leaves every other
 * element alone; twice, as two training steps would. */
static void case_reducer(e2w_comm *c) {
    size_t n = 300000;
    float *x = malloc(n * sizeof *x);
    CHECK(x != NULL);
    e2w_reducer *r = NULL;
    CHECK(e2w_reducer_create(&r, c, x, E2W_COMM_F32, NULL, g_err, sizeof g_err) == 0);
    const e2w_reducer_range packed[3] = { { 50, 10 }, { 0, 10 }, { 2000, 300 } };
    const e2w_reducer_range alone = { 100000, 200000 };
    const e2w_reducer_range last[2] = { { 3000, 1 }, { 99999, 1 } };
    for (int step = 0; step < 2; step++) {
        for (size_t i = 0; i < n; i++) x[i] = (float)((g_rank + 1) * (int)(i % 7 + 1));
        e2w_reducer_push(r, packed, 3);
        sleep_ms(20);
        e2w_reducer_push(r, &alone, 1);
        e2w_reducer_push(r, last, 2);
        CHECK(e2w_reducer_wait(r, NULL, g_err, sizeof g_err) == 0);
        for (size_t i = 0; i < n; i++) {
            int summed =
                i < 10 || (i >= 50 && i < 60) || (i >= 2000 && i < 2300) || i == 3000 || i >= 99999;
            double mine = (g_rank + 1) * (double)(i % 7 + 1);
            double want = summed ? g_world * (g_world + 1) / 2.0 * (double)(i % 7 + 1) : mine;
            CHECK(x[i] == (float)want);
        }
    }
    CHECK(e2w_reducer_busy_seconds(r) > 0);
    e2w_reducer_free(r);
    free(x);
}

/* Rank 0 is aborted while its reducer waits for the last rank, which never
 * pushes: wait reports the failure instead of hanging, every later wait
 * too, and free returns. */
static void case_reducer_abort(e2w_comm *c) {
    float x[512] = { 0 };
    e2w_reducer *r = NULL;
    CHECK(e2w_reducer_create(&r, c, x, E2W_COMM_F32, NULL, g_err, sizeof g_err) == 0);
    const e2w_reducer_range all = { 0, 512 };
    double t0 = now_s();
    if (g_rank == g_world - 1) {
        sleep_ms(1000);
    } else {
        pthread_t t;
        if (g_rank == 0) CHECK(pthread_create(&t, NULL, abort_later, c) == 0);
        e2w_reducer_push(r, &all, 1);
        CHECK(e2w_reducer_wait(r, NULL, g_err, sizeof g_err) < 0);
        CHECK(g_err[0] != 0);
        if (g_rank == 0) pthread_join(t, NULL);
        CHECK(now_s() - t0 < 4.0);
        e2w_reducer_push(r, &all, 1);
        CHECK(e2w_reducer_wait(r, NULL, g_err, sizeof g_err) < 0);
    }
    e2w_reducer_free(r);
}

static int run_rank(const char *name, const char *dir) {
    int timeout_ms = !strcmp(name, "timeout") ? 500 : 20000;
    start_together(dir);
    e2w_comm *c = connect_rank(dir, timeout_ms);
    if (!strcmp(name, "allreduce"))
        case_allreduce(c);
    else if (!strcmp(name, "broadcast"))
        case_broadcast(c);
    else if (!strcmp(name, "allgather"))
        case_allgather(c);
    else if (!strcmp(name, "allgather_abort"))
        case_allgather_abort(c, dir);
    else if (!strcmp(name, "barrier"))
        case_barrier(c, dir);
    else if (!strcmp(name, "abort"))
        case_abort(c, dir);
    else if (!strcmp(name, "peer_exit"))
        case_peer_exit(c);
    else if (!strcmp(name, "timeout"))
        case_timeout(c);
    else if (!strcmp(name, "reducer"))
        case_reducer(c);
    else if (!strcmp(name, "spans"))
        case_spans(c);
    else if (!strcmp(name, "reducer_abort"))
        case_reducer_abort(c);
    else
        CHECK(!"unknown case");
    e2w_comm_free(c);
    return 0;
}

/* ---- parent ---- */

static int run_parent(const char *self, const char *name, int world) {
    char dir[] = "/tmp/e2-comm-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    pid_t pids[8];
    char ws[16], rs[16];
    snprintf(ws, sizeof ws, "%d", world);
    for (int r = 0; r < world; r++) {
        snprintf(rs, sizeof rs, "%d", r);
        pids[r] = fork();
        CHECK(pids[r] >= 0);
        if (pids[r] == 0) {
            execl(self, self, name, ws, rs, dir, (char *)NULL);
            _exit(127);
        }
    }
    int failed = 0, left = world;
    double end = now_s() + 25.0;
    while (left > 0) {
        int st;
        pid_t p = waitpid(-1, &st, WNOHANG);
        if (p > 0) {
            left--;
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "a rank of %s failed (status 0x%x)\n", name, st);
                failed = 1;
            }
            continue;
        }
        if (now_s() > end) {
            fprintf(stderr, "%s: ranks still running after 25 s: killing them\n", name);
            for (int r = 0; r < world; r++) kill(pids[r], SIGKILL);
            while (waitpid(-1, NULL, 0) > 0) {
            }
            failed = 1;
            break;
        }
        sleep_ms(10);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) failed = 1;
    return failed;
}

int main(int argc, char **argv) {
    /* As in e2worker: a peer that dies closes its sockets, and the next
     * write to one must fail with EPIPE, not kill this rank. */
    signal(SIGPIPE, SIG_IGN);
    if (argc == 5) {
        g_world = atoi(argv[2]);
        g_rank = atoi(argv[3]);
        return run_rank(argv[1], argv[4]);
    }
    if (argc != 3 || atoi(argv[2]) < 2 || atoi(argv[2]) > 8) {
        fprintf(stderr, "usage: test_comm CASE W (2 <= W <= 8)\n");
        return 2;
    }
    return run_parent("/proc/self/exe", argv[1], atoi(argv[2]));
}
