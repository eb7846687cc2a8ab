/* kcuda.h -- what the CUDA backend's files share: the one stream and cuBLASLt
 * handle, grow-only scratch buffers, bf16 helpers, and the check macros that
 * turn a failing CUDA or cuBLAS call into a message with file and line.
 *
 * Act tensors are __nv_bfloat16; every kernel computes in fp32 (fp64 where
 * the CPU reference does: RoPE angles, the squared norm). Every op is queued
 * on kcuda.stream, so the ops of one process run in order and a scratch
 * buffer can be reused by the next op without further synchronisation.
 *
 * A failing CUDA call has no return code to travel through in k.h (its ops
 * return void), so the checks print one line "e2 cuda: file:line: call:
 * reason" to stderr and abort, as llm.c does: the worker dies and e2d sees
 * the exit and the log line. */
#ifndef E2_KERNELS_CUDA_KCUDA_H
#define E2_KERNELS_CUDA_KCUDA_H

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "k.h"

typedef __nv_bfloat16 bf16;

/* Grow-only device scratch, one slot per use so that two users never share
 * a buffer inside one op. */
enum { KCUDA_SCR_COLSUM, KCUDA_SCR_EMBED, KCUDA_SCR_SUMSQ, KCUDA_SCR_COUNT };

typedef struct {
    int device;
    cudaStream_t stream;
    cublasLtHandle_t lt;
    void *lt_ws; /* cuBLASLt workspace */
    size_t lt_ws_bytes;
    void *scr[KCUDA_SCR_COUNT];
    size_t scr_bytes[KCUDA_SCR_COUNT];
    void *host; /* grow-only host staging for conversions */
    size_t host_bytes;
    int sync_each; /* E2_CUDA_SYNC=1: wait for and check every launch */
} kcuda_state;

extern kcuda_state kcuda;

void kcuda_fail_cuda(cudaError_t e, const char *call, const char *file, int line);
void kcuda_fail_cublas(cublasStatus_t s, const char *call, const char *file, int line);
void kcuda_fail(const char *what, const char *file, int line);
void kcuda_after_launch(const char *file, int line);

#define kcuda_check(call)                                                                  \
    do {                                                                                   \
        cudaError_t kcuda_e_ = (call);                                                     \
        if (kcuda_e_ != cudaSuccess) kcuda_fail_cuda(kcuda_e_, #call, __FILE__, __LINE__); \
    } while (0)
#define kcuda_cublas_check(call)                                    \
    do {                                                            \
        cublasStatus_t kcuda_s_ = (call);                           \
        if (kcuda_s_ != CUBLAS_STATUS_SUCCESS)                      \
            kcuda_fail_cublas(kcuda_s_, #call, __FILE__, __LINE__); \
    } while (0)
/* After every kernel launch (and cuBLASLt call): a bad configuration is
 * reported where it was launched, not at the next synchronisation. With
 * E2_CUDA_SYNC=1 in the environment it also waits for the stream and
 * checks, so an asynchronous fault (an illegal address in a kernel) names
 * the launch that caused it instead of a later call (slow: debugging only). */
#define kcuda_launched() kcuda_after_launch(__FILE__, __LINE__)

/* Device scratch of at least bytes in slot s (contents undefined). */
void *kcuda_scratch(int s, size_t bytes);
/* Host staging of at least bytes (contents undefined). */
void *kcuda_host(size_t bytes);

/* Blocks of threads for n independent elements. */
static inline unsigned kcuda_blocks(size_t n, int threads) {
    return (unsigned)((n + (size_t)threads - 1) / (size_t)threads);
}

/* ---- ops, one file each (k.h semantics) ---- */
#ifdef __cplusplus
extern "C" {
#endif
void *kcuda_alloc(size_t bytes);
void kcuda_free(void *p);
void kcuda_zero(void *p, size_t bytes);
void kcuda_upload(void *dst, const float *src, size_t n);
void kcuda_download(float *dst, const void *src, size_t n);
void kcuda_upload_raw(void *dst, const void *src, size_t bytes);
void kcuda_download_raw(void *dst, const void *src, size_t bytes);
void kcuda_sync(void);
void *kcuda_stream_handle(void);

void kcuda_matmul_fwd(void *out, const void *inp, const void *weight, const void *bias, int N,
                      int C, int OC);
void kcuda_matmul_bwd(void *dinp, void *dweight, void *dbias, const void *dout, const void *inp,
                      const void *weight, int N, int C, int OC);
void kcuda_embed_fwd(void *out, const int32_t *tokens, const void *wte, int N, int C);
void kcuda_embed_bwd(void *dwte, const void *dout, const int32_t *tokens, int N, int C);
void kcuda_rmsnorm_fwd(void *out, float *rstd, const void *inp, const void *weight, float eps,
                       int N, int C);
void kcuda_rmsnorm_bwd(void *dinp, void *dweight, const void *dout, const void *inp,
                       const void *weight, const float *rstd, int N, int C);
void kcuda_rope_fwd(void *x, int B, int T, int nh, int D, int row_stride, const k_rope *r);
void kcuda_rope_bwd(void *dx, int B, int T, int nh, int D, int row_stride, const k_rope *r);
void kcuda_attn_fwd(void *out, float *lse, const void *qkv, int B, int T, int H, int KVH, int D);
void kcuda_attn_bwd(void *dqkv, float *delta, const void *dout, const void *qkv, const void *out,
                    const float *lse, int B, int T, int H, int KVH, int D);
void kcuda_swiglu_fwd(void *out, const void *inp, int N, int F);
void kcuda_swiglu_bwd(void *dinp, const void *dout, const void *inp, int N, int F);
void kcuda_add(void *out, const void *a, const void *b, size_t n);
void kcuda_accumulate(void *dst, const void *src, size_t n);
void kcuda_xent_fwd(float *losses, const void *logits, const int32_t *targets, int ignore_index,
                    int N, int V);
void kcuda_xent_bwd(void *logits, const int32_t *targets, float dloss, int ignore_index, int N,
                    int V);
double kcuda_sumsq(const void *x, size_t n);
void kcuda_adamw(float *master, void *param, const void *grad, float *m, float *v, size_t n,
                 const k_adamw *hp);
/* Tensor-core attention (attn_tc.cu) for head dims 64 and 128 with
 * 16-byte aligned tensors: returns 1 when it ran, 0 when the shapes or
 * pointers need the CUDA-core kernels of attn.cu. The backward expects delta
 * already computed. */
int kcuda_attn_tc_fwd(void *out, float *lse, const void *qkv, int B, int T, int H, int KVH, int D);
int kcuda_attn_tc_bwd(void *dqkv, const float *delta, const void *dout, const void *qkv,
                      const float *lse, int B, int T, int H, int KVH, int D);
/* Column sums for the bias gradient: dbias (OC, fp32) += sum over rows of dout. */
void kcuda_colsum_acc(float *dbias, const bf16 *dout, int N, int OC);
#ifdef __cplusplus
}
#endif

/* ---- device helpers ---- */
#ifdef __CUDACC__
__device__ __forceinline__ float kcuda_f(bf16 x) {
    return __bfloat162float(x);
}
__device__ __forceinline__ bf16 kcuda_b(float x) {
    return __float2bfloat16_rn(x);
}

__device__ __forceinline__ float kcuda_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float kcuda_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
/* Sum over a block of up to 1024 threads (blockDim.x a multiple of 32), in a
 * fixed order; every thread gets the result. */
__device__ __forceinline__ float kcuda_block_sum(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = kcuda_warp_sum(v);
    __syncthreads(); /* part may still be read by a previous call */
    if (lane == 0) part[w] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.0f;
    return kcuda_warp_sum(v);
}
#endif

#endif
