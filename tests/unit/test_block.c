/*
 * test_block.c - a layer block (conv, relu, avgpool as one op) equals the
 * chain of its children: forward and vjp bit for bit (the same kernels run
 * in the same order), and its jvp satisfies the adjoint identity
 * <dy, J v> = <J^T dy, v> to 1e-5 relative (two float sums of a few
 * thousand terms each).
 */
#include <math.h>
#include <string.h>

#include "mtrain/op.h"
#include "testutil.h"

enum { N = 5 };

typedef struct {
    mt_op *conv, *relu, *pool, *block;
    float w[3 * 4 * 9 + 4];
} fixture;

static void make(fixture *f)
{
    mt_op *kids[3];
    mt_rng rng = mt_rng_make(3, 4);
    mt_shape in = {3, 8, 8};

    MT_TEST_OK(mt_op_conv2d_create("features.0", in, 4, 3, 1, 1, &f->conv));
    MT_TEST_OK(mt_op_relu_create("features.1", f->conv->out, &f->relu));
    MT_TEST_OK(mt_op_avgpool_create("features.2", f->relu->out, 2, &f->pool));
    MT_TEST_OK(f->conv->vt->init(f->conv, &rng, f->w));
    /* the block takes ownership of copies built the same way */
    MT_TEST_OK(mt_op_conv2d_create("features.0", in, 4, 3, 1, 1, &kids[0]));
    MT_TEST_OK(mt_op_relu_create("features.1", kids[0]->out, &kids[1]));
    MT_TEST_OK(mt_op_avgpool_create("features.2", kids[1]->out, 2, &kids[2]));
    MT_TEST_OK(mt_op_block_create(kids, 3, &f->block));
    CU_ASSERT_PTR_NULL(kids[0]);
}

static void destroy(fixture *f)
{
    mt_op_destroy(&f->conv), mt_op_destroy(&f->relu), mt_op_destroy(&f->pool);
    mt_op_destroy(&f->block);
}

static void test_block_matches_chain(void)
{
    fixture f;
    float x[N * 192], a[N * 256], b[N * 256], y1[N * 64], y2[N * 64], dy[N * 64];
    float da[N * 256], db[N * 256], dx1[N * 192], dx2[N * 192], dw1[112], dw2[112];

    make(&f);
    CU_ASSERT_STRING_EQUAL(f.block->name, "features.0");
    CU_ASSERT_EQUAL(f.block->n_params, f.conv->n_params);
    CU_ASSERT_EQUAL(mt_shape_size(f.block->out), 64);
    mt_test_fill(x, N * 192, -1.0f, 1.0f, 5);
    mt_test_fill(dy, N * 64, -1.0f, 1.0f, 6);
    /* the chain by hand */
    MT_TEST_OK(f.conv->vt->forward(f.conv, f.w, N, x, a));
    MT_TEST_OK(f.relu->vt->forward(f.relu, NULL, N, a, b));
    MT_TEST_OK(f.pool->vt->forward(f.pool, NULL, N, b, y1));
    MT_TEST_OK(f.pool->vt->vjp_x(f.pool, NULL, N, b, dy, db));
    MT_TEST_OK(f.relu->vt->vjp_x(f.relu, NULL, N, a, db, da));
    MT_TEST_OK(f.conv->vt->vjp_x(f.conv, f.w, N, x, da, dx1));
    MT_TEST_OK(f.conv->vt->vjp_w(f.conv, f.w, N, x, da, dw1));
    /* the block */
    MT_TEST_OK(f.block->vt->forward(f.block, f.w, N, x, y2));
    MT_TEST_OK(f.block->vt->vjp_x(f.block, f.w, N, x, dy, dx2));
    MT_TEST_OK(f.block->vt->vjp_w(f.block, f.w, N, x, dy, dw2));
    CU_ASSERT_EQUAL(memcmp(y1, y2, sizeof y1), 0);
    CU_ASSERT_EQUAL(memcmp(dx1, dx2, sizeof dx1), 0);
    CU_ASSERT_EQUAL(memcmp(dw1, dw2, sizeof dw1), 0);
    destroy(&f);
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * b[i];
    return s;
}

static void test_block_adjoint(void)
{
    fixture f;
    float x[N * 192], vx[N * 192], vw[112], dy[N * 64], jv[N * 64], jtx[N * 192], jtw[112];

    make(&f);
    mt_test_fill(x, N * 192, -1.0f, 1.0f, 7);
    mt_test_fill(vx, N * 192, -1.0f, 1.0f, 8);
    mt_test_fill(vw, 112, -1.0f, 1.0f, 9);
    mt_test_fill(dy, N * 64, -1.0f, 1.0f, 10);
    MT_TEST_OK(f.block->vt->jvp_x(f.block, f.w, N, x, vx, jv));
    MT_TEST_OK(f.block->vt->vjp_x(f.block, f.w, N, x, dy, jtx));
    double l = dot(dy, jv, N * 64), r = dot(jtx, vx, N * 192);
    CU_ASSERT(fabs(l - r) <= 1e-5 * (fabs(l) + fabs(r)));
    MT_TEST_OK(f.block->vt->jvp_w(f.block, f.w, N, x, vw, jv));
    MT_TEST_OK(f.block->vt->vjp_w(f.block, f.w, N, x, dy, jtw));
    l = dot(dy, jv, N * 64), r = dot(jtw, vw, 112);
    CU_ASSERT(fabs(l - r) <= 1e-5 * (fabs(l) + fabs(r)));
    destroy(&f);
}

int main(void)
{
    const mt_test_case tests[] = {
        {"block = chain of its ops (bit for bit)", test_block_matches_chain},
        {"block jvp/vjp adjoint identity", test_block_adjoint},
    };
    return mt_test_main("block", tests, 2);
}
