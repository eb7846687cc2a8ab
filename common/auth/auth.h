/* auth.h -- bearer tokens and roles (library e2_auth, prefix auth_).
 *
 * e2d reads a token file: one `<token> <name> <role>` per line, '#' starts
 * a comment line, blank lines are skipped. The file must not be readable
 * or writable by others (chmod 600/640), like an ssh key. Roles (which
 * method needs which is the role column of e2d's method tables):
 *   viewer     reads (jobs, logs, workers, metrics)
 *   submitter  a viewer that may also submit and cancel jobs (e2d lets it
 *              cancel only jobs it submitted itself)
 *   worker     the worker methods (e2.v1.WorkerControl) only
 *   admin      every method
 * Clients (e2ctl, e2worker) read their own token from a file holding the
 * token as the first word of its first non-comment line, so both a bare
 * token and a line copied from e2d's token file work.
 *
 * Tokens never appear in error messages; lookups compare in constant time
 * per stored token. Nothing here prints; errors follow base.h (one line in
 * err, file:line for the token file). */
#ifndef E2_COMMON_AUTH_H
#define E2_COMMON_AUTH_H

#include <stddef.h>

typedef enum {
    E2_AUTH_ROLE_NONE = 0,
    E2_AUTH_ROLE_VIEWER,
    E2_AUTH_ROLE_SUBMITTER,
    E2_AUTH_ROLE_WORKER,
    E2_AUTH_ROLE_ADMIN
} e2_auth_role;

#define E2_AUTH_NAME_MAX  63  /* longest token name */
#define E2_AUTH_TOKEN_MIN 16  /* shortest token accepted (guessing is cheap) */
#define E2_AUTH_TOKEN_MAX 256 /* longest token accepted */

typedef struct {
    char *token; /* the secret; wiped when freed */
    size_t len;
    char name[E2_AUTH_NAME_MAX + 1]; /* [A-Za-z0-9._@-]+, the principal */
    e2_auth_role role;
} e2_auth_token;

typedef struct {
    e2_auth_token *v;
    size_t n;
} e2_auth_tokens;

/* Reads a token file into *t (zeroed first). Refuses a file others may
 * read or write, short or duplicate tokens, bad names and unknown roles,
 * naming file:line and the fix. */
int e2_auth_tokens_load(e2_auth_tokens *t, const char *path, char *err, size_t errlen);
/* Adds one token (copied) as a file line would, e.g. one e2d makes for
 * its own local workers. The same checks as for a line of the file. */
int e2_auth_tokens_add(e2_auth_tokens *t, const char *token, const char *name, e2_auth_role role,
                       char *err, size_t errlen);
/* Wipes the secrets and frees them. */
void e2_auth_tokens_free(e2_auth_tokens *t);
/* The entry whose token equals `token`, or NULL. Compares against every
 * entry in constant time each, so the time taken says nothing about which
 * entry (or how many characters of one) matched. */
const e2_auth_token *e2_auth_tokens_find(const e2_auth_tokens *t, const char *token);

/* 1 when a (an bytes) equals b (bn bytes); time depends on bn only. */
int e2_auth_equal(const char *a, size_t an, const char *b, size_t bn);

/* "admin", "submitter", "viewer", "worker" ("none" for E2_AUTH_ROLE_NONE). */
const char *e2_auth_role_name(e2_auth_role role);
/* E2_AUTH_ROLE_NONE for anything but the four role names. */
e2_auth_role e2_auth_role_parse(const char *name);
/* 1 when a caller of role `have` may call a method that needs role `need`
 * (the role column of the method's row in e2d's tables, api.c and wapi.c):
 * admin may call everything, a submitter what a viewer may, any other
 * role only methods that need exactly it. A need that is no role (a
 * method without a row: -1, or E2_AUTH_ROLE_NONE) lets only admin through. */
int e2_auth_role_allows(e2_auth_role have, int need);

/* The token of an "authorization" metadata value "Bearer <token>" (scheme
 * case-insensitive), or NULL when the value has another form. */
const char *e2_auth_bearer(const char *authorization);

/* Client side: the token in the file at `path` into tok (tok_len bytes).
 * Refuses a file others may read, an empty file and an oversized token. */
int e2_auth_token_read(const char *path, char *tok, size_t tok_len, char *err, size_t errlen);

#endif
