/*
 * conv2d.c - 2-D convolution, NCHW, weight [out][in][k][k], bias [out], any
 * kernel size, stride and zero padding. The batch computations live in the
 * kernels room (mt_conv_forward, mt_conv_backward_data,
 * mt_conv_backward_weights: im2col in cache-sized chunks on the FMA micro-
 * kernel); sample i's results depend only on its own data, the weight
 * gradient's summation order only on n.
 */
#include <math.h>
#include <string.h>

#include "op_impl.h"

typedef struct {
    mt_conv_geom g;
    int out_c;
    mt_scratch ws; /* packed weights, column chunks, gradient partials */
    float *parts;  /* vjp_w_part: the blocks' partials so far */
    size_t parts_cap; /* floats allocated at parts */
    int parts_blocks; /* blocks in parts */
} conv_priv;

static mt_status conv_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    conv_priv *p = op->priv;
    size_t n_w = (size_t)p->out_c * mt_conv_rows(&p->g);

    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
    MT_CHECK(mt_conv_forward(&p->g, p->out_c, w, w + n_w, n, x, y, &p->ws));
    return MT_OK;
}

static mt_status conv_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dx)
{
    conv_priv *p = op->priv;

    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, dy, dx, dx));
    MT_CHECK(mt_conv_backward_data(&p->g, p->out_c, w, n, dy, dx, &p->ws));
    return MT_OK;
}

static mt_status conv_vjp_w(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dw)
{
    conv_priv *p = op->priv;
    size_t n_w = (size_t)p->out_c * mt_conv_rows(&p->g);

    MT_CHECK(mt_op_check_args(op, w, n, x, dy, dw));
    if (!dw)
        return MT_FAIL(MT_ERR_ARG, "conv2d op '%s': NULL weight gradient", op->name);
    MT_CHECK(mt_conv_backward_weights(&p->g, p->out_c, n, x, dy, dw, dw + n_w, &p->ws));
    return MT_OK;
}

/* The weight pass's per-block partials are kept across the slices and added
 * in block order at the last one: the one-call pass's bits when the slices
 * are whole MT_BLOCK blocks (but the last). */
static mt_status conv_vjp_w_part(mt_op *op, const float *w, int n, const float *x,
                                 const float *dy, float *dw, int part)
{
    conv_priv *p = op->priv;
    size_t n_w = (size_t)p->out_c * mt_conv_rows(&p->g);
    size_t bf = mt_conv_weight_block_floats(&p->g, p->out_c);
    int nb = (n + MT_BLOCK - 1) / MT_BLOCK;

    MT_CHECK(mt_op_check_args(op, w, n, x, dy, dw));
    if (!dw)
        return MT_FAIL(MT_ERR_ARG, "conv2d op '%s': NULL weight gradient", op->name);
    if (part & MT_PART_FIRST)
        p->parts_blocks = 0;
    if ((size_t)(p->parts_blocks + nb) * bf > p->parts_cap) {
        size_t cap = (size_t)(p->parts_blocks + nb) * bf;
        float *grown;
        MT_CHECK(mt_alloc_checked((void **)&grown, cap * sizeof(float),
                                  "conv2d weight partials"));
        if (p->parts_blocks > 0)
            memcpy(grown, p->parts, (size_t)p->parts_blocks * bf * sizeof(float));
        mt_free(p->parts);
        p->parts = grown, p->parts_cap = cap;
    }
    MT_CHECK(mt_conv_weight_partials(&p->g, p->out_c, n, x, dy,
                                     p->parts + (size_t)p->parts_blocks * bf, &p->ws));
    p->parts_blocks += nb;
    if (part & MT_PART_LAST)
        mt_conv_weight_reduce(&p->g, p->out_c, p->parts_blocks, p->parts, dw, dw + n_w);
    return MT_OK;
}

static mt_status conv_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                            float *vy)
{
    conv_priv *p = op->priv;

    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, vx, vy, vy));
    MT_CHECK(mt_conv_forward(&p->g, p->out_c, w, NULL, n, vx, vy, &p->ws));
    return MT_OK;
}

/* Linear in (W, b): J_w(x) v = V * x + vb, the forward pass at v. */
static mt_status conv_jvp_w(mt_op *op, const float *w, int n, const float *x, const float *vw,
                            float *vy)
{
    (void)w;
    MT_CHECK(conv_forward(op, vw, n, x, vy));
    return MT_OK;
}

/* PyTorch's nn.Conv2d: W and b uniform in +-1/sqrt(in k k), W first. */
static mt_status conv_init(mt_op *op, mt_rng *rng, float *w)
{
    conv_priv *p = op->priv;
    int rows = mt_conv_rows(&p->g);
    float bound = (float)(1.0 / sqrt((double)rows));

    mt_op_fill_uniform(rng, bound, (size_t)p->out_c * rows, w);
    mt_op_fill_uniform(rng, bound, (size_t)p->out_c, w + (size_t)p->out_c * rows);
    return MT_OK;
}

static void conv_destroy(mt_op *op)
{
    conv_priv *p = op->priv;

    if (p) {
        mt_scratch_free(&p->ws);
        mt_free(p->parts);
    }
    mt_op_destroy_plain(op);
}

static const mt_op_vtable conv_vtable = {
    .kind = "conv2d",
    .forward = conv_forward,
    .vjp_x = conv_vjp_x,
    .vjp_w = conv_vjp_w,
    .vjp_w_part = conv_vjp_w_part,
    .jvp_x = conv_jvp_x,
    .jvp_w = conv_jvp_w,
    .init = conv_init,
    .destroy = conv_destroy,
};

mt_status mt_op_conv2d_create(const char *name, mt_shape in, int out_channels, int kernel,
                              int stride, int pad, mt_op **op)
{
    mt_conv_geom g;
    conv_priv *p;

    if (out_channels <= 0)
        return MT_FAIL(MT_ERR_ARG, "conv2d op '%s': %d output channels", name ? name : "",
                       out_channels);
    MT_CHECK(mt_conv_geom_make(in.c, in.h, in.w, kernel, stride, pad, &g));
    mt_shape out = {out_channels, g.oh, g.ow};
    MT_CHECK(mt_op_alloc(&conv_vtable, name, in, out, sizeof(conv_priv), op));
    p = (*op)->priv;
    p->g = g;
    p->out_c = out_channels;
    mt_op_add_tensor(*op, "weight", 4, (const int[]){out_channels, in.c, kernel, kernel});
    mt_op_add_tensor(*op, "bias", 1, (const int[]){out_channels});
    (*op)->flops = 2.0 * out_channels * mt_conv_rows(&g) * mt_conv_cols(&g);
    (*op)->is_affine = 1;
    return MT_OK;
}
