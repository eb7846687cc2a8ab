/* ctl.h: e2ctl's parsed command line and the helpers its commands share.
 *
 * main.c parses options and dispatches; commands.c holds one function per
 * sub-command (each talks to e2d over e2_rpc and returns an exit code);
 * print.c turns API messages into human output. */
#ifndef E2_CTL_H
#define E2_CTL_H

#include <stddef.h>
#include <stdint.h>

#include "e2/v1/coordinator.pb-c.h"
#include "rpc.h"

/* Exit codes (documented in `e2ctl --help`). */
#define CTL_EXIT_OK          0   /* done; with --wait/watch: job SUCCEEDED */
#define CTL_EXIT_JOB_FAILED  1   /* --wait/watch: the job ended FAILED */
#define CTL_EXIT_JOB_OTHER   2   /* --wait/watch: CANCELLED (or stream ended early) */
#define CTL_EXIT_REJECTED    3   /* e2d answered with an error (bad spec, unknown job, ...) */
#define CTL_EXIT_UNREACHABLE 4   /* e2d could not be reached or timed out */
#define CTL_EXIT_USAGE       64  /* bad command line */
#define CTL_EXIT_INPUT       65  /* unreadable or invalid spec file or --set */
#define CTL_EXIT_INTERRUPTED 130 /* Ctrl-C while following a job (it keeps running) */

#define CTL_MAX_LIST         64 /* repeated options (--set, --state, --label) */
#define CTL_CALL_TIMEOUT_MS  30000

typedef struct {
    const char *command;
    const char *server;
    const char *token_file;
    const char *tls_ca, *tls_cert, *tls_key;
    int json;
    const char *positional[4];
    int n_positional;
    const char *sets[CTL_MAX_LIST];
    int n_sets;
    const char *states[CTL_MAX_LIST];
    int n_states;
    const char *labels[CTL_MAX_LIST];
    int n_labels;
    int wait;
    const char *request_id;
    int has_grace;
    uint32_t grace;
    int follow;
    uint32_t attempt;
    int rank; /* -1: all */
    int all;  /* workers --all: include LOST */
} ctl_args;

/* Connection state of one run of e2ctl. */
typedef struct {
    const ctl_args *args;
    e2_rpc_client *client;
    char target[512];
} ctl_ctx;

/* Print "e2ctl: <message>" on stderr (one line). */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Unary call of Coordinator/<method>; on failure prints one line and
 * returns the exit code (CTL_EXIT_REJECTED / CTL_EXIT_UNREACHABLE); 0 and
 * *response on success. */
int ctl_call(ctl_ctx *ctx, const char *method, const ProtobufCMessage *request,
             const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response);
/* The exit code and the one line for a failed RPC status. */
int ctl_rpc_failed(ctl_ctx *ctx, const char *method, int code, const char *message);

/* Print a message as indented JSON on stdout. */
void ctl_print_json(const ProtobufCMessage *msg);

/* print.c */
const char *ctl_state_name(E2__V1__JobState s); /* "RUNNING" */
int ctl_parse_state(const char *text, E2__V1__JobState *out);
const char *ctl_worker_state_name(E2__V1__WorkerState s);
void ctl_format_duration(double seconds, char *buf, size_t len); /* "1h02m", "3m05s", "12s" */
/* A server-provided string made safe for a terminal: C0 controls, DEL,
 * C1 controls (U+0080..U+009F in UTF-8, or such raw bytes) and bytes that
 * are not UTF-8 become \xNN; ctl_esc_lines leaves '\n' as is. The
 * result lives in one of 8 rotating buffers (grown to fit; never freed),
 * so up to 8 may appear in one printf. NULL gives "". */
const char *ctl_esc(const char *s);
const char *ctl_esc_lines(const char *s);

void ctl_print_job(const E2__V1__Job *job);
void ctl_print_job_row_header(void);
void ctl_print_job_row(const E2__V1__Job *job, int64_t now_ms);
void ctl_print_eval(const E2__V1__EvalResult *const *eval, size_t n);
/* One-line progress for an event ("step 12/100 loss 3.214 1.2k tok/s ETA 1m05s"). */
void ctl_format_progress(const E2__V1__JobEvent *ev, char *buf, size_t len);
int64_t ctl_now_ms(void);

/* commands.c: each returns the process exit code. */
int ctl_submit(ctl_ctx *ctx);
int ctl_status(ctl_ctx *ctx);
int ctl_list(ctl_ctx *ctx);
int ctl_cancel(ctl_ctx *ctx);
int ctl_watch(ctl_ctx *ctx);
int ctl_logs(ctl_ctx *ctx);
int ctl_workers(ctl_ctx *ctx);
int ctl_metrics(ctl_ctx *ctx);
int ctl_eval(ctl_ctx *ctx);
/* Follow a job until it is terminal, printing progress; returns the exit
 * code for the final state. */
int ctl_follow(ctl_ctx *ctx, const char *job_id);

#endif
