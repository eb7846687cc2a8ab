/* cpu.h -- the CPU backend's operations, one file each (fp32).
 *
 * Every act tensor is a float array; the k.h conventions hold (gradients
 * accumulate, shapes row-major). backend.c puts these functions in the
 * k_backend table. */
#ifndef E2_KERNELS_CPU_H
#define E2_KERNELS_CPU_H
#include "k.h"

/* memory.c */
void *kcpu_alloc(size_t bytes);
void kcpu_free(void *p);
void kcpu_zero(void *p, size_t bytes);
void kcpu_upload(void *dst, const float *src, size_t n);
void kcpu_download(float *dst, const void *src, size_t n);
void kcpu_copy_raw(void *dst, const void *src, size_t bytes);
void kcpu_sync(void);

/* matmul.c */
void kcpu_matmul_fwd(void *out, const void *inp, const void *weight, const void *bias, int N, int C,
                     int OC);
void kcpu_matmul_bwd(void *dinp, void *dweight, void *dbias, const void *dout, const void *inp,
                     const void *weight, int N, int C, int OC);
void kcpu_matmul_bwd_set(void *dinp, void *dweight, void *dbias, const void *dout, const void *inp,
                         const void *weight, int N, int C, int OC);

/* embed.c */
void kcpu_embed_fwd(void *out, const int32_t *tokens, const void *wte, int N, int C);
void kcpu_embed_bwd(void *dwte, const void *dout, const int32_t *tokens, int N, int C);

/* rmsnorm.c */
void kcpu_rmsnorm_fwd(void *out, float *rstd, const void *inp, const void *weight, float eps, int N,
                      int C);
void kcpu_rmsnorm_bwd(void *dinp, void *dweight, const void *dout, const void *inp,
                      const void *weight, const float *rstd, int N, int C);

/* rope.c */
void kcpu_rope_fwd(void *x, int B, int T, int nh, int D, int row_stride, const k_rope *r);
void kcpu_rope_bwd(void *dx, int B, int T, int nh, int D, int row_stride, const k_rope *r);

/* attn.c */
void kcpu_attn_fwd(void *out, float *lse, const void *qkv, int B, int T, int H, int KVH, int D);
void kcpu_attn_bwd(void *dqkv, float *delta, const void *dout, const void *qkv, const void *out,
                   const float *lse, int B, int T, int H, int KVH, int D);

/* swiglu.c */
void kcpu_swiglu_fwd(void *out, const void *inp, int N, int F);
void kcpu_swiglu_bwd(void *dinp, const void *dout, const void *inp, int N, int F);
void kcpu_swiglu_bwd_set(void *dinp, const void *dout, const void *inp, int N, int F);

/* residual.c */
void kcpu_add(void *out, const void *a, const void *b, size_t n);
void kcpu_accumulate(void *dst, const void *src, size_t n);

/* xent.c */
void kcpu_xent_fwd(float *losses, const void *logits, const int32_t *targets, int ignore_index,
                   int N, int V);
void kcpu_xent_bwd(void *logits, const int32_t *targets, float dloss, int ignore_index, int N,
                   int V);
void kcpu_xent_fwd_bwd(float *losses, void *logits, const int32_t *targets, float dloss,
                       int ignore_index, int N, int V);

/* adamw.c */
double kcpu_sumsq(const void *x, size_t n);
void kcpu_adamw(float *master, void *param, const void *grad, float *m, float *v, size_t n,
                const k_adamw *hp);

#endif
