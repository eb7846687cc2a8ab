/* main.c -- `e2worker --coordinator ADDR`: flags, signals and the output of
 * a worker process in agent mode.
 *
 * SIGTERM or SIGINT stops the worker: the rank in progress stops at its
 * next step boundary, ReportDone is sent, and the process exits 0. A second
 * signal exits at once (128 + signal). Signals are taken by a sigwait
 * thread, so no handler runs inside the trainer or gRPC. Trainer lines go
 * to stdout (e2d captures a spawned worker's output), agent events to
 * stderr. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "base.h"

const char *e2w_agent_usage(void) {
    return "usage: e2worker --coordinator ADDR [--device cpu|cuda] [--device-index N]\n"
           "                [--name NAME] [--spawned]\n"
           "\n"
           "Agent mode: register with the e2d at ADDR, run the job ranks it assigns,\n"
           "report progress, checkpoints and results. Stops on SIGTERM/SIGINT after\n"
           "the current step.\n"
           "\n"
           "  --coordinator ADDR  e2d's WorkerControl address: unix:/path or host:port\n"
           "  --device KIND       cpu (default) or cuda\n"
           "  --device-index N    GPU ordinal for cuda (default 0)\n"
           "  --name NAME         hostname reported to e2d (default: gethostname)\n"
           "  --spawned           started by e2d --local-workers (also E2_SPAWNED_BY_E2D=1)\n"
           "  -h, --help          this text\n";
}

int e2w_agent_parse_args(int argc, char **argv, e2w_agent_config *cfg,
                         char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cfg->device = "cpu";
    const char *env = getenv("E2_SPAWNED_BY_E2D");
    cfg->spawned_by_e2d = env && !strcmp(env, "1");
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return 1;
        if (!strcmp(f, "--spawned")) {
            cfg->spawned_by_e2d = 1;
            continue;
        }
        /* --flag VALUE or --flag=VALUE */
        char flag[32];
        const char *eq = strchr(f, '='), *v;
        size_t fl = eq ? (size_t)(eq - f) : strlen(f);
        snprintf(flag, sizeof flag, "%.*s", (int)(fl < sizeof flag ? fl : sizeof flag - 1), f);
        f = flag;
        int takes = !strcmp(f, "--coordinator") || !strcmp(f, "--device") ||
                    !strcmp(f, "--device-index") || !strcmp(f, "--name");
        if (!takes) return e2_errf(err, errlen, "unknown flag %s (see --help)", argv[i]);
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return e2_errf(err, errlen, "%s needs a value", f);
            v = argv[++i];
        }
        if (!strcmp(f, "--coordinator")) {
            cfg->coordinator = v;
        } else if (!strcmp(f, "--device")) {
            if (strcmp(v, "cpu") && strcmp(v, "cuda"))
                return e2_errf(err, errlen, "--device must be cpu or cuda (got %s)", v);
            cfg->device = v;
        } else if (!strcmp(f, "--device-index")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (!*v || *end || n < 0 || n > 1023)
                return e2_errf(err, errlen, "--device-index must be an integer in 0..1023 (got %s)", v);
            cfg->device_index = (uint32_t)n;
        } else {
            if (!*v) return e2_errf(err, errlen, "--name must not be empty");
            cfg->name = v;
        }
    }
    if (!cfg->coordinator || !*cfg->coordinator)
        return e2_errf(err, errlen, "--coordinator ADDR is required (unix:/path or host:port)");
    return 0;
}

static void print_line(const char *line, void *data) {
    FILE *f = data;
    fprintf(f, "%s\n", line);
    fflush(f);
}

typedef struct {
    e2w_agent *agent;
    sigset_t set;
} signal_ctx;

/* Waits for signals: the first stops the agent, a second one ends the
 * process; SIGUSR1 (sent by main when the agent is done) ends the thread. */
static void *signal_main(void *arg) {
    signal_ctx *s = arg;
    int stopping = 0, sig;
    for (;;) {
        if (sigwait(&s->set, &sig) != 0) continue;
        if (sig == SIGUSR1) return NULL;
        if (stopping) _exit(128 + sig);
        stopping = 1;
        fprintf(stderr, "e2worker: %s: stopping after the current step\n",
                sig == SIGTERM ? "SIGTERM" : "SIGINT");
        e2w_agent_stop(s->agent, 0);
    }
}

int e2w_agent_main(int argc, char **argv) {
    char err[E2_ERRLEN];
    e2w_agent_config cfg;
    int rc = e2w_agent_parse_args(argc, argv, &cfg, err, sizeof err);
    if (rc == 1) {
        fputs(e2w_agent_usage(), stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "e2worker: %s\n", err);
        return 2;
    }
    cfg.on_log = print_line;
    cfg.on_log_data = stdout;
    cfg.on_event = print_line;
    cfg.on_event_data = stderr;
    e2w_agent *a;
    if (e2w_agent_new(&a, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "e2worker: %s\n", err);
        return 2;
    }
    signal_ctx sc = {.agent = a};
    sigemptyset(&sc.set);
    sigaddset(&sc.set, SIGTERM);
    sigaddset(&sc.set, SIGINT);
    sigaddset(&sc.set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sc.set, NULL);
    pthread_t st;
    if (pthread_create(&st, NULL, signal_main, &sc) != 0) {
        fprintf(stderr, "e2worker: cannot start the signal thread\n");
        e2w_agent_free(a);
        return 1;
    }
    rc = e2w_agent_run(a, err, sizeof err);
    pthread_kill(st, SIGUSR1);
    pthread_join(st, NULL);
    if (rc < 0) fprintf(stderr, "e2worker: %s\n", err);
    e2w_agent_free(a);
    return rc < 0 ? 1 : 0;
}
