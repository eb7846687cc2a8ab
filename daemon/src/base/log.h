/* log.h -- e2d's ground floor: its clocks and its log line (log.c). Every
 * layer of the daemon may call these; they call nothing of the daemon. */
#ifndef E2D_LOG_H
#define E2D_LOG_H

#include <stddef.h>
#include <stdint.h>

/* Wall clock (CLOCK_REALTIME), only for stored and shown timestamps. */
int64_t e2d_now_ms(void);
/* Monotonic clock (CLOCK_MONOTONIC) for every duration, timeout and
 * deadline: a step of the wall clock neither loses nor keeps workers. */
int64_t e2d_mono_ms(void);
/* Copies in to out with control characters (C0, DEL, C1) written as
 * \xNN, so that text from a client (a hostname, a reason) cannot forge
 * log lines or send terminal escapes. Returns the length written. */
size_t e2d_log_escape(char *out, size_t outlen, const char *in);
void e2d_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
