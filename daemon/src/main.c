/* main.c -- e2d's entry point: settings, the state directory lock, the
 * store, startup recovery, the RPC server, the cron tick, local workers,
 * and the graceful shutdown on SIGTERM/SIGINT:
 *
 *   stop accepting calls, give calls in flight --shutdown-grace, end
 *   streams with UNAVAILABLE, SIGTERM the local workers (SIGKILL 3 s
 *   later, E2D_KILL_AFTER_MS), then close the loop and SQLite. Jobs left
 *   running are found STARTING/RUNNING at the next start and recovered
 *   (see --help). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "authz.h"
#include "base.h"
#include "http.h"
#include "local.h"
#include "scheduler.h"

static void e2d_rpc_log(int severity, const char *file, int line, const char *message, void *data) {
    (void)data;
    if (severity >= 2) e2d_log("grpc: %s (%s:%d)", message, file, line);
}

static void e2d_close_all(e2d_server *srv) {
    uv_close((uv_handle_t *)&srv->cron, NULL);
    uv_close((uv_handle_t *)&srv->batch_check, NULL);
    e2_sched_close(srv);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    e2_local_close(srv);
}

static void e2d_rpc_down(e2_rpc_server *rpc) {
    e2d_server *srv = e2_rpc_server_data(rpc);
    e2_rpc_server_free(rpc);
    srv->rpc = NULL;
    srv->rpc_down = 1;
}

/* A --local-workers process exited (local.c's on_exit): an entry point of
 * the loop like any other, so the open batch commits first. */
static void e2d_local_exited(e2d_server *srv, int pid, int64_t status, int sig) {
    e2d_batch_flush(srv);
    e2_sched_process_exited(srv, pid, status, sig);
}

static void e2d_cron(uv_timer_t *t) {
    e2d_server *srv = t->data;
    e2d_batch_flush(srv);
    if (srv->shutting_down) {
        if (srv->kill_locals_ms && e2d_mono_ms() >= srv->kill_locals_ms) {
            e2_local_kill(srv);
            srv->kill_locals_ms = 0;
        }
        if (srv->rpc_down && e2_local_all_exited(srv)) {
            uv_timer_stop(&srv->cron);
            e2d_close_all(srv);
        }
        return;
    }
    e2_sched_cron(srv);
    e2_wapi_cron(srv);
    e2_logs_cron(srv);
}

static void e2d_shutdown(uv_signal_t *s, int signum) {
    e2d_server *srv = s->data;
    if (srv->shutting_down) return;
    e2d_batch_flush(srv);
    srv->shutting_down = 1;
    e2d_log("signal %d: shutting down (grace %.1f s)", signum, srv->cfg.shutdown_grace);
    e2_notify_stopping(&srv->notify);
    e2_http_close(srv->http);
    srv->http = NULL;
    e2d_waiters_finish_all(srv);
    e2_rpc_server_shutdown(srv->rpc, (uint64_t)(srv->cfg.shutdown_grace * 1000), e2d_rpc_down);
    e2_local_stop(srv);
    srv->kill_locals_ms = e2d_mono_ms() + E2D_KILL_AFTER_MS;
}

/* The state directory holds every spec (e2d.db, jobs/<id>/spec.json): a
 * directory e2d creates is 0750, and one that others may enter loses
 * those bits (with a warning); e2d.db, its -wal/-shm and e2d.lock are
 * 0600, wider ones are tightened. SQLite gives -wal/-shm the mode of
 * e2d.db, so the database file is created here first. */
static int e2d_private_state(const char *dir, char *err, size_t errlen) {
    static const char *const files[] = { "e2d.db", "e2d.db-wal", "e2d.db-shm", "e2d.lock" };
    char p[E2_JOBDIR_PATHLEN];
    struct stat st;
    int fd;
    if (e2_mkdir_p(dir, 0750, err, errlen) < 0) return E2_ERR;
    if (stat(dir, &st) < 0) return e2_errf(err, errlen, "state dir %s: %s", dir, strerror(errno));
    if ((st.st_mode & 0007) && st.st_uid == geteuid()) {
        if (chmod(dir, st.st_mode & 0770) < 0)
            return e2_errf(err, errlen, "chmod %s: %s", dir, strerror(errno));
        e2d_log("warning: state dir %s was open to other users (mode %03o); "
                "now %03o",
                dir, (unsigned)(st.st_mode & 0777), (unsigned)(st.st_mode & 0770));
    } else if (st.st_mode & 0007) {
        e2d_log("warning: state dir %s is open to other users (mode %03o) "
                "and not owned by e2d's user: run chmod o-rwx %s",
                dir, (unsigned)(st.st_mode & 0777), dir);
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        if (i == 0 && (fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) close(fd);
        if (stat(p, &st) < 0 || !(st.st_mode & 0077)) continue;
        if (chmod(p, 0600) < 0) return e2_errf(err, errlen, "chmod %s: %s", p, strerror(errno));
        e2d_log("warning: %s was readable by others (mode %03o); now 600", p,
                (unsigned)(st.st_mode & 0777));
    }
    return 0;
}

/* One e2d per state directory: a second one would corrupt nothing in
 * SQLite, but would double-schedule jobs. */
static int e2d_lock(e2d_server *srv, char *err, size_t errlen) {
    char p[E2_JOBDIR_PATHLEN];
    snprintf(p, sizeof p, "%s/e2d.lock", srv->cfg.state_dir);
    if ((srv->lock_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return e2_errf(err, errlen, "open %s: %s", p, strerror(errno));
    if (flock(srv->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return e2_errf(err, errlen, "another e2d is running on state dir %s (%s is locked)",
                       srv->cfg.state_dir, p);
    return 0;
}

static int e2d_listen_http(e2d_server *srv, char *err, size_t errlen);

static int e2d_listen(e2d_server *srv, char *err, size_t errlen) {
    const char *addr = srv->cfg.listen;
    int port = 0;
    if (!strncmp(addr, "unix:", 5)) {
        /* Under our lock, a socket file left there is stale. */
        unlink(addr + 5);
    }
    /* The HTTP listener starts before the gRPC server: a refused
     * --http-listen (port in use, plaintext on a public address) then
     * leaves a server that was never started, which main() can free, and
     * its socket file goes with it. */
    if (e2_api_register(srv, err, errlen) < 0 || e2_wapi_register(srv, err, errlen) < 0 ||
        e2_authz_listen(srv, &port, err, errlen) < 0 || e2d_listen_http(srv, err, errlen) < 0 ||
        e2_rpc_server_start(srv->rpc, err, errlen) < 0)
        return E2_ERR;
    if (port)
        e2d_log("listening on %s (port %d)", addr, port);
    else
        e2d_log("listening on %s", addr);
    return 0;
}

/* HTTP requests follow the gRPC token rules: allowed when the token's
 * role may call the method the request mirrors. */
static int e2d_http_auth(const char *authorization, const char *method, char *msg, size_t msglen,
                         void *data) {
    e2_rpc_principal who;
    e2d_server *srv = data;
    switch (e2_authz_check(authorization, method, e2_rpc_server_method_role(srv->rpc, method), &who,
                           msg, msglen)) {
    case E2_RPC_OK: return 0;
    case E2_RPC_UNAUTHENTICATED: return 401;
    default: return 403;
    }
}

/* The dashboards' HTTP listener (--http-listen), once the gRPC setup
 * loaded the tokens. */
static int e2d_listen_http(e2d_server *srv, char *err, size_t errlen) {
    e2_http_options opt = { srv->cfg.http_listen,
                            srv->cfg.http_root,
                            e2_authz_enabled() ? e2_authz_http : NULL,
                            srv,
                            srv->cfg.http_metrics_public,
                            srv->cfg.insecure };
    int port = 0;
    if (!srv->cfg.http_listen[0]) return 0;
    if (e2_authz_enabled()) opt.auth = e2d_http_auth;
    if (e2_http_start(&srv->http, srv, &opt, &port, err, errlen) < 0) return E2_ERR;
    e2d_log("http on %s (port %d), pages from %s", srv->cfg.http_listen, port, srv->cfg.http_root);
    return 0;
}

static int e2d_run_server(e2d_server *srv, char *err, size_t errlen) {
    char status[600];
    char p[E2_JOBDIR_PATHLEN];
    double hb = srv->cfg.heartbeat_timeout * 1000.0;
    snprintf(p, sizeof p, "%s/jobs", srv->cfg.state_dir);
    if (e2d_private_state(srv->cfg.state_dir, err, errlen) < 0 ||
        e2_mkdir_p(p, 0755, err, errlen) < 0 || e2d_lock(srv, err, errlen) < 0)
        return E2_ERR;
    snprintf(p, sizeof p, "%s/e2d.db", srv->cfg.state_dir);
    if (e2_store_open(&srv->db, p, E2_STORE_SCHEMA_VERSION, err, errlen) < 0) return E2_ERR;
    srv->hb_timeout_ms = (int64_t)hb;
    srv->hb_interval_ms = (int64_t)(hb / 4 < 1000 ? hb / 4 : 1000);
    if (srv->hb_interval_ms < 20) srv->hb_interval_ms = 20;
    srv->hang_timeout_ms = (int64_t)(srv->cfg.hang_timeout * 1000.0);
    srv->loop = uv_default_loop();
    e2_local_reap_stale(srv);
    if (e2_local_init(srv, e2d_local_exited, err, errlen) < 0 ||
        e2_sched_recover(srv, err, errlen) < 0)
        return E2_ERR;
    e2_rpc_log_set(e2d_rpc_log, srv);
    if (!(srv->rpc = e2_rpc_server_new(srv->loop, srv)))
        return e2_errf(err, errlen, "out of memory");
    if (e2d_listen(srv, err, errlen) < 0) return E2_ERR;
    e2d_batch_start(srv);
    uv_timer_init(srv->loop, &srv->cron);
    srv->cron.data = srv;
    uv_timer_start(&srv->cron, e2d_cron, E2D_CRON_MS, E2D_CRON_MS);
    uv_signal_init(srv->loop, &srv->sigterm);
    uv_signal_init(srv->loop, &srv->sigint);
    srv->sigterm.data = srv->sigint.data = srv;
    uv_signal_start(&srv->sigterm, e2d_shutdown, SIGTERM);
    uv_signal_start(&srv->sigint, e2d_shutdown, SIGINT);
    e2_local_start(srv);
    e2d_log("state in %s (%d jobs stored), heartbeat timeout %.1f s", srv->cfg.state_dir,
            e2_store_job_count(srv->db), srv->cfg.heartbeat_timeout);
    if (!srv->cfg.data_roots[0])
        e2d_log("warning: no data-roots: jobs may read any file e2d's user "
                "can read (set data-roots, see docs/security.md)");
    else
        e2d_log("data roots %s%s%s", srv->cfg.data_roots,
                srv->cfg.export_root[0] ? ", export root " : "", srv->cfg.export_root);
    snprintf(status, sizeof status, "serving on %s", srv->cfg.listen);
    if (e2_notify_ready(&srv->notify, srv->loop, status, err, errlen) < 0) return E2_ERR;
    uv_run(srv->loop, UV_RUN_DEFAULT);
    e2d_log("stopped");
    return 0;
}

int main(int argc, char **argv) {
    static e2d_server srv;
    char err[E2_ERRLEN], self[4096];
    size_t selflen = sizeof self;
    int rc;
    signal(SIGPIPE, SIG_IGN);
    srv.lock_fd = -1;
    e2_config_init(&srv.cfg);
    if (e2_config_parse(&srv.cfg, argc, argv, err, sizeof err) < 0) {
        fprintf(stderr, "e2d: %s\n", err);
        return 2;
    }
    if (srv.cfg.help) {
        fputs(e2_config_usage(), stdout);
        return 0;
    }
    if (uv_exepath(self, &selflen) < 0) snprintf(self, sizeof self, "%s", argv[0]);
    if (e2_config_finish(&srv.cfg, self, err, sizeof err) < 0) {
        fprintf(stderr, "e2d: %s\n", err);
        return 2;
    }
    rc = e2d_run_server(&srv, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "e2d: %s\n", err);
        if (srv.http) { /* a later step failed: close it, run its closes */
            e2_http_close(srv.http);
            srv.http = NULL;
            uv_run(srv.loop, UV_RUN_NOWAIT);
        }
    }
    if (srv.rpc) e2_rpc_server_free(srv.rpc);
    e2_sched_free(&srv);
    free(srv.locals);
    e2_store_close(srv.db);
    e2_authz_close();
    if (srv.loop) uv_loop_close(srv.loop);
    if (srv.lock_fd >= 0) close(srv.lock_fd);
    return rc < 0 ? 1 : 0;
}
