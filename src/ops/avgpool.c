/*
 * avgpool.c - non-overlapping average pooling, window = stride = k, floor
 * mode: trailing rows and columns that do not fill a window are dropped
 * (their gradient is 0). Linear in x; OpenMP over samples.
 */
#include "op_impl.h"
#include "ops/closed.h"

typedef struct {
    int k;
} avgpool_priv;

static mt_status avgpool_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    int k = ((avgpool_priv *)op->priv)->k;
    mt_shape in = op->in;
    size_t in_sz = mt_shape_size(in), out_sz = mt_shape_size(op->out);

    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        mt_avgpool_forward(in.c, in.h, in.w, k, x + in_sz * i, y + out_sz * i);
    return MT_OK;
}

static mt_status avgpool_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                               float *dx)
{
    int k = ((avgpool_priv *)op->priv)->k;
    mt_shape in = op->in;
    size_t in_sz = mt_shape_size(in), out_sz = mt_shape_size(op->out);

    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, dy, dx, dx));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        mt_avgpool_backward(in.c, in.h, in.w, k, dy + out_sz * i, dx + in_sz * i);
    return MT_OK;
}

/* Linear: J v = pool(v). */
static mt_status avgpool_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                               float *vy)
{
    (void)x;
    MT_CHECK(avgpool_forward(op, w, n, vx, vy));
    return MT_OK;
}

static void exact_report(mt_solve_report *rep)
{
    if (rep)
        rep->iterations = 1, rep->residual = 0.0;
}

/* Exact: P P^T = I / k^2 makes both problems diagonal (closed_pool.c). */
static mt_status avgpool_solve_x(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                                 const float *x, const float *fx, const float *lambda, float *y,
                                 mt_solve_report *rep)
{
    (void)w, (void)x, (void)fx;
    exact_report(rep);
    return mt_avgpool_solve(sp->kind, sp->s, (size_t)n, op->in,
                            ((avgpool_priv *)op->priv)->k, lambda, y);
}

static const mt_op_vtable avgpool_vtable = {
    .kind = "avgpool",
    .forward = avgpool_forward,
    .vjp_x = avgpool_vjp_x,
    .jvp_x = avgpool_jvp_x,
    .solve_x = avgpool_solve_x,
    .init = mt_op_init_none,
    .destroy = mt_op_destroy_plain,
};

mt_status mt_op_avgpool_create(const char *name, mt_shape in, int k, mt_op **op)
{
    if (in.c <= 0 || k <= 0 || in.h < k || in.w < k)
        return MT_FAIL(MT_ERR_ARG, "avgpool op '%s': window %d does not fit shape (%d, %d, %d)",
                       name ? name : "", k, in.c, in.h, in.w);
    mt_shape out = {in.c, in.h / k, in.w / k};
    MT_CHECK(mt_op_alloc(&avgpool_vtable, name, in, out, sizeof(avgpool_priv), op));
    ((avgpool_priv *)(*op)->priv)->k = k;
    (*op)->flops = (double)out.c * out.h * out.w * k * k; /* one add per pooled input */
    (*op)->is_affine = 1;
    return MT_OK;
}
