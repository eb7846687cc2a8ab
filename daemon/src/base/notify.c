/* notify.c -- sd_notify READY/WATCHDOG/STOPPING for e2d (see notify.h).
 * libsystemd's sd_notify does the socket work (abstract or path socket in
 * NOTIFY_SOCKET, credentials); it returns 0 when the variable is unset. */
#include "notify.h"

#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "base.h"

static void notify_watchdog_tick(uv_timer_t *t) {
    (void)t;
    sd_notify(0, "WATCHDOG=1");
}

int e2_notify_ready(e2_notify_state *n, uv_loop_t *loop, const char *status, char *err,
                    size_t errlen) {
    char msg[512];
    uint64_t usec = 0;
    int rc;
    memset(n, 0, sizeof *n);
    snprintf(msg, sizeof msg, "READY=1\nMAINPID=%d\nSTATUS=%s", (int)getpid(), status);
    sd_notify(0, msg);
    /* 0 keeps WATCHDOG_USEC in the environment: the local workers we spawn
     * ignore it, and a re-exec would need it. */
    rc = sd_watchdog_enabled(0, &usec);
    if (rc < 0)
        return e2_errf(err, errlen,
                       "WATCHDOG_USEC is not a valid period (%s); fix the "
                       "unit's WatchdogSec=",
                       strerror(-rc));
    if (rc == 0 || usec == 0) return 0;
    n->watchdog_usec = usec;
    uv_timer_init(loop, &n->watchdog);
    /* Half the period, as sd_watchdog_enabled(3) recommends; at least 1 ms. */
    uint64_t ms = usec / 2000 ? usec / 2000 : 1;
    uv_timer_start(&n->watchdog, notify_watchdog_tick, 0, ms);
    n->watchdog_on = 1;
    return 0;
}

void e2_notify_stopping(e2_notify_state *n) {
    sd_notify(0, "STOPPING=1");
    if (n->watchdog_on) {
        uv_close((uv_handle_t *)&n->watchdog, NULL);
        n->watchdog_on = 0;
    }
}
