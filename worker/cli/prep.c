/* prep.c -- `e2worker prep --out PREFIX [--val-fraction F] FILES...`: text
 * files -> llm.c token shards with the byte-level tokenizer of worker/data
 * (vocabulary 257: bytes and an end-of-text id before each file). */
#include <stdio.h>
#include <string.h>

#include "base.h"
#include "cli.h"
#include "prep.h"

#define PREP_SHARD_TOKENS ((size_t)100 * 1000 * 1000)

int cli_prep(int argc, char **argv, char *err, size_t errlen) {
    const char *out = NULL;
    double val = 0.0;
    char **files = argv;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--val-fraction") == 0) {
            if (cli_parse_double("--val-fraction", i + 1 < argc ? argv[i + 1] : NULL, &val, err,
                                 errlen) < 0)
                return 1;
            if (val < 0.0 || val >= 1.0) {
                e2_errf(err, errlen, "--val-fraction must be in [0, 1) (got %s)", argv[i + 1]);
                return 1;
            }
            i++;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            e2_errf(err, errlen,
                    "prep: unexpected option '%s' (usage: e2worker prep --out PREFIX "
                    "[--val-fraction F] FILES...)",
                    argv[i]);
            return 1;
        } else {
            files[n++] = argv[i];
        }
    }
    if (out == NULL || n == 0) {
        e2_errf(err, errlen, "prep: --out PREFIX and at least one text file are required");
        return 1;
    }
    e2w_prep_stats st;
    if (e2w_prep_text(files, n, out, PREP_SHARD_TOKENS, val, &st, err, errlen) < 0) return 1;
    printf("prep: %llu train tokens in %d shard(s), %llu val tokens in %d shard(s) (vocab %d)\n",
           (unsigned long long)st.train_tokens, st.train_shards, (unsigned long long)st.val_tokens,
           st.val_shards, E2W_BYTE_VOCAB);
    return 0;
}
