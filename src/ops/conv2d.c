/*
 * conv2d.c - 2-D convolution, NCHW, weight [out][in][k][k], bias [out], any
 * kernel size, stride and zero padding.
 *
 * Per sample: col = im2col(x_i) [in k k][oh ow], y_i = W col + b, computed
 * in chunks of output rows (mt_conv_chunk_rows) so that a chunk of col stays
 * in cache; each chunk is one single-threaded sgemm of a shape fixed by the
 * op. OpenMP over (sample, chunk) for the forward pass, over samples for
 * vjp_x (chunks overlap in dx, so they are added in order).
 * The weight gradient sums per block of MT_BLOCK samples (in sample order,
 * one block per work unit), then adds the block partials in block order:
 * the result depends on n only, not on the thread count.
 */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "op_impl.h"

typedef struct {
    mt_conv_geom g;
    int out_c;
    int chunk;       /* output rows per column-matrix chunk (mt_conv_chunk_rows) */
    mt_scratch col;  /* one column-matrix chunk per thread */
    mt_scratch part; /* per-block partial weight and bias gradients */
} conv_priv;

/* A chunk of the column matrix: output rows [oy0, oy0 + noy), stored with
 * leading dimension ld (its own width, or the sample's when pointwise). */
typedef struct {
    const float *p;
    int ld;
} col_view;

/* Floats in one thread's column chunk. */
static size_t conv_chunk_floats(const conv_priv *p)
{
    return (size_t)mt_conv_rows(&p->g) * p->chunk * p->g.ow;
}

/* Per-thread column chunks (none for pointwise convolutions). */
static mt_status conv_reserve_cols(conv_priv *p, float **cols)
{
    *cols = NULL;
    if (mt_conv_is_pointwise(&p->g))
        return MT_OK;
    MT_CHECK(mt_scratch_reserve(&p->col, sizeof(float) * conv_chunk_floats(p) * mt_kernel_threads(),
                                "conv2d column matrices"));
    *cols = p->col.p;
    return MT_OK;
}

/* Chunk [oy0, oy0 + noy) of sample x_i's column matrix: a view into x_i when
 * pointwise, else im2col into this thread's slice of cols. */
static col_view conv_cols(const conv_priv *p, const float *xi, int oy0, int noy, float *cols)
{
    col_view v = {xi + (size_t)oy0 * p->g.ow, mt_conv_cols(&p->g)};
    float *col;

    if (!cols)
        return v;
    col = cols + conv_chunk_floats(p) * omp_get_thread_num();
    mt_im2col_rows(&p->g, xi, oy0, noy, col);
    v.p = col;
    v.ld = noy * p->g.ow;
    return v;
}

/* y_i = W col(x_i) (+ bias when not NULL); work units are (sample, chunk). */
static mt_status conv_apply(mt_op *op, const float *wt, const float *bias, int n, const float *x,
                            float *y)
{
    conv_priv *p = op->priv;
    int rows = mt_conv_rows(&p->g), cols = mt_conv_cols(&p->g), oc = p->out_c;
    int n_chunks = (p->g.oh + p->chunk - 1) / p->chunk;
    size_t in_sz = mt_shape_size(op->in), out_sz = mt_shape_size(op->out);
    float *colbuf;

    MT_CHECK(conv_reserve_cols(p, &colbuf));
#pragma omp parallel for schedule(static)
    for (int u = 0; u < n * n_chunks; u++) {
        int i = u / n_chunks, oy0 = (u % n_chunks) * p->chunk;
        int noy = p->g.oh - oy0 < p->chunk ? p->g.oh - oy0 : p->chunk, nq = noy * p->g.ow;
        col_view cv = conv_cols(p, x + in_sz * i, oy0, noy, colbuf);
        float *yi = y + out_sz * i + (size_t)oy0 * p->g.ow;

        mt_sgemm(MT_NOTRANS, MT_NOTRANS, oc, nq, rows, 1.0f, wt, rows, cv.p, cv.ld, 0.0f, yi, cols);
        for (int o = 0; bias && o < oc; o++)
            for (int j = 0; j < nq; j++)
                yi[(size_t)o * cols + j] += bias[o];
    }
    return MT_OK;
}

static mt_status conv_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    conv_priv *p = op->priv;
    size_t n_w = (size_t)p->out_c * mt_conv_rows(&p->g);

    MT_CHECK(mt_op_check_args(op, w, n, x, y, y));
    MT_CHECK(conv_apply(op, w, w + n_w, n, x, y));
    return MT_OK;
}

/* dx_i = col2im(W^T dy_i), chunk by chunk in order (chunks overlap in dx). */
static void conv_vjp_sample(const conv_priv *p, const float *w, const float *dyi, float *dxi,
                            float *cols)
{
    int rows = mt_conv_rows(&p->g), n_cols = mt_conv_cols(&p->g), oc = p->out_c;

    if (cols)
        memset(dxi, 0, sizeof(float) * (size_t)p->g.c * p->g.h * p->g.w);
    for (int oy0 = 0; oy0 < p->g.oh; oy0 += p->chunk) {
        int noy = p->g.oh - oy0 < p->chunk ? p->g.oh - oy0 : p->chunk, nq = noy * p->g.ow;
        size_t q0 = (size_t)oy0 * p->g.ow;
        if (!cols) { /* pointwise: dx_i is the column matrix */
            mt_sgemm(MT_TRANS, MT_NOTRANS, rows, nq, oc, 1.0f, w, rows, dyi + q0, n_cols, 0.0f,
                     dxi + q0, n_cols);
            continue;
        }
        float *dcol = cols + conv_chunk_floats(p) * omp_get_thread_num();
        mt_sgemm(MT_TRANS, MT_NOTRANS, rows, nq, oc, 1.0f, w, rows, dyi + q0, n_cols, 0.0f, dcol,
                 nq);
        mt_col2im_rows(&p->g, dcol, oy0, noy, dxi);
    }
}

static mt_status conv_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dx)
{
    conv_priv *p = op->priv;
    size_t in_sz = mt_shape_size(op->in), out_sz = mt_shape_size(op->out);
    float *colbuf;

    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, dy, dx, dx));
    MT_CHECK(conv_reserve_cols(p, &colbuf));
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        conv_vjp_sample(p, w, dy + out_sz * i, dx + in_sz * i, colbuf);
    return MT_OK;
}

/* Partial gradient of samples [i0, i1) into pw [out][rows] and pb [out]:
 * one sgemm per sample and chunk, accumulating in that order. */
static void conv_block_grad(const mt_op *op, int i0, int i1, const float *x, const float *dy,
                            float *cols_buf, float *pw, double *pb)
{
    const conv_priv *p = op->priv;
    int rows = mt_conv_rows(&p->g), cols = mt_conv_cols(&p->g), oc = p->out_c;
    size_t in_sz = mt_shape_size(op->in), out_sz = mt_shape_size(op->out);

    for (int o = 0; o < oc; o++)
        pb[o] = 0.0;
    for (int i = i0; i < i1; i++) {
        const float *dyi = dy + out_sz * i;
        for (int oy0 = 0; oy0 < p->g.oh; oy0 += p->chunk) {
            int noy = p->g.oh - oy0 < p->chunk ? p->g.oh - oy0 : p->chunk, nq = noy * p->g.ow;
            col_view cv = conv_cols(p, x + in_sz * i, oy0, noy, cols_buf);
            float beta = i == i0 && oy0 == 0 ? 0.0f : 1.0f;
            mt_sgemm(MT_NOTRANS, MT_TRANS, oc, rows, nq, 1.0f, dyi + (size_t)oy0 * p->g.ow, cols,
                     cv.p, cv.ld, beta, pw, rows);
        }
        for (int o = 0; o < oc; o++)
            pb[o] += mt_sum_fixed((size_t)cols, dyi + (size_t)o * cols);
    }
}

/* dw[e] = sum of the block partials in block order. */
static void conv_sum_blocks(int n_blocks, size_t n_w, int oc, const float *pw, const double *pb,
                            float *dw)
{
#pragma omp parallel for schedule(static)
    for (size_t e = 0; e < n_w; e++) {
        double s = 0.0;
        for (int b = 0; b < n_blocks; b++)
            s += pw[n_w * b + e];
        dw[e] = (float)s;
    }
    for (int o = 0; o < oc; o++) {
        double s = 0.0;
        for (int b = 0; b < n_blocks; b++)
            s += pb[(size_t)oc * b + o];
        dw[n_w + o] = (float)s;
    }
}

static mt_status conv_vjp_w(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dw)
{
    conv_priv *p = op->priv;
    int oc = p->out_c, n_blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    size_t n_w = (size_t)oc * mt_conv_rows(&p->g);
    float *colbuf, *pw;
    double *pb;

    MT_CHECK(mt_op_check_args(op, w, n, x, dy, dw));
    if (!dw)
        return MT_FAIL(MT_ERR_ARG, "conv2d op '%s': NULL weight gradient", op->name);
    if (n == 0) {
        memset(dw, 0, sizeof(float) * op->n_params);
        return MT_OK;
    }
    MT_CHECK(conv_reserve_cols(p, &colbuf));
    MT_CHECK(mt_scratch_reserve(&p->part, (sizeof(double) * oc + sizeof(float) * n_w) * n_blocks,
                                "conv2d gradient partials"));
    pb = p->part.p;
    pw = (float *)(pb + (size_t)oc * n_blocks);

    /* TODO: with fewer blocks than threads (n <= MT_BLOCK) only one thread
     * works; splitting a block's output rows would spread it. */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_blocks; b++) {
        int i1 = (b + 1) * MT_BLOCK < n ? (b + 1) * MT_BLOCK : n;
        conv_block_grad(op, b * MT_BLOCK, i1, x, dy, colbuf, pw + n_w * b, pb + (size_t)oc * b);
    }
    conv_sum_blocks(n_blocks, n_w, oc, pw, pb, dw);
    return MT_OK;
}

static mt_status conv_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                            float *vy)
{
    (void)x;
    MT_CHECK(mt_op_check_args(op, w, n, vx, vy, vy));
    MT_CHECK(conv_apply(op, w, NULL, n, vx, vy));
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
        mt_scratch_free(&p->col);
        mt_scratch_free(&p->part);
    }
    mt_op_destroy_plain(op);
}

static const mt_op_vtable conv_vtable = {
    .kind = "conv2d",
    .forward = conv_forward,
    .vjp_x = conv_vjp_x,
    .vjp_w = conv_vjp_w,
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
    p->chunk = mt_conv_chunk_rows(&g);
    mt_op_add_tensor(*op, "weight", 4, (const int[]){out_channels, in.c, kernel, kernel});
    mt_op_add_tensor(*op, "bias", 1, (const int[]){out_channels});
    (*op)->flops = 2.0 * out_channels * mt_conv_rows(&g) * mt_conv_cols(&g);
    (*op)->is_affine = 1;
    return MT_OK;
}
