/* scheme_pose: PoSE, positional skip-wise training (Zhu et al. 2023).
 * The R-token training window is split into pose_chunks chunks; chunk c
 * gets a skip bias u_c added to its positions, with u_0 uniform in
 * {0..Lt - R} and u_c uniform in {u_(c-1)..Lt - R} (non-decreasing;
 * Lt = pose_target_length), so the largest position is at most Lt - 1 and
 * relative distances up to Lt - 1 occur while training on R tokens. The
 * chunk boundaries are pose_chunks - 1 cut points uniform in {1..R-1},
 * sorted (a chunk may be empty). No interpolation: g = 1, t = 0; the first
 * n_sink tokens keep offset 0 as in every scheme (PoSE itself has none:
 * n_sink = 0). Draws: the cuts, then the skips, from one stream keyed by
 * (seed, step, unit).
 * Inference at L': g = 1 (positions as trained, up to Lt). Export:
 * rope_scaling null. */
#include "scheme.h"
#include "base.h"
#include "rng.h"

static void pose_draw(const e2_pos_sampler *s, uint64_t seed, uint64_t step, uint64_t unit,
                      e2_pos_draw *d) {
    const e2_pos_config *c = &s->cfg;
    uint64_t key = e2w_rng_key(E2W_RNG_POSE, seed, step, unit), ctr = 0;
    int n = (int)c->pose_chunks;
    int32_t cut[E2_POS_MAX_CHUNKS];
    cut[0] = 0;
    for (int i = 1; i < n; i++) cut[i] = 1 + (int32_t)e2w_rng_below(key, &ctr, c->train_length - 1);
    for (int i = 2; i < n; i++) /* insertion sort of cut[1..n) */
        for (int j = i; j > 1 && cut[j - 1] > cut[j]; j--) {
            int32_t x = cut[j];
            cut[j] = cut[j - 1];
            cut[j - 1] = x;
        }
    uint64_t room = (uint64_t)c->pose_target_length - c->train_length, u = 0;
    d->n_chunks = n;
    for (int i = 0; i < n; i++) {
        u += e2w_rng_below(key, &ctr, room - u + 1);
        d->chunks[i][0] = cut[i];
        d->chunks[i][1] = (int32_t)u;
    }
}

static void pose_infer(const e2_pos_config *c, uint32_t window, uint32_t head_dim,
                       e2_pos_infer *out) {
    (void)c, (void)window, (void)head_dim;
    out->g = 1.0;
}

static void pose_hf(const e2_pos_config *c, double g, e2_pos_hf *out) {
    (void)c, (void)g, (void)out;
}

static int pose_check(const E2__V1__AugmentSpec *a, char *err, size_t errlen) {
    if (a->has_pose_chunks && (a->pose_chunks < 1 || a->pose_chunks > E2_POS_MAX_CHUNKS))
        return e2_errf(err, errlen, "spec.augment.pose_chunks must be in [1, %d] (got %u)",
                       E2_POS_MAX_CHUNKS, a->pose_chunks);
    if (a->has_pose_target_length && a->pose_target_length < a->train_length)
        return e2_errf(err, errlen,
                       "spec.augment.pose_target_length must be >= train_length (%u) (got %u)",
                       a->train_length, a->pose_target_length);
    return 0;
}

const e2_pos_scheme e2_pos_scheme_pose = {
    .name = "pose",
    .about =
        "PoSE: the R-token window in pose_chunks chunks with random non-decreasing skip biases "
        "(positions up to pose_target_length), g = 1",
    .trains = 1,
    .check = pose_check,
    .draw = pose_draw,
    .infer = pose_infer,
    .hf = pose_hf,
};
