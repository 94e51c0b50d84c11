/*
 * dense.c - fully connected layer y_i = W x_i + b, W [out][in], b [out].
 *
 * All three products run on the FMA micro-kernel: y = x W^T (mt_gemm_nt),
 * dx = dy W (mt_gemm_nn), dW = dy^T x (mt_gemm_tn). Each element is one FMA
 * chain, so sample i's outputs depend only on its own data and the weight
 * gradient sums the samples in order (fixed by n); db sums rows in sample
 * order in double.
 */
#include <math.h>
#include <string.h>

#include "op_impl.h"
#include "ops/closed.h"

typedef struct {
    int in, out;
    mt_scratch ws; /* packed operands of the batch products */
    mt_dense_factor factor; /* input problems: K's factor for the current weights */
} dense_priv;

/* y = x W^T (+ bias when not NULL). */
static mt_status dense_apply(mt_op *op, const float *wt, const float *bias, int n, const float *x,
                             float *y)
{
    dense_priv *p = op->priv;

    MT_CHECK(mt_gemm_nt(n, p->out, p->in, x, p->in, wt, p->in, y, p->out, &p->ws));
    if (bias)
        mt_add_row_bias(n, p->out, bias, y, p->out);
    return MT_OK;
}

static mt_status dense_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    dense_priv *p = op->priv;

    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
    MT_CHECK(dense_apply(op, w, w + (size_t)p->out * p->in, n, x, y));
    return MT_OK;
}

static mt_status dense_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                             float *dx)
{
    dense_priv *p = op->priv;

    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, dy, dx, dx));
    MT_CHECK(mt_gemm_nn(n, p->in, p->out, dy, p->out, w, p->in, dx, p->in, &p->ws));
    return MT_OK;
}

static mt_status dense_vjp_w(mt_op *op, const float *w, int n, const float *x, const float *dy,
                             float *dw)
{
    dense_priv *p = op->priv;

    MT_CHECK(mt_op_check_args(op, w, n, x, dy, dw));
    if (!dw)
        return MT_FAIL(MT_ERR_ARG, "dense op '%s': NULL weight gradient", op->name);

    /* dW[out][in] = dY^T X: chains over the samples in order */
    MT_CHECK(mt_gemm_tn(p->out, p->in, n, dy, p->out, x, p->in, dw, p->in, &p->ws));
    mt_sum_rows(n, p->out, dy, p->out, dw + (size_t)p->out * p->in);
    return MT_OK;
}

static mt_status dense_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                             float *vy)
{
    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, vx, vy, vy));
    MT_CHECK(dense_apply(op, w, NULL, n, vx, vy));
    return MT_OK;
}

/* phi is linear in (W, b): J_w(x) v = V x + vb, the forward pass at v. */
static mt_status dense_jvp_w(mt_op *op, const float *w, int n, const float *x, const float *vw,
                             float *vy)
{
    (void)w;
    MT_CHECK(mt_op_check_args(op, vw, n, x, vw, vy));
    MT_CHECK(dense_forward(op, vw, n, x, vy));
    return MT_OK;
}

/* PyTorch's nn.Linear: W and b uniform in +-1/sqrt(in), W first. */
static mt_status dense_init(mt_op *op, mt_rng *rng, float *w)
{
    dense_priv *p = op->priv;
    float bound = (float)(1.0 / sqrt((double)p->in));

    mt_op_fill_uniform(rng, bound, (size_t)p->out * p->in, w);
    mt_op_fill_uniform(rng, bound, (size_t)p->out, w + (size_t)p->out * p->in);
    return MT_OK;
}

static void dense_destroy(mt_op *op)
{
    dense_priv *p = op->priv;

    if (p) {
        mt_scratch_free(&p->ws);
        mt_dense_factor_free(&p->factor);
    }
    mt_op_destroy_plain(op);
}

static void exact_report(mt_solve_report *rep)
{
    if (rep)
        rep->iterations = 1, rep->residual = 0.0;
}

/* Exact input problems: one factorisation shared by the batch, in the
 * smaller of the in x in and out x out systems (closed_dense.c). */
static mt_status dense_solve_x(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                               const float *x, const float *fx, const float *lambda, float *y,
                               mt_solve_report *rep)
{
    dense_priv *p = op->priv;
    (void)x, (void)fx;
    exact_report(rep);
    return mt_dense_solve_x_cached(sp, MT_CLOSED_AUTO, (size_t)n, p->in, p->out, w, lambda, y,
                                   &p->factor);
}

/* Exact proximal weight step through the smaller of the (in+1) and n systems
 * (push-through identity, closed_dense.c). */
static mt_status dense_solve_w(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                               const float *x, const float *fx, const float *lambda, float *y,
                               mt_solve_report *rep)
{
    dense_priv *p = op->priv;
    (void)fx;
    exact_report(rep);
    return mt_dense_solve_w(sp, MT_CLOSED_AUTO, (size_t)n, p->in, p->out, w, x, lambda, y);
}

static const mt_op_vtable dense_vtable = {
    .kind = "dense",
    .forward = dense_forward,
    .vjp_x = dense_vjp_x,
    .vjp_w = dense_vjp_w,
    .jvp_x = dense_jvp_x,
    .jvp_w = dense_jvp_w,
    .solve_x = dense_solve_x,
    .solve_w = dense_solve_w,
    .init = dense_init,
    .destroy = dense_destroy,
};

mt_status mt_op_dense_create(const char *name, int in, int out, mt_op **op)
{
    dense_priv *p;

    if (in <= 0 || out <= 0)
        return MT_FAIL(MT_ERR_ARG, "dense op '%s': sizes in=%d out=%d must be positive",
                       name ? name : "", in, out);
    MT_CHECK(mt_op_alloc(&dense_vtable, name, mt_shape_vec(in), mt_shape_vec(out),
                         sizeof(dense_priv), op));
    p = (*op)->priv;
    p->in = in;
    p->out = out;
    mt_op_add_tensor(*op, "weight", 2, (const int[]){out, in});
    mt_op_add_tensor(*op, "bias", 1, (const int[]){out});
    (*op)->flops = 2.0 * in * out;
    (*op)->is_affine = 1;
    return MT_OK;
}
