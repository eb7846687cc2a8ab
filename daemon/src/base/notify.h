/* notify.h -- e2d's systemd service notifications (prefix notify_).
 *
 * e2d.service is Type=notify: systemd counts e2d as started only once
 * READY=1 arrives, which e2d sends after its listeners are up and its state
 * is loaded, so units ordered After=e2d.service find a daemon that answers.
 * With WatchdogSec= set, systemd passes WATCHDOG_USEC and expects
 * WATCHDOG=1 at least that often; a uv timer on the loop sends it at half
 * the period, so a loop that stops turning (a handler stuck in SQLite, a
 * deadlock) gets e2d restarted. Outside systemd (no NOTIFY_SOCKET) every
 * function here does nothing. */
#ifndef E2D_NOTIFY_H
#define E2D_NOTIFY_H

#include <stdint.h>
#include <uv.h>

typedef struct e2_notify_state {
    uv_timer_t watchdog;
    int watchdog_on;        /* the timer was started */
    uint64_t watchdog_usec; /* systemd's period; 0 = none */
} e2_notify_state;

/* READY=1 with a status line, then the watchdog timer when systemd asked
 * for one. Returns < 0 with err set when WATCHDOG_USEC is malformed. */
int e2_notify_ready(e2_notify_state *n, uv_loop_t *loop, const char *status, char *err,
                    size_t errlen);
/* STOPPING=1 and the watchdog timer closed (its handle is closed: call once,
 * before the loop's last run). */
void e2_notify_stopping(e2_notify_state *n);

#endif
