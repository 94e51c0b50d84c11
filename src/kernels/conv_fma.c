/*
 * conv_fma.c - a convolution layer's batch computations on the FMA micro-
 * kernel (fma.h), with im2col in cache-sized chunks.
 *
 * A chunk is either some output rows of one sample (large images) or some
 * whole samples side by side (small ones); its nq columns are output
 * positions. Per chunk, K = c k k, W [O][K]:
 *   forward    col [K][nq] = im2col(x),  y[:, chunk] = W col + b
 *   data       dcol = W^T dy[:, chunk],  dx += col2im(dcol)
 *   weights    dW^T += col dy[:, chunk]^T,  db += sums of dy
 * Every element is one FMA chain whose terms do not depend on which other
 * columns share its chunk, so grouping samples changes no bits: a sample's
 * outputs depend only on its data. The weight gradient's chains run over
 * the samples of a block of MT_BLOCK in order; blocks are added in order.
 * Buffers have rows of ldq = round_up(max chunk width, NR) floats, so every
 * tile of NR columns lies inside them; columns past nq only feed outputs
 * that are dropped.
 */
#include <omp.h>
#include <string.h>

#include "fma.h"
#include "mtrain/kernels.h"

enum { MR = MT_FMA_MR, NR = MT_FMA_NR, KC = MT_FMA_KC };

/* Sizes shared by the three passes (counts of floats). */
typedef struct {
    int K, O, P, ow, oh;
    int rows;      /* output rows per chunk (mt_conv_chunk_rows) */
    int spc;       /* whole samples per chunk (1 when rows < oh) */
    int ldq;       /* buffer row length */
    size_t kp, op; /* K and O rounded up to whole row groups and panels */
    size_t per_thread;
    /* weights pass: 1 reads dy in place against packed col^T panels (cheaper
     * to pack when K < O), 0 reads col in place against packed dy^T */
    int dy_rows;
} conv_plan;

/* One chunk: samples [i0, i0 + ns), output rows [oy0, oy0 + noy) of each. */
typedef struct {
    int i0, ns, oy0, noy, nq;
} conv_chunk;

static conv_plan make_plan(const mt_conv_geom *g, int out_c)
{
    conv_plan pl;
    size_t step = MR > NR ? MR : NR, budget = 256 * 1024; /* as mt_conv_chunk_rows */

    pl.K = mt_conv_rows(g);
    pl.O = out_c;
    pl.P = mt_conv_cols(g);
    pl.ow = g->ow;
    pl.oh = g->oh;
    pl.rows = mt_conv_chunk_rows(g);
    /* Small images: a power of two of whole samples (dividing MT_BLOCK). */
    pl.spc = 1;
    while (pl.rows == pl.oh && pl.spc < MT_BLOCK && (size_t)2 * pl.spc * pl.K * pl.P <= budget)
        pl.spc *= 2;
    pl.ldq = (int)mt_round_up((size_t)pl.spc * pl.rows * pl.ow, NR);
    pl.kp = mt_round_up(mt_round_up((size_t)pl.K, MR), step);
    pl.op = mt_round_up(mt_round_up((size_t)pl.O, MR), step);
    /* col or dcol [kp][ldq], then [op][ldq] (y or dy chunk), then [kp][ldq]
     * (dy^T or col^T panels) */
    pl.per_thread = mt_round_up((2 * pl.kp + pl.op) * pl.ldq, 16);
    pl.dy_rows = pl.K < pl.O;
    return pl;
}

/* Chunks covering samples [a, b), and the c-th of them, in order. */
static int chunk_count(const conv_plan *pl, int a, int b)
{
    int per_sample = (pl->oh + pl->rows - 1) / pl->rows;
    return pl->spc > 1 ? (b - a + pl->spc - 1) / pl->spc : (b - a) * per_sample;
}

static conv_chunk chunk_at(const conv_plan *pl, int a, int b, int c)
{
    int per_sample = (pl->oh + pl->rows - 1) / pl->rows;
    conv_chunk ch;

    if (pl->spc > 1) {
        ch.i0 = a + c * pl->spc;
        ch.ns = b - ch.i0 < pl->spc ? b - ch.i0 : pl->spc;
        ch.oy0 = 0;
        ch.noy = pl->oh;
    } else {
        ch.i0 = a + c / per_sample;
        ch.ns = 1;
        ch.oy0 = (c % per_sample) * pl->rows;
        ch.noy = pl->oh - ch.oy0 < pl->rows ? pl->oh - ch.oy0 : pl->rows;
    }
    ch.nq = ch.ns * ch.noy * pl->ow;
    return ch;
}

/* Reserve shared_floats (rounded to 64 bytes) then the threads' buffers. */
static mt_status reserve(const conv_plan *pl, size_t shared_floats, mt_scratch *ws, float **base,
                         size_t *shared)
{
    *shared = mt_round_up(shared_floats, 16);
    MT_CHECK(mt_scratch_reserve(
        ws, sizeof(float) * (*shared + pl->per_thread * mt_kernel_threads()), "conv2d buffers"));
    *base = ws->p;
    return MT_OK;
}

/* col [K][ldq] = the chunk's column matrix, sample by sample. */
static void chunk_im2col(const mt_conv_geom *g, const conv_plan *pl, const conv_chunk *ch,
                         const float *x, float *col)
{
    size_t in_sz = (size_t)g->c * g->h * g->w, width = (size_t)ch->noy * pl->ow;

    for (int s = 0; s < ch->ns; s++)
        mt_im2col_rows(g, x + in_sz * (ch->i0 + s), ch->oy0, ch->noy, col + width * s,
                       (size_t)pl->ldq);
}

/* Between a chunk buffer b [O][ldq] and the batch array a [n][O][P]:
 * to_batch = 1 writes a = b (+ bias), else b = a. */
static void chunk_transfer(const conv_plan *pl, const conv_chunk *ch, const float *bias,
                           int to_batch, float *b, float *a)
{
    size_t width = (size_t)ch->noy * pl->ow, out_sz = (size_t)pl->O * pl->P;

    for (int s = 0; s < ch->ns; s++)
        for (int o = 0; o < pl->O; o++) {
            float *bo = b + (size_t)o * pl->ldq + width * s;
            float *ao = a + out_sz * (ch->i0 + s) + (size_t)o * pl->P + (size_t)ch->oy0 * pl->ow;
            if (!to_batch)
                memcpy(bo, ao, sizeof(float) * width);
            else if (!bias)
                memcpy(ao, bo, sizeof(float) * width);
            else
                for (size_t q = 0; q < width; q++)
                    ao[q] = bo[q] + bias[o];
        }
}

/* c[rows][:nq] = A b for A packed by mt_fma_pack (rows x K) and b [K][ldq],
 * NR columns at a time; c has ldq columns and whole row groups. */
static void product_ab(int rows, int K, const float *ap, const float *b, int nq, int ldq, float *c)
{
    int ng = (rows + MR - 1) / MR;

    for (int k0 = 0; k0 < K; k0 += KC) {
        int kc = K - k0 < KC ? K - k0 : KC;
        for (int j = 0; j < nq; j += NR)
            for (int g = 0; g < ng; g++)
                mt_fma_kernel_ab(kc, ap + ((size_t)g * K + k0) * MR, b + (size_t)k0 * ldq + j,
                                 (size_t)ldq, c + (size_t)g * MR * ldq + j, (size_t)ldq, k0 == 0);
    }
}

mt_status mt_conv_forward(const mt_conv_geom *g, int out_c, const float *w, const float *bias,
                          int n, const float *x, float *y, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    int n_chunks = chunk_count(&pl, 0, n);
    size_t shared;
    float *apw;

    if (n <= 0)
        return MT_OK;
    MT_CHECK(reserve(&pl, pl.op * pl.K, ws, &apw, &shared));
    mt_fma_pack(pl.O, pl.K, w, (size_t)pl.K, 1, apw);

#pragma omp parallel for schedule(static)
    for (int c = 0; c < n_chunks; c++) {
        conv_chunk ch = chunk_at(&pl, 0, n, c);
        float *col = apw + shared + pl.per_thread * omp_get_thread_num();
        float *yb = col + pl.kp * pl.ldq;

        chunk_im2col(g, &pl, &ch, x, col);
        product_ab(pl.O, pl.K, apw, col, ch.nq, pl.ldq, yb);
        chunk_transfer(&pl, &ch, bias, 1, yb, y);
    }
    return MT_OK;
}

/* dx of samples [a, b) = col2im(W^T dy) chunk by chunk, in order (row
 * chunks of one sample overlap in dx). */
static void data_unit(const mt_conv_geom *g, const conv_plan *pl, const float *apt, int a, int b,
                      const float *dy, float *dx, float *buf)
{
    size_t in_sz = (size_t)g->c * g->h * g->w;
    float *dcol = buf, *dyb = buf + pl->kp * pl->ldq;

    memset(dx + in_sz * a, 0, sizeof(float) * in_sz * (b - a));
    for (int c = 0; c < chunk_count(pl, a, b); c++) {
        conv_chunk ch = chunk_at(pl, a, b, c);
        size_t width = (size_t)ch.noy * pl->ow;
        chunk_transfer(pl, &ch, NULL, 0, dyb, (float *)dy);
        product_ab(pl->K, pl->O, apt, dyb, ch.nq, pl->ldq, dcol);
        for (int s = 0; s < ch.ns; s++)
            mt_col2im_rows(g, dcol + width * s, (size_t)pl->ldq, ch.oy0, ch.noy,
                           dx + in_sz * (ch.i0 + s));
    }
}

mt_status mt_conv_backward_data(const mt_conv_geom *g, int out_c, const float *w, int n,
                                const float *dy, float *dx, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    int n_units = (n + pl.spc - 1) / pl.spc;
    size_t shared;
    float *apt;

    if (n <= 0)
        return MT_OK;
    MT_CHECK(reserve(&pl, pl.kp * pl.O, ws, &apt, &shared));
    mt_fma_pack(pl.K, pl.O, w, 1, (size_t)pl.K, apt); /* rows of W^T */

    /* A unit is one chunk of whole samples, or one sample's row chunks. */
#pragma omp parallel for schedule(static)
    for (int u = 0; u < n_units; u++) {
        int b = (u + 1) * pl.spc < n ? (u + 1) * pl.spc : n;
        data_unit(g, &pl, apt, u * pl.spc, b, dy, dx,
                  apt + shared + pl.per_thread * omp_get_thread_num());
    }
    return MT_OK;
}

/* bp[p][q][j] = dy of channel p NR + j at the chunk's column q (0 for
 * channels past O): dy^T in panels of NR channels, written contiguously. */
static void pack_dy_panels(const conv_plan *pl, const conv_chunk *ch, const float *dy, float *bp)
{
    size_t width = (size_t)ch->noy * pl->ow, out_sz = (size_t)pl->O * pl->P;

    for (size_t p = 0; p < pl->op / NR; p++)
        for (int s = 0; s < ch->ns; s++) {
            const float *src =
                dy + out_sz * (ch->i0 + s) + (size_t)p * NR * pl->P + (size_t)ch->oy0 * pl->ow;
            float *dst = bp + (p * (size_t)ch->nq + width * s) * NR;
            int n_o = pl->O - (int)p * NR < NR ? pl->O - (int)p * NR : NR;
            for (size_t q = 0; q < width; q++) {
                for (int j = 0; j < n_o; j++)
                    dst[q * NR + j] = src[(size_t)j * pl->P + q];
                for (int j = n_o; j < NR; j++)
                    dst[q * NR + j] = 0.0f;
            }
        }
}

/* bp[p][q][j] = col[p NR + j][q] (0 past row K): col^T in panels. */
static void pack_col_panels(const conv_plan *pl, const float *col, int nq, float *bp)
{
    for (int p = 0; p < (pl->K + NR - 1) / NR; p++) {
        float *dst = bp + (size_t)p * nq * NR;
        int n_k = pl->K - p * NR < NR ? pl->K - p * NR : NR;
        for (int q = 0; q < nq; q++) {
            for (int j = 0; j < n_k; j++)
                dst[(size_t)q * NR + j] = col[(size_t)(p * NR + j) * pl->ldq + q];
            for (int j = n_k; j < NR; j++)
                dst[(size_t)q * NR + j] = 0.0f;
        }
    }
}

/* Row stride of the weight partials: [kp][op] (col rows) or [op][kn] with
 * kn = K rounded up to panels (dy rows). */
static size_t partial_ld(const conv_plan *pl)
{
    return pl->dy_rows ? mt_round_up((size_t)pl->K, NR) : pl->op;
}

/* The chunk's contribution to the weight partials pt, tile by tile; the
 * chains continue across chunks in order (first = 1 starts them):
 *   dy_rows: pt[o][kk] (+)= dy[o][:nq] . col[kk][:nq]
 *   else:    pt[kk][o] (+)= col[kk][:nq] . dy[o][:nq] */
static void weights_chunk(const mt_conv_geom *g, const conv_plan *pl, const conv_chunk *ch,
                          const float *x, const float *dy, float *buf, int first, float *pt)
{
    float *col = buf, *dyb = col + pl->kp * pl->ldq, *bp = dyb + pl->op * pl->ldq;
    size_t ld = partial_ld(pl), nq = (size_t)ch->nq;
    const float *rows = col;
    size_t n_groups = ((size_t)pl->K + MR - 1) / MR, n_panels = pl->op / NR;

    chunk_im2col(g, pl, ch, x, col);
    if (pl->dy_rows) {
        chunk_transfer(pl, ch, NULL, 0, dyb, (float *)dy);
        pack_col_panels(pl, col, ch->nq, bp);
        rows = dyb;
        n_groups = ((size_t)pl->O + MR - 1) / MR;
        n_panels = ld / NR;
    } else {
        pack_dy_panels(pl, ch, dy, bp);
    }
    for (size_t gr = 0; gr < n_groups; gr++)
        for (size_t p = 0; p < n_panels; p++)
            mt_fma_kernel_rows(ch->nq, rows + gr * MR * pl->ldq, (size_t)pl->ldq, bp + p * nq * NR,
                               pt + gr * MR * ld + p * NR, ld, first);
}

/* Partial gradients of samples [a, b) in order into pt and pb [O]. */
static void weights_block(const mt_conv_geom *g, const conv_plan *pl, int a, int b, const float *x,
                          const float *dy, float *buf, float *pt, double *pb)
{
    size_t out_sz = (size_t)pl->O * pl->P;

    for (int c = 0; c < chunk_count(pl, a, b); c++) {
        conv_chunk ch = chunk_at(pl, a, b, c);
        weights_chunk(g, pl, &ch, x, dy, buf, c == 0, pt);
    }
    for (int o = 0; o < pl->O; o++)
        pb[o] = 0.0;
    for (int i = a; i < b; i++)
        for (int o = 0; o < pl->O; o++)
            pb[o] += mt_sum_fixed((size_t)pl->P, dy + out_sz * i + (size_t)o * pl->P);
}

mt_status mt_conv_backward_weights(const mt_conv_geom *g, int out_c, int n, const float *x,
                                   const float *dy, float *dw, float *db, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    int n_blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    size_t n_t = pl.kp * pl.op, shared;
    float *pt;
    double *pb;

    /* per-block partials: biases in double, then transposed weights */
    MT_CHECK(reserve(&pl, (2 * (size_t)pl.O + n_t) * n_blocks, ws, &pt, &shared));
    pb = (double *)pt;
    pt += 2 * (size_t)pl.O * n_blocks;

    /* TODO: with fewer blocks than threads (n <= MT_BLOCK) only one thread
     * works; splitting a block's weight tiles would spread it. */
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n_blocks; b++) {
        int end = (b + 1) * MT_BLOCK < n ? (b + 1) * MT_BLOCK : n;
        weights_block(g, &pl, b * MT_BLOCK, end, x, dy,
                      (float *)pb + shared + pl.per_thread * omp_get_thread_num(), pt + n_t * b,
                      pb + (size_t)pl.O * b);
    }

    /* Block partials added in block order (transposed back if need be). */
    size_t ld = partial_ld(&pl), so = pl.dy_rows ? ld : 1, sk = pl.dy_rows ? 1 : ld;
#pragma omp parallel for schedule(static)
    for (int o = 0; o < pl.O; o++)
        for (int kk = 0; kk < pl.K; kk++) {
            double s = 0.0;
            for (int b = 0; b < n_blocks; b++)
                s += pt[n_t * b + so * o + sk * kk];
            dw[(size_t)o * pl.K + kk] = (float)s;
        }
    for (int o = 0; o < pl.O; o++) {
        double s = 0.0;
        for (int b = 0; b < n_blocks; b++)
            s += pb[(size_t)pl.O * b + o];
        db[o] = (float)s;
    }
    return MT_OK;
}
