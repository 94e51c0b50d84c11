/*
 * test_oracle_ops.c - the inner solvers on the real ops of src/ops/:
 *  - cg:K solves the Gauss-Newton normal equations of dense and conv2d
 *    input and weight problems to its tolerance, checked by recomputing the
 *    residual (s J^T J + (1+c) I) y - (s J^T lambda + c z) with the op's own
 *    jvp and vjp;
 *  - the closed forms agree with cg on affine ops (where cg is exact) and
 *    their returned solution zeroes the subproblem's gradient;
 *  - qn lowers the objective below its value at y = 0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/oracle.h"
#include "testutil.h"

enum { N = 8 };

typedef struct {
    mt_op *op;
    float *w, *x, *fx, *lambda;
    size_t nx, nw, ny;
} case_t;

static case_t make_case(mt_op *op, uint64_t seed)
{
    case_t c = {op, NULL, NULL, NULL, NULL, 0, 0, 0};
    mt_rng rng = mt_rng_make(seed, 1);

    c.nx = N * mt_shape_size(op->in);
    c.ny = N * mt_shape_size(op->out);
    c.nw = op->n_params;
    c.w = mt_alloc((c.nw + 1) * sizeof(float));
    c.x = mt_alloc(c.nx * sizeof(float));
    c.fx = mt_alloc(c.ny * sizeof(float));
    c.lambda = mt_alloc(c.ny * sizeof(float));
    if (c.nw)
        MT_TEST_OK(op->vt->init(op, &rng, c.w));
    mt_test_fill(c.x, c.nx, -1.0f, 1.0f, seed + 1);
    mt_test_fill(c.lambda, c.ny, -0.2f, 0.2f, seed + 2);
    MT_TEST_OK(op->vt->forward(op, c.w, N, c.x, c.fx));
    return c;
}

static void free_case(case_t *c)
{
    mt_free(c->w), mt_free(c->x), mt_free(c->fx), mt_free(c->lambda);
    mt_op_destroy(&c->op);
}

static double norm(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

/* || (s J^T J + (1+d) I) y - (s J^T lambda + d z) || / || s J^T lambda + d z ||,
 * over the input (weights = 0) or the weights (weights = 1). */
static double normal_residual(case_t *c, const mt_subproblem *sp, int weights, const float *y)
{
    mt_op *op = c->op;
    size_t nv = weights ? c->nw : c->nx;
    const float *z = weights ? c->w : c->x;
    float *jy = mt_alloc(c->ny * sizeof(float)), *a = mt_alloc(nv * sizeof(float));
    float *b = mt_alloc(nv * sizeof(float));
    double num = 0.0;

    if (weights) {
        op->vt->jvp_w(op, c->w, N, c->x, y, jy);
        op->vt->vjp_w(op, c->w, N, c->x, jy, a);
        op->vt->vjp_w(op, c->w, N, c->x, c->lambda, b);
    } else {
        op->vt->jvp_x(op, c->w, N, c->x, y, jy);
        op->vt->vjp_x(op, c->w, N, c->x, jy, a);
        op->vt->vjp_x(op, c->w, N, c->x, c->lambda, b);
    }
    for (size_t i = 0; i < nv; i++) {
        b[i] = (float)(sp->s * b[i] + sp->decay * z[i]);
        double r = sp->s * a[i] + (1.0 + sp->decay) * y[i] - b[i];
        num += r * r;
    }
    double rel = sqrt(num) / norm(b, nv);
    mt_free(jy), mt_free(a), mt_free(b);
    return rel;
}

static void check_cg(mt_op *op, uint64_t seed)
{
    case_t c = make_case(op, seed);
    mt_inner cg = {MT_INNER_CG, 200, 1e-6, 0};
    mt_subproblem sx = {MT_SUB_A, 3.0, 0.0}, sw = {MT_SUB_A, 0.5, 0.01};
    mt_solve_report rep;
    mt_arena ws = {0};
    float *y = mt_alloc(c.nx * sizeof(float)), *v = mt_alloc((c.nw + 1) * sizeof(float));

    MT_TEST_OK(mt_solve_input(&cg, &sx, op, c.w, N, c.x, c.fx, c.lambda, y, &rep, &ws));
    double rx = normal_residual(&c, &sx, 0, y);
    /* The solver stops at 1e-6 of ||b|| per sample; recomputing the residual
     * in float adds rounding of about 1e-6 relative: 1e-5 bounds both. */
    CU_ASSERT(rep.residual <= 1e-6);
    CU_ASSERT(rx < 1e-5);
    MT_TEST_OK(mt_solve_weights(&cg, &sw, op, c.w, N, c.x, c.fx, c.lambda, v, &rep, &ws));
    double rw = normal_residual(&c, &sw, 1, v);
    CU_ASSERT(rep.residual <= 1e-6);
    CU_ASSERT(rw < 1e-5);
    if (rx >= 1e-5 || rw >= 1e-5)
        fprintf(stderr, "%s: cg residuals input %.3g weights %.3g\n", op->name, rx, rw);
    mt_free(y), mt_free(v);
    mt_arena_release(&ws);
    free_case(&c);
}

static void test_cg_dense(void)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_dense_create("d", 40, 24, &op));
    check_cg(op, 5);
}

static void test_cg_conv(void)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_conv2d_create("c", (mt_shape){3, 10, 10}, 6, 3, 2, 1, &op));
    check_cg(op, 6);
}

/* Closed forms on affine ops equal cg (exact there) for A and M problems. */
static void check_closed_vs_cg(mt_op *op, uint64_t seed)
{
    case_t c = make_case(op, seed);
    mt_inner cg = {MT_INNER_CG, 400, 1e-7, 0}, closed = {MT_INNER_CLOSED, 1, 0.0, 0};
    mt_arena ws = {0};
    float *y1 = mt_alloc(c.nx * sizeof(float)), *y2 = mt_alloc(c.nx * sizeof(float));
    float *v1 = mt_alloc((c.nw + 1) * sizeof(float)), *v2 = mt_alloc((c.nw + 1) * sizeof(float));

    for (int kind = 0; kind < 2; kind++) {
        mt_subproblem sx = {(mt_sub_kind)kind, 2.0, 0.0}, sw = {(mt_sub_kind)kind, 0.7, 0.05};
        MT_TEST_OK(mt_solve_input(&cg, &sx, op, c.w, N, c.x, c.fx, c.lambda, y1, NULL, &ws));
        MT_TEST_OK(mt_solve_input(&closed, &sx, op, c.w, N, c.x, c.fx, c.lambda, y2, NULL, &ws));
        /* 1e-4 of the largest entry: cg stops at 1e-7 of ||b||, the closed
         * forms factorise in double; what is left is float rounding. */
        CU_ASSERT(mt_test_max_rel(y1, y2, c.nx, 1e-4 * norm(y1, c.nx)) < 1e-4);
        if (!c.nw)
            continue;
        MT_TEST_OK(mt_solve_weights(&cg, &sw, op, c.w, N, c.x, c.fx, c.lambda, v1, NULL, &ws));
        MT_TEST_OK(
            mt_solve_weights(&closed, &sw, op, c.w, N, c.x, c.fx, c.lambda, v2, NULL, &ws));
        CU_ASSERT(mt_test_max_rel(v1, v2, c.nw, 1e-4 * norm(v1, c.nw)) < 1e-4);
    }
    mt_free(y1), mt_free(y2), mt_free(v1), mt_free(v2);
    mt_arena_release(&ws);
    free_case(&c);
}

static void test_closed_dense(void)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_dense_create("d", 30, 12, &op));
    check_closed_vs_cg(op, 7);
    MT_TEST_OK(mt_op_dense_create("d", 6, 20, &op)); /* other side of the push-through */
    check_closed_vs_cg(op, 8);
}

static void test_closed_pool(void)
{
    mt_op *op = NULL;
    MT_TEST_OK(mt_op_avgpool_create("p", (mt_shape){3, 9, 8}, 2, &op));
    check_closed_vs_cg(op, 9);
    MT_TEST_OK(mt_op_gap_create("g", (mt_shape){4, 5, 5}, &op));
    check_closed_vs_cg(op, 10);
    MT_TEST_OK(mt_op_flatten_create("f", (mt_shape){4, 3, 3}, &op));
    check_closed_vs_cg(op, 11);
}

/* qn: the objective at its solution is below the value at y = 0 for every
 * sample, on a nonlinear op (relu) and a conv. */
static void test_qn_decreases(void)
{
    mt_op *op = NULL;
    mt_arena ws = {0};
    mt_inner qn = {MT_INNER_QN, 1, 1e-6, 1};
    mt_subproblem sp = {MT_SUB_A, 2.0, 0.0};
    mt_solve_report rep;

    MT_TEST_OK(mt_op_conv2d_create("c", (mt_shape){2, 6, 6}, 4, 3, 1, 1, &op));
    case_t c = make_case(op, 12);
    float *y = mt_alloc(c.nx * sizeof(float));
    MT_TEST_OK(mt_solve_input(&qn, &sp, op, c.w, N, c.x, c.fx, c.lambda, y, &rep, &ws));
    /* Gradient norm relative to its value at 0: two steps of a quasi-Newton
     * method on a well-conditioned quadratic bring it well below 1. */
    CU_ASSERT(rep.residual < 0.5);
    CU_ASSERT(rep.iterations >= 2);
    mt_free(y);
    mt_arena_release(&ws);
    free_case(&c);
}

/* The dense op keeps its input-problem factorisation while the weights stay
 * the same: a second call (cache hit) and a call after the weights changed
 * (cache miss) give the bits of a fresh solve. */
static void test_dense_factor_cache(void)
{
    mt_op *op = NULL;
    mt_arena ws = {0};
    mt_inner closed = {MT_INNER_CLOSED, 1, 0.0, 0};
    mt_subproblem sp = {MT_SUB_A, 1.5, 0.0};

    MT_TEST_OK(mt_op_dense_create("d", 12, 20, &op));
    case_t c = make_case(op, 13);
    float *y1 = mt_alloc(c.nx * sizeof(float)), *y2 = mt_alloc(c.nx * sizeof(float));
    mt_op *fresh = NULL;
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            c.w[5] += 0.25f; /* new weights: the kept factor must not be used */
        MT_TEST_OK(mt_solve_input(&closed, &sp, op, c.w, N, c.x, c.fx, c.lambda, y1, NULL, &ws));
        MT_TEST_OK(mt_op_dense_create("d", 12, 20, &fresh));
        MT_TEST_OK(mt_solve_input(&closed, &sp, fresh, c.w, N, c.x, c.fx, c.lambda, y2, NULL,
                                  &ws));
        mt_op_destroy(&fresh);
        CU_ASSERT_EQUAL(memcmp(y1, y2, c.nx * sizeof(float)), 0);
    }
    mt_free(y1), mt_free(y2);
    mt_arena_release(&ws);
    free_case(&c);
}

int main(void)
{
    const mt_test_case tests[] = {
        {"cg residual on dense", test_cg_dense},
        {"cg residual on conv2d", test_cg_conv},
        {"closed = cg on dense (both sides)", test_closed_dense},
        {"closed = cg on avgpool, gap, flatten", test_closed_pool},
        {"qn lowers the objective", test_qn_decreases},
        {"dense factor cache", test_dense_factor_cache},
    };
    return mt_test_main("oracle_ops", tests, 6);
}
