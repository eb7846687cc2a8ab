/* backend.c -- the CPU backend's table. Each op lives in its own file. */
#include "cpu.h"

const k_backend *k_cpu(void) {
    static const k_backend b = {
        .name = "cpu",
        .act_dtype = K_F32,
    };
    return &b;
}
