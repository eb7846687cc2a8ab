/* log.c -- e2d's clocks and its log line (split from main.c so that the
 * unit tests link them with e2d_core): e2d_now_ms (wall clock, stored
 * timestamps), e2d_mono_ms (every duration), e2d_log_escape and e2d_log. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "log.h"

int64_t e2d_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t e2d_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence at p (2..4), 0 if none. */
static size_t e2d_utf8_len(const unsigned char *p) {
    size_t n = p[0] >= 0xf0 && p[0] <= 0xf4  ? 4
               : p[0] >= 0xe0                ? 3
               : p[0] >= 0xc2 && p[0] < 0xe0 ? 2
                                             : 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    return n;
}

size_t e2d_log_escape(char *out, size_t outlen, const char *in) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    if (!outlen) return 0;
    for (const unsigned char *p = (const unsigned char *)in; *p;) {
        /* Valid UTF-8 passes except C1 controls (U+0080..U+009F, 0xc2
         * 0x80..0x9f); C0 controls, DEL and stray bytes become \xNN. */
        size_t n = e2d_utf8_len(p);
        unsigned c = *p;
        if (n == 2 && p[0] == 0xc2 && p[1] <= 0x9f) {
            c = p[1];
            n = 0;
            p++;
        }
        if (n) {
            if (o + n >= outlen) break;
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else if (c < 0x20 || c >= 0x7f) {
            if (o + 4 >= outlen) break;
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
            p++;
        } else {
            if (o + 1 >= outlen) break;
            out[o++] = (char)c;
            p++;
        }
    }
    out[o] = 0;
    return o;
}

void e2d_log(const char *fmt, ...) {
    char stamp[32], line[4096], safe[4096];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One line per message whatever its arguments hold (a worker's
     * hostname, a job's reason): no terminal escapes, no forged lines. */
    e2d_log_escape(safe, sizeof safe, line);
    fprintf(stderr, "%s.%03dZ e2d: %s\n", stamp, (int)(tv.tv_usec / 1000), safe);
}
