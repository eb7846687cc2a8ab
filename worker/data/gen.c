/* gen: a deterministic generator of English-like text, so tests and the
 * example job have a corpus without shipping one. Stories of templated
 * sentences over a small vocabulary give a byte-level model local
 * structure to learn (spelling, grammar); each story opens with a name and
 * a four-digit number and closes by repeating them, a long-range copy that
 * only a model seeing the whole story can predict. Text is produced
 * sequentially from one counter-based stream, so a longer request extends
 * a shorter one. */
#include "base.h"
#include "prep.h"
#include "rng.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static const char *const gen_adj[] = {
    "quiet",  "bright", "old",     "young",  "careful", "small",   "large",
    "green",  "silver", "patient", "clever", "distant", "warm",    "cold",
    "gentle", "busy",   "hidden",  "narrow", "wide",    "curious",
};
static const char *const gen_noun[] = {
    "river",  "garden",   "baker",   "sailor", "teacher", "village", "lantern",
    "window", "mountain", "letter",  "market", "bridge",  "forest",  "painter",
    "clock",  "harbor",   "library", "farmer", "road",    "island",
};
static const char *const gen_verb[] = {
    "visited",   "painted",  "crossed", "found",      "watched",  "carried", "repaired",
    "described", "followed", "opened",  "remembered", "measured", "counted", "cleaned",
    "studied",   "greeted",  "built",   "closed",     "planted",  "heard",
};
static const char *const gen_prep[] = { "near",   "behind", "beside", "under",
                                        "across", "beyond", "inside", "above" };
static const char *const gen_adv[] = { "slowly", "quickly", "often",   "never",
                                       "once",   "gladly",  "quietly", "early" };
static const char *const gen_name[] = {
    "Ada",  "Basil", "Clara", "Dmitri", "Elena", "Farid", "Greta", "Hugo",   "Ines", "Jonas",
    "Kira", "Leo",   "Maya",  "Nils",   "Olga",  "Pavel", "Rosa",  "Stefan", "Tara", "Viktor",
};

#define GEN_PICK(list) list[e2w_rng_below(key, ctr, sizeof list / sizeof list[0])]

typedef struct {
    char *buf;
    size_t cap, len;
} gen_out;

static void gen_put(gen_out *o, const char *s) {
    while (*s && o->len + 1 < o->cap) o->buf[o->len++] = *s++;
}

/* Words are picked one statement at a time: the order of evaluation of
 * function arguments is unspecified in C, and the text must not depend on
 * the compiler. */
static void gen_sentence(gen_out *o, uint64_t key, uint64_t *ctr, const char *name) {
    char s[256];
    uint64_t form = e2w_rng_below(key, ctr, 4);
    const char *w[6];
    switch (form) {
    case 0:
        w[0] = GEN_PICK(gen_verb);
        w[1] = GEN_PICK(gen_adj);
        w[2] = GEN_PICK(gen_noun);
        w[3] = GEN_PICK(gen_prep);
        w[4] = GEN_PICK(gen_noun);
        snprintf(s, sizeof s, "%s %s the %s %s %s the %s.", name, w[0], w[1], w[2], w[3], w[4]);
        break;
    case 1:
        w[0] = GEN_PICK(gen_adj);
        w[1] = GEN_PICK(gen_noun);
        w[2] = GEN_PICK(gen_adv);
        w[3] = GEN_PICK(gen_verb);
        w[4] = GEN_PICK(gen_adj);
        w[5] = GEN_PICK(gen_noun);
        snprintf(s, sizeof s, "The %s %s %s %s the %s %s.", w[0], w[1], w[2], w[3], w[4], w[5]);
        break;
    case 2:
        w[0] = GEN_PICK(gen_noun);
        w[1] = GEN_PICK(gen_verb);
        w[2] = GEN_PICK(gen_noun);
        snprintf(s, sizeof s, "Later, near the %s, %s %s the %s.", w[0], name, w[1], w[2]);
        break;
    default:
        w[0] = GEN_PICK(gen_adj);
        w[1] = GEN_PICK(gen_noun);
        w[2] = GEN_PICK(gen_adj);
        snprintf(s, sizeof s, "It was a %s day, and the %s was %s.", w[0], w[1], w[2]);
        break;
    }
    gen_put(o, s);
}

void e2w_gen_text(uint64_t seed, char *buf, size_t cap) {
    if (cap == 0) return;
    gen_out o = { buf, cap, 0 };
    uint64_t key = e2w_rng_key(E2W_RNG_GEN, seed, 0, 0);
    uint64_t c = 0, *ctr = &c;
    char s[256];
    for (uint64_t story = 1; o.len + 1 < cap; story++) {
        const char *name = GEN_PICK(gen_name);
        unsigned number = 1000 + (unsigned)e2w_rng_below(key, ctr, 9000);
        const char *adj = GEN_PICK(gen_adj);
        const char *noun = GEN_PICK(gen_noun);
        snprintf(s, sizeof s,
                 "Story %llu. Once there was a %s %s named %s, who kept the number %u.\n",
                 (unsigned long long)story, adj, noun, name, number);
        gen_put(&o, s);
        for (uint64_t p = 0, np = 2 + e2w_rng_below(key, ctr, 4); p < np; p++) {
            for (uint64_t k = 0, ns = 3 + e2w_rng_below(key, ctr, 4); k < ns; k++) {
                if (k) gen_put(&o, " ");
                gen_sentence(&o, key, ctr, name);
            }
            gen_put(&o, "\n");
        }
        snprintf(s, sizeof s, "In the end, %s still remembered the number %u.\n\n", name, number);
        gen_put(&o, s);
    }
    buf[o.len] = '\0';
}

int e2w_gen_text_file(const char *path, uint64_t seed, size_t n_bytes, char *err, size_t errlen) {
    char *buf = malloc(n_bytes + 1);
    if (!buf) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory for %zu bytes of text", path, n_bytes);
        return E2_ERR;
    }
    e2w_gen_text(seed, buf, n_bytes + 1);
    FILE *f = fopen(path, "wb");
    int rc = 0;
    if (!f || fwrite(buf, 1, n_bytes, f) != n_bytes) rc = E2_ERR;
    if (f && fclose(f) != 0) rc = E2_ERR;
    if (rc && err && errlen)
        snprintf(err, errlen, "%s: cannot write generated text: %s", path, strerror(errno));
    free(buf);
    return rc;
}
