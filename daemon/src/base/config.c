/* config.c -- parsing of e2d's flags and config file, and the defaults
 * that depend on the environment (state directory, socket, worker binary). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"

static const char config_usage_text[] =
    "usage: e2d [options]\n"
    "\n"
    "The e2 coordinator daemon: stores jobs in SQLite, schedules them onto\n"
    "e2worker processes (gang scheduling), serves e2.v1.Coordinator and\n"
    "e2.v1.WorkerControl over gRPC.\n"
    "\n"
    "options (each can also be a `key = value` line of --config, without\n"
    "the dashes; flags override the file):\n"
    "  --listen ADDR             where to serve: unix:/path or host:port\n"
    "                            (default unix:<state-dir>/e2d.sock)\n"
    "  --state-dir DIR           SQLite database, job directories, worker\n"
    "                            logs (default $E2_STATE_DIR, else /var/lib/e2\n"
    "                            when run as root and writable, else\n"
    "                            $XDG_STATE_HOME/e2, else ~/.local/state/e2)\n"
    "  --local-workers N         spawn N `e2worker --coordinator ADDR`\n"
    "                            processes (own process group each, output in\n"
    "                            <state-dir>/workers/local-<i>.log, restarted\n"
    "                            with backoff when they die; each gets\n"
    "                            OMP_NUM_THREADS=max(1, cores / N) unless it\n"
    "                            is set; default 0)\n"
    "  --worker-bin PATH         e2worker to spawn (default: the e2worker next\n"
    "                            to the e2d binary)\n"
    "  --heartbeat-timeout SEC   a worker silent this long is LOST and its job\n"
    "                            attempt ends (default 10)\n"
    "  --hang-timeout SEC        a running job without step progress this long\n"
    "                            is treated as hung, like a lost worker\n"
    "                            (default 600; 0 disables)\n"
    "  --shutdown-grace SEC      at SIGTERM/SIGINT, calls in flight get this\n"
    "                            long before they are cancelled (default 5)\n"
    "  --gpu-mem GB              refuse cuda jobs whose per-GPU memory plan\n"
    "                            (e2worker plan) exceeds GB (10^9 bytes);\n"
    "                            default 0: no check\n"
    "  --http-listen HOST:PORT   also serve HTTP for dashboards: Prometheus\n"
    "                            /metrics, /healthz, a read-only JSON API\n"
    "                            (/api/v1/jobs[/ID[/metrics]]) and the status\n"
    "                            page at /; plaintext, so a loopback address\n"
    "                            (put a TLS proxy in front) unless --insecure;\n"
    "                            with --token-file the API and /metrics need\n"
    "                            a viewer token (Authorization: Bearer;\n"
    "                            default: off)\n"
    "  --http-root DIR           the status page's files (default: the\n"
    "                            share/e2/web installed next to e2d's bin/,\n"
    "                            else the source tree's web/)\n"
    "  --http-metrics-public yes|no\n"
    "                            yes: /metrics needs no token (default no)\n"
    "  --data-roots DIR[:DIR..]  every file a spec names to read (data shards,\n"
    "                            model.hf_dir, resume_from) must lie under one\n"
    "                            of these folders (after resolving links);\n"
    "                            SubmitJob refuses other paths, and local\n"
    "                            workers check again before opening (default:\n"
    "                            none, any path e2d's user can read: a warning\n"
    "                            is logged)\n"
    "  --export-root DIR         spec.output_dir must lie under it (default:\n"
    "                            any)\n"
    "  --tls-cert FILE           PEM certificate (chain) of a TLS listener\n"
    "  --tls-key FILE            its PEM private key\n"
    "  --tls-client-ca FILE      require client certificates signed by this\n"
    "                            PEM CA (mutual TLS, e.g. for workers)\n"
    "  --token-file FILE         bearer tokens, `<token> <name> <role>` per\n"
    "                            line (roles admin, submitter, viewer,\n"
    "                            worker); not readable by others. With it,\n"
    "                            every call needs a token, on the unix socket\n"
    "                            too; without it, every caller is admin\n"
    "  --insecure                allow a TCP --listen without TLS (a warning\n"
    "                            is logged); without it e2d refuses to start\n"
    "                            (config file: insecure = yes)\n"
    "  --max-workers-per-job N   refuse jobs with spec.num_workers above N\n"
    "                            (default 256)\n"
    "  --cpu-mem GB              refuse cpu jobs whose memory plan exceeds\n"
    "                            GB per worker (default: this host's memory)\n"
    "  --priority-max-submitter P\n"
    "                            highest spec.priority a submitter token may\n"
    "                            set (default 100)\n"
    "  --priority-max-admin P    the same for admins, and for every caller\n"
    "                            without --token-file (default 1000000)\n"
    "  --config FILE             read settings from FILE first\n"
    "  --help                    this text\n"
    "\n"
    "Restart: jobs that were running when e2d stopped come back. Attempts\n"
    "run by workers e2d spawned itself restart from the last committed\n"
    "checkpoint (those workers are stopped with e2d); workers that dialled\n"
    "in and reconnect within --heartbeat-timeout carry on with their attempt.\n";

const char *e2_config_usage(void) {
    return config_usage_text;
}

void e2_config_init(e2d_config *c) {
    memset(c, 0, sizeof *c);
    c->heartbeat_timeout = 10;
    c->hang_timeout = 600;
    c->shutdown_grace = 5;
    c->max_workers_per_job = 256;
    c->priority_max_submitter = 100;
    c->priority_max_admin = 1000000;
}

static int config_num(const char *key, const char *v, double lo, double hi, double *out, char *err,
                      size_t errlen) {
    char *end;
    double d = 0;
    errno = 0;
    d = strtod(v, &end);
    if (end == v || *end || errno || !(d >= lo && d <= hi))
        return e2_errf(err, errlen, "%s must be a number in [%g, %g] (got '%s')", key, lo, hi, v);
    *out = d;
    return 0;
}

static int config_str(const char *key, const char *v, char *dst, size_t n, char *err,
                      size_t errlen) {
    if (!*v) return e2_errf(err, errlen, "%s must not be empty", key);
    if (strlen(v) >= n)
        return e2_errf(err, errlen, "%s is too long (at most %zu bytes)", key, n - 1);
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int e2_config_roots_ok(const char *key, const char *v, char *err, size_t errlen) {
    for (const char *r = v;;) {
        const char *end = strchr(r, ':');
        size_t n = end ? (size_t)(end - r) : strlen(r);
        if (n == 0 || r[0] != '/')
            return e2_errf(err, errlen,
                           "%s must be absolute folders separated by ':' "
                           "(got '%s')",
                           key, v);
        if (!end) return 0;
        r = end + 1;
    }
}

/* The submit limits (see e2d_config): 1 when key is one of them. */
static int config_limit(e2d_config *c, const char *key, const char *value, int *rc, char *err,
                        size_t errlen) {
    double d = 0;
    int *dst = NULL;
    double lo = 0, hi = 0;
    if (!strcmp(key, "cpu-mem")) {
        *rc = config_num(key, value, 0, 1e6, &c->cpu_mem, err, errlen);
        return 1;
    }
    if (!strcmp(key, "max-workers-per-job"))
        dst = &c->max_workers_per_job, lo = 1, hi = 1024;
    else if (!strcmp(key, "priority-max-submitter"))
        dst = &c->priority_max_submitter, lo = -2147483647.0, hi = 2147483647.0;
    else if (!strcmp(key, "priority-max-admin"))
        dst = &c->priority_max_admin, lo = -2147483647.0, hi = 2147483647.0;
    else
        return 0;
    if ((*rc = config_num(key, value, lo, hi, &d, err, errlen)) < 0) return 1;
    if (d != (int)d)
        *rc = e2_errf(err, errlen, "%s must be a whole number (got '%s')", key, value);
    else
        *dst = (int)d;
    return 1;
}

int e2_config_set(e2d_config *c, const char *key, const char *value, char *err, size_t errlen) {
    double d = 0;
    if (!strcmp(key, "data-roots") || !strcmp(key, "export-root")) {
        int roots = !strcmp(key, "data-roots");
        if (e2_config_roots_ok(key, value, err, errlen) < 0) return E2_ERR;
        if (!roots && strchr(value, ':'))
            return e2_errf(err, errlen, "export-root is one folder (got '%s')", value);
        return roots ? config_str(key, value, c->data_roots, sizeof c->data_roots, err, errlen)
                     : config_str(key, value, c->export_root, sizeof c->export_root, err, errlen);
    }
    int rc = 0;
    if (config_limit(c, key, value, &rc, err, errlen)) return rc;
    if (!strcmp(key, "listen"))
        return config_str(key, value, c->listen, sizeof c->listen, err, errlen);
    if (!strcmp(key, "tls-cert"))
        return config_str(key, value, c->tls_cert, sizeof c->tls_cert, err, errlen);
    if (!strcmp(key, "tls-key"))
        return config_str(key, value, c->tls_key, sizeof c->tls_key, err, errlen);
    if (!strcmp(key, "tls-client-ca"))
        return config_str(key, value, c->tls_client_ca, sizeof c->tls_client_ca, err, errlen);
    if (!strcmp(key, "token-file"))
        return config_str(key, value, c->token_file, sizeof c->token_file, err, errlen);
    if (!strcmp(key, "insecure")) {
        if (strcmp(value, "yes") && strcmp(value, "no"))
            return e2_errf(err, errlen, "insecure must be yes or no (got '%s')", value);
        c->insecure = !strcmp(value, "yes");
        return 0;
    }
    if (!strcmp(key, "state-dir"))
        return config_str(key, value, c->state_dir, sizeof c->state_dir, err, errlen);
    if (!strcmp(key, "worker-bin"))
        return config_str(key, value, c->worker_bin, sizeof c->worker_bin, err, errlen);
    if (!strcmp(key, "local-workers")) {
        if (config_num(key, value, 0, 256, &d, err, errlen) < 0) return E2_ERR;
        if (d != (int)d)
            return e2_errf(err, errlen, "local-workers must be a whole number (got '%s')", value);
        c->local_workers = (int)d;
        return 0;
    }
    if (!strcmp(key, "heartbeat-timeout"))
        return config_num(key, value, 0.1, 86400, &c->heartbeat_timeout, err, errlen);
    if (!strcmp(key, "hang-timeout"))
        return config_num(key, value, 0, 604800, &c->hang_timeout, err, errlen);
    if (!strcmp(key, "shutdown-grace"))
        return config_num(key, value, 0, 3600, &c->shutdown_grace, err, errlen);
    if (!strcmp(key, "gpu-mem")) return config_num(key, value, 0, 1e6, &c->gpu_mem, err, errlen);
    if (!strcmp(key, "http-listen"))
        return config_str(key, value, c->http_listen, sizeof c->http_listen, err, errlen);
    if (!strcmp(key, "http-root"))
        return config_str(key, value, c->http_root, sizeof c->http_root, err, errlen);
    if (!strcmp(key, "http-metrics-public")) {
        if (strcmp(value, "yes") && strcmp(value, "no"))
            return e2_errf(err, errlen, "http-metrics-public must be yes or no (got '%s')", value);
        c->http_metrics_public = !strcmp(value, "yes");
        return 0;
    }
    return e2_errf(err, errlen, "%s: unknown setting (see e2d --help)", key);
}

static char *config_trim(char *s) {
    char *e;
    while (isspace((unsigned char)*s)) s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int e2_config_load(e2d_config *c, const char *path, char *err, size_t errlen) {
    char line[2048], msg[E2_ERRLEN];
    int lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) return e2_errf(err, errlen, "config %s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        char *hash, *eq, *key, *val;
        lineno++;
        if ((hash = strchr(line, '#'))) *hash = 0;
        key = config_trim(line);
        if (!*key) continue;
        if (!(eq = strchr(key, '='))) {
            fclose(f);
            return e2_errf(err, errlen, "%s:%d: expected `key = value`", path, lineno);
        }
        *eq = 0;
        key = config_trim(key);
        val = config_trim(eq + 1);
        if (!strcmp(key, "config") || e2_config_set(c, key, val, msg, sizeof msg) < 0) {
            fclose(f);
            if (!strcmp(key, "config")) snprintf(msg, sizeof msg, "config files do not nest");
            return e2_errf(err, errlen, "%s:%d: %s", path, lineno, msg);
        }
    }
    fclose(f);
    return 0;
}

/* Splits "--key=value" / "--key value"; returns the argv index consumed up
 * to, or < 0 with err set. */
static int config_flag(int argc, char **argv, int i, char *key, size_t keyn, const char **val,
                       char *err, size_t errlen) {
    const char *a = argv[i] + 2, *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    if (n >= keyn) n = keyn - 1;
    memcpy(key, a, n);
    key[n] = 0;
    if (eq) {
        *val = eq + 1;
        return i;
    }
    if (i + 1 >= argc) return e2_errf(err, errlen, "--%s needs a value (see e2d --help)", key);
    *val = argv[i + 1];
    return i + 1;
}

int e2_config_parse(e2d_config *c, int argc, char **argv, char *err, size_t errlen) {
    char key[64];
    const char *val = NULL;
    /* The file first, so that flags override it. */
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--config", 8) || (argv[i][8] && argv[i][8] != '=')) continue;
        if ((i = config_flag(argc, argv, i, key, sizeof key, &val, err, errlen)) < 0) return E2_ERR;
        if (config_str("config", val, c->config_file, sizeof c->config_file, err, errlen) < 0 ||
            e2_config_load(c, c->config_file, err, errlen) < 0)
            return E2_ERR;
    }
    for (int i = 1; i < argc; i++) {
        char msg[E2_ERRLEN];
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            c->help = 1;
            return 0;
        }
        if (!strcmp(argv[i], "--insecure")) {
            c->insecure = 1;
            continue;
        }
        if (strncmp(argv[i], "--", 2))
            return e2_errf(err, errlen, "unexpected argument '%s' (see e2d --help)", argv[i]);
        if ((i = config_flag(argc, argv, i, key, sizeof key, &val, err, errlen)) < 0) return E2_ERR;
        if (!strcmp(key, "config")) continue;
        if (e2_config_set(c, key, val, msg, sizeof msg) < 0)
            return e2_errf(err, errlen, "--%s", msg);
    }
    return 0;
}

/* The default state directory (see --help). */
static int config_default_state_dir(e2d_config *c, char *err, size_t errlen) {
    const char *env = getenv("E2_STATE_DIR"), *xdg, *home;
    if (env && *env)
        return config_str("E2_STATE_DIR", env, c->state_dir, sizeof c->state_dir, err, errlen);
    if (geteuid() == 0 && (access("/var/lib/e2", W_OK) == 0 || access("/var/lib", W_OK) == 0)) {
        snprintf(c->state_dir, sizeof c->state_dir, "/var/lib/e2");
        return 0;
    }
    if ((xdg = getenv("XDG_STATE_HOME")) && *xdg) {
        snprintf(c->state_dir, sizeof c->state_dir, "%s/e2", xdg);
        return 0;
    }
    if (!(home = getenv("HOME")) || !*home)
        return e2_errf(err, errlen,
                       "no state directory: set --state-dir, E2_STATE_DIR or "
                       "HOME");
    snprintf(c->state_dir, sizeof c->state_dir, "%s/.local/state/e2", home);
    return 0;
}

int e2_config_finish(e2d_config *c, const char *self_exe, char *err, size_t errlen) {
    if (!c->state_dir[0] && config_default_state_dir(c, err, errlen) < 0) return E2_ERR;
    if (!c->listen[0]) {
        if (strlen(c->state_dir) + sizeof "unix:/e2d.sock" > 108)
            return e2_errf(err, errlen,
                           "state dir %s is too long for a unix socket path: "
                           "give --listen",
                           c->state_dir);
        snprintf(c->listen, sizeof c->listen, "unix:%s/e2d.sock", c->state_dir);
    }
    if (!c->http_root[0] && self_exe) {
        /* <prefix>/bin/e2d serves <prefix>/share/e2/web; a build-tree e2d
         * has no such folder and serves the source tree's web/. */
        const char *slash = strrchr(self_exe, '/');
        int dirlen = slash ? (int)(slash - self_exe) : 1;
        snprintf(c->http_root, sizeof c->http_root, "%.*s/../share/e2/web", dirlen,
                 slash ? self_exe : ".");
        if (access(c->http_root, R_OK) < 0)
            snprintf(c->http_root, sizeof c->http_root, "%s", E2D_SOURCE_WEB);
    }
    if (!c->tls_cert[0] != !c->tls_key[0])
        return e2_errf(err, errlen, "TLS needs both --tls-cert and --tls-key (got only %s)",
                       c->tls_cert[0] ? "--tls-cert" : "--tls-key");
    if (c->tls_client_ca[0] && !c->tls_cert[0])
        return e2_errf(err, errlen,
                       "--tls-client-ca needs a TLS listener: give --tls-cert "
                       "and --tls-key too");
    if (!c->worker_bin[0] && self_exe) {
        const char *slash = strrchr(self_exe, '/');
        int dirlen = slash ? (int)(slash - self_exe) : 1;
        snprintf(c->worker_bin, sizeof c->worker_bin, "%.*s/e2worker", dirlen,
                 slash ? self_exe : ".");
    }
    return 0;
}
