/* fuzz_token_file.c -- bearer tokens (common/auth): the input is a token
 * file (mode 0600) read by e2d (e2_auth_tokens_load) and by a client
 * (e2_auth_token_read); its first line is also used as an Authorization
 * header value: e2_auth_bearer, then a lookup and the role check for a few
 * methods. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

/* Needs as a method row's role column holds them (-1: no row). */
static const int needs[] = { -1,
                             E2_AUTH_ROLE_NONE,
                             E2_AUTH_ROLE_VIEWER,
                             E2_AUTH_ROLE_SUBMITTER,
                             E2_AUTH_ROLE_WORKER,
                             E2_AUTH_ROLE_ADMIN,
                             99 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    char err[512], tok[E2_AUTH_TOKEN_MAX + 2];
    e2_auth_tokens t;
    if (!path[0]) snprintf(path, sizeof path, "%s", fuzz_file("tokens"));
    fuzz_write(path, data, size, 0600);
    int loaded = e2_auth_tokens_load(&t, path, err, sizeof err) == 0;
    (void)e2_auth_token_read(path, tok, sizeof tok, err, sizeof err);

    char *text = fuzz_strdup(data, size);
    text[strcspn(text, "\n")] = 0;
    const char *bearer = e2_auth_bearer(text);
    if (bearer && loaded) {
        const e2_auth_token *e = e2_auth_tokens_find(&t, bearer);
        for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
            (void)e2_auth_role_allows(e ? e->role : E2_AUTH_ROLE_NONE, needs[i]);
    }
    (void)e2_auth_role_parse(text);
    if (loaded) {
        for (size_t i = 0; i < t.n; i++)
            if (e2_auth_tokens_find(&t, t.v[i].token) == NULL) {
                fprintf(stderr, "fuzz_token_file: loaded token %s not found\n", t.v[i].name);
                abort();
            }
        e2_auth_tokens_free(&t);
    }
    free(text);
    return 0;
}
