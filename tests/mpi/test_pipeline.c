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
        mt_test_fill(mt_pipeline_input(p), (size_t)BATCH * in, -1.5f, 1.5f, 99);
    if (mt_pipeline_labels(p))
        for (int i = 0; i < BATCH; i++)
            mt_pipeline_labels(p)[i] = (int32_t)((i * 7 + 3) % 10);
    MT_TEST_OK(mt_pipeline_train_step(p, &s));
    *out = p;
    return s.loss;
}

static void check_net(const char *net)
{
    mt_model *model = NULL;
    mt_pipeline *gd = NULL, *pen = NULL;
    mt_pipeline_config cg = config(MT_ORACLE_GD, 1), cp = config(MT_ORACLE_PENALIZED, 2);
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
            scaled[i] = (float)(cp.oracle.gamma * a[i]);
            norm += (double)b[i] * b[i];
        }
        CU_ASSERT(norm > 0.0); /* every tensor moved */
        /* 1e-4 relative: the two paths round sigma, kappa and gamma products
         * in a different order through up to ten layers of float sums. */
        double r = mt_test_max_rel(scaled, b, n, 1e-3 * sqrt(norm / n));
        worst = r > worst ? r : worst;
        free(scaled);
    }
    CU_ASSERT(worst < 1e-4);
    if (worst >= 1e-4)
        fprintf(stderr, "%s: penalized gd:1 vs gamma * gd: max rel %.3g\n", net, worst);
    mt_pipeline_destroy(&gd);
    mt_pipeline_destroy(&pen);
    mt_model_destroy(&model);
}

static void test_identity_convnet(void) { check_net("convnet"); }
static void test_identity_mlp(void) { check_net("mlp"); }

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
        {"1 stage x 1 micro-batch = S stages x 2 micro-batches", test_layouts_agree},
    };
    return mt_test_main_mpi(&argc, &argv, "pipeline", tests, 3);
}
