/* fuzz_shard.c -- the token shard header (worker/data, llm.c's format).
 * The input is a shard file; one that opens must hold n_tokens tokens of
 * its width inside the mapping: the first and the last are read. */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>

#include "shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[512];
    char err[512];
    e2w_shard s;
    if (!path[0]) snprintf(path, sizeof path, "%s", fuzz_file("x.bin"));
    fuzz_write(path, data, size, 0600);
    if (e2w_shard_open(&s, path, err, sizeof err) < 0) return 0;
    if ((s.width != 2 && s.width != 4) || (const uint8_t *)s.data + s.n_tokens * (uint64_t)s.width >
                                              (const uint8_t *)s.map + s.map_len) {
        fprintf(stderr,
                "fuzz_shard: accepted shard with width %d and %llu "
                "tokens in a %zu-byte file\n",
                s.width, (unsigned long long)s.n_tokens, s.map_len);
        abort();
    }
    if (s.n_tokens > 0) {
        volatile uint32_t t = e2w_shard_token(&s, 0);
        t = e2w_shard_token(&s, s.n_tokens - 1);
        (void)t;
    }
    e2w_shard_close(&s);
    return 0;
}
