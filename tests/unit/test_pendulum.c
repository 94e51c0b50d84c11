/*
 * test_pendulum.c - the pendulum step op, its terminal cost and the rollout
 * (include/mtrain/control.h): hand-computed values, finite differences,
 * the adjoint identity, and exact subproblem solvers against brute force.
 *
 * The brute-force objectives re-implement the dynamics here, independently
 * of src/ops/pendulum.c, in long double (64-bit mantissa) so that grid
 * search, golden section and finite-difference gradient descent resolve
 * the minimisers well below the 1e-5 tolerance.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/control.h"
#include "testutil.h"

typedef long double ld;

/* ---- an independent reference of the dynamics ----------------------------- */

static void ref_step(const ld u[2], ld w, ld f[2])
{
    const ld dt = MT_PENDULUM_DELTA, ml2 = MT_PENDULUM_MASS * MT_PENDULUM_LENGTH *
                                           MT_PENDULUM_LENGTH;
    f[0] = u[0] + dt * u[1];
    f[1] = u[1] + dt * (-(ld)MT_PENDULUM_GRAVITY * sinl(u[0]) / MT_PENDULUM_LENGTH -
                        (ld)MT_PENDULUM_FRICTION * u[1] / ml2 + w / ml2);
}

/* ---- generic brute-force minimisers --------------------------------------- */

typedef ld (*objective)(const void *ctx, const ld *y);

/* Gradient descent with central-difference gradients and a backtracking
 * step, from y, until no representable decrease remains. */
static void descend(objective F, const void *ctx, int dim, ld *y)
{
    ld t = 0.1L, fy = F(ctx, y);

    for (int it = 0; it < 400000; it++) {
        ld g[2], yt[2], ft, gn = 0.0L;
        for (int k = 0; k < dim; k++) {
            ld h = 1e-7L * (1.0L + fabsl(y[k])), yp[2], ym[2];
            memcpy(yp, y, dim * sizeof *y);
            memcpy(ym, y, dim * sizeof *y);
            yp[k] += h;
            ym[k] -= h;
            g[k] = (F(ctx, yp) - F(ctx, ym)) / (2.0L * h);
            gn += g[k] * g[k];
        }
        if (gn == 0.0L)
            return;
        for (;;) {
            for (int k = 0; k < dim; k++)
                yt[k] = y[k] - t * g[k];
            ft = F(ctx, yt);
            if (ft < fy || t < 1e-30L)
                break;
            t *= 0.5L;
        }
        if (!(ft < fy))
            return;
        memcpy(y, yt, dim * sizeof *y);
        fy = ft;
        t *= 2.0L;
    }
}

/* 2-D: the best point of a (2m+1)^2 grid on [-R, R]^2, then descend. */
static void brute2(objective F, const void *ctx, ld R, ld y[2])
{
    const int m = 150;
    ld best = INFINITY;

    for (int i = -m; i <= m; i++)
        for (int j = -m; j <= m; j++) {
            ld p[2] = {R * i / m, R * j / m}, v = F(ctx, p);
            if (v < best) {
                best = v;
                y[0] = p[0];
                y[1] = p[1];
            }
        }
    descend(F, ctx, 2, y);
}

/* 1-D: the best point of a 4001-point grid on [-R, R], then golden section
 * on the two cells around it. */
static ld brute1(objective F, const void *ctx, ld R)
{
    const int m = 2000;
    const ld phi = 0.6180339887498948482L;
    ld best = INFINITY, yb = 0.0L, a, b, c, d, fc, fd;

    for (int i = -m; i <= m; i++) {
        ld p = R * i / m, v = F(ctx, &p);
        if (v < best) {
            best = v;
            yb = p;
        }
    }
    a = yb - R / m;
    b = yb + R / m;
    c = b - phi * (b - a);
    d = a + phi * (b - a);
    fc = F(ctx, &c);
    fd = F(ctx, &d);
    for (int it = 0; it < 200; it++) {
        if (fc < fd) {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = F(ctx, &c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = F(ctx, &d);
        }
    }
    return 0.5L * (a + b);
}

/* ||a - b|| / max(||b||, floor) for dim-vectors. */
static double rel_err(const float *a, const ld *b, int dim, double floor)
{
    ld d = 0.0L, nb = 0.0L;
    for (int k = 0; k < dim; k++) {
        d += (a[k] - b[k]) * (a[k] - b[k]);
        nb += b[k] * b[k];
    }
    return (double)(sqrtl(d) / fmaxl(sqrtl(nb), floor));
}

/* ---- subproblem objectives (op.h, mt_subproblem) -------------------------- */

typedef struct {
    mt_sub_kind kind;
    double s, decay, w;
    int n;
    const float *x, *lambda; /* [n][2] */
} sub_case;

/* Input problem for sample 0 of the case, y in R^2. */
static ld obj_input(const void *ctx, const ld *y)
{
    const sub_case *c = ctx;
    ld z[2] = {c->x[0], c->x[1]}, u[2] = {z[0] - y[0], z[1] - y[1]}, f[2], fz[2];
    ld lam[2] = {c->lambda[0], c->lambda[1]}, yy = y[0] * y[0] + y[1] * y[1];
    ld uu = u[0] * u[0] + u[1] * u[1];

    ref_step(u, c->w, f);
    if (c->kind == MT_SUB_M)
        return c->s * (lam[0] * f[0] + lam[1] * f[1]) + yy / 2 + c->decay / 2 * uu;
    ref_step(z, c->w, fz);
    ld r0 = f[0] - fz[0] + lam[0], r1 = f[1] - fz[1] + lam[1];
    return c->s * (r0 * r0 + r1 * r1) + yy + c->decay * uu;
}

/* Weight problem over the whole batch, scalar v. */
static ld obj_weight(const void *ctx, const ld *v)
{
    const sub_case *c = ctx;
    ld acc = 0.0L, wv = (ld)c->w - v[0];

    for (int i = 0; i < c->n; i++) {
        ld x[2] = {c->x[2 * i], c->x[2 * i + 1]}, f[2], fz[2];
        ld lam[2] = {c->lambda[2 * i], c->lambda[2 * i + 1]};
        ref_step(x, wv, f);
        if (c->kind == MT_SUB_M) {
            acc += lam[0] * f[0] + lam[1] * f[1];
        } else {
            ref_step(x, c->w, fz);
            ld r0 = f[0] - fz[0] + lam[0], r1 = f[1] - fz[1] + lam[1];
            acc += r0 * r0 + r1 * r1;
        }
    }
    if (c->kind == MT_SUB_M)
        return c->s * acc + v[0] * v[0] / 2 + c->decay / 2 * wv * wv;
    return c->s * acc + v[0] * v[0] + c->decay * wv * wv;
}

/* A radius outside which F(y) > F(0): with ||J|| <= 2 for f, the M problem
 * needs ||y|| <= 2 (2 s |lam| + decay |z|) / (1 + decay) and the A problem
 * ||y|| <= (2 decay |z| + sqrt(4 decay^2 |z|^2 + 4 (1+decay) s |lam|^2)) /
 * (2 (1 + decay)); the sum of both, padded, bounds either. */
static ld search_radius(double s, double decay, ld lam_norm, ld z_norm)
{
    return 2.0L * (2.0L * s * lam_norm + decay * z_norm) / (1.0L + decay) +
           sqrtl(s) * lam_norm + 1e-3L;
}

/* ---- the op ------------------------------------------------------------- */

static mt_op *make_op(void)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_pendulum_create("ctrl.3", &op));
    return op;
}

static void test_create(void)
{
    mt_op *op = make_op(), *bad = NULL;
    mt_rng rng = mt_rng_make(1, 2);
    float w = 7.0f;
    char longname[64];

    CU_ASSERT_STRING_EQUAL(op->vt->kind, "pendulum");
    CU_ASSERT_STRING_EQUAL(op->name, "ctrl.3");
    CU_ASSERT_EQUAL(mt_shape_size(op->in), 2);
    CU_ASSERT_EQUAL(op->out.c, 2);
    CU_ASSERT_EQUAL(op->n_params, 1);
    CU_ASSERT_EQUAL(op->n_tensors, 1);
    CU_ASSERT_STRING_EQUAL(op->tensors[0].suffix, "control");
    CU_ASSERT_EQUAL(op->tensors[0].ndim, 1);
    CU_ASSERT_EQUAL(op->tensors[0].dims[0], 1);
    CU_ASSERT_EQUAL(op->tensors[0].n, 1);
    CU_ASSERT_EQUAL(op->is_affine, 0);
    CU_ASSERT_PTR_NOT_NULL(op->vt->solve_x);
    CU_ASSERT_PTR_NOT_NULL(op->vt->solve_w);
    MT_TEST_OK(op->vt->init(op, &rng, &w));
    CU_ASSERT_EQUAL(w, 0.0f);

    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CU_ASSERT_EQUAL(mt_op_pendulum_create(longname, &bad), MT_ERR_ARG);
    CU_ASSERT_PTR_NULL(bad);
    mt_error_clear();
    mt_op_destroy(&op);
    CU_ASSERT_PTR_NULL(op);
}

/* One step from (theta, omega) = (0.3, -0.2) with w = 1.5:
 *   theta' = 0.3 + 0.1 * (-0.2) = 0.28
 *   sin(0.3) = 0.29552020666134,  9.81 sin(0.3) = 2.89905322734774
 *   omega' = -0.2 + 0.1 (-2.89905322734774 + 0.01 * 0.2 + 1.5)
 *          = -0.2 + 0.1 (-1.39705322734774) = -0.339705322734774
 * Float outputs are the double results rounded: relative error <= 2^-24
 * (6e-8); tolerance 2e-7. */
static void test_forward_hand(void)
{
    mt_op *op = make_op();
    float x[2] = {0.3f, -0.2f}, w = 1.5f, y[2];

    /* the float inputs are not exactly 0.3, -0.2: their error (1e-8) moves
     * the outputs by less than 2e-8, inside the tolerance */
    MT_TEST_OK(op->vt->forward(op, &w, 1, x, y));
    CU_ASSERT_DOUBLE_EQUAL(y[0], 0.28, 2e-7 * 0.28);
    CU_ASSERT_DOUBLE_EQUAL(y[1], -0.339705322734774, 2e-7 * 0.34);
    mt_op_destroy(&op);
}

/* Samples are independent: a batch of n gives, bit for bit, what n
 * single-sample calls give (forward, vjp_x and the input solver). */
static void test_batch_independence(void)
{
    enum { N = 37 };
    mt_op *op = make_op();
    float x[2 * N], lam[2 * N], w = 0.8f, y[2 * N], d[2 * N], sol[2 * N], one[2];
    mt_subproblem sp = {MT_SUB_A, 2.0, 0.0};
    mt_solve_report rep;
    int same = 1;

    mt_test_fill(x, 2 * N, -3.0f, 3.0f, 11);
    mt_test_fill(lam, 2 * N, -1.0f, 1.0f, 12);
    MT_TEST_OK(op->vt->forward(op, &w, N, x, y));
    MT_TEST_OK(op->vt->vjp_x(op, &w, N, x, lam, d));
    MT_TEST_OK(op->vt->solve_x(op, &sp, &w, N, x, y, lam, sol, &rep));
    for (int i = 0; i < N; i++) {
        MT_TEST_OK(op->vt->forward(op, &w, 1, x + 2 * i, one));
        same &= memcmp(one, y + 2 * i, sizeof one) == 0;
        MT_TEST_OK(op->vt->vjp_x(op, &w, 1, x + 2 * i, lam + 2 * i, one));
        same &= memcmp(one, d + 2 * i, sizeof one) == 0;
        MT_TEST_OK(op->vt->solve_x(op, &sp, &w, 1, x + 2 * i, y + 2 * i, lam + 2 * i, one,
                                   &rep));
        same &= memcmp(one, sol + 2 * i, sizeof one) == 0;
    }
    CU_ASSERT(same);
    mt_op_destroy(&op);
}

/*
 * Jacobians against central differences of the float forward, h = 1e-2.
 * Truncation: h^2/6 |f'''| <= 1e-4/6 * delta g / l = 1.7e-5 (sin is the only
 * nonlinearity). Rounding: outputs |f| <= 4 carry <= 2.4e-7 error each, so
 * <= 2 * 2.4e-7 / (2h) = 2.4e-5 (we divide by the float-representable step
 * actually taken). Tolerance 1e-4 on max |a-b| / (1 + max(|a|,|b|)).
 */
static void test_jacobians_fd(void)
{
    enum { N = 5 };
    const float h = 1e-2f;
    mt_op *op = make_op();
    float x[2 * N], w = -0.6f, xp[2 * N], xm[2 * N], yp[2 * N], ym[2 * N];
    float fd[2 * N], an[2 * N], e[2 * N], wp, wm;

    mt_test_fill(x, 2 * N, -2.0f, 2.0f, 21);
    for (int k = 0; k < 2; k++) {
        /* column k of J_x, by jvp_x with v = e_k, and entry (j, k) by vjp_x */
        memcpy(xp, x, sizeof x);
        memcpy(xm, x, sizeof x);
        for (int i = 0; i < N; i++) {
            xp[2 * i + k] += h;
            xm[2 * i + k] -= h;
            e[2 * i] = (float)(k == 0);
            e[2 * i + 1] = (float)(k == 1);
        }
        MT_TEST_OK(op->vt->forward(op, &w, N, xp, yp));
        MT_TEST_OK(op->vt->forward(op, &w, N, xm, ym));
        for (int i = 0; i < 2 * N; i++)
            fd[i] = (float)(((double)yp[i] - ym[i]) / ((double)xp[2 * (i / 2) + k] -
                                                      xm[2 * (i / 2) + k]));
        MT_TEST_OK(op->vt->jvp_x(op, &w, N, x, e, an));
        CU_ASSERT(mt_test_max_rel(fd, an, 2 * N, 1.0) < 1e-4);
        for (int j = 0; j < 2; j++) {
            float dy[2 * N], dx[2 * N], col[N], row[N];
            for (int i = 0; i < N; i++) {
                dy[2 * i] = (float)(j == 0);
                dy[2 * i + 1] = (float)(j == 1);
            }
            MT_TEST_OK(op->vt->vjp_x(op, &w, N, x, dy, dx));
            for (int i = 0; i < N; i++) {
                col[i] = fd[2 * i + j];
                row[i] = dx[2 * i + k];
            }
            CU_ASSERT(mt_test_max_rel(col, row, N, 1.0) < 1e-4);
        }
    }

    /* J_w: f is affine in w, so only rounding remains (same bound) */
    wp = w + h;
    wm = w - h;
    MT_TEST_OK(op->vt->forward(op, &wp, N, x, yp));
    MT_TEST_OK(op->vt->forward(op, &wm, N, x, ym));
    for (int i = 0; i < 2 * N; i++)
        fd[i] = (float)(((double)yp[i] - ym[i]) / ((double)wp - wm));
    {
        float one = 1.0f, dy[2 * N], dw, dw_fd = 0.0f;
        double acc = 0.0;
        MT_TEST_OK(op->vt->jvp_w(op, &w, N, x, &one, an));
        CU_ASSERT(mt_test_max_rel(fd, an, 2 * N, 1.0) < 1e-4);
        /* vjp_w sums over samples: compare with sum_i <dy_i, d f_i / dw> */
        mt_test_fill(dy, 2 * N, -1.0f, 1.0f, 22);
        MT_TEST_OK(op->vt->vjp_w(op, &w, N, x, dy, &dw));
        for (int i = 0; i < 2 * N; i++)
            acc += (double)dy[i] * fd[i];
        dw_fd = (float)acc;
        CU_ASSERT(mt_test_max_rel(&dw_fd, &dw, 1, 1.0) < 1e-4);
    }
    mt_op_destroy(&op);
}

/* <dy, J v> = <J^T dy, v> for J = J_x (per sample, summed) and J = J_w.
 * Both sides are sums of 2n products of float outputs, each rounded with
 * relative error 6e-8: tolerance 1e-6 relative to the sum of |terms|. */
static void test_adjoint_identity(void)
{
    enum { N = 9 };
    mt_op *op = make_op();
    float x[2 * N], dy[2 * N], v[2 * N], jv[2 * N], jtd[2 * N], w = 1.3f, vw = -0.7f, dw;
    double lhs = 0.0, rhs = 0.0, scale = 0.0;

    mt_test_fill(x, 2 * N, -3.0f, 3.0f, 31);
    mt_test_fill(dy, 2 * N, -1.0f, 1.0f, 32);
    mt_test_fill(v, 2 * N, -1.0f, 1.0f, 33);
    MT_TEST_OK(op->vt->jvp_x(op, &w, N, x, v, jv));
    MT_TEST_OK(op->vt->vjp_x(op, &w, N, x, dy, jtd));
    for (int i = 0; i < 2 * N; i++) {
        lhs += (double)dy[i] * jv[i];
        rhs += (double)jtd[i] * v[i];
        scale += fabs((double)dy[i] * jv[i]) + fabs((double)jtd[i] * v[i]);
    }
    CU_ASSERT(fabs(lhs - rhs) <= 1e-6 * scale);

    MT_TEST_OK(op->vt->jvp_w(op, &w, N, x, &vw, jv));
    MT_TEST_OK(op->vt->vjp_w(op, &w, N, x, dy, &dw));
    lhs = rhs = scale = 0.0;
    for (int i = 0; i < 2 * N; i++) {
        lhs += (double)dy[i] * jv[i];
        scale += fabs((double)dy[i] * jv[i]);
    }
    rhs = (double)dw * vw;
    CU_ASSERT(fabs(lhs - rhs) <= 1e-6 * (scale + fabs(rhs)));
    mt_op_destroy(&op);
}

/* ---- exact solvers against brute force ------------------------------------ */

static const float sub_lambdas[4][2] = {
    {0.0f, 0.0f},       /* zero: y = 0 unless decay pulls */
    {1e-3f, -2e-3f},    /* small */
    {-0.5f, -0.8f},     /* negative */
    {3.0f, -4.0f},      /* large: nonconvex for large s */
};
static const double sub_s[3] = {0.1, 1.0, 10.0};
static const double sub_decay[2] = {0.0, 0.3};

/*
 * Brute force for the M input problem, global by construction. f is affine
 * in omega, so for a fixed y1 the objective is an exact quadratic in y2:
 * three evaluations give its minimiser (the vertex of the parabola). The
 * profile P(y1) = min_y2 F(y1, y2) is scanned on a grid of spacing at most
 * 2e-2 over [-R, R] (R from search_radius, outside which F > F(0)); every
 * grid local minimum is refined by golden section on its two cells, and
 * the best refined point wins. The profile has at most one local minimum
 * per period 2 pi of its sine term, and a basin that can hold the global
 * minimum (depth comparable to the sine's amplitude) spans about a period,
 * i.e. hundreds of cells; refining every grid minimum, not just the best
 * one, leaves no near-tie between basins to chance.
 */
static ld m_y2(const sub_case *c, ld y1)
{
    ld a[2] = {y1, -1.0L}, b[2] = {y1, 0.0L}, d[2] = {y1, 1.0L};
    ld fa = obj_input(c, a), fb = obj_input(c, b), fd = obj_input(c, d);
    /* F = A y2^2 + B y2 + C: vertex -B / (2 A), A = (fa + fd - 2 fb) / 2 > 0 */
    return -(fd - fa) / 2.0L / (fa + fd - 2.0L * fb);
}

static ld m_profile(const void *ctx, const ld *y1)
{
    const sub_case *c = ctx;
    ld y[2] = {*y1, m_y2(c, *y1)};
    return obj_input(c, y);
}

static ld golden(objective F, const void *ctx, ld a, ld b)
{
    const ld phi = 0.6180339887498948482L;
    ld c = b - phi * (b - a), d = a + phi * (b - a), fc = F(ctx, &c), fd = F(ctx, &d);

    for (int it = 0; it < 200; it++) {
        if (fc < fd) {
            b = d, d = c, fd = fc;
            c = b - phi * (b - a);
            fc = F(ctx, &c);
        } else {
            a = c, c = d, fc = fd;
            d = a + phi * (b - a);
            fd = F(ctx, &d);
        }
    }
    return 0.5L * (a + b);
}

static void brute_m(const sub_case *c, ld R, ld y[2])
{
    int m = (int)ceill(R / 2e-2L);
    ld h, best = INFINITY, prev, cur, next = 0.0L;

    m = m < 2000 ? 2000 : m;
    h = R / m;
    y[0] = y[1] = 0.0L;
    prev = INFINITY;
    for (int i = -m; i <= m; i++) {
        ld p = h * i, q = p + h;
        cur = i == -m ? m_profile(c, &p) : next;
        next = i < m ? m_profile(c, &q) : INFINITY;
        if (cur <= prev && cur <= next) {
            ld y1 = golden(m_profile, c, p - h, p + h), v = m_profile(c, &y1);
            if (v < best) {
                best = v;
                y[0] = y1;
            }
        }
        prev = cur;
    }
    y[1] = m_y2(c, y[0]);
}

/*
 * Input problems, both kinds, 3 states x 4 lambdas x 3 s x 2 decays.
 * Tolerance: ||y - y_bf|| <= 1e-5 max(||y_bf||, 1e-6); y is rounded to
 * float (6e-8) and the brute force resolves y to ~1e-9 in long double.
 * The solver's residual must be <= 1e-10 (its stopping rule).
 * M problems are solved globally (pendulum.c), so they must match brute_m.
 * When an A problem is nonconvex the solver (Newton from y = 0) may
 * legitimately stop at a local minimiser other than the global one the
 * grid finds: such a case passes
 * only if the solver's point has a higher value than the brute force (else
 * the brute force missed), is a local minimum (descent started there does
 * not move it by more than the tolerance) and beats y = 0.
 */
static void check_input_case(mt_op *op, const sub_case *c, int *n_local, int *max_it)
{
    mt_subproblem sp = {c->kind, c->s, c->decay};
    mt_solve_report rep = {-1, -1.0};
    float fx[2], y[2];
    ld yb[2], yl[2], ys[2], zero[2] = {0.0L, 0.0L};
    ld lam_n = hypotl(c->lambda[0], c->lambda[1]), z_n = hypotl(c->x[0], c->x[1]);
    double err;
    float w = (float)c->w;

    MT_TEST_OK(op->vt->forward(op, &w, 1, c->x, fx));
    MT_TEST_OK(op->vt->solve_x(op, &sp, &w, 1, c->x, fx, c->lambda, y, &rep));
    CU_ASSERT(rep.residual >= 0.0 && rep.residual <= 1e-10);
    if (rep.iterations > max_it[c->s > 0.5])
        max_it[c->s > 0.5] = rep.iterations;
    if (c->kind == MT_SUB_M) { /* solved globally: must match */
        brute_m(c, search_radius(c->s, c->decay, lam_n, z_n), yb);
        CU_ASSERT(rel_err(y, yb, 2, 1e-6) <= 1e-5);
        return;
    }
    brute2(obj_input, c, search_radius(c->s, c->decay, lam_n, z_n), yb);
    err = rel_err(y, yb, 2, 1e-6);
    if (err <= 1e-5)
        return;

    ys[0] = y[0];
    ys[1] = y[1];
    memcpy(yl, ys, sizeof ys);
    descend(obj_input, c, 2, yl);
    CU_ASSERT(obj_input(c, ys) > obj_input(c, yb));
    CU_ASSERT(rel_err(y, yl, 2, 1e-6) <= 1e-5);
    CU_ASSERT(obj_input(c, ys) <= obj_input(c, zero));
    (*n_local)++;
    printf("\n  local minimiser: kind %c s %g decay %g z (%g, %g) lam (%g, %g): "
           "y (%.6g, %.6g) global (%.6Lg, %.6Lg), %d Newton its",
           c->kind == MT_SUB_M ? 'M' : 'A', c->s, c->decay, c->x[0], c->x[1], c->lambda[0],
           c->lambda[1], y[0], y[1], yb[0], yb[1], rep.iterations);
}

static void test_solve_x_brute(void)
{
    static const float states[3][2] = {{0.3f, -0.2f}, {2.5f, 1.0f}, {-1.2f, 0.7f}};
    mt_op *op = make_op();
    int n_cases = 0, n_local = 0, max_it[2] = {0, 0};

    for (int kind = 0; kind < 2; kind++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 4; b++)
                for (int k = 0; k < 3; k++)
                    for (int d = 0; d < 2; d++) {
                        sub_case c = {kind ? MT_SUB_A : MT_SUB_M, sub_s[k], sub_decay[d],
                                      0.4, 1, states[a], sub_lambdas[b]};
                        check_input_case(op, &c, &n_local, max_it);
                        n_cases++;
                    }
    printf("\n  %d input cases, %d ended at a (checked) non-global local minimiser; "
           "Newton iterations at most %d (s = 0.1), %d (s >= 1)\n",
           n_cases, n_local, max_it[0], max_it[1]);
    /* the small-s, small-lambda cases are convex: most must match globally */
    CU_ASSERT(n_local < n_cases / 4);
    /* Newton converges quadratically: with s = 0.1 all problems are strongly
     * convex and near-quadratic (measured at most 4); with s >= 1 a few
     * damped or gradient steps come first (measured at most 7). A wrong
     * Hessian degrades to linear convergence and breaks these bounds. */
    CU_ASSERT(max_it[0] <= 6);
    CU_ASSERT(max_it[1] <= 20);
    mt_op_destroy(&op);
}

/*
 * The M input problem where it is strongly nonconvex: 200 random cases with
 * z in [-4, 4]^2, lambda in [-L, L]^2 for L = 1, 10, 100, s in {0.5, 2},
 * decay 0 or 0.3, so s |lambda_2| delta g / l reaches ~200 (tens of local
 * minima). The solver must find brute_m's global minimiser (tolerance as
 * in check_input_case, 1e-5 relative, floor 1e-6) and its value must not
 * exceed the brute force's (1e-12 relative slack for rounding). Newton from
 * y = 0, the op's former solver, missed the global minimiser in 13 of the
 * 72 M cases of test_solve_x_brute.
 */
static void test_solve_m_global(void)
{
    enum { N_CASES = 200 };
    static const double scales[3] = {1.0, 10.0, 100.0}, ss[2] = {0.5, 2.0};
    mt_op *op = make_op();
    float z[2 * N_CASES], lam[2 * N_CASES];
    int worse = 0, far = 0;

    mt_test_fill(z, 2 * N_CASES, -4.0f, 4.0f, 61);
    mt_test_fill(lam, 2 * N_CASES, -1.0f, 1.0f, 62);
    for (int i = 0; i < N_CASES; i++) {
        float l[2] = {lam[2 * i] * (float)scales[i % 3], lam[2 * i + 1] * (float)scales[i % 3]};
        sub_case c = {MT_SUB_M, ss[(i / 3) % 2], (i / 6) % 2 ? 0.3 : 0.0, -0.9, 1, z + 2 * i, l};
        mt_subproblem sp = {MT_SUB_M, c.s, c.decay};
        mt_solve_report rep = {-1, -1.0};
        float y[2], fx[2], w = (float)c.w;
        ld yb[2], ys[2], R = search_radius(c.s, c.decay, hypotl(l[0], l[1]),
                                           hypotl(z[2 * i], z[2 * i + 1]));

        MT_TEST_OK(op->vt->forward(op, &w, 1, z + 2 * i, fx));
        MT_TEST_OK(op->vt->solve_x(op, &sp, &w, 1, z + 2 * i, fx, l, y, &rep));
        brute_m(&c, R, yb);
        ys[0] = y[0];
        ys[1] = y[1];
        far += rel_err(y, yb, 2, 1e-6) > 1e-5;
        worse += obj_input(&c, ys) > obj_input(&c, yb) + 1e-12L * fabsl(obj_input(&c, yb)) +
                                     1e-6L * (fabsl(yb[0]) + fabsl(yb[1])) * 1e-6L;
    }
    printf("\n  %d random M problems: %d off the global minimiser, %d with a higher value\n",
           N_CASES, far, worse);
    CU_ASSERT_EQUAL(far, 0);
    CU_ASSERT_EQUAL(worse, 0);
    mt_op_destroy(&op);
}

/* Weight problems over a batch of 3: kinds x lambdas x s x decay. These are
 * quadratics; tolerance 1e-5 relative (floor 1e-9), residual <= 1e-10. */
static void test_solve_w_brute(void)
{
    enum { N = 3 };
    mt_op *op = make_op();
    float x[2 * N], lam[2 * N], fx[2 * N], w = 0.7f;

    mt_test_fill(x, 2 * N, -2.0f, 2.0f, 41);
    MT_TEST_OK(op->vt->forward(op, &w, N, x, fx));
    for (int kind = 0; kind < 2; kind++)
        for (int b = 0; b < 4; b++)
            for (int k = 0; k < 3; k++)
                for (int d = 0; d < 2; d++) {
                    mt_subproblem sp = {kind ? MT_SUB_A : MT_SUB_M, sub_s[k], sub_decay[d]};
                    sub_case c = {sp.kind, sp.s, sp.decay, w, N, x, lam};
                    mt_solve_report rep = {-1, -1.0};
                    ld lam_n = 0.0L, vb;
                    float v;

                    /* sample i gets lambda (row b) scaled by (1 + i/2), signs mixed */
                    for (int i = 0; i < N; i++) {
                        lam[2 * i] = sub_lambdas[b][0] * (1.0f + 0.5f * i);
                        lam[2 * i + 1] = sub_lambdas[b][1] * (i == 1 ? -0.5f : 1.0f);
                        lam_n += hypotl(lam[2 * i], lam[2 * i + 1]);
                    }
                    MT_TEST_OK(op->vt->solve_w(op, &sp, &w, N, x, fx, lam, &v, &rep));
                    CU_ASSERT(rep.residual >= 0.0 && rep.residual <= 1e-10);
                    vb = brute1(obj_weight, &c, search_radius(sp.s, sp.decay, lam_n, w));
                    CU_ASSERT(rel_err(&v, &vb, 1, 1e-9) <= 1e-5);
                }
    mt_op_destroy(&op);
}

/* ---- the terminal cost ----------------------------------------------------- */

typedef struct {
    double a;   /* s / N */
    float x[2]; /* one sample */
} prox_case;

static ld obj_prox(const void *ctx, const ld *y)
{
    const prox_case *p = ctx;
    ld th = p->x[0] - y[0] - 3.14159265358979323846264L, om = p->x[1] - y[1];
    return p->a * (th * th + 0.1L * om * om) + (y[0] * y[0] + y[1] * y[1]) / 2;
}

/* Value at hand-computed points; grad = grad l / N against central
 * differences of value (double-checked: l is quadratic, so only rounding
 * of the float values (|l| <= 40, 2.4e-6 abs) over 2h = 2e-2 remains,
 * 2.4e-4 / N, tolerance 1e-3 relative with floor 1). */
static void test_cost_value_grad(void)
{
    enum { N = 3, N_TOTAL = 4 };
    mt_loss *loss = NULL;
    float x[2 * N] = {0.0f, 0.0f, 3.0f, -1.0f, -2.0f, 4.0f}, l[N], g[2 * N], fd[2 * N];
    int correct[N] = {5, 5, 5};
    const float h = 1e-2f;

    MT_TEST_OK(mt_loss_pendulum_create(&loss));
    CU_ASSERT_EQUAL(mt_shape_size(loss->in), 2);
    MT_TEST_OK(loss->vt->value(loss, N, x, NULL, l, correct));
    /* (0 - pi)^2 = 9.8696044011; (3 - pi)^2 + 0.1 = 0.0200484796 + 0.1;
     * (-2 - pi)^2 + 0.1 * 16 = 26.4359750154 + 1.6; float: 1e-6 relative */
    CU_ASSERT_DOUBLE_EQUAL(l[0], 9.8696044011, 1e-6 * 9.87);
    CU_ASSERT_DOUBLE_EQUAL(l[1], 0.1200484796, 1e-6 * 0.12);
    CU_ASSERT_DOUBLE_EQUAL(l[2], 28.0359750154, 1e-6 * 28.04);
    CU_ASSERT(correct[0] == 0 && correct[1] == 0 && correct[2] == 0);

    MT_TEST_OK(loss->vt->grad(loss, N, N_TOTAL, x, NULL, g));
    for (int j = 0; j < 2 * N; j++) {
        float xp[2] = {x[2 * (j / 2)], x[2 * (j / 2) + 1]}, xm[2], lp, lm;
        memcpy(xm, xp, sizeof xp);
        xp[j % 2] += h;
        xm[j % 2] -= h;
        MT_TEST_OK(loss->vt->value(loss, 1, xp, NULL, &lp, NULL));
        MT_TEST_OK(loss->vt->value(loss, 1, xm, NULL, &lm, NULL));
        fd[j] = (float)(((double)lp - lm) / ((double)xp[j % 2] - xm[j % 2]) / N_TOTAL);
    }
    CU_ASSERT(mt_test_max_rel(fd, g, 2 * N, 1.0) < 1e-3);
    mt_loss_destroy(&loss);
    CU_ASSERT_PTR_NULL(loss);
}

/* Closed-form prox against 2-D brute force, several s and N; tolerance
 * 1e-5 relative (floor 1e-6), residual <= 1e-10. */
static void test_cost_prox_brute(void)
{
    static const double ss[4] = {0.0, 0.05, 1.0, 30.0};
    enum { N = 3 };
    mt_loss *loss = NULL;
    float x[2 * N] = {0.0f, 0.0f, 3.0f, -1.0f, -2.0f, 4.0f}, y[2 * N];

    MT_TEST_OK(mt_loss_pendulum_create(&loss));
    for (int k = 0; k < 4; k++)
        for (int n_total = N; n_total <= 2 * N; n_total += N) {
            mt_solve_report rep = {-1, -1.0};
            MT_TEST_OK(loss->vt->prox(loss, ss[k], N, n_total, x, NULL, 1e-10, y, &rep));
            CU_ASSERT(rep.residual >= 0.0 && rep.residual <= 1e-10);
            for (int i = 0; i < N; i++) {
                prox_case p = {ss[k] / n_total, {x[2 * i], x[2 * i + 1]}};
                ld yb[2], R = 2.0L * sqrtl(p.a) * 10.0L + 1e-3L;
                brute2(obj_prox, &p, R, yb);
                CU_ASSERT(rel_err(y + 2 * i, yb, 2, 1e-6) <= 1e-5);
            }
        }
    mt_loss_destroy(&loss);
}

/* ---- rollout ----------------------------------------------------------------- */

/*
 * T = 3 from x0 = (0, 0) with controls (1, -0.5, 2), delta 0.1, g 9.81:
 *   x1: theta = 0 + 0.1 * 0 = 0
 *       omega = 0 + 0.1 (-9.81 sin 0 - 0.01 * 0 + 1) = 0.1
 *   x2: theta = 0 + 0.1 * 0.1 = 0.01
 *       omega = 0.1 + 0.1 (-9.81 sin 0 - 0.01 * 0.1 - 0.5) = 0.1 - 0.0501 = 0.0499
 *   x3: theta = 0.01 + 0.1 * 0.0499 = 0.01499
 *       sin 0.01 = 0.00999983333417, 9.81 sin 0.01 = 0.0980983650082
 *       omega = 0.0499 + 0.1 (-0.0980983650082 - 0.000499 + 2)
 *             = 0.0499 + 0.190140263499 = 0.240040263499
 *   cost = (0.01499 - 3.14159265358979)^2 + 0.1 * 0.240040263499^2
 *        = 3.12660265358979^2 + 0.1 * 0.0576193281008
 *        = 9.77564415343 + 0.00576193281008 = 9.78140608624
 * States are rounded to float each step (relative 6e-8 per step, three
 * steps): tolerance 1e-6 relative (absolute 1e-9 for the exact zeros).
 */
static void test_rollout_hand(void)
{
    const float w[3] = {1.0f, -0.5f, 2.0f};
    const double want[8] = {0, 0, 0, 0.1, 0.01, 0.0499, 0.01499, 0.240040263499};
    float st[8];
    double cost = -1.0;

    MT_TEST_OK(mt_pendulum_rollout(3, w, st, &cost));
    for (int k = 0; k < 8; k++)
        CU_ASSERT_DOUBLE_EQUAL(st[k], want[k], 1e-9 + 1e-6 * fabs(want[k]));
    CU_ASSERT_DOUBLE_EQUAL(cost, 9.78140608624, 1e-6 * 9.79);
    CU_ASSERT_EQUAL(mt_pendulum_rollout(-1, w, st, &cost), MT_ERR_ARG);
    mt_error_clear();
}

/* The cost of a rollout in long double (the reference dynamics), with
 * control t displaced by dw. */
static ld ref_rollout_cost(int T, const float *w, int t_shift, ld dw)
{
    ld x[2] = {0.0L, 0.0L}, f[2], th;

    for (int t = 0; t < T; t++) {
        ref_step(x, (ld)w[t] + (t == t_shift ? dw : 0.0L), f);
        x[0] = f[0];
        x[1] = f[1];
    }
    th = x[0] - 3.14159265358979323846264L;
    return th * th + 0.1L * x[1] * x[1];
}

/* Gradient of the rollout cost w.r.t. the T controls by back-propagation
 * through the op (vjp_x, vjp_w) and the cost's grad, against central
 * differences of mt_pendulum_rollout. Returns the worst relative error. */
static double rollout_grad_error(int T, const float *w, float h, double *err_ref)
{
    mt_op *op = make_op();
    mt_loss *loss = NULL;
    float *st = malloc(sizeof(float) * 2 * (T + 1)), *g = malloc(sizeof(float) * T);
    float *fd = malloc(sizeof(float) * T), *wt = malloc(sizeof(float) * T);
    float lam[2], prev[2], y[2];
    double worst;

    MT_TEST_OK(mt_loss_pendulum_create(&loss));
    MT_TEST_OK(mt_pendulum_rollout(T, w, st, NULL));

    /* the chain's forward must reproduce the rollout's states bit for bit */
    for (int t = 1; t <= T; t++) {
        MT_TEST_OK(op->vt->forward(op, &w[t - 1], 1, st + 2 * (t - 1), y));
        CU_ASSERT(memcmp(y, st + 2 * t, sizeof y) == 0);
    }

    MT_TEST_OK(loss->vt->grad(loss, 1, 1, st + 2 * T, NULL, lam));
    for (int t = T; t >= 1; t--) {
        MT_TEST_OK(op->vt->vjp_w(op, &w[t - 1], 1, st + 2 * (t - 1), lam, &g[t - 1]));
        MT_TEST_OK(op->vt->vjp_x(op, &w[t - 1], 1, st + 2 * (t - 1), lam, prev));
        memcpy(lam, prev, sizeof lam);
    }
    for (int t = 0; t < T; t++) {
        double cp, cm;
        memcpy(wt, w, sizeof(float) * T);
        wt[t] = w[t] + h;
        MT_TEST_OK(mt_pendulum_rollout(T, wt, st, &cp));
        wt[t] = w[t] - h;
        MT_TEST_OK(mt_pendulum_rollout(T, wt, st, &cm));
        fd[t] = (float)((cp - cm) / ((double)(w[t] + h) - (w[t] - h)));
    }
    worst = mt_test_max_rel(fd, g, T, 1e-2);

    /* long-double reference: h_ref = 1e-5 makes truncation ~1e-10 and
     * rounding ~1e-19 / 1e-5, so fd holds the exact gradient to ~1e-9 */
    for (int t = 0; t < T; t++)
        fd[t] = (float)((ref_rollout_cost(T, w, t, 1e-5L) - ref_rollout_cost(T, w, t, -1e-5L)) /
                        2e-5L);
    *err_ref = mt_test_max_rel(fd, g, T, 1e-2);
    free(st);
    free(g);
    free(fd);
    free(wt);
    mt_loss_destroy(&loss);
    mt_op_destroy(&op);
    return worst;
}

/*
 * Two references. (1) Central differences of mt_pendulum_rollout itself:
 * its states are rounded to float every step, and over T = 30 steps that
 * rounding noise (~1e-7, amplified by the dynamics) divided by 2h dominates:
 * measured 5e-4 at h = 1e-2, 4e-5 at h = 3e-2 for T = 30 (the error grows
 * as h shrinks, so it is noise, not truncation). We use h = 1e-2 for T = 3
 * (measured 1.5e-6) and h = 3e-2 for T = 30, tolerance 1e-3 relative with
 * floor 1e-2 (truncation h^2/6 |d3 cost| stays below 1e-4 at h = 3e-2, as
 * the T = 30 figure shows). (2) Differences of the long-double reference
 * rollout, accurate to ~1e-9: the back-propagated float gradient must match
 * it to 1e-4 (its own float rounding, amplified along the horizon).
 * T = 3 is the hand case; T = 30 with controls in [-3, 3] swings the
 * pendulum through the nonlinear range.
 */
static void test_rollout_gradient(void)
{
    const float w3[3] = {1.0f, -0.5f, 2.0f};
    float w30[30];
    double e3, e30, r3, r30;

    mt_test_fill(w30, 30, -3.0f, 3.0f, 51);
    e3 = rollout_grad_error(3, w3, 1e-2f, &r3);
    e30 = rollout_grad_error(30, w30, 3e-2f, &r30);
    printf("\n  rollout gradient vs FD of the rollout: T=3 %.2e, T=30 %.2e;"
           " vs long-double FD: T=3 %.2e, T=30 %.2e\n", e3, e30, r3, r30);
    CU_ASSERT(e3 < 1e-3);
    CU_ASSERT(e30 < 1e-3);
    CU_ASSERT(r3 < 1e-4);
    CU_ASSERT(r30 < 1e-4);
}

int main(void)
{
    static const mt_test_case tests[] = {
        {"create, metadata and init", test_create},
        {"forward, one hand-computed step", test_forward_hand},
        {"batch of n equals n single samples", test_batch_independence},
        {"vjp/jvp against finite differences", test_jacobians_fd},
        {"adjoint identity", test_adjoint_identity},
        {"input subproblems against brute force", test_solve_x_brute},
        {"M input problems solved globally", test_solve_m_global},
        {"weight subproblems against brute force", test_solve_w_brute},
        {"cost value and gradient", test_cost_value_grad},
        {"cost prox against brute force", test_cost_prox_brute},
        {"rollout, T = 3 by hand", test_rollout_hand},
        {"rollout gradient by back-propagation", test_rollout_gradient},
    };
    return mt_test_main("pendulum", tests, (int)(sizeof tests / sizeof tests[0]));
}
