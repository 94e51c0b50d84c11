/*
 * closed.h - exact (closed-form) solvers of the Moreau subproblems of
 * ALGORITHMS.md sections 3 and 5, as plain functions on arrays. The op files
 * (relu.c, avgpool.c, gap.c, dense.c) wire them into their vtables' solve_x
 * and solve_w. Private to the library (src/ops/), not a public header.
 *
 * Subproblems over y (see mt_subproblem in mtrain/op.h), s > 0, decay c >= 0:
 *   M:  s <lambda, f(z - y)> + ||y||^2 / 2       + c/2 ||z - y||^2
 *   A:  s ||f(z - y) - f(z) + lambda||^2 + ||y||^2 + c ||z - y||^2
 * Input problems (relu, pooling, dense inputs) have no decay.
 *
 * Layout as in op.h: a batch is [n][size]; dense weights are one block
 * [W (out x in) | b (out)] in PyTorch order, and the weight solution y has
 * the same layout.
 *
 * Determinism: every result is a function of the inputs alone, not of the
 * number of OpenMP threads. BLAS/LAPACK run single-threaded on work units of
 * shapes fixed by the problem: input problems per MT_BLOCK-sample tile
 * starting at sample 0 (so a micro-batch starting at a multiple of MT_BLOCK
 * gets the same bits as the whole batch), weight problems on fixed tiles of
 * the output, sums over the batch in one fixed order.
 *
 * Thread safety: each call parallelises internally with OpenMP; calls may not
 * run concurrently from several threads of one OpenMP team.
 */
#ifndef MTRAIN_OPS_CLOSED_H
#define MTRAIN_OPS_CLOSED_H

#include "mtrain/op.h"

/* ---- ReLU, elementwise (input problems) --------------------------------- */

/* Minimiser of one coordinate's subproblem, f = relu, no decay:
 *   M: s l relu(z - y) + y^2 / 2
 *   A: s (relu(z - y) - relu(z) + l)^2 + y^2
 * Both are non-convex in y; among equal minima the one of smaller |y| wins. */
double mt_relu_solve1(mt_sub_kind kind, double s, double z, double l);

/* y[i] = mt_relu_solve1(kind, s, z[i], lambda[i]) for i < n_elems, where z is
 * the relu's input (x), lambda the adjoint at its output. Fails with MT_ERR_ARG
 * unless s is finite and > 0. */
mt_status mt_relu_solve(mt_sub_kind kind, double s, size_t n_elems, const float *z,
                        const float *lambda, float *y);

/* ---- average pooling (input problems) ------------------------------------- */

/* Non-overlapping k x k average pooling P over inputs of shape `in` (floor
 * mode), lambda [n][c][h/k][w/k], y [n][c][h][w]. P P^T = I / k^2, so
 *   M: y = s P^T lambda,   A: y = s P^T lambda / (1 + s / k^2);
 * inputs in dropped trailing rows/columns get y = 0. MT_ERR_ARG on bad s, k. */
mt_status mt_avgpool_solve(mt_sub_kind kind, double s, size_t n, mt_shape in, int k,
                           const float *lambda, float *y);

/* Global average pooling (c, h, w) -> (c, 1, 1): the same with window h x w;
 * lambda [n][c], y [n][c][h][w]. */
mt_status mt_gap_solve(mt_sub_kind kind, double s, size_t n, mt_shape in, const float *lambda,
                       float *y);

/* ---- dense layer f(W, x) = W x + b ----------------------------------------- */

/* Which linear system an A problem is solved through. NORMAL: the normal
 * equations in the unknown's dimension ((in+1) for weights, in for inputs);
 * DUAL: the push-through form in the other dimension (n for weights, out for
 * inputs). AUTO picks the smaller (NORMAL on ties). Both give the same
 * minimiser up to rounding; the choice only matters for speed. */
typedef enum { MT_CLOSED_AUTO = 0, MT_CLOSED_NORMAL, MT_CLOSED_DUAL } mt_closed_side;

/* Input problems of a dense layer, w = [W (out x in) | b], lambda [n][out],
 * y [n][in]; sp->decay must be 0:
 *   M: y_i = s W^T lambda_i
 *   A: y_i = (s W^T W + I)^{-1} s W^T lambda_i  (= W^T (s W W^T + I)^{-1} s lambda_i)
 * One Cholesky factorisation (double) shared by the whole batch.
 * MT_ERR_ARG on bad arguments, MT_ERR_MEM, MT_ERR_NUMERIC if it fails. */
mt_status mt_dense_solve_x(const mt_subproblem *sp, mt_closed_side side, size_t n, int in,
                           int out, const float *w, const float *lambda, float *y);

/* A kept Cholesky factor of an input problem's K, reused while the weights
 * (compared exactly), s and side are unchanged: the micro-batches of one step
 * share one factorisation. Owned by the op; free with mt_dense_factor_free. */
typedef struct {
    float *w;      /* copy of the weights the factor belongs to */
    size_t n_w;
    double s;
    int dual;
    size_t dim;
    double *k;     /* dim x dim lower Cholesky factor */
} mt_dense_factor;

void mt_dense_factor_free(mt_dense_factor *f);
/* mt_dense_solve_x with a factor cache (NULL: none). */
mt_status mt_dense_solve_x_cached(const mt_subproblem *sp, mt_closed_side side, size_t n,
                                  int in, int out, const float *w, const float *lambda, float *y,
                                  mt_dense_factor *cache);

/* Weight problems of a dense layer over the whole batch x [n][in],
 * lambda [n][out]; w and y are [W | b] blocks of out*(in+1) floats. With
 * X~ = [x, 1], W~ = [W, b], V~ = [V, v_b] and c = sp->decay:
 *   M: V~ = (s Lambda^T X~ + c W~) / (1 + c)
 *   A: V~^T = (s X~^T X~ + (1+c) I)^{-1} (s X~^T Lambda + c W~^T)
 * the A problem through `side` (see mt_closed_side and closed_dense.c for the
 * push-through with decay). Errors as mt_dense_solve_x. */
mt_status mt_dense_solve_w(const mt_subproblem *sp, mt_closed_side side, size_t n, int in,
                           int out, const float *w, const float *x, const float *lambda,
                           float *y);

/* ---- double-precision helpers (closed_linalg.c) ---------------------------- */

/* C = A'^T B' in double from float inputs, A' (m x p), B' (m x q), C (p x q,
 * row-major, leading dimension ldc). A' is stored as a (a_rows = 1: a[k][j] at
 * a[k*lda + j]) or as its transpose (a_rows = 0: a[j][k] at a[j*lda + k]);
 * likewise B'. With sym (A' = B'), only the upper tiles are computed and
 * mirrored. Tiles of C run in parallel; each sums over k in a fixed order. */
mt_status mt_closed_gemm_tn_d(size_t p, size_t q, size_t m, const float *a, size_t lda,
                              int a_rows, const float *b, size_t ldb, int b_rows, int sym,
                              double *c, size_t ldc);

/* In-place lower Cholesky factor (column-major, leading dimension dim) of a
 * symmetric positive definite dim x dim matrix; tiled and parallel, with a
 * result independent of the thread count. MT_ERR_NUMERIC if not definite. */
mt_status mt_closed_cholesky_d(int dim, double *g);

/* b (column-major dim x nrhs, leading dimension ldb) := K^{-1} b where g holds
 * K's Cholesky factor from mt_closed_cholesky_d. Serial: call it from inside a
 * parallel loop over fixed right-hand-side tiles. */
void mt_closed_cholesky_solve_d(int dim, const double *g, int nrhs, double *b, int ldb);

#endif
