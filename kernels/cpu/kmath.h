/* kmath.h -- a vectorisable expf for the CPU kernels' inner loops.
 *
 * libm's expf is an opaque call, so a loop around it stays scalar (glibc
 * offers vector variants only under -ffast-math). kcpu_expf is branch-free
 * arithmetic that the compiler turns into SIMD code inside `omp simd` loops:
 * exp(x) = 2^n * e^r with n = round(x / ln 2), |r| <= ln 2 / 2, e^r from a
 * degree-6 polynomial (Cephes coefficients); about 1-2 ulp in fp32.
 * x is clamped to [-87.3, 88.3], so the result is never 0 or inf: for
 * x < -87.3 it returns ~1e-38 (harmless next to the 1 that softmax and
 * sigmoid add), and NaN stays NaN. */
#ifndef E2_KERNELS_CPU_KMATH_H
#define E2_KERNELS_CPU_KMATH_H
#include <stdint.h>

static inline float kcpu_expf(float x) {
    /* Clamped so that n below converts to int exactly; a NaN becomes -87.3
     * here (keeping the conversion defined) and is restored at the end. */
    float xc = x > -87.3f ? x : -87.3f;
    xc = xc < 88.3f ? xc : 88.3f;
    /* Adding and removing 1.5 * 2^23 rounds to the nearest integer without a
     * call to rintf, which plain SSE2 cannot vectorise. */
    const float shifter = 12582912.0f;
    float n = (xc * 1.44269504088896341f + shifter) - shifter;
    float r = xc - n * 0.693359375f; /* ln 2 split in two for exactness */
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale;
    scale.i = ((int32_t)n + 127) * (1 << 23);
    return x == x ? p * scale.f : x;
}

#endif
