/*
 * test_solvers.c - the generic inner solvers (gd:K, cg:K) on two small ops
 * defined here, so the solvers are checked independently of src/ops/:
 *   matrix  f(W, x) = W x, W [o][d]        (affine: Gauss-Newton is exact)
 *   tanh    f(x) = tanh(x), elementwise    (nonlinear)
 * Reference solutions are computed in double by dense Cholesky.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/oracle.h"
#include "testutil.h"

enum { D = 7, O = 5, N = 6 };

/* ---- the matrix op ----------------------------------------------------- */

static mt_status mat_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    (void)op;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < O; r++) {
            float s = 0.0f;
            for (int c = 0; c < D; c++)
                s += w[r * D + c] * x[i * D + c];
            y[i * O + r] = s;
        }
    return MT_OK;
}

static mt_status mat_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                           float *dx)
{
    (void)op, (void)x;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < D; c++) {
            float s = 0.0f;
            for (int r = 0; r < O; r++)
                s += w[r * D + c] * dy[i * O + r];
            dx[i * D + c] = s;
        }
    return MT_OK;
}

static mt_status mat_vjp_w(mt_op *op, const float *w, int n, const float *x, const float *dy,
                           float *dw)
{
    (void)op, (void)w;
    memset(dw, 0, sizeof(float) * O * D);
    for (int i = 0; i < n; i++)
        for (int r = 0; r < O; r++)
            for (int c = 0; c < D; c++)
                dw[r * D + c] += dy[i * O + r] * x[i * D + c];
    return MT_OK;
}

static mt_status mat_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                           float *vy)
{
    (void)x;
    return mat_forward(op, w, n, vx, vy);
}

static mt_status mat_jvp_w(mt_op *op, const float *w, int n, const float *x, const float *vw,
                           float *vy)
{
    (void)w;
    return mat_forward(op, vw, n, x, vy);
}

static const mt_op_vtable mat_vt = {.kind = "matrix",
                                    .forward = mat_forward,
                                    .vjp_x = mat_vjp_x,
                                    .vjp_w = mat_vjp_w,
                                    .jvp_x = mat_jvp_x,
                                    .jvp_w = mat_jvp_w};

/* ---- the tanh op --------------------------------------------------------- */

static mt_status tanh_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    (void)op, (void)w;
    for (int i = 0; i < n * D; i++)
        y[i] = tanhf(x[i]);
    return MT_OK;
}

static mt_status tanh_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dx)
{
    (void)op, (void)w;
    for (int i = 0; i < n * D; i++) {
        float t = tanhf(x[i]);
        dx[i] = (1.0f - t * t) * dy[i];
    }
    return MT_OK;
}

static const mt_op_vtable tanh_vt = {.kind = "tanh",
                                     .forward = tanh_forward,
                                     .vjp_x = tanh_vjp_x,
                                     .jvp_x = tanh_vjp_x};

static mt_op make_op(const mt_op_vtable *vt)
{
    mt_op op;
    memset(&op, 0, sizeof op);
    op.vt = vt;
    snprintf(op.name, sizeof op.name, "%s", vt->kind);
    op.in = mt_shape_vec(D);
    op.out = mt_shape_vec(vt == &mat_vt ? O : D);
    op.n_params = vt == &mat_vt ? (size_t)O * D : 0;
    return op;
}

/* ---- references ------------------------------------------------------- */

/* Solve (s A^T A + c I) y = b for y (m unknowns, A [rows][m]) in double. */
static void ridge_solve(int rows, int m, const double *A, double s, double c, const double *b,
                        double *y)
{
    double *M = calloc((size_t)m * m, sizeof(double));
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double acc = 0.0;
            for (int r = 0; r < rows; r++)
                acc += A[r * m + i] * A[r * m + j];
            M[i * m + j] = s * acc + (i == j ? c : 0.0);
        }
    /* Cholesky M = L L^T in place (lower), then two triangular solves. */
    for (int j = 0; j < m; j++) {
        for (int k = 0; k < j; k++)
            M[j * m + j] -= M[j * m + k] * M[j * m + k];
        M[j * m + j] = sqrt(M[j * m + j]);
        for (int i = j + 1; i < m; i++) {
            for (int k = 0; k < j; k++)
                M[i * m + j] -= M[i * m + k] * M[j * m + k];
            M[i * m + j] /= M[j * m + j];
        }
    }
    for (int i = 0; i < m; i++) {
        double acc = b[i];
        for (int k = 0; k < i; k++)
            acc -= M[i * m + k] * y[k];
        y[i] = acc / M[i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) {
        double acc = y[i];
        for (int k = i + 1; k < m; k++)
            acc -= M[k * m + i] * y[k];
        y[i] = acc / M[i * m + i];
    }
    free(M);
}

typedef struct {
    float w[O * D], x[N * D], fx[N * O], lambda[N * O], y[N * D], yw[O * D];
} fixture;

static void make_fixture(fixture *f, mt_op *op, uint64_t seed)
{
    mt_test_fill(f->w, O * D, -1.0f, 1.0f, seed);
    mt_test_fill(f->x, N * D, -1.0f, 1.0f, seed + 1);
    mt_test_fill(f->lambda, N * O, -0.5f, 0.5f, seed + 2);
    op->vt->forward(op, f->w, N, f->x, f->fx);
}

/* gd:1 gives s J^T lambda for both M and A problems (ALGORITHMS.md 3). */
static void test_gd1_is_backprop(void)
{
    mt_op op = make_op(&mat_vt);
    fixture f;
    float jt[N * D];
    mt_arena ws = {0};
    mt_inner gd1 = {MT_INNER_GD, 1, 1e-6, 0};
    const double s = 0.75;

    make_fixture(&f, &op, 11);
    mat_vjp_x(&op, f.w, N, f.x, f.lambda, jt);
    for (int kind = 0; kind < 2; kind++) {
        mt_subproblem sp = {(mt_sub_kind)kind, s, 0.0};
        MT_TEST_OK(mt_solve_input(&gd1, &sp, &op, f.w, N, f.x, f.fx, f.lambda, f.y, NULL, &ws));
        for (int i = 0; i < N * D; i++)
            CU_ASSERT_DOUBLE_EQUAL(f.y[i], s * jt[i], 1e-6 * (1.0 + fabs(s * jt[i])));
    }
    mt_arena_release(&ws);
}

/* With decay c on the weights, gd:1 on A gives s J_w^T lambda + c w. */
static void test_gd1_weights_decay(void)
{
    mt_op op = make_op(&mat_vt);
    fixture f;
    float jt[O * D];
    mt_arena ws = {0};
    mt_inner gd1 = {MT_INNER_GD, 1, 1e-6, 0};
    mt_subproblem sp = {MT_SUB_A, 0.5, 0.01};

    make_fixture(&f, &op, 12);
    mat_vjp_w(&op, f.w, N, f.x, f.lambda, jt);
    MT_TEST_OK(mt_solve_weights(&gd1, &sp, &op, f.w, N, f.x, f.fx, f.lambda, f.yw, NULL, &ws));
    for (int i = 0; i < O * D; i++) {
        double want = 0.5 * jt[i] + 0.01 * f.w[i];
        CU_ASSERT_DOUBLE_EQUAL(f.yw[i], want, 1e-6 * (1.0 + fabs(want)));
    }
    mt_arena_release(&ws);
}

/* cg:K on an affine op solves (s W^T W + I) y_i = s W^T lambda_i exactly;
 * compared with a double Cholesky solve. Tolerance 1e-5 of the solution's
 * largest entry: CG stops at a residual of 1e-7 of ||b|| in float, so
 * entries far smaller than the largest carry an error relative to it. */
static void test_cg_input_exact(void)
{
    mt_op op = make_op(&mat_vt);
    fixture f;
    mt_arena ws = {0};
    mt_inner cg = {MT_INNER_CG, 20, 1e-7, 0};
    mt_subproblem sp = {MT_SUB_A, 2.0, 0.0};
    mt_solve_report rep;
    double A[O * D], b[D], y[D];

    make_fixture(&f, &op, 13);
    MT_TEST_OK(mt_solve_input(&cg, &sp, &op, f.w, N, f.x, f.fx, f.lambda, f.y, &rep, &ws));
    CU_ASSERT(rep.residual < 1e-5);
    for (int k = 0; k < O * D; k++)
        A[k] = f.w[k];
    for (int i = 0; i < N; i++) {
        for (int c = 0; c < D; c++) {
            b[c] = 0.0;
            for (int r = 0; r < O; r++)
                b[c] += 2.0 * f.w[r * D + c] * f.lambda[i * O + r];
        }
        ridge_solve(O, D, A, 2.0, 1.0, b, y);
        double scale = 0.0;
        for (int c = 0; c < D; c++)
            scale = fmax(scale, fabs(y[c]));
        for (int c = 0; c < D; c++)
            CU_ASSERT_DOUBLE_EQUAL(f.y[i * D + c], y[c], 1e-5 * scale);
    }
    mt_arena_release(&ws);
}

/* cg on the weights with decay: (s X^T X + (1 + c) I) v = s X^T Lambda + c w,
 * row by row of V; and the residual the solver reports is below its tol. */
static void test_cg_weights_decay(void)
{
    mt_op op = make_op(&mat_vt);
    fixture f;
    mt_arena ws = {0};
    mt_inner cg = {MT_INNER_CG, 60, 1e-7, 0};
    mt_subproblem sp = {MT_SUB_A, 0.8, 0.05};
    mt_solve_report rep;
    double X[N * D], b[D], v[D];

    make_fixture(&f, &op, 14);
    MT_TEST_OK(mt_solve_weights(&cg, &sp, &op, f.w, N, f.x, f.fx, f.lambda, f.yw, &rep, &ws));
    CU_ASSERT(rep.residual <= 1e-6);
    for (int k = 0; k < N * D; k++)
        X[k] = f.x[k];
    for (int r = 0; r < O; r++) {
        for (int c = 0; c < D; c++) {
            b[c] = 0.05 * f.w[r * D + c];
            for (int i = 0; i < N; i++)
                b[c] += 0.8 * f.lambda[i * O + r] * f.x[i * D + c];
        }
        ridge_solve(N, D, X, 0.8, 1.05, b, v);
        double scale = 0.0;
        for (int c = 0; c < D; c++)
            scale = fmax(scale, fabs(v[c]));
        for (int c = 0; c < D; c++)
            CU_ASSERT_DOUBLE_EQUAL(f.yw[r * D + c], v[c], 1e-5 * scale);
    }
    mt_arena_release(&ws);
}

/* gd:K on a nonlinear op lowers the A objective monotonically and, with
 * many steps, reaches a point where its gradient vanishes (residual). */
static void test_gd_many_converges(void)
{
    mt_op op = make_op(&tanh_vt);
    float x[N * D], fx[N * D], lambda[N * D], y[N * D];
    mt_arena ws = {0};
    mt_inner gd = {MT_INNER_GD, 400, 1e-6, 1};
    mt_subproblem sp = {MT_SUB_A, 1.5, 0.0};
    mt_solve_report rep;

    mt_test_fill(x, N * D, -2.0f, 2.0f, 21);
    mt_test_fill(lambda, N * D, -0.3f, 0.3f, 22);
    tanh_forward(&op, NULL, N, x, fx);
    MT_TEST_OK(mt_solve_input(&gd, &sp, &op, NULL, N, x, fx, lambda, y, &rep, &ws));
    CU_ASSERT(rep.residual < 1e-4);
    /* stationarity per coordinate: 2 s tanh'(x-y) r = 2 y, r = tanh(x-y) - tanh(x) + l */
    for (int i = 0; i < N * D; i++) {
        double t = tanh((double)x[i] - y[i]), r = t - tanh((double)x[i]) + lambda[i];
        double g = -2.0 * 1.5 * (1.0 - t * t) * r + 2.0 * y[i];
        CU_ASSERT(fabs(g) < 1e-4);
    }
    mt_arena_release(&ws);
}

/* A sample's solution does not depend on the other samples of its batch. */
static void test_samples_independent(void)
{
    mt_op op = make_op(&tanh_vt);
    float x[N * D], fx[N * D], lambda[N * D], y_all[N * D], y_half[N * D];
    mt_arena ws = {0};
    mt_inner gd = {MT_INNER_GD, 7, 1e-6, 0}, cg = {MT_INNER_CG, 4, 1e-9, 0};
    mt_subproblem sp = {MT_SUB_A, 3.0, 0.0};

    mt_test_fill(x, N * D, -2.0f, 2.0f, 31);
    mt_test_fill(lambda, N * D, -1.0f, 1.0f, 32);
    tanh_forward(&op, NULL, N, x, fx);
    for (int which = 0; which < 2; which++) {
        const mt_inner *in = which ? &cg : &gd;
        MT_TEST_OK(mt_solve_input(in, &sp, &op, NULL, N, x, fx, lambda, y_all, NULL, &ws));
        MT_TEST_OK(mt_solve_input(in, &sp, &op, NULL, 2, x, fx, lambda, y_half, NULL, &ws));
        MT_TEST_OK(mt_solve_input(in, &sp, &op, NULL, N - 2, x + 2 * D, fx + 2 * D,
                                  lambda + 2 * D, y_half + 2 * D, NULL, &ws));
        CU_ASSERT_EQUAL(memcmp(y_all, y_half, sizeof y_all), 0);
    }
    mt_arena_release(&ws);
}

static void test_inner_parse(void)
{
    mt_inner in;
    CU_ASSERT_EQUAL(mt_inner_parse("cg:5", &in), MT_OK);
    CU_ASSERT(in.kind == MT_INNER_CG && in.iters == 5);
    CU_ASSERT_EQUAL(mt_inner_parse("gd:1", &in), MT_OK);
    CU_ASSERT(in.kind == MT_INNER_GD && in.iters == 1);
    CU_ASSERT_EQUAL(mt_inner_parse("closed", &in), MT_OK);
    CU_ASSERT_EQUAL(mt_inner_parse("cg:0", &in), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_inner_parse("cg:", &in), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_inner_parse("newton:3", &in), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_inner_parse("gd:3x", &in), MT_ERR_ARG);
    mt_error_clear();
}

int main(void)
{
    const mt_test_case tests[] = {
        {"gd:1 equals s J^T lambda (M and A)", test_gd1_is_backprop},
        {"gd:1 on weights with decay", test_gd1_weights_decay},
        {"cg exact on affine input problem", test_cg_input_exact},
        {"cg exact on weight problem with decay", test_cg_weights_decay},
        {"gd:K converges on tanh", test_gd_many_converges},
        {"per-sample independence", test_samples_independent},
        {"--inner parsing", test_inner_parse},
    };
    return mt_test_main("solvers", tests, 7);
}
