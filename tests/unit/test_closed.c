/*
 * test_closed.c - every closed-form Moreau solver of src/ops/closed*.c
 * against a brute-force minimisation of its subproblem, written here from the
 * definitions of ALGORITHMS.md section 3 (f evaluated directly, not through
 * the solver's algebra):
 *   - ReLU: dense 1-D grid, then golden section around the best grid point;
 *   - pooling and dense: many-iteration gradient descent in double with an
 *     explicit matrix P, or a double Gaussian elimination of the normal
 *     equations for the larger dense cases;
 * plus the identities M = s J^T lambda and A = (s B^T B + I)^{-1} s B^T lambda
 * for affine maps, and bit-identical results for 1 and 2 OpenMP threads and
 * for micro-batches.
 *
 * Tolerance 1e-5 relative (norm-wise: max |y - ref| / max |ref|, or
 * |y - ref| / (1 + |ref|) for scalars). The solvers factorise and solve in
 * double; their float parts are the inputs (shared with the reference), the
 * final rounding (6e-8) and sgemm products over <= 128 terms, whose rounding
 * error is about sqrt(k) 2^-24 relative to |a||b| (~1e-6). The references are
 * converged to 1e-12 (gradient descent) or exact in double (elimination).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/closed.h"
#include "testutil.h"

#define TOL 1e-5

/* ---- small helpers ---------------------------------------------------------- */

static double *dalloc(size_t n) { return calloc(n ? n : 1, sizeof(double)); }
static float *falloc(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* max |y - ref| / max |ref| (with a floor of 1e-30 on the denominator) */
static double rel_err(const float *y, const double *ref, size_t n)
{
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)y[i] - ref[i]));
        den = fmax(den, fabs(ref[i]));
    }
    return num / den;
}

typedef void (*grad_fn)(void *ctx, const double *y, double *g);

/* Gradient descent with a fixed step from y = 0 until ||g||_inf <= 1e-12 (1 +
 * the first gradient's norm). Returns the iterations used, -1 if not converged. */
static int gd_minimise(grad_fn grad, void *ctx, size_t dim, double step, double *y)
{
    double *g = dalloc(dim), g0 = 0.0;
    int it;

    memset(y, 0, dim * sizeof(double));
    for (it = 0; it < 200000; it++) {
        double gmax = 0.0;
        grad(ctx, y, g);
        for (size_t i = 0; i < dim; i++)
            gmax = fmax(gmax, fabs(g[i]));
        if (it == 0)
            g0 = gmax;
        if (gmax <= 1e-12 * (1.0 + g0))
            break;
        for (size_t i = 0; i < dim; i++)
            y[i] -= step * g[i];
    }
    free(g);
    return it < 200000 ? it : -1;
}

/* Solve A x = B (A dim x dim row-major, B dim x nrhs row-major) in place by
 * Gaussian elimination with partial pivoting; the solution replaces B. */
static void gauss_solve(size_t dim, double *a, size_t nrhs, double *b)
{
    for (size_t k = 0; k < dim; k++) {
        size_t p = k;
        for (size_t i = k + 1; i < dim; i++)
            if (fabs(a[i * dim + k]) > fabs(a[p * dim + k]))
                p = i;
        for (size_t j = 0; j < dim && p != k; j++) {
            double t = a[k * dim + j];
            a[k * dim + j] = a[p * dim + j];
            a[p * dim + j] = t;
        }
        for (size_t j = 0; j < nrhs && p != k; j++) {
            double t = b[k * nrhs + j];
            b[k * nrhs + j] = b[p * nrhs + j];
            b[p * nrhs + j] = t;
        }
        for (size_t i = k + 1; i < dim; i++) {
            double f = a[i * dim + k] / a[k * dim + k];
            for (size_t j = k; j < dim; j++)
                a[i * dim + j] -= f * a[k * dim + j];
            for (size_t j = 0; j < nrhs; j++)
                b[i * nrhs + j] -= f * b[k * nrhs + j];
        }
    }
    for (size_t k = dim; k-- > 0;) {
        for (size_t j = 0; j < nrhs; j++) {
            double v = b[k * nrhs + j];
            for (size_t i = k + 1; i < dim; i++)
                v -= a[k * dim + i] * b[i * nrhs + j];
            b[k * nrhs + j] = v / a[k * dim + k];
        }
    }
}

/* ---- ReLU ---------------------------------------------------------------------- */

static double relu(double v) { return v > 0.0 ? v : 0.0; }

/* The subproblems of one coordinate, straight from section 3. */
static double relu_obj(mt_sub_kind kind, double s, double z, double l, double y)
{
    if (kind == MT_SUB_M)
        return s * l * relu(z - y) + 0.5 * y * y;
    double r = relu(z - y) - relu(z) + l;
    return s * r * r + y * y;
}

/* Dense grid on [-R, R] containing every candidate, then golden section on
 * the two grid cells around the best point. */
static double relu_brute(mt_sub_kind kind, double s, double z, double l)
{
    const int n_grid = 400001;
    double r = 2.0 * (fabs(z) + s * fabs(l)) + 1.0, h = 2.0 * r / (n_grid - 1);
    double best = -r, fbest = relu_obj(kind, s, z, l, -r);

    for (int i = 1; i < n_grid; i++) {
        double y = -r + i * h, f = relu_obj(kind, s, z, l, y);
        if (f < fbest) {
            fbest = f;
            best = y;
        }
    }
    double a = best - h, b = best + h, ratio = (sqrt(5.0) - 1.0) / 2.0;
    double c = b - ratio * (b - a), d = a + ratio * (b - a);
    for (int it = 0; it < 200 && b - a > 1e-13 * (1.0 + fabs(best)); it++) {
        if (relu_obj(kind, s, z, l, c) < relu_obj(kind, s, z, l, d))
            b = d;
        else
            a = c;
        c = b - ratio * (b - a);
        d = a + ratio * (b - a);
    }
    return 0.5 * (a + b);
}

static void check_relu_case(mt_sub_kind kind, double s, double z, double l)
{
    double y = mt_relu_solve1(kind, s, z, l), yb = relu_brute(kind, s, z, l);
    double fy = relu_obj(kind, s, z, l, y), fb = relu_obj(kind, s, z, l, yb);
    int ok = fabs(y - yb) <= TOL * (1.0 + fabs(yb)) && fy <= fb + 1e-12 * (1.0 + fabs(fb));

    if (!ok)
        fprintf(stderr, "relu %s s=%g z=%g l=%g: closed %.9g (f %.12g) brute %.9g (f %.12g)\n",
                kind == MT_SUB_M ? "M" : "A", s, z, l, y, fy, yb, fb);
    CU_ASSERT(ok);
}

static void test_relu_brute(void)
{
    /* corners: l = 0, negative, large; z = 0 (the kink); z < 0 with strongly
     * negative l (where the paper's A formula fails); small and large s */
    static const double corners[][3] = {
        {1.0, 0.7, 0.0},   {1.0, -0.7, 0.0},  {1.0, 0.0, 0.0},   {1.0, 0.0, 1.3},
        {1.0, 0.0, -1.3},  {0.5, 0.0, -0.01}, {1.0, 2.0, -3.0},  {1.0, -2.0, 3.0},
        {1.0, 0.3, 1e3},   {1.0, 0.3, -1e3},  {1.0, -0.3, -1e3}, {1.0, -0.1, -10.0},
        {2.0, -1.0, -4.0}, {0.1, -0.5, -30},  {1e-3, -1.0, -5.0}, {100.0, -1.0, -0.05},
        {100.0, 2.0, 0.5}, {0.25, 1.5, 2.0},  {3.0, -1.0, -0.9}, {3.0, -1.0, -1.1},
    };
    static const double scales[] = {0.01, 0.5, 1.0, 4.0};
    mt_rng rng = mt_rng_make(11, 1);

    for (int kind = 0; kind < 2; kind++) {
        for (size_t c = 0; c < sizeof corners / sizeof corners[0]; c++)
            check_relu_case((mt_sub_kind)kind, corners[c][0], corners[c][1], corners[c][2]);
        for (int t = 0; t < 300; t++) {
            double s = scales[t % 4];
            double z = -3.0 + 6.0 * mt_rng_uniform(&rng), l = -5.0 + 10.0 * mt_rng_uniform(&rng);
            check_relu_case((mt_sub_kind)kind, s, z, l);
        }
    }
}

/* Exact ties between the two pieces go to the smaller |y|. */
static void test_relu_ties(void)
{
    /* M, s l = a = -2, z = a/2 = -1: g(0) = g(-2) = 0 */
    CU_ASSERT_EQUAL(mt_relu_solve1(MT_SUB_M, 1.0, -1.0, -2.0), 0.0);
    CU_ASSERT_DOUBLE_EQUAL(relu_obj(MT_SUB_M, 1.0, -1.0, -2.0, -2.0), 0.0, 1e-15);
    /* A, s = 3: sqrt(1+s) - 1 = 1, z = l = -1: g(0) = g(-1.5) = 3 */
    CU_ASSERT_EQUAL(mt_relu_solve1(MT_SUB_A, 3.0, -1.0, -1.0), 0.0);
    CU_ASSERT_DOUBLE_EQUAL(relu_obj(MT_SUB_A, 3.0, -1.0, -1.0, -1.5), 3.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(relu_obj(MT_SUB_A, 3.0, -1.0, -1.0, 0.0), 3.0, 1e-15);
}

/* The paper's printed formulas, in our notation. */
static double paper_relu_m(double s, double z, double l)
{
    double a = s * l;
    return fmin(relu(z), relu(a)) + fmin(a, 0.0) * (z >= a / 2.0);
}

static double paper_relu_a(double s, double z, double l)
{
    double a = s * l / (1.0 + s);
    return fmin(relu(z), relu(a)) + fmin(a, 0.0) * (z >= 0.0);
}

/* M: the paper's formula is right (off ties); A: it is wrong for z < 0 with a
 * strongly negative lambda, and ours is strictly better there. */
static void test_relu_paper(void)
{
    mt_rng rng = mt_rng_make(12, 1);
    int differ = 0;

    for (int t = 0; t < 2000; t++) {
        double s = 0.1 + 3.0 * mt_rng_uniform(&rng);
        double z = -3.0 + 6.0 * mt_rng_uniform(&rng), l = -8.0 + 16.0 * mt_rng_uniform(&rng);
        CU_ASSERT_DOUBLE_EQUAL(mt_relu_solve1(MT_SUB_M, s, z, l), paper_relu_m(s, z, l), 1e-12);
        double ya = mt_relu_solve1(MT_SUB_A, s, z, l), yp = paper_relu_a(s, z, l);
        if (fabs(ya - yp) > 1e-12) {
            differ++;
            CU_ASSERT(z < 0.0);
            CU_ASSERT(relu_obj(MT_SUB_A, s, z, l, ya) < relu_obj(MT_SUB_A, s, z, l, yp));
        }
    }
    CU_ASSERT(differ > 0);
    CU_ASSERT_DOUBLE_EQUAL(mt_relu_solve1(MT_SUB_A, 1.0, -0.1, -10.0), -5.05, 1e-12);
    CU_ASSERT_EQUAL(paper_relu_a(1.0, -0.1, -10.0), 0.0);
}

/* The array version equals the scalar one rounded, for 1 and 2 threads. */
static void test_relu_array(void)
{
    enum { N = 5000 };
    float *z = falloc(N), *l = falloc(N), *y1 = falloc(N), *y2 = falloc(N);

    mt_test_fill(z, N, -2.0f, 2.0f, 21);
    mt_test_fill(l, N, -6.0f, 6.0f, 22);
    for (int kind = 0; kind < 2; kind++) {
        omp_set_num_threads(1);
        MT_TEST_OK(mt_relu_solve((mt_sub_kind)kind, 0.8, N, z, l, y1));
        omp_set_num_threads(2);
        MT_TEST_OK(mt_relu_solve((mt_sub_kind)kind, 0.8, N, z, l, y2));
        CU_ASSERT(memcmp(y1, y2, N * sizeof(float)) == 0);
        for (int i = 0; i < N; i++)
            CU_ASSERT_EQUAL(y1[i], (float)mt_relu_solve1((mt_sub_kind)kind, 0.8, z[i], l[i]));
    }
    CU_ASSERT_EQUAL(mt_relu_solve(MT_SUB_A, 0.0, N, z, l, y1), MT_ERR_ARG);
    mt_error_clear();
    free(z), free(l), free(y1), free(y2);
}

/* ---- pooling ------------------------------------------------------------------- */

/* A linear map B (rows x cols, row-major) and lambda: the subproblems of
 * f(v) = B v, gradients from the definitions. */
typedef struct {
    mt_sub_kind kind;
    double s;
    size_t rows, cols;
    const double *b, *lambda;
} linear_ctx;

static void linear_grad(void *vctx, const double *y, double *g)
{
    const linear_ctx *c = vctx;

    for (size_t j = 0; j < c->cols; j++)
        g[j] = (c->kind == MT_SUB_M ? 1.0 : 2.0) * y[j];
    for (size_t i = 0; i < c->rows; i++) {
        /* A: residual f(z - y) - f(z) + l = l - B y; M: the gradient of
         * s <l, B (z - y)> is -s B^T l */
        double r = c->lambda[i];
        for (size_t j = 0; c->kind == MT_SUB_A && j < c->cols; j++)
            r -= c->b[i * c->cols + j] * y[j];
        double f = c->kind == MT_SUB_M ? -c->s * r : -2.0 * c->s * r;
        for (size_t j = 0; j < c->cols; j++)
            g[j] += f * c->b[i * c->cols + j];
    }
}

/* Explicit P for one (c, h, w) sample and window kh x kw (floor mode). */
static double *pool_matrix(mt_shape in, int kh, int kw, size_t *rows)
{
    int oh = in.h / kh, ow = in.w / kw;
    size_t cols = mt_shape_size(in);
    double *p;

    *rows = (size_t)in.c * oh * ow;
    p = dalloc(*rows * cols);
    for (int c = 0; c < in.c; c++)
        for (int i = 0; i < oh * kh; i++)
            for (int j = 0; j < ow * kw; j++) {
                size_t r = ((size_t)c * oh + i / kh) * ow + j / kw;
                p[r * cols + ((size_t)c * in.h + i) * in.w + j] = 1.0 / (kh * kw);
            }
    return p;
}

static void check_pool(mt_shape in, int kh, int kw, int gap)
{
    const size_t n = 3;
    const double s = 0.7;
    size_t rows, cols = mt_shape_size(in);
    double *p = pool_matrix(in, kh, kw, &rows), *ref = dalloc(cols), *lam = dalloc(rows);
    float *l = falloc(n * rows), *y = falloc(n * cols);

    mt_test_fill(l, n * rows, -2.0f, 2.0f, 31 + kh);
    for (int kind = 0; kind < 2; kind++) {
        if (gap)
            MT_TEST_OK(mt_gap_solve((mt_sub_kind)kind, s, n, in, l, y));
        else
            MT_TEST_OK(mt_avgpool_solve((mt_sub_kind)kind, s, n, in, kh, l, y));
        for (size_t i = 0; i < n; i++) {
            linear_ctx ctx = {(mt_sub_kind)kind, s, rows, cols, p, lam};
            double step = kind == MT_SUB_M ? 0.5 : 0.5 / (1.0 + s / (kh * kw));
            for (size_t r = 0; r < rows; r++)
                lam[r] = l[i * rows + r];
            CU_ASSERT(gd_minimise(linear_grad, &ctx, cols, step, ref) >= 0);
            CU_ASSERT(rel_err(y + i * cols, ref, cols) <= TOL);
            /* inputs outside every window are exactly 0 */
            for (int c = 0; c < in.c; c++)
                for (int h = 0; h < in.h; h++)
                    for (int w = 0; w < in.w; w++)
                        if (h >= in.h / kh * kh || w >= in.w / kw * kw)
                            CU_ASSERT_EQUAL(y[i * cols + ((size_t)c * in.h + h) * in.w + w],
                                            0.0f);
        }
    }
    free(p), free(ref), free(lam), free(l), free(y);
}

static void test_pool_brute(void)
{
    mt_shape a = {2, 7, 9}, g = {3, 4, 5};

    check_pool(a, 2, 2, 0); /* drops row 6 and column 8 */
    check_pool(a, 3, 3, 0); /* drops row 6 */
    check_pool(g, 4, 5, 1);
}

/* ---- dense inputs ----------------------------------------------------------------- */

/* The dense input problem's reference for sample lambda_i: A through the
 * identity (s W^T W + I)^{-1} s W^T l solved by elimination, M as s W^T l. */
static void dense_x_identity(mt_sub_kind kind, double s, int in, int out, const double *w,
                             const float *l, double *ref)
{
    double *a = dalloc((size_t)in * in);

    for (int j = 0; j < in; j++) {
        ref[j] = 0.0;
        for (int o = 0; o < out; o++)
            ref[j] += s * w[(size_t)o * in + j] * l[o];
        for (int k = 0; k < in; k++) {
            double g = 0.0;
            for (int o = 0; o < out; o++)
                g += w[(size_t)o * in + j] * w[(size_t)o * in + k];
            a[(size_t)j * in + k] = s * g + (j == k);
        }
    }
    if (kind == MT_SUB_A)
        gauss_solve(in, a, 1, ref);
    free(a);
}

static void check_dense_x(int in, int out, mt_closed_side side)
{
    const size_t n = 70;
    mt_subproblem sp = {MT_SUB_A, 0.7, 0.0};
    float *w = falloc((size_t)out * (in + 1)), *l = falloc(n * out), *y = falloc(n * in);
    double *wd = dalloc((size_t)out * in), *ref = dalloc(in), *bref = dalloc(in);

    mt_test_fill(w, (size_t)out * (in + 1), -1.0f, 1.0f, 41 + in);
    mt_test_fill(l, n * out, -1.0f, 1.0f, 42 + out);
    for (size_t j = 0; j < (size_t)out * in; j++)
        wd[j] = w[j];
    for (int kind = 0; kind < 2; kind++) {
        sp.kind = (mt_sub_kind)kind;
        MT_TEST_OK(mt_dense_solve_x(&sp, side, n, in, out, w, l, y));
        for (size_t i = 0; i < n; i++) {
            double lam[64];
            linear_ctx ctx = {sp.kind, sp.s, (size_t)out, (size_t)in, wd, lam};
            for (int o = 0; o < out; o++)
                lam[o] = l[i * out + o];
            /* brute force: gradient descent, step 1/L with L <= 2 (s ||W||_F^2 + 1) */
            double fro = 0.0;
            for (size_t j = 0; j < (size_t)out * in; j++)
                fro += wd[j] * wd[j];
            CU_ASSERT(gd_minimise(linear_grad, &ctx, in, 0.5 / (sp.s * fro + 1.0), bref) >= 0);
            dense_x_identity(sp.kind, sp.s, in, out, wd, l + i * out, ref);
            double e1 = rel_err(y + i * in, bref, in), e2 = rel_err(y + i * in, ref, in);
            if (getenv("MT_VERBOSE") && i == 0)
                fprintf(stderr, "dense x in=%d out=%d side %d kind %d: %.3g %.3g\n", in, out,
                        side, kind, e1, e2);
            CU_ASSERT(e1 <= TOL);
            CU_ASSERT(e2 <= TOL);
        }
    }
    free(w), free(l), free(y), free(wd), free(ref), free(bref);
}

static void test_dense_x_brute(void)
{
    check_dense_x(9, 5, MT_CLOSED_AUTO);   /* dual: 5 x 5 */
    check_dense_x(9, 5, MT_CLOSED_NORMAL); /* 9 x 9 */
    check_dense_x(5, 9, MT_CLOSED_AUTO);   /* normal: 5 x 5 */
    check_dense_x(5, 9, MT_CLOSED_DUAL);   /* 9 x 9 */
}

/* Bit-identical for 1 and 2 threads and for micro-batches starting at
 * multiples of MT_BLOCK, on both sides and both kinds. */
static void test_dense_x_determinism(void)
{
    const size_t n = 100;
    const int in = 150, out = 130;
    mt_subproblem sp = {MT_SUB_A, 0.9, 0.0};
    float *w = falloc((size_t)out * (in + 1)), *l = falloc(n * out);
    float *y1 = falloc(n * in), *y2 = falloc(n * in), *y3 = falloc(n * in);

    mt_test_fill(w, (size_t)out * (in + 1), -0.1f, 0.1f, 51);
    mt_test_fill(l, n * out, -1.0f, 1.0f, 52);
    for (int kind = 0; kind < 2; kind++) {
        for (int side = MT_CLOSED_NORMAL; side <= MT_CLOSED_DUAL; side++) {
            sp.kind = (mt_sub_kind)kind;
            omp_set_num_threads(1);
            MT_TEST_OK(mt_dense_solve_x(&sp, side, n, in, out, w, l, y1));
            omp_set_num_threads(2);
            MT_TEST_OK(mt_dense_solve_x(&sp, side, n, in, out, w, l, y2));
            MT_TEST_OK(mt_dense_solve_x(&sp, side, 64, in, out, w, l, y3));
            MT_TEST_OK(mt_dense_solve_x(&sp, side, n - 64, in, out, w, l + 64 * out,
                                        y3 + 64 * in));
            CU_ASSERT(memcmp(y1, y2, n * in * sizeof(float)) == 0);
            CU_ASSERT(memcmp(y1, y3, n * in * sizeof(float)) == 0);
            MT_TEST_OK(mt_dense_solve_x(&sp, side, 32, in, out, w, l, y3));
            MT_TEST_OK(mt_dense_solve_x(&sp, side, n - 32, in, out, w, l + 32 * out,
                                        y3 + 32 * in));
            CU_ASSERT(memcmp(y1, y3, n * in * sizeof(float)) == 0);
        }
    }
    sp.decay = 0.1;
    CU_ASSERT_EQUAL(mt_dense_solve_x(&sp, MT_CLOSED_AUTO, n, in, out, w, l, y1), MT_ERR_ARG);
    mt_error_clear();
    free(w), free(l), free(y1), free(y2), free(y3);
}

/* ---- dense weights ------------------------------------------------------------------ */

/* The weight subproblem over V~ = [V | v_b] (the op's parameter layout), with
 * f evaluated from the definition f(W~, x) = W x + b. */
typedef struct {
    mt_subproblem sp;
    size_t n;
    int in, out;
    const double *w, *x, *lambda; /* w [out*(in+1)], x [n][in], lambda [n][out] */
} weight_ctx;

static double dense_f(const double *w, const double *x, int in, int out, int o)
{
    double v = w[(size_t)out * in + o];
    for (int j = 0; j < in; j++)
        v += w[(size_t)o * in + j] * x[j];
    return v;
}

static void weight_grad(void *vctx, const double *v, double *g)
{
    const weight_ctx *c = vctx;
    size_t np = (size_t)c->out * (c->in + 1);
    double *wv = dalloc(np), s = c->sp.s, dec = c->sp.decay;
    int m = c->sp.kind == MT_SUB_M;

    for (size_t j = 0; j < np; j++) {
        wv[j] = c->w[j] - v[j];
        g[j] = (m ? 1.0 : 2.0) * (v[j] - dec * wv[j]);
    }
    for (size_t i = 0; i < c->n; i++) {
        const double *xi = c->x + i * c->in;
        for (int o = 0; o < c->out; o++) {
            double li = c->lambda[i * c->out + o];
            /* d/dV of f(W - V, x) is -x~; M: s l f, A: s (f(W-V) - f(W) + l)^2 */
            double r = m ? li
                         : dense_f(wv, xi, c->in, c->out, o) - dense_f(c->w, xi, c->in, c->out, o)
                               + li;
            double f = m ? -s * r : -2.0 * s * r;
            for (int j = 0; j < c->in; j++)
                g[(size_t)o * c->in + j] += f * xi[j];
            g[(size_t)c->out * c->in + o] += f;
        }
    }
    free(wv);
}

typedef struct {
    size_t n;
    int in, out;
    float *w, *x, *l;
    double *wd, *xd, *ld;
} weight_data;

static weight_data weight_data_make(size_t n, int in, int out, float xlo, uint64_t seed)
{
    weight_data d = {n, in, out, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t np = (size_t)out * (in + 1);

    d.w = falloc(np), d.x = falloc(n * in), d.l = falloc(n * out);
    d.wd = dalloc(np), d.xd = dalloc(n * in), d.ld = dalloc(n * out);
    mt_test_fill(d.w, np, -0.5f, 0.5f, seed);
    mt_test_fill(d.x, n * in, xlo, 1.0f, seed + 1);
    mt_test_fill(d.l, n * out, -1.0f, 1.0f, seed + 2);
    for (size_t j = 0; j < np; j++)
        d.wd[j] = d.w[j];
    for (size_t j = 0; j < n * in; j++)
        d.xd[j] = d.x[j];
    for (size_t j = 0; j < n * (size_t)out; j++)
        d.ld[j] = d.l[j];
    return d;
}

static void weight_data_free(weight_data *d)
{
    free(d->w), free(d->x), free(d->l), free(d->wd), free(d->xd), free(d->ld);
}

static void check_dense_w_gd(size_t n, int in, int out, double decay)
{
    weight_data d = weight_data_make(n, in, out, -1.0f, 61 + n);
    size_t np = (size_t)out * (in + 1);
    float *y = falloc(np);
    double *ref = dalloc(np), fro = n; /* ||X~||_F^2 bounds ||X~||_2^2 */

    for (size_t j = 0; j < n * in; j++)
        fro += d.xd[j] * d.xd[j];
    for (int kind = 0; kind < 2; kind++) {
        mt_subproblem sp = {(mt_sub_kind)kind, 0.5, decay};
        weight_ctx ctx = {sp, n, in, out, d.wd, d.xd, d.ld};
        double step = kind == MT_SUB_M ? 0.5 / (1.0 + decay)
                                       : 0.5 / (sp.s * fro + 1.0 + decay);
        CU_ASSERT(gd_minimise(weight_grad, &ctx, np, step, ref) >= 0);
        for (int side = MT_CLOSED_AUTO; side <= MT_CLOSED_DUAL; side++) {
            MT_TEST_OK(mt_dense_solve_w(&sp, side, n, in, out, d.w, d.x, d.l, y));
            double err = rel_err(y, ref, np);
            if (err > TOL || getenv("MT_VERBOSE"))
                fprintf(stderr, "dense w n=%zu in=%d c=%g kind %d side %d: %.3g\n", n, in,
                        decay, kind, side, err);
            CU_ASSERT(err <= TOL);
        }
    }
    free(y), free(ref);
    weight_data_free(&d);
}

static void test_dense_w_gd(void)
{
    check_dense_w_gd(6, 15, 4, 0.0); /* n < in + 1 */
    check_dense_w_gd(6, 15, 4, 0.3);
    check_dense_w_gd(40, 5, 4, 0.0); /* n > in + 1 */
    check_dense_w_gd(40, 5, 4, 0.3);
}

/* Reference for the A weight problem: the (in+1) normal equations built
 * from X~ with an explicit column of ones, solved by elimination. */
static void dense_w_direct(const weight_data *d, double s, double c, double *ref)
{
    size_t dim = (size_t)d->in + 1, n = d->n, out = d->out, in = d->in;
    double *a = dalloc(dim * dim), *b = dalloc(dim * out), *xt = dalloc(n * dim);

    for (size_t i = 0; i < n; i++) {
        memcpy(xt + i * dim, d->xd + i * in, in * sizeof(double));
        xt[i * dim + in] = 1.0;
    }
    for (size_t j = 0; j < dim; j++) {
        for (size_t k = 0; k < dim; k++) {
            double g = 0.0;
            for (size_t i = 0; i < n; i++)
                g += xt[i * dim + j] * xt[i * dim + k];
            a[j * dim + k] = s * g + (j == k) * (1.0 + c);
        }
        for (size_t o = 0; o < out; o++) {
            double r = 0.0, wo = j < in ? d->wd[o * in + j] : d->wd[out * in + o];
            for (size_t i = 0; i < n; i++)
                r += xt[i * dim + j] * d->ld[i * out + o];
            b[j * out + o] = s * r + c * wo;
        }
    }
    gauss_solve(dim, a, out, b);
    for (size_t o = 0; o < out; o++) {
        for (size_t j = 0; j < in; j++)
            ref[o * in + j] = b[j * out + o];
        ref[out * in + o] = b[in * out + o];
    }
    free(a), free(b), free(xt);
}

/* Larger, worse-conditioned cases (non-negative, ReLU-like inputs, s = 1):
 * both sides against the direct double solve, and 1 vs 2 threads. */
static void check_dense_w_direct(size_t n, int in, int out, double c)
{
    weight_data d = weight_data_make(n, in, out, 0.0f, 71 + n);
    size_t np = (size_t)out * (in + 1);
    mt_subproblem sp = {MT_SUB_A, 1.0, c};
    float *y1 = falloc(np), *y2 = falloc(np);
    double *ref = dalloc(np);

    dense_w_direct(&d, sp.s, c, ref);
    for (int side = MT_CLOSED_NORMAL; side <= MT_CLOSED_DUAL; side++) {
        omp_set_num_threads(1);
        MT_TEST_OK(mt_dense_solve_w(&sp, side, n, in, out, d.w, d.x, d.l, y1));
        omp_set_num_threads(2);
        MT_TEST_OK(mt_dense_solve_w(&sp, side, n, in, out, d.w, d.x, d.l, y2));
        CU_ASSERT(memcmp(y1, y2, np * sizeof(float)) == 0);
        double err = rel_err(y1, ref, np);
        if (err > TOL || getenv("MT_VERBOSE"))
            fprintf(stderr, "dense w direct n=%zu in=%d c=%g side %d: %.3g\n", n, in, c, side,
                    err);
        CU_ASSERT(err <= TOL);
    }
    free(y1), free(y2), free(ref);
    weight_data_free(&d);
}

static void test_dense_w_direct(void)
{
    check_dense_w_direct(40, 150, 70, 0.0); /* n < in + 1, K has 2 x 2 tiles on NORMAL */
    check_dense_w_direct(40, 150, 70, 0.5);
    check_dense_w_direct(300, 30, 20, 0.0); /* n > in + 1, 3 x 3 tiles on DUAL */
    check_dense_w_direct(300, 30, 20, 0.5);
}

/* M for the affine weight map is s J_w^T lambda (+ the decay blend). */
static void test_dense_w_m_identity(void)
{
    weight_data d = weight_data_make(50, 7, 3, -1.0f, 81);
    size_t np = 3 * 8;
    mt_subproblem sp = {MT_SUB_M, 0.6, 0.0};
    float *y = falloc(np);
    double ref[24];

    MT_TEST_OK(mt_dense_solve_w(&sp, MT_CLOSED_AUTO, d.n, d.in, d.out, d.w, d.x, d.l, y));
    for (int o = 0; o < 3; o++) {
        ref[3 * 7 + o] = 0.0;
        for (int j = 0; j < 7; j++) {
            ref[o * 7 + j] = 0.0;
            for (size_t i = 0; i < d.n; i++)
                ref[o * 7 + j] += sp.s * d.ld[i * 3 + o] * d.xd[i * 7 + j];
        }
        for (size_t i = 0; i < d.n; i++)
            ref[3 * 7 + o] += sp.s * d.ld[i * 3 + o];
    }
    CU_ASSERT(rel_err(y, ref, np) <= TOL);
    free(y);
    weight_data_free(&d);
}

int main(void)
{
    static const mt_test_case tests[] = {
        {"relu closed forms vs grid + golden section", test_relu_brute},
        {"relu ties go to the smaller |y|", test_relu_ties},
        {"relu vs the paper's formulas", test_relu_paper},
        {"relu arrays, 1 vs 2 threads", test_relu_array},
        {"pooling vs gradient descent", test_pool_brute},
        {"dense inputs vs gradient descent and identity", test_dense_x_brute},
        {"dense inputs determinism", test_dense_x_determinism},
        {"dense weights vs gradient descent", test_dense_w_gd},
        {"dense weights vs direct double solve", test_dense_w_direct},
        {"dense weight M is s J^T lambda", test_dense_w_m_identity},
    };
    return mt_test_main("closed", tests, (int)(sizeof tests / sizeof tests[0]));
}
