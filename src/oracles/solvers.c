/*
 * solvers.c - generic inner solvers for the subproblems of ALGORITHMS.md
 * section 3 over an op's input (one group per sample) or weights (one
 * group), using only the op's forward, vjp and jvp:
 *
 *   gd:K  K gradient steps from y = 0, step 1 (M) or 1/2 (A), so that K = 1
 *         is exactly s J^T lambda (back-propagation); for K > 1 a group's
 *         step is halved whenever it would raise that group's objective.
 *   qn    a Goldstein gradient step, then a Barzilai-Borwein step.
 *   cg:K  Gauss-Newton: linearise f(z - y) ~ f(z) - J y and solve
 *         (s J^T J + (1 + decay) I) y = s J^T lambda + decay z   (A)
 *         by K conjugate-gradient iterations per group, or exactly
 *         y = (s J^T lambda + decay z) / (1 + decay)              (M).
 */
#include <math.h>
#include <string.h>

#include "mtrain/oracle.h"
#include "oracles/vec.h"

typedef struct {
    mt_op *op;
    const mt_subproblem *sp;
    const float *w, *x, *fx, *lambda;
    int n;
    int over_weights;
    int G;          /* groups */
    size_t L;       /* variables per group */
    size_t L_out;   /* outputs per group */
    mt_arena *ws;
} problem;

static const float *centre(const problem *pb) { return pb->over_weights ? pb->w : pb->x; }

/* out = f(z - y), evaluated at the displaced input or weights `at`. */
static mt_status eval_f(const problem *pb, const float *at, float *out)
{
    if (pb->over_weights)
        return pb->op->vt->forward(pb->op, at, pb->n, pb->x, out);
    return pb->op->vt->forward(pb->op, pb->w, pb->n, at, out);
}

static mt_status eval_jt(const problem *pb, const float *at, const float *r, float *out)
{
    if (pb->over_weights)
        return pb->op->vt->vjp_w(pb->op, at, pb->n, pb->x, r, out);
    return pb->op->vt->vjp_x(pb->op, pb->w, pb->n, at, r, out);
}

static mt_status eval_j(const problem *pb, const float *v, float *out)
{
    if (pb->over_weights)
        return pb->op->vt->jvp_w(pb->op, pb->w, pb->n, pb->x, v, out);
    return pb->op->vt->jvp_x(pb->op, pb->w, pb->n, pb->x, v, out);
}

static mt_status take(const problem *pb, size_t n_floats, float **out)
{
    return mt_arena_take(pb->ws, n_floats * sizeof(float), (void **)out);
}

/* k per-group arrays of doubles, out[i] = G doubles each (one block). */
static mt_status take_groups(const problem *pb, int k, double **out)
{
    double *block;
    MT_CHECK(mt_arena_take(pb->ws, (size_t)k * (size_t)pb->G * sizeof(double), (void **)&block));
    for (int i = 0; i < k; i++)
        out[i] = block + (size_t)i * (size_t)pb->G;
    return MT_OK;
}

/* Residual r = f(z - y) - f(z) + lambda (A) or lambda (M), and the
 * objective per group. `zy` receives z - y. */
static mt_status objective(const problem *pb, const float *y, float *zy, float *r,
                           double *partial, double *value)
{
    const size_t nv = (size_t)pb->G * pb->L, no = (size_t)pb->G * pb->L_out;
    const double s = pb->sp->s, d = pb->sp->decay;
    double *v[3], *yy, *zz, *rr;
    size_t mark = mt_arena_mark(pb->ws);

    MT_CHECK(take_groups(pb, 3, v));
    yy = v[0], zz = v[1], rr = v[2];
    mt_vec_lin(nv, 1.0f, centre(pb), -1.0f, y, zy);
    MT_CHECK(eval_f(pb, zy, r));
    mt_vec_dot(pb->G, pb->L, y, y, partial, yy);
    mt_vec_dot(pb->G, pb->L, zy, zy, partial, zz);
    if (pb->sp->kind == MT_SUB_A) {
        #pragma omp parallel for schedule(static)
        for (long i = 0; i < (long)no; i++)
            r[i] = r[i] - pb->fx[i] + pb->lambda[i];
        mt_vec_dot(pb->G, pb->L_out, r, r, partial, rr);
        for (int g = 0; g < pb->G; g++)
            value[g] = s * rr[g] + yy[g] + d * zz[g];
    } else {
        mt_vec_dot(pb->G, pb->L_out, pb->lambda, r, partial, rr);
        for (int g = 0; g < pb->G; g++)
            value[g] = s * rr[g] + 0.5 * (yy[g] + d * zz[g]);
    }
    mt_arena_rewind(pb->ws, mark);
    return MT_OK;
}

/* grad = J(z - y)^T (c_r r) + c_y y - c_z (z - y), with the subproblem's
 * coefficients: A: (-2s, 2, 2d), M: (-s, 1, d) with r = lambda. */
static mt_status gradient(const problem *pb, const float *y, const float *zy, const float *r,
                          float *grad)
{
    const size_t nv = (size_t)pb->G * pb->L;
    const int is_a = pb->sp->kind == MT_SUB_A;
    const float cr = (float)(is_a ? -2.0 * pb->sp->s : -pb->sp->s);
    const float cy = is_a ? 2.0f : 1.0f;
    const float cz = (float)(is_a ? 2.0 * pb->sp->decay : pb->sp->decay);

    MT_CHECK(eval_jt(pb, zy, is_a ? r : pb->lambda, grad));
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)nv; i++)
        grad[i] = cr * grad[i] + cy * y[i] - cz * zy[i];
    return MT_OK;
}

static double max_ratio(int G, const double *num, const double *den)
{
    double worst = 0.0;
    for (int g = 0; g < G; g++) {
        double r = den[g] > 0.0 ? sqrt(num[g] / den[g]) : sqrt(num[g]);
        worst = r > worst ? r : worst;
    }
    return worst;
}

static mt_status solve_gd(const problem *pb, int K, int want_residual, float *y,
                          mt_solve_report *rep)
{
    const size_t nv = (size_t)pb->G * pb->L, no = (size_t)pb->G * pb->L_out;
    const int G = pb->G;
    float *zy, *r, *grad, *trial;
    double *partial, *v[7], *eta, *f, *f_trial, *g0, *gg, *minus_eta, *accept;

    MT_CHECK(take(pb, nv, &zy));
    MT_CHECK(take(pb, no, &r));
    MT_CHECK(take(pb, nv, &grad));
    MT_CHECK(take(pb, nv, &trial));
    MT_CHECK(mt_arena_take(pb->ws, mt_vec_n_chunks(G, mt_max_sz(pb->L, pb->L_out)) *
                                       sizeof(double), (void **)&partial));
    MT_CHECK(take_groups(pb, 7, v));
    eta = v[0], f = v[1], f_trial = v[2], g0 = v[3], gg = v[4], minus_eta = v[5];
    accept = v[6];
    memset(y, 0, nv * sizeof(float));
    for (int g = 0; g < G; g++)
        eta[g] = pb->sp->kind == MT_SUB_A ? 0.5 : 1.0;

    /* At y = 0 the residual of A is lambda itself: no forward pass needed. */
    memcpy(zy, centre(pb), nv * sizeof(float));
    if (pb->sp->kind == MT_SUB_A)
        memcpy(r, pb->lambda, no * sizeof(float));
    MT_CHECK(gradient(pb, y, zy, r, grad));
    mt_vec_dot(G, pb->L, grad, grad, partial, g0);
    if (K > 1)
        MT_CHECK(objective(pb, y, zy, r, partial, f));

    for (int k = 0; k < K; k++) {
        for (int g = 0; g < G; g++)
            minus_eta[g] = -eta[g];
        memcpy(trial, y, nv * sizeof(float));
        mt_vec_axpy(G, pb->L, minus_eta, grad, trial);
        if (K == 1) { /* one plain step: exactly s J^T lambda (+ decay) */
            memcpy(y, trial, nv * sizeof(float));
            if (want_residual) {
                MT_CHECK(objective(pb, y, zy, r, partial, f));
                MT_CHECK(gradient(pb, y, zy, r, grad));
            }
            break;
        }
        MT_CHECK(objective(pb, trial, zy, r, partial, f_trial));
        /* A group keeps its trial unless it raised F beyond the rounding of
         * F itself (float residuals: about 1e-6 relative); otherwise its
         * step is halved and it retries from where it was. */
        for (int g = 0; g < G; g++) {
            accept[g] = f_trial[g] <= f[g] + 1e-6 * fabs(f[g]) ? 1.0 : 0.0;
            if (!accept[g])
                eta[g] *= 0.5;
            else
                f[g] = f_trial[g];
        }
        #pragma omp parallel for schedule(static)
        for (long i = 0; i < (long)nv; i++)
            if (accept[(size_t)i / pb->L] != 0.0)
                y[i] = trial[i];
        /* The next step (or the residual) needs r and the gradient at y;
         * the iterate itself never depends on whether a residual is asked. */
        if (k + 1 < K || want_residual) {
            MT_CHECK(objective(pb, y, zy, r, partial, f));
            MT_CHECK(gradient(pb, y, zy, r, grad));
        }
    }
    rep->iterations = K;
    rep->residual = 0.0;
    if (want_residual) {
        mt_vec_dot(G, pb->L, grad, grad, partial, gg);
        rep->residual = max_ratio(G, gg, g0);
    }
    return MT_OK;
}

/* b = s J^T lambda + d z, the right-hand side of the Gauss-Newton system. */
static mt_status gn_rhs(const problem *pb, float *b)
{
    const size_t nv = (size_t)pb->G * pb->L;
    const float s = (float)pb->sp->s, d = (float)pb->sp->decay;
    const float *z = centre(pb);

    MT_CHECK(eval_jt(pb, z, pb->lambda, b));
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)nv; i++)
        b[i] = s * b[i] + d * z[i];
    return MT_OK;
}

static mt_status solve_cg(const problem *pb, int K, double tol, float *y, mt_solve_report *rep)
{
    const size_t nv = (size_t)pb->G * pb->L, no = (size_t)pb->G * pb->L_out;
    const int G = pb->G;
    const float s = (float)pb->sp->s, diag = (float)(1.0 + pb->sp->decay);
    float *r, *p, *ap, *jp;
    double *partial, *v[6], *bb, *rr, *pap, *rr_new, *alpha, *beta;
    int k, active = G;

    MT_CHECK(take(pb, nv, &r));
    MT_CHECK(take(pb, nv, &p));
    MT_CHECK(take(pb, nv, &ap));
    MT_CHECK(take(pb, no, &jp));
    MT_CHECK(mt_arena_take(pb->ws, mt_vec_n_chunks(G, pb->L) * sizeof(double),
                           (void **)&partial));
    MT_CHECK(take_groups(pb, 6, v));
    bb = v[0], rr = v[1], pap = v[2], rr_new = v[3], alpha = v[4], beta = v[5];
    memset(y, 0, nv * sizeof(float));
    MT_CHECK(gn_rhs(pb, r));
    if (pb->sp->kind == MT_SUB_M) { /* linear in y: solved exactly */
        mt_vec_lin(nv, 1.0f / diag, r, 0.0f, r, y);
        rep->iterations = 1;
        rep->residual = 0.0;
        return MT_OK;
    }
    memcpy(p, r, nv * sizeof(float));
    mt_vec_dot(G, pb->L, r, r, partial, bb);
    memcpy(rr, bb, (size_t)G * sizeof(double));

    for (k = 0; k < K && active > 0; k++) {
        /* ap = (s J^T J + (1 + d) I) p */
        MT_CHECK(eval_j(pb, p, jp));
        MT_CHECK(eval_jt(pb, centre(pb), jp, ap));
        mt_vec_lin(nv, s, ap, diag, p, ap);
        mt_vec_dot(G, pb->L, p, ap, partial, pap);
        active = 0;
        for (int g = 0; g < G; g++) {
            int live = rr[g] > tol * tol * bb[g] && pap[g] > 0.0;
            alpha[g] = live ? rr[g] / pap[g] : 0.0;
        }
        mt_vec_axpy(G, pb->L, alpha, p, y);
        for (int g = 0; g < G; g++)
            alpha[g] = -alpha[g];
        mt_vec_axpy(G, pb->L, alpha, ap, r);
        mt_vec_dot(G, pb->L, r, r, partial, rr_new);
        for (int g = 0; g < G; g++) {
            int live = alpha[g] != 0.0;
            beta[g] = live && rr[g] > 0.0 ? rr_new[g] / rr[g] : 0.0;
            rr[g] = live ? rr_new[g] : rr[g];
            active += live && rr[g] > tol * tol * bb[g];
        }
        mt_vec_xpby(G, pb->L, r, beta, p);
    }
    rep->iterations = k;
    rep->residual = max_ratio(G, rr, bb);
    return MT_OK;
}

/* The paper's two-step quasi-Newton, per group: a gradient step whose length
 * satisfies the Goldstein conditions (c = 1/4), then one Barzilai-Borwein
 * step y2 = y1 - (<s,s> / <s,dg>) grad F(y1), s = y1, dg = grad F(y1) - grad F(0). */
static mt_status solve_qn(const problem *pb, int want_residual, float *y, mt_solve_report *rep)
{
    const size_t nv = (size_t)pb->G * pb->L, no = (size_t)pb->G * pb->L_out;
    const int G = pb->G;
    const double c = 0.25;
    float *zy, *r, *g0, *g1;
    double *partial, *v[11], *t, *f0, *ft, *slope, *lo, *hi, *a, *ss, *sd, *done, *gg;
    int open = G, evals = 0;

    MT_CHECK(take(pb, nv, &zy));
    MT_CHECK(take(pb, no, &r));
    MT_CHECK(take(pb, nv, &g0));
    MT_CHECK(take(pb, nv, &g1));
    MT_CHECK(mt_arena_take(pb->ws, mt_vec_n_chunks(G, mt_max_sz(pb->L, pb->L_out)) *
                                       sizeof(double), (void **)&partial));
    MT_CHECK(take_groups(pb, 11, v));
    t = v[0], f0 = v[1], ft = v[2], slope = v[3], lo = v[4], hi = v[5], a = v[6];
    ss = v[7], sd = v[8], done = v[9], gg = v[10];
    memset(y, 0, nv * sizeof(float));
    MT_CHECK(objective(pb, y, zy, r, partial, f0));
    MT_CHECK(gradient(pb, y, zy, r, g0));
    mt_vec_dot(G, pb->L, g0, g0, partial, slope); /* <g0, d> = -|g0|^2 */
    for (int g = 0; g < G; g++) {
        t[g] = pb->sp->kind == MT_SUB_A ? 0.5 : 1.0;
        lo[g] = 0.0, hi[g] = INFINITY;
        done[g] = slope[g] == 0.0 ? 1.0 : 0.0;
        open -= done[g] != 0.0;
    }

    /* Goldstein search: bisect between a too-long and a too-short step. */
    for (int trial = 0; trial < 30 && open > 0; trial++) {
        for (int g = 0; g < G; g++)
            a[g] = -t[g];
        memset(y, 0, nv * sizeof(float));
        mt_vec_axpy(G, pb->L, a, g0, y);
        MT_CHECK(objective(pb, y, zy, r, partial, ft));
        evals++;
        open = 0;
        for (int g = 0; g < G; g++) {
            if (done[g] != 0.0)
                continue;
            if (ft[g] > f0[g] - c * t[g] * slope[g])
                hi[g] = t[g];                 /* too long */
            else if (ft[g] < f0[g] - (1.0 - c) * t[g] * slope[g])
                lo[g] = t[g];                 /* too short */
            else {
                done[g] = 1.0;
                continue;
            }
            t[g] = isinf(hi[g]) ? 2.0 * t[g] : 0.5 * (lo[g] + hi[g]);
            open++;
        }
    }
    for (int g = 0; g < G; g++)
        a[g] = -t[g];
    memset(y, 0, nv * sizeof(float));
    mt_vec_axpy(G, pb->L, a, g0, y);

    /* Barzilai-Borwein: s = y1 - 0, dg = g1 - g0. */
    MT_CHECK(objective(pb, y, zy, r, partial, ft));
    MT_CHECK(gradient(pb, y, zy, r, g1));
    mt_vec_dot(G, pb->L, y, y, partial, ss);
    mt_vec_lin(nv, 1.0f, g1, -1.0f, g0, g0); /* g0 := g1 - g0 */
    mt_vec_dot(G, pb->L, y, g0, partial, sd);
    for (int g = 0; g < G; g++)
        a[g] = sd[g] > 0.0 ? -ss[g] / sd[g] : -t[g];
    mt_vec_axpy(G, pb->L, a, g1, y);

    rep->iterations = 2 + evals;
    rep->residual = 0.0;
    if (want_residual) {
        MT_CHECK(objective(pb, y, zy, r, partial, ft));
        MT_CHECK(gradient(pb, y, zy, r, g1));
        mt_vec_dot(G, pb->L, g1, g1, partial, gg);
        rep->residual = max_ratio(G, gg, slope);
    }
    return MT_OK;
}

static mt_status solve(const mt_inner *inner, problem *pb, float *y, mt_solve_report *rep)
{
    size_t mark = mt_arena_mark(pb->ws);
    mt_status st;
    mt_solve_report local = {0, 0.0};

    switch (inner->kind) {
    case MT_INNER_GD:
        st = solve_gd(pb, inner->iters, inner->residual, y, &local);
        break;
    case MT_INNER_CG:
        st = solve_cg(pb, inner->iters, inner->tol, y, &local);
        break;
    case MT_INNER_QN:
        st = solve_qn(pb, inner->residual, y, &local);
        break;
    default:
        st = MT_FAIL(MT_ERR_ARG, "op %s has no closed-form solver; use --inner gd:K or cg:K",
                     pb->op->name);
    }
    mt_arena_rewind(pb->ws, mark);
    if (rep)
        *rep = local;
    if (st != MT_OK)
        mt_error_trace(__FILE__, __LINE__);
    return st;
}

mt_status mt_solve_input(const mt_inner *inner, const mt_subproblem *sp, mt_op *op,
                         const float *w, int n, const float *x, const float *fx,
                         const float *lambda, float *y, mt_solve_report *rep, mt_arena *ws)
{
    problem pb = {op, sp, w, x, fx, lambda, n, 0, n, mt_shape_size(op->in),
                  mt_shape_size(op->out), ws};

    if (inner->kind == MT_INNER_CLOSED && op->vt->solve_x)
        return op->vt->solve_x(op, sp, w, n, x, fx, lambda, y, rep);
    return solve(inner, &pb, y, rep);
}

mt_status mt_solve_weights(const mt_inner *inner, const mt_subproblem *sp, mt_op *op,
                           const float *w, int n, const float *x, const float *fx,
                           const float *lambda, float *y, mt_solve_report *rep, mt_arena *ws)
{
    problem pb = {op, sp, w, x, fx, lambda, n, 1, 1, op->n_params,
                  (size_t)n * mt_shape_size(op->out), ws};

    if (inner->kind == MT_INNER_CLOSED && op->vt->solve_w)
        return op->vt->solve_w(op, sp, w, n, x, fx, lambda, y, rep);
    return solve(inner, &pb, y, rep);
}
