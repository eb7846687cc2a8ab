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
    return "usage: e2worker [--config FILE] --coordinator ADDR [--device cpu|cuda]\n"
           "                [--device-index N] [--name NAME] [--spawned] ...\n"
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
           "  --spawned           started by e2d --local-workers (also E2_SPAWNED_BY_E2D=1;\n"
           "                      config file: spawned = yes)\n"
           "  --token-file PATH   bearer token (role worker) for e2d, the first word of\n"
           "                      PATH, which others must not read (or $E2_TOKEN_FILE)\n"
           "  --tls-ca FILE       TLS to e2d, whose certificate this PEM CA signed\n"
           "                      (or $E2_TLS_CA)\n"
           "  --tls-cert FILE     client certificate and key for mutual TLS\n"
           "  --tls-key FILE      (or $E2_TLS_CERT, $E2_TLS_KEY)\n"
           "  --comm-iface IFACE  data-parallel ranks on several machines: the network\n"
           "  --comm-host ADDR    interface, or this machine's address, other ranks reach\n"
           "                      it on (or $E2_COMM_IFACE, $E2_COMM_HOST; default\n"
           "                      127.0.0.1: all ranks on one machine)\n"
           "  --data-roots DIR[:DIR..]  every file an assigned spec names to read (data\n"
           "                      shards, model.hf_dir, resume_from) must resolve\n"
           "                      (links followed) under one of these folders, else the\n"
           "                      job fails before the file is opened (default: none)\n"
           "  --export-root DIR   spec.output_dir must lie under it (default: any)\n"
           "  --config FILE       read settings from FILE first: `key = value` lines,\n"
           "                      keys being the flags above without dashes\n"
           "                      (coordinator = head:7070), and `env.NAME = value`\n"
           "                      lines that set NCCL_* variables; '#' starts a\n"
           "                      comment. Flags override the file, the file the\n"
           "                      environment. A bad line stops e2worker (exit 2)\n"
           "  -h, --help          this text (after checking --config FILE)\n";
}

/* An environment variable's value; NULL when unset or empty. */
static const char *env_or_null(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* The flags that take a value, without their dashes. */
static const char *const agent_keys[] = {
    "coordinator", "device",  "device-index", "name",      "token-file", "tls-ca",
    "tls-cert",    "tls-key", "comm-iface",   "comm-host", "data-roots", "export-root",
};

static int agent_takes_value(const char *key) {
    for (size_t i = 0; i < sizeof agent_keys / sizeof agent_keys[0]; i++)
        if (!strcmp(key, agent_keys[i])) return 1;
    return 0;
}

/* Applies one setting: a flag without its dashes, or a config file key.
 * The message names the key; the caller adds "--" or FILE:LINE. */
static int agent_set(e2w_agent_config *cfg, const char *key, const char *v, char *err,
                     size_t errlen) {
    if (!strcmp(key, "spawned")) {
        if (strcmp(v, "yes") && strcmp(v, "no"))
            return e2_errf(err, errlen, "spawned must be yes or no (got '%s')", v);
        cfg->spawned_by_e2d = !strcmp(v, "yes");
        return 0;
    }
    if (!agent_takes_value(key))
        return e2_errf(err, errlen, "unknown key '%s' (see e2worker --coordinator X --help)", key);
    if (!*v) return e2_errf(err, errlen, "%s must not be empty", key);
    if (!strcmp(key, "device")) {
        if (strcmp(v, "cpu") && strcmp(v, "cuda"))
            return e2_errf(err, errlen, "device must be cpu or cuda (got '%s')", v);
        cfg->device = v;
    } else if (!strcmp(key, "device-index")) {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 1023)
            return e2_errf(err, errlen, "device-index must be an integer in 0..1023 (got '%s')", v);
        cfg->device_index = (uint32_t)n;
    } else if (!strcmp(key, "coordinator")) {
        cfg->coordinator = v;
    } else if (!strcmp(key, "name")) {
        cfg->name = v;
    } else if (!strcmp(key, "token-file")) {
        cfg->token_file = v;
    } else if (!strcmp(key, "tls-ca")) {
        cfg->tls_ca = v;
    } else if (!strcmp(key, "tls-cert")) {
        cfg->tls_cert = v;
    } else if (!strcmp(key, "tls-key")) {
        cfg->tls_key = v;
    } else if (!strcmp(key, "comm-iface")) {
        cfg->comm_iface = v;
    } else if (!strcmp(key, "data-roots") || !strcmp(key, "export-root")) {
        int roots = !strcmp(key, "data-roots");
        for (const char *r = v;;) {
            const char *end = strchr(r, ':');
            if (r[0] != '/' || (!roots && end))
                return e2_errf(err, errlen, "%s must be %s (got '%s')", key,
                               roots ? "absolute folders separated by ':'" : "one absolute folder",
                               v);
            if (!end) break;
            r = end + 1;
        }
        if (roots)
            cfg->data_roots = v;
        else
            cfg->export_root = v;
    } else {
        cfg->comm_host = v;
    }
    return 0;
}

/* `env.NAME = value`: only NCCL's variables, which NCCL reads when the
 * first rank connects. OpenMP and OpenBLAS read theirs when the program
 * loads, before any file is read: those belong in the unit's Environment=. */
static int agent_set_env(e2w_agent_config *cfg, const char *name, const char *v, char *err,
                         size_t errlen) {
    int ok = !strncmp(name, "NCCL_", 5) && name[5];
    for (const char *p = name + 5; ok && *p; p++)
        ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (!ok)
        return e2_errf(err, errlen,
                       "env.%s: only NCCL_* variables (capitals, digits, '_') can be set here; "
                       "others go in the unit's Environment=",
                       name);
    if (!*v) return e2_errf(err, errlen, "env.%s must not be empty", name);
    for (int i = 0; i < cfg->n_env; i++)
        if (!strcmp(cfg->env[i][0], name)) {
            cfg->env[i][1] = v;
            return 0;
        }
    if (cfg->n_env == E2W_AGENT_MAX_ENV)
        return e2_errf(err, errlen, "more than %d env. lines", E2W_AGENT_MAX_ENV);
    cfg->env[cfg->n_env][0] = name;
    cfg->env[cfg->n_env][1] = v;
    cfg->n_env++;
    return 0;
}

static char *agent_trim(char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    return s;
}

/* Reads the --config file into cfg->config_text and applies its lines,
 * which the text is cut into in place. */
static int agent_load_config(e2w_agent_config *cfg, const char *path, char *err, size_t errlen) {
    char msg[E2_ERRLEN], *text;
    size_t len;
    if (cfg->config_text) return e2_errf(err, errlen, "--config given twice");
    if (e2_read_file(path, 1 << 20, &text, &len, msg, sizeof msg) < 0)
        return e2_errf(err, errlen, "--config: %s", msg);
    cfg->config_text = text;
    int lineno = 0;
    for (char *line = text; line; lineno++) {
        char *nl = strchr(line, '\n'), *hash, *eq, *key, *val;
        if (nl) *nl = 0;
        if ((hash = strchr(line, '#'))) *hash = 0;
        key = agent_trim(line);
        line = nl ? nl + 1 : NULL;
        if (!*key) continue;
        if (!(eq = strchr(key, '=')))
            return e2_errf(err, errlen, "%s:%d: expected `key = value`", path, lineno + 1);
        *eq = 0;
        key = agent_trim(key);
        val = agent_trim(eq + 1);
        int rc;
        if (!strncmp(key, "env.", 4))
            rc = agent_set_env(cfg, key + 4, val, msg, sizeof msg);
        else if (!strcmp(key, "config"))
            rc = e2_errf(msg, sizeof msg, "config files do not nest");
        else
            rc = agent_set(cfg, key, val, msg, sizeof msg);
        if (rc < 0) return e2_errf(err, errlen, "%s:%d: %s", path, lineno + 1, msg);
    }
    return 0;
}

void e2w_agent_args_free(e2w_agent_config *cfg) {
    free(cfg->config_text);
    cfg->config_text = NULL;
    cfg->n_env = 0;
}

/* Splits argv[i], "--key=value" or "--key value", into key (without the
 * dashes) and *val; returns the index of the last argument used. */
static int agent_flag(int argc, char **argv, int i, char *key, size_t keyn, const char **val,
                      char *err, size_t errlen) {
    const char *a = argv[i] + 2, *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    snprintf(key, keyn, "%.*s", (int)(n < keyn ? n : keyn - 1), a);
    if (eq) {
        *val = eq + 1;
        return i;
    }
    if (i + 1 >= argc) return e2_errf(err, errlen, "--%s needs a value", key);
    *val = argv[i + 1];
    return i + 1;
}

int e2w_agent_parse_args(int argc, char **argv, e2w_agent_config *cfg, char *err, size_t errlen) {
    char key[32], msg[E2_ERRLEN];
    const char *v = NULL;
    memset(cfg, 0, sizeof *cfg);
    cfg->device = "cpu";
    const char *env = getenv("E2_SPAWNED_BY_E2D");
    cfg->spawned_by_e2d = env && !strcmp(env, "1");
    cfg->token_file = env_or_null("E2_TOKEN_FILE");
    cfg->tls_ca = env_or_null("E2_TLS_CA");
    cfg->tls_cert = env_or_null("E2_TLS_CERT");
    cfg->tls_key = env_or_null("E2_TLS_KEY");
    /* The file first, so that flags override it. */
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config", 8) || (argv[i][8] && argv[i][8] != '=')) continue;
        if ((i = agent_flag(argc, argv, i, key, sizeof key, &v, err, errlen)) < 0) return E2_ERR;
        if (!*v) return e2_errf(err, errlen, "--config must not be empty");
        if (agent_load_config(cfg, v, err, errlen) < 0) return E2_ERR;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--spawned")) {
            cfg->spawned_by_e2d = 1;
            continue;
        }
        if (strncmp(argv[i], "--", 2))
            return e2_errf(err, errlen, "unexpected argument %s (see --help)", argv[i]);
        char flag[32];
        size_t fl = strcspn(argv[i] + 2, "=");
        snprintf(flag, sizeof flag, "%.*s", (int)(fl < sizeof flag ? fl : sizeof flag - 1),
                 argv[i] + 2);
        if (strcmp(flag, "config") && !agent_takes_value(flag))
            return e2_errf(err, errlen, "unknown flag %s (see --help)", argv[i]);
        if ((i = agent_flag(argc, argv, i, key, sizeof key, &v, err, errlen)) < 0) return E2_ERR;
        if (!strcmp(key, "config")) continue;
        if (agent_set(cfg, key, v, msg, sizeof msg) < 0) return e2_errf(err, errlen, "--%s", msg);
    }
    if (!cfg->coordinator)
        return e2_errf(err, errlen,
                       "--coordinator ADDR is required (unix:/path or host:port; "
                       "config file: coordinator = ADDR)");
    return 0;
}

/* Sets the environment that --config and --comm-iface/--comm-host ask for,
 * before anything reads it. */
static int agent_apply_env(const e2w_agent_config *cfg, char *err, size_t errlen) {
    for (int i = 0; i < cfg->n_env; i++)
        if (setenv(cfg->env[i][0], cfg->env[i][1], 1) < 0)
            return e2_errf(err, errlen, "setenv %s: %s", cfg->env[i][0], strerror(errno));
    if (cfg->comm_iface && setenv("E2_COMM_IFACE", cfg->comm_iface, 1) < 0)
        return e2_errf(err, errlen, "setenv E2_COMM_IFACE: %s", strerror(errno));
    if (cfg->comm_host && setenv("E2_COMM_HOST", cfg->comm_host, 1) < 0)
        return e2_errf(err, errlen, "setenv E2_COMM_HOST: %s", strerror(errno));
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
            return e2_errf(err, errlen,
                           "--device-index %u: CUDA_VISIBLE_DEVICES=%s lists fewer GPUs", index,
                           vis);
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
static int sig_pipe[2] = { -1, -1 };
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
        e2w_agent_args_free(&cfg);
        return 0;
    }
    if (rc < 0 || agent_apply_env(&cfg, err, sizeof err) < 0 ||
        (!strcmp(cfg.device, "cuda") && select_gpu(cfg.device_index, err, sizeof err) < 0)) {
        fprintf(stderr, "e2worker: %s\n", err);
        e2w_agent_args_free(&cfg);
        return 2;
    }
    if (!cfg.data_roots && !cfg.spawned_by_e2d) /* e2d warns for its own */
        fprintf(stderr, "e2worker: warning: no data-roots: assigned jobs may read any file this "
                        "user can read (docs/security.md)\n");
    cfg.on_log = print_line;
    cfg.on_log_data = stdout;
    cfg.on_event = print_line;
    cfg.on_event_data = stderr;
    e2w_agent *a;
    if (e2w_agent_new(&a, &cfg, err, sizeof err) < 0) {
        fprintf(stderr, "e2worker: %s\n", err);
        e2w_agent_args_free(&cfg);
        return 2;
    }
    pthread_t st;
    if (pipe(sig_pipe) < 0 || pthread_create(&st, NULL, signal_main, a) != 0) {
        fprintf(stderr, "e2worker: cannot set up signal handling\n");
        e2w_agent_free(a);
        e2w_agent_args_free(&cfg);
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
    e2w_agent_args_free(&cfg);
    return rc < 0 ? 1 : 0;
}
