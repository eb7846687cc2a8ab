/* rng: the counter-based random numbers of the data path. Every draw is a
 * pure function of a key (a hash of its inputs: job seed, step, sample
 * index, epoch, ...) and a counter, never of state carried between calls:
 * a job draws the same data order and the same E² (g, t) on 1 rank or 16,
 * in any micro-batch split, and after a resume. The mixer is splitmix64's
 * finaliser, a bijection on 64-bit words with good avalanche. */
#ifndef E2W_RNG_H
#define E2W_RNG_H

#include <stdint.h>

/* Domains keep the streams of different uses independent. */
enum {
    E2W_RNG_ORDER = 1, /* sample order permutation: (seed, epoch) */
    E2W_RNG_AUG_G = 2, /* E² scale g: (seed, step, sample) */
    E2W_RNG_AUG_T = 3, /* E² offset t: (seed, step, sample) */
    E2W_RNG_GEN = 4,   /* generated text: (seed) */
    E2W_RNG_POSE = 5,  /* PoSE chunk cuts and skips: (seed, step, sample) */
};

static inline uint64_t e2w_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Key of one stream: domain and up to three inputs. */
static inline uint64_t e2w_rng_key(uint64_t domain, uint64_t a, uint64_t b, uint64_t c) {
    uint64_t h = e2w_mix64(domain);
    h = e2w_mix64(h ^ a);
    h = e2w_mix64(h ^ b);
    return e2w_mix64(h ^ c);
}

/* The ctr-th 64-bit word of a stream. */
static inline uint64_t e2w_rng_u64(uint64_t key, uint64_t ctr) {
    return e2w_mix64(key ^ e2w_mix64(ctr));
}

/* Uniform in [0, 1) with 53 random bits. */
static inline double e2w_rng_unit(uint64_t key, uint64_t ctr) {
    return (double)(e2w_rng_u64(key, ctr) >> 11) * 0x1.0p-53;
}

/* Uniform in {0, ..., n-1} (n >= 1), without modulo bias: words below
 * 2^64 mod n are rejected and the next counter value is used, so *ctr
 * advances by one or (rarely) more. */
static inline uint64_t e2w_rng_below(uint64_t key, uint64_t *ctr, uint64_t n) {
    uint64_t reject_below = (0 - n) % n;
    for (;;) {
        uint64_t x = e2w_rng_u64(key, (*ctr)++);
        if (x >= reject_below) return x % n;
    }
}

#endif
