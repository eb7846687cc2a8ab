/* print.c: e2ctl's human output: state names, durations, the job detail
 * view, list rows, the progress line and the evaluation table. */
#include "ctl.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t ctl_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Enum value name without its prefix ("JOB_STATE_RUNNING" -> "RUNNING"). */
static const char *enum_short(const ProtobufCEnumDescriptor *d, int value, const char *prefix) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(d, value);
    if (v == NULL) return "?";
    size_t n = strlen(prefix);
    return strncmp(v->name, prefix, n) == 0 ? v->name + n : v->name;
}

const char *ctl_state_name(E2__V1__JobState s) {
    return enum_short(&e2__v1__job_state__descriptor, s, "JOB_STATE_");
}

const char *ctl_worker_state_name(E2__V1__WorkerState s) {
    return enum_short(&e2__v1__worker_state__descriptor, s, "WORKER_STATE_");
}

int ctl_parse_state(const char *text, E2__V1__JobState *out) {
    char name[64];
    const char *t = strncasecmp(text, "JOB_STATE_", 10) == 0 ? text + 10 : text;
    size_t n = strlen(t);
    if (n == 0 || n + 11 > sizeof name) return -1;
    memcpy(name, "JOB_STATE_", 10);
    for (size_t i = 0; i <= n; i++) name[10 + i] = (char)toupper((unsigned char)t[i]);
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value_by_name(&e2__v1__job_state__descriptor, name);
    if (v == NULL || v->value == E2__V1__JOB_STATE__JOB_STATE_UNSPECIFIED) return -1;
    *out = (E2__V1__JobState)v->value;
    return 0;
}

void ctl_format_duration(double seconds, char *buf, size_t len) {
    if (!(seconds >= 0) || seconds > 1e9) {
        snprintf(buf, len, "-");
        return;
    }
    long s = lround(seconds);
    if (s >= 3600)
        snprintf(buf, len, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(buf, len, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, len, "%lds", s);
}

static void format_time(int64_t unix_ms, char *buf, size_t len) {
    if (unix_ms <= 0) {
        snprintf(buf, len, "-");
        return;
    }
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void format_rate(double tps, char *buf, size_t len) {
    if (tps >= 1e6)
        snprintf(buf, len, "%.1fM", tps / 1e6);
    else if (tps >= 1e3)
        snprintf(buf, len, "%.1fk", tps / 1e3);
    else
        snprintf(buf, len, "%.0f", tps);
}

void ctl_format_progress(const E2__V1__JobEvent *ev, char *buf, size_t len) {
    char rate[32], eta[32], bar[24];
    int width = 20, filled = 0;
    if (ev->total_steps > 0) filled = (int)((uint64_t)ev->step * (uint64_t)width / ev->total_steps);
    if (filled > width) filled = width;
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    format_rate(ev->tokens_per_second, rate, sizeof rate);
    ctl_format_duration(ev->eta_seconds > 0 ? ev->eta_seconds : -1, eta, sizeof eta);
    snprintf(buf, len, "%s %-10s [%s] step %u/%u  loss %.4f  %s tok/s  ETA %s", ctl_esc(ev->job_id),
             ctl_state_name(ev->state), bar, ev->step, ev->total_steps, ev->loss, rate, eta);
}

void ctl_print_eval(const E2__V1__EvalResult *const *eval, size_t n) {
    int passkey = 0;
    for (size_t i = 0; i < n; i++) passkey |= eval[i]->passkey_trials > 0;
    printf("| model   | window | scale |   loss  | perplexity |   tokens |%s\n",
           passkey ? " passkey |" : "");
    printf("|---------|-------:|------:|--------:|-----------:|---------:|%s\n",
           passkey ? "--------:|" : "");
    for (size_t i = 0; i < n; i++) {
        const E2__V1__EvalResult *e = eval[i];
        printf("| %-7s | %6u | %5.2f | %7.4f | %10.3f | %8llu |",
               e->before_training ? "base" : "trained", e->window, e->scale, e->loss, e->perplexity,
               (unsigned long long)e->tokens);
        if (passkey) printf(" %3u/%-3u |", e->passkey_correct, e->passkey_trials);
        putchar('\n');
    }
}

static const char *esc(const char *s, int keep_newlines) {
    static char *bufs[8];
    static size_t caps[8];
    static int next;
    int slot = next++ % 8;
    const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
    size_t need = 4 * strlen((const char *)p) + 1; /* every byte may become \xNN */
    if (caps[slot] < need) {
        char *nb = realloc(bufs[slot], need);
        if (nb == NULL) return "(out of memory)";
        bufs[slot] = nb;
        caps[slot] = need;
    }
    char *b = bufs[slot];
    size_t k = 0;
    while (*p) {
        unsigned c = *p;
        size_t len = 1;
        int bad = c < 0x20 || c == 0x7f;
        if (c == '\n' && keep_newlines) bad = 0;
        if (c >= 0x80) {
            /* One UTF-8 sequence, copied whole when it is valid and not C1. */
            len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
            for (size_t i = 1; i < len; i++)
                if ((p[i] & 0xc0) != 0x80) len = 0;
            bad = len == 0 || (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
            if (bad) len = 1;
        }
        if (bad) {
            if (c == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
                k += (size_t)snprintf(b + k, 5, "\\x%02x", p[1]);
                p += 2;
                continue;
            }
            k += (size_t)snprintf(b + k, 5, "\\x%02x", c);
            p++;
            continue;
        }
        memcpy(b + k, p, len);
        k += len;
        p += len;
    }
    b[k] = '\0';
    return b;
}

const char *ctl_esc(const char *s) {
    return esc(s, 0);
}
const char *ctl_esc_lines(const char *s) {
    return esc(s, 1);
}

void ctl_print_job(const E2__V1__Job *j) {
    char t[64], eta[32], rate[32];
    const E2__V1__JobSpec *spec = j->spec;
    printf("Job:        %s\n", ctl_esc(j->id));
    if (spec != NULL && spec->name != NULL) printf("Name:       %s\n", ctl_esc(spec->name));
    printf("State:      %s\n", ctl_state_name(j->state));
    if (j->reason != NULL && j->reason[0] != '\0') printf("Reason:     %s\n", ctl_esc(j->reason));
    if (spec != NULL && spec->n_labels > 0) {
        printf("Labels:    ");
        for (size_t i = 0; i < spec->n_labels; i++)
            printf(" %s=%s", ctl_esc(spec->labels[i]->key), ctl_esc(spec->labels[i]->value));
        putchar('\n');
    }
    if (spec != NULL)
        printf("Device:     %s x %u\n", spec->device != NULL ? ctl_esc(spec->device) : "cpu",
               spec->has_num_workers ? spec->num_workers : 1);
    if (j->world_size > 0 && spec != NULL && spec->has_num_workers &&
        j->world_size != spec->num_workers)
        printf("Attempt:    %u on %u of %u workers (elastic restart, min_workers %u)\n", j->attempt,
               j->world_size, spec->num_workers, spec->has_min_workers ? spec->min_workers : 0);
    else
        printf("Attempt:    %u\n", j->attempt);
    printf("Faults:     infrastructure %u (restarts), user errors %u, "
           "cancellations %u\n",
           j->restarts, j->user_errors, j->cancellations);
    format_rate(j->tokens_per_second, rate, sizeof rate);
    ctl_format_duration(j->eta_seconds > 0 ? j->eta_seconds : -1, eta, sizeof eta);
    printf("Progress:   step %u/%u  loss %.4f  %s tok/s  ETA %s\n", j->step, j->total_steps,
           j->loss, rate, eta);
    format_time(j->created_unix_ms, t, sizeof t);
    printf("Created:    %s\n", t);
    if (j->started_unix_ms > 0) {
        format_time(j->started_unix_ms, t, sizeof t);
        printf("Started:    %s\n", t);
    }
    if (j->finished_unix_ms > 0) {
        format_time(j->finished_unix_ms, t, sizeof t);
        printf("Finished:   %s\n", t);
    }
    if (j->n_worker_ids > 0) {
        printf("Workers:   ");
        for (size_t i = 0; i < j->n_worker_ids; i++) printf(" %s", ctl_esc(j->worker_ids[i]));
        putchar('\n');
    }
    if (j->job_dir != NULL && j->job_dir[0] != '\0')
        printf("Directory:  %s\n", ctl_esc(j->job_dir));
    if (j->failure != NULL) {
        const E2__V1__Failure *f = j->failure;
        printf("Failure:    rank %d%s%s: exit code %d, signal %d%s\n", f->rank,
               f->worker_id != NULL && f->worker_id[0] ? " on " : "", ctl_esc(f->worker_id),
               f->exit_code, f->signal, f->user_error ? " (user error, not retried)" : "");
        for (size_t i = 0; i < f->n_last_log_lines; i++)
            printf("  | %s\n", ctl_esc(f->last_log_lines[i]));
    }
    if (j->n_checkpoints > 0) {
        printf("Checkpoints:\n");
        for (size_t i = 0; i < j->n_checkpoints; i++) {
            format_time(j->checkpoints[i]->committed_unix_ms, t, sizeof t);
            printf("  step %-8u %s  (%s)\n", j->checkpoints[i]->step,
                   ctl_esc(j->checkpoints[i]->path), t);
        }
    }
    if (j->n_events > 0) {
        printf("Events:\n");
        for (size_t i = 0; i < j->n_events; i++) {
            const E2__V1__JobEvent *e = j->events[i];
            format_time(e->time_unix_ms, t, sizeof t);
            printf("  %s  %-11s %s\n", t, ctl_state_name(e->state), ctl_esc(e->reason));
        }
    }
    if (j->eval_table != NULL && j->eval_table[0] != '\0') {
        printf("Evaluation:\n%s", ctl_esc_lines(j->eval_table));
        if (j->eval_table[strlen(j->eval_table) - 1] != '\n') putchar('\n');
    } else if (j->n_eval > 0) {
        printf("Evaluation:\n");
        ctl_print_eval((const E2__V1__EvalResult *const *)j->eval, j->n_eval);
    }
}

void ctl_print_job_row_header(void) {
    printf("%-10s %-24s %-11s %-13s %-9s %s\n", "ID", "NAME", "STATE", "STEP", "LOSS", "AGE");
}

void ctl_print_job_row(const E2__V1__Job *j, int64_t now_ms) {
    char step[32], age[32], loss[32];
    snprintf(step, sizeof step, "%u/%u", j->step, j->total_steps);
    ctl_format_duration((double)(now_ms - j->created_unix_ms) / 1000.0, age, sizeof age);
    if (j->step > 0)
        snprintf(loss, sizeof loss, "%.4f", j->loss);
    else
        snprintf(loss, sizeof loss, "-");
    const char *name = j->spec != NULL && j->spec->name != NULL ? j->spec->name : "";
    printf("%-10s %-24.24s %-11s %-13s %-9s %s\n", ctl_esc(j->id), ctl_esc(name),
           ctl_state_name(j->state), step, loss, age);
}
