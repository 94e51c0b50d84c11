/*
 * pendulum_cost.c - terminal cost of the pendulum swing-up (ALGORITHMS.md
 * section 8): per sample l(x) = (theta - pi)^2 + 0.1 omega^2, h = mean of l.
 *
 * l is a separable quadratic, l(x) = sum_k c_k (x_k - t_k)^2 with
 * c = (1, 0.1) and t = (pi, 0), so with a = s / N the prox problem
 *   y = argmin_y  a sum_k c_k (x_k - y_k - t_k)^2 + |y|^2 / 2
 * has, per coordinate, the stationarity condition
 *   -2 a c_k (x_k - t_k - y_k) + y_k = 0,
 * hence the closed form y_k = 2 a c_k (x_k - t_k) / (1 + 2 a c_k).
 */
#include <math.h>
#include <stdlib.h>

#include "mtrain/control.h"

static const double cost_weight[2] = {1.0, MT_PENDULUM_OMEGA_WEIGHT};
static const double cost_target[2] = {MT_PENDULUM_TARGET, 0.0};

static mt_status cost_check(int n, int n_total, const void *x, const void *out)
{
    if (n < 0 || n_total < n || n_total < 1)
        return MT_FAIL(MT_ERR_ARG, "pendulum cost: micro-batch %d of mini-batch %d", n,
                       n_total);
    if (n > 0 && (!x || !out))
        return MT_FAIL(MT_ERR_ARG, "pendulum cost: NULL buffer for %d samples", n);
    return MT_OK;
}

static mt_status cost_value(mt_loss *loss, int n, const float *x, const void *targets,
                            float *l, int *correct)
{
    (void)loss;
    (void)targets;
    MT_CHECK(cost_check(n, n, x, l));
    for (int i = 0; i < n; i++) {
        double acc = 0.0;
        for (int k = 0; k < 2; k++) {
            double d = (double)x[2 * i + k] - cost_target[k];
            acc += cost_weight[k] * d * d;
        }
        l[i] = (float)acc;
        if (correct)
            correct[i] = 0;
    }
    return MT_OK;
}

/* g_i = grad l(x_i) / N = 2 c (x_i - t) / N. */
static mt_status cost_grad(mt_loss *loss, int n, int n_total, const float *x,
                           const void *targets, float *g)
{
    (void)loss;
    (void)targets;
    MT_CHECK(cost_check(n, n_total, x, g));
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 2; k++)
            g[2 * i + k] = (float)(2.0 * cost_weight[k] * ((double)x[2 * i + k] - cost_target[k])
                                   / n_total);
    return MT_OK;
}

/* Closed form (file comment); exact, so `tol` is not needed. The report's
 * residual is that of the double solution before rounding to float, the
 * worst over samples, relative to the gradient at y = 0. */
static mt_status cost_prox(mt_loss *loss, double s, int n, int n_total, const float *x,
                           const void *targets, double tol, float *y, mt_solve_report *rep)
{
    double a = s / n_total, worst = 0.0;

    (void)loss;
    (void)targets;
    (void)tol;
    MT_CHECK(cost_check(n, n_total, x, y));
    if (!(s >= 0.0) || !isfinite(s))
        return MT_FAIL(MT_ERR_ARG, "pendulum cost prox: need finite s >= 0, got %g", s);
    for (int i = 0; i < n; i++) {
        double g0 = 0.0, g1 = 0.0;
        for (int k = 0; k < 2; k++) {
            double e = (double)x[2 * i + k] - cost_target[k], ak = 2.0 * a * cost_weight[k];
            double yk = ak * e / (1.0 + ak);
            double gk = -ak * (e - yk) + yk;
            y[2 * i + k] = (float)yk;
            g0 += ak * e * ak * e;
            g1 += gk * gk;
        }
        if (g0 > 0.0)
            worst = fmax(worst, sqrt(g1 / g0));
    }
    if (rep) {
        rep->iterations = 1;
        rep->residual = worst;
    }
    return MT_OK;
}

static const mt_loss_vtable cost_vtable = {
    .kind = "pendulum_cost",
    .value = cost_value,
    .grad = cost_grad,
    .prox = cost_prox,
    .destroy = NULL,
};

mt_status mt_loss_pendulum_create(mt_loss **loss)
{
    mt_loss *l;

    if (!loss)
        return MT_FAIL(MT_ERR_ARG, "pendulum cost: NULL output pointer");
    l = calloc(1, sizeof *l);
    if (!l)
        return MT_FAIL(MT_ERR_MEM, "out of memory creating the pendulum cost");
    l->vt = &cost_vtable;
    l->in = mt_shape_vec(2);
    l->n_classes = 0;
    *loss = l;
    return MT_OK;
}
