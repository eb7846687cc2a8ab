/* cpu.h -- the CPU backend's operations, one file each (fp32). */
#ifndef E2_KERNELS_CPU_H
#define E2_KERNELS_CPU_H
#include "k.h"
#endif
