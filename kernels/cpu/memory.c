/* memory.c -- host memory as the CPU backend's "device" memory.
 *
 * Tensors are 64-byte aligned (one cache line, one AVX-512 vector) so the
 * vectorised loops and sgemm start on aligned rows. Act tensors are fp32 on
 * the CPU, so upload/download are plain copies.
 *
 * Allocations of KCPU_HUGE_MIN bytes or more (the model's parameter,
 * gradient, optimizer and activation buffers) are aligned to 2 MiB and
 * advised as transparent huge pages: sgemm walks rows that lie hundreds of
 * KiB apart (the 32000-wide logits), which on 4 KiB pages costs a TLB miss
 * per row. Where the kernel gives no huge pages the advice is a no-op. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu.h"

#define KCPU_ALIGN      64
#define KCPU_HUGE_ALIGN ((size_t)2 << 20)
#define KCPU_HUGE_MIN   ((size_t)8 << 20)
/* zero() splits buffers larger than this into blocks of this size across the
 * OpenMP threads (the model clears tens of MiB of gradient scratch per
 * layer); smaller ones are one memset. */
#define KCPU_ZERO_BLOCK ((size_t)1 << 20)

void *kcpu_alloc(size_t bytes) {
    /* aligned_alloc wants a multiple of the alignment; 0 bytes still gets a
     * unique pointer so the caller can tell success from failure. */
    size_t align = bytes >= KCPU_HUGE_MIN ? KCPU_HUGE_ALIGN : KCPU_ALIGN;
    size_t padded = (bytes + align - 1) / align * align;
    if (padded < bytes) return NULL; /* overflow */
    if (padded == 0) padded = KCPU_ALIGN;
    void *p = aligned_alloc(align, padded);
    if (p == NULL) return NULL;
#ifdef MADV_HUGEPAGE
    if (align == KCPU_HUGE_ALIGN) (void)madvise(p, padded, MADV_HUGEPAGE);
#endif
    kcpu_zero(p, padded);
    return p;
}

void kcpu_free(void *p) {
    free(p);
}

void kcpu_zero(void *p, size_t bytes) {
    if (bytes <= KCPU_ZERO_BLOCK) {
        if (bytes) memset(p, 0, bytes);
        return;
    }
    char *c = p;
    size_t nblk = (bytes + KCPU_ZERO_BLOCK - 1) / KCPU_ZERO_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nblk; i++) {
        size_t off = i * KCPU_ZERO_BLOCK, len = bytes - off;
        memset(c + off, 0, len < KCPU_ZERO_BLOCK ? len : KCPU_ZERO_BLOCK);
    }
}

void kcpu_upload(void *dst, const float *src, size_t n) {
    if (n) memcpy(dst, src, n * sizeof(float));
}

void kcpu_download(float *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n * sizeof(float));
}

void kcpu_copy_raw(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}

/* Every CPU op has finished when it returns. */
void kcpu_sync(void) {}
