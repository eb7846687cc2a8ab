/* backend.cu -- the CUDA backend's table, its one-time set-up (device check,
 * stream, cuBLASLt handle and workspace), the scratch buffers and the error
 * reporting of the check macros.
 *
 * k_cuda() returns NULL, without printing, when no CUDA device is usable
 * (no driver, no device, or the device cannot be initialised), so a CPU-only
 * machine can ask for it and fall back. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "kcuda.h"

/* cuBLASLt workspace (k.h). */
#define KCUDA_LT_WS_BYTES K_CUDA_LT_WORKSPACE_BYTES

kcuda_state kcuda;

void kcuda_fail_cuda(cudaError_t e, const char *call, const char *file, int line) {
    fprintf(stderr, "e2 cuda: %s:%d: %s: %s (%s)\n", file, line, call, cudaGetErrorString(e),
            cudaGetErrorName(e));
    abort();
}

void kcuda_fail_cublas(cublasStatus_t s, const char *call, const char *file, int line) {
    fprintf(stderr, "e2 cuda: %s:%d: %s: cuBLAS status %d\n", file, line, call, (int)s);
    abort();
}

void kcuda_fail(const char *what, const char *file, int line) {
    fprintf(stderr, "e2 cuda: %s:%d: %s\n", file, line, what);
    abort();
}

void kcuda_after_launch(const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) kcuda_fail_cuda(e, "kernel launch", file, line);
    if (!kcuda.sync_each) return;
    e = cudaStreamSynchronize(kcuda.stream);
    if (e == cudaSuccess) e = cudaGetLastError();
    if (e != cudaSuccess) kcuda_fail_cuda(e, "kernel run (E2_CUDA_SYNC=1)", file, line);
}

void *kcuda_scratch(int s, size_t bytes) {
    if (bytes <= kcuda.scr_bytes[s]) return kcuda.scr[s];
    /* cudaFree waits for the device, so no queued op still reads the old
     * buffer. Grown at most a few times per process (sizes follow the
     * model's shapes). */
    if (kcuda.scr[s] != NULL) kcuda_check(cudaFree(kcuda.scr[s]));
    kcuda.scr[s] = NULL;
    kcuda_check(cudaMalloc(&kcuda.scr[s], bytes));
    kcuda.scr_bytes[s] = bytes;
    return kcuda.scr[s];
}

void *kcuda_host(size_t bytes) {
    if (bytes <= kcuda.host_bytes) return kcuda.host;
    free(kcuda.host);
    kcuda.host = malloc(bytes);
    if (kcuda.host == NULL)
        kcuda_fail("out of host memory for a staging buffer", __FILE__, __LINE__);
    kcuda.host_bytes = bytes;
    return kcuda.host;
}

static const k_backend kcuda_table = {
    .name = "cuda",
    .act_dtype = K_BF16,
    .grad_dtype = K_F32,

    .alloc = kcuda_alloc,
    .free = kcuda_free,
    .zero = kcuda_zero,
    .upload = kcuda_upload,
    .download = kcuda_download,
    .upload_raw = kcuda_upload_raw,
    .download_raw = kcuda_download_raw,
    .sync = kcuda_sync,
    .stream = kcuda_stream_handle,

    .matmul_fwd = kcuda_matmul_fwd,
    .matmul_bwd = kcuda_matmul_bwd,

    .embed_fwd = kcuda_embed_fwd,
    .embed_bwd = kcuda_embed_bwd,

    .rmsnorm_fwd = kcuda_rmsnorm_fwd,
    .rmsnorm_bwd = kcuda_rmsnorm_bwd,

    .rope_fwd = kcuda_rope_fwd,
    .rope_bwd = kcuda_rope_bwd,
    .attn_fwd = kcuda_attn_fwd,
    .attn_bwd = kcuda_attn_bwd,

    .swiglu_fwd = kcuda_swiglu_fwd,
    .swiglu_bwd = kcuda_swiglu_bwd,

    .add = kcuda_add,
    .accumulate = kcuda_accumulate,

    .xent_fwd = kcuda_xent_fwd,
    .xent_bwd = kcuda_xent_bwd,
    /* The optional variants: the model composes them from the ops above. */
    .matmul_bwd_set = nullptr,
    .swiglu_bwd_set = nullptr,
    .xent_fwd_bwd = nullptr,

    .sumsq = kcuda_sumsq,
    .adamw = kcuda_adamw,
};

static pthread_once_t kcuda_once = PTHREAD_ONCE_INIT;
static int kcuda_ok;

/* Probes without aborting: a machine without a usable device is not an
 * error, only a NULL backend. Once a device answers, later failures are. */
static void kcuda_init(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
        (void)cudaGetLastError();
        return;
    }
    if (cudaGetDevice(&kcuda.device) != cudaSuccess || cudaFree(0) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    const char *sync = getenv("E2_CUDA_SYNC");
    kcuda.sync_each = sync != NULL && sync[0] != '\0' && sync[0] != '0';
    kcuda_check(cudaStreamCreateWithFlags(&kcuda.stream, cudaStreamNonBlocking));
    kcuda_cublas_check(cublasLtCreate(&kcuda.lt));
    kcuda.lt_ws_bytes = KCUDA_LT_WS_BYTES;
    kcuda_check(cudaMalloc(&kcuda.lt_ws, kcuda.lt_ws_bytes));
    kcuda_ok = 1;
}

extern "C" const k_backend *k_cuda(void) {
    pthread_once(&kcuda_once, kcuda_init);
    return kcuda_ok ? &kcuda_table : NULL;
}
