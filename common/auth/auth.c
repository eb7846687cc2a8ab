/* auth.c -- token file parsing, constant-time token lookup and which role
 * satisfies which (see auth.h; the role each method needs is a column of
 * e2d's method tables). */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base.h"

#define AUTH_LINE_MAX 1024

static const char *const auth_role_names[] = { "none", "viewer", "submitter", "worker", "admin" };

const char *e2_auth_role_name(e2_auth_role role) {
    if ((unsigned)role > E2_AUTH_ROLE_ADMIN) return "none";
    return auth_role_names[role];
}

e2_auth_role e2_auth_role_parse(const char *name) {
    for (int r = E2_AUTH_ROLE_VIEWER; r <= E2_AUTH_ROLE_ADMIN; r++)
        if (!strcmp(name, auth_role_names[r])) return (e2_auth_role)r;
    return E2_AUTH_ROLE_NONE;
}

int e2_auth_role_allows(e2_auth_role have, int need) {
    if (have == E2_AUTH_ROLE_ADMIN) return 1;
    if (have == E2_AUTH_ROLE_NONE || need <= (int)E2_AUTH_ROLE_NONE ||
        need > (int)E2_AUTH_ROLE_ADMIN)
        return 0;
    if (have == (e2_auth_role)need) return 1;
    return need == E2_AUTH_ROLE_VIEWER && have == E2_AUTH_ROLE_SUBMITTER;
}

int e2_auth_equal(const char *a, size_t an, const char *b, size_t bn) {
    unsigned diff = (unsigned)(an != bn);
    for (size_t i = 0; i < bn; i++) {
        unsigned char x = i < an ? (unsigned char)a[i] : 0;
        diff |= (unsigned)(x ^ (unsigned char)b[i]);
    }
    return diff == 0;
}

const e2_auth_token *e2_auth_tokens_find(const e2_auth_tokens *t, const char *token) {
    const e2_auth_token *hit = NULL;
    size_t n;
    if (!token) return NULL;
    n = strnlen(token, E2_AUTH_TOKEN_MAX + 1);
    for (size_t i = 0; i < t->n; i++)
        if (e2_auth_equal(token, n, t->v[i].token, t->v[i].len)) hit = &t->v[i];
    return hit;
}

const char *e2_auth_bearer(const char *authorization) {
    if (!authorization || strncasecmp(authorization, "Bearer ", 7)) return NULL;
    authorization += 7;
    while (*authorization == ' ') authorization++;
    return *authorization ? authorization : NULL;
}

static void auth_wipe(char *p, size_t n) {
    volatile char *v = p;
    while (n--) *v++ = 0;
}

void e2_auth_tokens_free(e2_auth_tokens *t) {
    for (size_t i = 0; i < t->n; i++) {
        auth_wipe(t->v[i].token, t->v[i].len);
        free(t->v[i].token);
    }
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

/* Opens a secret file, refusing one that others may read or write. */
static FILE *auth_open_secret(const char *path, const char *what, char *err, size_t errlen) {
    struct stat st;
    FILE *f = fopen(path, "r");
    if (!f) {
        e2_errf(err, errlen, "cannot read %s %s: %s", what, path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        e2_errf(err, errlen, "%s %s is not a regular file", what, path);
        return NULL;
    }
    if (st.st_mode & (S_IROTH | S_IWOTH)) {
        fclose(f);
        e2_errf(err, errlen,
                "%s %s is accessible by other users (mode %03o): it holds "
                "secrets, run chmod 600 %s",
                what, path, (unsigned)(st.st_mode & 0777), path);
        return NULL;
    }
    return f;
}

static int auth_name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > E2_AUTH_NAME_MAX) return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._@-", *s)) return 0;
    return 1;
}

/* Parses one non-comment line "<token> <name> <role>" into e. */
static int auth_parse_line(char *line, e2_auth_token *e, const char *path, int lineno, char *err,
                           size_t errlen) {
    char *save = NULL, *tok, *name, *role, *extra;
    tok = strtok_r(line, " \t", &save);
    name = strtok_r(NULL, " \t", &save);
    role = strtok_r(NULL, " \t", &save);
    extra = strtok_r(NULL, " \t", &save);
    if (!role || extra)
        return e2_errf(err, errlen, "%s:%d: expected `<token> <name> <role>` (3 fields)", path,
                       lineno);
    if (strlen(tok) < E2_AUTH_TOKEN_MIN || strlen(tok) > E2_AUTH_TOKEN_MAX)
        return e2_errf(err, errlen,
                       "%s:%d: token of %s must be %d to %d characters "
                       "(e.g. `openssl rand -hex 32`)",
                       path, lineno, name, E2_AUTH_TOKEN_MIN, E2_AUTH_TOKEN_MAX);
    if (!auth_name_ok(name))
        return e2_errf(err, errlen, "%s:%d: name '%.64s' must be 1 to %d of [A-Za-z0-9._@-]", path,
                       lineno, name, E2_AUTH_NAME_MAX);
    if ((e->role = e2_auth_role_parse(role)) == E2_AUTH_ROLE_NONE)
        return e2_errf(err, errlen,
                       "%s:%d: role '%.32s' must be admin, submitter, viewer "
                       "or worker",
                       path, lineno, role);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->len = strlen(tok);
    if (!(e->token = malloc(e->len + 1))) return e2_errf(err, errlen, "out of memory");
    memcpy(e->token, tok, e->len + 1);
    return 0;
}

/* Appends e (taking its token) unless the token is already there. */
static int auth_tokens_push(e2_auth_tokens *t, e2_auth_token *e, size_t *cap, char *err,
                            size_t errlen) {
    if (e2_auth_tokens_find(t, e->token)) {
        auth_wipe(e->token, e->len);
        free(e->token);
        return e2_errf(err, errlen,
                       "token of %s is used by an earlier line too; give "
                       "every principal its own token",
                       e->name);
    }
    if (t->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 8;
        e2_auth_token *grown = realloc(t->v, ncap * sizeof *grown);
        if (!grown) {
            auth_wipe(e->token, e->len);
            free(e->token);
            return e2_errf(err, errlen, "out of memory");
        }
        t->v = grown;
        *cap = ncap;
    }
    t->v[t->n++] = *e;
    return 0;
}

int e2_auth_tokens_add(e2_auth_tokens *t, const char *token, const char *name, e2_auth_role role,
                       char *err, size_t errlen) {
    e2_auth_token e;
    size_t cap = t->n;
    memset(&e, 0, sizeof e);
    if (strlen(token) < E2_AUTH_TOKEN_MIN || strlen(token) > E2_AUTH_TOKEN_MAX ||
        strcspn(token, " \t\r\n") != strlen(token))
        return e2_errf(err, errlen,
                       "token of %s must be %d to %d characters without "
                       "blanks",
                       name, E2_AUTH_TOKEN_MIN, E2_AUTH_TOKEN_MAX);
    if (!auth_name_ok(name) || role == E2_AUTH_ROLE_NONE)
        return e2_errf(err, errlen, "bad token name '%.64s' or role", name);
    snprintf(e.name, sizeof e.name, "%s", name);
    e.role = role;
    e.len = strlen(token);
    if (!(e.token = malloc(e.len + 1))) return e2_errf(err, errlen, "out of memory");
    memcpy(e.token, token, e.len + 1);
    return auth_tokens_push(t, &e, &cap, err, errlen);
}

int e2_auth_tokens_load(e2_auth_tokens *t, const char *path, char *err, size_t errlen) {
    char line[AUTH_LINE_MAX + 2], msg[256];
    int lineno = 0, rc = 0;
    size_t cap = 0;
    FILE *f;
    memset(t, 0, sizeof *t);
    if (!(f = auth_open_secret(path, "token file", err, errlen))) return E2_ERR;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        char *p = line, *end;
        e2_auth_token e;
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = e2_errf(err, errlen, "%s:%d: line longer than %d characters", path, lineno,
                         AUTH_LINE_MAX);
            break;
        }
        line[strcspn(line, "\r\n")] = 0;
        while (isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') continue;
        for (end = p + strlen(p); end > p && isspace((unsigned char)end[-1]);) *--end = 0;
        memset(&e, 0, sizeof e);
        if ((rc = auth_parse_line(p, &e, path, lineno, err, errlen)) < 0) break;
        if ((rc = auth_tokens_push(t, &e, &cap, msg, sizeof msg)) < 0) {
            e2_errf(err, errlen, "%s:%d: %s", path, lineno, msg);
            break;
        }
    }
    auth_wipe(line, sizeof line);
    if (rc == 0 && ferror(f)) rc = e2_errf(err, errlen, "read %s: %s", path, strerror(errno));
    fclose(f);
    if (rc == 0 && t->n == 0)
        rc = e2_errf(err, errlen,
                     "token file %s has no tokens: add `<token> <name> <role>` "
                     "lines",
                     path);
    if (rc < 0) e2_auth_tokens_free(t);
    return rc;
}

int e2_auth_token_read(const char *path, char *tok, size_t tok_len, char *err, size_t errlen) {
    char line[AUTH_LINE_MAX + 2];
    int rc = E2_ERR, too_long = 0;
    FILE *f = auth_open_secret(path, "token file", err, errlen);
    if (!f) return E2_ERR;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        size_t n;
        while (isspace((unsigned char)*p)) p++;
        if (!*p || *p == '#') continue;
        n = strcspn(p, " \t\r\n");
        if (n >= tok_len || n > E2_AUTH_TOKEN_MAX) {
            too_long = 1;
            break;
        }
        memcpy(tok, p, n);
        tok[n] = 0;
        rc = 0;
        break;
    }
    auth_wipe(line, sizeof line);
    fclose(f);
    if (too_long)
        e2_errf(err, errlen, "token in %s is longer than %d characters", path, E2_AUTH_TOKEN_MAX);
    else if (rc < 0)
        e2_errf(err, errlen, "token file %s holds no token", path);
    return rc;
}
