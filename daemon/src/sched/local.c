/* local.c -- `e2d --local-workers N`: the embedded default, one machine
 * and one command. Each worker is `e2worker --coordinator <listen addr>`,
 * spawned with uv_spawn in its own session (so its process group id is
 * its pid and a cancel can signal the whole group), stdout and stderr
 * appended to <state-dir>/workers/local-<i>.log, restarted when it dies
 * with a backoff that doubles from 0.5 s to 30 s and resets after a minute
 * of life. Unless OMP_NUM_THREADS is set, each worker gets
 * max(1, cores / N) OpenMP threads. Its pid is kept in
 * workers/local-<i>.pid so that an e2d that was killed -9 can stop the
 * orphans at its next start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "local.h"

#define LOCAL_BACKOFF_MIN_MS 500
#define LOCAL_BACKOFF_MAX_MS 30000
#define LOCAL_STABLE_MS      60000

extern char **environ;

static void local_spawn(e2d_local *l);

static void local_pidfile(const e2d_server *srv, int i, char *out, size_t n) {
    snprintf(out, n, "%s/workers/local-%d.pid", srv->cfg.state_dir, i);
}

static void local_closed(uv_handle_t *h) {
    e2d_local *l = h->data;
    l->alive = 0;
}

static void local_restart(uv_timer_t *t) {
    local_spawn(t->data);
}

/* Waits out the backoff, then tries again; doubles the backoff. */
static void local_backoff(e2d_local *l) {
    uv_timer_start(&l->timer, local_restart, (uint64_t)l->backoff_ms, 0);
    l->backoff_ms *= 2;
    if (l->backoff_ms > LOCAL_BACKOFF_MAX_MS) l->backoff_ms = LOCAL_BACKOFF_MAX_MS;
}

/* A failed uv_spawn still leaves a handle to close before it is reused. */
static void local_spawn_failed(uv_handle_t *h) {
    e2d_local *l = h->data;
    if (!l->srv->shutting_down) local_backoff(l);
}

static void local_exited(uv_process_t *p, int64_t status, int sig) {
    e2d_local *l = p->data;
    e2d_server *srv = l->srv;
    char pf[E2_JOBDIR_PATHLEN];
    int pid = l->pid;
    int64_t lived = e2d_mono_ms() - l->started_ms;
    local_pidfile(srv, l->index, pf, sizeof pf);
    unlink(pf);
    /* Its children (the group) go with it: a trainer must not outlive it. */
    kill(-pid, SIGKILL);
    uv_close((uv_handle_t *)p, local_closed);
    e2d_log("local worker %d (pid %d) %s %lld", l->index, pid,
            sig ? "killed by signal" : "exited with code", (long long)(sig ? sig : status));
    if (srv->local_exited) srv->local_exited(srv, pid, status, sig);
    if (srv->shutting_down) return;
    if (lived > LOCAL_STABLE_MS) l->backoff_ms = LOCAL_BACKOFF_MIN_MS;
    local_backoff(l);
}

static void local_spawn(e2d_local *l) {
    e2d_server *srv = l->srv;
    char logp[E2_JOBDIR_PATHLEN], pf[E2_JOBDIR_PATHLEN], idx[32], pid[32];
    char omp[48];
    char *args[8] = { srv->cfg.worker_bin, "--coordinator", srv->cfg.listen };
    int na = 3;
    char **env;
    size_t n = 0;
    int fd, rc;
    uv_process_options_t o;
    uv_stdio_container_t io[3];
    if (srv->shutting_down || l->alive) return;
    /* The workers check e2d's data roots again before opening a file. */
    if (srv->cfg.data_roots[0]) {
        args[na++] = "--data-roots";
        args[na++] = srv->cfg.data_roots;
    }
    if (srv->cfg.export_root[0]) {
        args[na++] = "--export-root";
        args[na++] = srv->cfg.export_root;
    }
    snprintf(logp, sizeof logp, "%s/workers/local-%d.log", srv->cfg.state_dir, l->index);
    if ((fd = open(logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644)) < 0) {
        e2d_log("local worker %d: open %s: %s", l->index, logp, strerror(errno));
        uv_timer_start(&l->timer, local_restart, LOCAL_BACKOFF_MAX_MS, 0);
        return;
    }
    while (environ[n]) n++;
    if (!(env = calloc(n + 4, sizeof *env))) {
        close(fd);
        return;
    }
    memcpy(env, environ, n * sizeof *env);
    snprintf(idx, sizeof idx, "E2_LOCAL_WORKER_INDEX=%d", l->index);
    env[n] = "E2_SPAWNED_BY_E2D=1";
    env[n + 1] = idx;
    /* N workers each running OpenMP on every core oversubscribe the
     * machine (a 2-rank job ran ~15x slower): each gets cores / N threads
     * unless the user chose. */
    if (!getenv("OMP_NUM_THREADS")) {
        unsigned cores = uv_available_parallelism();
        unsigned t = cores / (unsigned)srv->nlocals;
        snprintf(omp, sizeof omp, "OMP_NUM_THREADS=%u", t ? t : 1);
        env[n + 2] = omp;
    }
    memset(&o, 0, sizeof o);
    io[0].flags = UV_IGNORE;
    io[1].flags = io[2].flags = UV_INHERIT_FD;
    io[1].data.fd = io[2].data.fd = fd;
    o.file = srv->cfg.worker_bin;
    o.args = args;
    o.env = env;
    o.exit_cb = local_exited;
    o.flags = UV_PROCESS_DETACHED;
    o.stdio = io;
    o.stdio_count = 3;
    l->proc.data = l;
    rc = uv_spawn(srv->loop, &l->proc, &o);
    free(env);
    close(fd);
    if (rc < 0) {
        e2d_log("local worker %d: spawn %s: %s", l->index, srv->cfg.worker_bin, uv_strerror(rc));
        uv_close((uv_handle_t *)&l->proc, local_spawn_failed);
        return;
    }
    l->alive = 1;
    l->pid = l->proc.pid;
    l->started_ms = e2d_mono_ms();
    local_pidfile(srv, l->index, pf, sizeof pf);
    snprintf(pid, sizeof pid, "%d\n", l->pid);
    e2_write_file_atomic(pf, pid, strlen(pid), NULL, 0);
    e2d_log("local worker %d started (pid %d)", l->index, l->pid);
}

int e2_local_init(e2d_server *srv, e2_local_exit_fn on_exit, char *err, size_t errlen) {
    char dir[E2_JOBDIR_PATHLEN];
    if (!srv->cfg.local_workers) return 0;
    srv->local_exited = on_exit;
    if (access(srv->cfg.worker_bin, X_OK) < 0)
        return e2_errf(err, errlen,
                       "--local-workers: %s is not an executable (%s): give "
                       "--worker-bin",
                       srv->cfg.worker_bin, strerror(errno));
    snprintf(dir, sizeof dir, "%s/workers", srv->cfg.state_dir);
    if (e2_mkdir_p(dir, 0755, err, errlen) < 0) return E2_ERR;
    if (!(srv->locals = calloc((size_t)srv->cfg.local_workers, sizeof *srv->locals)))
        return e2_errf(err, errlen, "out of memory");
    srv->nlocals = srv->cfg.local_workers;
    for (int i = 0; i < srv->nlocals; i++) {
        e2d_local *l = &srv->locals[i];
        l->srv = srv;
        l->index = i;
        l->backoff_ms = LOCAL_BACKOFF_MIN_MS;
        uv_timer_init(srv->loop, &l->timer);
        l->timer.data = l;
    }
    return 0;
}

void e2_local_start(e2d_server *srv) {
    for (int i = 0; i < srv->nlocals; i++) local_spawn(&srv->locals[i]);
}

void e2_local_stop(e2d_server *srv) {
    for (int i = 0; i < srv->nlocals; i++) {
        e2d_local *l = &srv->locals[i];
        uv_timer_stop(&l->timer);
        if (l->alive) kill(-l->pid, SIGTERM);
    }
}

void e2_local_kill(e2d_server *srv) {
    for (int i = 0; i < srv->nlocals; i++)
        if (srv->locals[i].alive) kill(-srv->locals[i].pid, SIGKILL);
}

int e2_local_all_exited(e2d_server *srv) {
    for (int i = 0; i < srv->nlocals; i++)
        if (srv->locals[i].alive) return 0;
    return 1;
}

void e2_local_close(e2d_server *srv) {
    for (int i = 0; i < srv->nlocals; i++) uv_close((uv_handle_t *)&srv->locals[i].timer, NULL);
}

int e2_local_owns_pid(e2d_server *srv, int pid) {
    for (int i = 0; i < srv->nlocals; i++)
        if (srv->locals[i].alive && srv->locals[i].pid == pid) return 1;
    return 0;
}

/* A pid from a pid file is only signalled when its command line still
 * says it is an e2worker dialling a coordinator (pids are reused). */
static int local_is_worker(int pid) {
    char p[64], cmd[4096];
    ssize_t n;
    int fd, found = 0;
    snprintf(p, sizeof p, "/proc/%d/cmdline", pid);
    if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0) return 0;
    n = read(fd, cmd, sizeof cmd - 1);
    close(fd);
    for (ssize_t i = 0; i < n; i += (ssize_t)strlen(cmd + i) + 1) {
        cmd[n] = 0;
        found |= !strcmp(cmd + i, "--coordinator");
    }
    return found;
}

void e2_local_reap_stale(e2d_server *srv) {
    char dir[E2_JOBDIR_PATHLEN], pf[E2_JOBDIR_PATHLEN + 300], buf[32];
    DIR *d;
    struct dirent *e;
    snprintf(dir, sizeof dir, "%s/workers", srv->cfg.state_dir);
    if (!(d = opendir(dir))) return;
    while ((e = readdir(d))) {
        int fd, pid;
        ssize_t n;
        if (strncmp(e->d_name, "local-", 6) || !strstr(e->d_name, ".pid")) continue;
        snprintf(pf, sizeof pf, "%s/%s", dir, e->d_name);
        if ((fd = open(pf, O_RDONLY | O_CLOEXEC)) < 0) continue;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = 0;
        pid = atoi(buf);
        if (pid > 1 && local_is_worker(pid)) {
            e2d_log("stopping local worker pid %d left by a previous e2d", pid);
            kill(-pid, SIGKILL);
        }
        unlink(pf);
    }
    closedir(d);
}
