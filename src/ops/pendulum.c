/*
 * pendulum.c - one step of the damped pendulum as an op (ALGORITHMS.md
 * section 8), with exact Newton solvers for its input and weight
 * subproblems (section 3), and the rollout used by tests and the task.
 *
 * State x = (theta, omega), control w (one scalar, the op's parameter):
 *   f1 = theta + delta omega
 *   f2 = omega + delta (-g sin(theta)/l - c omega/(m l^2) + w/(m l^2))
 * Jacobians, with q(theta) = delta g sin(theta)/l and b = delta/(m l^2):
 *   J_x = [[1, delta], [-delta g cos(theta)/l, 1 - delta c/(m l^2)]]
 *   J_w = [0, b]^T,   and the only second derivative is d2 f2/dtheta2 = q.
 * All arithmetic is in double; outputs are rounded to float. The work per
 * sample is tiny, so the loops are serial (trivially thread-count free).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/control.h"

#define PEND_DT MT_PENDULUM_DELTA
#define PEND_G_L (MT_PENDULUM_GRAVITY / MT_PENDULUM_LENGTH)
#define PEND_INERTIA (MT_PENDULUM_MASS * MT_PENDULUM_LENGTH * MT_PENDULUM_LENGTH)
#define PEND_FRIC (MT_PENDULUM_FRICTION / PEND_INERTIA)
#define PEND_B (PEND_DT / PEND_INERTIA)

/* Newton stops at this gradient norm relative to the one at y = 0. */
#define PEND_NEWTON_TOL 1e-10
#define PEND_NEWTON_MAX_IT 500
#define PEND_LS_MAX 60

/* f(u, w) for one state u = (theta, omega). */
static void pend_step(const double u[2], double w, double f[2])
{
    f[0] = u[0] + PEND_DT * u[1];
    f[1] = u[1] + PEND_DT * (-PEND_G_L * sin(u[0]) - PEND_FRIC * u[1]) + PEND_B * w;
}

/* J_x(u) as j[2][2], row-major. */
static void pend_jac(const double u[2], double j[2][2])
{
    j[0][0] = 1.0;
    j[0][1] = PEND_DT;
    j[1][0] = -PEND_DT * PEND_G_L * cos(u[0]);
    j[1][1] = 1.0 - PEND_DT * PEND_FRIC;
}

static mt_status pend_check(int n, const void *a, const void *b, const void *c)
{
    if (n < 0)
        return MT_FAIL(MT_ERR_ARG, "pendulum: batch size %d < 0", n);
    if (n > 0 && (!a || !b || !c))
        return MT_FAIL(MT_ERR_ARG, "pendulum: NULL buffer for a batch of %d", n);
    return MT_OK;
}

static mt_status pend_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    (void)op;
    MT_CHECK(pend_check(n, w, x, y));
    for (int i = 0; i < n; i++) {
        double u[2] = {x[2 * i], x[2 * i + 1]}, f[2];
        pend_step(u, w[0], f);
        y[2 * i] = (float)f[0];
        y[2 * i + 1] = (float)f[1];
    }
    return MT_OK;
}

static mt_status pend_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dx)
{
    (void)op;
    (void)w;
    MT_CHECK(pend_check(n, x, dy, dx));
    for (int i = 0; i < n; i++) {
        double u[2] = {x[2 * i], x[2 * i + 1]}, j[2][2];
        double d0 = dy[2 * i], d1 = dy[2 * i + 1];
        pend_jac(u, j);
        dx[2 * i] = (float)(j[0][0] * d0 + j[1][0] * d1);
        dx[2 * i + 1] = (float)(j[0][1] * d0 + j[1][1] * d1);
    }
    return MT_OK;
}

/* dw = b sum_i dy_i[1], summed in sample order. */
static mt_status pend_vjp_w(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dw)
{
    double acc = 0.0;

    (void)op;
    (void)w;
    (void)x;
    if (n < 0 || !dw || (n > 0 && !dy))
        return MT_FAIL(MT_ERR_ARG, "pendulum vjp_w: bad batch (n = %d) or NULL buffer", n);
    for (int i = 0; i < n; i++)
        acc += dy[2 * i + 1];
    dw[0] = (float)(PEND_B * acc);
    return MT_OK;
}

static mt_status pend_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                            float *vy)
{
    (void)op;
    (void)w;
    MT_CHECK(pend_check(n, x, vx, vy));
    for (int i = 0; i < n; i++) {
        double u[2] = {x[2 * i], x[2 * i + 1]}, j[2][2];
        double v0 = vx[2 * i], v1 = vx[2 * i + 1];
        pend_jac(u, j);
        vy[2 * i] = (float)(j[0][0] * v0 + j[0][1] * v1);
        vy[2 * i + 1] = (float)(j[1][0] * v0 + j[1][1] * v1);
    }
    return MT_OK;
}

static mt_status pend_jvp_w(mt_op *op, const float *w, int n, const float *x, const float *vw,
                            float *vy)
{
    (void)op;
    (void)w;
    (void)x;
    if (n < 0 || !vw || (n > 0 && !vy))
        return MT_FAIL(MT_ERR_ARG, "pendulum jvp_w: bad batch (n = %d) or NULL buffer", n);
    for (int i = 0; i < n; i++) {
        vy[2 * i] = 0.0f;
        vy[2 * i + 1] = (float)(PEND_B * vw[0]);
    }
    return MT_OK;
}

/* Controls start at zero; no random draws. */
static mt_status pend_init(mt_op *op, mt_rng *rng, float *w)
{
    (void)op;
    (void)rng;
    if (!w)
        return MT_FAIL(MT_ERR_ARG, "pendulum init: NULL parameter block");
    w[0] = 0.0f;
    return MT_OK;
}

/*
 * The input subproblems of op.h, for one sample, over y in R^2 with
 * u = z - y, f = f(u, w), J = J_x(u), q = q(u_1), and I the 2x2 identity:
 *
 *   M:  F = s <lam, f> + |y|^2/2 + decay/2 |u|^2
 *       grad = -s J^T lam + y - decay u
 *       Hess = (1 + decay) I + s lam_2 q e1 e1^T
 *   A:  r = f - f(z) + lam,  F = s |r|^2 + |y|^2 + decay |u|^2
 *       grad = -2 s J^T r + 2 y - 2 decay u
 *       Hess = 2 s (J^T J + r_2 q e1 e1^T) + 2 (1 + decay) I
 *
 * (d/dy = -d/du; d(J^T v)/du = lam_2 q e1 e1^T for fixed v = lam, and
 * J^T J + r_2 q e1 e1^T for v = r(u).) The sin term makes both nonconvex
 * when s |lam_2| (or s |r_2|) q outweighs the identity; Newton then falls
 * back to gradient steps where the Hessian is indefinite and, since every
 * accepted step lowers F, returns the local minimiser it reaches from
 * y = 0, which need not be the global one. The M problem separates and is
 * solved globally instead (pend_solve_m below); the A problem keeps Newton.
 */
typedef struct {
    mt_sub_kind kind;
    double s, decay;
    double z[2], w, lam[2], fz[2];
} pend_sub;

/* F, grad g[2] and Hessian h = {h11, h12, h22} of the subproblem at y. */
static void pend_sub_eval(const pend_sub *p, const double y[2], double *F, double g[2],
                          double h[3])
{
    double u[2] = {p->z[0] - y[0], p->z[1] - y[1]}, f[2], j[2][2];
    double q, v[2], c, yy = y[0] * y[0] + y[1] * y[1], uu = u[0] * u[0] + u[1] * u[1];

    pend_step(u, p->w, f);
    pend_jac(u, j);
    q = PEND_DT * PEND_G_L * sin(u[0]);
    if (p->kind == MT_SUB_M) {
        *F = p->s * (p->lam[0] * f[0] + p->lam[1] * f[1]) + 0.5 * yy + 0.5 * p->decay * uu;
        v[0] = p->lam[0];
        v[1] = p->lam[1];
        c = 1.0;
    } else {
        v[0] = f[0] - p->fz[0] + p->lam[0];
        v[1] = f[1] - p->fz[1] + p->lam[1];
        *F = p->s * (v[0] * v[0] + v[1] * v[1]) + yy + p->decay * uu;
        c = 2.0;
    }

    /* both kinds: grad = c (-s J^T v + y - decay u), c = 1 (M) or 2 (A);
     * Hess = c ((1 + decay) I + s v_2 q e1 e1^T), plus 2 s J^T J for A */
    g[0] = c * (-p->s * (j[0][0] * v[0] + j[1][0] * v[1]) + y[0] - p->decay * u[0]);
    g[1] = c * (-p->s * (j[0][1] * v[0] + j[1][1] * v[1]) + y[1] - p->decay * u[1]);

    h[0] = c * (1.0 + p->decay + p->s * v[1] * q);
    h[1] = 0.0;
    h[2] = c * (1.0 + p->decay);
    if (p->kind == MT_SUB_A) {
        h[0] += 2.0 * p->s * (j[0][0] * j[0][0] + j[1][0] * j[1][0]);
        h[1] += 2.0 * p->s * (j[0][0] * j[0][1] + j[1][0] * j[1][1]);
        h[2] += 2.0 * p->s * (j[0][1] * j[0][1] + j[1][1] * j[1][1]);
    }
}

/* Newton direction when h is positive definite, else the gradient step
 * -g / c0 with c0 the curvature of the quadratic part. */
static void pend_direction(const pend_sub *p, const double g[2], const double h[3],
                           double d[2])
{
    double det = h[0] * h[2] - h[1] * h[1];

    if (h[0] > 0.0 && det > 0.0) {
        d[0] = -(h[2] * g[0] - h[1] * g[1]) / det;
        d[1] = -(h[0] * g[1] - h[1] * g[0]) / det;
    } else {
        double c0 = (p->kind == MT_SUB_M ? 1.0 : 2.0) * (1.0 + p->decay);
        d[0] = -g[0] / c0;
        d[1] = -g[1] / c0;
    }
}

/* Backtracking (Armijo) along d from y; updates y, F, g, h. Once the
 * predicted decrease is below what F can resolve in double, a step that
 * lowers |grad| is accepted instead. Returns 0 when no step was found. */
static int pend_line_search(const pend_sub *p, const double d[2], double y[2], double *F,
                            double g[2], double h[3])
{
    double gd = g[0] * d[0] + g[1] * d[1], gn = hypot(g[0], g[1]), t = 1.0;

    for (int k = 0; k < PEND_LS_MAX; k++, t *= 0.5) {
        double yt[2] = {y[0] + t * d[0], y[1] + t * d[1]}, Ft, gt[2], ht[3];
        int tiny = fabs(t * gd) <= 1e-14 * (1.0 + fabs(*F));

        pend_sub_eval(p, yt, &Ft, gt, ht);
        if (Ft <= *F + 1e-4 * t * gd || (tiny && hypot(gt[0], gt[1]) < gn)) {
            y[0] = yt[0];
            y[1] = yt[1];
            *F = Ft;
            memcpy(g, gt, 2 * sizeof *g);
            memcpy(h, ht, 3 * sizeof *h);
            return 1;
        }
    }
    return 0;
}

/* Safeguarded Newton from y = 0 to |grad| <= PEND_NEWTON_TOL |grad(0)|. */
static mt_status pend_newton(const pend_sub *p, double y[2], mt_solve_report *rep)
{
    double F, g[2], h[3], g0, d[2];
    int it = 0;

    y[0] = y[1] = 0.0;
    pend_sub_eval(p, y, &F, g, h);
    g0 = hypot(g[0], g[1]);
    if (!isfinite(F) || !isfinite(g0))
        return MT_FAIL(MT_ERR_NUMERIC, "pendulum solver: non-finite subproblem at y = 0");
    while (g0 > 0.0 && hypot(g[0], g[1]) > PEND_NEWTON_TOL * g0 && it < PEND_NEWTON_MAX_IT) {
        pend_direction(p, g, h, d);
        if (!pend_line_search(p, d, y, &F, g, h))
            break; /* stalled at the resolution of double */
        it++;
    }
    if (!isfinite(y[0]) || !isfinite(y[1]))
        return MT_FAIL(MT_ERR_NUMERIC, "pendulum solver: non-finite iterate");
    rep->iterations = it;
    rep->residual = g0 > 0.0 ? hypot(g[0], g[1]) / g0 : 0.0;
    return MT_OK;
}

/*
 * The M input problem solved globally. With u = z - y, <lam, f(u, w)> is
 *   lam1 u1 + k2 u2 - lam2 delta (g/l) sin(u1) + const,
 *   k2 = lam1 delta + lam2 (1 - delta c/(m l^2)),
 * so F separates into y2 and y1:
 *   y2 = (s k2 + decay z2) / a,  a = 1 + decay   (a quadratic)
 *   phi(y1) = a/2 y1^2 - c0 y1 - q sin(z1 - y1),  c0 = s lam1 + decay z1,
 *   q = s lam2 delta g/l,  phi' = a y1 - c0 + q cos(z1 - y1),
 *   phi'' = a + q sin(z1 - y1).
 * Every stationary point lies within |q|/a of y* = c0/a, and since
 * phi(y) - phi(y*) >= a/2 (y - y*)^2 - 2|q|, the global minimiser lies within
 * 2 sqrt(|q|/a) of y* too. On that interval the zeros of phi'' cut phi' into
 * monotone pieces; the minimum of phi over a piece is at an end or at the
 * one root of phi' where phi' rises through zero (bracketed Newton). The
 * best candidate, first in order of y on ties, is the global minimiser.
 */
#define PEND_MAX_PIECES 100000
#define PEND_PI 3.14159265358979323846

typedef struct {
    double a, c0, q, z1;
} pend_phi;

static double phi_value(const pend_phi *f, double y)
{
    return 0.5 * f->a * y * y - f->c0 * y - f->q * sin(f->z1 - y);
}

static double phi_slope(const pend_phi *f, double y)
{
    return f->a * y - f->c0 + f->q * cos(f->z1 - y);
}

/* The root of phi' in [lo, hi], where phi' rises from < 0 to > 0: Newton
 * steps kept inside the bracket, bisection otherwise. */
static double phi_root(const pend_phi *f, double lo, double hi)
{
    double y = 0.5 * (lo + hi);

    for (int it = 0; it < 200 && hi - lo > 4e-16 * (1.0 + fabs(y)); it++) {
        double d = phi_slope(f, y), h = f->a + f->q * sin(f->z1 - y), next;
        if (d == 0.0)
            return y;
        if (d < 0.0)
            lo = y;
        else
            hi = y;
        next = h > 0.0 ? y - d / h : 0.5 * (lo + hi);
        y = next > lo && next < hi ? next : 0.5 * (lo + hi);
    }
    return y;
}

/* Keep y if phi(y) is lower than the best so far. */
static void phi_offer(const pend_phi *f, double y, double *best_y, double *best_v)
{
    double v = phi_value(f, y);
    if (v < *best_v) {
        *best_v = v;
        *best_y = y;
    }
}

/* The breakpoints (zeros of phi'') inside (L, H), ascending, into cut[]
 * after cut[0] = L; returns the count including L and H. */
static int phi_pieces(const pend_phi *f, double L, double H, double *cut)
{
    const double two_pi = 2.0 * PEND_PI;
    double v0 = asin(-f->a / f->q), vlo = f->z1 - H, vhi = f->z1 - L;
    int n = 0;

    /* v = z1 - y solves sin v = -a/q: v0 + 2 pi k and pi - v0 + 2 pi k;
     * walked by descending v, i.e. ascending y */
    cut[n++] = L;
    for (long k = (long)ceil((vhi - v0) / two_pi) + 1; k >= (long)floor((vlo - v0) / two_pi) - 1;
         k--) {
        double va = PEND_PI - v0 + two_pi * k, vb = v0 + two_pi * k;
        if (va > vlo && va < vhi)
            cut[n++] = f->z1 - va;
        if (vb > vlo && vb < vhi)
            cut[n++] = f->z1 - vb;
    }
    cut[n++] = H;
    return n;
}

/* Global minimiser of phi; returns 0 (leaving y untouched) when the
 * interval holds more than PEND_MAX_PIECES pieces. */
static int phi_global(const pend_phi *f, double *y)
{
    double r = fabs(f->q) / f->a, ys = f->c0 / f->a, L, H, best_v = INFINITY, best_y;
    double *cut;
    int n;

    r = fmin(r, 2.0 * sqrt(r));
    L = ys - r;
    H = ys + r;
    best_y = ys;
    if (fabs(f->q) <= f->a) { /* convex: phi' increases on the whole line */
        *y = r > 0.0 ? phi_root(f, L, H) : ys;
        return 1;
    }
    if ((H - L) / PEND_PI + 4.0 > PEND_MAX_PIECES)
        return 0;
    cut = malloc(sizeof *cut * ((size_t)((H - L) / PEND_PI) + 8));
    if (!cut)
        return 0;
    n = phi_pieces(f, L, H, cut);
    for (int i = 0; i + 1 < n; i++) {
        double lo = cut[i], hi = cut[i + 1];
        phi_offer(f, lo, &best_y, &best_v);
        if (phi_slope(f, lo) < 0.0 && phi_slope(f, hi) > 0.0)
            phi_offer(f, phi_root(f, lo, hi), &best_y, &best_v);
    }
    phi_offer(f, H, &best_y, &best_v);
    free(cut);
    *y = best_y;
    return 1;
}

/* The report of a direct solution: one "iteration", and the gradient norm
 * at y relative to the one at 0 (0 when both vanish). */
static void pend_report(const pend_sub *p, const double y[2], mt_solve_report *rep)
{
    const double zero[2] = {0.0, 0.0};
    double F, g[2], h[3], g0;

    pend_sub_eval(p, zero, &F, g, h);
    g0 = hypot(g[0], g[1]);
    pend_sub_eval(p, y, &F, g, h);
    rep->iterations = 1;
    rep->residual = g0 > 0.0 ? hypot(g[0], g[1]) / g0 : hypot(g[0], g[1]);
}

/* The M input problem of one sample (the file comment's pend_sub with
 * kind M): closed-form y2 and global y1; returns 0 to ask for Newton. */
static int pend_solve_m(const pend_sub *p, double y[2])
{
    const double a = 1.0 + p->decay;
    const double k2 = p->lam[0] * PEND_DT + p->lam[1] * (1.0 - PEND_DT * PEND_FRIC);
    pend_phi f = {a, p->s * p->lam[0] + p->decay * p->z[0],
                  p->s * p->lam[1] * PEND_DT * PEND_G_L, p->z[0]};

    y[1] = (p->s * k2 + p->decay * p->z[1]) / a;
    return phi_global(&f, &y[0]);
}

static mt_status pend_check_sub(const mt_subproblem *sp)
{
    if (!sp || (sp->kind != MT_SUB_M && sp->kind != MT_SUB_A))
        return MT_FAIL(MT_ERR_ARG, "pendulum solver: missing or unknown subproblem kind");
    if (!(sp->s >= 0.0) || !(sp->decay >= 0.0) || !isfinite(sp->s) || !isfinite(sp->decay))
        return MT_FAIL(MT_ERR_ARG,
                       "pendulum solver: need finite s >= 0 and decay >= 0 (got %g, %g)",
                       sp->s, sp->decay);
    return MT_OK;
}

/* Input problems, per sample: M globally (pend_solve_m; Newton only past
 * PEND_MAX_PIECES pieces), A by a 2-D Newton solve. f(z) is recomputed in
 * double rather than read from fx (the float copy), so that lambda = 0
 * gives y = 0 exactly. The report holds the largest iteration count and
 * residual over the samples. */
static mt_status pend_solve_x(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                              const float *x, const float *fx, const float *lambda, float *y,
                              mt_solve_report *rep)
{
    mt_solve_report worst = {0, 0.0};

    (void)op;
    (void)fx;
    MT_CHECK(pend_check_sub(sp));
    MT_CHECK(pend_check(n, w, x, lambda));
    MT_CHECK(pend_check(n, y, y, y));
    for (int i = 0; i < n; i++) {
        pend_sub p = {sp->kind, sp->s, sp->decay, {x[2 * i], x[2 * i + 1]}, w[0],
                      {lambda[2 * i], lambda[2 * i + 1]}, {0.0, 0.0}};
        mt_solve_report r = {0, 0.0};
        double yi[2];

        pend_step(p.z, p.w, p.fz);
        if (p.kind == MT_SUB_M && pend_solve_m(&p, yi))
            pend_report(&p, yi, &r);
        else
            MT_CHECK(pend_newton(&p, yi, &r));
        y[2 * i] = (float)yi[0];
        y[2 * i + 1] = (float)yi[1];
        worst.iterations = r.iterations > worst.iterations ? r.iterations : worst.iterations;
        worst.residual = fmax(worst.residual, r.residual);
    }
    if (rep)
        *rep = worst;
    return MT_OK;
}

/*
 * Weight problems over the scalar v. The op is affine in w, with
 * f(w - v, x_i) - f(w, x_i) = (0, -b v), so with L = sum_i lam_i[1]:
 *   M:  F = s sum_i <lam_i, f(w - v, x_i)> + v^2/2 + decay/2 (w - v)^2
 *       F' = -s b L + v - decay (w - v),            F'' = 1 + decay
 *   A:  F = s sum_i |lam_i - (0, b v)|^2 + v^2 + decay (w - v)^2
 *       F' = -2 s b (L - n b v) + 2 v - 2 decay (w - v),
 *       F'' = 2 (1 + decay + s n b^2)
 * Both are strictly convex quadratics: one Newton step from v = 0 is exact.
 */
static mt_status pend_solve_w(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                              const float *x, const float *fx, const float *lambda, float *y,
                              mt_solve_report *rep)
{
    double L = 0.0, g0, h, v, gv, wd;

    (void)op;
    (void)x;
    (void)fx;
    MT_CHECK(pend_check_sub(sp));
    MT_CHECK(pend_check(n, lambda, lambda, lambda));
    if (!w || !y)
        return MT_FAIL(MT_ERR_ARG, "pendulum solve_w: NULL weights or solution");

    /* L in sample order (fixed by n alone) */
    for (int i = 0; i < n; i++)
        L += lambda[2 * i + 1];
    wd = w[0];
    if (sp->kind == MT_SUB_M) {
        h = 1.0 + sp->decay;
        g0 = -sp->s * PEND_B * L - sp->decay * wd;
    } else {
        h = 2.0 * (1.0 + sp->decay + sp->s * n * PEND_B * PEND_B);
        g0 = -2.0 * sp->s * PEND_B * L - 2.0 * sp->decay * wd;
    }
    v = -g0 / h;
    gv = g0 + h * v; /* F' is affine: F'(v) = F'(0) + F'' v */
    if (!isfinite(v))
        return MT_FAIL(MT_ERR_NUMERIC, "pendulum solve_w: non-finite solution");
    y[0] = (float)v;
    if (rep) {
        rep->iterations = g0 != 0.0 ? 1 : 0;
        rep->residual = g0 != 0.0 ? fabs(gv) / fabs(g0) : 0.0;
    }
    return MT_OK;
}

static const mt_op_vtable pend_vtable = {
    .kind = "pendulum",
    .forward = pend_forward,
    .vjp_x = pend_vjp_x,
    .vjp_w = pend_vjp_w,
    .jvp_x = pend_jvp_x,
    .jvp_w = pend_jvp_w,
    .init = pend_init,
    .solve_x = pend_solve_x,
    .solve_w = pend_solve_w,
    .destroy = NULL,
};

mt_status mt_op_pendulum_create(const char *name, mt_op **op)
{
    mt_op *o;

    if (!op || !name)
        return MT_FAIL(MT_ERR_ARG, "pendulum op: NULL name or output pointer");
    if (strlen(name) >= sizeof o->name)
        return MT_FAIL(MT_ERR_ARG, "pendulum op: name '%s' longer than %zu characters", name,
                       sizeof o->name - 1);
    o = calloc(1, sizeof *o);
    if (!o)
        return MT_FAIL(MT_ERR_MEM, "out of memory creating pendulum op '%s'", name);
    o->vt = &pend_vtable;
    snprintf(o->name, sizeof o->name, "%s", name);
    o->in = o->out = mt_shape_vec(2);
    o->n_params = 1;
    o->n_tensors = 1;
    snprintf(o->tensors[0].suffix, sizeof o->tensors[0].suffix, "control");
    o->tensors[0].ndim = 1;
    o->tensors[0].dims[0] = 1;
    o->tensors[0].offset = 0;
    o->tensors[0].n = 1;
    o->flops = 2.0 * 6.0; /* about six multiply-adds and one sin per sample */
    o->is_affine = 0;
    *op = o;
    return MT_OK;
}

mt_status mt_pendulum_rollout(int T, const float *w, float *states, double *cost)
{
    if (T < 0 || !states || (T > 0 && !w))
        return MT_FAIL(MT_ERR_ARG, "pendulum rollout: T = %d or NULL buffer", T);
    states[0] = states[1] = 0.0f;
    for (int t = 1; t <= T; t++) {
        double u[2] = {states[2 * (t - 1)], states[2 * (t - 1) + 1]}, f[2];
        pend_step(u, w[t - 1], f);
        states[2 * t] = (float)f[0];
        states[2 * t + 1] = (float)f[1];
    }
    if (cost) {
        double dth = (double)states[2 * T] - MT_PENDULUM_TARGET, om = states[2 * T + 1];
        *cost = dth * dth + MT_PENDULUM_OMEGA_WEIGHT * om * om;
    }
    return MT_OK;
}
