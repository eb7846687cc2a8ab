/* config.h -- e2d's settings: defaults, the --config file and the command
 * line (prefix config_). A file holds `key = value` lines with the flag
 * names without dashes ("state-dir = /srv/e2"); '#' starts a comment.
 * Flags override the file. Nothing here prints: errors are one line in
 * err, with file:line for the config file. */
#ifndef E2D_CONFIG_H
#define E2D_CONFIG_H

#include <stddef.h>

typedef struct e2d_config {
    char listen[512]; /* "unix:/path" or "host:port" */
    char state_dir[400];
    char worker_bin[512];     /* e2worker used by --local-workers */
    char config_file[512];    /* "" when none */
    char tls_cert[512];       /* PEM server certificate; "" = plaintext */
    char tls_key[512];        /* its PEM private key */
    char tls_client_ca[512];  /* CA of client certificates (mutual TLS) */
    char token_file[512];     /* bearer tokens; "" = no token checks */
    int insecure;             /* allow a plaintext TCP listener */
    int local_workers;        /* 0..256 */
    double heartbeat_timeout; /* seconds before a silent worker is LOST */
    double hang_timeout;      /* seconds without step progress; 0 = off */
    double shutdown_grace;    /* seconds calls get at SIGTERM */
    double gpu_mem;           /* GB per GPU for SubmitJob's memory check; 0 = off */
    char http_listen[256];    /* "host:port" of the HTTP listener; "" = off */
    char http_root[512];      /* status page files (index.html, app.js) */
    int http_metrics_public;  /* /metrics needs no token */
    char data_roots[2048];    /* ':'-separated folders spec paths must be
                                  under; "" = any path (a warning) */
    char export_root[512];    /* spec.output_dir must be under it; "" = any */
    int help;                 /* --help was given */
    /* Submit limits (harden-daemon): SubmitJob refuses a job above them. */
    int max_workers_per_job;    /* spec.num_workers ceiling (default 256) */
    double cpu_mem;             /* GB per cpu worker for the memory plan;
                                  0 = this host's physical memory */
    int priority_max_submitter; /* spec.priority ceiling, role submitter */
    int priority_max_admin;     /* the same for admins (no token file:
                                   every caller is admin) */
} e2d_config;

/* Fills defaults that do not depend on other settings. */
void e2_config_init(e2d_config *c);
/* Applies the config file named by --config (if any), then the flags.
 * self is argv[0]'s resolved path, used for the default worker-bin. */
int e2_config_parse(e2d_config *c, int argc, char **argv, char *err, size_t errlen);
/* Applies one key = value setting (flag name without dashes). */
int e2_config_set(e2d_config *c, const char *key, const char *value, char *err, size_t errlen);
/* Reads a config file. */
int e2_config_load(e2d_config *c, const char *path, char *err, size_t errlen);
/* Resolves the settings that depend on others (state dir, listen address,
 * worker binary next to e2d). */
int e2_config_finish(e2d_config *c, const char *self_exe, char *err, size_t errlen);
/* Checks a ':'-separated list of absolute folders ("data-roots"). */
int e2_config_roots_ok(const char *key, const char *v, char *err, size_t errlen);
/* The --help text. */
const char *e2_config_usage(void);

#endif
