/*
 * test_losses.c - cross-entropy and squared loss against direct formulas,
 * finite differences and the optimality condition of their prox.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/loss.h"
#include "testutil.h"

enum { C = 10, N_TOTAL = 128, NS = 20 };

/* logsumexp(x) - x[label] in long double, shifted by the max. */
static double xent_ref(const float *x, int label)
{
    long double m = x[0], s = 0;
    for (int j = 1; j < C; j++)
        m = x[j] > m ? x[j] : m;
    for (int j = 0; j < C; j++)
        s += expl(x[j] - m);
    return (double)(m + logl(s) - x[label]);
}

static void softmax_ref(const double *z, double *p)
{
    double m = z[0], s = 0;
    for (int j = 1; j < C; j++)
        m = fmax(m, z[j]);
    for (int j = 0; j < C; j++)
        s += (p[j] = exp(z[j] - m));
    for (int j = 0; j < C; j++)
        p[j] /= s;
}

static void make_batch(float *x, int32_t *labels, int n, float scale, uint64_t seed)
{
    mt_rng rng = mt_rng_make(seed, 3);
    mt_test_fill(x, (size_t)n * C, -scale, scale, seed);
    for (int i = 0; i < n; i++)
        labels[i] = (int32_t)mt_rng_below(&rng, C);
}

static void test_xent_value(void)
{
    mt_loss *loss = NULL;
    float x[NS * C], l[NS];
    int32_t labels[NS];
    int correct[NS];

    MT_TEST_OK(mt_loss_xent_create(C, &loss));
    CU_ASSERT(loss->n_classes == C && loss->in.c == C && loss->in.h == 1);
    make_batch(x, labels, NS, 3.0f, 1);
    /* Extreme logits: a naive exp would overflow. */
    for (int j = 0; j < C; j++)
        x[j] = j == 3 ? 1000.0f : -1000.0f + j;
    labels[0] = 4;
    MT_TEST_OK(loss->vt->value(loss, NS, x, labels, l, correct));
    for (int i = 0; i < NS; i++) {
        double ref = xent_ref(x + C * i, labels[i]);
        /* value computed in double, stored in float: half an ulp */
        CU_ASSERT(fabs(l[i] - ref) <= 1e-7 * fabs(ref) + 1e-7);
        int best = 0;
        for (int j = 1; j < C; j++)
            best = x[C * i + j] > x[C * i + best] ? j : best;
        CU_ASSERT_EQUAL(correct[i], best == labels[i]);
    }
    CU_ASSERT(fabs(l[0] - 1996.0) < 1e-3);

    /* Ties: the first maximum is the prediction. */
    float t[C] = {1, 3, 3, 0, 0, 0, 0, 0, 0, 0};
    int32_t lab1 = 1, lab2 = 2;
    MT_TEST_OK(loss->vt->value(loss, 1, t, &lab1, l, correct));
    CU_ASSERT_EQUAL(correct[0], 1);
    MT_TEST_OK(loss->vt->value(loss, 1, t, &lab2, l, correct));
    CU_ASSERT_EQUAL(correct[0], 0);
    MT_TEST_OK(loss->vt->value(loss, 1, t, &lab2, l, NULL)); /* correct is optional */
    mt_loss_destroy(&loss);
    CU_ASSERT_PTR_NULL(loss);
}

/* grad against central differences of the float values: h = 1e-2, the
 * truncation error h^2/6 |l'''| < 1e-5 and the rounding of l (half an ulp
 * of values < 8, i.e. < 5e-7) over 2h < 3e-5; tolerance 1e-4 on N g. */
static void test_xent_grad(void)
{
    mt_loss *loss = NULL;
    float x[NS * C], g[NS * C], lp[NS], lm[NS], h = 1e-2f;
    int32_t labels[NS];
    double worst = 0, worst_sum = 0;

    MT_TEST_OK(mt_loss_xent_create(C, &loss));
    make_batch(x, labels, NS, 3.0f, 2);
    MT_TEST_OK(loss->vt->grad(loss, NS, N_TOTAL, x, labels, g));
    for (int j = 0; j < C; j++) {
        float xs[NS * C], xm[NS * C];
        memcpy(xs, x, sizeof(x));
        memcpy(xm, x, sizeof(x));
        for (int i = 0; i < NS; i++)
            xs[C * i + j] += h, xm[C * i + j] -= h;
        MT_TEST_OK(loss->vt->value(loss, NS, xs, labels, lp, NULL));
        MT_TEST_OK(loss->vt->value(loss, NS, xm, labels, lm, NULL));
        for (int i = 0; i < NS; i++) {
            double fd = ((double)lp[i] - lm[i]) / ((double)xs[C * i + j] - xm[C * i + j]);
            worst = fmax(worst, fabs(fd - (double)N_TOTAL * g[C * i + j]));
        }
    }
    for (int i = 0; i < NS; i++) {
        double s = 0;
        for (int j = 0; j < C; j++)
            s += g[C * i + j];
        worst_sum = fmax(worst_sum, fabs(s)); /* softmax sums to 1 = the one-hot */
    }
    printf("      xent grad vs fd: %.1e, row sums %.1e\n", worst, worst_sum);
    CU_ASSERT(worst <= 1e-4);
    CU_ASSERT(worst_sum <= 1e-8);
    mt_loss_destroy(&loss);
}

/* ||y - c (softmax(x - y) - e)|| / ||c (softmax(x) - e)|| for float y. */
static double xent_prox_residual(const float *x, int label, const float *y, double c)
{
    double z[C], p[C], r = 0, r0 = 0;
    for (int j = 0; j < C; j++)
        z[j] = (double)x[j];
    softmax_ref(z, p);
    for (int j = 0; j < C; j++)
        r0 += pow(c * (p[j] - (j == label)), 2);
    for (int j = 0; j < C; j++)
        z[j] = (double)x[j] - y[j];
    softmax_ref(z, p);
    for (int j = 0; j < C; j++)
        r += pow(y[j] - c * (p[j] - (j == label)), 2);
    return r0 > 0 ? sqrt(r / r0) : sqrt(r);
}

/* The prox solves its optimality condition. Requested tol 1e-7 (reported
 * in double); the float result is checked at 1e-5: rounding y to float moves
 * the gradient by at most ||H|| u ||y|| <= (1 + c/2) u ||g(0)||, < 1e-6 for
 * c <= 10 (||y|| <= ||g(0)|| by strong convexity with modulus 1). */
static void test_xent_prox(void)
{
    double steps[] = {0.1, 1.0, 10.0, 1000.0};
    mt_loss *loss = NULL;
    float x[NS * C], y[NS * C];
    int32_t labels[NS];
    mt_solve_report rep;

    MT_TEST_OK(mt_loss_xent_create(C, &loss));
    make_batch(x, labels, NS, 3.0f, 3);
    for (int j = 0; j < C; j++)
        x[C + j] = j == labels[1] ? -40.0f : 40.0f * (j % 2); /* confidently wrong */
    for (int t = 0; t < 4; t++) {
        double worst = 0, c = steps[t] / N_TOTAL;
        MT_TEST_OK(loss->vt->prox(loss, steps[t], NS, N_TOTAL, x, labels, 1e-7, y, &rep));
        for (int i = 0; i < NS; i++)
            worst = fmax(worst, xent_prox_residual(x + C * i, labels[i], y + C * i, c));
        printf("      xent prox s=%g: %d Newton steps, residual %.1e (float y: %.1e)\n", steps[t],
               rep.iterations, rep.residual, worst);
        CU_ASSERT(rep.iterations >= 1 && rep.iterations <= 50);
        CU_ASSERT(rep.residual <= 1e-7);
        CU_ASSERT(worst <= 1e-5);
    }

    /* A very large step (c = 1e4) needs the damped steps; with float y the
     * rounding bound (1 + c/2) u is ~3e-4, so check the reported residual
     * and the float one at 1e-3. */
    MT_TEST_OK(loss->vt->prox(loss, 1e4, 1, 1, x + C, labels + 1, 1e-7, y, &rep));
    printf("      xent prox c=1e4: %d steps, residual %.1e\n", rep.iterations, rep.residual);
    CU_ASSERT(rep.residual <= 1e-7);
    CU_ASSERT(xent_prox_residual(x + C, labels[1], y, 1e4) <= 1e-3);

    /* s = 0: the prox is 0. */
    MT_TEST_OK(loss->vt->prox(loss, 0.0, NS, N_TOTAL, x, labels, 1e-7, y, &rep));
    for (int i = 0; i < NS * C; i++)
        CU_ASSERT_EQUAL(y[i], 0.0f);
    mt_loss_destroy(&loss);
}

static void test_square(void)
{
    mt_shape s = {2, 3, 2};
    enum { D = 12 };
    mt_loss *loss = NULL;
    float x[NS * D], t[NS * D], l[NS], g[NS * D], y[NS * D];
    int correct[NS];
    mt_solve_report rep;
    double sstep = 5.0, c = sstep / N_TOTAL;

    MT_TEST_OK(mt_loss_square_create(s, &loss));
    CU_ASSERT(loss->n_classes == 0);
    mt_test_fill(x, NS * D, -2, 2, 4);
    mt_test_fill(t, NS * D, -1, 1, 5);
    MT_TEST_OK(loss->vt->value(loss, NS, x, t, l, correct));
    MT_TEST_OK(loss->vt->grad(loss, NS, N_TOTAL, x, t, g));
    MT_TEST_OK(loss->vt->prox(loss, sstep, NS, N_TOTAL, x, t, 1e-7, y, &rep));
    CU_ASSERT(rep.iterations == 0 && rep.residual == 0.0);
    for (int i = 0; i < NS; i++) {
        double ref = 0;
        for (int j = 0; j < D; j++) {
            double r = (double)x[D * i + j] - t[D * i + j];
            ref += r * r / 2;
            /* each a few double operations rounded once to float: 1 ulp */
            CU_ASSERT(fabs(g[D * i + j] - r / N_TOTAL) <= 1.2e-7 * fabs(r / N_TOTAL));
            CU_ASSERT(fabs(y[D * i + j] - c * r / (1 + c)) <= 1.2e-7 * fabs(c * r / (1 + c)));
            /* optimality: y - c (x - y - t) = 0 up to the rounding of y */
            CU_ASSERT(fabs(y[D * i + j] - c * (r - y[D * i + j])) <= 1e-6 * fabs(r) * c);
        }
        CU_ASSERT(fabs(l[i] - ref) <= 1.2e-7 * ref);
        CU_ASSERT_EQUAL(correct[i], 0);
    }
    mt_loss_destroy(&loss);
}

static void test_loss_errors(void)
{
    mt_loss *loss = NULL;
    float x[C] = {0}, y[C];
    int32_t bad = C, ok = 0;
    mt_shape s = {C, 1, 1};

    CU_ASSERT_EQUAL(mt_loss_xent_create(1, &loss), MT_ERR_ARG);
    MT_TEST_OK(mt_loss_xent_create(C, &loss));
    CU_ASSERT_EQUAL(loss->vt->grad(loss, 1, 1, x, &bad, y), MT_ERR_ARG);
    CU_ASSERT_EQUAL(loss->vt->grad(loss, 2, 1, x, &ok, y), MT_ERR_ARG);
    CU_ASSERT_EQUAL(loss->vt->prox(loss, -1.0, 1, 1, x, &ok, 1e-7, y, NULL), MT_ERR_ARG);
    MT_TEST_OK(loss->vt->prox(loss, 1.0, 1, 1, x, &ok, 1e-7, y, NULL)); /* report optional */
    {
        /* Non-finite logits of one sample (a diverged step): its prox is NaN,
         * the other sample's is untouched, the report's residual is NaN, and
         * the call succeeds (the trainer's finiteness check stops the run). */
        float x2[2 * C], y2[2 * C], y1[C];
        int32_t labels[2] = {0, 1};
        mt_solve_report rep = {0};
        for (int j = 0; j < 2 * C; j++)
            x2[j] = 0.1f * (float)j;
        MT_TEST_OK(loss->vt->prox(loss, 1.0, 1, 2, x2 + C, labels + 1, 1e-7, y1, NULL));
        x2[2] = INFINITY;
        MT_TEST_OK(loss->vt->prox(loss, 1.0, 2, 2, x2, labels, 1e-7, y2, &rep));
        for (int j = 0; j < C; j++) {
            CU_ASSERT(isnan(y2[j]));
            CU_ASSERT_EQUAL(y2[C + j], y1[j]);
        }
        CU_ASSERT(isnan(rep.residual));
    }
    mt_loss_destroy(&loss);
    MT_TEST_OK(mt_loss_square_create(s, &loss));
    CU_ASSERT_EQUAL(loss->vt->grad(loss, 1, 1, x, NULL, y), MT_ERR_ARG);
    mt_loss_destroy(&loss);
    mt_loss_destroy(&loss); /* accepts NULL */
    mt_error_clear();
}

int main(void)
{
    static const mt_test_case tests[] = {
        {"xent_value", test_xent_value},   {"xent_grad", test_xent_grad},
        {"xent_prox", test_xent_prox},     {"square", test_square},
        {"loss_errors", test_loss_errors},
    };
    return mt_test_main("losses", tests, sizeof(tests) / sizeof(tests[0]));
}
