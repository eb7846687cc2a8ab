/* backend.c -- the CPU backend's table. Each op lives in its own file and is
 * declared in cpu.h; one designated initialiser per member. */
#include "cpu.h"

const k_backend *k_cpu(void) {
    static const k_backend b = {
        .name = "cpu",
        .act_dtype = K_F32,

        .alloc = kcpu_alloc,
        .free = kcpu_free,
        .zero = kcpu_zero,
        .upload = kcpu_upload,
        .download = kcpu_download,
        .upload_raw = kcpu_copy_raw,
        .download_raw = kcpu_copy_raw,
        .sync = kcpu_sync,

        .matmul_fwd = kcpu_matmul_fwd,
        .matmul_bwd = kcpu_matmul_bwd,
        .matmul_bwd_set = kcpu_matmul_bwd_set,

        .embed_fwd = kcpu_embed_fwd,
        .embed_bwd = kcpu_embed_bwd,

        .rmsnorm_fwd = kcpu_rmsnorm_fwd,
        .rmsnorm_bwd = kcpu_rmsnorm_bwd,

        .rope_fwd = kcpu_rope_fwd,
        .rope_bwd = kcpu_rope_bwd,
        .attn_fwd = kcpu_attn_fwd,
        .attn_bwd = kcpu_attn_bwd,

        .swiglu_fwd = kcpu_swiglu_fwd,
        .swiglu_bwd = kcpu_swiglu_bwd,
        .swiglu_bwd_set = kcpu_swiglu_bwd_set,

        .add = kcpu_add,
        .accumulate = kcpu_accumulate,

        .xent_fwd = kcpu_xent_fwd,
        .xent_bwd = kcpu_xent_bwd,
        .xent_fwd_bwd = kcpu_xent_fwd_bwd,

        .sumsq = kcpu_sumsq,
        .adamw = kcpu_adamw,
    };
    return &b;
}
