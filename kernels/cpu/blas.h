/* blas.h -- checks that OpenBLAS runs its fast kernels on this CPU.
 *
 * A DYNAMIC_ARCH OpenBLAS picks its sgemm kernels from the CPU model number
 * when the library loads. A model it does not know (e.g. family 6 model 207,
 * Emerald Rapids, under OpenBLAS 0.3.21) falls back to the SSE3 "Prescott"
 * kernels, which run sgemm about 6x slower on an AVX-512 machine. The core
 * can only be chosen before the library loads, through the environment
 * variable OPENBLAS_CORETYPE, so a process that wants the fast kernels sets
 * it and re-executes itself (or its launcher sets it). */
#ifndef E2_KERNELS_CPU_BLAS_H
#define E2_KERNELS_CPU_BLAS_H

/* The core OpenBLAS is running, e.g. "SkylakeX", "Prescott". */
const char *kcpu_blas_core(void);

/* The OPENBLAS_CORETYPE value to set when OpenBLAS runs slower kernels than
 * this CPU supports ("SkylakeX" for AVX-512, "Haswell" for AVX2 + FMA), or
 * NULL when its choice is fine or OPENBLAS_CORETYPE is already set. */
const char *kcpu_blas_coretype_hint(void);

#endif
