/* commands.c: e2ctl's sub-commands, one function each. Every function
 * returns the process exit code (ctl.h) and prints errors as one line. */
#include "ctl.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pbjson.h"
#include "spec.h"

#define FREE_MSG(m) protobuf_c_message_free_unpacked((ProtobufCMessage *)(m), NULL)

static void print_json_line(const ProtobufCMessage *msg) {
    char *text = e2_pbjson_to_string(msg, 0);
    if (text != NULL) {
        puts(text);
        free(text);
    }
    fflush(stdout);
}

int ctl_submit(ctl_ctx *ctx) {
    const ctl_args *a = ctx->args;
    char err[1024];
    E2__V1__JobSpec *spec = e2_spec_load(a->positional[0], err, sizeof err);
    if (spec == NULL) {
        ctl_err("%s", err);
        return CTL_EXIT_INPUT;
    }
    for (int i = 0; i < a->n_sets; i++) {
        if (e2_spec_set_arg(spec, a->sets[i], err, sizeof err) != 0) {
            if (strncmp(err, "--set", 5) == 0)
                ctl_err("%s", err);
            else
                ctl_err("--set %s: %s", a->sets[i], err);
            e2_spec_free(spec);
            return CTL_EXIT_INPUT;
        }
    }
    E2__V1__SubmitJobRequest req = E2__V1__SUBMIT_JOB_REQUEST__INIT;
    req.spec = spec;
    req.request_id = (char *)a->request_id;
    E2__V1__SubmitJobResponse *resp = NULL;
    int rc = ctl_call(ctx, "SubmitJob", &req.base, &e2__v1__submit_job_response__descriptor,
                      (ProtobufCMessage **)&resp);
    e2_spec_free(spec);
    if (rc != 0) return rc;
    if (resp->job == NULL || resp->job->id == NULL) {
        ctl_err("e2d answered SubmitJob without a job id");
        FREE_MSG(resp);
        return CTL_EXIT_REJECTED;
    }
    char id[128];
    snprintf(id, sizeof id, "%s", resp->job->id);
    if (a->json && a->wait)
        print_json_line(&resp->base);
    else if (a->json)
        ctl_print_json(&resp->base);
    else if (resp->created)
        printf("%s submitted (%s)\n", id, ctl_state_name(resp->job->state));
    else
        printf("%s already submitted with request id %s (%s)\n", id,
               a->request_id != NULL ? a->request_id : "", ctl_state_name(resp->job->state));
    fflush(stdout);
    FREE_MSG(resp);
    return a->wait ? ctl_follow(ctx, id) : CTL_EXIT_OK;
}

static int get_job(ctl_ctx *ctx, const char *id, E2__V1__GetJobResponse **resp) {
    E2__V1__GetJobRequest req = E2__V1__GET_JOB_REQUEST__INIT;
    req.id = (char *)id;
    return ctl_call(ctx, "GetJob", &req.base, &e2__v1__get_job_response__descriptor,
                    (ProtobufCMessage **)resp);
}

int ctl_status(ctl_ctx *ctx) {
    E2__V1__GetJobResponse *resp = NULL;
    int rc = get_job(ctx, ctx->args->positional[0], &resp);
    if (rc != 0) return rc;
    if (ctx->args->json)
        ctl_print_json(&resp->base);
    else if (resp->job != NULL)
        ctl_print_job(resp->job);
    FREE_MSG(resp);
    return CTL_EXIT_OK;
}

int ctl_list(ctl_ctx *ctx) {
    const ctl_args *a = ctx->args;
    E2__V1__JobState states[CTL_MAX_LIST];
    for (int i = 0; i < a->n_states; i++) {
        if (ctl_parse_state(a->states[i], &states[i]) != 0) {
            ctl_err("--state %s: not a job state (pending, starting, running, "
                    "restarting, succeeded, failed, cancelling, cancelled)",
                    a->states[i]);
            return CTL_EXIT_USAGE;
        }
    }
    for (int i = 0; i < a->n_labels; i++) {
        const char *eq = strchr(a->labels[i], '=');
        if (eq == NULL || eq == a->labels[i]) {
            ctl_err("--label %s: expected key=value", a->labels[i]);
            return CTL_EXIT_USAGE;
        }
    }
    E2__V1__ListJobsRequest req = E2__V1__LIST_JOBS_REQUEST__INIT;
    req.n_states = (size_t)a->n_states;
    req.states = states;
    req.n_labels = (size_t)a->n_labels;
    req.labels = (char **)a->labels;
    req.has_page_size = 1;
    req.page_size = 500;

    /* Pages are kept until the end so that --json prints one message. */
    E2__V1__ListJobsResponse **pages = NULL;
    size_t n_pages = 0, n_jobs = 0;
    char token[512] = "";
    int rc = 0;
    for (;;) {
        req.page_token = token;
        E2__V1__ListJobsResponse *resp = NULL;
        rc = ctl_call(ctx, "ListJobs", &req.base, &e2__v1__list_jobs_response__descriptor,
                      (ProtobufCMessage **)&resp);
        if (rc != 0) break;
        E2__V1__ListJobsResponse **grown = realloc(pages, (n_pages + 1) * sizeof *grown);
        if (grown == NULL) {
            FREE_MSG(resp);
            ctl_err("out of memory");
            rc = CTL_EXIT_REJECTED;
            break;
        }
        pages = grown;
        pages[n_pages++] = resp;
        n_jobs += resp->n_jobs;
        if (resp->next_page_token == NULL || resp->next_page_token[0] == '\0') break;
        snprintf(token, sizeof token, "%s", resp->next_page_token);
    }
    if (rc == 0) {
        E2__V1__Job **all = calloc(n_jobs + 1, sizeof *all);
        size_t k = 0;
        for (size_t p = 0; p < n_pages; p++)
            for (size_t i = 0; i < pages[p]->n_jobs; i++) all[k++] = pages[p]->jobs[i];
        if (a->json) {
            E2__V1__ListJobsResponse merged = E2__V1__LIST_JOBS_RESPONSE__INIT;
            merged.n_jobs = n_jobs;
            merged.jobs = all;
            ctl_print_json(&merged.base);
        } else {
            int64_t now = ctl_now_ms();
            ctl_print_job_row_header();
            for (size_t i = 0; i < n_jobs; i++) ctl_print_job_row(all[i], now);
        }
        free(all);
    }
    for (size_t p = 0; p < n_pages; p++) FREE_MSG(pages[p]);
    free(pages);
    return rc;
}

int ctl_cancel(ctl_ctx *ctx) {
    const ctl_args *a = ctx->args;
    E2__V1__CancelJobRequest req = E2__V1__CANCEL_JOB_REQUEST__INIT;
    req.id = (char *)a->positional[0];
    req.has_grace_seconds = a->has_grace;
    req.grace_seconds = a->grace;
    E2__V1__CancelJobResponse *resp = NULL;
    int rc = ctl_call(ctx, "CancelJob", &req.base, &e2__v1__cancel_job_response__descriptor,
                      (ProtobufCMessage **)&resp);
    if (rc != 0) return rc;
    if (a->json)
        ctl_print_json(&resp->base);
    else if (resp->job != NULL)
        printf("%s %s\n", resp->job->id != NULL ? ctl_esc(resp->job->id) : a->positional[0],
               ctl_state_name(resp->job->state));
    FREE_MSG(resp);
    return CTL_EXIT_OK;
}

static int exit_for_state(E2__V1__JobState s) {
    switch (s) {
    case E2__V1__JOB_STATE__JOB_STATE_SUCCEEDED: return CTL_EXIT_OK;
    case E2__V1__JOB_STATE__JOB_STATE_FAILED: return CTL_EXIT_JOB_FAILED;
    default: return CTL_EXIT_JOB_OTHER;
    }
}

static int is_terminal(E2__V1__JobState s) {
    return s == E2__V1__JOB_STATE__JOB_STATE_SUCCEEDED ||
           s == E2__V1__JOB_STATE__JOB_STATE_FAILED || s == E2__V1__JOB_STATE__JOB_STATE_CANCELLED;
}

static char follow_hint[256];

/* Ctrl-C while following: the job keeps running; say how to resume. Only
 * write(2) and _exit(2) here (async-signal-safe). */
static void on_interrupt(int sig) {
    (void)sig;
    ssize_t n = write(STDERR_FILENO, follow_hint, strlen(follow_hint));
    (void)n;
    _exit(CTL_EXIT_INTERRUPTED);
}

/* Human output: on a terminal, one progress line rewritten in place and a
 * line per state change; otherwise state changes and a progress line at
 * most every 10 s. */
int ctl_follow(ctl_ctx *ctx, const char *job_id) {
    snprintf(follow_hint, sizeof follow_hint,
             "\ne2ctl: stopped following %s; it keeps running (e2ctl watch %s)\n", job_id, job_id);
    signal(SIGINT, on_interrupt);
    const int tty = isatty(STDOUT_FILENO), json = ctx->args->json;
    E2__V1__WatchJobRequest req = E2__V1__WATCH_JOB_REQUEST__INIT;
    req.id = (char *)job_id;
    e2_rpc_stream *s = e2_rpc_client_stream(ctx->client, "/e2.v1.Coordinator/WatchJob", &req.base,
                                            &e2__v1__job_event__descriptor, 0);
    if (s == NULL) {
        ctl_err("out of memory");
        return CTL_EXIT_UNREACHABLE;
    }
    E2__V1__JobState last = E2__V1__JOB_STATE__JOB_STATE_UNSPECIFIED;
    int64_t last_print = 0;
    int progress_shown = 0;
    char line[512];
    ProtobufCMessage *m;
    while (e2_rpc_stream_next(s, &m) == 1) {
        E2__V1__JobEvent *ev = (E2__V1__JobEvent *)m;
        int changed = ev->state != last;
        last = ev->state;
        if (json) {
            print_json_line(m);
        } else if (ev->kind == E2__V1__JOB_EVENT_KIND__JOB_EVENT_KIND_PROGRESS && !changed) {
            ctl_format_progress(ev, line, sizeof line);
            int64_t now = ctl_now_ms();
            if (tty) {
                printf("\r%s\033[K", line);
                progress_shown = 1;
            } else if (now - last_print >= 10000) {
                printf("%s\n", line);
                last_print = now;
            }
        } else {
            if (progress_shown) putchar('\n');
            progress_shown = 0;
            printf("%s %s%s%s\n", ctl_esc(job_id), ctl_state_name(ev->state),
                   ev->reason != NULL && ev->reason[0] ? ": " : "", ctl_esc(ev->reason));
        }
        fflush(stdout);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    if (progress_shown) putchar('\n');
    char message[1024];
    int code = e2_rpc_stream_status(s, message, sizeof message);
    e2_rpc_stream_free(s);
    if (code != E2_RPC_OK) return ctl_rpc_failed(ctx, "WatchJob", code, message);
    if (!is_terminal(last)) {
        ctl_err("the watch of %s ended while it was %s", job_id, ctl_state_name(last));
        return CTL_EXIT_JOB_OTHER;
    }
    return exit_for_state(last);
}

int ctl_watch(ctl_ctx *ctx) {
    return ctl_follow(ctx, ctx->args->positional[0]);
}

/* Write a chunk, each line prefixed with its rank when several interleave. */
static void write_chunk(const E2__V1__LogChunk *c, int prefix) {
    const char *p = (const char *)c->data.data, *end = p + c->data.len;
    if (!prefix) {
        fwrite(p, 1, c->data.len, stdout);
        return;
    }
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl != NULL ? (size_t)(nl - p + 1) : (size_t)(end - p);
        printf("[rank %d] ", c->rank);
        fwrite(p, 1, n, stdout);
        if (nl == NULL) putchar('\n');
        p += n;
    }
}

int ctl_logs(ctl_ctx *ctx) {
    const ctl_args *a = ctx->args;
    int prefix = 0;
    if (a->rank < 0 && !a->json) {
        E2__V1__GetJobResponse *job = NULL;
        int rc = get_job(ctx, a->positional[0], &job);
        if (rc != 0) return rc;
        prefix = job->job != NULL && job->job->spec != NULL && job->job->spec->has_num_workers &&
                 job->job->spec->num_workers > 1;
        FREE_MSG(job);
    }
    E2__V1__StreamLogsRequest req = E2__V1__STREAM_LOGS_REQUEST__INIT;
    req.id = (char *)a->positional[0];
    req.has_attempt = a->attempt > 0;
    req.attempt = a->attempt;
    req.has_rank = 1;
    req.rank = a->rank;
    req.has_follow = a->follow;
    req.follow = a->follow;
    e2_rpc_stream *s = e2_rpc_client_stream(ctx->client, "/e2.v1.Coordinator/StreamLogs", &req.base,
                                            &e2__v1__log_chunk__descriptor, 0);
    if (s == NULL) {
        ctl_err("out of memory");
        return CTL_EXIT_UNREACHABLE;
    }
    ProtobufCMessage *m;
    while (e2_rpc_stream_next(s, &m) == 1) {
        if (a->json)
            print_json_line(m);
        else
            write_chunk((E2__V1__LogChunk *)m, prefix);
        fflush(stdout);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    char message[1024];
    int code = e2_rpc_stream_status(s, message, sizeof message);
    e2_rpc_stream_free(s);
    return code == E2_RPC_OK ? CTL_EXIT_OK : ctl_rpc_failed(ctx, "StreamLogs", code, message);
}

int ctl_workers(ctl_ctx *ctx) {
    E2__V1__ListWorkersRequest req = E2__V1__LIST_WORKERS_REQUEST__INIT;
    req.has_include_lost = ctx->args->all;
    req.include_lost = ctx->args->all;
    E2__V1__ListWorkersResponse *resp = NULL;
    int rc = ctl_call(ctx, "ListWorkers", &req.base, &e2__v1__list_workers_response__descriptor,
                      (ProtobufCMessage **)&resp);
    if (rc != 0) return rc;
    if (ctx->args->json) {
        ctl_print_json(&resp->base);
    } else {
        int64_t now = ctl_now_ms();
        printf("%-10s %-20s %-8s %-6s %-10s %-6s %-9s %s\n", "ID", "HOST", "DEVICE", "STATE", "JOB",
               "RANK", "PID", "HEARTBEAT");
        for (size_t i = 0; i < resp->n_workers; i++) {
            const E2__V1__Worker *w = resp->workers[i];
            char dev[32], rank[16], seen[32];
            snprintf(dev, sizeof dev, "%s:%u", w->device != NULL ? w->device : "?",
                     w->device_index);
            int busy = w->job_id != NULL && w->job_id[0] != '\0';
            snprintf(rank, sizeof rank, busy ? "%u" : "-", w->rank);
            ctl_format_duration((double)(now - w->last_heartbeat_unix_ms) / 1000.0, seen,
                                sizeof seen);
            printf("%-10s %-20.20s %-8s %-6s %-10s %-6s %-9d %s ago\n", ctl_esc(w->id),
                   ctl_esc(w->hostname), ctl_esc(dev), ctl_worker_state_name(w->state),
                   busy ? ctl_esc(w->job_id) : "-", rank, w->pid, seen);
        }
    }
    FREE_MSG(resp);
    return CTL_EXIT_OK;
}

int ctl_metrics(ctl_ctx *ctx) {
    E2__V1__GetMetricsRequest req = E2__V1__GET_METRICS_REQUEST__INIT;
    req.id = (char *)ctx->args->positional[0];
    E2__V1__GetMetricsResponse *resp = NULL;
    int rc = ctl_call(ctx, "GetMetrics", &req.base, &e2__v1__get_metrics_response__descriptor,
                      (ProtobufCMessage **)&resp);
    if (rc != 0) return rc;
    if (ctx->args->json) {
        ctl_print_json(&resp->base);
    } else {
        printf("%8s %10s %12s %10s %12s\n", "STEP", "LOSS", "LR", "GRAD_NORM", "TOK/S");
        for (size_t i = 0; i < resp->n_points; i++) {
            const E2__V1__MetricPoint *p = resp->points[i];
            printf("%8u %10.4f %12.4g %10.4f %12.1f\n", p->step, p->loss, p->lr, p->grad_norm,
                   p->tokens_per_second);
        }
        if (resp->n_eval > 0) {
            putchar('\n');
            ctl_print_eval((const E2__V1__EvalResult *const *)resp->eval, resp->n_eval);
        }
    }
    FREE_MSG(resp);
    return CTL_EXIT_OK;
}

int ctl_eval(ctl_ctx *ctx) {
    E2__V1__GetJobResponse *resp = NULL;
    int rc = get_job(ctx, ctx->args->positional[0], &resp);
    if (rc != 0) return rc;
    const E2__V1__Job *j = resp->job;
    if (j == NULL || (j->n_eval == 0 && (j->eval_table == NULL || !j->eval_table[0]))) {
        ctl_err("%s has no evaluation results (state %s)", ctx->args->positional[0],
                j != NULL ? ctl_state_name(j->state) : "?");
        FREE_MSG(resp);
        return CTL_EXIT_REJECTED;
    }
    if (ctx->args->json) {
        E2__V1__GetMetricsResponse out = E2__V1__GET_METRICS_RESPONSE__INIT;
        out.n_eval = j->n_eval;
        out.eval = j->eval;
        ctl_print_json(&out.base);
    } else if (j->eval_table != NULL && j->eval_table[0] != '\0') {
        fputs(ctl_esc_lines(j->eval_table), stdout);
        if (j->eval_table[strlen(j->eval_table) - 1] != '\n') putchar('\n');
    } else {
        ctl_print_eval((const E2__V1__EvalResult *const *)j->eval, j->n_eval);
    }
    FREE_MSG(resp);
    return CTL_EXIT_OK;
}
