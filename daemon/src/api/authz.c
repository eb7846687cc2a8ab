/* authz.c -- e2d's access control: TLS listener, token checks before
 * every handler (the rpc auth hook), job owners. See authz.h. */
#include "authz.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "base.h"
#include "e2d.h"

static e2_auth_tokens authz_tokens;
static int authz_on;

int e2_authz_enabled(void) {
    return authz_on;
}

void e2_authz_close(void) {
    e2_auth_tokens_free(&authz_tokens);
    authz_on = 0;
}

e2_rpc_status e2_authz_check(const char *authorization, const char *path, int need,
                             e2_rpc_principal *principal, char *msg, size_t msglen) {
    const e2_auth_token *t;
    memset(principal, 0, sizeof *principal);
    if (!authz_on) {
        snprintf(principal->role, sizeof principal->role, "admin");
        return E2_RPC_OK;
    }
    if (!authorization) {
        snprintf(msg, msglen,
                 "no bearer token: e2ctl reads it from --token-file, "
                 "E2_TOKEN_FILE or ~/.config/e2/token");
        return E2_RPC_UNAUTHENTICATED;
    }
    if (!(t = e2_auth_tokens_find(&authz_tokens, e2_auth_bearer(authorization)))) {
        snprintf(msg, msglen, "unknown bearer token");
        return E2_RPC_UNAUTHENTICATED;
    }
    if (!e2_auth_role_allows(t->role, need)) {
        snprintf(msg, msglen, "%s (role %s) may not call %s", t->name, e2_auth_role_name(t->role),
                 path);
        return E2_RPC_PERMISSION_DENIED;
    }
    snprintf(principal->name, sizeof principal->name, "%s", t->name);
    snprintf(principal->role, sizeof principal->role, "%s", e2_auth_role_name(t->role));
    return E2_RPC_OK;
}

int e2_authz_http(const char *authorization, const char *path, char *msg, size_t msglen,
                  void *data) {
    e2_rpc_principal p;
    e2d_server *srv = data;
    e2_rpc_status st = e2_authz_check(authorization, path,
                                      e2_rpc_server_method_role(srv->rpc, path), &p, msg, msglen);
    if (st == E2_RPC_OK) return 0;
    e2d_log("access: HTTP %s refused (%s)", path, e2_rpc_status_name(st));
    return st == E2_RPC_UNAUTHENTICATED ? 401 : 403;
}

/* The rpc auth hook: refusals are logged with the peer, never the token. */
static e2_rpc_status authz_hook(const e2_rpc_call *call, e2_rpc_principal *principal, char *msg,
                                size_t msglen, void *data) {
    e2_rpc_status st =
        e2_authz_check(e2_rpc_call_metadata(call, "authorization"), e2_rpc_call_method(call),
                       e2_rpc_call_role(call), principal, msg, msglen);
    (void)data;
    if (st != E2_RPC_OK)
        e2d_log("access: %s refused (%s) for %s: %s", e2_rpc_call_method(call),
                e2_rpc_status_name(st), e2_rpc_call_peer(call), msg);
    return st;
}

/* 0660, and group e2 when it exists: members of e2 may connect. */
static void authz_socket_access(const char *path) {
    struct group *g = getgrnam("e2");
    if (chmod(path, 0660) < 0) e2d_log("warning: chmod 0660 %s: %s", path, strerror(errno));
    if (g && chown(path, (uid_t)-1, g->gr_gid) < 0)
        e2d_log("warning: cannot give %s to group e2: %s (only this user "
                "can connect)",
                path, strerror(errno));
}

/* --local-workers with a token file: a fresh random worker token for this
 * run, in <state-dir>/local-worker.token (0600), named by E2_TOKEN_FILE in
 * e2d's environment, which the spawned workers inherit (local.c). */
static int authz_local_token(const e2d_config *c, char *err, size_t errlen) {
    unsigned char raw[32];
    char tok[2 * sizeof raw + 2], path[600];
    int fd, rc = 0;
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return e2_errf(err, errlen, "getrandom: %s", strerror(errno));
    for (size_t i = 0; i < sizeof raw; i++) snprintf(tok + 2 * i, 3, "%02x", raw[i]);
    snprintf(path, sizeof path, "%s/local-worker.token", c->state_dir);
    unlink(path);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return e2_errf(err, errlen, "create %s: %s", path, strerror(errno));
    tok[2 * sizeof raw] = '\n';
    if (write(fd, tok, 2 * sizeof raw + 1) != (ssize_t)(2 * sizeof raw + 1))
        rc = e2_errf(err, errlen, "write %s: %s", path, strerror(errno));
    close(fd);
    tok[2 * sizeof raw] = 0;
    if (rc == 0)
        rc = e2_auth_tokens_add(&authz_tokens, tok, "e2d-local-workers", E2_AUTH_ROLE_WORKER, err,
                                errlen);
    if (rc == 0 && setenv("E2_TOKEN_FILE", path, 1) < 0)
        rc = e2_errf(err, errlen, "setenv: %s", strerror(errno));
    memset(tok, 0, sizeof tok);
    memset(raw, 0, sizeof raw);
    return rc;
}

int e2_authz_listen(struct e2d_server *srv, int *port, char *err, size_t errlen) {
    const e2d_config *c = &srv->cfg;
    int is_unix = !strncmp(c->listen, "unix:", 5);
    e2_rpc_tls tls = { c->tls_cert, c->tls_key, c->tls_client_ca[0] ? c->tls_client_ca : NULL };
    if (!is_unix && !c->tls_cert[0] && !c->insecure)
        return e2_errf(err, errlen,
                       "--listen %s is TCP without TLS: give --tls-cert and "
                       "--tls-key, or --insecure for plaintext on a fenced "
                       "network",
                       c->listen);
    if (c->token_file[0]) {
        if (e2_auth_tokens_load(&authz_tokens, c->token_file, err, errlen) < 0) return E2_ERR;
        authz_on = 1;
        if (c->local_workers > 0 && authz_local_token(c, err, errlen) < 0) return E2_ERR;
        if (e2_rpc_server_set_auth(srv->rpc, authz_hook, srv) < 0)
            return e2_errf(err, errlen, "cannot install the auth hook");
        e2d_log("access: %zu token(s) from %s; every call needs one", authz_tokens.n,
                c->token_file);
    } else {
        e2d_log("access: no --token-file: every caller is admin");
    }
    if (!is_unix && !c->tls_cert[0])
        e2d_log("WARNING: --insecure: %s serves plaintext: requests, tokens "
                "and job data cross the network unencrypted",
                c->listen);
    if (e2_rpc_server_listen(srv->rpc, c->listen, c->tls_cert[0] ? &tls : NULL, port, err, errlen) <
        0)
        return E2_ERR;
    if (c->tls_cert[0])
        e2d_log("access: TLS on %s%s", c->listen,
                tls.ca_file ? ", client certificates required" : "");
    if (is_unix) authz_socket_access(c->listen + 5);
    return 0;
}

int e2_authz_set_owner(struct e2d_server *srv, e2_rpc_call *call, const char *job_id, char *err,
                       size_t errlen) {
    const e2_rpc_principal *p = e2_rpc_call_principal(call);
    if (!p) return 0;
    return e2_store_job_set_owner(srv->db, job_id, p->name, err, errlen);
}

int e2_authz_check_cancel(struct e2d_server *srv, e2_rpc_call *call, const char *job_id) {
    const e2_rpc_principal *p = e2_rpc_call_principal(call);
    char owner[E2_AUTH_NAME_MAX + 1], err[E2_ERRLEN], msg[E2_ERRLEN];
    if (!p || strcmp(p->role, e2_auth_role_name(E2_AUTH_ROLE_SUBMITTER))) return 0;
    if (e2_store_job_owner(srv->db, job_id, owner, sizeof owner, err, sizeof err) < 0) {
        e2_rpc_call_finish(call, E2_RPC_INTERNAL, err);
        return E2_ERR;
    }
    if (!strcmp(owner, p->name)) return 0;
    snprintf(msg, sizeof msg,
             "job %s was submitted by another principal; %s (role submitter) "
             "may cancel only its own jobs",
             job_id, p->name);
    e2d_log("access: CancelJob %s refused for %s", job_id, p->name);
    e2_rpc_call_finish(call, E2_RPC_PERMISSION_DENIED, msg);
    return E2_ERR;
}
