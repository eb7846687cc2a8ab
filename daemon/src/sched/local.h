/* local.h -- `e2d --local-workers N` (local.c, prefix local_): spawns,
 * captures and restarts the worker processes. Part of the scheduler layer
 * but below sched.c: the scheduler asks it e2_local_owns_pid, and it reports
 * a process exit through the callback given to e2_local_init, never by
 * calling the scheduler. */
#ifndef E2D_LOCAL_H
#define E2D_LOCAL_H

#include "e2d.h"

/* Called when a spawned worker process exited (after local.c has closed
 * its handle and logged it); the scheduler's e2_sched_process_exited, passed
 * in by main.c, so that local.c calls nothing above it. */
typedef void (*e2_local_exit_fn)(e2d_server *srv, int pid, int64_t status, int sig);
/* Checks --worker-bin and prepares the workers/ folder (before serving);
 * on_exit is called for each worker process that exits. */
int e2_local_init(e2d_server *srv, e2_local_exit_fn on_exit, char *err, size_t errlen);
/* Spawns the workers (once the listener is up). */
void e2_local_start(e2d_server *srv);
/* SIGTERM to every local worker's process group; SIGKILL follows. */
void e2_local_stop(e2d_server *srv);
/* SIGKILL to every local worker's process group (after the grace). */
void e2_local_kill(e2d_server *srv);
/* Closes the restart timers (last step of shutdown). */
void e2_local_close(e2d_server *srv);
/* 1 once every local worker has exited. */
int e2_local_all_exited(e2d_server *srv);
/* Kills workers a previous e2d left behind (pid files). */
void e2_local_reap_stale(e2d_server *srv);
/* 1 when pid is one of ours (then its process group is its pid). */
int e2_local_owns_pid(e2d_server *srv, int pid);

#endif
