/* memory.cu -- device memory, and the conversions between fp32 host arrays
 * and bf16 act tensors.
 *
 * upload rounds to nearest even on the host (the conversion is exact
 * arithmetic, so host and device agree bit for bit) and copies; download
 * copies and widens, which is exact. Raw copies move bytes. All copies are
 * ordered on the backend's stream and return when the host buffer may be
 * reused (upload) or holds the data (download). */
#include <string.h>

#include "kcuda.h"

/* Alignment that keeps every allocation good for vector loads and for the
 * 256-byte alignment cuBLASLt prefers; cudaMalloc gives at least that. */
#define KCUDA_MIN_ALLOC 256
/* Conversions go through the host staging buffer in pieces of this many
 * elements (64 MiB of bf16), so loading a 7B model does not keep a
 * model-sized staging buffer alive. */
#define KCUDA_STAGE_ELEMS ((size_t)32 << 20)

void *kcuda_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = KCUDA_MIN_ALLOC; /* a unique, non-NULL pointer */
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        (void)cudaGetLastError(); /* out of memory is the caller's to report */
        return NULL;
    }
    kcuda_check(cudaMemsetAsync(p, 0, bytes, kcuda.stream));
    kcuda_check(cudaStreamSynchronize(kcuda.stream));
    return p;
}

void kcuda_free(void *p) {
    if (p != NULL) kcuda_check(cudaFree(p));
}

void kcuda_zero(void *p, size_t bytes) {
    if (bytes) kcuda_check(cudaMemsetAsync(p, 0, bytes, kcuda.stream));
}

/* fp32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
static uint16_t kcuda_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

void kcuda_upload(void *dst, const float *src, size_t n) {
    for (size_t i0 = 0; i0 < n; i0 += KCUDA_STAGE_ELEMS) {
        size_t m = n - i0 < KCUDA_STAGE_ELEMS ? n - i0 : KCUDA_STAGE_ELEMS;
        uint16_t *h = (uint16_t *)kcuda_host(m * 2);
        for (size_t i = 0; i < m; i++) h[i] = kcuda_f32_to_bf16(src[i0 + i]);
        kcuda_check(
            cudaMemcpyAsync((uint16_t *)dst + i0, h, m * 2, cudaMemcpyHostToDevice, kcuda.stream));
        kcuda_check(cudaStreamSynchronize(kcuda.stream));
    }
}

void kcuda_download(float *dst, const void *src, size_t n) {
    for (size_t i0 = 0; i0 < n; i0 += KCUDA_STAGE_ELEMS) {
        size_t m = n - i0 < KCUDA_STAGE_ELEMS ? n - i0 : KCUDA_STAGE_ELEMS;
        uint16_t *h = (uint16_t *)kcuda_host(m * 2);
        kcuda_check(cudaMemcpyAsync(h, (const uint16_t *)src + i0, m * 2, cudaMemcpyDeviceToHost,
                                    kcuda.stream));
        kcuda_check(cudaStreamSynchronize(kcuda.stream));
        for (size_t i = 0; i < m; i++) {
            uint32_t u = (uint32_t)h[i] << 16;
            memcpy(dst + i0 + i, &u, 4);
        }
    }
}

void kcuda_upload_raw(void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    kcuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, kcuda.stream));
    kcuda_check(cudaStreamSynchronize(kcuda.stream));
}

void kcuda_download_raw(void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    kcuda_check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, kcuda.stream));
    kcuda_check(cudaStreamSynchronize(kcuda.stream));
}

void kcuda_sync(void) {
    kcuda_check(cudaStreamSynchronize(kcuda.stream));
    kcuda_check(cudaGetLastError());
}

void *kcuda_stream_handle(void) {
    return kcuda.stream;
}
