/*
 * conv_fma.c - a convolution layer's batch computations on the FMA micro-
 * kernel (fma.h), im2col in chunks of output rows (mt_conv_chunk_rows).
 *
 * Shapes, for one sample and one chunk of nq output positions:
 *   col [K][nq] = im2col(x_i), K = c k k;  W [O][K];  y_i, dy_i [O][P]
 *   forward    y_i[:, chunk] = W col + b          (W packed once per call)
 *   data       dcol = W^T dy_i[:, chunk], dx_i += col2im(dcol)
 *   weights    dW += dy_i[:, chunk] col^T,  db += sum over positions
 * Buffers have rows of ldq = round_up(chunk ow, NR) floats, so every tile
 * of NR columns lies inside them; columns past nq only feed outputs that are
 * dropped. Work units are samples (forward, data) or blocks of MT_BLOCK
 * samples (weights: sample order inside a block, block partials added in
 * order), never shaped by the thread count.
 */
#include <omp.h>
#include <string.h>

#include "fma.h"
#include "mtrain/kernels.h"

enum { MR = MT_FMA_MR, NR = MT_FMA_NR, KC = MT_FMA_KC };

/* Sizes shared by the three passes (floats). */
typedef struct {
    int K, O, P, chunk, ldq;
    size_t kp, op; /* K and O rounded up to whole row groups and panels */
    size_t per_thread;
} conv_plan;

static conv_plan make_plan(const mt_conv_geom *g, int out_c)
{
    conv_plan pl;
    size_t step = MR > NR ? MR : NR;

    pl.K = mt_conv_rows(g);
    pl.O = out_c;
    pl.P = mt_conv_cols(g);
    pl.chunk = mt_conv_chunk_rows(g);
    pl.ldq = (int)mt_round_up((size_t)pl.chunk * g->ow, NR);
    pl.kp = mt_round_up(mt_round_up((size_t)pl.K, MR), step);
    pl.op = mt_round_up(mt_round_up((size_t)pl.O, MR), step);
    /* col or dcol [kp][ldq], then [op][ldq] (y or dy chunk, or dy^T panels) */
    pl.per_thread = mt_round_up((pl.kp + pl.op) * pl.ldq, 16);
    return pl;
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

/* y_i[o][q0 + q] = yb[o][q] (+ bias[o]) for q < nq. */
static void copy_out(const conv_plan *pl, const float *yb, const float *bias, int q0, int nq,
                     float *yi)
{
    for (int o = 0; o < pl->O; o++) {
        const float *src = yb + (size_t)o * pl->ldq;
        float *dst = yi + (size_t)o * pl->P + q0;
        if (!bias) {
            memcpy(dst, src, sizeof(float) * nq);
            continue;
        }
        for (int q = 0; q < nq; q++)
            dst[q] = src[q] + bias[o];
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
    int n_chunks = (g->oh + pl.chunk - 1) / pl.chunk;
    size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)out_c * pl.P, shared;
    float *apw;

    if (n <= 0)
        return MT_OK;
    MT_CHECK(reserve(&pl, pl.op * pl.K, ws, &apw, &shared));
    mt_fma_pack(pl.O, pl.K, w, (size_t)pl.K, 1, apw);

#pragma omp parallel for schedule(static)
    for (int u = 0; u < n * n_chunks; u++) {
        int i = u / n_chunks, oy0 = (u % n_chunks) * pl.chunk;
        int noy = g->oh - oy0 < pl.chunk ? g->oh - oy0 : pl.chunk, nq = noy * g->ow;
        float *col = apw + shared + pl.per_thread * omp_get_thread_num();
        float *yb = col + pl.kp * pl.ldq;

        mt_im2col_rows(g, x + in_sz * i, oy0, noy, col, (size_t)pl.ldq);
        product_ab(pl.O, pl.K, apw, col, nq, pl.ldq, yb);
        copy_out(&pl, yb, bias, oy0 * g->ow, nq, y + out_sz * i);
    }
    return MT_OK;
}

/* dx_i = sum over chunks of col2im(W^T dy_i[:, chunk]), chunks in order. */
static void data_sample(const mt_conv_geom *g, const conv_plan *pl, const float *apt,
                        const float *dyi, float *dxi, float *buf)
{
    float *dcol = buf, *dyb = buf + pl->kp * pl->ldq;

    memset(dxi, 0, sizeof(float) * (size_t)g->c * g->h * g->w);
    for (int oy0 = 0; oy0 < g->oh; oy0 += pl->chunk) {
        int noy = g->oh - oy0 < pl->chunk ? g->oh - oy0 : pl->chunk, nq = noy * g->ow;
        for (int o = 0; o < pl->O; o++)
            memcpy(dyb + (size_t)o * pl->ldq, dyi + (size_t)o * pl->P + oy0 * g->ow,
                   sizeof(float) * nq);
        product_ab(pl->K, pl->O, apt, dyb, nq, pl->ldq, dcol);
        mt_col2im_rows(g, dcol, (size_t)pl->ldq, oy0, noy, dxi);
    }
}

mt_status mt_conv_backward_data(const mt_conv_geom *g, int out_c, const float *w, int n,
                                const float *dy, float *dx, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)out_c * pl.P, shared;
    float *apt;

    if (n <= 0)
        return MT_OK;
    MT_CHECK(reserve(&pl, pl.kp * pl.O, ws, &apt, &shared));
    mt_fma_pack(pl.K, pl.O, w, 1, (size_t)pl.K, apt); /* rows of W^T */

#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        data_sample(g, &pl, apt, dy + out_sz * i, dx + in_sz * i,
                    apt + shared + pl.per_thread * omp_get_thread_num());
    return MT_OK;
}

/* bp[p][q][j] = dyi[p NR + j][q0 + q] (0 for channels past O): dy^T in
 * panels of NR channels, for positions q < nq. */
static void pack_dy_panels(const conv_plan *pl, const float *dyi, int q0, int nq, float *bp)
{
    for (size_t p = 0; p < pl->op / NR; p++)
        for (int j = 0; j < NR; j++) {
            int o = (int)p * NR + j;
            float *dst = bp + p * (size_t)nq * NR + j;
            for (int q = 0; q < nq; q++)
                dst[(size_t)q * NR] = o < pl->O ? dyi[(size_t)o * pl->P + q0 + q] : 0.0f;
        }
}

/* pt[kk][o] (+)= col[kk][:nq] . dy[o][:nq] for all (kk, o), tile by tile:
 * pt is [kp][op], so every tile lies inside it and its chains continue
 * across samples and chunks in order. */
static void weights_chunk(const conv_plan *pl, const float *col, const float *bp, int nq, int first,
                          float *pt)
{
    for (size_t g = 0; g < ((size_t)pl->K + MR - 1) / MR; g++)
        for (size_t p = 0; p < pl->op / NR; p++)
            mt_fma_kernel_rows(nq, col + g * MR * pl->ldq, (size_t)pl->ldq, bp + p * nq * NR,
                               pt + g * MR * pl->op + p * NR, pl->op, first);
}

/* Partial gradients of samples [i0, i1) in order into pt [kp][op] (the
 * weights, transposed) and pb [O]. */
static void weights_block(const mt_conv_geom *g, const conv_plan *pl, int i0, int i1,
                          const float *x, const float *dy, float *buf, float *pt, double *pb)
{
    size_t in_sz = (size_t)g->c * g->h * g->w, out_sz = (size_t)pl->O * pl->P;
    float *col = buf, *bp = buf + pl->kp * pl->ldq;

    for (int o = 0; o < pl->O; o++)
        pb[o] = 0.0;
    for (int i = i0; i < i1; i++) {
        const float *dyi = dy + out_sz * i;
        for (int oy0 = 0; oy0 < g->oh; oy0 += pl->chunk) {
            int noy = g->oh - oy0 < pl->chunk ? g->oh - oy0 : pl->chunk, nq = noy * g->ow;
            mt_im2col_rows(g, x + in_sz * i, oy0, noy, col, (size_t)pl->ldq);
            pack_dy_panels(pl, dyi, oy0 * g->ow, nq, bp);
            weights_chunk(pl, col, bp, nq, i == i0 && oy0 == 0, pt);
        }
        for (int o = 0; o < pl->O; o++)
            pb[o] += mt_sum_fixed((size_t)pl->P, dyi + (size_t)o * pl->P);
    }
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
        int i1 = (b + 1) * MT_BLOCK < n ? (b + 1) * MT_BLOCK : n;
        weights_block(g, &pl, b * MT_BLOCK, i1, x, dy,
                      (float *)pb + shared + pl.per_thread * omp_get_thread_num(), pt + n_t * b,
                      pb + (size_t)pl.O * b);
    }

    /* Block partials added in block order (and transposed back). */
#pragma omp parallel for schedule(static)
    for (int o = 0; o < pl.O; o++)
        for (int kk = 0; kk < pl.K; kk++) {
            double s = 0.0;
            for (int b = 0; b < n_blocks; b++)
                s += pt[n_t * b + (size_t)kk * pl.op + o];
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
