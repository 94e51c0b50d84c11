/*
 * square.c - squared loss l_i = ||x_i - t_i||^2 / 2 with float targets t of
 * the input's shape. Gradient rows (x_i - t_i)/N; prox in closed form:
 *   argmin_y c ||x - y - t||^2 / 2 + ||y||^2 / 2 = c (x - t) / (1 + c),
 * c = s / N.
 */
#include "loss_impl.h"

static mt_status square_value(mt_loss *loss, int n, const float *x, const void *targets, float *l,
                              int *correct)
{
    const float *t = targets;
    size_t d = mt_shape_size(loss->in);

    MT_CHECK(mt_loss_check_args(loss, n, n, 0.0, x, targets, l));
    for (int i = 0; i < n; i++) {
        double sum = 0.0;
        for (size_t j = 0; j < d; j++) {
            double r = (double)x[d * i + j] - t[d * i + j];
            sum += r * r;
        }
        l[i] = (float)(0.5 * sum);
        if (correct)
            correct[i] = 0;
    }
    return MT_OK;
}

static mt_status square_grad(mt_loss *loss, int n, int n_total, const float *x, const void *targets,
                             float *g)
{
    const float *t = targets;
    size_t total = mt_shape_size(loss->in) * (size_t)(n > 0 ? n : 0);

    MT_CHECK(mt_loss_check_args(loss, n, n_total, 0.0, x, targets, g));
    for (size_t j = 0; j < total; j++)
        g[j] = (float)(((double)x[j] - t[j]) / n_total);
    return MT_OK;
}

static mt_status square_prox(mt_loss *loss, double s, int n, int n_total, const float *x,
                             const void *targets, double tol, float *y, mt_solve_report *rep)
{
    const float *t = targets;
    size_t total = mt_shape_size(loss->in) * (size_t)(n > 0 ? n : 0);
    double c;

    (void)tol;
    MT_CHECK(mt_loss_check_args(loss, n, n_total, s, x, targets, y));
    c = n > 0 ? s / n_total : 0.0;
    for (size_t j = 0; j < total; j++)
        y[j] = (float)(c * ((double)x[j] - t[j]) / (1.0 + c));
    if (rep) {
        rep->iterations = 0; /* closed form */
        rep->residual = 0.0;
    }
    return MT_OK;
}

static const mt_loss_vtable square_vtable = {
    .kind = "square",
    .value = square_value,
    .grad = square_grad,
    .prox = square_prox,
    .destroy = mt_loss_destroy_plain,
};

mt_status mt_loss_square_create(mt_shape in, mt_loss **loss)
{
    if (in.c <= 0 || in.h <= 0 || in.w <= 0)
        return MT_FAIL(MT_ERR_ARG, "square loss: shape (%d, %d, %d) must be positive", in.c, in.h,
                       in.w);
    MT_CHECK(mt_loss_alloc(&square_vtable, in, 0, 0, loss));
    return MT_OK;
}
