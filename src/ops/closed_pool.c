/*
 * closed_pool.c - exact M and A solvers of non-overlapping average pooling
 * and global average pooling (input problems, ALGORITHMS.md section 5).
 *
 * f = P is linear, each output the mean of its window of k = kh * kw inputs;
 * the windows are disjoint, so P P^T = I / k. Then
 *   M: the objective s <l, P z> - s <P^T l, y> + ||y||^2/2 has y = s P^T l;
 *   A: s ||l - P y||^2 + ||y||^2 is minimised by
 *      y = (s P^T P + I)^{-1} s P^T l = P^T (s P P^T + I)^{-1} s l
 *        = s P^T l / (1 + s / k)      (push-through, then P P^T = I / k).
 * (P^T l)_j = l_window(j) / k, so y_j = coef * l_window(j) with coef = s / k
 * (M) or s / (k + s) (A). Inputs outside every window (dropped trailing rows
 * and columns in floor mode) have (P^T l)_j = 0: they do not enter f, and
 * the ||y||^2 term alone sets them to 0.
 */
#include <math.h>

#include "ops/closed.h"

/* y[n][c][h][w] = coef * lambda[n][c][h/kh][w/kw] inside windows, else 0. */
static void pool_spread(double coef, size_t n, mt_shape in, int kh, int kw, const float *lambda,
                        float *y)
{
    int oh = in.h / kh, ow = in.w / kw;
    size_t planes = n * (size_t)in.c;

#pragma omp parallel for schedule(static)
    for (size_t pl = 0; pl < planes; pl++) {
        const float *l = lambda + pl * oh * ow;
        float *yp = y + pl * in.h * in.w;

        for (int i = 0; i < in.h; i++) {
            for (int j = 0; j < in.w; j++) {
                int inside = i < oh * kh && j < ow * kw;
                double v = inside ? coef * l[(i / kh) * ow + j / kw] : 0.0;
                yp[i * in.w + j] = (float)v;
            }
        }
    }
}

static mt_status pool_solve(mt_sub_kind kind, double s, size_t n, mt_shape in, int kh, int kw,
                            const float *lambda, float *y)
{
    double k = (double)kh * kw;

    if (!(s > 0.0) || !isfinite(s))
        return MT_FAIL(MT_ERR_ARG, "pooling solver: s = %g must be finite and > 0", s);
    if (kind != MT_SUB_M && kind != MT_SUB_A)
        return MT_FAIL(MT_ERR_ARG, "pooling solver: unknown subproblem kind %d", (int)kind);
    if (in.c < 1 || in.h < 1 || in.w < 1)
        return MT_FAIL(MT_ERR_ARG, "pooling solver: bad input shape (%d, %d, %d)", in.c, in.h,
                       in.w);
    if (kh < 1 || kw < 1 || kh > in.h || kw > in.w)
        return MT_FAIL(MT_ERR_ARG, "pooling solver: window %d x %d does not fit (%d, %d)", kh,
                       kw, in.h, in.w);

    pool_spread(kind == MT_SUB_M ? s / k : s / (k + s), n, in, kh, kw, lambda, y);
    return MT_OK;
}

mt_status mt_avgpool_solve(mt_sub_kind kind, double s, size_t n, mt_shape in, int k,
                           const float *lambda, float *y)
{
    MT_CHECK(pool_solve(kind, s, n, in, k, k, lambda, y));
    return MT_OK;
}

mt_status mt_gap_solve(mt_sub_kind kind, double s, size_t n, mt_shape in, const float *lambda,
                       float *y)
{
    MT_CHECK(pool_solve(kind, s, n, in, in.h, in.w, lambda, y));
    return MT_OK;
}
