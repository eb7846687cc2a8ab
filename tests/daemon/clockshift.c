/* clockshift.c -- an LD_PRELOAD library for e2d's clock tests: steps the
 * wall clock (CLOCK_REALTIME) of the process it is loaded into by the
 * number of milliseconds stored (int64, native byte order) in the file
 * named by $E2D_TEST_CLOCK_FILE, read at every call (the file is mapped,
 * so the test changes the offset while e2d runs). CLOCK_MONOTONIC is left
 * alone: that is the point, e2d's durations must not see the step. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_fn)(clockid_t, struct timespec *);

static const volatile int64_t *clockshift_offset(void) {
    static const volatile int64_t *off;
    static int tried;
    if (!tried) {
        const char *path = getenv("E2D_TEST_CLOCK_FILE");
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        void *p = fd >= 0 ? mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
        if (fd >= 0) close(fd);
        off = p == MAP_FAILED ? NULL : p;
        tried = 1;
    }
    return off;
}

int clock_gettime(clockid_t id, struct timespec *ts) {
    static clock_fn real;
    const volatile int64_t *off;
    int rc;
    if (!real) real = (clock_fn)dlsym(RTLD_NEXT, "clock_gettime");
    rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE) &&
        (off = clockshift_offset()) && *off) {
        int64_t ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec + *off * 1000000;
        ts->tv_sec = ns / 1000000000;
        ts->tv_nsec = ns % 1000000000;
    }
    return rc;
}
