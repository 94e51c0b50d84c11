/*
 * gap.c - global average pooling (c, h, w) -> (c, 1, 1), sums in double.
 * Linear in x; OpenMP over samples.
 */
#include "op_impl.h"
#include "ops/closed.h"

static mt_status gap_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    int c = op->in.c, hw = op->in.h * op->in.w;

    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        mt_gap_forward(c, hw, x + (size_t)c * hw * i, y + (size_t)c * i);
    return MT_OK;
}

static mt_status gap_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                           float *dx)
{
    int c = op->in.c, hw = op->in.h * op->in.w;

    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, dy, dx, dx));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        mt_gap_backward(c, hw, dy + (size_t)c * i, dx + (size_t)c * hw * i);
    return MT_OK;
}

/* Linear: J v = gap(v). */
static mt_status gap_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                           float *vy)
{
    (void)x;
    MT_CHECK(gap_forward(op, w, n, vx, vy));
    return MT_OK;
}

static void exact_report(mt_solve_report *rep)
{
    if (rep)
        rep->iterations = 1, rep->residual = 0.0;
}

/* Exact, as for average pooling with one window (closed_pool.c). */
static mt_status gap_solve_x(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                             const float *x, const float *fx, const float *lambda, float *y,
                             mt_solve_report *rep)
{
    (void)w, (void)x, (void)fx;
    exact_report(rep);
    return mt_gap_solve(sp->kind, sp->s, (size_t)n, op->in, lambda, y);
}

static const mt_op_vtable gap_vtable = {
    .kind = "gap",
    .forward = gap_forward,
    .vjp_x = gap_vjp_x,
    .jvp_x = gap_jvp_x,
    .solve_x = gap_solve_x,
    .init = mt_op_init_none,
    .destroy = mt_op_destroy_plain,
};

mt_status mt_op_gap_create(const char *name, mt_shape in, mt_op **op)
{
    if (in.c <= 0 || in.h <= 0 || in.w <= 0)
        return MT_FAIL(MT_ERR_ARG, "gap op '%s': shape (%d, %d, %d) must be positive",
                       name ? name : "", in.c, in.h, in.w);
    MT_CHECK(mt_op_alloc(&gap_vtable, name, in, mt_shape_vec(in.c), 0, op));
    (*op)->flops = (double)mt_shape_size(in); /* one add per input */
    (*op)->is_affine = 1;
    return MT_OK;
}
