/*
 * test_pipeline.c - whole-net checks of the pipeline at 1, 2 and 4 ranks
 * (ctest runs this at each), on synthetic data drawn from a fixed seed:
 *  - penalized with gd:1 inner solvers and sigma*kappa = 1 gives gamma times
 *    the back-propagation direction, for every parameter (ALGORITHMS.md 4);
 *  - the same step on every rank layout and micro-batch count gives the same
 *    loss and directions bit for bit (compared through an all-gather of a
 *    checksum against the 1-stage, 1-micro-batch values computed here).
 */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/pipeline.h"
#include "testutil.h"

enum { BATCH = 64 };

static mt_pipeline_config config(mt_oracle_kind kind, int micro)
{
    mt_pipeline_config c;
    memset(&c, 0, sizeof c);
    c.batch = BATCH;
    c.micro_batches = micro;
    c.oracle.kind = kind;
    c.oracle.kappa = 0.5;
    c.oracle.sigma = 2.0;
    c.oracle.gamma = 0.3;
    c.oracle.wd = 1e-3;
    c.oracle.prox_tau = 1.0;
    c.oracle.dtp_rho = 1.0;
    c.oracle.fallback = (mt_inner){MT_INNER_GD, 1, 1e-6, 0};
    c.oracle.fallback_set = 1;
    c.optim.kind = MT_OPTIM_PLAIN;
    c.optim.lr = 1.0;
    return c;
}

/* One step of `net` on `comm`; returns the loss. */
static double one_step(MPI_Comm comm, mt_model *model, const mt_pipeline_config *cfg,
                       mt_pipeline **out)
{
    mt_pipeline *p = NULL;
    mt_step_stats s;
    size_t in = mt_shape_size(model->in);

    MT_TEST_OK(mt_pipeline_create(comm, model, cfg, &p));
    MT_TEST_OK(mt_pipeline_init_params(p, 7));
    if (mt_pipeline_input(p))
        mt_test_fill(mt_pipeline_input(p), (size_t)cfg->batch * in, -1.5f, 1.5f, 99);
    if (mt_pipeline_labels(p))
        for (int i = 0; i < cfg->batch; i++)
            mt_pipeline_labels(p)[i] = (int32_t)((i * 7 + 3) % 10);
    MT_TEST_OK(mt_pipeline_train_step(p, &s));
    *out = p;
    return s.loss;
}

/* The direction of `cp` equals `factor` times back-propagation's, tensor by
 * tensor, within `tol` relative: elementwise (with a floor of 1e-3 of the
 * tensor's rms), or in norm when `in_norm` is set. */
static void check_scaled_as(const char *net, mt_pipeline_config cp, double factor, double tol,
                            int in_norm)
{
    mt_model *model = NULL;
    mt_pipeline *gd = NULL, *pen = NULL;
    mt_pipeline_config cg = config(MT_ORACLE_GD, 1);
    double worst = 0.0;

    MT_TEST_OK(mt_model_build(net, (mt_shape){3, 32, 32}, 10, &model));
    double l1 = one_step(MPI_COMM_WORLD, model, &cg, &gd);
    double l2 = one_step(MPI_COMM_WORLD, model, &cp, &pen);
    CU_ASSERT_EQUAL(l1, l2); /* same weights, same forward pass */
    for (int t = 0; t < model->n_ops; t++) {
        const float *a = mt_pipeline_op_direction(gd, t);
        const float *b = mt_pipeline_op_direction(pen, t);
        size_t n = model->ops[t]->n_params;
        if (!a || n == 0)
            continue;
        float *scaled = malloc(n * sizeof(float));
        double norm = 0.0;
        for (size_t i = 0; i < n; i++) {
            scaled[i] = (float)(factor * a[i]);
            norm += (double)b[i] * b[i];
        }
        CU_ASSERT(norm > 0.0); /* every tensor moved */
        /* 1e-4 relative: the two paths round sigma, kappa and gamma products
         * in a different order through up to ten layers of float sums. */
        double r = mt_test_max_rel(scaled, b, n, 1e-3 * sqrt(norm / n));
        if (in_norm) {
            double d = 0.0;
            for (size_t i = 0; i < n; i++)
                d += ((double)scaled[i] - b[i]) * ((double)scaled[i] - b[i]);
            r = sqrt(d / norm);
        }
        worst = r > worst ? r : worst;
        if (r >= tol)
            fprintf(stderr, "  %s: max rel %.3g (first: %g vs %g)\n", model->ops[t]->name, r,
                    scaled[0], b[0]);
        free(scaled);
    }
    CU_ASSERT(worst < tol);
    if (worst >= tol)
        fprintf(stderr, "%s %s: direction vs %g x gd: max rel %.3g\n", net,
                mt_oracle_name(cp.oracle.kind), factor, worst);
    mt_pipeline_destroy(&gd);
    mt_pipeline_destroy(&pen);
    mt_model_destroy(&model);
}

static void check_scaled(const char *net, mt_pipeline_config cp, double factor, double tol)
{
    check_scaled_as(net, cp, factor, tol, 0);
}

static void check_net(const char *net)
{
    mt_pipeline_config cp = config(MT_ORACLE_PENALIZED, 2);
    check_scaled(net, cp, cp.oracle.gamma, 1e-4);
}

static void test_identity_convnet(void) { check_net("convnet"); }
static void test_identity_mlp(void) { check_net("mlp"); }

/* moreau and dtp with single-step inner solvers and unit scales are
 * back-propagation times gamma (ALGORITHMS.md 3): sigma = 1, rho = 1. */
static void test_identity_moreau_dtp(void)
{
    for (int k = 0; k < 2; k++) {
        mt_pipeline_config c = config(k ? MT_ORACLE_DTP : MT_ORACLE_MOREAU, 2);
        c.oracle.sigma = 1.0;
        c.oracle.dtp_rho = 1.0;
        check_scaled("convnet", c, c.oracle.gamma, 1e-4);
    }
}

/* proxprop: A_tau ~ tau x gradient as tau -> 0. The exact step is
 * (tau X^T X + I)^{-1} tau X^T delta; the conv layers' X^T X sums 64 x 1024
 * patches, so tau must be tiny: at tau = 1e-9 the error in norm is below
 * 1e-2 of the gradient's (at tau = 1e-5 it is about 1: measured). */
static void test_proxprop_small_tau(void)
{
    mt_pipeline_config c = config(MT_ORACLE_PROXPROP, 1);
    c.oracle.prox_tau = 1e-9;
    c.oracle.fallback = (mt_inner){MT_INNER_CG, 50, 1e-9, 0};
    c.oracle.n_rules = 1;
    c.oracle.rules[0] = (mt_inner_rule){"dense", {MT_INNER_CLOSED, 1, 0.0, 0}};
    check_scaled_as("convnet", c, 1e-9, 1e-2, 1);
}

/* After one step with its default solvers, every oracle has moved every
 * parameter tensor of every net (a direction of zero norm is a skipped
 * tensor). */
static void test_every_tensor_moves(void)
{
    const char *nets[] = {"mlp", "convnet", "allcnn"};
    for (int i = 0; i < 3; i++) {
        mt_model *model = NULL;
        MT_TEST_OK(mt_model_build(nets[i], (mt_shape){3, 32, 32}, 10, &model));
        for (int k = 0; k < MT_ORACLE_COUNT; k++) {
            mt_pipeline_config c = config((mt_oracle_kind)k, 1);
            mt_pipeline *p = NULL;
            c.batch = 32;
            c.oracle.fallback_set = 0;
            one_step(MPI_COMM_WORLD, model, &c, &p);
            for (int t = 0; t < model->n_ops; t++) {
                const mt_op *op = model->ops[t];
                const float *g = mt_pipeline_op_direction(p, t);
                for (int j = 0; g && j < op->n_tensors; j++) {
                    double nn = 0.0;
                    for (size_t e = 0; e < op->tensors[j].n; e++)
                        nn += (double)g[op->tensors[j].offset + e] * g[op->tensors[j].offset + e];
                    CU_ASSERT(nn > 0.0 && isfinite(nn));
                    if (!(nn > 0.0 && isfinite(nn)))
                        fprintf(stderr, "%s %s: %s.%s did not move (|g|^2 = %g)\n", nets[i],
                                mt_oracle_name(c.oracle.kind), op->name, op->tensors[j].suffix,
                                nn);
                }
            }
            mt_pipeline_destroy(&p);
        }
        mt_model_destroy(&model);
    }
}

/* Loss of one step: the same on every layout. The value on a single rank
 * with one micro-batch is recomputed on a private communicator. */
static void test_layouts_agree(void)
{
    mt_model *model = NULL;
    mt_pipeline *p = NULL, *q = NULL;
    int rank, size;
    MPI_Comm self;

    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MT_TEST_OK(mt_model_build("convnet", (mt_shape){3, 32, 32}, 10, &model));
    for (int kind = 0; kind < 2; kind++) {
        mt_pipeline_config multi = config((mt_oracle_kind)kind, 2);
        mt_pipeline_config single = config((mt_oracle_kind)kind, 1);
        multi.oracle.fallback = single.oracle.fallback = (mt_inner){MT_INNER_CG, 3, 1e-6, 0};
        double l_multi = one_step(MPI_COMM_WORLD, model, &multi, &p);
        MPI_Comm_split(MPI_COMM_WORLD, rank, 0, &self);
        double l_single = one_step(self, model, &single, &q);
        CU_ASSERT_EQUAL(l_multi, l_single);
        for (int t = 0; t < model->n_ops; t++) {
            const float *a = mt_pipeline_op_direction(p, t);
            size_t n = model->ops[t]->n_params;
            if (a && n)
                CU_ASSERT_EQUAL(memcmp(a, mt_pipeline_op_direction(q, t), n * sizeof(float)), 0);
        }
        mt_pipeline_destroy(&p);
        mt_pipeline_destroy(&q);
        MPI_Comm_free(&self);
    }
    (void)size;
    mt_model_destroy(&model);
}

int main(int argc, char **argv)
{
    const mt_test_case tests[] = {
        {"penalized gd:1 = gamma x back-prop (convnet)", test_identity_convnet},
        {"penalized gd:1 = gamma x back-prop (mlp)", test_identity_mlp},
        {"moreau and dtp gd:1 = gamma x back-prop", test_identity_moreau_dtp},
        {"proxprop tau -> 0 = tau x gradient", test_proxprop_small_tau},
        {"every tensor moves, every oracle and net", test_every_tensor_moves},
        {"1 stage x 1 micro-batch = S stages x 2 micro-batches", test_layouts_agree},
    };
    return mt_test_main_mpi(&argc, &argv, "pipeline", tests, 6);
}
