/*
 * test_kernels.c - the kernels against brute force: gemm wrappers against
 * double loops, im2col against its definition and col2im as its adjoint,
 * pooling against direct loops; determinism (1 vs 2 threads, row i of a
 * batch gemm independent of the batch around it).
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/kernels.h"
#include "testutil.h"

static float *falloc(size_t n)
{
    float *p = mt_alloc(sizeof(float) * (n ? n : 1));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return p;
}

/* Element (i, j) of op(M) for a row-major M with leading dimension ld. */
static float op_el(const float *m, int ld, mt_trans t, int i, int j)
{
    return t == MT_TRANS ? m[(size_t)j * ld + i] : m[(size_t)i * ld + j];
}

/* Largest |c - ref| / sum_k |alpha a_ik b_kj| + |beta c0|: the error relative
 * to the sum of absolute terms, which float accumulation of k terms keeps
 * below about k u in the worst case and sqrt(k) u typically (u = 6e-8). */
static double gemm_err(mt_trans ta, mt_trans tb, int m, int n, int k, float alpha, const float *a,
                       int lda, const float *b, int ldb, float beta, const float *c0,
                       const float *c, int ldc)
{
    double worst = 0.0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = beta * (double)c0[(size_t)i * ldc + j];
            double abs = fabs(ref) + 1e-30;
            for (int l = 0; l < k; l++) {
                double t = alpha * (double)op_el(a, lda, ta, i, l) * op_el(b, ldb, tb, l, j);
                ref += t;
                abs += fabs(t);
            }
            double e = fabs(c[(size_t)i * ldc + j] - ref) / abs;
            worst = e > worst ? e : worst;
        }
    return worst;
}

static void test_gemm_tiled_vs_naive(void)
{
    int m = 70, n = 45, k = 37;
    float *a = falloc(100 * 100), *b = falloc(100 * 100), *c = falloc(m * n), *c0 = falloc(m * n);

    mt_test_fill(a, 100 * 100, -1, 1, 1);
    mt_test_fill(b, 100 * 100, -1, 1, 2);
    mt_test_fill(c0, (size_t)m * n, -1, 1, 3);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int lda = ta ? m + 3 : k + 2, ldb = tb ? k + 1 : n + 5;
            memcpy(c, c0, sizeof(float) * m * n);
            mt_gemm_tiled(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c, n, 16, 32);
            /* 1e-5: ~40 u for k = 37, far above rounding, far below any bug. */
            CU_ASSERT(gemm_err(ta, tb, m, n, k, 0.5f, a, lda, b, ldb, 0.25f, c0, c, n) < 1e-5);
        }
    mt_free(a), mt_free(b), mt_free(c), mt_free(c0);
}

static void test_gemm_batch_vs_naive(void)
{
    int ns[] = {5, 32, 45, 97}, n = 600, k = 70; /* n > 512: two column tiles */
    mt_scratch ws = {0};
    float *a = falloc(97 * 80), *b = falloc(n * 80), *c = falloc(97 * n), *c0 = falloc(97 * n);

    mt_test_fill(a, 97 * 80, -1, 1, 4);
    mt_test_fill(b, (size_t)n * 80, -1, 1, 5);
    mt_test_fill(c0, (size_t)97 * n, -1, 1, 6);
    for (int r = 0; r < 4; r++)
        for (int tb = 0; tb < 2; tb++)
            for (int bz = 0; bz < 2; bz++) {
                int rows = ns[r], ldb = tb ? 80 : n;
                float beta = bz ? 0.0f : -1.5f;
                memcpy(c, c0, sizeof(float) * 97 * n);
                MT_TEST_OK(mt_gemm_batch(rows, n, k, 2.0f, a, 80, tb, b, ldb, beta, c, n, &ws));
                CU_ASSERT(gemm_err(MT_NOTRANS, tb, rows, n, k, 2.0f, a, 80, b, ldb, beta, c0, c,
                                   n) < 1e-5);
                /* Rows past the batch are untouched. */
                CU_ASSERT(memcmp(c + (size_t)rows * n, c0 + (size_t)rows * n,
                                 sizeof(float) * (97 - rows) * n) == 0);
            }
    mt_scratch_free(&ws);
    mt_free(a), mt_free(b), mt_free(c), mt_free(c0);
}

/* Row i of a batch gemm depends on row i and i mod MT_BLOCK only: a batch's
 * leading 6 or 40 rows give, as batches of their own (with a partial last
 * block), the same rows as in a 70-row batch, bit for bit. (Unpadded, the
 * Haswell sgemm kernels change a row's bits with the row count.) */
static void test_gemm_batch_rows_independent(void)
{
    int n = 300, k = 500, sizes[] = {6, 40, 64};
    mt_scratch ws = {0};
    float *a = falloc(70 * k), *b = falloc(n * k), *c = falloc(70 * n), *c2 = falloc(70 * n);

    mt_test_fill(a, (size_t)70 * k, -1, 1, 7);
    mt_test_fill(b, (size_t)n * k, -1, 1, 8);
    MT_TEST_OK(mt_gemm_batch(70, n, k, 1.0f, a, k, MT_TRANS, b, k, 0.0f, c, n, &ws));
    for (int t = 0; t < 3; t++) {
        MT_TEST_OK(mt_gemm_batch(sizes[t], n, k, 1.0f, a, k, MT_TRANS, b, k, 0.0f, c2, n, &ws));
        CU_ASSERT(memcmp(c, c2, sizeof(float) * sizes[t] * n) == 0);
    }
    /* A micro-batch starting at row 64 (a multiple of MT_BLOCK). */
    MT_TEST_OK(mt_gemm_batch(6, n, k, 1.0f, a + 64 * k, k, MT_TRANS, b, k, 0.0f, c2, n, &ws));
    CU_ASSERT(memcmp(c + 64 * n, c2, sizeof(float) * 6 * n) == 0);
    mt_scratch_free(&ws);
    mt_free(a), mt_free(b), mt_free(c), mt_free(c2);
}

static void test_gemm_threads_bitwise(void)
{
    int rows = 77, n = 1100, k = 300, saved = omp_get_max_threads();
    mt_scratch ws = {0};
    float *a = falloc(rows * k), *b = falloc(n * k), *c1 = falloc(rows * n), *c2 = falloc(rows * n),
          *g1 = falloc(n * k), *g2 = falloc(n * k);

    mt_test_fill(a, (size_t)rows * k, -1, 1, 9);
    mt_test_fill(b, (size_t)n * k, -1, 1, 10);
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        MT_TEST_OK(
            mt_gemm_batch(rows, n, k, 1.0f, a, k, MT_TRANS, b, k, 0.0f, t == 1 ? c1 : c2, n, &ws));
        mt_gemm_tiled(MT_TRANS, MT_NOTRANS, n, k, rows, 1.0f, c1, n, a, k, 0.0f, t == 1 ? g1 : g2,
                      k, mt_gemm_tile(n), mt_gemm_tile(k));
    }
    omp_set_num_threads(saved);
    CU_ASSERT(memcmp(c1, c2, sizeof(float) * rows * n) == 0);
    CU_ASSERT(memcmp(g1, g2, sizeof(float) * n * k) == 0);
    mt_scratch_free(&ws);
    mt_free(a), mt_free(b), mt_free(c1), mt_free(c2), mt_free(g1), mt_free(g2);
}

/* Element (i, j) of mt_gemm_nt / nn / tn is, bit for bit, the sequential
 * FMA chain over l from 0 (fmaf, correctly rounded like the hardware FMA).
 * mode: 0 nn, 1 nt, 2 tn (A stored [k][rows]). */
static int fma_chain_mismatches(int mode, int rows, int n, int k, const float *a, int lda,
                                const float *b, int ldb, const float *c, int ldc)
{
    int bad = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < n; j++) {
            float acc = 0.0f;
            for (int l = 0; l < k; l++) {
                float al = mode == 2 ? a[(size_t)l * lda + i] : a[(size_t)i * lda + l];
                float bl = mode == 1 ? b[(size_t)j * ldb + l] : b[(size_t)l * ldb + j];
                acc = fmaf(al, bl, acc);
            }
            bad += c[(size_t)i * ldc + j] != acc;
        }
    return bad;
}

static void test_fma_gemm_exact(void)
{
    int shapes[][3] = {{1, 1, 1},    {5, 7, 3},     {33, 33, 300}, {70, 100, 513},
                       {2, 45, 256}, {40, 9, 1000}, {3, 64, 0}};
    mt_scratch ws = {0};

    for (size_t t = 0; t < sizeof(shapes) / sizeof(shapes[0]); t++) {
        int rows = shapes[t][0], n = shapes[t][1], k = shapes[t][2], ldc = n + 5;
        /* leading dimensions per mode (nn, nt, tn), each with some slack */
        int lda[3] = {k + 3, k + 3, rows + 2}, ldb[3] = {n + 2, k + 1, n + 2};
        size_t big = (size_t)(n + k + rows + 4) * (n + k + rows + 4);
        float *a = falloc(big), *b = falloc(big), *c = falloc((size_t)rows * ldc);
        mt_test_fill(a, big, -1, 1, 50 + t);
        mt_test_fill(b, big, -1, 1, 60 + t);
        for (int mode = 0; mode < 3; mode++) {
            mt_test_fill(c, (size_t)rows * ldc, 5, 6, 70 + t); /* garbage to overwrite */
            if (mode == 0)
                MT_TEST_OK(mt_gemm_nn(rows, n, k, a, lda[0], b, ldb[0], c, ldc, &ws));
            else if (mode == 1)
                MT_TEST_OK(mt_gemm_nt(rows, n, k, a, lda[1], b, ldb[1], c, ldc, &ws));
            else
                MT_TEST_OK(mt_gemm_tn(rows, n, k, a, lda[2], b, ldb[2], c, ldc, &ws));
            CU_ASSERT_EQUAL(
                fma_chain_mismatches(mode, rows, n, k, a, lda[mode], b, ldb[mode], c, ldc), 0);
            /* padding columns of C untouched */
            for (int i = 0; i < rows; i++)
                CU_ASSERT(c[(size_t)i * ldc + n] >= 5.0f);
        }
        mt_free(a), mt_free(b), mt_free(c);
    }
    mt_scratch_free(&ws);
}

/* The same products with 1 and 2 threads, and one row alone. */
static void test_fma_gemm_invariance(void)
{
    int rows = 70, n = 1000, k = 700, saved = omp_get_max_threads();
    mt_scratch ws = {0};
    float *a = falloc((size_t)rows * k), *b = falloc((size_t)n * k), *c[2][2];
    float *tn1 = falloc((size_t)k * n), *tn2 = falloc((size_t)k * n);
    float one[1000];

    mt_test_fill(a, (size_t)rows * k, -1, 1, 80);
    mt_test_fill(b, (size_t)n * k, -1, 1, 81);
    for (int t = 0; t < 2; t++) {
        omp_set_num_threads(t + 1);
        c[t][0] = falloc((size_t)rows * n);
        c[t][1] = falloc((size_t)rows * n);
        MT_TEST_OK(mt_gemm_nt(rows, n, k, a, k, b, k, c[t][0], n, &ws));
        MT_TEST_OK(mt_gemm_nn(rows, n, k, a, k, b, n, c[t][1], n, &ws));
        MT_TEST_OK(mt_gemm_tn(k, n, rows, a, k, b, n, t == 0 ? tn1 : tn2, n, &ws));
    }
    CU_ASSERT(memcmp(tn1, tn2, sizeof(float) * k * n) == 0);
    omp_set_num_threads(saved);
    CU_ASSERT(memcmp(c[0][0], c[1][0], sizeof(float) * rows * n) == 0);
    CU_ASSERT(memcmp(c[0][1], c[1][1], sizeof(float) * rows * n) == 0);
    MT_TEST_OK(mt_gemm_nt(1, n, k, a + 37 * k, k, b, k, one, n, &ws));
    CU_ASSERT(memcmp(one, c[0][0] + 37 * n, sizeof(float) * n) == 0);
    MT_TEST_OK(mt_gemm_nn(1, n, k, a + 37 * k, k, b, n, one, n, &ws));
    CU_ASSERT(memcmp(one, c[0][1] + 37 * n, sizeof(float) * n) == 0);
    for (int t = 0; t < 2; t++)
        mt_free(c[t][0]), mt_free(c[t][1]);
    mt_free(a), mt_free(b), mt_free(tn1), mt_free(tn2);
    mt_scratch_free(&ws);
}

/* im2col straight from its definition. */
static float col_ref(const mt_conv_geom *g, const float *x, int r, int q)
{
    int ci = r / (g->k * g->k), ki = r / g->k % g->k, kj = r % g->k;
    int iy = q / g->ow * g->stride - g->pad + ki, ix = q % g->ow * g->stride - g->pad + kj;
    if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w)
        return 0.0f;
    return x[((size_t)ci * g->h + iy) * g->w + ix];
}

static void test_im2col_col2im(void)
{
    /* c, h, w, k, stride, pad: odd sizes, strides that skip trailing
     * inputs, padding wider than the kernel's reach, pointwise. */
    int cases[][6] = {{2, 5, 6, 3, 1, 1}, {3, 9, 9, 3, 2, 1}, {2, 7, 7, 2, 2, 0},
                      {1, 6, 5, 5, 1, 2}, {2, 4, 4, 1, 1, 0}, {2, 8, 7, 3, 3, 2},
                      {1, 3, 3, 3, 1, 3}};
    for (size_t t = 0; t < sizeof(cases) / sizeof(cases[0]); t++) {
        int *cs = cases[t];
        mt_conv_geom g;
        MT_TEST_OK(mt_conv_geom_make(cs[0], cs[1], cs[2], cs[3], cs[4], cs[5], &g));
        CU_ASSERT_EQUAL(g.oh, (cs[1] + 2 * cs[5] - cs[3]) / cs[4] + 1);
        int rows = mt_conv_rows(&g), cols = mt_conv_cols(&g);
        size_t nx = (size_t)g.c * g.h * g.w, nc = (size_t)rows * cols;
        float *x = falloc(nx), *col = falloc(nc), *d = falloc(nc), *xd = falloc(nx);
        mt_test_fill(x, nx, -1, 1, 11 + t);
        mt_test_fill(d, nc, -1, 1, 21 + t);
        mt_im2col(&g, x, col);
        int bad = 0;
        for (int r = 0; r < rows; r++)
            for (int q = 0; q < cols; q++)
                bad += col[(size_t)r * cols + q] != col_ref(&g, x, r, q);
        CU_ASSERT_EQUAL(bad, 0);

        /* Adjoint: <im2col(x), d> = <x, col2im(d)>; both sums in double of
         * exact float products; col2im adds at most k^2 floats per input
         * (relative error < k^2 u), so 1e-6 of the absolute sum. */
        mt_col2im(&g, d, xd);
        double lhs = 0, rhs = 0, abs = 0;
        for (size_t i = 0; i < nc; i++)
            lhs += (double)col[i] * d[i], abs += fabs((double)col[i] * d[i]);
        for (size_t i = 0; i < nx; i++)
            rhs += (double)x[i] * xd[i];
        CU_ASSERT(fabs(lhs - rhs) <= 1e-6 * abs);

        /* Chunks of output rows: concatenated im2col chunks are the full
         * matrix (exactly); summed col2im chunks the full adjoint up to the
         * order of at most k^2 additions of terms below 1 (1e-6 k^2). */
        float *part = falloc(nc), *xs = falloc(nx);
        int chunk = g.oh > 1 ? 2 : 1;
        memset(xs, 0, sizeof(float) * nx);
        bad = 0;
        for (int oy0 = 0; oy0 < g.oh; oy0 += chunk) {
            int noy = g.oh - oy0 < chunk ? g.oh - oy0 : chunk;
            mt_im2col_rows(&g, x, oy0, noy, part, (size_t)noy * g.ow);
            for (int r = 0; r < rows; r++)
                bad += memcmp(part + (size_t)r * noy * g.ow, col + (size_t)r * cols + oy0 * g.ow,
                              sizeof(float) * noy * g.ow) != 0;
            for (int r = 0; r < rows; r++)
                memcpy(part + (size_t)r * noy * g.ow, d + (size_t)r * cols + oy0 * g.ow,
                       sizeof(float) * noy * g.ow);
            mt_col2im_rows(&g, part, (size_t)noy * g.ow, oy0, noy, xs);
        }
        CU_ASSERT_EQUAL(bad, 0);
        for (size_t i = 0; i < nx; i++)
            CU_ASSERT(fabsf(xs[i] - xd[i]) <= 1e-6f * (float)(g.k * g.k));
        mt_free(part), mt_free(xs);
        mt_free(x), mt_free(col), mt_free(d), mt_free(xd);
    }
}

static void test_conv_geom_errors(void)
{
    mt_conv_geom g;
    CU_ASSERT_EQUAL(mt_conv_geom_make(3, 4, 4, 7, 1, 1, &g), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_conv_geom_make(3, 4, 4, 3, 0, 1, &g), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_conv_geom_make(0, 4, 4, 3, 1, 1, &g), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_conv_geom_make(3, 4, 4, 3, 1, -1, &g), MT_ERR_ARG);
    mt_error_clear();
}

static void test_pooling(void)
{
    int c = 3, h = 7, w = 9, k = 2, oh = h / k, ow = w / k;
    size_t nx = (size_t)c * h * w, ny = (size_t)c * oh * ow;
    float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx), *g = falloc(c);

    mt_test_fill(x, nx, -1, 1, 31);
    mt_test_fill(dy, ny, -1, 1, 32);
    mt_avgpool_forward(c, h, w, k, x, y);
    mt_avgpool_backward(c, h, w, k, dy, dx);
    double worst = 0;
    for (int ci = 0; ci < c; ci++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                size_t xi = ((size_t)ci * h + i) * w + j;
                int in_win = i < oh * k && j < ow * k;
                size_t yi = ((size_t)ci * oh + i / k) * ow + j / k;
                /* the adjoint spreads dy / k^2 and zeroes the dropped border */
                float want = in_win ? dy[yi] / 4.0f : 0.0f;
                CU_ASSERT_EQUAL(dx[xi], want);
                if (i % k == 0 && j % k == 0 && in_win) {
                    double s = 0;
                    for (int a = 0; a < k; a++)
                        for (int b = 0; b < k; b++)
                            s += x[xi + (size_t)a * w + b];
                    worst = fmax(worst, fabs(y[yi] - s / 4));
                }
            }
    CU_ASSERT(worst < 1e-6); /* 4 floats of magnitude < 1: error < 4 u */

    mt_gap_forward(c, h * w, x, g);
    for (int ci = 0; ci < c; ci++) {
        double s = 0;
        for (int j = 0; j < h * w; j++)
            s += x[(size_t)ci * h * w + j];
        CU_ASSERT_EQUAL(g[ci], (float)(s / (h * w))); /* same double sum, same order */
    }
    mt_gap_backward(c, h * w, dy, dx);
    CU_ASSERT_EQUAL(dx[h * w + 5], (float)((double)dy[1] / (h * w)));
    mt_free(x), mt_free(y), mt_free(dy), mt_free(dx), mt_free(g);
}

/* 2x2 pooling on planes wide enough for the vector path (ow = 19: one run
 * of 16 and a scalar tail) and odd sizes (a dropped row and column): the
 * outputs are, bit for bit, the loop ((((0 + a) + b) + c) + d) / 4 of the
 * definition, and the adjoint dy / 4 on every window, 0 elsewhere. */
static void test_pooling_2x2_exact(void)
{
    int c = 2, h = 9, w = 39, oh = h / 2, ow = w / 2;
    size_t nx = (size_t)c * h * w, ny = (size_t)c * oh * ow;
    float *x = falloc(nx), *y = falloc(ny), *dy = falloc(ny), *dx = falloc(nx);
    int bad = 0;

    mt_test_fill(x, nx, -1, 1, 33);
    mt_test_fill(dy, ny, -1, 1, 34);
    x[0] = x[1] = x[w] = x[w + 1] = -0.0f; /* a window of negative zeros: +0 */
    mt_avgpool_forward(c, h, w, 2, x, y);
    mt_avgpool_backward(c, h, w, 2, dy, dx);
    for (int ci = 0; ci < c; ci++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                const float *r0 = x + ((size_t)ci * h + 2 * oy) * w + 2 * ox, *r1 = r0 + w;
                float want = ((((0.0f + r0[0]) + r0[1]) + r1[0]) + r1[1]) / 4.0f;
                float got = y[((size_t)ci * oh + oy) * ow + ox];
                bad += memcmp(&want, &got, sizeof want) != 0;
            }
    for (size_t i = 0; i < nx; i++) {
        int ci = (int)(i / ((size_t)h * w)), iy = (int)(i / w % h), ix = (int)(i % w);
        int in_win = iy < 2 * oh && ix < 2 * ow;
        float want = in_win ? dy[((size_t)ci * oh + iy / 2) * ow + ix / 2] / 4.0f : 0.0f;
        bad += memcmp(&want, dx + i, sizeof want) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    mt_free(x), mt_free(y), mt_free(dy), mt_free(dx);
}

/* A sample's convolution outputs and input gradient do not depend on the
 * batch around it: sample 5 of a batch equals the same sample run alone,
 * bit for bit, and 1 thread equals 2 (geometries with small samples grouped
 * into units, stride 2, large samples in panels, the input gradient
 * computed as a convolution of dy, and a batch whose outputs are written
 * with streaming stores while a lone sample's are not). */
static void test_conv_sample_independent(void)
{
    static const int cases[][7] = {/* c, h, k, stride, pad, out, n */
                                   {8, 8, 3, 1, 0, 7, 37},
                                   {5, 16, 3, 2, 1, 13, 37},
                                   {3, 32, 5, 1, 2, 16, 37},
                                   {4, 9, 2, 2, 0, 3, 37},
                                   {9, 12, 3, 1, 1, 5, 37}, /* dx as a convolution of dy */
                                   /* outputs large enough for streaming stores */
                                   {96, 32, 3, 1, 1, 96, 48},
                                   {96, 32, 3, 2, 1, 24, 48}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int *cs = cases[t];
        mt_conv_geom g;
        MT_TEST_OK(mt_conv_geom_make(cs[0], cs[1], cs[1], cs[2], cs[3], cs[4], &g));
        int n = cs[6], o = cs[5], s5 = 5;
        size_t nx = (size_t)g.c * g.h * g.w, ny = (size_t)o * g.oh * g.ow;
        size_t nw = (size_t)o * mt_conv_rows(&g);
        float *x = falloc(nx * n), *dy = falloc(ny * n), *w = falloc(nw), *b = falloc(o);
        float *y = falloc(ny * n), *dx = falloc(nx * n), *y1 = falloc(ny), *dx1 = falloc(nx);
        float *y2 = falloc(ny * n), *dx2 = falloc(nx * n);
        mt_scratch ws = {0};

        mt_test_fill(x, nx * n, -1, 1, 51 + t);
        mt_test_fill(dy, ny * n, -1, 1, 61 + t);
        mt_test_fill(w, nw, -1, 1, 71 + t);
        mt_test_fill(b, o, -1, 1, 81 + t);
        omp_set_num_threads(2);
        MT_TEST_OK(mt_conv_forward(&g, o, w, b, n, x, y, &ws));
        MT_TEST_OK(mt_conv_backward_data(&g, o, w, n, dy, dx, &ws));
        omp_set_num_threads(1);
        MT_TEST_OK(mt_conv_forward(&g, o, w, b, 1, x + nx * s5, y1, &ws));
        MT_TEST_OK(mt_conv_backward_data(&g, o, w, 1, dy + ny * s5, dx1, &ws));
        MT_TEST_OK(mt_conv_forward(&g, o, w, b, n, x, y2, &ws));
        MT_TEST_OK(mt_conv_backward_data(&g, o, w, n, dy, dx2, &ws));
        CU_ASSERT(memcmp(y1, y + ny * s5, sizeof(float) * ny) == 0);
        CU_ASSERT(memcmp(dx1, dx + nx * s5, sizeof(float) * nx) == 0);
        CU_ASSERT(memcmp(y2, y, sizeof(float) * ny * n) == 0);
        CU_ASSERT(memcmp(dx2, dx, sizeof(float) * nx * n) == 0);
        mt_scratch_free(&ws);
        mt_free(x), mt_free(dy), mt_free(w), mt_free(b), mt_free(y), mt_free(dx);
        mt_free(y1), mt_free(dx1), mt_free(y2), mt_free(dx2);
    }
}

/* ReLU and its mask on an array long enough for the streaming path (and a
 * tail) and on a short one: bit for bit the scalar definitions, with NaN,
 * -0 and +0 among the inputs. */
static void test_relu_exact(void)
{
    size_t sizes[2] = {((size_t)1 << 20) + 5, 1000};
    for (int t = 0; t < 2; t++) {
        size_t n = sizes[t];
        float *x = falloc(n), *v = falloc(n), *y = falloc(n), *m = falloc(n);
        size_t bad = 0;
        mt_test_fill(x, n, -1, 1, 91);
        mt_test_fill(v, n, -1, 1, 92);
        x[3] = NAN, x[4] = -0.0f, x[5] = 0.0f, x[n - 1] = NAN, x[n - 2] = -0.0f;
        mt_relu_forward(n, x, y);
        mt_relu_mask(n, x, v, m);
        for (size_t i = 0; i < n; i++) {
            float wy = x[i] <= 0.0f ? 0.0f : x[i], wm = x[i] > 0.0f ? v[i] : 0.0f;
            bad += memcmp(&wy, y + i, sizeof wy) != 0 || memcmp(&wm, m + i, sizeof wm) != 0;
        }
        CU_ASSERT_EQUAL(bad, 0);
        mt_free(x), mt_free(v), mt_free(y), mt_free(m);
    }
}

static void test_sum_rows(void)
{
    int rows = 37, cols = 150;
    float *a = falloc(rows * (cols + 3)), *out = falloc(cols);

    mt_test_fill(a, (size_t)rows * (cols + 3), -1, 1, 41);
    mt_sum_rows(rows, cols, a, cols + 3, out);
    for (int j = 0; j < cols; j++) {
        double s = 0;
        for (int i = 0; i < rows; i++)
            s += a[(size_t)i * (cols + 3) + j];
        CU_ASSERT_EQUAL(out[j], (float)s); /* the documented order, exactly */
    }
    mt_free(a), mt_free(out);
}

int main(void)
{
    static const mt_test_case tests[] = {
        {"gemm_tiled_vs_naive", test_gemm_tiled_vs_naive},
        {"gemm_batch_vs_naive", test_gemm_batch_vs_naive},
        {"gemm_batch_rows_independent", test_gemm_batch_rows_independent},
        {"gemm_threads_bitwise", test_gemm_threads_bitwise},
        {"fma_gemm_exact", test_fma_gemm_exact},
        {"fma_gemm_invariance", test_fma_gemm_invariance},
        {"im2col_col2im", test_im2col_col2im},
        {"conv_geom_errors", test_conv_geom_errors},
        {"pooling", test_pooling},
        {"pooling_2x2_exact", test_pooling_2x2_exact},
        {"conv_sample_independent", test_conv_sample_independent},
        {"relu_exact", test_relu_exact},
        {"sum_rows", test_sum_rows},
    };
    return mt_test_main("kernels", tests, sizeof(tests) / sizeof(tests[0]));
}
