/* fuzz_token_file.c -- bearer tokens (common/auth): the input is a token
 * file (mode 0600) read by e2d (auth_tokens_load) and by a client
 * (auth_token_read); its first line is also used as an Authorization
 * header value: auth_bearer, then a lookup and the role check for a few
 * methods. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"

/* Needs as a method row's role column holds them (-1: no row). */
static const int needs[] = {
    -1, AUTH_ROLE_NONE, AUTH_ROLE_VIEWER, AUTH_ROLE_SUBMITTER, AUTH_ROLE_WORKER, AUTH_ROLE_ADMIN, 99
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    char err[512], tok[AUTH_TOKEN_MAX + 2];
    auth_tokens t;
    if (!path[0]) snprintf(path, sizeof path, "%s", fuzz_file("tokens"));
    fuzz_write(path, data, size, 0600);
    int loaded = auth_tokens_load(&t, path, err, sizeof err) == 0;
    (void)auth_token_read(path, tok, sizeof tok, err, sizeof err);

    char *text = fuzz_strdup(data, size);
    text[strcspn(text, "\n")] = 0;
    const char *bearer = auth_bearer(text);
    if (bearer && loaded) {
        const auth_token *e = auth_tokens_find(&t, bearer);
        for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
            (void)auth_role_allows(e ? e->role : AUTH_ROLE_NONE, needs[i]);
    }
    (void)auth_role_parse(text);
    if (loaded) {
        for (size_t i = 0; i < t.n; i++)
            if (auth_tokens_find(&t, t.v[i].token) == NULL) {
                fprintf(stderr, "fuzz_token_file: loaded token %s not found\n", t.v[i].name);
                abort();
            }
        auth_tokens_free(&t);
    }
    free(text);
    return 0;
}
