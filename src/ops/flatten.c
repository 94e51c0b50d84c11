/*
 * flatten.c - reshape (c, h, w) -> (c h w, 1, 1): the identity on memory, so
 * every rule is a copy (nothing at all when the arrays coincide).
 */
#include "op_impl.h"

static mt_status flatten_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
    mt_op_copy_batch(op, n, x, y);
    return MT_OK;
}

static mt_status flatten_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                               float *dx)
{
    (void)x;
    MT_CHECK(flatten_forward(op, w, n, dy, dx));
    return MT_OK;
}

static mt_status flatten_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                               float *vy)
{
    (void)x;
    MT_CHECK(flatten_forward(op, w, n, vx, vy));
    return MT_OK;
}

/* The identity's subproblems are scalar per element: M gives y = s lambda,
 * A gives y = s lambda / (1 + s). */
static mt_status flatten_solve_x(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                                 const float *x, const float *fx, const float *lambda, float *y,
                                 mt_solve_report *rep)
{
    const size_t count = (size_t)n * mt_shape_size(op->in);
    const float a = (float)(sp->kind == MT_SUB_M ? sp->s : sp->s / (1.0 + sp->s));

    (void)w, (void)x, (void)fx;
    if (!(sp->s > 0.0))
        return MT_FAIL(MT_ERR_ARG, "flatten solve_x: s = %g must be > 0", sp->s);
    for (size_t i = 0; i < count; i++)
        y[i] = a * lambda[i];
    if (rep)
        rep->iterations = 1, rep->residual = 0.0;
    return MT_OK;
}

static const mt_op_vtable flatten_vtable = {
    .kind = "flatten",
    .forward = flatten_forward,
    .vjp_x = flatten_vjp_x,
    .jvp_x = flatten_jvp_x,
    .solve_x = flatten_solve_x,
    .init = mt_op_init_none,
    .destroy = mt_op_destroy_plain,
};

mt_status mt_op_flatten_create(const char *name, mt_shape in, mt_op **op)
{
    if (in.c <= 0 || in.h <= 0 || in.w <= 0)
        return MT_FAIL(MT_ERR_ARG, "flatten op '%s': shape (%d, %d, %d) must be positive",
                       name ? name : "", in.c, in.h, in.w);
    MT_CHECK(mt_op_alloc(&flatten_vtable, name, in, mt_shape_vec((int)mt_shape_size(in)), 0, op));
    (*op)->is_affine = 1;
    return MT_OK;
}
