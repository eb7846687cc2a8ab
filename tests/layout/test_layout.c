/* test_layout.c -- the model's layout table (common/layout): parameter
 * counts and offsets by hand, activation regions aligned, disjoint and
 * covering the allocation, the eval head's chunked logits, and the CUDA
 * backend's scratch. Run as `test_layout CASE`. */
#include <stdio.h>
#include <string.h>

#include "layout.h"

#include "../expect.h"

/* C=8, 2 layers, 2 heads of D=4, 1 kv head, F=16, V=32. */
static e2_layout_dims small_dims(int tied) {
    e2_layout_dims d = {
        .C = 8, .n_layer = 2, .H = 2, .KVH = 1, .D = 4, .F = 16, .V = 32, .tied = tied
    };
    return d;
}

/* wte 256, ln1 16, qkv 2*(2+2)*4*8 = 256, wo 128, ln2 16, gate|up 512,
 * down 256, lnf 8, head 256 (0 when tied); offsets are the running sums. */
static void case_params_hand_counts(void) {
    const size_t want[E2_LAYOUT_P_COUNT] = { 256, 16, 256, 128, 16, 512, 256, 8, 256 };
    e2_layout_dims d = small_dims(0);
    e2_layout_params p;
    e2_layout_params_fill(&p, &d);
    size_t off = 0;
    for (int i = 0; i < E2_LAYOUT_P_COUNT; i++) {
        EXPECT(p.numel[i] == want[i], "%s: %zu elements, want %zu", p.name[i], p.numel[i], want[i]);
        EXPECT(p.offset[i] == off, "%s at %zu, want %zu", p.name[i], p.offset[i], off);
        off += want[i];
    }
    EXPECT(p.n_params == 1704, "n_params %zu", p.n_params);
    d.tied = 1;
    e2_layout_params_fill(&p, &d);
    EXPECT(p.numel[E2_LAYOUT_P_HEAD] == 0 && p.n_params == 1704 - 256,
           "tied: head %zu, n_params %zu", p.numel[E2_LAYOUT_P_HEAD], p.n_params);
    /* AdamW m, v, and the fp32 master beside bf16 weights */
    EXPECT(e2_layout_optim_floats(0) == 2 && e2_layout_optim_floats(1) == 3, "optimizer floats");
}

/* Regions in table order, each on a 64-byte boundary, none overlapping the
 * next, the last ending at the allocation's size; the backward scratch is
 * empty without backward. */
static void check_regions(const e2_layout_region *r, int n, size_t total, const char *what) {
    size_t end = 0;
    for (int i = 0; i < n; i++) {
        EXPECT(r[i].offset % E2_LAYOUT_ALIGN == 0, "%s %s at %zu", what, r[i].name, r[i].offset);
        EXPECT(r[i].offset == end, "%s %s at %zu, previous ends at %zu", what, r[i].name,
               r[i].offset, end);
        EXPECT(r[i].bytes >= r[i].numel * r[i].esz && r[i].bytes % E2_LAYOUT_ALIGN == 0,
               "%s %s: %zu bytes for %zu x %zu", what, r[i].name, r[i].bytes, r[i].numel, r[i].esz);
        end = r[i].offset + r[i].bytes;
    }
    EXPECT(end == total, "%s: regions end at %zu, total %zu", what, end, total);
}

static void case_acts_regions(void) {
    e2_layout_dims d = { .C = 48, .n_layer = 3, .H = 6, .KVH = 2, .D = 8, .F = 72, .V = 100 };
    for (int backward = 0; backward <= 1; backward++) {
        for (int rec = 0; rec <= 1; rec++) {
            for (size_t esz = 2; esz <= 4; esz += 2) {
                e2_layout_acts a;
                e2_layout_acts_fill(&a, &d, 2, 37, esz, backward, rec);
                char what[64];
                snprintf(what, sizeof what, "backward %d recompute %d esz %zu", backward, rec, esz);
                check_regions(a.layer, E2_LAYOUT_L_COUNT, a.layer_bytes, what);
                check_regions(a.a, E2_LAYOUT_A_COUNT, a.bytes, what);
                EXPECT(a.N == 74 && a.nsets == (backward && !rec ? 3u : 1u), "%s: N %zu sets %zu",
                       what, a.N, a.nsets);
                EXPECT(a.a[E2_LAYOUT_A_LAYERS].bytes == a.nsets * a.layer_bytes, "%s: layer sets",
                       what);
                for (int i = E2_LAYOUT_A_DRES; i < E2_LAYOUT_A_COUNT; i++)
                    EXPECT((a.a[i].bytes > 0) == (backward != 0), "%s: %s has %zu bytes", what,
                           a.a[i].name, a.a[i].bytes);
            }
        }
    }
}

/* Training keeps every row's logits; evaluation one chunk of rows at most. */
static void case_eval_logits_chunked(void) {
    e2_layout_dims d = small_dims(0);
    e2_layout_acts a;
    e2_layout_acts_fill(&a, &d, 2, 300, 4, 1, 0);
    EXPECT(a.logit_rows == 600 && a.a[E2_LAYOUT_A_LOGITS].numel == 600 * 32, "train: %zu rows",
           a.logit_rows);
    e2_layout_acts_fill(&a, &d, 2, 300, 4, 0, 0);
    EXPECT(a.logit_rows == E2_LAYOUT_LOGIT_CHUNK && a.recompute && a.nsets == 1,
           "eval: %zu rows, recompute %d, %zu sets", a.logit_rows, a.recompute, a.nsets);
    e2_layout_acts_fill(&a, &d, 1, 100, 4, 0, 0);
    EXPECT(a.logit_rows == 100, "eval below a chunk: %zu rows", a.logit_rows);
}

/* cuBLASLt 32 MiB, column sums 64 x C fp32, token groups (3N+1) int32,
 * sumsq partials 1024 doubles. */
static void case_cuda_scratch(void) {
    EXPECT(e2_layout_cuda_scratch_bytes(4, 8) == (32u << 20) + 2048 + 52 + 8192, "N=4 C=8: %zu",
           e2_layout_cuda_scratch_bytes(4, 8));
    EXPECT(e2_layout_cuda_scratch_bytes(4096, 4096) ==
               (32u << 20) + 64u * 4096 * 4 + (3u * 4096 + 1) * 4 + 8192,
           "N=4096 C=4096: %zu", e2_layout_cuda_scratch_bytes(4096, 4096));
}

int main(int argc, char **argv) {
    static const expect_case cases[] = {
        { "params_hand_counts", case_params_hand_counts },
        { "acts_regions", case_acts_regions },
        { "eval_logits_chunked", case_eval_logits_chunked },
        { "cuda_scratch", case_cuda_scratch },
    };
    return expect_main("test_layout", cases, sizeof cases / sizeof cases[0], argc, argv);
}
