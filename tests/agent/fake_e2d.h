/* fake_e2d.h -- a scripted WorkerControl server for the agent's protocol
 * tests: it serves RegisterWorker / Heartbeat / ReportCheckpoint /
 * RendezvousPut/Get / ReportDone on a unix socket from its own libuv loop
 * thread, records what the agent sent, and hands out the commands a test
 * queues. Every field is read and written under `mu`. */
#ifndef E2_TESTS_FAKE_E2D_H
#define E2_TESTS_FAKE_E2D_H

#include <pthread.h>
#include <stdint.h>
#include <uv.h>

#include "e2/v1/worker.pb-c.h"
#include "rpc.h"

#define FAKE_MAX_CMDS  8
#define FAKE_MAX_LINES 4096
#define FAKE_MAX_FILES 8

typedef struct {
    pthread_mutex_t mu;
    /* registrations */
    int registers;
    char worker_id[32];
    char secret[32];           /* worker_secret issued at registration */
    char last_prev_secret[32]; /* previous_worker_secret of the last one */
    int bad_secrets;           /* requests refused for a wrong secret */
    char last_hostname[64], last_device[16], last_prev_id[32];
    int last_pid, last_spawned, last_running_step, last_had_running;
    int forget; /* answer the next Heartbeat NOT_FOUND */
    int stale;  /* the attempt is over: FAILED_PRECONDITION to
                                   heartbeats with progress and ReportDone */
    uint32_t interval_ms;
    /* heartbeats */
    int heartbeats, busy_heartbeats;
    uint32_t last_step;
    double last_loss;
    char *lines[FAKE_MAX_LINES];
    int n_lines;
    ProtobufCMessage *cmds[FAKE_MAX_CMDS]; /* E2__V1__Command, packed copies */
    int n_cmds;
    /* checkpoints */
    int ckpts;
    uint32_t ckpt_step;
    int ckpt_n_files;
    char ckpt_name[FAKE_MAX_FILES][64], ckpt_sha[FAKE_MAX_FILES][65];
    uint64_t ckpt_size[FAKE_MAX_FILES];
    /* done */
    int dones, refused_dones;
    int done_outcome, done_exit_code;
    uint32_t done_last_step; /* last_step when ReportDone arrived */
    char done_reason[256], done_eval[256];
    int64_t done_unix_ms;
    /* rendezvous: one key is enough for the tests */
    char rdzv_key[64];
    uint8_t rdzv_val[256];
    size_t rdzv_len;
    int rdzv_set;

    /* server plumbing */
    uv_loop_t loop;
    uv_async_t wake;
    e2_rpc_server *server;
    pthread_t thread;
    int stopping;
    char address[256];
} fake_e2d;

/* Starts serving on unix:<path>. Returns 0 or -1 (message on stderr). */
int fake_start(fake_e2d *f, const char *path);
/* Shuts the server down (calls in flight are cancelled) and joins it. */
void fake_stop(fake_e2d *f);
/* Frees what the records hold (lines, queued commands). */
void fake_free(fake_e2d *f);

/* Queues commands for the next Heartbeat. */
void fake_assign(fake_e2d *f, const char *job_id, uint32_t attempt, uint32_t rank, uint32_t world,
                 uint32_t steps, uint32_t ckpt_every, const char *job_dir);
void fake_cancel(fake_e2d *f, const char *job_id, uint32_t attempt, int64_t deadline_unix_ms);
void fake_abort(fake_e2d *f, const char *job_id, uint32_t attempt);

#endif
