/*
 * test_control.c - the pendulum swing-up trained through the pipeline
 * (mt_model_build_pendulum + mt_pipeline_*), at 1, 2 and 4 ranks:
 *  - the first GD and M-GD iterates for T = 3 against values worked out by
 *    hand below (on at most 3 ranks: a sub-communicator when there are 4);
 *  - the cost sequence of every oracle on the world communicator equals,
 *    bit for bit, the one of a single rank (MPI_COMM_SELF);
 *  - more ranks than time steps, and T = 0, fail with MT_ERR_ARG.
 */
#include <math.h>
#include <mpi.h>
#include <string.h>

#include "mtrain/control.h"
#include "mtrain/pipeline.h"
#include "testutil.h"

static const double pi = 3.14159265358979323846;

static mt_pipeline_config config(mt_oracle_kind kind, double lr)
{
    mt_pipeline_config c;

    memset(&c, 0, sizeof c);
    c.batch = 1;
    c.micro_batches = 1;
    c.oracle.kind = kind;
    c.oracle.kappa = 1.0;
    c.oracle.sigma = 0.5;
    c.oracle.gamma = 128.0;
    c.oracle.prox_tau = 0.25;
    c.oracle.dtp_rho = 0.1;
    c.optim.kind = MT_OPTIM_PLAIN;
    c.optim.lr = lr;
    return c;
}

/* A pipeline for horizon T on comm, controls at 0, x_0 = 0. */
static mt_pipeline *start(MPI_Comm comm, mt_model *model, const mt_pipeline_config *cfg)
{
    mt_pipeline *p = NULL;

    MT_TEST_OK(mt_pipeline_create(comm, model, cfg, &p));
    MT_TEST_OK(mt_pipeline_init_params(p, 1));
    if (mt_pipeline_input(p))
        memset(mt_pipeline_input(p), 0, 2 * sizeof(float));
    if (mt_pipeline_labels(p))
        mt_pipeline_labels(p)[0] = 0;
    return p;
}

/* After one step on the ranks of `comm`, control t (1-based) must be
 * want[t - 1] within 1e-6 relative (abs 1e-9 for the exact zero): the
 * values below are reached by a handful of float operations each, 6e-8
 * relative apiece. The first cost is pi^2 rounded to float. */
static void check_first_iterate(MPI_Comm comm, mt_pipeline_config cfg, const double want[3])
{
    mt_model *model = NULL;
    mt_pipeline *p;
    mt_step_stats s;

    MT_TEST_OK(mt_model_build_pendulum(3, &model));
    p = start(comm, model, &cfg);
    MT_TEST_OK(mt_pipeline_train_step(p, &s));
    CU_ASSERT_DOUBLE_EQUAL(s.loss, pi * pi, 1e-6 * pi * pi);
    for (int t = 1; t <= 3; t++) {
        const float *w = mt_pipeline_op_params(p, t - 1);
        if (w)
            CU_ASSERT_DOUBLE_EQUAL(w[0], want[t - 1], 1e-9 + 1e-6 * fabs(want[t - 1]));
    }
    mt_pipeline_destroy(&p);
    mt_model_destroy(&model);
}

/*
 * T = 3, w = 0: the pendulum stays at rest, x_0 = x_1 = x_2 = x_3 = 0, and
 * the cost is (0 - pi)^2 = 9.8696. At theta = 0 every step has
 *   J_x = [[1, 0.1], [-0.981, 0.999]]   (delta g / l = 0.981, 1 - delta c = 0.999)
 *   J_w = [0, 0.1]^T                    (b = delta / (m l^2) = 0.1)
 *
 * GD, step lr: lambda_3 = grad h = (2 (0 - pi), 0.2 * 0) = (-2 pi, 0)
 *   g_3 = 0.1 * 0 = 0
 *   lambda_2 = J^T lambda_3 = (-2 pi, 0.1 * (-2 pi)) = (-2 pi, -0.2 pi)
 *   g_2 = 0.1 * (-0.2 pi) = -0.02 pi
 *   lambda_1 = J^T lambda_2 = (-2 pi + 0.981 * 0.2 pi, -0.2 pi - 0.999 * 0.2 pi)
 *            = (-1.8038 pi, -0.3998 pi)
 *   g_1 = 0.1 * (-0.3998 pi) = -0.03998 pi
 * so w = -lr g = lr (0.03998 pi, 0.02 pi, 0) = lr (0.125600874, 0.0628318531, 0).
 *
 * M-GD (moreau), sigma = 0.5, gamma = 128: with c = (1, 0.1), target (pi, 0)
 *   mu_3 = M_sigma(h)(x_3) = 2 sigma c (x - t) / (1 + 2 sigma c) = (-pi/2, 0)
 * The M input problem at z = 0 (pendulum.c) has the closed form
 *   y_2 = sigma (mu_1 delta + mu_2 (1 - delta c)) = sigma k2,
 * and y_1 solves y = sigma mu_1 - sigma mu_2 0.981 cos(y), so
 *   mu_2 = M(x_2, mu_3): y_2 = 0.5 (-pi/2 * 0.1) = -0.025 pi,
 *                        y_1 = 0.5 (-pi/2) = -pi/4 (mu_3's omega part is 0)
 *   mu_1 = M(x_1, mu_2): y_2 = 0.5 (-pi/4 * 0.1 - 0.025 pi * 0.999)
 *                            = 0.5 (-0.049975 pi) = -0.0249875 pi
 * The weight problem is a quadratic: g_t = gamma b mu_t[omega], so
 *   g_3 = 0, g_2 = 128 * 0.1 * (-0.025 pi) = -0.32 pi,
 *   g_1 = 128 * 0.1 * (-0.0249875 pi) = -0.3198400 pi
 * and w = (0.31984 pi, 0.32 pi, 0) = (1.004807... , 1.005309649, 0).
 */
static void test_first_iterates(void)
{
    const double gd1[3] = {0.03998 * pi, 0.02 * pi, 0.0};
    const double gd4[3] = {0.25 * 0.03998 * pi, 0.25 * 0.02 * pi, 0.0};
    const double mgd[3] = {0.31984 * pi, 0.32 * pi, 0.0};
    int rank, size;
    MPI_Comm comm;

    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_split(MPI_COMM_WORLD, rank < 3 ? 0 : MPI_UNDEFINED, rank, &comm);
    if (comm == MPI_COMM_NULL)
        return;
    check_first_iterate(comm, config(MT_ORACLE_GD, 1.0), gd1);
    check_first_iterate(comm, config(MT_ORACLE_GD, 0.25), gd4);
    check_first_iterate(comm, config(MT_ORACLE_MOREAU, 1.0), mgd);
    MPI_Comm_free(&comm);
}

/* `iters` costs of a run on comm (every rank gets them). */
static void costs(MPI_Comm comm, mt_model *model, mt_pipeline_config cfg, int iters,
                  double *out)
{
    mt_pipeline *p = start(comm, model, &cfg);
    mt_step_stats s;

    for (int k = 0; k < iters; k++) {
        MT_TEST_OK(mt_pipeline_train_step(p, &s));
        out[k] = s.loss;
    }
    mt_pipeline_destroy(&p);
}

/* T = 8, 12 iterations of each oracle, with step sizes that make the
 * controls move by O(1): the world run must equal the one-rank run
 * exactly (same double costs). */
static void test_ranks_identical(void)
{
    enum { T = 8, ITERS = 12 };
    static const mt_oracle_kind kinds[] = {MT_ORACLE_GD, MT_ORACLE_MOREAU, MT_ORACLE_PENALIZED,
                                           MT_ORACLE_DTP, MT_ORACLE_PROXPROP};
    mt_model *model = NULL;

    MT_TEST_OK(mt_model_build_pendulum(T, &model));
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        mt_pipeline_config cfg = config(kinds[i], kinds[i] == MT_ORACLE_GD ? 0.25 : 1.0);
        double world[ITERS], self[ITERS];
        if (kinds[i] == MT_ORACLE_PENALIZED)
            cfg.oracle.sigma = 1.0, cfg.oracle.gamma = 0.5;
        if (kinds[i] == MT_ORACLE_DTP)
            cfg.oracle.sigma = 1.0, cfg.oracle.gamma = 0.25;
        costs(MPI_COMM_WORLD, model, cfg, ITERS, world);
        costs(MPI_COMM_SELF, model, cfg, ITERS, self);
        CU_ASSERT(memcmp(world, self, sizeof world) == 0);
        CU_ASSERT(world[ITERS - 1] < world[0]); /* and the runs do learn */
    }
    mt_model_destroy(&model);
}

/* Each rank needs a time step: T = size - 1 fails on every rank alike;
 * T = 0 and T past the limit are refused by the builder. */
static void test_too_many_ranks(void)
{
    mt_model *model = NULL;
    mt_pipeline *p = NULL;
    mt_pipeline_config cfg = config(MT_ORACLE_GD, 1.0);
    int size;

    MPI_Comm_size(MPI_COMM_WORLD, &size);
    CU_ASSERT_EQUAL(mt_model_build_pendulum(0, &model), MT_ERR_ARG);
    CU_ASSERT_EQUAL(mt_model_build_pendulum(MT_PENDULUM_MAX_HORIZON + 1, &model), MT_ERR_ARG);
    CU_ASSERT_PTR_NULL(model);
    mt_error_clear();
    if (size < 2)
        return;
    MT_TEST_OK(mt_model_build_pendulum(size - 1, &model));
    CU_ASSERT_EQUAL(mt_pipeline_create(MPI_COMM_WORLD, model, &cfg, &p), MT_ERR_ARG);
    CU_ASSERT_PTR_NULL(p);
    mt_error_clear();
    mt_model_destroy(&model);
}

int main(int argc, char **argv)
{
    static const mt_test_case tests[] = {
        {"first GD and M-GD iterates, T = 3, by hand", test_first_iterates},
        {"cost sequences equal on any number of ranks", test_ranks_identical},
        {"more ranks than time steps", test_too_many_ranks},
    };
    return mt_test_main_mpi(&argc, &argv, "control", tests,
                            (int)(sizeof tests / sizeof tests[0]));
}
