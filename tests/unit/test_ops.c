/*
 * test_ops.c - every op kind against brute force.
 *
 * Derivatives, for each op at small shapes and real ones:
 *   adjoint:  <dy, J v> (from jvp) = <J^T dy, v> (from vjp), in x and in w.
 *             Both sides are float computations; each product is compared
 *             against the sum of absolute terms of both sides: 1e-5, ~100 u,
 *             above the rounding of float sums (sqrt(k) u for k <= 3072 terms
 *             is < 4e-6) and far below any indexing or scaling bug.
 *   finite differences: (f(z + h v) - f(z - h v)) / 2h = J v with h = 1e-2.
 *             Every op here is piecewise linear (ReLU inputs are kept at
 *             |x| >= 0.1 > h |v|), so the quotient is exact up to rounding
 *             of f (about u |f| / h ~ 1e-5 relative); tolerance 1e-3 on the
 *             norm of the difference relative to the norm of J v.
 * Forward passes of dense and conv2d against double loops (error relative
 * to the sum of absolute terms, 1e-5 as above); batch invariance and 1 vs 2
 * threads bit for bit; init bounds and streams; metadata and argument errors.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/kernels.h"
#include "mtrain/op.h"
#include "testutil.h"

#define ADJ_TOL 1e-5
#define FD_TOL 1e-3
#define FD_H 1e-2f
#define FWD_TOL 1e-5

static float *falloc(size_t n)
{
    float *p = mt_alloc(sizeof(float) * (n ? n : 1));
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    return p;
}

static double dot(const float *a, const float *b, size_t n, double *abs)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        *abs += fabs((double)a[i] * b[i]);
    }
    return s;
}

/* ||(fp - fm) / 2h - jv|| / ||jv|| (1 when jv = 0 and fd != 0). */
static double fd_error(const float *fp, const float *fm, const float *jv, size_t n, float h)
{
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < n; i++) {
        double fd = ((double)fp[i] - fm[i]) / (2.0 * h);
        num += (fd - jv[i]) * (fd - jv[i]);
        den += (double)jv[i] * jv[i];
    }
    return den > 0 ? sqrt(num / den) : (num > 0 ? 1.0 : 0.0);
}

/* Uniform in +-[0.1, 1): away from ReLU's kink. */
static void fill_away_from_zero(float *x, size_t n, uint64_t seed)
{
    mt_rng rng = mt_rng_make(seed, 99);
    for (size_t i = 0; i < n; i++) {
        float m = 0.1f + 0.9f * mt_rng_uniform(&rng);
        x[i] = mt_rng_uniform(&rng) < 0.5f ? -m : m;
    }
}

/* The adjoint and finite-difference checks in one argument (x or w). */
typedef struct {
    const char *what;
    double adj, fd;
} deriv_result;

static deriv_result check_input(mt_op *op, int n, const float *w, const float *x, uint64_t seed)
{
    size_t nx = mt_shape_size(op->in) * n, ny = mt_shape_size(op->out) * n;
    float *vx = falloc(nx), *dy = falloc(ny), *jv = falloc(ny), *jt = falloc(nx);
    float *zp = falloc(nx), *zm = falloc(nx), *fp = falloc(ny), *fm = falloc(ny);
    double abs = 0.0, lhs, rhs;
    deriv_result r = {"x", 0, 0};

    mt_test_fill(vx, nx, -1, 1, seed + 1);
    mt_test_fill(dy, ny, -1, 1, seed + 2);
    MT_TEST_OK(op->vt->jvp_x(op, w, n, x, vx, jv));
    MT_TEST_OK(op->vt->vjp_x(op, w, n, x, dy, jt));
    lhs = dot(dy, jv, ny, &abs);
    rhs = dot(jt, vx, nx, &abs);
    r.adj = fabs(lhs - rhs) / (abs > 0 ? abs : 1.0);

    for (size_t i = 0; i < nx; i++)
        zp[i] = x[i] + FD_H * vx[i], zm[i] = x[i] - FD_H * vx[i];
    MT_TEST_OK(op->vt->forward(op, w, n, zp, fp));
    MT_TEST_OK(op->vt->forward(op, w, n, zm, fm));
    r.fd = fd_error(fp, fm, jv, ny, FD_H);
    mt_free(vx), mt_free(dy), mt_free(jv), mt_free(jt);
    mt_free(zp), mt_free(zm), mt_free(fp), mt_free(fm);
    return r;
}

static deriv_result check_weights(mt_op *op, int n, const float *w, const float *x, uint64_t seed)
{
    size_t np = op->n_params, ny = mt_shape_size(op->out) * n;
    float *vw = falloc(np), *dy = falloc(ny), *jv = falloc(ny), *jt = falloc(np);
    float *zp = falloc(np), *zm = falloc(np), *fp = falloc(ny), *fm = falloc(ny);
    double abs = 0.0, lhs, rhs;
    deriv_result r = {"w", 0, 0};

    mt_test_fill(vw, np, -1, 1, seed + 3);
    mt_test_fill(dy, ny, -1, 1, seed + 4);
    MT_TEST_OK(op->vt->jvp_w(op, w, n, x, vw, jv));
    MT_TEST_OK(op->vt->vjp_w(op, w, n, x, dy, jt));
    lhs = dot(dy, jv, ny, &abs);
    rhs = dot(jt, vw, np, &abs);
    r.adj = fabs(lhs - rhs) / (abs > 0 ? abs : 1.0);

    for (size_t i = 0; i < np; i++)
        zp[i] = w[i] + FD_H * vw[i], zm[i] = w[i] - FD_H * vw[i];
    MT_TEST_OK(op->vt->forward(op, zp, n, x, fp));
    MT_TEST_OK(op->vt->forward(op, zm, n, x, fm));
    r.fd = fd_error(fp, fm, jv, ny, FD_H);
    mt_free(vw), mt_free(dy), mt_free(jv), mt_free(jt);
    mt_free(zp), mt_free(zm), mt_free(fp), mt_free(fm);
    return r;
}

/* All derivative checks of op at batch n; consumes op. */
static void check_derivatives(mt_op *op, int n, int away_from_zero, uint64_t seed)
{
    size_t nx = mt_shape_size(op->in) * n;
    float *w = falloc(op->n_params), *x = falloc(nx);
    mt_rng rng = mt_rng_make(seed, 5);
    deriv_result r[2];
    int nr = 0;

    MT_TEST_OK(op->vt->init(op, &rng, w));
    if (away_from_zero)
        fill_away_from_zero(x, nx, seed);
    else
        mt_test_fill(x, nx, -1, 1, seed);
    r[nr++] = check_input(op, n, w, x, seed);
    if (op->n_params > 0)
        r[nr++] = check_weights(op, n, w, x, seed);
    for (int i = 0; i < nr; i++) {
        printf("      %-8s (%d,%d,%d)->(%d,%d,%d) n=%d in %s: adjoint %.1e, fd %.1e\n",
               op->vt->kind, op->in.c, op->in.h, op->in.w, op->out.c, op->out.h, op->out.w, n,
               r[i].what, r[i].adj, r[i].fd);
        CU_ASSERT(r[i].adj <= ADJ_TOL);
        CU_ASSERT(r[i].fd <= FD_TOL);
    }
    mt_free(w), mt_free(x);
    mt_op_destroy(&op);
}

static mt_op *conv(mt_shape in, int oc, int k, int s, int p)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_conv2d_create("conv", in, oc, k, s, p, &op));
    return op;
}

static mt_op *dense(int in, int out)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_dense_create("fc", in, out, &op));
    return op;
}

/* 1 when a conv of this geometry computes in more than one column chunk. */
static int chunked(mt_shape in, int k, int s, int p)
{
    mt_conv_geom g;
    MT_TEST_OK(mt_conv_geom_make(in.c, in.h, in.w, k, s, p, &g));
    return mt_conv_chunk_rows(&g) < g.oh;
}

static void test_dense_derivatives(void)
{
    check_derivatives(dense(7, 3), 5, 0, 100);
    check_derivatives(dense(300, 200), 37, 0, 110);   /* partial last block */
    check_derivatives(dense(3072, 4000), 34, 0, 120); /* the MLP's first layer */
}

static void test_conv_derivatives(void)
{
    mt_shape s1 = {2, 5, 6}, s2 = {3, 9, 9}, s3 = {2, 7, 7}, s4 = {4, 3, 3}, s5 = {2, 8, 7};
    mt_shape cifar = {3, 32, 32}, wide = {96, 32, 32}, big = {512, 32, 32};

    /* (96, 32, 32) stride 1 and (512, 32, 32) pointwise run in several
     * column chunks (mt_conv_chunk_rows), the others in one. */
    CU_ASSERT(chunked(wide, 3, 1, 1) && chunked(big, 1, 1, 0));
    check_derivatives(conv(s1, 3, 3, 1, 1), 3, 0, 200);
    check_derivatives(conv(s2, 4, 3, 2, 1), 2, 0, 210);
    check_derivatives(conv(s3, 3, 2, 2, 0), 2, 0, 220); /* trailing row/col unused */
    check_derivatives(conv(s4, 5, 1, 1, 0), 3, 0, 230); /* pointwise (1x1) */
    check_derivatives(conv(s5, 2, 3, 3, 2), 2, 0, 240);
    check_derivatives(conv(cifar, 16, 5, 1, 2), 4, 0, 250);
    check_derivatives(conv(wide, 96, 3, 2, 1), 2, 0, 260);  /* All-CNN stride 2 */
    check_derivatives(conv(cifar, 8, 3, 1, 1), 35, 0, 270); /* two weight blocks */
    check_derivatives(conv(big, 16, 1, 1, 0), 2, 0, 280);   /* pointwise, 3 chunks */
    check_derivatives(conv(wide, 8, 3, 1, 1), 2, 0, 290);   /* im2col, 4 chunks */
    check_derivatives(conv(cifar, 96, 3, 1, 1), 3, 0, 295); /* c k k < out channels */
}

static void test_other_derivatives(void)
{
    mt_shape s = {3, 4, 5}, odd = {3, 5, 7}, nine = {2, 9, 9}, g = {4, 3, 5};
    mt_op *op = NULL;

    MT_TEST_OK(mt_op_relu_create("relu", s, &op));
    check_derivatives(op, 4, 1, 300);
    MT_TEST_OK(mt_op_avgpool_create("pool", odd, 2, &op));
    check_derivatives(op, 3, 0, 310);
    MT_TEST_OK(mt_op_avgpool_create("pool", nine, 3, &op));
    check_derivatives(op, 2, 0, 320);
    MT_TEST_OK(mt_op_gap_create("gap", g, &op));
    check_derivatives(op, 3, 0, 330);
    MT_TEST_OK(mt_op_flatten_create("flatten", s, &op));
    check_derivatives(op, 3, 0, 340);
}

/* y = W x + b in double, and the sum of absolute terms per output. */
static double dense_forward_error(mt_op *op, int n)
{
    int in = op->in.c, out = op->out.c;
    float *w = falloc(op->n_params), *x = falloc((size_t)n * in), *y = falloc((size_t)n * out);
    double worst = 0.0;

    mt_test_fill(w, op->n_params, -1, 1, 1);
    mt_test_fill(x, (size_t)n * in, -1, 1, 2);
    MT_TEST_OK(op->vt->forward(op, w, n, x, y));
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double ref = w[(size_t)out * in + o], abs = fabs(ref);
            for (int k = 0; k < in; k++) {
                ref += (double)w[(size_t)o * in + k] * x[(size_t)i * in + k];
                abs += fabs((double)w[(size_t)o * in + k] * x[(size_t)i * in + k]);
            }
            worst = fmax(worst, fabs(y[(size_t)i * out + o] - ref) / abs);
        }
    mt_free(w), mt_free(x), mt_free(y);
    return worst;
}

/* Direct convolution in double against the op's im2col + gemm. */
static double conv_forward_error(mt_op *op, int n, int k, int s, int p)
{
    mt_shape in = op->in, out = op->out;
    size_t nx = mt_shape_size(in), ny = mt_shape_size(out), nw = op->n_params - out.c;
    float *w = falloc(op->n_params), *x = falloc(nx * n), *y = falloc(ny * n);
    double worst = 0.0;

    mt_test_fill(w, op->n_params, -1, 1, 3);
    mt_test_fill(x, nx * n, -1, 1, 4);
    MT_TEST_OK(op->vt->forward(op, w, n, x, y));
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out.c; o++)
            for (int oy = 0; oy < out.h; oy++)
                for (int ox = 0; ox < out.w; ox++) {
                    double ref = w[nw + o], abs = fabs(ref);
                    for (int c = 0; c < in.c; c++)
                        for (int a = 0; a < k; a++)
                            for (int b = 0; b < k; b++) {
                                int iy = oy * s - p + a, ix = ox * s - p + b;
                                if (iy < 0 || iy >= in.h || ix < 0 || ix >= in.w)
                                    continue;
                                double t = (double)w[(((size_t)o * in.c + c) * k + a) * k + b] *
                                           x[nx * i + ((size_t)c * in.h + iy) * in.w + ix];
                                ref += t, abs += fabs(t);
                            }
                    size_t yi = ny * i + ((size_t)o * out.h + oy) * out.w + ox;
                    worst = fmax(worst, fabs(y[yi] - ref) / abs);
                }
    mt_free(w), mt_free(x), mt_free(y);
    return worst;
}

static void test_forward_vs_naive(void)
{
    int cases[][6] = {/* c, h, w, out, k, stride; padding in pads[] */
                      {3, 32, 32, 16, 5, 1},
                      {3, 9, 8, 4, 3, 2},
                      {2, 7, 7, 3, 2, 2},
                      {4, 5, 5, 6, 1, 1},
                      {2, 6, 6, 3, 3, 3}};
    int pads[] = {2, 1, 0, 0, 2};
    mt_op *op;

    op = dense(3072, 100);
    double e = dense_forward_error(op, 45);
    printf("      dense 3072->100 forward vs double loops: %.1e\n", e);
    CU_ASSERT(e <= FWD_TOL);
    mt_op_destroy(&op);
    op = dense(5, 3);
    CU_ASSERT(dense_forward_error(op, 2) <= FWD_TOL);
    mt_op_destroy(&op);
    for (int t = 0; t < 5; t++) {
        int *c = cases[t];
        mt_shape in = {c[0], c[1], c[2]};
        op = conv(in, c[3], c[4], c[5], pads[t]);
        e = conv_forward_error(op, 3, c[4], c[5], pads[t]);
        printf("      conv (%d,%d,%d)->%d k%d s%d p%d forward vs direct: %.1e\n", c[0], c[1], c[2],
               c[3], c[4], c[5], pads[t], e);
        CU_ASSERT(e <= FWD_TOL);
        mt_op_destroy(&op);
    }
}

/* forward / vjp_x of a batch of 64 equal those of its halves, bit for bit,
 * and a 40-sample batch (partial last block) equals the first 40 of 64. */
static void check_batch_invariance(mt_op *op)
{
    size_t nx = mt_shape_size(op->in), ny = mt_shape_size(op->out);
    float *w = falloc(op->n_params), *x = falloc(nx * 64), *dy = falloc(ny * 64);
    float *y = falloc(ny * 64), *y2 = falloc(ny * 64), *dx = falloc(nx * 64),
          *dx2 = falloc(nx * 64);

    mt_test_fill(w, op->n_params, -0.1f, 0.1f, 5);
    mt_test_fill(x, nx * 64, -1, 1, 6);
    mt_test_fill(dy, ny * 64, -1, 1, 7);
    MT_TEST_OK(op->vt->forward(op, w, 64, x, y));
    MT_TEST_OK(op->vt->vjp_x(op, w, 64, x, dy, dx));
    for (int h = 0; h < 2; h++) {
        MT_TEST_OK(op->vt->forward(op, w, 32, x + nx * 32 * h, y2 + ny * 32 * h));
        MT_TEST_OK(op->vt->vjp_x(op, w, 32, x + nx * 32 * h, dy + ny * 32 * h, dx2 + nx * 32 * h));
    }
    CU_ASSERT(memcmp(y, y2, sizeof(float) * ny * 64) == 0);
    CU_ASSERT(memcmp(dx, dx2, sizeof(float) * nx * 64) == 0);
    MT_TEST_OK(op->vt->forward(op, w, 40, x, y2));
    MT_TEST_OK(op->vt->vjp_x(op, w, 40, x, dy, dx2));
    CU_ASSERT(memcmp(y, y2, sizeof(float) * ny * 40) == 0);
    CU_ASSERT(memcmp(dx, dx2, sizeof(float) * nx * 40) == 0);
    mt_free(w), mt_free(x), mt_free(dy), mt_free(y), mt_free(y2), mt_free(dx), mt_free(dx2);
    mt_op_destroy(&op);
}

static void test_batch_invariance(void)
{
    mt_shape cifar = {3, 32, 32}, mid = {16, 16, 16};
    check_batch_invariance(dense(3072, 400));
    check_batch_invariance(conv(cifar, 16, 5, 1, 2));
    check_batch_invariance(conv(mid, 20, 3, 2, 1));
}

/* forward, vjp_x and vjp_w with 1 and 2 threads, bit for bit (n = 70: two
 * full blocks and a partial one). */
static void check_threads(mt_op *op)
{
    int n = 70, saved = omp_get_max_threads();
    size_t nx = mt_shape_size(op->in) * n, ny = mt_shape_size(op->out) * n, np = op->n_params;
    float *w = falloc(np), *x = falloc(nx), *dy = falloc(ny), *out[2][3];

    mt_test_fill(w, np, -0.1f, 0.1f, 8);
    mt_test_fill(x, nx, -1, 1, 9);
    mt_test_fill(dy, ny, -1, 1, 10);
    for (int t = 0; t < 2; t++) {
        out[t][0] = falloc(ny), out[t][1] = falloc(nx), out[t][2] = falloc(np);
        omp_set_num_threads(t + 1);
        MT_TEST_OK(op->vt->forward(op, w, n, x, out[t][0]));
        MT_TEST_OK(op->vt->vjp_x(op, w, n, x, dy, out[t][1]));
        MT_TEST_OK(op->vt->vjp_w(op, w, n, x, dy, out[t][2]));
    }
    omp_set_num_threads(saved);
    CU_ASSERT(memcmp(out[0][0], out[1][0], sizeof(float) * ny) == 0);
    CU_ASSERT(memcmp(out[0][1], out[1][1], sizeof(float) * nx) == 0);
    CU_ASSERT(memcmp(out[0][2], out[1][2], sizeof(float) * np) == 0);
    for (int t = 0; t < 2; t++)
        for (int k = 0; k < 3; k++)
            mt_free(out[t][k]);
    mt_free(w), mt_free(x), mt_free(dy);
    mt_op_destroy(&op);
}

static void test_threads_bitwise(void)
{
    mt_shape cifar = {3, 32, 32}, wide = {32, 16, 16}, deep = {128, 16, 16};
    check_threads(dense(3072, 1000));
    check_threads(conv(cifar, 16, 5, 1, 2));
    check_threads(conv(wide, 32, 3, 2, 1));
    CU_ASSERT(chunked(deep, 3, 1, 1));
    check_threads(conv(deep, 32, 3, 1, 1)); /* two column chunks */
    check_threads(conv(cifar, 96, 3, 1, 1)); /* c k k < out channels */
}

/* vjp_w_part over consecutive slices of whole blocks (the last one partial)
 * gives vjp_w's bits over their union, with other passes of the op run in
 * between (as in a pipeline: the next micro-batch's input gradient) and a
 * first call that restarts a sum left unfinished; 1 and 2 threads. */
static void check_parts(mt_op *op)
{
    const int n = 3 * MT_BLOCK + 7, cuts[][4] = {{0, 96, 103, 0}, {0, 32, 64, 103},
                                                  {0, 64, 103, 0}};
    size_t nx = mt_shape_size(op->in), ny = mt_shape_size(op->out), np = op->n_params;
    float *w = falloc(np), *x = falloc(nx * n), *dy = falloc(ny * n), *dx = falloc(nx * n);
    float *whole = falloc(np), *parts = falloc(np);
    int saved = omp_get_max_threads();

    CU_ASSERT_PTR_NOT_NULL_FATAL(op->vt->vjp_w_part);
    mt_test_fill(w, np, -0.1f, 0.1f, 18);
    mt_test_fill(x, nx * n, -1, 1, 19);
    mt_test_fill(dy, ny * n, -1, 1, 20);
    MT_TEST_OK(op->vt->vjp_w(op, w, n, x, dy, whole));
    for (int t = 1; t <= 2; t++)
        for (int c = 0; c < 3; c++) {
            const int *cut = cuts[c];
            int k = 1;
            omp_set_num_threads(t);
            /* an unfinished sum first: the next FIRST must discard it */
            MT_TEST_OK(op->vt->vjp_w_part(op, w, MT_BLOCK, x, dy, parts, MT_PART_FIRST));
            while (k < 4 && (k == 1 || cut[k] > 0)) {
                int lo = cut[k - 1], hi = cut[k], last = hi == n;
                int part = (k == 1 ? MT_PART_FIRST : 0) | (last ? MT_PART_LAST : 0);
                MT_TEST_OK(op->vt->vjp_w_part(op, w, hi - lo, x + nx * lo, dy + ny * lo, parts,
                                              part));
                MT_TEST_OK(op->vt->vjp_x(op, w, hi - lo, x + nx * lo, dy + ny * lo, dx));
                k++;
                if (last)
                    break;
            }
            CU_ASSERT(memcmp(whole, parts, sizeof(float) * np) == 0);
        }
    omp_set_num_threads(saved);
    mt_free(w), mt_free(x), mt_free(dy), mt_free(dx), mt_free(whole), mt_free(parts);
    mt_op_destroy(&op);
}

static void test_weights_in_parts(void)
{
    mt_shape cifar = {3, 32, 32}, wide = {32, 16, 16}, deep = {128, 16, 16};
    check_parts(conv(cifar, 16, 5, 1, 2));
    check_parts(conv(wide, 32, 3, 2, 1));
    check_parts(conv(deep, 32, 3, 1, 1)); /* two column chunks */
    check_parts(conv(cifar, 96, 3, 1, 1)); /* c k k < out channels */
}

/* PyTorch bounds +-1/sqrt(fan_in), weights then bias from the same stream,
 * reproducible per stream, different across streams. */
static void check_init(mt_op *op, int fan_in)
{
    size_t np = op->n_params;
    float *a = falloc(np), *b = falloc(np), bound = (float)(1.0 / sqrt(fan_in)), amax = 0;
    mt_rng r1 = mt_rng_make(42, 1), r1b = mt_rng_make(42, 1), r2 = mt_rng_make(42, 2);
    mt_rng manual = mt_rng_make(42, 1);
    int same = 0, exact = 1;

    MT_TEST_OK(op->vt->init(op, &r1, a));
    for (size_t i = 0; i < np; i++) {
        CU_ASSERT(fabsf(a[i]) <= bound);
        amax = fmaxf(amax, fabsf(a[i]));
        exact &= a[i] == bound * (2.0f * mt_rng_uniform(&manual) - 1.0f);
    }
    CU_ASSERT(amax > 0.9f * bound); /* not a narrower distribution */
    CU_ASSERT(exact);               /* element order, bias after weights */
    MT_TEST_OK(op->vt->init(op, &r1b, b));
    CU_ASSERT(memcmp(a, b, sizeof(float) * np) == 0);
    MT_TEST_OK(op->vt->init(op, &r2, b));
    for (size_t i = 0; i < np; i++)
        same += a[i] == b[i];
    CU_ASSERT(same < (int)np / 100 + 1);
    mt_free(a), mt_free(b);
    mt_op_destroy(&op);
}

static void test_init(void)
{
    mt_shape cifar = {3, 32, 32};
    check_init(dense(300, 40), 300);
    check_init(conv(cifar, 16, 5, 1, 2), 75);
}

static void test_metadata(void)
{
    mt_shape cifar = {3, 32, 32}, odd = {3, 5, 7};
    mt_op *op = dense(3072, 4000);

    CU_ASSERT_STRING_EQUAL(op->vt->kind, "dense");
    CU_ASSERT_STRING_EQUAL(op->name, "fc");
    CU_ASSERT_EQUAL(op->n_params, 3072 * 4000 + 4000);
    CU_ASSERT_EQUAL(op->n_tensors, 2);
    CU_ASSERT_STRING_EQUAL(op->tensors[0].suffix, "weight");
    CU_ASSERT(op->tensors[0].ndim == 2 && op->tensors[0].dims[0] == 4000 &&
              op->tensors[0].dims[1] == 3072 && op->tensors[0].offset == 0);
    CU_ASSERT_STRING_EQUAL(op->tensors[1].suffix, "bias");
    CU_ASSERT(op->tensors[1].offset == 3072 * 4000 && op->tensors[1].n == 4000);
    CU_ASSERT_EQUAL(op->flops, 2.0 * 3072 * 4000);
    CU_ASSERT(op->is_affine && op->vt->solve_x && op->vt->solve_w); /* closed forms wired */
    mt_op_destroy(&op);
    CU_ASSERT_PTR_NULL(op);
    mt_op_destroy(&op); /* accepts NULL */

    op = conv(cifar, 96, 3, 2, 1);
    CU_ASSERT(op->out.c == 96 && op->out.h == 16 && op->out.w == 16);
    CU_ASSERT(op->tensors[0].ndim == 4 && op->tensors[0].dims[1] == 3 &&
              op->tensors[0].dims[2] == 3 && op->tensors[0].n == 96 * 27);
    CU_ASSERT_EQUAL(op->flops, 2.0 * 96 * 27 * 256);
    mt_op_destroy(&op);

    MT_TEST_OK(mt_op_relu_create("r", odd, &op));
    CU_ASSERT(!op->is_affine && op->n_params == 0 && !op->vt->vjp_w && !op->vt->jvp_w);
    mt_op_destroy(&op);
    MT_TEST_OK(mt_op_avgpool_create("p", odd, 2, &op));
    CU_ASSERT(op->out.c == 3 && op->out.h == 2 && op->out.w == 3 && op->is_affine);
    mt_op_destroy(&op);
    MT_TEST_OK(mt_op_gap_create("g", odd, &op));
    CU_ASSERT(op->out.c == 3 && op->out.h == 1 && op->out.w == 1);
    mt_op_destroy(&op);
    MT_TEST_OK(mt_op_flatten_create("flatten", odd, &op));
    CU_ASSERT(op->out.c == 105 && op->out.h == 1 && op->out.w == 1);
    mt_op_destroy(&op);
}

static void test_errors(void)
{
    mt_shape s = {3, 4, 4}, bad = {0, 4, 4};
    mt_op *op = NULL;
    float x[48], y[48];

    CU_ASSERT_EQUAL(mt_op_dense_create("d", 0, 3, &op), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_op_conv2d_create("c", s, 4, 7, 1, 1, &op), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_op_conv2d_create("c", s, 0, 3, 1, 1, &op), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_op_avgpool_create("p", s, 5, &op), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_op_relu_create("r", bad, &op), MT_ERR_ARG);
    CU_ASSERT_EQUAL(
        mt_op_dense_create("a_name_much_longer_than_the_forty_seven_allowed_chars", 3, 3, &op),
        MT_ERR_ARG);
    CU_ASSERT_PTR_NULL(op);
    MT_TEST_OK(mt_op_relu_create("r", s, &op));
    CU_ASSERT_EQUAL(op->vt->forward(op, NULL, -1, x, y), MT_ERR_ARG);
    CU_ASSERT_EQUAL(op->vt->forward(op, NULL, 1, NULL, y), MT_ERR_ARG);
    mt_op_destroy(&op);
    mt_error_clear();
}

/* An empty batch: outputs untouched, weight gradients overwritten with 0. */
static void test_empty_batch(void)
{
    mt_shape cifar = {3, 8, 8};
    mt_op *ops[2] = {dense(6, 4), conv(cifar, 4, 3, 1, 1)};

    for (int t = 0; t < 2; t++) {
        mt_op *op = ops[t];
        float *w = falloc(op->n_params), *dw = falloc(op->n_params), y = 7.0f;
        mt_test_fill(w, op->n_params, -1, 1, 11);
        mt_test_fill(dw, op->n_params, 1, 2, 12);
        MT_TEST_OK(op->vt->forward(op, w, 0, NULL, &y));
        CU_ASSERT_EQUAL(y, 7.0f);
        MT_TEST_OK(op->vt->vjp_w(op, w, 0, NULL, NULL, dw));
        for (size_t i = 0; i < op->n_params; i++)
            CU_ASSERT_EQUAL(dw[i], 0.0f);
        mt_free(w), mt_free(dw);
        mt_op_destroy(&op);
    }
}

/* ReLU's derivative at exactly 0 is 0 (PyTorch's convention). */
static void test_relu_kink(void)
{
    mt_shape s = {4, 1, 1};
    float x[4] = {0.0f, -0.0f, 1.0f, -1.0f}, v[4] = {1, 1, 1, 1}, y[4], d[4];
    mt_op *op = NULL;

    MT_TEST_OK(mt_op_relu_create("r", s, &op));
    MT_TEST_OK(op->vt->forward(op, NULL, 1, x, y));
    CU_ASSERT(y[0] == 0 && y[1] == 0 && y[2] == 1 && y[3] == 0);
    MT_TEST_OK(op->vt->vjp_x(op, NULL, 1, x, v, d));
    CU_ASSERT(d[0] == 0 && d[1] == 0 && d[2] == 1 && d[3] == 0);
    MT_TEST_OK(op->vt->jvp_x(op, NULL, 1, x, v, d));
    CU_ASSERT(d[0] == 0 && d[1] == 0 && d[2] == 1 && d[3] == 0);
    mt_op_destroy(&op);
}

int main(void)
{
    static const mt_test_case tests[] = {
        {"dense_derivatives", test_dense_derivatives},
        {"conv_derivatives", test_conv_derivatives},
        {"other_derivatives", test_other_derivatives},
        {"forward_vs_naive", test_forward_vs_naive},
        {"batch_invariance", test_batch_invariance},
        {"threads_bitwise", test_threads_bitwise},
        {"weights_in_parts", test_weights_in_parts},
        {"init", test_init},
        {"metadata", test_metadata},
        {"errors", test_errors},
        {"relu_kink", test_relu_kink},
        {"empty_batch", test_empty_batch},
    };
    return mt_test_main("ops", tests, sizeof(tests) / sizeof(tests[0]));
}
