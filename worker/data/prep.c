/* prep: byte-level text -> token shards (see prep.h). The stream's length
 * is known before reading (file sizes plus one EOT per document), which
 * fixes the train/val split point up front, so the text is read once and
 * streamed straight into shards. */
#include "prep.h"
#include "base.h"
#include "shard.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Routes tokens to the train then val shards, rolling shards at size. */
typedef struct {
    const char *prefix;
    size_t shard_tokens;
    uint64_t train_total, written;
    e2w_shard_writer w;
    int open, split; /* split: 0 train, 1 val */
    int index[2];
    e2w_prep_stats *st;
} prep_out;

static int prep_roll(prep_out *o, char *err, size_t errlen) {
    if (o->open) {
        o->open = 0;
        int rc = e2w_shard_writer_commit(&o->w, err, errlen);
        if (rc) return rc;
    }
    return 0;
}

static int prep_emit(prep_out *o, const uint32_t *tok, size_t n, char *err, size_t errlen) {
    while (n > 0) {
        int split = o->written >= o->train_total;
        if (o->open && (split != o->split || o->w.n_tokens >= o->shard_tokens)) {
            int rc = prep_roll(o, err, errlen);
            if (rc) return rc;
        }
        if (!o->open) {
            char path[4096];
            snprintf(path, sizeof path, "%s_%s_%06d.bin", o->prefix, split ? "val" : "train",
                     o->index[split]++);
            int rc = e2w_shard_writer_open(&o->w, path, 2, err, errlen);
            if (rc) return rc;
            o->open = 1;
            o->split = split;
            if (split)
                o->st->val_shards++;
            else
                o->st->train_shards++;
        }
        uint64_t room = o->shard_tokens - o->w.n_tokens;
        if (!split && o->train_total - o->written < room) room = o->train_total - o->written;
        size_t m = n < room ? n : (size_t)room;
        int rc = e2w_shard_writer_append(&o->w, tok, m, err, errlen);
        if (rc) return rc;
        if (split)
            o->st->val_tokens += m;
        else
            o->st->train_tokens += m;
        o->written += m;
        tok += m;
        n -= m;
    }
    return 0;
}

static int prep_file(prep_out *o, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return e2_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    uint32_t eot = E2W_BYTE_EOT;
    int rc = prep_emit(o, &eot, 1, err, errlen);
    unsigned char buf[16384];
    uint32_t tok[sizeof buf];
    size_t got;
    while (rc == 0 && (got = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < got; i++) tok[i] = buf[i];
        rc = prep_emit(o, tok, got, err, errlen);
    }
    if (rc == 0 && ferror(f)) rc = e2_errf(err, errlen, "%s: read error", path);
    fclose(f);
    return rc;
}

int e2w_prep_text(char *const *files, int n, const char *out_prefix, size_t shard_tokens,
                  double val_fraction, e2w_prep_stats *stats, char *err, size_t errlen) {
    e2w_prep_stats local;
    prep_out o;
    memset(&o, 0, sizeof o);
    o.st = stats ? stats : &local;
    memset(o.st, 0, sizeof *o.st);
    if (n < 1) return e2_errf(err, errlen, "prep: no input text files");
    if (shard_tokens < 1 || shard_tokens > E2W_SHARD_MAX_TOKENS)
        return e2_errf(err, errlen, "prep: shard size must be in [1, %u] tokens (got %zu)",
                       E2W_SHARD_MAX_TOKENS, shard_tokens);
    if (!(val_fraction >= 0 && val_fraction < 1))
        return e2_errf(err, errlen, "prep: validation fraction must be in [0, 1) (got %g)",
                       val_fraction);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (stat(files[i], &st) != 0)
            return e2_errf(err, errlen, "%s: %s", files[i], strerror(errno));
        if (!S_ISREG(st.st_mode)) return e2_errf(err, errlen, "%s: not a regular file", files[i]);
        total += (uint64_t)st.st_size + 1;
    }
    uint64_t val = (uint64_t)((double)total * val_fraction);
    if (val_fraction > 0 && val == 0) val = 1;
    if (val >= total)
        return e2_errf(err, errlen, "prep: %llu tokens are too few for a train/val split",
                       (unsigned long long)total);
    o.prefix = out_prefix;
    o.shard_tokens = shard_tokens;
    o.train_total = total - val;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) rc = prep_file(&o, files[i], err, errlen);
    if (rc == 0 && o.written != total)
        rc = e2_errf(err, errlen, "prep: the input files changed while being read");
    if (rc == 0) rc = prep_roll(&o, err, errlen);
    if (o.open) e2w_shard_writer_abort(&o.w);
    return rc;
}
