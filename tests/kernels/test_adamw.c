/* test_adamw.c -- AdamW against the formula evaluated step by step in
 * double, with and without weight decay and grad_scale, with param aliasing
 * master and distinct; sumsq against a double sum and bit-identical for 1, 2
 * and 3 threads. */
#include <omp.h>

#include "check.h"
#include "k.h"

#define N_EL 1003

/* One AdamW step in double, exactly as k.h states it. */
static void adamw_ref(double *w, double *m, double *v, const float *grad, size_t n,
                      const k_adamw *hp) {
    double b1 = hp->beta1, b2 = hp->beta2;
    double bc1 = 1.0 - pow(b1, hp->step), bc2 = 1.0 - pow(b2, hp->step);
    for (size_t i = 0; i < n; i++) {
        double g = (double)grad[i] * hp->grad_scale;
        m[i] = b1 * m[i] + (1.0 - b1) * g;
        v[i] = b2 * v[i] + (1.0 - b2) * g * g;
        double mh = m[i] / bc1, vh = v[i] / bc2;
        w[i] -= (double)hp->lr * (mh / (sqrt(vh) + hp->eps) + hp->weight_decay * w[i]);
    }
}

static void adamw_run(float wd, float gs, int alias) {
    const k_backend *k = k_cpu();
    kc_rng r = kc_seed(190 + (uint64_t)alias);
    float *master = kc_floats(N_EL), *m = kc_floats(N_EL), *v = kc_floats(N_EL);
    float *param = alias ? master : kc_floats(N_EL), *grad = kc_floats(N_EL);
    double *w = kc_doubles(N_EL), *mr = kc_doubles(N_EL), *vr = kc_doubles(N_EL);
    kc_fill(master, N_EL, -1, 1, &r);
    kc_to_double(w, master, N_EL);
    k_adamw hp = { .lr = 1e-2f,
                   .beta1 = 0.9f,
                   .beta2 = 0.95f,
                   .eps = 1e-8f,
                   .weight_decay = wd,
                   .grad_scale = gs,
                   .seed = 7 };
    for (int step = 1; step <= 3; step++) {
        hp.step = step;
        kc_fill(grad, N_EL, -2, 2, &r);
        if (step == 2) grad[5] = 0.0f; /* a zero gradient after a non-zero one */
        k->adamw(master, param, grad, m, v, N_EL, &hp);
        adamw_ref(w, mr, vr, grad, N_EL, &hp);
        char what[96];
        snprintf(what, sizeof what, "master step %d wd=%g gs=%g alias=%d", step, (double)wd,
                 (double)gs, alias);
        KC_CLOSE(master, w, N_EL, 1e-2, 2e-6, what);
        snprintf(what, sizeof what, "m step %d", step);
        KC_CLOSE(m, mr, N_EL, 1e-2, 1e-5, what);
        snprintf(what, sizeof what, "v step %d", step);
        KC_CLOSE(v, vr, N_EL, 1e-3, 1e-5, what);
        KC_EXPECT(memcmp(param, master, N_EL * sizeof(float)) == 0,
                  "param differs from master after step %d (alias=%d)", step, alias);
    }
    if (!alias) free(param);
    free(master);
    free(m);
    free(v);
    free(grad);
    free(w);
    free(mr);
    free(vr);
}

static void adamw_three_steps(void) {
    adamw_run(0.0f, 1.0f, 0);
}
static void adamw_weight_decay_grad_scale(void) {
    adamw_run(0.1f, 0.25f, 0);
}
static void adamw_param_aliases_master(void) {
    adamw_run(0.1f, 0.25f, 1);
}

/* Decoupled decay: a zero gradient on a fresh state leaves m = v = 0 and
 * shrinks the weight by exactly lr * weight_decay * w. */
static void adamw_decay_only(void) {
    const k_backend *k = k_cpu();
    float master[4] = { 1.0f, -2.0f, 0.5f, 0.0f }, m[4] = { 0 }, v[4] = { 0 }, grad[4] = { 0 };
    k_adamw hp = { .lr = 0.1f,
                   .beta1 = 0.9f,
                   .beta2 = 0.999f,
                   .eps = 1e-8f,
                   .weight_decay = 0.5f,
                   .step = 1,
                   .grad_scale = 1.0f };
    k->adamw(master, master, grad, m, v, 4, &hp);
    const double want[4] = { 0.95, -1.9, 0.475, 0.0 };
    KC_CLOSE(master, want, 4, 1e-3, 1e-6, "decayed weights");
}

static void sumsq_matches_double(void) {
    const k_backend *k = k_cpu();
    const size_t sizes[] = { 0, 1, 63, 65, 100003, 1000003 };
    for (int i = 0; i < 6; i++) {
        size_t n = sizes[i];
        kc_rng r = kc_seed(200 + i);
        float *x = kc_floats(n);
        kc_fill(x, n, -3, 3, &r);
        double want = 0.0;
        for (size_t j = 0; j < n; j++) want += (double)x[j] * x[j];
        double got = k->sumsq(x, n);
        KC_EXPECT(fabs(got - want) <= 1e-12 * (want > 1 ? want : 1),
                  "sumsq n=%zu: %.17g, double sum %.17g", n, got, want);
        free(x);
    }
}

static void sumsq_threads(void) {
    const k_backend *k = k_cpu();
    size_t n = 1000003;
    kc_rng r = kc_seed(210);
    float *x = kc_floats(n);
    kc_fill(x, n, -3, 3, &r);
    double s[3];
    for (int t = 0; t < 3; t++) {
        omp_set_num_threads(t + 1);
        s[t] = k->sumsq(x, n);
    }
    KC_EXPECT(memcmp(&s[0], &s[1], sizeof(double)) == 0, "1 vs 2 threads: %.17g %.17g", s[0], s[1]);
    KC_EXPECT(memcmp(&s[0], &s[2], sizeof(double)) == 0, "1 vs 3 threads: %.17g %.17g", s[0], s[2]);
    KC_EXPECT(memcmp(&s[0], &(double){ k->sumsq(x, n) }, sizeof(double)) == 0, "rerun differs");
    free(x);
}

int main(int argc, char **argv) {
    const kc_case cases[] = {
        { "adamw_three_steps", adamw_three_steps },
        { "adamw_weight_decay_grad_scale", adamw_weight_decay_grad_scale },
        { "adamw_param_aliases_master", adamw_param_aliases_master },
        { "adamw_decay_only", adamw_decay_only },
        { "sumsq_matches_double", sumsq_matches_double },
        { "sumsq_threads", sumsq_threads },
    };
    return kc_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
