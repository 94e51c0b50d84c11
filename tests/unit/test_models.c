/*
 * test_models.c - the nets of ALGORITHMS.md section 8 (shapes, parameter
 * counts, PyTorch names), the stage partition (against brute force over
 * every cut) and layer grouping.
 */
#include <float.h>
#include <string.h>

#include "mtrain/model.h"
#include "testutil.h"

static mt_model *build(const char *net, mt_shape in)
{
    mt_model *m = NULL;
    MT_TEST_OK(mt_model_build(net, in, 10, &m));
    return m;
}

static void test_shapes_and_params(void)
{
    mt_shape cifar = {3, 32, 32}, mnist = {1, 28, 28};
    mt_model *m = build("mlp", cifar);
    /* 3072-4000-1000-4000-10 with biases */
    size_t mlp = 3072 * 4000 + 4000 + 4000 * 1000 + 1000 + 1000 * 4000 + 4000 + 4000 * 10 + 10;
    CU_ASSERT_EQUAL(mt_model_n_params(m), mlp);
    CU_ASSERT_STRING_EQUAL(m->ops[1]->name, "classifier.0");
    mt_model_destroy(&m);

    m = build("convnet", cifar);
    CU_ASSERT_EQUAL(m->n_ops, 11);
    CU_ASSERT_EQUAL(mt_shape_size(m->ops[9]->out), 320); /* 20 x 4 x 4 */
    CU_ASSERT_STRING_EQUAL(m->ops[10]->name, "classifier.0");
    mt_model_destroy(&m);
    m = build("convnet", mnist); /* 28 -> 14 -> 7 -> 3 */
    CU_ASSERT_EQUAL(mt_shape_size(m->ops[9]->out), 180);
    mt_model_destroy(&m);

    m = build("allcnn", cifar);
    CU_ASSERT_EQUAL(mt_model_n_param_ops(m), 9);
    CU_ASSERT_EQUAL(m->ops[12]->out.h, 6); /* the valid 3x3 conv: 8 -> 6 */
    CU_ASSERT_EQUAL(m->ops[m->n_ops - 1]->out.c, 10);
    CU_ASSERT_STRING_EQUAL(m->ops[16]->name, "features.16");
    mt_model_destroy(&m);

    CU_ASSERT_EQUAL(mt_model_build("resnet", cifar, 10, &m), MT_ERR_ARG);
    CU_ASSERT_PTR_NULL(m);
    mt_error_clear();
}

/* Largest stage cost of a cut, DBL_MAX when a stage lacks parameters. */
static double worst_stage(const mt_model *m, const int *first, int S)
{
    double worst = 0.0;
    for (int s = 0; s < S; s++) {
        double c = 0.0;
        int params = 0;
        for (int t = first[s]; t < first[s + 1]; t++) {
            c += mt_model_op_cost(m, t);
            params += m->ops[t]->n_params > 0;
        }
        if (!params || first[s + 1] <= first[s])
            return DBL_MAX;
        worst = c > worst ? c : worst;
    }
    return worst;
}

/* Best cut into 3 stages by trying every pair of cut points. */
static double brute_force_3(const mt_model *m)
{
    double best = DBL_MAX;
    int f[4] = {0, 0, 0, m->n_ops};
    for (f[1] = 1; f[1] < m->n_ops; f[1]++)
        for (f[2] = f[1] + 1; f[2] < m->n_ops; f[2]++) {
            double w = worst_stage(m, f, 3);
            best = w < best ? w : best;
        }
    return best;
}

static void test_partition(void)
{
    const char *nets[] = {"mlp", "convnet", "allcnn"};
    for (int i = 0; i < 3; i++) {
        mt_model *m = build(nets[i], (mt_shape){3, 32, 32});
        int first[10];
        for (int S = 1; S <= mt_model_n_param_ops(m); S++) {
            MT_TEST_OK(mt_model_partition(m, S, first));
            CU_ASSERT_EQUAL(first[0], 0);
            CU_ASSERT_EQUAL(first[S], m->n_ops);
            CU_ASSERT(worst_stage(m, first, S) < DBL_MAX); /* contiguous, parameters each */
        }
        MT_TEST_OK(mt_model_partition(m, 3, first));
        CU_ASSERT_DOUBLE_EQUAL(worst_stage(m, first, 3), brute_force_3(m), 1e-6);
        CU_ASSERT_EQUAL(mt_model_partition(m, mt_model_n_param_ops(m) + 1, first), MT_ERR_ARG);
        CU_ASSERT(strstr(mt_error_message(), "use between 1 and") != NULL);
        mt_error_clear();
        mt_model_destroy(&m);
    }
}

static void test_group_layers(void)
{
    mt_model *m = build("convnet", (mt_shape){3, 32, 32});
    size_t params = mt_model_n_params(m);

    MT_TEST_OK(mt_model_group_layers(m));
    CU_ASSERT_EQUAL(m->n_ops, 5); /* 3 blocks, flatten, dense */
    CU_ASSERT_STRING_EQUAL(m->ops[0]->vt->kind, "block");
    CU_ASSERT_STRING_EQUAL(m->ops[0]->name, "features.0");
    CU_ASSERT_EQUAL(m->ops[0]->out.h, 16); /* conv, relu, pool */
    CU_ASSERT_EQUAL(mt_model_n_params(m), params);
    mt_model_destroy(&m);

    m = build("allcnn", (mt_shape){3, 32, 32});
    MT_TEST_OK(mt_model_group_layers(m));
    CU_ASSERT_EQUAL(m->n_ops, 10); /* 9 blocks (the last with the gap), flatten */
    CU_ASSERT_EQUAL(m->ops[8]->out.c, 10);
    CU_ASSERT_EQUAL(m->ops[8]->out.h, 1);
    mt_model_destroy(&m);
}

int main(void)
{
    const mt_test_case tests[] = {
        {"net shapes, parameters, names", test_shapes_and_params},
        {"partition: valid and optimal (brute force, 3 stages)", test_partition},
        {"layer grouping", test_group_layers},
    };
    return mt_test_main("models", tests, 3);
}
