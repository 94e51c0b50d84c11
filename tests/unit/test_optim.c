/*
 * test_optim.c - the optimisers against values worked out by hand from
 * PyTorch 1.13's update rules (torch.optim.SGD, torch.optim.Adam).
 * Tolerance 1e-6 relative: a few float operations per value.
 */
#include <math.h>
#include <string.h>

#include "mtrain/optim.h"
#include "testutil.h"

static mt_optim *make(mt_optim_kind kind, double lr, double mu, int nesterov)
{
    mt_optim_config cfg = {kind, lr, mu, nesterov, 0.9, 0.999, 1e-8};
    mt_optim *opt = NULL;
    MT_TEST_OK(mt_optim_create(&cfg, 1, &opt));
    return opt;
}

static void test_plain(void)
{
    mt_optim *opt = make(MT_OPTIM_PLAIN, 1.0, 0.0, 0);
    float w = 1.0f, g = 0.25f;
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.75, 1e-7);
    CU_ASSERT_EQUAL(opt->n_states, 0);
    mt_optim_destroy(&opt);
    CU_ASSERT_PTR_NULL(opt);
}

/* plain with a learning rate is SGD without momentum: w <- w - lr g.
 * w0 = 1, g = 0.25, lr = 0.5: w = 1 - 0.125 = 0.875, then with g = -1:
 * w = 0.875 + 0.5 = 1.375 (all exact in binary). With lr = 1 the update
 * must equal w - g bit for bit (the Moreau gradient descent): checked on
 * values whose difference is inexact in float, 1 - 0.1f. */
static void test_plain_lr(void)
{
    mt_optim *opt = make(MT_OPTIM_PLAIN, 0.5, 0.0, 0), *unit = make(MT_OPTIM_PLAIN, 1.0, 0, 0);
    float w = 1.0f, g = 0.25f, w1 = 1.0f, g1 = 0.1f;

    mt_optim_step(opt, &w, &g);
    CU_ASSERT_EQUAL(w, 0.875f);
    g = -1.0f;
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_EQUAL(w, 1.375f);
    CU_ASSERT_EQUAL(opt->steps, 2);
    mt_optim_step(unit, &w1, &g1);
    CU_ASSERT_EQUAL(w1, 1.0f - 0.1f);
    mt_optim_destroy(&opt);
    mt_optim_destroy(&unit);
}

/* sgd with momentum 0 and plain with the same lr take identical steps
 * (torch.optim.SGD's momentum buffer is then g itself). */
static void test_plain_is_sgd_without_momentum(void)
{
    mt_optim *p = make(MT_OPTIM_PLAIN, 0.3, 0.0, 0), *s = make(MT_OPTIM_SGD, 0.3, 0.0, 0);
    float wp = 0.7f, ws = 0.7f, g[3] = {0.11f, -2.3f, 0.05f};

    for (int k = 0; k < 3; k++) {
        mt_optim_step(p, &wp, &g[k]);
        mt_optim_step(s, &ws, &g[k]);
        CU_ASSERT_EQUAL(wp, ws);
    }
    mt_optim_destroy(&p);
    mt_optim_destroy(&s);
}

/* w0 = 1, g = 0.5, lr = 0.1, mu = 0.9:
 *   step 1: b = g = 0.5,              w = 1 - 0.05 = 0.95
 *   step 2: b = 0.9 * 0.5 + 0.5 = 0.95, w = 0.95 - 0.095 = 0.855 */
static void test_sgd_momentum(void)
{
    mt_optim *opt = make(MT_OPTIM_SGD, 0.1, 0.9, 0);
    float w = 1.0f, g = 0.5f;
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.95, 1e-6);
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.855, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(opt->state[0][0], 0.95, 1e-6);
    mt_optim_destroy(&opt);
}

/* Nesterov, same numbers: step 1: b = 0.5, w = 1 - 0.1 (0.5 + 0.45) = 0.905;
 * step 2: b = 0.95, w = 0.905 - 0.1 (0.5 + 0.855) = 0.7695 */
static void test_sgd_nesterov(void)
{
    mt_optim *opt = make(MT_OPTIM_SGD, 0.1, 0.9, 1);
    float w = 1.0f, g = 0.5f;
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.905, 1e-6);
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.7695, 1e-6);
    mt_optim_destroy(&opt);
}

/* Adam, lr = 0.1, g = 0.5: step 1: m = 0.05, v = 0.00025,
 * w = 1 - (0.1 / 0.1) * 0.05 / (sqrt(0.00025) / sqrt(0.001) + 1e-8) = 0.9;
 * step 2 with g = -1: m = 0.045 - 0.1 = -0.055, v = 0.00024975 + 0.001 = 0.00124975,
 * w = 0.9 + 0.1 / 0.19 * 0.055 / (sqrt(0.00124975) / sqrt(0.001999) + 1e-8) */
static void test_adam(void)
{
    mt_optim *opt = make(MT_OPTIM_ADAM, 0.1, 0.0, 0);
    float w = 1.0f, g = 0.5f;
    mt_optim_step(opt, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.9, 1e-6);
    g = -1.0f;
    mt_optim_step(opt, &w, &g);
    double expect = 0.9 + 0.1 / 0.19 * 0.055 / (sqrt(0.00124975) / sqrt(1.0 - 0.999 * 0.999));
    CU_ASSERT_DOUBLE_EQUAL(w, expect, 1e-6);
    CU_ASSERT_EQUAL(opt->steps, 2);
    mt_optim_destroy(&opt);
}

/* Every rule reports whether the updated parameters are all finite: 1 for
 * an ordinary step, 0 when a direction of inf or NaN, or (plain and sgd)
 * one whose step overflows float (lr 1e30 x g 1e10), leaves a parameter
 * non-finite, wherever it is in a vector long enough to be split among
 * threads. */
static void test_reports_finite(void)
{
    enum { N = 4099 };
    static float w[N], g[N];
    const float bad[3] = {INFINITY, NAN, 1e10f};

    for (int kind = MT_OPTIM_PLAIN; kind <= MT_OPTIM_ADAM; kind++)
        for (int b = 0; b < (kind == MT_OPTIM_ADAM ? 2 : 3); b++) {
            mt_optim_config cfg = {kind, b == 2 ? 1e30 : 0.1, 0.9, 0, 0.9, 0.999, 1e-8};
            mt_optim *opt = NULL;
            int at = N - 1 - 1000 * b;
            MT_TEST_OK(mt_optim_create(&cfg, N, &opt));
            for (int i = 0; i < N; i++)
                w[i] = 1.0f, g[i] = 1e-3f * (float)(i % 7);
            CU_ASSERT_EQUAL(mt_optim_step(opt, w, g), 1);
            g[at] = bad[b];
            CU_ASSERT_EQUAL(mt_optim_step(opt, w, g), 0);
            CU_ASSERT_FALSE(isfinite(w[at]));
            mt_optim_destroy(&opt);
        }
}

/* mt_optim_step_decayed(w, g, wd) = adding wd w to g in a pass of its own
 * (g[i] += wd w[i]), then mt_optim_step: the same bits, for w, g and the
 * state, with every rule, over three steps (momentum and Adam's state
 * carry over), on a vector split among threads. */
static void test_decayed_is_two_passes(void)
{
    enum { N = 3001 };
    static float w1[N], w2[N], g1[N], g2[N];
    const float wd = 1e-3f;

    for (int kind = MT_OPTIM_PLAIN; kind <= MT_OPTIM_ADAM; kind++)
        for (int nesterov = 0; nesterov <= (kind == MT_OPTIM_SGD); nesterov++) {
            mt_optim_config cfg = {kind, 0.05, 0.9, nesterov, 0.9, 0.999, 1e-8};
            mt_optim *a = NULL, *b = NULL;
            MT_TEST_OK(mt_optim_create(&cfg, N, &a));
            MT_TEST_OK(mt_optim_create(&cfg, N, &b));
            mt_test_fill(w1, N, -1.0f, 1.0f, 31);
            memcpy(w2, w1, sizeof w1);
            for (int k = 0; k < 3; k++) {
                mt_test_fill(g1, N, -0.5f, 0.5f, 40 + (uint64_t)k);
                memcpy(g2, g1, sizeof g1);
                for (int i = 0; i < N; i++)
                    g1[i] += wd * w1[i];
                CU_ASSERT_EQUAL(mt_optim_step(a, w1, g1), 1);
                CU_ASSERT_EQUAL(mt_optim_step_decayed(b, w2, g2, wd), 1);
                CU_ASSERT(memcmp(g1, g2, sizeof g1) == 0);
                CU_ASSERT(memcmp(w1, w2, sizeof w1) == 0);
            }
            for (int i = 0; i < a->n_states; i++)
                CU_ASSERT(memcmp(a->state[i], b->state[i], sizeof(float) * N) == 0);
            mt_optim_destroy(&a);
            mt_optim_destroy(&b);
        }
}

int main(void)
{
    const mt_test_case tests[] = {
        {"plain", test_plain},
        {"plain with a learning rate", test_plain_lr},
        {"plain equals sgd without momentum", test_plain_is_sgd_without_momentum},
        {"sgd momentum", test_sgd_momentum},
        {"sgd nesterov", test_sgd_nesterov},
        {"adam", test_adam},
        {"every rule reports non-finite parameters", test_reports_finite},
        {"decay in the update's pass = decay in a pass of its own", test_decayed_is_two_passes},
    };
    return mt_test_main("optim", tests, (int)(sizeof tests / sizeof tests[0]));
}
