/* run.c -- `e2worker run SPEC.json`: one job, trained and evaluated in this
 * process with no daemon, by worker/job as the agent runs one. The spec is
 * resolved (e2w_spec_resolve: overrides, the model's own config for an
 * hf_dir model, defaults, validation, files) and written back as
 * output_dir/spec.json; training resumes from the newest complete
 * checkpoint of output_dir, else from spec.resume_from; progress goes to
 * stderr, output_dir/log and one JSON line per step to
 * output_dir/metrics.jsonl; evaluation (e2w_eval_spec) ends the run with
 * eval.json, eval.md and the table on stdout. SIGINT/SIGTERM stop at a
 * step boundary with a checkpoint (exit status 130). */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cli.h"
#include "eval.h"
#include "job.h"
#include "spec.h"
#include "train.h"

typedef struct {
    FILE *log, *metrics;
    unsigned log_every;
} run_ctx;

/* SIGINT / SIGTERM ask the trainer to stop at the next step boundary; the
 * run then writes a checkpoint, so rerunning resumes where it stopped. */
static volatile sig_atomic_t run_stop_requested;

static void run_on_signal(int sig) {
    (void)sig;
    run_stop_requested = 1;
}

static int run_should_stop(void *ud) {
    (void)ud;
    return run_stop_requested != 0;
}

static void run_catch_signals(void *ud) {
    (void)ud;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = run_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* After a stop: a checkpoint of the current step, unless one exists. */
static int run_checkpoint_now(e2w_train *t, const char *dir, char *err, size_t errlen) {
    char latest[4200], want[4200];
    snprintf(want, sizeof want, "%s/checkpoints/step_%d", dir, e2w_train_step(t));
    if (e2w_train_find_latest(dir, latest, sizeof latest) && strcmp(latest, want) == 0) return 0;
    return e2w_train_checkpoint(t, err, errlen);
}

/* One line to stderr and the log file. */
static void run_say(run_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void run_say(run_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
    if (c->log) {
        fprintf(c->log, "%s\n", line);
        fflush(c->log);
    }
}

static void run_say_line(void *ud, const char *line) {
    run_say(ud, "%s", line);
}

static void run_progress(void *ud, const e2w_train_progress *p) {
    run_ctx *c = ud;
    fprintf(c->metrics,
            "{\"step\":%d,\"loss\":%.17g,\"lr\":%.9g,\"grad_norm\":%.9g,"
            "\"step_s\":%.6f,\"tokens_per_s\":%.3f,\"gflops\":%.3f,\"tokens\":%llu}\n",
            p->step, p->loss, p->lr, p->grad_norm, p->step_s, p->tokens_per_s, p->gflops,
            (unsigned long long)p->tokens);
    fflush(c->metrics);
    if (p->step % (int)c->log_every == 0 || p->step == p->steps)
        run_say(c, "step %d/%d | loss %.6f | lr %.3e | grad norm %.4f | %.0f tok/s | %.2f GFLOP/s",
                p->step, p->steps, p->loss, p->lr, p->grad_norm, p->tokens_per_s, p->gflops);
}

int cli_resolve_spec(const char *path, char **sets, int n_sets, const char *model_dir,
                     E2__V1__JobSpec **out, char *err, size_t errlen) {
    E2__V1__JobSpec *spec = e2_spec_load(path, err, errlen);
    if (spec == NULL) return E2_ERR;
    e2w_resolve_opts o = { .sets = sets, .n_sets = (size_t)n_sets, .model_dir = model_dir };
    if (e2w_spec_resolve(spec, &o, NULL, err, errlen) < 0) goto fail;
    if (spec->output_dir == NULL || spec->output_dir[0] == '\0') {
        char dir[512];
        snprintf(dir, sizeof dir, "e2-run-%s", spec->name ? spec->name : "job");
        free(spec->output_dir);
        spec->output_dir = strdup(dir);
        if (spec->output_dir == NULL) {
            e2_errf(err, errlen, "out of memory");
            goto fail;
        }
    }
    *out = spec;
    return 0;
fail:
    e2_spec_free(spec);
    return E2_ERR;
}

static int run_write_spec(const E2__V1__JobSpec *spec, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/spec.json", spec->output_dir);
    char *json = e2_spec_to_json(spec, 2);
    if (json == NULL) return e2_errf(err, errlen, "out of memory");
    size_t n = strlen(json);
    char *text = malloc(n + 2);
    if (text == NULL) {
        free(json);
        return e2_errf(err, errlen, "out of memory");
    }
    memcpy(text, json, n);
    text[n] = '\n';
    int rc = e2_write_file_atomic(path, text, n + 1, err, errlen);
    free(text);
    free(json);
    return rc < 0 ? -1 : 0;
}

static FILE *run_open(const char *dir, const char *name, char *err, size_t errlen) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "a");
    if (f == NULL) e2_errf(err, errlen, "open %s: %s", path, strerror(errno));
    return f;
}

int cli_run(int argc, char **argv, char *err, size_t errlen) {
    const char *spec_path = NULL;
    char **sets = calloc((size_t)argc + 1, sizeof *sets);
    int n_sets = 0, fresh = 0, rc = 1;
    E2__V1__JobSpec *spec = NULL;
    e2w_train *t = NULL;
    run_ctx ctx = { 0 };
    e2w_eval_results ev;
    e2w_eval_results_init(&ev);
    if (sets == NULL) {
        e2_errf(err, errlen, "out of memory");
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--set") == 0) {
            if (i + 1 >= argc) {
                e2_errf(err, errlen, "--set needs path=value");
                goto done;
            }
            sets[n_sets++] = argv[++i];
        } else if (strncmp(argv[i], "--set=", 6) == 0) {
            sets[n_sets++] = argv[i] + 6;
        } else if (strcmp(argv[i], "--fresh") == 0) {
            fresh = 1;
        } else if (argv[i][0] == '-' || spec_path != NULL) {
            e2_errf(err, errlen,
                    "run: unexpected argument '%s' (usage: e2worker run SPEC.json [--set "
                    "path=value ...] [--fresh])",
                    argv[i]);
            goto done;
        } else {
            spec_path = argv[i];
        }
    }
    if (spec_path == NULL) {
        e2_errf(err, errlen,
                "run: missing SPEC.json (usage: e2worker run SPEC.json [--set path=value ...] "
                "[--fresh])");
        goto done;
    }
    if (cli_resolve_spec(spec_path, sets, n_sets, NULL, &spec, err, errlen) < 0) goto done;
    const k_backend *k = k_get(spec->device);
    if (k == NULL) {
        e2_errf(err, errlen,
                "spec.device '%s' is not available in this build/machine (use \"cpu\")",
                spec->device);
        goto done;
    }
    if (e2_mkdir_p(spec->output_dir, 0755, err, errlen) < 0) goto done;
    char latest[4200];
    int have_ckpt = e2w_train_find_latest(spec->output_dir, latest, sizeof latest);
    if (have_ckpt && fresh) {
        e2_errf(
            err, errlen,
            "--fresh: %s already holds a checkpoint (%s); remove it or choose another output_dir",
            spec->output_dir, latest);
        goto done;
    }
    if (run_write_spec(spec, err, errlen) < 0) goto done;
    if ((ctx.log = run_open(spec->output_dir, "log", err, errlen)) == NULL ||
        (ctx.metrics = run_open(spec->output_dir, "metrics.jsonl", err, errlen)) == NULL)
        goto done;
    ctx.log_every = spec->has_log_every && spec->log_every > 0 ? spec->log_every : 1;
    e2w_train_hooks hooks = { .ud = &ctx,
                              .rank = 0,
                              .world_size = 1,
                              .progress = run_progress,
                              .should_stop = run_should_stop };
    if (e2w_train_create(&t, spec, k, spec->output_dir, &hooks, err, errlen) < 0) goto done;
    e2w_train_memory mem;
    e2w_train_memory_report(t, &mem);
    run_say(&ctx, "e2worker run: job %s on %s, output %s", spec->name ? spec->name : "?", k->name,
            spec->output_dir);
    run_say(&ctx,
            "model: %zu parameters | memory MiB: params %.1f, grads %.1f, optimizer %.1f, "
            "activations %.1f",
            mem.n_params, mem.param_bytes / 1048576.0, mem.grad_bytes / 1048576.0,
            mem.optim_bytes / 1048576.0, mem.act_bytes / 1048576.0);
    e2w_job_drive_opts drive = { .own_ckpt = have_ckpt ? latest : NULL,
                                 .evaluate = 1,
                                 .say = run_say_line,
                                 .before_train = run_catch_signals,
                                 .ud = &ctx };
    e2w_job_fail fail;
    int r = e2w_job_drive(t, &drive, &ev, &fail, err, errlen);
    if (r < 0) goto done;
    if (r == 1) {
        if (run_checkpoint_now(t, spec->output_dir, err, errlen) < 0) goto done;
        run_say(&ctx, "stopped by a signal at step %d; checkpoint written, rerun to resume",
                e2w_train_step(t));
        rc = 130;
        goto done;
    }
    if (e2w_eval_results_write(&ev, spec->output_dir, err, errlen) < 0) goto done;
    char *table = e2w_eval_results_markdown(&ev);
    if (table) fputs(table, stdout);
    free(table);
    rc = 0;
done:
    if (rc != 0 && rc != 130 && ctx.log && err[0] != '\0') fprintf(ctx.log, "e2worker: %s\n", err);
    e2w_eval_results_free(&ev);
    e2w_train_free(t);
    if (ctx.log) fclose(ctx.log);
    if (ctx.metrics) fclose(ctx.metrics);
    e2_spec_free(spec);
    free(sets);
    return rc;
}
