/* shard_cat: prints a shard as e2 reads it ("<width> <count>" then one
 * token per line), so tests in other languages (tools/prep_hf.py) can check
 * their shards against the C reader. */
#include "shard.h"

#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: shard_cat <shard.bin>\n");
        return 2;
    }
    char err[512];
    e2w_shard s;
    if (e2w_shard_open(&s, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "shard_cat: %s\n", err);
        return 1;
    }
    printf("%d %" PRIu64 "\n", s.width, s.n_tokens);
    for (uint64_t i = 0; i < s.n_tokens; i++) printf("%" PRIu32 "\n", e2w_shard_token(&s, i));
    e2w_shard_close(&s);
    return 0;
}
