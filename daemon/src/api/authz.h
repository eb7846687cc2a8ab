/* authz.h -- e2d's access control (prefix authz_): the listener's TLS,
 * bearer tokens and roles (common/auth), and job owners.
 *
 * Policy:
 *   - A TCP --listen needs TLS (--tls-cert, --tls-key; --tls-client-ca
 *     adds mutual TLS) unless --insecure is given, which logs a warning.
 *   - The unix socket is mode 0660 and, when group e2 exists, owned by it:
 *     local users of group e2 may use e2ctl.
 *   - With --token-file, every call needs `authorization: Bearer <token>`,
 *     on the unix socket too (no token or an unknown one: UNAUTHENTICATED;
 *     a role that may not call the method: PERMISSION_DENIED). Without a
 *     token file, every caller is admin and jobs have no owner.
 *   - A job's owner is the name of the token that submitted it; a
 *     submitter may cancel only its own jobs.
 *   - With a token file and --local-workers, e2d makes a worker token for
 *     its own workers at each start (<state-dir>/local-worker.token, mode
 *     0600, name e2d-local-workers) and hands it to them through
 *     E2_TOKEN_FILE. Over TCP with TLS they also need E2_TLS_CA (and
 *     E2_TLS_CERT/E2_TLS_KEY for mutual TLS) in e2d's environment.
 * Tokens are never logged: log lines name the token's name and the peer.
 * State is process-wide (one e2d per process). */
#ifndef E2D_AUTHZ_H
#define E2D_AUTHZ_H

#include <stddef.h>

#include "rpc.h"

struct e2d_server;

/* Loads the token file, installs the auth hook and adds the --listen
 * listener (TLS or not, by the settings); fixes the unix socket's mode
 * and group. *port as for e2_rpc_server_listen. Before e2_rpc_server_start. */
int e2_authz_listen(struct e2d_server *srv, int *port, char *err, size_t errlen);
/* Forgets the tokens (wiped). */
void e2_authz_close(void);

/* 1 when a token file is loaded (calls need tokens). */
int e2_authz_enabled(void);
/* The decision for one call, also for other front ends (HTTP): the value
 * of its "authorization" header (NULL when absent), the gRPC method path it
 * maps to and the role that method needs (its row's role column:
 * e2_rpc_call_role, e2_rpc_server_method_role; -1 when no row, which only admin
 * passes). E2_RPC_OK with *principal filled, or UNAUTHENTICATED /
 * PERMISSION_DENIED with one line in msg. Without a token file: E2_RPC_OK as
 * an anonymous admin. */
e2_rpc_status e2_authz_check(const char *authorization, const char *path, int need,
                             e2_rpc_principal *principal, char *msg, size_t msglen);

/* e2_authz_check for the HTTP listener (an e2_http_auth_cb; data is the
 * e2d_server, whose RPC method tables give the role): 0 to allow, else
 * 401 or 403 with a line in msg. */
int e2_authz_http(const char *authorization, const char *path, char *msg, size_t msglen,
                  void *data);

/* Records the caller as the owner of job_id (nothing without a token
 * file). Part of the caller's open store transaction. */
int e2_authz_set_owner(struct e2d_server *srv, e2_rpc_call *call, const char *job_id, char *err,
                       size_t errlen);
/* CancelJob: 0 when the caller may cancel job_id; otherwise the call has
 * been finished (PERMISSION_DENIED: a submitter and another's job) and
 * < 0 is returned. */
int e2_authz_check_cancel(struct e2d_server *srv, e2_rpc_call *call, const char *job_id);

#endif
