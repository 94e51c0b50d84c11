/*
 * relu.c - y = max(x, 0) elementwise. The derivative is taken as 0 at
 * exactly x = 0 (as PyTorch). NaN inputs propagate to the output.
 */
#include "op_impl.h"
#include "ops/closed.h"

static mt_status relu_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    size_t total = mt_shape_size(op->in) * (size_t)(n > 0 ? n : 0);

    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
    mt_relu_forward(total, x, y);
    return MT_OK;
}

/* out = v where x > 0, else 0: both J^T dy and J v (J is diagonal). */
static mt_status relu_mask(mt_op *op, int n, const float *x, const float *v, float *out)
{
    size_t total = mt_shape_size(op->in) * (size_t)(n > 0 ? n : 0);

    MT_CHECK(mt_op_check_args(op, NULL, n, x, v, out));
    mt_relu_mask(total, x, v, out);
    return MT_OK;
}

static mt_status relu_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dx)
{
    (void)w;
    MT_CHECK(relu_mask(op, n, x, dy, dx));
    return MT_OK;
}

static mt_status relu_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                            float *vy)
{
    (void)w;
    MT_CHECK(relu_mask(op, n, x, vx, vy));
    return MT_OK;
}

static void exact_report(mt_solve_report *rep)
{
    if (rep)
        rep->iterations = 1, rep->residual = 0.0;
}

/* Exact elementwise minimiser of the M and A problems (closed_relu.c). */
static mt_status relu_solve_x(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                              const float *x, const float *fx, const float *lambda, float *y,
                              mt_solve_report *rep)
{
    (void)w, (void)fx;
    exact_report(rep);
    return mt_relu_solve(sp->kind, sp->s, (size_t)n * mt_shape_size(op->in), x, lambda, y);
}

static const mt_op_vtable relu_vtable = {
    .kind = "relu",
    .forward = relu_forward,
    .vjp_x = relu_vjp_x,
    .jvp_x = relu_jvp_x,
    .solve_x = relu_solve_x,
    .init = mt_op_init_none,
    .destroy = mt_op_destroy_plain,
};

mt_status mt_op_relu_create(const char *name, mt_shape in, mt_op **op)
{
    if (in.c <= 0 || in.h <= 0 || in.w <= 0)
        return MT_FAIL(MT_ERR_ARG, "relu op '%s': shape (%d, %d, %d) must be positive",
                       name ? name : "", in.c, in.h, in.w);
    MT_CHECK(mt_op_alloc(&relu_vtable, name, in, in, 0, op));
    return MT_OK;
}
