/* main.c -- `e2worker --coordinator ADDR`: flags, signals and the output of
 * a worker process in agent mode.
 *
 * SIGTERM or SIGINT stops the worker: the rank in progress stops at its
 * next step boundary, ReportDone is sent, and the process exits 0. A second
 * signal exits at once (128 + signal). The handler only writes to a pipe;
 * a signal thread does the rest, outside the trainer and gRPC. Trainer lines go
 * to stdout (e2d captures a spawned worker's output), agent events to
 * stderr. */
#include <errno.h>
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
           "  --device-index N    GPU ordinal for cuda (default 0; among CUDA_VISIBLE_DEVICES\n"
           "                      when set); the worker then sees that GPU alone\n"
           "  --name NAME         hostname reported to e2d (default: gethostname)\n"
           "  --spawned           started by e2d --local-workers (also E2_SPAWNED_BY_E2D=1)\n"
           "  --token-file PATH   bearer token (role worker) for e2d, the first word of\n"
           "                      PATH, which others must not read (or $E2_TOKEN_FILE)\n"
           "  --tls-ca FILE       TLS to e2d, whose certificate this PEM CA signed\n"
           "                      (or $E2_TLS_CA)\n"
           "  --tls-cert FILE     client certificate and key for mutual TLS\n"
           "  --tls-key FILE      (or $E2_TLS_CERT, $E2_TLS_KEY)\n"
           "  -h, --help          this text\n"
           "\n"
           "Data-parallel ranks on several machines: E2_COMM_IFACE (an interface) or\n"
           "E2_COMM_HOST (this machine's address) sets where Gloo listens; default\n"
           "127.0.0.1 (all ranks on one machine).\n";
}

/* An environment variable's value; NULL when unset or empty. */
static const char *env_or_null(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

int e2w_agent_parse_args(int argc, char **argv, e2w_agent_config *cfg,
                         char *err, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    cfg->device = "cpu";
    const char *env = getenv("E2_SPAWNED_BY_E2D");
    cfg->spawned_by_e2d = env && !strcmp(env, "1");
    cfg->token_file = env_or_null("E2_TOKEN_FILE");
    cfg->tls_ca = env_or_null("E2_TLS_CA");
    cfg->tls_cert = env_or_null("E2_TLS_CERT");
    cfg->tls_key = env_or_null("E2_TLS_KEY");
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
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
                    !strcmp(f, "--device-index") || !strcmp(f, "--name") ||
                    !strcmp(f, "--token-file") || !strcmp(f, "--tls-ca") ||
                    !strcmp(f, "--tls-cert") || !strcmp(f, "--tls-key");
        if (!takes) return e2_errf(err, errlen, "unknown flag %s (see --help)", argv[i]);
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return e2_errf(err, errlen, "%s needs a value", f);
            v = argv[++i];
        }
        if (!strcmp(f, "--coordinator")) {
            cfg->coordinator = v;
        } else if (!strcmp(f, "--token-file")) {
            cfg->token_file = v;
        } else if (!strcmp(f, "--tls-ca")) {
            cfg->tls_ca = v;
        } else if (!strcmp(f, "--tls-cert")) {
            cfg->tls_cert = v;
        } else if (!strcmp(f, "--tls-key")) {
            cfg->tls_key = v;
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

/* A cuda worker uses one GPU: --device-index picks it among those the
 * process may see (CUDA_VISIBLE_DEVICES, when set, lists them), and the
 * process is then shown that GPU alone, as device 0, before anything
 * initialises CUDA; the kernels and NCCL simply use device 0. */
static int select_gpu(uint32_t index, char *err, size_t errlen) {
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    char pick[64];
    if (!vis || !*vis) {
        snprintf(pick, sizeof pick, "%u", index);
    } else {
        const char *p = vis;
        for (uint32_t i = 0; i < index && p; i++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        if (!p || !*p)
            return e2_errf(err, errlen, "--device-index %u: CUDA_VISIBLE_DEVICES=%s lists fewer GPUs",
                           index, vis);
        size_t n = strcspn(p, ",");
        snprintf(pick, sizeof pick, "%.*s", (int)(n < sizeof pick ? n : sizeof pick - 1), p);
    }
    if (setenv("CUDA_VISIBLE_DEVICES", pick, 1) < 0)
        return e2_errf(err, errlen, "setenv CUDA_VISIBLE_DEVICES: %s", strerror(errno));
    return 0;
}

static void print_line(const char *line, void *data) {
    FILE *f = data;
    fprintf(f, "%s\n", line);
    fflush(f);
}

/* Signals arrive on whatever thread the kernel picks (OpenBLAS starts its
 * threads before main, with signals unblocked), so a handler forwards them
 * through a pipe to the signal thread; a second one ends the process. */
static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t sig_seen;

static void on_signal(int sig) {
    if (sig_seen) _exit(128 + sig);
    sig_seen = sig;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(sig_pipe[1], &b, 1);
    (void)n;
}

/* Reads the pipe: a signal stops the agent; 0 (written by main when the
 * agent is done) ends the thread. */
static void *signal_main(void *arg) {
    e2w_agent *a = arg;
    unsigned char b;
    for (;;) {
        ssize_t n = read(sig_pipe[0], &b, 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0 || b == 0) return NULL;
        fprintf(stderr, "e2worker: %s: stopping after the current step\n",
                b == SIGTERM ? "SIGTERM" : "SIGINT");
        e2w_agent_stop(a, 0);
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
    if (!strcmp(cfg.device, "cuda") && select_gpu(cfg.device_index, err, sizeof err) < 0) {
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
    pthread_t st;
    if (pipe(sig_pipe) < 0 || pthread_create(&st, NULL, signal_main, a) != 0) {
        fprintf(stderr, "e2worker: cannot set up signal handling\n");
        e2w_agent_free(a);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    rc = e2w_agent_run(a, err, sizeof err);
    unsigned char done = 0;
    if (write(sig_pipe[1], &done, 1) == 1) pthread_join(st, NULL);
    if (rc < 0) fprintf(stderr, "e2worker: %s\n", err);
    e2w_agent_free(a);
    return rc < 0 ? 1 : 0;
}
