/* Tests of worker/data: token shards, the dataset view and sample order,
 * the E² sampler, text preparation and generated text. */
#include "aug.h"
#include "base.h"
#include "check.h"
#include "dataset.h"
#include "prep.h"
#include "rng.h"
#include "shard.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char err[1024];
static char dir[64];

static int make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/e2-data-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static void remove_dir(void) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static int count_files(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

static char *in_dir(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* Writes raw bytes: header ints then `n` filler bytes. */
static int write_raw(const char *path, const int32_t *h, int nh, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t header[E2W_SHARD_HEADER_INTS] = { 0 };
    for (int i = 0; i < nh && i < E2W_SHARD_HEADER_INTS; i++) header[i] = h[i];
    if (nh >= 0) fwrite(header, 4, E2W_SHARD_HEADER_INTS, f);
    for (size_t i = 0; i < n; i++) fputc((int)(i & 0x7f), f);
    return fclose(f);
}

/* --- shards --------------------------------------------------------------- */

static int shard_round_trip(int width, uint32_t max_token) {
    CHECK(make_dir() == 0);
    enum { N = 5000 };
    static uint32_t tok[N];
    for (uint32_t i = 0; i < N; i++)
        tok[i] = (uint32_t)(((uint64_t)i * 2654435761u) % ((uint64_t)max_token + 1));
    tok[0] = max_token;
    tok[1] = 0;
    const char *p = in_dir("s.bin");
    CHECK(e2w_shard_write(p, tok, N, width, err, sizeof err) == 0);
    struct stat st;
    CHECK(stat(p, &st) == 0 && st.st_size == E2W_SHARD_HEADER_BYTES + N * width);
    CHECK((st.st_mode & 0777) == 0644);
    e2w_shard s;
    CHECK(e2w_shard_open(&s, p, err, sizeof err) == 0);
    CHECK(s.width == width && s.n_tokens == N);
    for (uint32_t i = 0; i < N; i++) CHECK(e2w_shard_token(&s, i) == tok[i]);
    e2w_shard_close(&s);
    /* Header bytes as llm.c writes them. */
    FILE *f = fopen(p, "rb");
    int32_t h[3];
    CHECK(f && fread(h, 4, 3, f) == 3);
    fclose(f);
    CHECK(h[0] == (width == 2 ? 20240520 : 20240801) && h[1] == (width == 2 ? 1 : 7) && h[2] == N);
    CHECK(count_files() == 1);
    remove_dir();
    return 0;
}

static int case_shard_u16(void) {
    return shard_round_trip(2, 65535);
}
static int case_shard_u32(void) {
    return shard_round_trip(4, 4294967295u);
}

static int case_shard_empty(void) {
    CHECK(make_dir() == 0);
    CHECK(e2w_shard_write(in_dir("e.bin"), NULL, 0, 2, err, sizeof err) == 0);
    e2w_shard s;
    CHECK(e2w_shard_open(&s, in_dir("e.bin"), err, sizeof err) == 0);
    CHECK(s.n_tokens == 0);
    e2w_shard_close(&s);
    remove_dir();
    return 0;
}

/* A failed write leaves neither the shard nor a temp file; an existing
 * shard is replaced whole. */
static int case_shard_atomic(void) {
    CHECK(make_dir() == 0);
    uint32_t a[3] = { 1, 2, 3 }, b[4] = { 9, 70000, 8, 7 };
    const char *p = in_dir("x.bin");
    CHECK(e2w_shard_write(p, b, 4, 2, err, sizeof err) != 0);
    CHECK_MSG(err, "token 70000 at 1 does not fit uint16");
    CHECK(count_files() == 0);
    CHECK(e2w_shard_write(p, a, 3, 2, err, sizeof err) == 0);
    CHECK(e2w_shard_write(p, b, 4, 4, err, sizeof err) == 0);
    CHECK(count_files() == 1);
    e2w_shard s;
    CHECK(e2w_shard_open(&s, p, err, sizeof err) == 0);
    CHECK(s.n_tokens == 4 && s.width == 4 && e2w_shard_token(&s, 1) == 70000);
    e2w_shard_close(&s);
    CHECK(e2w_shard_write(p, a, 3, 3, err, sizeof err) != 0);
    CHECK_MSG(err, "token width must be 2 (uint16) or 4 (uint32), got 3");
    remove_dir();
    return 0;
}

static int case_shard_corrupt(void) {
    CHECK(make_dir() == 0);
    static const struct {
        const char *name;
        int32_t h[3];
        int nh;
        size_t body;
        const char *want;
    } t[] = {
        { "short.bin",
          { 0 },
          -1,
          100,
          "truncated header (a shard starts with a 1024-byte header)" },
        { "empty.bin", { 0 }, -1, 0, "truncated header" },
        { "magic.bin",
          { 12345, 1, 0 },
          3,
          0,
          "bad magic (expected 20240520 for uint16 or 20240801 for uint32 tokens)" },
        { "v16.bin", { 20240520, 7, 0 }, 3, 0, "bad header: uint16 token shards need version 1" },
        { "v32.bin", { 20240801, 1, 0 }, 3, 0, "bad header: uint32 token shards need version 7" },
        { "neg.bin", { 20240520, 1, -5 }, 3, 0, "bad header: negative token count" },
        { "long.bin",
          { 20240520, 1, 10 },
          3,
          21,
          "size mismatch: the file's size is not the 1024-byte header plus the header's token "
          "count times 2 bytes" },
        { "cut.bin",
          { 20240801, 7, 10 },
          3,
          39,
          "size mismatch: the file's size is not the 1024-byte header plus the header's token "
          "count times 4 bytes" },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        const char *p = in_dir(t[i].name);
        CHECK(write_raw(p, t[i].h, t[i].nh, t[i].body) == 0);
        e2w_shard s;
        err[0] = '\0';
        CHECK(e2w_shard_open(&s, p, err, sizeof err) == E2_EDATA);
        CHECK_MSG(err, p);
        CHECK_MSG(err, t[i].want);
        CHECK(strchr(err, '\n') == NULL);
        CHECK(s.map == NULL && s.path == NULL);
    }
    e2w_shard s;
    CHECK(e2w_shard_open(&s, in_dir("missing.bin"), err, sizeof err) == E2_NOTFOUND);
    CHECK_MSG(err, "missing.bin: cannot open token shard");
    CHECK(e2w_shard_open(&s, dir, err, sizeof err) != 0);
    remove_dir();
    return 0;
}

/* --- dataset -------------------------------------------------------------- */

/* Three shards holding the stream 0, 1, ..., N-1 (mixed widths). */
static int write_counting(const uint32_t *sizes, int n, uint32_t *total) {
    uint32_t next = 0;
    for (int s = 0; s < n; s++) {
        uint32_t *tok = malloc((sizes[s] + 1) * sizeof *tok);
        for (uint32_t i = 0; i < sizes[s]; i++) tok[i] = next++;
        char name[32];
        snprintf(name, sizeof name, "c_%02d.bin", s);
        int rc = e2w_shard_write(in_dir(name), tok, sizes[s], s % 2 ? 4 : 2, err, sizeof err);
        free(tok);
        if (rc) return rc;
    }
    *total = next;
    return 0;
}

/* The dataset of the files one pattern names (common/shards expands it,
 * as the trainer does): the expansion's error, else the open's. */
static int open_pattern(e2w_dataset **ds, char *pat, uint32_t R) {
    e2_shard_list files = { 0 };
    char *const pats[1] = { pat };
    int rc = e2_shards_expand(pats, 1, "shards", &files, err, sizeof err);
    if (rc == 0) rc = e2w_dataset_open(ds, &files, R, err, sizeof err);
    e2_shards_free(&files);
    return rc;
}

static int case_dataset_windows(void) {
    CHECK(make_dir() == 0);
    const uint32_t sizes[] = { 50, 3, 48 };
    uint32_t total;
    CHECK(write_counting(sizes, 3, &total) == 0);
    char *pat[] = { in_dir("c_*.bin") };
    e2w_dataset *ds;
    const uint32_t R = 7;
    CHECK(open_pattern(&ds, pat[0], R) == 0);
    CHECK(e2w_dataset_shards(ds) == 3 && e2w_dataset_tokens(ds) == total);
    CHECK(e2w_dataset_samples(ds) == (total - 1) / R);
    int32_t out[8];
    for (uint64_t s = 0; s < e2w_dataset_samples(ds); s++) {
        CHECK(e2w_dataset_read_sample(ds, s, out) == 0);
        for (uint32_t i = 0; i <= R; i++) CHECK(out[i] == (int32_t)(s * R + i));
    }
    CHECK(e2w_dataset_read_sample(ds, e2w_dataset_samples(ds), out) == E2_ERR);
    CHECK(e2w_dataset_read_tokens(ds, total - 2, 3, out) == E2_ERR);
    CHECK(e2w_dataset_read_tokens(ds, total - 2, 2, out) == 0 && out[1] == (int32_t)total - 1);
    CHECK(e2w_dataset_check_vocab(ds, total, err, sizeof err) == 0);
    CHECK(e2w_dataset_check_vocab(ds, 60, err, sizeof err) == E2_EDATA);
    CHECK_MSG(
        err, "c_02.bin: the token at position 7 is outside the model's vocabulary (vocab_size 60)");
    e2w_dataset_close(ds);
    remove_dir();
    return 0;
}

static int case_dataset_errors(void) {
    CHECK(make_dir() == 0);
    const uint32_t sizes[] = { 5 };
    uint32_t total;
    CHECK(write_counting(sizes, 1, &total) == 0);
    e2w_dataset *ds;
    char *none[] = { in_dir("nothing_*.bin") };
    CHECK(open_pattern(&ds, none[0], 4) == E2_NOTFOUND);
    CHECK_MSG(err, "shards[0]: no file matches");
    CHECK_MSG(err, "nothing_*.bin");
    char *one[] = { in_dir("c_00.bin") };
    CHECK(open_pattern(&ds, one[0], 5) == E2_EDATA);
    CHECK_MSG(err, "5 tokens in 1 shard(s), fewer than one training sequence of 5 + 1 tokens");
    CHECK(open_pattern(&ds, one[0], 4) == 0 && e2w_dataset_samples(ds) == 1);
    e2w_dataset_close(ds);
    int32_t bad[3] = { 20240520, 2, 0 };
    CHECK(write_raw(in_dir("c_01.bin"), bad, 3, 0) == 0);
    char *all[] = { in_dir("c_*.bin") };
    CHECK(open_pattern(&ds, all[0], 2) == E2_EDATA);
    CHECK_MSG(err, "c_01.bin: bad header: uint16 token shards need version 1");
    remove_dir();
    return 0;
}

static int is_permutation(const uint64_t *p, uint64_t n) {
    unsigned char *seen = calloc(n, 1);
    int ok = 1;
    for (uint64_t i = 0; i < n && ok; i++) {
        if (p[i] >= n || seen[p[i]])
            ok = 0;
        else
            seen[p[i]] = 1;
    }
    free(seen);
    return ok;
}

static int case_order_permutation(void) {
    enum { N = 1000 };
    static uint64_t a[N], b[N], c[N];
    for (uint64_t seed = 1; seed < 4; seed++)
        for (uint64_t epoch = 0; epoch < 4; epoch++) {
            e2w_order_permutation(seed, epoch, N, a);
            CHECK(is_permutation(a, N));
            e2w_order_permutation(seed, epoch, N, b);
            CHECK(memcmp(a, b, sizeof a) == 0);
            e2w_order_permutation(seed, epoch + 1, N, c);
            CHECK(memcmp(a, c, sizeof a) != 0);
            e2w_order_permutation(seed + 100, epoch, N, c);
            CHECK(memcmp(a, c, sizeof a) != 0);
        }
    e2w_order_permutation(5, 0, 1, a);
    CHECK(a[0] == 0);
    return 0;
}

/* P(perm[0] = j) is uniform over epochs (chi-square, 7 dof). */
static int case_order_uniform(void) {
    enum { N = 8, E = 8000 };
    uint64_t p[N];
    double cnt[N][N] = { { 0 } };
    for (uint64_t e = 0; e < E; e++) {
        e2w_order_permutation(42, e, N, p);
        for (int i = 0; i < N; i++) cnt[i][p[i]] += 1;
    }
    for (int i = 0; i < N; i++) {
        double chi = 0, expect = (double)E / N;
        for (int j = 0; j < N; j++) chi += (cnt[i][j] - expect) * (cnt[i][j] - expect) / expect;
        if (chi >= 24.32) fprintf(stderr, "position %d chi-square %.2f\n", i, chi);
        CHECK(chi < 24.32); /* p = 0.001 */
    }
    return 0;
}

/* sample_at(k) is perm(seed, k / n)[k mod n] in any call order. */
static int case_order_sample_at(void) {
    CHECK(make_dir() == 0);
    const uint32_t sizes[] = { 101 };
    uint32_t total;
    CHECK(write_counting(sizes, 1, &total) == 0);
    char *one[] = { in_dir("c_00.bin") };
    e2w_dataset *ds;
    CHECK(open_pattern(&ds, one[0], 4) == 0);
    uint64_t n = e2w_dataset_samples(ds);
    CHECK(n == 25);
    uint64_t perm[25], s;
    const uint64_t ks[] = { 0, 24, 25, 74, 3, 26, 130, 1, 49, 50 };
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
        CHECK(e2w_dataset_sample_at(ds, 9, ks[i], &s) == 0);
        e2w_order_permutation(9, ks[i] / n, n, perm);
        CHECK(s == perm[ks[i] % n]);
    }
    /* Each epoch visits every sample once. */
    unsigned char seen[25] = { 0 };
    for (uint64_t k = 2 * n; k < 3 * n; k++) {
        CHECK(e2w_dataset_sample_at(ds, 9, k, &s) == 0);
        CHECK(s < n && !seen[s]);
        seen[s] = 1;
    }
    e2w_dataset_close(ds);
    remove_dir();
    return 0;
}

/* --- E² sampler ----------------------------------------------------------- */

static e2w_aug_config aug_cfg(e2w_aug_method m, uint32_t g_max, uint32_t L, uint32_t R) {
    e2w_aug_config c = { 0 };
    c.method = m;
    c.granularity = E2W_AUG_PER_SAMPLE;
    c.g_max = g_max;
    c.n_sink = 4;
    c.original_window = L;
    c.train_length = R;
    c.fixed_g = 8;
    return c;
}

static int case_aug_chi_uniform(void) {
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 20, 4096, 4096);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    enum { D = 40000 };
    double cnt[21] = { 0 };
    for (uint64_t i = 0; i < D; i++) {
        float g;
        int32_t t;
        e2w_aug_draw(&a, 1, i / 16, i, &g, &t);
        CHECK(g >= 1 && g <= 20 && g == floorf(g));
        cnt[(int)g] += 1;
    }
    double chi = 0, expect = D / 20.0;
    for (int g = 1; g <= 20; g++) chi += (cnt[g] - expect) * (cnt[g] - expect) / expect;
    fprintf(stderr, "uniform g: chi-square %.2f (19 dof, p=0.001 bound 43.82)\n", chi);
    CHECK(chi < 43.82);
    return 0;
}

static int case_aug_chi_weighted(void) {
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 6, 4096, 4096);
    const double w[6] = { 0, 1, 2, 3, 4, 0 };
    c.g_weights = w;
    c.n_g_weights = 6;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    enum { D = 50000 };
    double cnt[7] = { 0 };
    for (uint64_t i = 0; i < D; i++) {
        float g;
        int32_t t;
        e2w_aug_draw(&a, 77, 0, i, &g, &t);
        cnt[(int)g] += 1;
    }
    CHECK(cnt[1] == 0 && cnt[6] == 0);
    double chi = 0;
    for (int g = 2; g <= 5; g++) {
        double expect = D * w[g - 1] / 10.0;
        chi += (cnt[g] - expect) * (cnt[g] - expect) / expect;
    }
    fprintf(stderr, "weighted g: chi-square %.2f (3 dof, p=0.001 bound 16.27)\n", chi);
    CHECK(chi < 16.27);
    return 0;
}

/* t in [0, max(0, gL - R)], both ends reached, uniform; when gL >= R every
 * position of the sequence stays below L. */
static int case_aug_t_range(void) {
    const uint32_t L = 64, R = 96;
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 4, L, R);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    int hit0[5] = { 0 }, hitmax[5] = { 0 };
    double tc[161] = { 0 };
    int n4 = 0;
    for (uint64_t i = 0; i < 40000; i++) {
        float g;
        int32_t t;
        e2w_aug_draw(&a, 3, i, i * 7, &g, &t);
        int gi = (int)g;
        int32_t tmax = (int32_t)(gi * (int)L) - (int32_t)R;
        if (tmax < 0) tmax = 0;
        CHECK(e2w_aug_t_max(&a, g) == tmax);
        CHECK(t >= 0 && t <= tmax);
        hit0[gi] |= t == 0;
        hitmax[gi] |= t == tmax;
        if (gi == 4) {
            tc[t] += 1;
            n4++;
        }
        if (gi * L >= R)
            for (uint32_t m = 0; m < R; m++) CHECK(e2w_aug_position(c.n_sink, m, g, t) < (float)L);
    }
    for (int g = 1; g <= 4; g++) CHECK(hit0[g] && hitmax[g]);
    /* g = 4: t uniform on {0..160} (chi-square, 160 dof, p=0.001 bound 221.4). */
    double chi = 0, expect = n4 / 161.0;
    for (int t = 0; t <= 160; t++) chi += (tc[t] - expect) * (tc[t] - expect) / expect;
    CHECK(chi < 221.4);
    /* Fractional g: t_max = floor(g L) - R. */
    CHECK(e2w_aug_t_max(&a, 2.5f) == 160 - 96);
    return 0;
}

/* The sampler returns (g, t) only: sinks keep position m / g whatever t
 * is, the other tokens move by t / g and keep their distances. */
static int case_aug_sinks(void) {
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 16, 256, 128);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    int moved = 0;
    for (uint64_t i = 0; i < 200; i++) {
        float g;
        int32_t t;
        e2w_aug_draw(&a, 5, 0, i, &g, &t);
        moved += t > 0;
        for (uint32_t m = 0; m < c.n_sink; m++)
            CHECK(e2w_aug_position(c.n_sink, m, g, t) == (float)m / g);
        for (uint32_t m = c.n_sink; m < 128; m++) {
            CHECK(e2w_aug_position(c.n_sink, m, g, t) == (float)((double)m + t) / g);
            float d =
                e2w_aug_position(c.n_sink, m, g, t) - e2w_aug_position(c.n_sink, c.n_sink, g, t);
            CHECK(fabsf(d - (float)(m - c.n_sink) / g) <= 1e-3f * (float)(m + t) / g);
        }
        CHECK(e2w_aug_position(0, 0, g, t) == (float)t / g);
    }
    CHECK(moved > 150);
    return 0;
}

/* Same draws however a global batch is split into ranks and micro-batches,
 * in any call order: each is a function of (seed, step, index) only. */
static int case_aug_pure_split(void) {
    enum { GB = 24, STEPS = 6 };
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 20, 512, 256);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    float g1[STEPS][GB], g2[STEPS][GB];
    int32_t t1[STEPS][GB], t2[STEPS][GB];
    for (uint64_t s = 0; s < STEPS; s++)
        for (uint64_t i = 0; i < GB; i++) e2w_aug_draw(&a, 11, s, s * GB + i, &g1[s][i], &t1[s][i]);
    const int splits[][2] = { { 1, 24 }, { 2, 4 }, { 3, 2 }, { 4, 3 }, { 8, 1 }, { 6, 4 } };
    for (size_t k = 0; k < sizeof splits / sizeof splits[0]; k++) {
        int W = splits[k][0], mb = splits[k][1], per = GB / W;
        memset(g2, 0, sizeof g2);
        /* Ranks run in reverse order, micro-batches in order. */
        for (uint64_t s = 0; s < STEPS; s++)
            for (int r = W - 1; r >= 0; r--)
                for (int m = 0; m < per / mb; m++)
                    for (int j = 0; j < mb; j++) {
                        uint64_t i = (uint64_t)(r * per + m * mb + j);
                        e2w_aug_draw(&a, 11, s, s * GB + i, &g2[s][i], &t2[s][i]);
                    }
        CHECK(memcmp(g1, g2, sizeof g1) == 0 && memcmp(t1, t2, sizeof t1) == 0);
    }
    /* Resume: a draw recomputed later is the same; another seed differs. */
    float g;
    int32_t t;
    e2w_aug_draw(&a, 11, 3, 3 * GB + 5, &g, &t);
    CHECK(g == g1[3][5] && t == t1[3][5]);
    int differ = 0;
    for (uint64_t i = 0; i < GB; i++) {
        e2w_aug_draw(&a, 12, 0, i, &g, &t);
        differ += g != g1[0][i] || t != t1[0][i];
    }
    CHECK(differ > GB / 2);
    return 0;
}

static int case_aug_per_step(void) {
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 20, 512, 256);
    c.granularity = E2W_AUG_PER_STEP;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    double cnt[21] = { 0 };
    enum { STEPS = 20000 };
    for (uint64_t s = 0; s < STEPS; s++) {
        float g0, g;
        int32_t t0, t;
        e2w_aug_draw(&a, 2, s, s * 16, &g0, &t0);
        for (uint64_t i = 1; i < 16; i += 5) {
            e2w_aug_draw(&a, 2, s, s * 16 + i, &g, &t);
            CHECK(g == g0 && t == t0);
        }
        cnt[(int)g0] += 1;
    }
    double chi = 0, expect = STEPS / 20.0;
    for (int g = 1; g <= 20; g++) chi += (cnt[g] - expect) * (cnt[g] - expect) / expect;
    CHECK(chi < 43.82);
    return 0;
}

static int case_aug_methods(void) {
    const uint32_t L = 128, R = 256;
    e2w_aug a;
    float g;
    int32_t t;
    e2w_aug_config c = aug_cfg(E2W_AUG_PI, 20, L, R);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    for (uint64_t i = 0; i < 500; i++) {
        e2w_aug_draw(&a, 1, i, i, &g, &t);
        CHECK(g == 8.0f && t == 0);
    }
    /* none, and ntk (inference-only: it trains as none). */
    for (int mth = 0; mth < 2; mth++) {
        c.method = mth ? E2W_AUG_NTK : E2W_AUG_NONE;
        CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
        for (uint64_t i = 0; i < 500; i++) {
            e2_pos_draw d;
            e2w_aug_draw_pos(&a, 1, i, i, &d);
            CHECK(d.g == 1.0f && d.t == 0 && d.n_chunks == 0);
        }
    }
    /* g_max = 1 with R >= L: E² degenerates to no augmentation. */
    c = aug_cfg(E2W_AUG_E2, 1, L, R);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
    e2w_aug_draw(&a, 1, 0, 0, &g, &t);
    CHECK(g == 1.0f && t == 0);
    e2w_aug_method m;
    e2w_aug_granularity gr;
    CHECK(e2w_aug_method_parse("pose", &m) == 0 && m == E2W_AUG_POSE);
    CHECK(e2w_aug_method_parse("yarn", &m) == E2_ERR);
    CHECK(e2w_aug_granularity_parse("per_step", &gr) == 0 && gr == E2W_AUG_PER_STEP);
    CHECK(e2w_aug_granularity_parse("", &gr) == E2_ERR);
    return 0;
}

static int case_aug_init_errors(void) {
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 0, 64, 64);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "augment.g_max must be in [1, 1024] (got 0)");
    c = aug_cfg(E2W_AUG_E2, 3, 64, 64);
    const double w2[2] = { 1, 1 }, wneg[3] = { 1, -1, 1 }, wzero[3] = { 0, 0, 0 };
    c.g_weights = w2;
    c.n_g_weights = 2;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "augment.g_weights must have g_max (3) entries (got 2)");
    c.g_weights = wneg;
    c.n_g_weights = 3;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "augment.g_weights[1] must be finite and >= 0 (got -1)");
    c.g_weights = wzero;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "positive finite sum");
    c = aug_cfg(E2W_AUG_E2, 1024, 1u << 22, 64);
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "must be below 2^31");
    E2__V1__AugmentSpec s = E2__V1__AUGMENT_SPEC__INIT;
    s.method = "e2";
    s.granularity = "per_sample";
    s.has_g_max = s.has_n_sink = s.has_train_length = s.has_fixed_g = 1;
    s.g_max = 20;
    s.n_sink = 4;
    s.train_length = 4096;
    s.fixed_g = 8;
    CHECK(e2w_aug_init_spec(&a, &s, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "original_window");
    s.has_original_window = 1;
    s.original_window = 4096;
    CHECK(e2w_aug_init_spec(&a, &s, err, sizeof err) == 0);
    CHECK(a.cfg.g_max == 20 && a.uniform && a.cfg.original_window == 4096);
    s.method = "yarn";
    CHECK(e2w_aug_init_spec(&a, &s, err, sizeof err) == E2_EDATA);
    CHECK_MSG(err, "augment.method must be one of e2, pi, pose, none, ntk (got \"yarn\")");
    return 0;
}

/* --- preparation ------------------------------------------------------------ */

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* Reads back all shards matching prefix_split_*.bin in order. */
static size_t read_split(const char *prefix, const char *split, uint32_t *out, size_t cap,
                         int *nshards) {
    size_t n = 0;
    *nshards = 0;
    for (int i = 0;; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s_%s_%06d.bin", prefix, split, i);
        e2w_shard s;
        if (e2w_shard_open(&s, p, err, sizeof err) != 0) break;
        (*nshards)++;
        for (uint64_t k = 0; k < s.n_tokens && n < cap; k++) out[n++] = e2w_shard_token(&s, k);
        e2w_shard_close(&s);
    }
    return n;
}

static int case_prep_text(void) {
    CHECK(make_dir() == 0);
    CHECK(write_text(in_dir("a.txt"), "hello") == 0);
    CHECK(write_text(in_dir("b.txt"), "ab\xff") == 0);
    char *files[] = { in_dir("a.txt"), in_dir("b.txt") };
    const uint32_t want[] = { 256, 'h', 'e', 'l', 'l', 'o', 256, 'a', 'b', 255 };
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s", in_dir("one"));
    e2w_prep_stats st;
    CHECK(e2w_prep_text(files, 2, prefix, 1000, 0, &st, err, sizeof err) == 0);
    CHECK(st.train_tokens == 10 && st.val_tokens == 0 && st.train_shards == 1 &&
          st.val_shards == 0);
    uint32_t got[32];
    int ns;
    CHECK(read_split(prefix, "train", got, 32, &ns) == 10 && ns == 1);
    CHECK(memcmp(got, want, sizeof want) == 0);
    /* Small shards and a validation split: train then val is the stream. */
    snprintf(prefix, sizeof prefix, "%s", in_dir("split"));
    CHECK(e2w_prep_text(files, 2, prefix, 3, 0.25, &st, err, sizeof err) == 0);
    CHECK(st.train_tokens == 8 && st.val_tokens == 2 && st.train_shards == 3 && st.val_shards == 1);
    size_t n = read_split(prefix, "train", got, 32, &ns);
    CHECK(n == 8 && ns == 3);
    n += read_split(prefix, "val", got + n, 32 - n, &ns);
    CHECK(n == 10 && ns == 1);
    CHECK(memcmp(got, want, sizeof want) == 0);
    e2w_shard s;
    snprintf(prefix, sizeof prefix, "%s", in_dir("split_train_000000.bin"));
    CHECK(e2w_shard_open(&s, prefix, err, sizeof err) == 0 && s.width == 2);
    e2w_shard_close(&s);
    char *missing[] = { in_dir("nope.txt") };
    CHECK(e2w_prep_text(missing, 1, in_dir("x"), 10, 0, NULL, err, sizeof err) != 0);
    CHECK_MSG(err, "nope.txt: No such file");
    CHECK(e2w_prep_text(files, 2, in_dir("x"), 10, 1.0, NULL, err, sizeof err) != 0);
    CHECK_MSG(err, "validation fraction must be in [0, 1) (got 1)");
    remove_dir();
    return 0;
}

static int case_gen_text(void) {
    enum { N = 20000 };
    char *a = malloc(N + 1), *b = malloc(N + 1), *c = malloc(N / 2 + 1);
    e2w_gen_text(7, a, N + 1);
    e2w_gen_text(7, b, N + 1);
    e2w_gen_text(7, c, N / 2 + 1);
    CHECK(strlen(a) == N && memcmp(a, b, N + 1) == 0);
    CHECK(memcmp(a, c, N / 2) == 0);
    e2w_gen_text(8, b, N + 1);
    CHECK(memcmp(a, b, N) != 0);
    for (size_t i = 0; i < N; i++) CHECK(a[i] == '\n' || (a[i] >= ' ' && a[i] <= '~'));
    CHECK(strncmp(a, "Story 1. Once there was a ", 26) == 0);
    /* The closing line repeats the opening number. */
    unsigned num = 0, again = 0;
    const char *p = strstr(a, "who kept the number ");
    CHECK(p && sscanf(p, "who kept the number %u", &num) == 1);
    p = strstr(a, "still remembered the number ");
    CHECK(p && sscanf(p, "still remembered the number %u", &again) == 1);
    CHECK(num == again && num >= 1000 && num <= 9999);
    CHECK(make_dir() == 0);
    CHECK(e2w_gen_text_file(in_dir("g.txt"), 7, 5000, err, sizeof err) == 0);
    FILE *f = fopen(in_dir("g.txt"), "rb");
    size_t got = fread(b, 1, N, f);
    fclose(f);
    CHECK(got == 5000 && memcmp(a, b, 5000) == 0);
    remove_dir();
    free(a);
    free(b);
    free(c);
    return 0;
}

/* The counter-based RNG: unbiased small ranges, pure in its inputs. */
static int case_rng(void) {
    uint64_t key = e2w_rng_key(9, 1, 2, 3), ctr = 0;
    double cnt[3] = { 0 };
    for (int i = 0; i < 30000; i++) cnt[e2w_rng_below(key, &ctr, 3)] += 1;
    double chi = 0;
    for (int i = 0; i < 3; i++) chi += (cnt[i] - 10000) * (cnt[i] - 10000) / 10000;
    CHECK(chi < 13.82);
    CHECK(e2w_rng_key(9, 1, 2, 3) == key && e2w_rng_key(9, 1, 2, 4) != key &&
          e2w_rng_key(9, 2, 1, 3) != key);
    double u = e2w_rng_unit(key, 5);
    CHECK(u >= 0 && u < 1 && u == e2w_rng_unit(key, 5));
    return 0;
}

/* augment.random_offset = false: t = 0 for e2, and g is the same
 * draw as with offsets (g and t use separate RNG domains); the spec path
 * maps the proto field, unset meaning offsets on. */
static int case_aug_no_offset(void) {
    const uint32_t L = 128, R = 256;
    e2w_aug on, off;
    float g1, g2;
    int32_t t1, t2;
    e2w_aug_config c = aug_cfg(E2W_AUG_E2, 20, L, R);
    CHECK(e2w_aug_init(&on, &c, err, sizeof err) == 0);
    c.no_offset = 1;
    CHECK(e2w_aug_init(&off, &c, err, sizeof err) == 0);
    int moved = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        e2w_aug_draw(&on, 9, i / 8, i, &g1, &t1);
        e2w_aug_draw(&off, 9, i / 8, i, &g2, &t2);
        CHECK(g1 == g2 && t2 == 0);
        moved += t1 != 0;
    }
    CHECK(moved > 1000);
    E2__V1__AugmentSpec s = E2__V1__AUGMENT_SPEC__INIT;
    s.method = "e2";
    s.granularity = "per_sample";
    s.has_g_max = s.has_n_sink = s.has_train_length = s.has_fixed_g = s.has_original_window = 1;
    s.g_max = 20;
    s.n_sink = 4;
    s.train_length = R;
    s.original_window = L;
    s.fixed_g = 8;
    CHECK(e2w_aug_init_spec(&on, &s, err, sizeof err) == 0 && on.cfg.no_offset == 0);
    s.has_random_offset = 1;
    s.random_offset = 1;
    CHECK(e2w_aug_init_spec(&on, &s, err, sizeof err) == 0 && on.cfg.no_offset == 0);
    s.random_offset = 0;
    CHECK(e2w_aug_init_spec(&off, &s, err, sizeof err) == 0 && off.cfg.no_offset == 1);
    e2w_aug_draw(&off, 3, 7, 11, &g2, &t2);
    CHECK(t2 == 0 && g2 >= 1.0f && g2 <= 20.0f);
    return 0;
}

/* --- PoSE: chunked skip-wise positions -------------------------------------- */

/* Every draw: g = 1, t = 0, pose_chunks chunks, the first at token 0, starts
 * non-decreasing in [0, R), skips non-decreasing in [0, Lt - R], so every
 * position is below Lt; all (cuts, skips) extremes are reached; a draw is a
 * pure function of (seed, step, sample). */
static int case_pose_draws(void) {
    const uint32_t L = 64, R = 64, Lt = 512;
    for (uint32_t nc = 1; nc <= 4; nc++) {
        e2w_aug a;
        e2w_aug_config c = aug_cfg(E2W_AUG_POSE, 1, L, R);
        c.n_sink = 0;
        c.pose_chunks = nc;
        c.pose_target_length = Lt;
        CHECK(e2w_aug_init(&a, &c, err, sizeof err) == 0);
        int top = 0, long_dist = 0;
        for (uint64_t i = 0; i < 4000; i++) {
            e2_pos_draw d, d2;
            e2w_aug_draw_pos(&a, 3, i / 16, i, &d);
            e2w_aug_draw_pos(&a, 3, i / 16, i, &d2);
            CHECK(memcmp(&d, &d2, sizeof d) == 0);
            CHECK(d.g == 1.0f && d.t == 0 && d.n_chunks == (int)nc && d.chunks[0][0] == 0);
            for (uint32_t k = 0; k < nc; k++) {
                CHECK(d.chunks[k][0] >= 0 && d.chunks[k][0] < (int32_t)R);
                CHECK(d.chunks[k][1] >= 0 && d.chunks[k][1] <= (int32_t)(Lt - R));
                if (k)
                    CHECK(d.chunks[k][0] >= d.chunks[k - 1][0] &&
                          d.chunks[k][1] >= d.chunks[k - 1][1]);
            }
            float last = e2w_aug_position_draw(0, R - 1, &d),
                  first = e2w_aug_position_draw(0, 0, &d);
            CHECK(last <= (float)(Lt - 1));
            top += d.chunks[nc - 1][1] == (int32_t)(Lt - R);
            long_dist += last - first >= (float)(4 * L);
        }
        CHECK(top > 0);
        /* With more than one chunk, distances far beyond R occur. */
        if (nc > 1)
            CHECK(long_dist > 400);
        else
            CHECK(long_dist == 0);
    }
    return 0;
}

/* A hand-computed draw's positions: chunks at 0 (skip 3) and 5 (skip 40),
 * 2 sinks: 0, 1, 2+3, 3+3, 4+3, 5+40, 6+40. */
static int case_pose_positions(void) {
    e2_pos_draw d = { .g = 1.0f, .t = 0, .n_chunks = 2, .chunks = { { 0, 3 }, { 5, 40 } } };
    const float want[7] = { 0, 1, 5, 6, 7, 45, 46 };
    for (uint32_t m = 0; m < 7; m++) CHECK(e2w_aug_position_draw(2, m, &d) == want[m]);
    return 0;
}

/* The scheme table: knob errors name the knob; the inference rules (e2:
 * L'/L, pi: its g, pose and none: 1, ntk: g = 1 and theta * s^(D/(D-2)));
 * the rope_scaling export values. */
static int case_scheme_table(void) {
    e2w_aug a;
    e2w_aug_config c = aug_cfg(E2W_AUG_POSE, 1, 64, 64);
    c.pose_chunks = 5;
    c.pose_target_length = 512;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) != 0);
    CHECK_MSG(err, "augment.pose_chunks must be in [1, 4] (got 5)");
    c.pose_chunks = 2;
    c.pose_target_length = 63;
    CHECK(e2w_aug_init(&a, &c, err, sizeof err) != 0);
    CHECK_MSG(err, "augment.pose_target_length");
    e2_pos_infer inf;
    e2_pos_hf hf;
    c = aug_cfg(E2W_AUG_E2, 20, 64, 64);
    e2_pos_inference(&c, 256, 32, &inf);
    CHECK(inf.g == 4.0 && inf.theta_factor == 1.0);
    e2_pos_inference(&c, 32, 32, &inf);
    CHECK(inf.g == 1.0);
    e2_pos_hf_rope_scaling(&c, 4.0, &hf);
    CHECK(hf.type && strcmp(hf.type, "linear") == 0 && hf.factor == 4.0);
    c.method = E2W_AUG_PI;
    e2_pos_inference(&c, 256, 32, &inf);
    CHECK(inf.g == 8.0);
    e2_pos_hf_rope_scaling(&c, 1.0, &hf);
    CHECK(hf.type && strcmp(hf.type, "linear") == 0 && hf.factor == 8.0);
    c.method = E2W_AUG_POSE;
    e2_pos_inference(&c, 256, 32, &inf);
    CHECK(inf.g == 1.0 && inf.theta_factor == 1.0);
    e2_pos_hf_rope_scaling(&c, 1.0, &hf);
    CHECK(hf.type == NULL);
    c.method = E2W_AUG_NTK;
    e2_pos_inference(&c, 256, 32, &inf);
    CHECK(inf.g == 1.0 && fabs(inf.theta_factor - pow(4.0, 32.0 / 30.0)) < 1e-12);
    e2_pos_inference(&c, 64, 32, &inf);
    CHECK(inf.theta_factor == 1.0);
    e2_pos_hf_rope_scaling(&c, 1.0, &hf);
    CHECK(hf.type && strcmp(hf.type, "dynamic") == 0 && hf.factor == 8.0);
    CHECK(strcmp(e2_pos_scheme_names(), "e2, pi, pose, none, ntk") == 0);
    e2w_aug_method m;
    CHECK(e2w_aug_method_parse("ntk", &m) == 0 && m == E2W_AUG_NTK && !e2_pos_schemes[m]->trains);
    return 0;
}

int main(int argc, char **argv) {
    static const check_case cases[] = {
        { "shard_u16", case_shard_u16 },
        { "shard_u32", case_shard_u32 },
        { "shard_empty", case_shard_empty },
        { "shard_atomic", case_shard_atomic },
        { "shard_corrupt", case_shard_corrupt },
        { "dataset_windows", case_dataset_windows },
        { "dataset_errors", case_dataset_errors },
        { "order_permutation", case_order_permutation },
        { "order_uniform", case_order_uniform },
        { "order_sample_at", case_order_sample_at },
        { "aug_chi_uniform", case_aug_chi_uniform },
        { "aug_chi_weighted", case_aug_chi_weighted },
        { "aug_t_range", case_aug_t_range },
        { "aug_sinks", case_aug_sinks },
        { "aug_pure_split", case_aug_pure_split },
        { "aug_per_step", case_aug_per_step },
        { "aug_methods", case_aug_methods },
        { "aug_init_errors", case_aug_init_errors },
        { "aug_no_offset", case_aug_no_offset },
        { "pose_draws", case_pose_draws },
        { "pose_positions", case_pose_positions },
        { "scheme_table", case_scheme_table },
        { "prep_text", case_prep_text },
        { "gen_text", case_gen_text },
        { "rng", case_rng },
        { NULL, NULL },
    };
    return check_main(cases, argc, argv);
}
