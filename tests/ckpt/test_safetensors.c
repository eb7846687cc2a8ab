/* test_safetensors.c -- e2w_ckpt safetensors reader/writer: exact dtype
 * conversions against independent references, write/read round trips,
 * sharded vs single-file equality and index.json, file layout, and corrupt
 * files rejected with one clear line naming the file and tensor. */
#include "ckpt_test.h"
#include "safetensors.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sys/stat.h>

static char err[E2_ERRLEN];

/* ---- independent references ---- */

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* Nearest bf16 by comparing distances in double; ties pick the even
 * mantissa; past the largest finite value the next step is 2^128 (inf). */
static uint16_t ref_bf16(float x) {
    uint32_t lo = f32_bits(x) & 0xffff0000u;
    uint32_t hi = lo + 0x10000u;
    double dx = fabs((double)x), dlo = fabs((double)bits_f32(lo));
    double dhi = (hi & 0x7fffffffu) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)bits_f32(hi));
    double a = dx - dlo, b = dhi - dx;
    if (a < b) return (uint16_t)(lo >> 16);
    if (a > b) return (uint16_t)(hi >> 16);
    return (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
}

/* binary16 value from its fields with ldexp. */
static double ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

static int test_bf16_rounding(void) {
    uint64_t s = 42;
    /* Constructed ties (low half exactly 0x8000), both parities, and
     * neighbours, across signs and exponents including subnormals and the
     * overflow boundary. */
    static const uint32_t hi16[] = { 0x3f80, 0x3f81, 0xbf80, 0xbf81, 0x0000, 0x0001,
                                     0x8001, 0x7f7f, 0xff7f, 0x7f7e, 0x4b00, 0x0080 };
    for (size_t i = 0; i < sizeof hi16 / sizeof hi16[0]; i++)
        for (uint32_t lo = 0x7ffe; lo <= 0x8002; lo++) {
            float x = bits_f32(hi16[i] << 16 | lo);
            CHECK(e2w_f32_to_bf16(x) == ref_bf16(x));
        }
    CHECK(e2w_f32_to_bf16(bits_f32(0x3f808000u)) == 0x3f80); /* tie, even */
    CHECK(e2w_f32_to_bf16(bits_f32(0x3f818000u)) == 0x3f82); /* tie, odd up */
    CHECK(e2w_f32_to_bf16(bits_f32(0x7f7fffffu)) == 0x7f80); /* to inf */
    CHECK(e2w_f32_to_bf16(INFINITY) == 0x7f80);
    CHECK(e2w_f32_to_bf16(-INFINITY) == 0xff80);
    uint16_t qn = e2w_f32_to_bf16(bits_f32(0x7f800001u)); /* signalling NaN */
    CHECK((qn & 0x7f80) == 0x7f80 && (qn & 0x7f) != 0);
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)ckpt_rand(&s);
        if ((u & 0x7fffffffu) > 0x7f800000u) continue; /* NaN */
        float x = bits_f32(u);
        if (e2w_f32_to_bf16(x) != ref_bf16(x)) {
            fprintf(stderr, "bf16(%08x): got %04x want %04x\n", u, e2w_f32_to_bf16(x), ref_bf16(x));
            return 1;
        }
    }
    /* bf16 -> f32 is exact: every finite bf16 survives the round trip. */
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7f80) == 0x7f80 && (h & 0x7f)) continue;
        CHECK(e2w_f32_to_bf16(e2w_bf16_to_f32((uint16_t)h)) == h);
    }
    return 0;
}

static int test_f16_exhaustive(void) {
    for (uint32_t h = 0; h < 65536; h++) {
        double want = ref_f16((uint16_t)h);
        float got = e2w_f16_to_f32((uint16_t)h);
        if (isnan(want)) {
            CHECK(isnan(got));
            continue;
        }
        if ((double)got != want || !signbit(got) != !signbit(want)) {
            fprintf(stderr, "f16 %04x: got %.9g want %.9g\n", h, got, want);
            return 1;
        }
    }
    return 0;
}

/* ---- round trips ---- */

enum { NT = 5 };
static float g_a[12], g_b[5], g_c[1], g_e[12];

/* Mixed dtypes and ranks: odd-length BF16 between F32 tensors, a scalar, an
 * empty tensor. */
static void make_tensors(e2w_st_out *t, e2w_dtype big) {
    uint64_t s = 7;
    for (int i = 0; i < 12; i++) g_a[i] = ckpt_randf(&s);
    for (int i = 0; i < 5; i++) g_b[i] = ckpt_randf(&s);
    for (int i = 0; i < 12; i++) g_e[i] = ckpt_randf(&s);
    g_c[0] = -3.25f;
    t[0] = (e2w_st_out){ "a", g_a, 2, { 3, 4 }, big };
    t[1] = (e2w_st_out){ "b", g_b, 1, { 5 }, E2W_DT_BF16 };
    t[2] = (e2w_st_out){ "c", g_c, 0, { 0 }, E2W_DT_F32 };
    t[3] = (e2w_st_out){ "d", NULL, 2, { 0, 3 }, big };
    t[4] = (e2w_st_out){ "e", g_e, 3, { 2, 3, 2 }, big };
}

/* Compares every tensor of t with what st returns, through the stored
 * dtype's rounding. */
static int compare_all(const e2w_st *st, const e2w_st_out *t, size_t n) {
    CHECK(e2w_st_count(st) == n);
    float buf[64];
    for (size_t i = 0; i < n; i++) {
        const e2w_st_tensor_info *x = e2w_st_find(st, t[i].name);
        CHECK(x != NULL);
        CHECK(x->dtype == t[i].dtype && x->ndim == t[i].ndim);
        uint64_t numel = 1;
        for (int d = 0; d < x->ndim; d++) {
            CHECK(x->shape[d] == t[i].shape[d]);
            numel *= (uint64_t)x->shape[d];
        }
        CHECK(x->numel == numel && numel <= 64);
        CHECK_OK(e2w_st_read_f32(st, t[i].name, t[i].ndim, t[i].shape, buf, err, sizeof err));
        for (uint64_t k = 0; k < numel; k++) {
            float want = t[i].dtype == E2W_DT_F32
                             ? t[i].data[k]
                             : bits_f32((uint32_t)ref_bf16(t[i].data[k]) << 16);
            CHECK(f32_bits(buf[k]) == f32_bits(want));
        }
    }
    return 0;
}

static int roundtrip(e2w_dtype big, const char *tag) {
    e2w_st_out t[NT];
    make_tensors(t, big);
    const char *dir = ckpt_scratch(tag);
    int ns = 0;
    CHECK_OK(e2w_st_write_dir(dir, t, NT, 0, &ns, err, sizeof err));
    CHECK(ns == 1);
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    int rc = compare_all(st, t, NT);
    /* Listing is sorted by name. */
    for (size_t i = 1; rc == 0 && i < e2w_st_count(st); i++)
        if (strcmp(e2w_st_tensor(st, i - 1)->name, e2w_st_tensor(st, i)->name) >= 0) rc = 1;
    e2w_st_close(st);
    return rc;
}

static int test_roundtrip_f32(void) {
    return roundtrip(E2W_DT_F32, "rt_f32");
}
static int test_roundtrip_bf16(void) {
    return roundtrip(E2W_DT_BF16, "rt_bf16");
}

/* Data section 8-aligned, each tensor at a multiple of its element size,
 * __metadata__.format == "pt", offsets contiguous. */
static int test_layout(void) {
    e2w_st_out t[NT];
    make_tensors(t, E2W_DT_F32);
    char path[512];
    snprintf(path, sizeof path, "%s/x.safetensors", ckpt_scratch("layout"));
    CHECK_OK(e2w_st_write_file(path, t, NT, err, sizeof err));
    char *buf;
    size_t len;
    CHECK_OK(e2_read_file(path, 1 << 20, &buf, &len, err, sizeof err));
    uint64_t n;
    memcpy(&n, buf, 8);
    CHECK((8 + n) % 8 == 0 && 8 + n <= len);
    json_t *h = json_loadb(buf + 8, n, 0, NULL);
    free(buf);
    CHECK(h != NULL);
    CHECK(strcmp(json_string_value(json_object_get(json_object_get(h, "__metadata__"), "format")),
                 "pt") == 0);
    uint64_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(h, k, v) {
        if (strcmp(k, "__metadata__") == 0) continue;
        json_t *off = json_object_get(v, "data_offsets");
        uint64_t b = (uint64_t)json_integer_value(json_array_get(off, 0));
        uint64_t e = (uint64_t)json_integer_value(json_array_get(off, 1));
        const char *dt = json_string_value(json_object_get(v, "dtype"));
        CHECK(b % (strcmp(dt, "F32") == 0 ? 4 : 2) == 0);
        total += e - b;
    }
    json_decref(h);
    CHECK(8 + n + total == len);
    return 0;
}

/* ---- sharding ---- */

enum { NS = 9 };
static float g_sh[NS][40];

static void make_many(e2w_st_out *t) {
    static char names[NS][32];
    uint64_t s = 99;
    for (int i = 0; i < NS; i++) {
        for (int k = 0; k < 40; k++) g_sh[i][k] = ckpt_randf(&s);
        snprintf(names[i], sizeof names[i], "layer.%d.w", NS - i); /* unsorted */
        int rows = 1 + i % 4;
        t[i] = (e2w_st_out){
            names[i], g_sh[i], 2, { rows, 10 }, i % 3 == 0 ? E2W_DT_BF16 : E2W_DT_F32
        };
    }
}

static uint64_t out_bytes(const e2w_st_out *t) {
    uint64_t n = e2w_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (uint64_t)t->shape[d];
    return n;
}

/* index.json as transformers writes it: metadata.total_size = sum of tensor
 * bytes; weight_map lists every tensor once, sorted by name, each pointing
 * at a shard model-%05d-of-%05d.safetensors that holds it; each shard stays
 * within max bytes unless it holds a single tensor. */
static int check_index(const char *dir, const e2w_st_out *t, size_t n, int ns, uint64_t max) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    CHECK(root != NULL);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += out_bytes(&t[i]);
    json_t *ts = json_object_get(json_object_get(root, "metadata"), "total_size");
    CHECK(json_is_integer(ts) && (uint64_t)json_integer_value(ts) == total);
    json_t *wm = json_object_get(root, "weight_map");
    CHECK(json_object_size(wm) == n);
    const char *prev = "", *k;
    json_t *v;
    json_object_foreach(wm, k, v) {
        CHECK(strcmp(prev, k) < 0);
        prev = k;
        int i = 0, m = 0, used = 0;
        const char *shard = json_string_value(v);
        CHECK(sscanf(shard, "model-%5d-of-%5d.safetensors%n", &i, &m, &used) == 2);
        CHECK(used == 32 && m == ns && i >= 1 && i <= ns);
        snprintf(path, sizeof path, "%s/%s", dir, shard);
        e2w_st *st;
        CHECK_OK(e2w_st_open(&st, path, err, sizeof err));
        CHECK(e2w_st_find(st, k) != NULL);
        e2w_st_close(st);
    }
    json_decref(root);
    for (int s = 1; s <= ns; s++) {
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, s, ns);
        e2w_st *st;
        CHECK_OK(e2w_st_open(&st, path, err, sizeof err));
        uint64_t bytes = 0;
        for (size_t i = 0; i < e2w_st_count(st); i++) {
            const e2w_st_tensor_info *x = e2w_st_tensor(st, i);
            bytes += x->numel * e2w_dtype_size(x->dtype);
        }
        CHECK(bytes <= max || e2w_st_count(st) == 1);
        e2w_st_close(st);
    }
    return 0;
}

static int test_sharded_equals_single(void) {
    e2w_st_out t[NS];
    make_many(t);
    char one[320], many[320];
    snprintf(one, sizeof one, "%s/one", ckpt_scratch("shard"));
    snprintf(many, sizeof many, "%s/many", ckpt_scratch("shard"));
    int ns = 0;
    CHECK_OK(e2w_st_write_dir(one, t, NS, 0, &ns, err, sizeof err));
    CHECK(ns == 1);
    CHECK_OK(e2w_st_write_dir(many, t, NS, 200, &ns, err, sizeof err));
    CHECK(ns > 2);
    e2w_st *a, *b;
    CHECK_OK(e2w_st_open(&a, one, err, sizeof err));
    CHECK_OK(e2w_st_open(&b, many, err, sizeof err));
    CHECK(e2w_st_count(a) == e2w_st_count(b));
    float x[40], y[40];
    for (size_t i = 0; i < e2w_st_count(a); i++) {
        const e2w_st_tensor_info *ta = e2w_st_tensor(a, i);
        const e2w_st_tensor_info *tb = e2w_st_tensor(b, i);
        CHECK(strcmp(ta->name, tb->name) == 0 && ta->dtype == tb->dtype);
        CHECK_OK(e2w_st_read_f32(a, ta->name, ta->ndim, ta->shape, x, err, sizeof err));
        CHECK_OK(e2w_st_read_f32(b, tb->name, tb->ndim, tb->shape, y, err, sizeof err));
        CHECK(memcmp(x, y, ta->numel * 4) == 0);
    }
    e2w_st_close(a);
    e2w_st_close(b);
    /* The index file itself opens the same checkpoint. */
    char index[400];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", many);
    CHECK_OK(e2w_st_open(&b, index, err, sizeof err));
    CHECK(e2w_st_count(b) == NS);
    e2w_st_close(b);
    return check_index(many, t, NS, ns, 200);
}

/* Rewriting a directory in the other layout removes the stale files, so a
 * reader (which prefers the index) cannot load old weights. */
static int test_rewrite_removes_stale(void) {
    e2w_st_out t[NS];
    make_many(t);
    char dir[320], path[512];
    snprintf(dir, sizeof dir, "%s/d", ckpt_scratch("stale"));
    int ns = 0;
    CHECK_OK(e2w_st_write_dir(dir, t, NS, 100, &ns, err, sizeof err));
    CHECK(ns > 1);
    int ns_before = ns;
    CHECK_OK(e2w_st_write_dir(dir, t, NS, 0, &ns, err, sizeof err));
    CHECK(ns == 1);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    CHECK(access(path, F_OK) != 0);
    snprintf(path, sizeof path, "%s/model-00001-of-%05d.safetensors", dir, ns_before);
    CHECK(access(path, F_OK) != 0);
    CHECK_OK(e2w_st_write_dir(dir, t, NS, 200, &ns, err, sizeof err));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(access(path, F_OK) != 0);
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK(e2w_st_count(st) == NS);
    e2w_st_close(st);
    return 0;
}

/* With both layouts present, model.safetensors wins, as in transformers. */
static int test_single_file_preferred(void) {
    e2w_st_out t[NS];
    make_many(t);
    char dir[320], path[512];
    snprintf(dir, sizeof dir, "%s/d", ckpt_scratch("prefer"));
    CHECK_OK(e2w_st_write_dir(dir, t, NS, 100, NULL, err, sizeof err));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(e2w_st_write_file(path, t, 2, err, sizeof err));
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK(e2w_st_count(st) == 2);
    e2w_st_close(st);
    return 0;
}

/* ---- hand-made files ---- */

/* Writes path: 8-byte length field nfield, header text, then dlen data
 * bytes (counting pattern). */
static void raw_file(const char *path, uint64_t nfield, const char *hdr, const void *data,
                     size_t dlen) {
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    fwrite(&nfield, 8, 1, f);
    fwrite(hdr, 1, strlen(hdr), f);
    for (size_t i = 0; i < dlen; i++) {
        unsigned char c = data ? ((const unsigned char *)data)[i] : (unsigned char)i;
        fputc(c, f);
    }
    fclose(f);
}

static int test_f16_read(void) {
    const char *dir = ckpt_scratch("f16");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    const uint16_t h[6] = { 0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x8000 };
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],"
                      "\"data_offsets\":[0,12]},\"__metadata__\":{\"k\":\"v\"}}";
    raw_file(path, strlen(hdr), hdr, h, sizeof h);
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    const e2w_st_tensor_info *x = e2w_st_find(st, "h");
    CHECK(x != NULL && x->dtype == E2W_DT_F16 && x->numel == 6);
    float out[6];
    CHECK_OK(e2w_st_read_f32(st, "h", 2, (int64_t[]){ 2, 3 }, out, err, sizeof err));
    e2w_st_close(st);
    CHECK(out[0] == 1.0f && out[1] == -2.0f);
    CHECK(out[2] == 0.333251953125f);         /* 0x3555 */
    CHECK(out[3] == 5.9604644775390625e-08f); /* 2^-24, smallest subnormal */
    CHECK(out[4] == 65504.0f);                /* largest finite */
    CHECK(out[5] == 0.0f && signbit(out[5])); /* -0 */
    return 0;
}

/* Writes dir/model.safetensors from hdr + dlen data bytes, opens dir and
 * expects one error line naming the file and containing want. */
static int expect_reject(const char *tag, int64_t nfield, const char *hdr, size_t dlen,
                         const char *want) {
    const char *dir = ckpt_scratch(tag);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    raw_file(path, nfield < 0 ? strlen(hdr) : (uint64_t)nfield, hdr, NULL, dlen);
    e2w_st *st = NULL;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err), want);
    CHECK(st == NULL);
    CHECK(strstr(err, "model.safetensors") != NULL);
    return 0;
}

#define T_F32_2(name, b, e) \
    "\"" name "\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[" #b "," #e "]}"

static int test_reject_truncated_file(void) {
    const char *dir = ckpt_scratch("trunc");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    fwrite("\x10\0\0", 1, 3, f);
    fclose(f);
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err), "too short");
    return 0;
}
static int test_reject_header_past_eof(void) {
    return expect_reject("past", 1000, "{}", 0, "runs past the end of the file");
}
static int test_reject_bad_json(void) {
    return expect_reject("json", -1, "{\"a\": {\"dtype\": \"F32\",", 0, "not valid JSON");
}
static int test_reject_not_object(void) {
    return expect_reject("notobj", -1, "[1, 2]", 0, "not a JSON object");
}
static int test_reject_duplicate_key(void) {
    return expect_reject("dup", -1, "{" T_F32_2("a", 0, 8) "," T_F32_2("a", 8, 16) "}", 16,
                         "not valid JSON");
}
static int test_reject_unknown_dtype(void) {
    return expect_reject("dtype", -1,
                         "{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],"
                         "\"data_offsets\":[0,1]}}",
                         1, "tensor a: unknown dtype 'Q7'");
}
static int test_reject_unsupported_dtype(void) {
    return expect_reject("i64", -1,
                         "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],"
                         "\"data_offsets\":[0,8]}}",
                         8, "tensor a: dtype I64 is not supported");
}
static int test_reject_offsets_out_of_range(void) {
    return expect_reject("range", -1, "{" T_F32_2("a", 0, 8) "}", 4,
                         "tensor a: data_offsets [0, 8] run past the data section");
}
static int test_reject_overlapping_offsets(void) {
    return expect_reject("overlap", -1, "{" T_F32_2("a", 0, 8) "," T_F32_2("b", 4, 12) "}", 12,
                         "tensors a and b overlap");
}
static int test_reject_gap(void) {
    return expect_reject("gap", -1, "{" T_F32_2("a", 0, 8) "," T_F32_2("b", 12, 20) "}", 20,
                         "4 unused bytes before tensor b");
}
static int test_reject_trailing_bytes(void) {
    return expect_reject("trail", -1, "{" T_F32_2("a", 0, 8) "}", 12,
                         "4 bytes after the last tensor");
}
static int test_reject_shape_size_mismatch(void) {
    return expect_reject("size", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
                         "\"data_offsets\":[0,8]}}",
                         8,
                         "tensor a: shape [3] of F32 needs 12 bytes but "
                         "data_offsets span 8");
}
static int test_reject_negative_dim(void) {
    return expect_reject("neg", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],"
                         "\"data_offsets\":[0,8]}}",
                         8, "tensor a: shape[0]");
}
static int test_reject_shape_overflow(void) {
    return expect_reject("ovf", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":"
                         "[4294967296,4294967296],\"data_offsets\":[0,8]}}",
                         8, "tensor a: shape overflows");
}
static int test_reject_begin_after_end(void) {
    return expect_reject("order", -1, "{" T_F32_2("a", 8, 0) "}", 8, "begin <= end");
}
static int test_reject_extra_field(void) {
    return expect_reject("extra", -1,
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],"
                         "\"data_offsets\":[0,8],\"foo\":1}}",
                         8, "tensor a: unexpected field 'foo'");
}
static int test_reject_missing_dtype(void) {
    return expect_reject("nodtype", -1,
                         "{\"a\":{\"shape\":[2],"
                         "\"data_offsets\":[0,8]}}",
                         8, "tensor a: missing or non-string dtype");
}
static int test_reject_bad_metadata(void) {
    return expect_reject("meta", -1, "{" T_F32_2("a", 0, 8) ",\"__metadata__\":{\"x\":1}}", 8,
                         "__metadata__.x is not a string");
}

/* ---- sharded checkpoints gone wrong ---- */

static int write_index(const char *dir, const char *json) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    return e2_write_file_atomic(path, json, strlen(json), err, sizeof err);
}

/* dir/s1.safetensors with tensors a, b; dir/s2.safetensors with c. */
static const char *two_shards(const char *tag) {
    const char *dir = ckpt_scratch(tag);
    char path[512];
    snprintf(path, sizeof path, "%s/s1.safetensors", dir);
    const char *h1 = "{" T_F32_2("a", 0, 8) "," T_F32_2("b", 8, 16) "}";
    raw_file(path, strlen(h1), h1, NULL, 16);
    snprintf(path, sizeof path, "%s/s2.safetensors", dir);
    const char *h2 = "{" T_F32_2("c", 0, 8) "}";
    raw_file(path, strlen(h2), h2, NULL, 8);
    return dir;
}

static int test_index_hand_made_ok(void) {
    const char *dir = two_shards("idx_ok");
    CHECK_OK(write_index(dir, "{\"metadata\":{\"total_size\":24},\"weight_map\":"
                              "{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\","
                              "\"c\":\"s2.safetensors\"}}"));
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    CHECK(e2w_st_count(st) == 3);
    CHECK(strstr(e2w_st_find(st, "c")->file, "s2.safetensors") != NULL);
    float v[2];
    CHECK_OK(e2w_st_read_f32(st, "b", 1, (int64_t[]){ 2 }, v, err, sizeof err));
    uint8_t want[8] = { 8, 9, 10, 11, 12, 13, 14, 15 }; /* raw_file's pattern */
    CHECK(memcmp(v, want, 8) == 0);
    e2w_st_close(st);
    return 0;
}
static int test_reject_missing_shard(void) {
    e2w_st_out t[NS];
    make_many(t);
    char dir[320], path[512];
    snprintf(dir, sizeof dir, "%s/d", ckpt_scratch("noshard"));
    int ns = 0;
    CHECK_OK(e2w_st_write_dir(dir, t, NS, 200, &ns, err, sizeof err));
    snprintf(path, sizeof path, "%s/model-00002-of-%05d.safetensors", dir, ns);
    CHECK(unlink(path) == 0);
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err), "No such file");
    CHECK(strstr(err, path) != NULL);
    return 0;
}
static int test_reject_index_missing_tensor(void) {
    const char *dir = two_shards("idx_ghost");
    CHECK_OK(write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\","
                              "\"b\":\"s1.safetensors\",\"c\":\"s2.safetensors\","
                              "\"ghost\":\"s2.safetensors\"}}"));
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err),
              "weight_map lists tensor ghost in s2.safetensors");
    return 0;
}
static int test_reject_index_unlisted_tensor(void) {
    const char *dir = two_shards("idx_unlisted");
    CHECK_OK(write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\","
                              "\"c\":\"s2.safetensors\"}}"));
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err), "shard s1.safetensors holds tensor b");
    return 0;
}
static int test_reject_index_wrong_shard(void) {
    const char *dir = two_shards("idx_wrong");
    CHECK_OK(write_index(dir, "{\"weight_map\":{\"a\":\"s1.safetensors\","
                              "\"b\":\"s2.safetensors\",\"c\":\"s2.safetensors\"}}"));
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err),
              "tensor b is in s1.safetensors but weight_map says s2.safetensors");
    return 0;
}
static int test_reject_index_path_escape(void) {
    const char *dir = two_shards("idx_escape");
    CHECK_OK(write_index(dir, "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}"));
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err),
              "weight_map[\"a\"] must be the file name of a shard");
    return 0;
}
static int test_reject_index_bad_json(void) {
    const char *dir = two_shards("idx_json");
    CHECK_OK(write_index(dir, "{\"weight_map\": {"));
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, dir, err, sizeof err), "not valid JSON");
    CHECK(strstr(err, "model.safetensors.index.json") != NULL);
    return 0;
}
static int test_reject_empty_dir(void) {
    e2w_st *st;
    CHECK_ERR(e2w_st_open(&st, ckpt_scratch("empty"), err, sizeof err),
              "no model.safetensors or model.safetensors.index.json");
    return 0;
}

/* ---- reads and writes the caller gets wrong ---- */

static int test_read_shape_mismatch(void) {
    e2w_st_out t[NT];
    make_tensors(t, E2W_DT_F32);
    const char *dir = ckpt_scratch("rshape");
    CHECK_OK(e2w_st_write_dir(dir, t, NT, 0, NULL, err, sizeof err));
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    float buf[12];
    int rc = e2w_st_read_f32(st, "a", 2, (int64_t[]){ 4, 3 }, buf, err, sizeof err);
    int rc2 = e2w_st_read_f32(st, "zz", 1, (int64_t[]){ 1 }, buf, NULL, 0);
    e2w_st_close(st);
    CHECK(rc < 0 && rc2 < 0);
    CHECK(strstr(err, "tensor a has shape [3, 4], expected [4, 3]") != NULL);
    CHECK(strstr(err, "model.safetensors") != NULL);
    return 0;
}
static int test_read_missing_tensor(void) {
    e2w_st_out t[NT];
    make_tensors(t, E2W_DT_F32);
    const char *dir = ckpt_scratch("rmiss");
    CHECK_OK(e2w_st_write_dir(dir, t, NT, 0, NULL, err, sizeof err));
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    float buf[1];
    err[0] = '\0';
    int rc = e2w_st_read_f32(st, "zz", 1, (int64_t[]){ 1 }, buf, err, sizeof err);
    e2w_st_close(st);
    CHECK(rc < 0 && strstr(err, "no tensor named zz") != NULL);
    return 0;
}
static int test_write_rejects_bad_input(void) {
    float x[2] = { 1, 2 };
    e2w_st_out t[2] = { { "w", x, 1, { 2 }, E2W_DT_F32 }, { "w", x, 1, { 2 }, E2W_DT_F32 } };
    char path[512];
    snprintf(path, sizeof path, "%s/x.safetensors", ckpt_scratch("wbad"));
    CHECK_ERR(e2w_st_write_file(path, t, 2, err, sizeof err), "tensor name w given twice");
    t[1].name = "v";
    t[1].dtype = E2W_DT_F16;
    CHECK_ERR(e2w_st_write_file(path, t, 2, err, sizeof err),
              "tensor v: e2 writes F32 or BF16, not F16");
    CHECK(access(path, F_OK) != 0);
    return 0;
}

/* 3000 random corruptions of a valid file (bytes of the length field and
 * header flipped or replaced, the file cut short): open either fails with a
 * message or succeeds with tensors that all read back, and never crashes or
 * reads out of bounds (the ASan build checks the latter). */
static int test_fuzz_mutations(void) {
    e2w_st_out t[NT];
    make_tensors(t, E2W_DT_BF16);
    const char *dir = ckpt_scratch("fuzz");
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(e2w_st_write_file(path, t, NT, err, sizeof err));
    char *good;
    size_t len;
    CHECK_OK(e2_read_file(path, 1 << 20, &good, &len, err, sizeof err));
    uint64_t hlen;
    memcpy(&hlen, good, 8);
    char *buf = malloc(len);
    CHECK(buf != NULL);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    uint64_t s = 2024;
    int opened = 0, rejected = 0;
    float out[64];
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, good, len);
        size_t n = len;
        int kind = (int)(ckpt_rand(&s) % 4);
        int flips = 1 + (int)(ckpt_rand(&s) % 3);
        for (int f = 0; f < flips && kind < 3; f++) {
            size_t at = (size_t)(ckpt_rand(&s) % (8 + hlen));
            if (kind == 0)
                buf[at] ^= (char)(1u << (ckpt_rand(&s) % 8));
            else if (kind == 1)
                buf[at] = "{}[],:\"0123456789-eE. "[ckpt_rand(&s) % 23];
            else
                buf[at] = (char)ckpt_rand(&s);
        }
        if (kind == 3) n = (size_t)(ckpt_rand(&s) % len);
        /* Rewritten in place: truncate-and-close would make ext4 flush. */
        CHECK(pwrite(fd, buf, n, 0) == (ssize_t)n && ftruncate(fd, (off_t)n) == 0);
        e2w_st *st = NULL;
        err[0] = '\0';
        if (e2w_st_open(&st, dir, err, sizeof err) < 0) {
            CHECK(st == NULL && err[0] != '\0' && strchr(err, '\n') == NULL);
            rejected++;
            continue;
        }
        opened++;
        for (size_t i = 0; i < e2w_st_count(st); i++) {
            const e2w_st_tensor_info *x = e2w_st_tensor(st, i);
            if (x->numel <= 64)
                CHECK_OK(e2w_st_read_f32(st, x->name, x->ndim, x->shape, out, err, sizeof err));
        }
        e2w_st_close(st);
    }
    close(fd);
    free(buf);
    free(good);
    printf("fuzz: %d opened, %d rejected\n", opened, rejected);
    CHECK(rejected > 1000 && opened > 0);
    return 0;
}

/* A NaN, +Inf or -Inf weight, in any stored dtype, is an error naming the
 * tensor and the element; finite extremes read. */
static int expect_nonfinite(const char *tag, const char *dtype, const void *data, size_t bytes,
                            const char *want) {
    const char *dir = ckpt_scratch(tag);
    char path[512], hdr[160];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t n = bytes / (strcmp(dtype, "F32") == 0 ? 4 : 2);
    snprintf(hdr, sizeof hdr,
             "{\"w\":{\"dtype\":\"%s\",\"shape\":[%zu],"
             "\"data_offsets\":[0,%zu]}}",
             dtype, n, bytes);
    raw_file(path, strlen(hdr), hdr, data, bytes);
    e2w_st *st;
    CHECK_OK(e2w_st_open(&st, dir, err, sizeof err));
    float out[8];
    int64_t shape[1] = { (int64_t)n };
    err[0] = '\0';
    int rc = e2w_st_read_f32(st, "w", 1, shape, out, err, sizeof err);
    e2w_st_close(st);
    if (want == NULL) {
        CHECK(rc == 0);
        return 0;
    }
    CHECK(rc < 0);
    if (strstr(err, want) == NULL || strstr(err, "tensor w") == NULL ||
        strstr(err, "model.safetensors") == NULL) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err, want);
        return 1;
    }
    return 0;
}

static int test_reject_nonfinite_weight(void) {
    const float f_nan[3] = { 1.0f, NAN, 2.0f };
    const float f_inf[2] = { 0.5f, INFINITY };
    const float f_ninf[1] = { -INFINITY };
    const float f_max[2] = { 3.4028234663852886e38f, -3.4028234663852886e38f };
    const uint16_t b_nan[2] = { 0x3f80, 0x7fc0 };
    const uint16_t h_inf[3] = { 0x3c00, 0x3c00, 0x7c00 };
    const uint16_t h_max[1] = { 0x7bff };
    CHECK(expect_nonfinite("nf_f32", "F32", f_nan, sizeof f_nan, "NaN at element 1") == 0);
    CHECK(expect_nonfinite("nf_inf", "F32", f_inf, sizeof f_inf, "Inf at element 1") == 0);
    CHECK(expect_nonfinite("nf_ninf", "F32", f_ninf, sizeof f_ninf, "-Inf at element 0") == 0);
    CHECK(expect_nonfinite("nf_bf16", "BF16", b_nan, sizeof b_nan, "NaN at element 1") == 0);
    CHECK(expect_nonfinite("nf_f16", "F16", h_inf, sizeof h_inf, "Inf at element 2") == 0);
    CHECK(expect_nonfinite("nf_max", "F32", f_max, sizeof f_max, NULL) == 0);
    CHECK(expect_nonfinite("nf_hmax", "F16", h_max, sizeof h_max, NULL) == 0);
    return 0;
}

static const ckpt_case cases[] = {
    { "bf16_rounding", test_bf16_rounding },
    { "f16_exhaustive", test_f16_exhaustive },
    { "roundtrip_f32", test_roundtrip_f32 },
    { "roundtrip_bf16", test_roundtrip_bf16 },
    { "layout", test_layout },
    { "sharded_equals_single", test_sharded_equals_single },
    { "rewrite_removes_stale", test_rewrite_removes_stale },
    { "single_file_preferred", test_single_file_preferred },
    { "f16_read", test_f16_read },
    { "reject_truncated_file", test_reject_truncated_file },
    { "reject_header_past_eof", test_reject_header_past_eof },
    { "reject_bad_json", test_reject_bad_json },
    { "reject_not_object", test_reject_not_object },
    { "reject_duplicate_key", test_reject_duplicate_key },
    { "reject_unknown_dtype", test_reject_unknown_dtype },
    { "reject_unsupported_dtype", test_reject_unsupported_dtype },
    { "reject_offsets_out_of_range", test_reject_offsets_out_of_range },
    { "reject_overlapping_offsets", test_reject_overlapping_offsets },
    { "reject_gap", test_reject_gap },
    { "reject_trailing_bytes", test_reject_trailing_bytes },
    { "reject_shape_size_mismatch", test_reject_shape_size_mismatch },
    { "reject_negative_dim", test_reject_negative_dim },
    { "reject_shape_overflow", test_reject_shape_overflow },
    { "reject_begin_after_end", test_reject_begin_after_end },
    { "reject_extra_field", test_reject_extra_field },
    { "reject_missing_dtype", test_reject_missing_dtype },
    { "reject_bad_metadata", test_reject_bad_metadata },
    { "index_hand_made_ok", test_index_hand_made_ok },
    { "reject_missing_shard", test_reject_missing_shard },
    { "reject_index_missing_tensor", test_reject_index_missing_tensor },
    { "reject_index_unlisted_tensor", test_reject_index_unlisted_tensor },
    { "reject_index_wrong_shard", test_reject_index_wrong_shard },
    { "reject_index_path_escape", test_reject_index_path_escape },
    { "reject_index_bad_json", test_reject_index_bad_json },
    { "reject_empty_dir", test_reject_empty_dir },
    { "read_shape_mismatch", test_read_shape_mismatch },
    { "read_missing_tensor", test_read_missing_tensor },
    { "write_rejects_bad_input", test_write_rejects_bad_input },
    { "fuzz_mutations", test_fuzz_mutations },
    { "reject_nonfinite_weight", test_reject_nonfinite_weight },
};

int main(int argc, char **argv) {
    return ckpt_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
