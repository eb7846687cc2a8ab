/* agent.h -- e2worker's agent mode: `e2worker --coordinator ADDR`.
 *
 * Library e2w_agent, prefix e2w_agent_. The agent is the worker side of
 * e2.v1.WorkerControl (proto/e2/v1/worker.proto): it registers with e2d,
 * heartbeats from its control thread (progress and the trainer's log lines
 * go up, Assignment / Cancel / Abort commands come down), runs each
 * assigned rank in a training thread, reports checkpoints with sizes and
 * SHA-256 and, at the end, how the rank ended (ReportDone).
 *
 * Threads:
 *   control  -- the thread that calls e2w_agent_run: RegisterWorker,
 *               Heartbeat every heartbeat_interval_ms, commands, ReportDone;
 *               re-registers on NOT_FOUND and retries with backoff while
 *               e2d is unreachable (an e2d restart never stops a rank).
 *   training -- one per assignment: runs the rank through a runner (the
 *               trainer by default); the hooks below are called from it.
 * e2w_agent_stop may be called from any thread.
 *
 * Errors follow common/base/base.h: negative return, one line in err. */
#ifndef E2W_AGENT_H
#define E2W_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/worker.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct e2w_agent e2w_agent;
typedef struct e2w_agent_job e2w_agent_job;

/* How a rank ended; values are e2.v1.Outcome's. */
typedef struct {
    int outcome;      /* E2__V1__OUTCOME__OUTCOME_* */
    int exit_code;    /* 0 on success */
    char reason[512]; /* one line for humans; empty on success */
    char *eval_json;  /* rank 0: eval.json text (malloc'd, freed by the agent) or NULL */
    /* rank 0: evaluation results, each row and the array malloc'd (freed by
     * the agent); NULL when none */
    E2__V1__EvalResult **eval;
    size_t n_eval;
} e2w_agent_result;

/* Runs one rank to its end (in the training thread) and fills *result.
 * It must poll e2w_agent_job_should_stop at every step boundary. */
typedef void (*e2w_agent_runner)(e2w_agent_job *job, e2w_agent_result *result, void *data);

/* At most this many `env.NAME = value` lines in a --config file. */
#define E2W_AGENT_MAX_ENV 64

typedef struct {
    const char *coordinator; /* "unix:/path" or "host:port" */
    const char *device;      /* "cpu" or "cuda" */
    uint32_t device_index;   /* GPU ordinal; 0 for cpu */
    const char *name;        /* reported hostname; NULL: gethostname() */
    int spawned_by_e2d;      /* started by e2d --local-workers */
    int rpc_timeout_ms;      /* per call; default 5000 */
    int backoff_max_ms;      /* ceiling of the reconnect backoff; default 2000 */
    const char *token_file;  /* bearer token (role worker) for e2d; NULL: none */
    const char *tls_ca;      /* PEM CA of e2d's certificate: TLS; NULL: plaintext */
    const char *tls_cert;    /* client certificate and key for mutual TLS */
    const char *tls_key;
    /* Where this machine's collectives listen (E2_COMM_IFACE, E2_COMM_HOST,
     * which e2w_agent_main sets from these); NULL: the environment's. */
    const char *comm_iface;
    const char *comm_host;
    /* Data access (e2_spec_check_roots): ':'-separated folders the files
     * a spec names must resolve under, and the folder output_dir must be
     * under; NULL: no check. */
    const char *data_roots;
    const char *export_root;
    /* The --config file's text, which the strings above may point into
     * (malloc'd; released by e2w_agent_args_free), and its `env.NAME =
     * value` lines: env[i][0] the name, env[i][1] the value. */
    char *config_text;
    const char *env[E2W_AGENT_MAX_ENV][2];
    int n_env;
    e2w_agent_runner runner; /* NULL: the trainer (worker/train) */
    void *runner_data;
    /* Called from the training thread with each trainer log line (no '\n')
     * before it is queued for e2d; NULL: none. e2worker prints them. */
    void (*on_log)(const char *line, void *data);
    void *on_log_data;
    /* The agent's own status lines ("registered as w-3", "e2d unreachable:
     * retrying"); NULL: none. Called from the control thread. */
    void (*on_event)(const char *line, void *data);
    void *on_event_data;
} e2w_agent_config;

/* ---- the agent ---- */

/* Fills cfg from `e2worker [--config FILE] --coordinator ADDR [--device
 * cpu|cuda] [--device-index N] [--name NAME] [--spawned] ...` (argv[0] is
 * the program; strings point into argv or cfg->config_text). FILE holds
 * `key = value` lines, keys being the flags without dashes, plus `env.NAME
 * = value` for NCCL_* variables; '#' starts a comment. The environment
 * (E2_TOKEN_FILE, E2_TLS_*, E2_SPAWNED_BY_E2D=1) gives defaults, the file
 * overrides them and flags override the file. The file is read before
 * --help, so `--config FILE --help` checks it. Returns 0, 1 for --help, or
 * E2_ERR naming the bad flag, or FILE:LINE and the bad key or value. Call
 * e2w_agent_args_free(cfg) after it, whatever it returned. */
int e2w_agent_parse_args(int argc, char **argv, e2w_agent_config *cfg, char *err, size_t errlen);

/* Frees what e2w_agent_parse_args allocated in cfg (the config file's
 * text); strings of cfg that came from the file are invalid after it. */
void e2w_agent_args_free(e2w_agent_config *cfg);

/* Usage text of the flags above. */
const char *e2w_agent_usage(void);

int e2w_agent_new(e2w_agent **out, const e2w_agent_config *cfg, char *err, size_t errlen);

/* The control loop; returns after e2w_agent_stop once the current rank (if
 * any) has stopped and its ReportDone was sent (or could not be). */
int e2w_agent_run(e2w_agent *a, char *err, size_t errlen);

/* Asks the agent to end: a running rank stops at its next step boundary
 * (graceful = 1) or as soon as possible (graceful = 0). Any thread. */
void e2w_agent_stop(e2w_agent *a, int graceful);

/* The worker id of the current registration ("" before the first one),
 * copied into buf. */
void e2w_agent_worker_id(e2w_agent *a, char *buf, size_t len);

void e2w_agent_free(e2w_agent *a);

/* `e2worker --coordinator ...`: parse, run until SIGTERM/SIGINT, exit code. */
int e2w_agent_main(int argc, char **argv);

/* ---- hooks for runners (training thread) ---- */

/* The assignment this rank runs (spec, rank, world size, job dir, resume
 * checkpoint, start step); valid for the whole run. */
const E2__V1__Assignment *e2w_agent_job_assignment(const e2w_agent_job *job);

/* Stop levels returned by e2w_agent_job_should_stop. */
#define E2W_AGENT_RUN 0 /* keep training */
#define E2W_AGENT_CANCEL \
    1                     /* Cancel: stop at this step boundary; a final
                               checkpoint is welcome if it fits the deadline */
#define E2W_AGENT_ABORT 2 /* Abort or worker shutdown: stop now, no checkpoint */

int e2w_agent_job_should_stop(e2w_agent_job *job);

/* Unix ms of the Cancel's deadline, 0 when no Cancel arrived. */
int64_t e2w_agent_job_cancel_deadline(e2w_agent_job *job);

/* Progress of the last finished optimizer step; the next heartbeat carries
 * the latest one. */
void e2w_agent_job_progress(e2w_agent_job *job, uint32_t step, double loss, double lr,
                            double grad_norm, double tokens_per_second);

/* One trainer output line (a trailing '\n' is dropped); batched into the
 * heartbeats. Lines beyond the queue's bound are dropped and counted. */
void e2w_agent_job_log(e2w_agent_job *job, const char *line);

/* The rank wrote its files of checkpoint `step` under
 * <job_dir>/checkpoints/step_<step>.tmp/ and fsynced them: hash them and
 * ReportCheckpoint. `names` lists this rank's files relative to that
 * directory (n_names of them); NULL: every regular file below it. Retries
 * while e2d is unreachable. *committed (may be NULL) is set when this report
 * completed the checkpoint. */
int e2w_agent_job_checkpoint(e2w_agent_job *job, uint32_t step, const char *const *names,
                             size_t n_names, int *committed, char *err, size_t errlen);

/* Rendezvous store of the job attempt (e2d's RendezvousPut/Get), for the
 * collectives' set-up. get waits up to timeout_ms; E2_NOTFOUND when the key
 * was not put in time. *value is malloc'd. */
int e2w_agent_job_rdzv_put(e2w_agent_job *job, const char *key, const void *value, size_t len,
                           char *err, size_t errlen);
int e2w_agent_job_rdzv_get(e2w_agent_job *job, const char *key, int timeout_ms, void **value,
                           size_t *len, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
