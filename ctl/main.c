/* main.c: e2ctl, the command-line client of e2d: option parsing, the
 * server address, the connection, and dispatch to commands.c. */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "pbjson.h"

static const char usage[] =
    "usage: e2ctl [--server ADDR] [--token-file PATH] [--tls-ca FILE] COMMAND [ARGS]\n"
    "             [--json]\n"
    "\n"
    "Commands:\n"
    "  submit SPEC.json [--set path=value ...] [--request-id ID] [--wait]\n"
    "                       submit a job (spec: the JSON form of e2.v1.JobSpec);\n"
    "                       --set overrides one field (train.lr=3e-4, labels.team=nlp);\n"
    "                       --request-id makes a retry return the same job;\n"
    "                       --wait follows it to the end (like watch)\n"
    "  status JOB           one job: state, progress, failure, checkpoints, eval\n"
    "  list [--state S ...] [--label k=v ...]\n"
    "                       jobs, newest first (S: pending, running, failed, ...)\n"
    "  cancel JOB [--grace SECONDS]\n"
    "                       stop a job; workers get SECONDS (default 30) to stop\n"
    "                       at a step boundary before they are killed\n"
    "  watch JOB            follow a job's progress until it ends\n"
    "  logs JOB [-f] [--attempt N] [--rank R]\n"
    "                       a job's training log (latest attempt, all ranks);\n"
    "                       -f keeps following until the attempt ends\n"
    "  workers [--all]      registered workers (--all: also LOST ones)\n"
    "  metrics JOB          loss, learning rate and throughput per step\n"
    "  eval JOB             the job's evaluation table\n"
    "  version              e2ctl's version\n"
    "  (e2ctl COMMAND --help: that command's usage)\n"
    "\n"
    "Options:\n"
    "  --server ADDR        e2d address: unix:/path or host:port. Default: $E2_SERVER,\n"
    "                       else unix:<state dir>/e2d.sock with e2d's default state\n"
    "                       dir: $E2_STATE_DIR, /var/lib/e2 (root),\n"
    "                       $XDG_STATE_HOME/e2, ~/.local/state/e2\n"
    "  --token-file PATH    send 'authorization: Bearer <token>' with the token\n"
    "                       read from PATH (its first word; the file must not be\n"
    "                       readable by others). Default: $E2_TOKEN_FILE, else\n"
    "                       $XDG_CONFIG_HOME/e2/token or ~/.config/e2/token when\n"
    "                       it exists. Tokens are never taken on the command line\n"
    "  --tls-ca FILE        talk TLS to a host:port server whose certificate this\n"
    "                       PEM CA signed (or $E2_TLS_CA)\n"
    "  --tls-cert FILE      client certificate for mutual TLS, with --tls-key\n"
    "  --tls-key FILE       (or $E2_TLS_CERT, $E2_TLS_KEY)\n"
    "  --json               print the API's JSON instead of text (read commands;\n"
    "                       watch/--wait: one JSON event per line)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit codes:\n"
    "  0   success; with --wait or watch: the job SUCCEEDED\n"
    "  1   with --wait or watch: the job FAILED\n"
    "  2   with --wait or watch: the job was CANCELLED (or the stream ended early)\n"
    "  3   e2d rejected the request (invalid spec, unknown job, ...)\n"
    "  4   e2d could not be reached, or did not answer in time\n"
    "  64  bad command line\n"
    "  65  unreadable or invalid spec file, or a bad --set\n"
    "  130 interrupted (Ctrl-C) while following a job; the job keeps running\n";

void ctl_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("e2ctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void ctl_print_json(const ProtobufCMessage *msg) {
    char *text = e2_pbjson_to_string(msg, 2);
    if (text != NULL) {
        puts(text);
        free(text);
    }
}

int ctl_rpc_failed(ctl_ctx *ctx, const char *method, int code, const char *message) {
    if (code == E2_RPC_UNAVAILABLE || code == E2_RPC_DEADLINE_EXCEEDED) {
        ctl_err("cannot reach e2d at %s (%s%s%s)", ctx->target, e2_rpc_status_name(code),
                message[0] ? ": " : "", message);
        return CTL_EXIT_UNREACHABLE;
    }
    if (code == E2_RPC_UNIMPLEMENTED) {
        ctl_err("e2d at %s does not serve %s (is it an e2d of this version?)", ctx->target, method);
        return CTL_EXIT_REJECTED;
    }
    if (message[0] != '\0')
        ctl_err("%s", message);
    else
        ctl_err("%s failed: %s", method, e2_rpc_status_name(code));
    return CTL_EXIT_REJECTED;
}

int ctl_call(ctl_ctx *ctx, const char *method, const ProtobufCMessage *request,
             const ProtobufCMessageDescriptor *response_type, ProtobufCMessage **response) {
    char path[128], message[1024];
    snprintf(path, sizeof path, "/e2.v1.Coordinator/%s", method);
    int code = e2_rpc_client_call(ctx->client, path, request, response_type, response,
                                  CTL_CALL_TIMEOUT_MS, message, sizeof message);
    if (code == E2_RPC_OK) return 0;
    return ctl_rpc_failed(ctx, method, code, message);
}

/* e2d's own default (daemon/src/config.c): unix:<state dir>/e2d.sock. */
static int default_server(char *buf, size_t len) {
    const char *env = getenv("E2_SERVER"), *dir = getenv("E2_STATE_DIR");
    if (env != NULL && env[0] != '\0') return snprintf(buf, len, "%s", env) < (int)len ? 0 : -1;
    if (dir != NULL && dir[0] != '\0')
        return snprintf(buf, len, "unix:%s/e2d.sock", dir) < (int)len ? 0 : -1;
    if (geteuid() == 0 && (access("/var/lib/e2", W_OK) == 0 || access("/var/lib", W_OK) == 0))
        return snprintf(buf, len, "unix:/var/lib/e2/e2d.sock") < (int)len ? 0 : -1;
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg != NULL && xdg[0] != '\0')
        return snprintf(buf, len, "unix:%s/e2/e2d.sock", xdg) < (int)len ? 0 : -1;
    if (home != NULL && home[0] != '\0')
        return snprintf(buf, len, "unix:%s/.local/state/e2/e2d.sock", home) < (int)len ? 0 : -1;
    return -1;
}

/* Options: name, takes a value, commands that accept it ("*" = all). */
typedef struct {
    const char *name;
    int has_value;
    const char *commands;
} optdef;

static const optdef options[] = {
    { "--server", 1, "*" },
    { "--token-file", 1, "*" },
    { "--tls-ca", 1, "*" },
    { "--tls-cert", 1, "*" },
    { "--tls-key", 1, "*" },
    { "--json", 0, " submit status list cancel watch logs workers metrics eval " },
    { "--set", 1, " submit " },
    { "--wait", 0, " submit " },
    { "--request-id", 1, " submit " },
    { "--state", 1, " list " },
    { "--label", 1, " list " },
    { "--grace", 1, " cancel " },
    { "-f", 0, " logs " },
    { "--follow", 0, " logs " },
    { "--attempt", 1, " logs " },
    { "--rank", 1, " logs " },
    { "--all", 0, " workers " },
};

typedef struct {
    const char *name;
    int positional; /* required positional arguments */
    const char *positional_name;
    int (*run)(ctl_ctx *ctx);
    const char *usage; /* `e2ctl NAME --help` */
} command;

/* Each command's own usage (`e2ctl COMMAND --help`); the global options
 * (--server, --token-file, --tls-*) are in `e2ctl --help`. */
#define CTL_GLOBAL_OPTS "\nGlobal options (--server, --token-file, --tls-ca, ...): e2ctl --help\n"
static const char submit_usage[] =
    "usage: e2ctl submit SPEC.json [--set path=value ...] [--request-id ID]\n"
    "                    [--wait] [--json]\n"
    "\n"
    "Submit a job; SPEC.json is the JSON form of e2.v1.JobSpec. Relative paths\n"
    "in it are relative to the spec file. Prints the job id.\n"
    "\n"
    "  --set path=value   override one field (train.lr=3e-4, labels.team=nlp)\n"
    "  --request-id ID    idempotency key: a retry returns the same job\n"
    "  --wait             follow the job to its end, like watch; the exit code\n"
    "                     is 0 SUCCEEDED, 1 FAILED, 2 CANCELLED\n"
    "  --json             print the API's JSON\n"
    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char status_usage[] = "usage: e2ctl status JOB [--json]\n"
                                   "\n"
                                   "One job: state, progress, failure, checkpoints, evaluation.\n"
                                   "\n"
                                   "  --json             print the API's JSON\n"
                                   "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char list_usage[] =
    "usage: e2ctl list [--state S ...] [--label k=v ...] [--json]\n"
    "\n"
    "Jobs, newest first.\n"
    "\n"
    "  --state S          only jobs in state S (pending, starting, running,\n"
    "                     restarting, succeeded, failed, cancelling, cancelled);\n"
    "                     repeatable\n"
    "  --label k=v        only jobs with this label; repeatable\n"
    "  --json             print the API's JSON\n"
    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char cancel_usage[] =
    "usage: e2ctl cancel JOB [--grace SECONDS] [--json]\n"
    "\n"
    "Stop a job. Its workers get SECONDS (default 30) to stop at a step\n"
    "boundary before they are killed.\n"
    "\n"
    "  --grace SECONDS    grace period\n"
    "  --json             print the API's JSON\n"
    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char watch_usage[] =
    "usage: e2ctl watch JOB [--json]\n"
    "\n"
    "Follow a job's progress until it ends. Exit code 0 SUCCEEDED, 1 FAILED,\n"
    "2 CANCELLED (or the stream ended early), 130 interrupted.\n"
    "\n"
    "  --json             one JSON event per line\n"
    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char logs_usage[] = "usage: e2ctl logs JOB [-f] [--attempt N] [--rank R] [--json]\n"
                                 "\n"
                                 "A job's training log: the latest attempt, all ranks.\n"
                                 "\n"
                                 "  -f, --follow       keep following until the attempt ends\n"
                                 "  --attempt N        that attempt instead of the latest\n"
                                 "  --rank R           only rank R's lines\n"
                                 "  --json             print the API's JSON\n"
                                 "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char workers_usage[] = "usage: e2ctl workers [--all] [--json]\n"
                                    "\n"
                                    "Registered workers and what they run.\n"
                                    "\n"
                                    "  --all              also LOST workers\n"
                                    "  --json             print the API's JSON\n"
                                    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char metrics_usage[] = "usage: e2ctl metrics JOB [--json]\n"
                                    "\n"
                                    "Loss, learning rate and throughput per step.\n"
                                    "\n"
                                    "  --json             print the API's JSON\n"
                                    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char eval_usage[] =
    "usage: e2ctl eval JOB [--json]\n"
    "\n"
    "The job's evaluation table (perplexity per window and scale, passkey).\n"
    "\n"
    "  --json             print the API's JSON\n"
    "  -h, --help         this text\n" CTL_GLOBAL_OPTS;
static const char version_usage[] = "usage: e2ctl version\n"
                                    "\n"
                                    "Print e2ctl's version.\n";

static int ctl_version(ctl_ctx *ctx) {
    (void)ctx;
    printf("e2ctl %s\n", E2_VERSION);
    return CTL_EXIT_OK;
}

static const command commands[] = {
    { "submit", 1, "SPEC.json", ctl_submit, submit_usage },
    { "status", 1, "JOB", ctl_status, status_usage },
    { "list", 0, NULL, ctl_list, list_usage },
    { "cancel", 1, "JOB", ctl_cancel, cancel_usage },
    { "watch", 1, "JOB", ctl_watch, watch_usage },
    { "logs", 1, "JOB", ctl_logs, logs_usage },
    { "workers", 0, NULL, ctl_workers, workers_usage },
    { "metrics", 1, "JOB", ctl_metrics, metrics_usage },
    { "eval", 1, "JOB", ctl_eval, eval_usage },
    { "version", 0, NULL, ctl_version, version_usage },
};

static int parse_u32(const char *opt, const char *text, uint32_t *out) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (text[0] == '\0' || text[0] == '-' || *end != '\0' || errno != 0 || v > UINT32_MAX) {
        ctl_err("%s must be a non-negative integer (got '%s')", opt, text);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int push(const char **list, int *n, const char *opt, const char *v) {
    if (*n == CTL_MAX_LIST) {
        ctl_err("at most %d %s options", CTL_MAX_LIST, opt);
        return -1;
    }
    list[(*n)++] = v;
    return 0;
}

static int apply_option(ctl_args *a, const char *name, const char *v) {
    if (strcmp(name, "--server") == 0)
        a->server = v;
    else if (strcmp(name, "--token-file") == 0)
        a->token_file = v;
    else if (strcmp(name, "--tls-ca") == 0)
        a->tls_ca = v;
    else if (strcmp(name, "--tls-cert") == 0)
        a->tls_cert = v;
    else if (strcmp(name, "--tls-key") == 0)
        a->tls_key = v;
    else if (strcmp(name, "--json") == 0)
        a->json = 1;
    else if (strcmp(name, "--set") == 0)
        return push(a->sets, &a->n_sets, name, v);
    else if (strcmp(name, "--wait") == 0)
        a->wait = 1;
    else if (strcmp(name, "--request-id") == 0)
        a->request_id = v;
    else if (strcmp(name, "--state") == 0)
        return push(a->states, &a->n_states, name, v);
    else if (strcmp(name, "--label") == 0)
        return push(a->labels, &a->n_labels, name, v);
    else if (strcmp(name, "--grace") == 0) {
        a->has_grace = 1;
        return parse_u32(name, v, &a->grace);
    } else if (strcmp(name, "-f") == 0 || strcmp(name, "--follow") == 0)
        a->follow = 1;
    else if (strcmp(name, "--attempt") == 0)
        return parse_u32(name, v, &a->attempt);
    else if (strcmp(name, "--rank") == 0) {
        uint32_t r;
        if (parse_u32(name, v, &r) != 0 || r > INT32_MAX) return -1;
        a->rank = (int)r;
    } else if (strcmp(name, "--all") == 0)
        a->all = 1;
    return 0;
}

/* Options may come before or after the command. Returns 0, 1 for --help
 * (a->command set when one was given), or -1 after printing the error. */
static int parse_args(int argc, char **argv, ctl_args *a) {
    memset(a, 0, sizeof *a);
    a->rank = -1;
    const char *opts[128], *vals[128];
    int n_opts = 0, help = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            help = 1;
            continue;
        }
        if (arg[0] != '-' || strcmp(arg, "-") == 0) {
            if (a->command == NULL)
                a->command = arg;
            else if (a->n_positional < 4)
                a->positional[a->n_positional++] = arg;
            else if (help)
                continue;
            else {
                ctl_err("unexpected argument '%s'", arg);
                return -1;
            }
            continue;
        }
        char name[64];
        const char *eq = strchr(arg, '='), *value = NULL;
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof name, "%.*s", (int)nlen, arg);
        const optdef *d = NULL;
        for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
            if (strcmp(options[k].name, name) == 0) d = &options[k];
        if (d == NULL && help) continue;
        if (d == NULL) {
            ctl_err("unknown option '%s' (see e2ctl --help)", name);
            return -1;
        }
        if (d->has_value) {
            if (eq != NULL)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else {
                ctl_err("%s needs a value", name);
                return -1;
            }
        } else if (eq != NULL) {
            ctl_err("%s takes no value", name);
            return -1;
        }
        if (n_opts == 128) {
            ctl_err("too many options");
            return -1;
        }
        opts[n_opts] = d->name;
        vals[n_opts++] = value;
    }
    if (help) return 1;
    if (a->command == NULL) {
        ctl_err("no command given (see e2ctl --help)");
        return -1;
    }
    for (int k = 0; k < n_opts; k++) {
        const optdef *d = NULL;
        for (size_t j = 0; j < sizeof options / sizeof options[0]; j++)
            if (strcmp(options[j].name, opts[k]) == 0) d = &options[j];
        char needle[40];
        snprintf(needle, sizeof needle, " %s ", a->command);
        if (strcmp(d->commands, "*") != 0 && strstr(d->commands, needle) == NULL) {
            ctl_err("%s does not apply to '%s' (see e2ctl --help)", opts[k], a->command);
            return -1;
        }
        if (apply_option(a, opts[k], vals[k]) != 0) return -1;
    }
    return 0;
}

/* The token file: --token-file, $E2_TOKEN_FILE, else the per-user one
 * when it exists. 0 when there is none (calls go without a token). */
static int token_path(const ctl_args *a, char *path, size_t len) {
    const char *p = a->token_file != NULL ? a->token_file : getenv("E2_TOKEN_FILE");
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (p != NULL && p[0] != '\0') {
        snprintf(path, len, "%s", p);
        return 1;
    }
    if (xdg != NULL && xdg[0] == '/')
        snprintf(path, len, "%s/e2/token", xdg);
    else if (home != NULL && home[0] != '\0')
        snprintf(path, len, "%s/.config/e2/token", home);
    else
        return 0;
    return access(path, F_OK) == 0;
}

static int connect_ctx(ctl_ctx *ctx) {
    const ctl_args *a = ctx->args;
    if (a->server != NULL)
        snprintf(ctx->target, sizeof ctx->target, "%s", a->server);
    else if (default_server(ctx->target, sizeof ctx->target) != 0) {
        ctl_err("no e2d address: give --server ADDR or set E2_SERVER");
        return CTL_EXIT_USAGE;
    }
    char err[512];
    const char *ca = a->tls_ca != NULL ? a->tls_ca : getenv("E2_TLS_CA");
    const char *cert = a->tls_cert != NULL ? a->tls_cert : getenv("E2_TLS_CERT");
    const char *key = a->tls_key != NULL ? a->tls_key : getenv("E2_TLS_KEY");
    e2_rpc_client_tls tls = { ca, cert, key, NULL };
    int use_tls = (ca != NULL && ca[0] != '\0') || cert != NULL || key != NULL;
    ctx->client = e2_rpc_client_new_tls(ctx->target, use_tls ? &tls : NULL, err, sizeof err);
    if (ctx->client == NULL) {
        ctl_err("%s: %s", use_tls ? "TLS" : "--server", err);
        return CTL_EXIT_USAGE;
    }
    char path[1024], token[E2_AUTH_TOKEN_MAX + 1], header[E2_AUTH_TOKEN_MAX + 16];
    if (!token_path(a, path, sizeof path)) return 0;
    if (e2_auth_token_read(path, token, sizeof token, err, sizeof err) < 0) {
        ctl_err("%s", err);
        return CTL_EXIT_USAGE;
    }
    snprintf(header, sizeof header, "Bearer %s", token);
    e2_rpc_client_set_metadata(ctx->client, "authorization", header);
    return 0;
}

int main(int argc, char **argv) {
    ctl_args args;
    int rc = parse_args(argc, argv, &args);
    if (rc == 1) {
        /* `e2ctl COMMAND --help`: that command's usage; else the global one. */
        const char *text = usage;
        for (size_t i = 0; args.command && i < sizeof commands / sizeof commands[0]; i++)
            if (strcmp(commands[i].name, args.command) == 0) text = commands[i].usage;
        fputs(text, stdout);
        return CTL_EXIT_OK;
    }
    if (rc != 0) return CTL_EXIT_USAGE;
    const command *cmd = NULL;
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(commands[i].name, args.command) == 0) cmd = &commands[i];
    if (cmd == NULL) {
        ctl_err("unknown command '%s' (see e2ctl --help)", args.command);
        return CTL_EXIT_USAGE;
    }
    if (args.n_positional < cmd->positional) {
        ctl_err("%s needs %s (see e2ctl --help)", cmd->name, cmd->positional_name);
        return CTL_EXIT_USAGE;
    }
    if (args.n_positional > cmd->positional) {
        ctl_err("unexpected argument '%s' for %s", args.positional[cmd->positional], cmd->name);
        return CTL_EXIT_USAGE;
    }
    ctl_ctx ctx = { &args, NULL, "" };
    if (cmd->run == ctl_version) return ctl_version(&ctx);
    rc = connect_ctx(&ctx);
    if (rc == 0) rc = cmd->run(&ctx);
    e2_rpc_client_free(ctx.client);
    return rc;
}
