/* spec: loading, overriding, defaulting and validating the job spec (see
 * spec.h). Defaults are written in one place (spec_defaults*) from the
 * comments of job.proto; the validator checks each field against the range
 * it documents and returns the first problem as one line naming the field
 * (`spec.augment.g_max must be in [1, 1024] (got 0)`). */
#include "spec.h"
#include "base.h"
#include "pbjson.h"
#include "scheme.h"
#include "shards.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPEC_ROOT "spec"

/* --- load ------------------------------------------------------------------ */

E2__V1__JobSpec *e2_spec_parse(const char *text, size_t len, char *err, size_t errlen) {
    return (E2__V1__JobSpec *)e2_pbjson_parse(&e2__v1__job_spec__descriptor, text, len, SPEC_ROOT,
                                              err, errlen);
}

void e2_spec_free(E2__V1__JobSpec *spec) {
    if (spec) protobuf_c_message_free_unpacked(&spec->base, NULL);
}

E2__V1__JobSpec *e2_spec_copy(const E2__V1__JobSpec *spec) {
    return (E2__V1__JobSpec *)e2_pbjson_copy(&spec->base);
}

static int spec_resolve(char **p, const char *base, const char *field, char *err, size_t errlen) {
    if (*p == NULL || (*p)[0] == '\0' || (*p)[0] == '/') return 0;
    size_t n = strlen(base) + strlen(*p) + 2;
    char *j = malloc(n);
    if (!j) return e2_errf(err, errlen, "%s: out of memory", field);
    snprintf(j, n, "%s/%s", base, *p);
    free(*p);
    *p = j;
    return 0;
}

int e2_spec_resolve_paths(E2__V1__JobSpec *spec, const char *base_dir, char *err, size_t errlen) {
    int rc;
    if (spec->data) {
        for (size_t i = 0; i < spec->data->n_train_shards; i++)
            if ((rc = spec_resolve(&spec->data->train_shards[i], base_dir, "spec.data.train_shards",
                                   err, errlen)))
                return rc;
        for (size_t i = 0; i < spec->data->n_eval_shards; i++)
            if ((rc = spec_resolve(&spec->data->eval_shards[i], base_dir, "spec.data.eval_shards",
                                   err, errlen)))
                return rc;
    }
    if (spec->model &&
        (rc = spec_resolve(&spec->model->hf_dir, base_dir, "spec.model.hf_dir", err, errlen)))
        return rc;
    return 0;
}

static char *spec_read_file(const char *path, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        e2_errf(err, errlen, "%s: cannot open spec file: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = cap > (64u << 20) ? NULL : realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        e2_errf(err, errlen, "%s: cannot read spec file (unreadable or over 64 MiB)", path);
        return NULL;
    }
    *len = n;
    return buf;
}

E2__V1__JobSpec *e2_spec_load(const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = spec_read_file(path, &len, err, errlen);
    if (!text) return NULL;
    char msg[1024];
    E2__V1__JobSpec *spec = e2_spec_parse(text, len, msg, sizeof msg);
    free(text);
    if (!spec) {
        e2_errf(err, errlen, "%s: %s", path, msg);
        return NULL;
    }
    char *dir = strdup(path);
    char *slash = dir ? strrchr(dir, '/') : NULL;
    const char *base = ".";
    if (slash == dir)
        base = "/";
    else if (slash) {
        *slash = '\0';
        base = dir;
    }
    char real[PATH_MAX];
    if (realpath(base, real)) base = real;
    int rc = dir ? e2_spec_resolve_paths(spec, base, err, errlen)
                 : e2_errf(err, errlen, "%s: out of memory", path);
    free(dir);
    if (rc) {
        e2_spec_free(spec);
        return NULL;
    }
    return spec;
}

/* --- overrides ------------------------------------------------------------- */

int e2_spec_set(E2__V1__JobSpec *spec, const char *path, const char *value, char *err,
                size_t errlen) {
    if (strncmp(path, SPEC_ROOT ".", sizeof SPEC_ROOT) == 0) path += sizeof SPEC_ROOT;
    return e2_pbjson_set(&spec->base, path, value, SPEC_ROOT, err, errlen);
}

int e2_spec_set_arg(E2__V1__JobSpec *spec, const char *arg, char *err, size_t errlen) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return e2_errf(err, errlen, "--set %s: expected path=value (e.g. train.lr=3e-4)", arg);
    char path[256];
    size_t n = (size_t)(eq - arg);
    if (n >= sizeof path) return e2_errf(err, errlen, "--set: path too long");
    memcpy(path, arg, n);
    path[n] = '\0';
    return e2_spec_set(spec, path, eq + 1, err, errlen);
}

/* --- defaults -------------------------------------------------------------- */

#define DEF(msg, field, value)      \
    do {                            \
        if (!(msg)->has_##field) {  \
            (msg)->has_##field = 1; \
            (msg)->field = (value); \
        }                           \
    } while (0)

static int spec_def_str(char **s, const char *value) {
    if (*s != NULL) return 0;
    *s = strdup(value);
    return *s ? 0 : E2_ERR;
}

/* Creates an unset sub-message; returns E2_ERR on failure. */
static int spec_sub(void **slot, const ProtobufCMessageDescriptor *d) {
    if (*slot) return 0;
    ProtobufCMessage *m = malloc(d->sizeof_message);
    if (!m) return E2_ERR;
    protobuf_c_message_init(d, m);
    *slot = m;
    return 0;
}

static void spec_defaults_config(E2__V1__LlamaConfig *c) {
    if (c->has_num_attention_heads) DEF(c, num_key_value_heads, c->num_attention_heads);
    DEF(c, rms_norm_eps, 1e-5);
    DEF(c, rope_theta, 10000.0);
    DEF(c, tie_word_embeddings, 0);
}

static void spec_defaults_train(E2__V1__TrainSpec *t, uint32_t num_workers) {
    DEF(t, steps, 100);
    DEF(t, global_batch, 16);
    if (!t->has_micro_batch) {
        uint32_t per_rank = t->global_batch;
        if (num_workers > 0 && t->global_batch % num_workers == 0)
            per_rank = t->global_batch / num_workers;
        uint32_t mb = per_rank < 4 ? per_rank : 4;
        while (mb > 1 && per_rank % mb != 0) mb--;
        t->has_micro_batch = 1;
        t->micro_batch = mb;
    }
    DEF(t, lr, 1e-5);
    DEF(t, min_lr, 0.0);
    DEF(t, warmup_steps, 0);
    DEF(t, weight_decay, 0.0);
    DEF(t, beta1, 0.9);
    DEF(t, beta2, 0.95);
    DEF(t, adam_eps, 1e-8);
    DEF(t, grad_clip, 1.0);
    DEF(t, seed, 1);
    DEF(t, recompute, 0);
    DEF(t, zero1, 0);
}

static void spec_defaults_augment(E2__V1__AugmentSpec *a) {
    DEF(a, g_max, 20);
    DEF(a, n_sink, 4);
    DEF(a, train_length, 4096);
    DEF(a, fixed_g, 8.0);
    DEF(a, random_offset, 1);
}

static void spec_defaults_eval(E2__V1__EvalSpec *e) {
    DEF(e, max_tokens, 65536);
    DEF(e, passkey_trials, 0);
    DEF(e, passkey_digits, 5);
    DEF(e, seed, 1);
    DEF(e, eval_base, 0);
    DEF(e, passkey_depth_buckets, 1);
}

int e2_spec_apply_model_defaults(E2__V1__JobSpec *spec, const E2__V1__LlamaConfig *cfg, char *err,
                                 size_t errlen) {
    if (!cfg || !cfg->has_max_position_embeddings || cfg->max_position_embeddings == 0) return 0;
    if (spec_sub((void **)&spec->augment, &e2__v1__augment_spec__descriptor) ||
        spec_sub((void **)&spec->eval, &e2__v1__eval_spec__descriptor))
        return e2_errf(err, errlen, "spec: out of memory");
    E2__V1__AugmentSpec *a = spec->augment;
    DEF(a, original_window, cfg->max_position_embeddings);
    E2__V1__EvalSpec *e = spec->eval;
    if (e->n_windows == 0) {
        e->windows = malloc(sizeof *e->windows);
        if (!e->windows) return e2_errf(err, errlen, "spec: out of memory");
        e->windows[0] = a->original_window;
        e->n_windows = 1;
    }
    if (e->n_scales == 0 && a->original_window > 0) {
        e->scales = malloc(e->n_windows * sizeof *e->scales);
        if (!e->scales) return e2_errf(err, errlen, "spec: out of memory");
        for (size_t i = 0; i < e->n_windows; i++) {
            double g = (double)e->windows[i] / (double)a->original_window;
            e->scales[i] = g < 1.0 ? 1.0 : g;
        }
        e->n_scales = e->n_windows;
    }
    return 0;
}

int e2_spec_apply_defaults(E2__V1__JobSpec *spec, char *err, size_t errlen) {
    if (spec_def_str(&spec->device, "cpu") ||
        spec_sub((void **)&spec->augment, &e2__v1__augment_spec__descriptor) ||
        spec_sub((void **)&spec->train, &e2__v1__train_spec__descriptor) ||
        spec_sub((void **)&spec->checkpoint, &e2__v1__checkpoint_spec__descriptor) ||
        spec_sub((void **)&spec->eval, &e2__v1__eval_spec__descriptor) ||
        spec_def_str(&spec->augment->method, "e2") ||
        spec_def_str(&spec->augment->granularity, "per_sample") ||
        spec_def_str(&spec->train->schedule, "cosine"))
        return e2_errf(err, errlen, "spec: out of memory");
    DEF(spec, num_workers, 1);
    DEF(spec, min_workers, spec->num_workers);
    DEF(spec, priority, 0);
    DEF(spec, max_restarts, 3);
    DEF(spec, log_every, 1);
    if (spec->output_dir == NULL && spec->name != NULL) {
        size_t n = strlen(spec->name) + sizeof "./e2-run-";
        spec->output_dir = malloc(n);
        if (!spec->output_dir) return e2_errf(err, errlen, "spec: out of memory");
        snprintf(spec->output_dir, n, "./e2-run-%s", spec->name);
    }
    if (spec->model) {
        DEF(spec->model, init_seed, 1);
        if (spec->model->config) spec_defaults_config(spec->model->config);
    }
    spec_defaults_augment(spec->augment);
    spec_defaults_train(spec->train, spec->num_workers);
    DEF(spec->checkpoint, every, 0);
    DEF(spec->checkpoint, keep_last, 2);
    spec_defaults_eval(spec->eval);
    if (spec->model && spec->model->config)
        return e2_spec_apply_model_defaults(spec, spec->model->config, err, errlen);
    return 0;
}

/* --- data roots ------------------------------------------------------------ */

/* Is `path` (len bytes) `root` or below it? Trailing '/' of root ignored. */
static int roots_below(const char *path, size_t len, const char *root, size_t rlen) {
    while (rlen > 1 && root[rlen - 1] == '/') rlen--;
    if (rlen == 1 && root[0] == '/') return 1;
    return len >= rlen && memcmp(path, root, rlen) == 0 && (len == rlen || path[rlen] == '/');
}

/* Is `path` under one root of the ':' list `roots`? */
static int roots_any(const char *roots, const char *path, size_t len, int resolved) {
    for (const char *r = roots; *r;) {
        const char *end = strchr(r, ':');
        size_t n = end ? (size_t)(end - r) : strlen(r);
        if (n > 0 && n < PATH_MAX) {
            char root[PATH_MAX], real[PATH_MAX];
            memcpy(root, r, n);
            root[n] = '\0';
            /* A resolved path is compared with the resolved root. */
            const char *cmp = resolved && realpath(root, real) ? real : root;
            if (roots_below(path, len, cmp, strlen(cmp))) return 1;
        }
        if (!end) break;
        r = end + 1;
    }
    return 0;
}

/* Absolute, without empty, "." or ".." components. */
static int roots_normalized(const char *p) {
    if (p[0] != '/') return 0;
    for (const char *c = p + 1; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if ((n == 0 && e) || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        if (!e) break;
        c = e + 1;
    }
    return 1;
}

/* The realpath of `path` (when it exists) must be under the roots. */
static int roots_real(const char *field, const char *path, const char *roots, const char *what,
                      char *err, size_t errlen) {
    char real[PATH_MAX];
    if (!realpath(path, real)) return 0; /* missing: the file checks say so */
    if (roots_any(roots, real, strlen(real), 1)) return 0;
    return e2_errf(err, errlen,
                   "%s: \"%s\" resolves (through a symbolic link) to a path outside the %s (%s)",
                   field, path, what, roots);
}

static int roots_one(const char *field, const char *path, const char *roots, const char *what,
                     int deep, int dir, char *err, size_t errlen) {
    if (!roots_normalized(path))
        return e2_errf(
            err, errlen,
            "%s: \"%.300s\" must be a normalized absolute path (no \"//\", \".\" or \"..\" parts) "
            "when the %s are set (%s)",
            field, path, what, roots);
    if (!roots_any(roots, path, strlen(path), 0))
        return e2_errf(
            err, errlen,
            "%s: \"%.300s\" is outside the %s (%s): move the files under one of them, or ask the "
            "admin to add a root",
            field, path, what, roots);
    /* The folders up to the first glob character exist on this machine:
     * links among them must stay inside too. */
    size_t fixed = strcspn(path, "*?[");
    char *pre = strndup(path, fixed);
    if (!pre) return e2_errf(err, errlen, "spec: out of memory");
    if (path[fixed]) {
        char *slash = strrchr(pre, '/');
        slash[slash == pre ? 1 : 0] = '\0';
    }
    int rc = roots_real(field, pre, roots, what, err, errlen);
    free(pre);
    if (rc || !deep) return rc;
    if (!dir) {
        /* A pattern that does not expand is left to the file checks (which
         * run before anything is read). */
        e2_shard_list l = { 0 };
        char *const pats[1] = { (char *)path };
        if (e2_shards_expand(pats, 1, field, &l, NULL, 0) == 0)
            for (size_t k = 0; rc == 0 && k < l.n; k++)
                rc = roots_real(field, l.paths[k], roots, what, err, errlen);
        e2_shards_free(&l);
        return rc;
    }
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && rc == 0 && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        size_t n = strlen(path) + strlen(de->d_name) + 2;
        char *f = malloc(n);
        if (!f) {
            rc = e2_errf(err, errlen, "spec: out of memory");
            break;
        }
        snprintf(f, n, "%s/%s", path, de->d_name);
        rc = roots_real(field, f, roots, what, err, errlen);
        free(f);
    }
    if (d) closedir(d);
    return rc;
}

int e2_spec_check_roots(const E2__V1__JobSpec *spec, const char *data_roots,
                        const char *export_root, int deep, char *err, size_t errlen) {
    char field[64];
    int rc = 0;
    if (data_roots && *data_roots) {
        static const char what[] = "data roots";
        if (spec->data) {
            for (size_t i = 0; rc == 0 && i < spec->data->n_train_shards; i++) {
                snprintf(field, sizeof field, "spec.data.train_shards[%zu]", i);
                rc = roots_one(field, spec->data->train_shards[i], data_roots, what, deep, 0, err,
                               errlen);
            }
            for (size_t i = 0; rc == 0 && i < spec->data->n_eval_shards; i++) {
                snprintf(field, sizeof field, "spec.data.eval_shards[%zu]", i);
                rc = roots_one(field, spec->data->eval_shards[i], data_roots, what, deep, 0, err,
                               errlen);
            }
        }
        if (rc == 0 && spec->model && spec->model->hf_dir && *spec->model->hf_dir)
            rc = roots_one("spec.model.hf_dir", spec->model->hf_dir, data_roots, what, deep, 1, err,
                           errlen);
        if (rc == 0 && spec->resume_from && *spec->resume_from)
            rc = roots_one("spec.resume_from", spec->resume_from, data_roots, what, deep, 1, err,
                           errlen);
    }
    if (rc == 0 && export_root && *export_root && spec->output_dir && *spec->output_dir)
        rc = roots_one("spec.output_dir", spec->output_dir, export_root, "export root", 0, 0, err,
                       errlen);
    return rc;
}

int e2_spec_check_path_root(const char *field, const char *path, const char *data_roots, char *err,
                            size_t errlen) {
    if (!data_roots || !*data_roots) return 0;
    return roots_real(field, path, data_roots, "data roots", err, errlen);
}

uint32_t e2_spec_eval_stride(const E2__V1__JobSpec *spec, uint32_t window) {
    if (spec->eval && spec->eval->has_stride) return spec->eval->stride;
    return window / 2 > 0 ? window / 2 : 1;
}

char *e2_spec_to_json(const E2__V1__JobSpec *spec, int indent) {
    return e2_pbjson_to_string(&spec->base, indent);
}

/* --- validation ------------------------------------------------------------ */

typedef struct {
    char *err;
    size_t errlen;
} vctx;

static int vfail(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int vfail(vctx *v, const char *fmt, ...) {
    if (v->err && v->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->err, v->errlen, fmt, ap);
        va_end(ap);
    }
    return E2_ERR;
}

static int vu32(vctx *v, const char *path, uint32_t x, uint32_t lo, uint32_t hi) {
    if (x < lo || x > hi) return vfail(v, "%s must be in [%u, %u] (got %u)", path, lo, hi, x);
    return 0;
}

/* Real in [lo, hi], with either end open when lo_open / hi_open. */
static int vf64(vctx *v, const char *path, double x, double lo, int lo_open, double hi,
                int hi_open) {
    int bad = !isfinite(x) || (lo_open ? x <= lo : x < lo) || (hi_open ? x >= hi : x > hi);
    if (bad)
        return vfail(v, "%s must be in %c%g, %g%c (got %g)", path, lo_open ? '(' : '[', lo, hi,
                     hi_open ? ')' : ']', x);
    return 0;
}

static int vstr_one_of(vctx *v, const char *path, const char *s, const char *const *allowed) {
    for (size_t i = 0; allowed[i]; i++)
        if (strcmp(s, allowed[i]) == 0) return 0;
    char list[256];
    size_t k = 0;
    list[0] = '\0';
    for (size_t i = 0; allowed[i] && k < sizeof list; i++) {
        int n = snprintf(list + k, sizeof list - k, "%s\"%s\"", i ? ", " : "", allowed[i]);
        if (n < 0) break;
        k += (size_t)n;
    }
    return vfail(v, "%s must be one of %s (got \"%s\")", path, list, s);
}

static int vcharset(const char *s, const char *extra) {
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 strchr(extra, ch) != NULL;
        if (!ok) return 0;
    }
    return 1;
}

#define TRY(x)               \
    do {                     \
        int rc_ = (x);       \
        if (rc_) return rc_; \
    } while (0)

#define U32_MAX_ANY 4294967295u

int e2_spec_validate_config(const E2__V1__LlamaConfig *c, const char *path, char *err,
                            size_t errlen) {
    vctx v = { err, errlen };
    char p[256];
#define REQ(field) \
    if (!c->has_##field) return vfail(&v, "%s." #field " is required", path);
    REQ(hidden_size);
    REQ(num_hidden_layers);
    REQ(num_attention_heads);
    REQ(intermediate_size);
    REQ(vocab_size);
    REQ(max_position_embeddings);
#undef REQ
#define FP(field) (snprintf(p, sizeof p, "%s." #field, path), p)
    TRY(vu32(&v, FP(hidden_size), c->hidden_size, 1, 1u << 16));
    TRY(vu32(&v, FP(num_hidden_layers), c->num_hidden_layers, 1, 1024));
    TRY(vu32(&v, FP(num_attention_heads), c->num_attention_heads, 1, 1024));
    uint32_t kvh = c->has_num_key_value_heads ? c->num_key_value_heads : c->num_attention_heads;
    TRY(vu32(&v, FP(num_key_value_heads), kvh, 1, c->num_attention_heads));
    TRY(vu32(&v, FP(intermediate_size), c->intermediate_size, 1, 1u << 20));
    TRY(vu32(&v, FP(vocab_size), c->vocab_size, 2, 1u << 24));
    TRY(vu32(&v, FP(max_position_embeddings), c->max_position_embeddings, 2, 1u << 24));
    if (c->has_rms_norm_eps) TRY(vf64(&v, FP(rms_norm_eps), c->rms_norm_eps, 0, 1, 1, 1));
    if (c->has_rope_theta) TRY(vf64(&v, FP(rope_theta), c->rope_theta, 1, 0, 1e12, 0));
#undef FP
    if (c->hidden_size % c->num_attention_heads != 0)
        return vfail(&v, "%s.num_attention_heads (%u) must divide %s.hidden_size (%u)", path,
                     c->num_attention_heads, path, c->hidden_size);
    if (c->num_attention_heads % kvh != 0)
        return vfail(&v, "%s.num_key_value_heads (%u) must divide %s.num_attention_heads (%u)",
                     path, kvh, path, c->num_attention_heads);
    uint32_t hd = c->hidden_size / c->num_attention_heads;
    if (hd % 2 != 0)
        return vfail(
            &v,
            "%s: head dim hidden_size / num_attention_heads (%u / %u = %u) must be even for RoPE",
            path, c->hidden_size, c->num_attention_heads, hd);
    return 0;
}

static int vname(vctx *v, const char *name) {
    if (!name) return vfail(v, "spec.name is required ([A-Za-z0-9._-]{1,64})");
    size_t n = strlen(name);
    if (n < 1 || n > E2_SPEC_NAME_MAX || !vcharset(name, "._-"))
        return vfail(v, "spec.name must match [A-Za-z0-9._-]{1,64} (got \"%.80s\")", name);
    return 0;
}

static int vlabels(vctx *v, const E2__V1__JobSpec *s) {
    if (s->n_labels > E2_SPEC_LABELS_MAX)
        return vfail(v, "spec.labels must have at most %u entries (got %zu)", E2_SPEC_LABELS_MAX,
                     s->n_labels);
    for (size_t i = 0; i < s->n_labels; i++) {
        const char *k = s->labels[i]->key ? s->labels[i]->key : "";
        const char *val = s->labels[i]->value ? s->labels[i]->value : "";
        size_t n = strlen(k);
        if (n < 1 || n > E2_SPEC_LABEL_KEY_MAX || !vcharset(k, "._/-"))
            return vfail(v, "spec.labels key \"%.80s\" must match [A-Za-z0-9._/-]{1,%u}", k,
                         E2_SPEC_LABEL_KEY_MAX);
        if (strlen(val) > E2_SPEC_LABEL_VALUE_MAX)
            return vfail(v, "spec.labels.%s must be at most %u bytes (got %zu)", k,
                         E2_SPEC_LABEL_VALUE_MAX, strlen(val));
        for (const char *p = val; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return vfail(v, "spec.labels.%s must not contain control characters", k);
        /* A map sent on the wire may repeat a key; JSON and the store
         * cannot hold both, so neither entry is silently dropped. */
        for (size_t j = 0; j < i; j++)
            if (s->labels[j]->key && strcmp(s->labels[j]->key, k) == 0)
                return vfail(v, "spec.labels: duplicate key \"%s\"", k);
    }
    return 0;
}

static int vpaths(vctx *v, const char *path, char *const *list, size_t n) {
    if (n > E2_SPEC_SHARD_PATTERNS_MAX)
        return vfail(v, "%s must have at most %u entries (got %zu)", path,
                     E2_SPEC_SHARD_PATTERNS_MAX, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(list[i]);
        if (len == 0) return vfail(v, "%s[%zu] must be a non-empty path", path, i);
        if (len > 4095) return vfail(v, "%s[%zu] is longer than 4095 bytes", path, i);
    }
    return 0;
}

static int vmodel(vctx *v, const E2__V1__ModelSpec *m) {
    if (!m) return vfail(v, "spec.model is required (set model.hf_dir or model.config)");
    int has_dir = m->hf_dir && m->hf_dir[0];
    if (has_dir && m->config)
        return vfail(
            v, "spec.model.config must be empty when spec.model.hf_dir is set (the checkpoint's "
               "config.json is the architecture)");
    if (!has_dir && !m->config) return vfail(v, "spec.model needs hf_dir or config");
    if (m->hf_dir && strlen(m->hf_dir) > 4095)
        return vfail(v, "spec.model.hf_dir is longer than 4095 bytes");
    if (m->config)
        return e2_spec_validate_config(m->config, "spec.model.config", v->err, v->errlen);
    return 0;
}

static int vaugment(vctx *v, const E2__V1__AugmentSpec *a) {
    static const char *const grans[] = { "per_sample", "per_step", NULL };
    const char *methods[E2_POS_N + 1];
    for (int i = 0; i < E2_POS_N; i++) methods[i] = e2_pos_schemes[i]->name;
    methods[E2_POS_N] = NULL;
    TRY(vstr_one_of(v, "spec.augment.method", a->method, methods));
    TRY(vu32(v, "spec.augment.g_max", a->g_max, 1, E2_SPEC_G_MAX_LIMIT));
    if (a->n_g_weights != 0) {
        if (a->n_g_weights != a->g_max)
            return vfail(
                v,
                "spec.augment.g_weights must have g_max (%u) entries, one per g in 1..%u (got %zu)",
                a->g_max, a->g_max, a->n_g_weights);
        double sum = 0;
        for (size_t i = 0; i < a->n_g_weights; i++) {
            double w = a->g_weights[i];
            if (!isfinite(w) || w < 0)
                return vfail(v, "spec.augment.g_weights[%zu] must be finite and >= 0 (got %g)", i,
                             w);
            sum += w;
        }
        if (!(sum > 0) || !isfinite(sum))
            return vfail(v, "spec.augment.g_weights must have a positive finite sum (got %g)", sum);
    }
    TRY(vstr_one_of(v, "spec.augment.granularity", a->granularity, grans));
    TRY(vu32(v, "spec.augment.train_length", a->train_length, 2, 1u << 20));
    TRY(vu32(v, "spec.augment.n_sink", a->n_sink, 0, a->train_length - 1));
    TRY(vf64(v, "spec.augment.fixed_g", a->fixed_g, 1, 0, E2_SPEC_G_MAX_LIMIT, 0));
    if (a->has_original_window) {
        TRY(vu32(v, "spec.augment.original_window", a->original_window, 2, 1u << 24));
        double gmax = strcmp(a->method, "e2") == 0 ? (double)a->g_max : a->fixed_g;
        if (gmax * (double)a->original_window > (double)INT32_MAX)
            return vfail(
                v,
                "spec.augment: the largest interpolated window g * original_window (%g * %u) must "
                "be below 2^31",
                gmax, a->original_window);
    }
    const e2_pos_scheme *sch = e2_pos_scheme_find(a->method, NULL);
    if (sch && sch->check && sch->check(a, v->err, v->errlen) < 0) return E2_ERR;
    return 0;
}

static int vtrain(vctx *v, const E2__V1__TrainSpec *t, uint32_t num_workers) {
    static const char *const schedules[] = { "cosine", "linear", "constant", NULL };
    TRY(vu32(v, "spec.train.steps", t->steps, 1, 1000000000u));
    TRY(vu32(v, "spec.train.global_batch", t->global_batch, 1, 1u << 20));
    TRY(vu32(v, "spec.train.micro_batch", t->micro_batch, 1, 1u << 20));
    if (t->global_batch % num_workers != 0)
        return vfail(v, "spec.num_workers (%u) must divide spec.train.global_batch (%u)",
                     num_workers, t->global_batch);
    if (t->global_batch % t->micro_batch != 0)
        return vfail(v, "spec.train.micro_batch (%u) must divide spec.train.global_batch (%u)",
                     t->micro_batch, t->global_batch);
    /* The per-rank batch need not be a multiple of micro_batch: the
     * trainer takes its largest divisor not above micro_batch. */
    TRY(vf64(v, "spec.train.lr", t->lr, 0, 1, 1, 0));
    TRY(vf64(v, "spec.train.min_lr", t->min_lr, 0, 0, t->lr, 0));
    TRY(vu32(v, "spec.train.warmup_steps", t->warmup_steps, 0, t->steps));
    TRY(vstr_one_of(v, "spec.train.schedule", t->schedule, schedules));
    TRY(vf64(v, "spec.train.weight_decay", t->weight_decay, 0, 0, 10, 0));
    TRY(vf64(v, "spec.train.beta1", t->beta1, 0, 0, 1, 1));
    TRY(vf64(v, "spec.train.beta2", t->beta2, 0, 0, 1, 1));
    TRY(vf64(v, "spec.train.adam_eps", t->adam_eps, 0, 1, 1, 0));
    TRY(vf64(v, "spec.train.grad_clip", t->grad_clip, 0, 0, 1e6, 0));
    return 0;
}

static int vtokens(vctx *v, const char *path, const int32_t *ids, size_t n, uint32_t vocab) {
    uint32_t hi = vocab ? vocab - 1 : (uint32_t)INT32_MAX;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] > hi)
            return vfail(v, "%s[%zu] must be a token id in [0, %u] (got %d)", path, i, hi, ids[i]);
    return 0;
}

static int vcount(vctx *v, const char *path, size_t n, unsigned max) {
    if (n > max) return vfail(v, "%s must have at most %u entries (got %zu)", path, max, n);
    return 0;
}

static int veval(vctx *v, const E2__V1__EvalSpec *e, uint32_t vocab) {
    TRY(vcount(v, "spec.eval.windows", e->n_windows, E2_SPEC_EVAL_WINDOWS_MAX));
    TRY(vcount(v, "spec.eval.filler_tokens", e->n_filler_tokens, E2_SPEC_FILLER_TOKENS_MAX));
    TRY(vcount(v, "spec.eval.prompt_prefix_tokens", e->n_prompt_prefix_tokens,
               E2_SPEC_PROMPT_TOKENS_MAX));
    TRY(vcount(v, "spec.eval.prompt_suffix_tokens", e->n_prompt_suffix_tokens,
               E2_SPEC_PROMPT_TOKENS_MAX));
    uint32_t min_window = U32_MAX_ANY;
    char p[64];
    for (size_t i = 0; i < e->n_windows; i++) {
        snprintf(p, sizeof p, "spec.eval.windows[%zu]", i);
        TRY(vu32(v, p, e->windows[i], 2, 1u << 24));
        if (e->windows[i] < min_window) min_window = e->windows[i];
    }
    if (e->n_scales != 0 && e->n_scales != e->n_windows)
        return vfail(v,
                     "spec.eval.scales must be empty or have one entry per window (%zu, got %zu)",
                     e->n_windows, e->n_scales);
    for (size_t i = 0; i < e->n_scales; i++) {
        snprintf(p, sizeof p, "spec.eval.scales[%zu]", i);
        TRY(vf64(v, p, e->scales[i], 1, 0, E2_SPEC_G_MAX_LIMIT, 0));
    }
    if (e->has_stride)
        TRY(vu32(v, "spec.eval.stride", e->stride, 1, e->n_windows ? min_window : (1u << 24)));
    TRY(vu32(v, "spec.eval.max_tokens", e->max_tokens, 1, (uint32_t)INT32_MAX));
    if (e->has_score_from)
        TRY(vu32(v, "spec.eval.score_from", e->score_from, 0, (uint32_t)INT32_MAX));
    TRY(vu32(v, "spec.eval.passkey_trials", e->passkey_trials, 0, 100000));
    TRY(vu32(v, "spec.eval.passkey_digits", e->passkey_digits, 1, 18));
    TRY(vu32(v, "spec.eval.passkey_depth_buckets", e->passkey_depth_buckets, 1,
             e->passkey_trials > 0 && e->passkey_trials < E2_SPEC_PASSKEY_BUCKETS_LIMIT
                 ? e->passkey_trials
                 : E2_SPEC_PASSKEY_BUCKETS_LIMIT));
    TRY(vtokens(v, "spec.eval.filler_tokens", e->filler_tokens, e->n_filler_tokens, vocab));
    TRY(vtokens(v, "spec.eval.prompt_prefix_tokens", e->prompt_prefix_tokens,
                e->n_prompt_prefix_tokens, vocab));
    TRY(vtokens(v, "spec.eval.prompt_suffix_tokens", e->prompt_suffix_tokens,
                e->n_prompt_suffix_tokens, vocab));
    if (e->n_digit_tokens != 0 && e->n_digit_tokens != 10)
        return vfail(v,
                     "spec.eval.digit_tokens must be empty or hold ten ids for '0'..'9' (got %zu)",
                     e->n_digit_tokens);
    TRY(vtokens(v, "spec.eval.digit_tokens", e->digit_tokens, e->n_digit_tokens, vocab));
    if (e->rope_scheme && e->rope_scheme[0] && !e2_pos_scheme_find(e->rope_scheme, NULL))
        return vfail(v, "spec.eval.rope_scheme must be one of %s (got \"%s\")",
                     e2_pos_scheme_names(), e->rope_scheme);
    TRY(vtokens(v, "spec.eval.key_pre_tokens", e->key_pre_tokens, e->n_key_pre_tokens, vocab));
    TRY(vtokens(v, "spec.eval.key_post_tokens", e->key_post_tokens, e->n_key_post_tokens, vocab));
    return 0;
}

static int spec_validate_filled(const E2__V1__JobSpec *s, vctx *v) {
    static const char *const devices[] = { "cpu", "cuda", NULL };
    TRY(vname(v, s->name));
    TRY(vlabels(v, s));
    TRY(vstr_one_of(v, "spec.device", s->device, devices));
    TRY(vu32(v, "spec.num_workers", s->num_workers, 1, 1024));
    TRY(vu32(v, "spec.max_restarts", s->max_restarts, 0, 1000));
    TRY(vmodel(v, s->model));
    if (!s->data || s->data->n_train_shards == 0)
        return vfail(v, "spec.data.train_shards is required (token shard paths or glob patterns)");
    TRY(vpaths(v, "spec.data.train_shards", s->data->train_shards, s->data->n_train_shards));
    TRY(vpaths(v, "spec.data.eval_shards", s->data->eval_shards, s->data->n_eval_shards));
    TRY(vaugment(v, s->augment));
    TRY(vtrain(v, s->train, s->num_workers));
    TRY(vu32(v, "spec.min_workers", s->min_workers, 1, s->num_workers));
    if (s->train->global_batch % s->min_workers != 0)
        return vfail(v,
                     "spec.min_workers (%u) must divide spec.train.global_batch (%u): an elastic "
                     "restart splits the global batch evenly over its ranks",
                     s->min_workers, s->train->global_batch);
    TRY(vu32(v, "spec.checkpoint.every", s->checkpoint->every, 0, s->train->steps));
    TRY(vu32(v, "spec.checkpoint.keep_last", s->checkpoint->keep_last, 1, 1000));
    uint32_t vocab = s->model->config ? s->model->config->vocab_size : 0;
    TRY(veval(v, s->eval, vocab));
    if (s->output_dir[0] == '\0' || strlen(s->output_dir) > 4095)
        return vfail(v, "spec.output_dir must be a path of 1 to 4095 bytes");
    TRY(vu32(v, "spec.log_every", s->log_every, 1, 1000000000u));
    if (s->resume_from && (s->resume_from[0] != '/' || strlen(s->resume_from) > 4095))
        return vfail(v, "spec.resume_from must be an absolute path (of a committed step_N "
                        "checkpoint folder) of at most 4095 bytes");
    return 0;
}

int e2_spec_validate(const E2__V1__JobSpec *spec, char *err, size_t errlen) {
    vctx v = { err, errlen };
    /* Size first: everything after it walks the spec. */
    size_t bytes = protobuf_c_message_get_packed_size(&spec->base);
    if (bytes > E2_SPEC_MAX_BYTES)
        return vfail(
            &v,
            "spec is %zu bytes encoded, over the limit of %u bytes (%u KiB): shorten its lists "
            "(eval.filler_tokens, data shard patterns, labels)",
            bytes, E2_SPEC_MAX_BYTES, E2_SPEC_MAX_BYTES / 1024);
    /* Name first: the output_dir default is derived from it. */
    TRY(vname(&v, spec->name));
    E2__V1__JobSpec *s = e2_spec_copy(spec);
    if (!s) return e2_errf(err, errlen, "spec: out of memory");
    int rc = e2_spec_apply_defaults(s, err, errlen);
    if (rc == 0) rc = spec_validate_filled(s, &v);
    e2_spec_free(s);
    return rc;
}

/* --- files ----------------------------------------------------------------- */

/* Every pattern matches readable files (e2_shards_expand's check; the
 * list itself is not kept). */
static int spec_check_patterns(const char *path, char *const *pats, size_t n, char *err,
                               size_t errlen) {
    e2_shard_list l = { 0 };
    int rc = e2_shards_expand(pats, n, path, &l, err, errlen);
    e2_shards_free(&l);
    return rc;
}

int e2_spec_check_files(const E2__V1__JobSpec *spec, char *err, size_t errlen) {
    int rc;
    if (spec->data) {
        if ((rc = spec_check_patterns("spec.data.train_shards", spec->data->train_shards,
                                      spec->data->n_train_shards, err, errlen)))
            return rc;
        if ((rc = spec_check_patterns("spec.data.eval_shards", spec->data->eval_shards,
                                      spec->data->n_eval_shards, err, errlen)))
            return rc;
    }
    if (spec->model && spec->model->hf_dir && spec->model->hf_dir[0]) {
        size_t n = strlen(spec->model->hf_dir) + sizeof "/config.json";
        char *p = malloc(n);
        if (!p) return e2_errf(err, errlen, "spec: out of memory");
        snprintf(p, n, "%s/config.json", spec->model->hf_dir);
        rc = access(p, R_OK) == 0
                 ? 0
                 : e2_errf(err, errlen, "spec.model.hf_dir: \"%s\" is not readable", p);
        free(p);
        return rc;
    }
    return 0;
}
