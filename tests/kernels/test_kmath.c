/* test_kmath.c -- kcpu_expf, the vectorisable exp of the CPU kernels:
 * accuracy against double exp over the whole fp32 range it serves, the
 * clamped tails, and NaN passing through. */
#include "check.h"
#include "cpu/kmath.h"

static void expf_accuracy(void) {
    double worst = 0.0, at = 0.0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double want = exp((double)x), e = fabs((double)kcpu_expf(x) - want) / want;
        if (e > worst) {
            worst = e;
            at = x;
        }
    }
    /* 2e-7 is about 1.7 ulp; the polynomial reaches about 1.4 */
    KC_EXPECT(worst < 2e-7, "max rel err %.3g at x = %.9g", worst, at);
}

static void expf_tails_and_nan(void) {
    float lo = kcpu_expf(-1000.0f), hi = kcpu_expf(1000.0f);
    KC_EXPECT(lo > 0.0f && lo < 2e-38f, "exp(-1000) = %g, want a tiny positive", (double)lo);
    KC_EXPECT(isfinite(hi) && hi > 1e38f, "exp(1000) = %g, want a large finite value", (double)hi);
    KC_EXPECT(isnan(kcpu_expf(NAN)), "exp(NaN) is not NaN");
    KC_EXPECT(kcpu_expf(0.0f) == 1.0f, "exp(0) = %.9g", (double)kcpu_expf(0.0f));
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "expf_accuracy", expf_accuracy },
        { "expf_tails_and_nan", expf_tails_and_nan },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
