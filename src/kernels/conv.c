/*
 * conv.c - convolution geometry and the im2col/col2im pair (one sample,
 * serial). Column matrix: rows (ci, ki, kj), columns (oy, ox), row-major.
 */
#include <string.h>

#include "mtrain/kernels.h"

mt_status mt_conv_geom_make(int c, int h, int w, int k, int stride, int pad, mt_conv_geom *g)
{
    if (c <= 0 || h <= 0 || w <= 0)
        return MT_FAIL(MT_ERR_ARG, "conv input shape (%d, %d, %d) must be positive", c, h, w);
    if (k <= 0 || stride <= 0 || pad < 0)
        return MT_FAIL(MT_ERR_ARG, "conv kernel %d, stride %d, padding %d out of range", k, stride,
                       pad);
    if (h + 2 * pad < k || w + 2 * pad < k)
        return MT_FAIL(MT_ERR_ARG, "conv kernel %d larger than padded input %dx%d", k, h + 2 * pad,
                       w + 2 * pad);
    g->c = c;
    g->h = h;
    g->w = w;
    g->k = k;
    g->stride = stride;
    g->pad = pad;
    g->oh = (h + 2 * pad - k) / stride + 1;
    g->ow = (w + 2 * pad - k) / stride + 1;
    return MT_OK;
}

/* Output columns [lo, hi) whose input column ox s - p + kj lies inside. */
static void valid_cols(const mt_conv_geom *g, int kj, int *lo, int *hi)
{
    int s = g->stride, first = g->pad - kj, last = g->w - 1 + g->pad - kj;

    *lo = first <= 0 ? 0 : (first + s - 1) / s;
    *hi = last < 0 ? 0 : last / s + 1;
    if (*lo > g->ow)
        *lo = g->ow;
    if (*hi > g->ow)
        *hi = g->ow;
    if (*hi < *lo)
        *hi = *lo;
}

/* One output row oy of column-matrix row (ci, ki, kj). Plain loops: rows
 * are short (ow floats), where library calls cost more than the copy. */
static void im2col_row(const mt_conv_geom *g, const float *xc, int ki, int kj, int oy, int lo,
                       int hi, float *dst)
{
    int s = g->stride, iy = oy * s - g->pad + ki, off = kj - g->pad, ow = g->ow;
    const float *src = xc + (size_t)iy * g->w;

    if (iy < 0 || iy >= g->h) {
        for (int ox = 0; ox < ow; ox++)
            dst[ox] = 0.0f;
        return;
    }
    for (int ox = 0; ox < lo; ox++)
        dst[ox] = 0.0f;
    if (s == 1)
        for (int ox = lo; ox < hi; ox++)
            dst[ox] = src[ox + off];
    else
        for (int ox = lo; ox < hi; ox++)
            dst[ox] = src[ox * s + off];
    for (int ox = hi; ox < ow; ox++)
        dst[ox] = 0.0f;
}

int mt_conv_chunk_rows(const mt_conv_geom *g)
{
    size_t budget = 256 * 1024; /* floats: 1 MiB, half this machine's L2 */
    size_t per_row = (size_t)mt_conv_rows(g) * g->ow;
    size_t n_chunks = (per_row * g->oh + budget - 1) / budget;

    /* Equal chunks (the last may be shorter), at least one output row. */
    if (n_chunks < 1)
        n_chunks = 1;
    if (n_chunks > (size_t)g->oh)
        n_chunks = (size_t)g->oh;
    return (int)(((size_t)g->oh + n_chunks - 1) / n_chunks);
}

void mt_im2col_rows(const mt_conv_geom *g, const float *x, int oy0, int noy, float *col, size_t ldc)
{
    int k = g->k;

    for (int ci = 0; ci < g->c; ci++) {
        const float *xc = x + (size_t)ci * g->h * g->w;
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                float *row = col + ((size_t)(ci * k + ki) * k + kj) * ldc;
                int lo, hi;
                valid_cols(g, kj, &lo, &hi);
                for (int r = 0; r < noy; r++)
                    im2col_row(g, xc, ki, kj, oy0 + r, lo, hi, row + (size_t)r * g->ow);
            }
    }
}

void mt_col2im_rows(const mt_conv_geom *g, const float *col, size_t ldc, int oy0, int noy, float *x)
{
    int k = g->k, s = g->stride;

    for (int ci = 0; ci < g->c; ci++) {
        float *xc = x + (size_t)ci * g->h * g->w;
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const float *row = col + ((size_t)(ci * k + ki) * k + kj) * ldc;
                int lo, hi;
                valid_cols(g, kj, &lo, &hi);
                for (int r = 0; r < noy; r++) {
                    int iy = (oy0 + r) * s - g->pad + ki;
                    if (iy < 0 || iy >= g->h)
                        continue;
                    float *dst = xc + (size_t)iy * g->w;
                    const float *src = row + (size_t)r * g->ow;
                    int off = kj - g->pad;
                    for (int ox = lo; ox < hi; ox++)
                        dst[ox * s + off] += src[ox];
                }
            }
    }
}

void mt_im2col(const mt_conv_geom *g, const float *x, float *col)
{
    mt_im2col_rows(g, x, 0, g->oh, col, (size_t)mt_conv_cols(g));
}

void mt_col2im(const mt_conv_geom *g, const float *col, float *x)
{
    memset(x, 0, sizeof(float) * (size_t)g->c * g->h * g->w);
    mt_col2im_rows(g, col, (size_t)mt_conv_cols(g), 0, g->oh, x);
}
