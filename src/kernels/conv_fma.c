/*
 * conv_fma.c - a convolution layer's batch computations on the FMA micro-
 * kernel (fma.h), with im2col written straight into the kernel's operands.
 *
 * Every sample's input is first copied into a zero-bordered buffer xp
 * [c][hp][wp] (hp = h + 2 pad, wp = w + 2 pad), so that any entry of the
 * column matrix is one load without bounds checks:
 *   col[k][q] = xp[base(q) + off(k)],  off(k) = (ci hp + ki) wp + kj,
 *   base(q) = s xsz + oy stride wp + ox stride
 * for k = (ci, ki, kj) and output position q = (sample s of the unit, oy,
 * ox). K = c k k, W [O][K], P = oh ow positions per sample.
 *
 *   forward  per panel of NR positions: the panel col[K][NR] is packed
 *            straight from xp (runs of VW positions are one contiguous or
 *            stride-2 load, else a gather), then y[:, panel] = W col + b
 *   data     stride-1 layers with as many inputs as outputs: dx is the
 *            forward pass of dy (zero-padded by k - 1 - pad) with the
 *            flipped, transposed kernel; others, per panel: dcol[K][NR] =
 *            W^T dy[:, panel], added into a zero-bordered dx buffer at
 *            base(q) + off(k) (the border is dropped)
 *   weights  per block of MT_BLOCK samples, chunk by chunk of positions:
 *            dW^T += col dy^T with col's rows read in place (or dW += dy
 *            col^T when K < O); blocks are added in order in double
 *
 * Order of every sum, fixed by the geometry (and n for the weights only):
 * y and dcol entries are single FMA chains over k (resp. o) in order, and
 * so is a dx entry of the first kind of data pass (over o, ki, kj); else a
 * dx entry receives its terms panel by panel, k by k, column by column,
 * where panels never straddle two samples, or (samples smaller than a
 * panel, grouped `spc` to a unit) sample by sample from a whole-unit dcol,
 * k by k, position by position; a weight-gradient entry is one chain over
 * the block's samples and positions in order (with few output channels: VW
 * chains, one per column index mod VW, added in a fixed tree at the end).
 * So a sample's outputs depend only on its own data, whatever the batch,
 * its split or the thread count.
 * Units go to threads dynamically (a thread slowed by another process on
 * the core does not hold the others up): no result depends on which
 * thread ran a unit.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "fma.h"
#include "mtrain/kernels.h"

enum { MR = MT_FMA_MR, NR = MT_FMA_NR, VW = MT_FMA_VW, NV = NR / VW, KC = MT_FMA_KC };
enum { SLACK = 64 };                   /* zero floats after an xp buffer */
enum { BUDGET = 256 * 1024 };          /* floats of a weights-pass chunk: 1 MiB */
enum { UNIT_COLS = 128 };              /* small samples are grouped to >= this */
enum { STREAM_MIN = 1 << 22 };         /* floats: outputs this large bypass the cache */

/* Sizes shared by the three passes (counts of floats unless said). */
typedef struct {
    const mt_conv_geom *g;
    int K, O, P, st;
    int hp, wp;
    size_t xsz;       /* c hp wp: one padded sample */
    int spc;          /* samples per unit of the forward and data passes */
    size_t kp, op;    /* K and O rounded up to whole row groups and panels */
    int fmr;          /* rows per group of the forward pass: MR or MR_SMALL */
    int stream;       /* forward: write y with streaming stores (large output) */
    int *off;         /* [K] offsets off(k), in the workspace */
    /* weights pass: a chunk is `wrows` output rows of one sample (wspc = 1)
     * or wspc whole samples; its columns are ldq floats apart */
    int wrows, wspc, ldq;
    int dy_rows;      /* weights pass: dy rows against col^T panels (K < O) */
    int lanes;        /* weights pass: VW-lane dot products (few channels) */
} conv_plan;

/* How one panel's NR columns map to xp and to the batch arrays. */
typedef struct {
    int w;               /* valid columns; the others repeat column 0 */
    int kind[NV];        /* per run of VW columns: CONTIG, STRIDE2 or GATHER */
    int ycont[NV];       /* per run: its ybase entries are consecutive */
    int base[NR];        /* base(q) of each column */
    size_t ybase[NR];    /* offset of (sample, position) in [n][O][P] */
} panel_map;

enum { CONTIG, STRIDE2, GATHER };

static conv_plan make_plan(const mt_conv_geom *g, int out_c)
{
    conv_plan pl = {0};
    size_t step = MR > NR ? MR : NR;

    pl.g = g;
    pl.K = mt_conv_rows(g);
    pl.O = out_c;
    pl.P = mt_conv_cols(g);
    pl.st = g->stride;
    pl.hp = g->h + 2 * g->pad;
    pl.wp = g->w + 2 * g->pad;
    pl.xsz = (size_t)g->c * pl.hp * pl.wp;
    pl.spc = 1;
    while (pl.spc * pl.P < UNIT_COLS && pl.spc < MT_BLOCK)
        pl.spc *= 2;
    pl.kp = mt_round_up(mt_round_up((size_t)pl.K, MR), step);
    pl.op = mt_round_up(mt_round_up((size_t)pl.O, MR), step);
    pl.fmr = mt_round_up((size_t)pl.O, MT_FMA_MR_SMALL) < mt_round_up((size_t)pl.O, MR)
                 ? MT_FMA_MR_SMALL
                 : MR;
    pl.wrows = mt_conv_chunk_rows(g);
    pl.wspc = 1;
    while (pl.wrows == g->oh && pl.wspc < MT_BLOCK &&
           (size_t)2 * pl.wspc * pl.K * pl.P <= BUDGET)
        pl.wspc *= 2;
    /* + VW: rows of col not a multiple of 4 KiB apart (cache sets) */
    pl.ldq = (int)mt_round_up((size_t)pl.wspc * pl.wrows * g->ow, NR) + VW;
    /* lanes where dy^T panels would be half padding and rows are long
     * (measured: no gain for O = 20 or small images) */
    pl.lanes = pl.O <= NR / 2 && pl.P >= 256;
    pl.stream = 0; /* set by the passes that write a large array */
    pl.dy_rows = !pl.lanes && pl.K < pl.O;
    return pl;
}

/* off(k) for every row of the column matrix. */
static void fill_offsets(const conv_plan *pl, int *off)
{
    int k = pl->g->k;

    for (int ci = 0; ci < pl->g->c; ci++)
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++)
                off[(ci * k + ki) * k + kj] = (ci * pl->hp + ki) * pl->wp + kj;
}

/* xp = ns samples of x with zero borders (and SLACK zeros after); only the
 * border is cleared, the interior is copied over. */
static void fill_padded(const conv_plan *pl, const float *x, int ns, float *xp)
{
    const mt_conv_geom *g = pl->g;
    size_t in_sz = (size_t)g->c * g->h * g->w, top = (size_t)g->pad * pl->wp;
    int right = pl->wp - g->pad - g->w;

    for (int s = 0; s < ns; s++)
        for (int ci = 0; ci < g->c; ci++) {
            float *xc = xp + s * pl->xsz + (size_t)ci * pl->hp * pl->wp;
            const float *src = x + s * in_sz + (size_t)ci * g->h * g->w;
            memset(xc, 0, sizeof(float) * top);
            for (int iy = 0; iy < g->h; iy++) {
                float *row = xc + top + (size_t)iy * pl->wp;
                memset(row, 0, sizeof(float) * g->pad);
                memcpy(row + g->pad, src + (size_t)iy * g->w, sizeof(float) * g->w);
                memset(row + g->pad + g->w, 0, sizeof(float) * right);
            }
            memset(xc + top + (size_t)g->h * pl->wp, 0,
                   sizeof(float) * (size_t)(pl->hp - g->h - g->pad) * pl->wp);
        }
    memset(xp + ns * pl->xsz, 0, sizeof(float) * SLACK);
}

/* dst[0 .. n) = src[0 .. n), streaming the 64-byte aligned whole vectors
 * when `stream` (a large result that no cache would keep). */
static void copy_row(const float *src, int n, int stream, float *dst)
{
    int i = 0;

#if defined(__AVX512F__)
    if (stream && ((uintptr_t)dst & 63) == 0) {
        for (; i + VW <= n; i += VW)
            _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
    }
#endif
    memcpy(dst + i, src + i, sizeof(float) * (size_t)(n - i));
}

/* dx of ns samples = the interior of the zero-bordered buffer dxp. */
static void copy_interior(const conv_plan *pl, const float *dxp, int ns, float *dx)
{
    const mt_conv_geom *g = pl->g;
    size_t in_sz = (size_t)g->c * g->h * g->w;

    for (int s = 0; s < ns; s++)
        for (int ci = 0; ci < g->c; ci++)
            for (int iy = 0; iy < g->h; iy++)
                copy_row(dxp + s * pl->xsz + ((size_t)ci * pl->hp + iy + g->pad) * pl->wp + g->pad,
                         g->w, pl->stream, dx + s * in_sz + ((size_t)ci * g->h + iy) * g->w);
#if defined(__AVX512F__)
    if (pl->stream)
        _mm_sfence();
#endif
}

/* Panel p of a unit of ns samples starting at sample i0. */
static void map_panel(const conv_plan *pl, int i0, int ns, int p, panel_map *m)
{
    int nq = ns * pl->P, ow = pl->g->ow;

    m->w = nq - p * NR < NR ? nq - p * NR : NR;
    for (int j = 0; j < NR; j++) {
        int q = j < m->w ? p * NR + j : p * NR, s = q / pl->P, pos = q % pl->P;
        m->base[j] = (int)(s * pl->xsz) + (pos / ow) * pl->st * pl->wp + (pos % ow) * pl->st;
        m->ybase[j] = (size_t)(i0 + s) * pl->O * pl->P + pos;
    }
    for (int h = 0; h < NV; h++) {
        const int *b = m->base + h * VW;
        int d = b[1] - b[0], run = (h + 1) * VW <= m->w && (d == 1 || d == 2);
        for (int j = 2; run && j < VW; j++)
            run = b[j] - b[j - 1] == d;
        m->kind[h] = !run ? GATHER : d == 1 ? CONTIG : STRIDE2;
        m->ycont[h] = (h + 1) * VW <= m->w &&
                      m->ybase[h * VW + VW - 1] == m->ybase[h * VW] + VW - 1;
    }
}

#if defined(__AVX512F__)
/* dst[j] = src[base[j]] for j < VW (VW = 16). */
static inline void load_run(int kind, const float *src, const int *base, float *dst)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);

    if (kind == CONTIG) {
        _mm512_storeu_ps(dst, _mm512_loadu_ps(src + base[0]));
    } else if (kind == STRIDE2) {
        __m512 lo = _mm512_loadu_ps(src + base[0]), hi = _mm512_loadu_ps(src + base[0] + 16);
        _mm512_storeu_ps(dst, _mm512_permutex2var_ps(lo, even, hi));
    } else {
        _mm512_storeu_ps(dst, _mm512_i32gather_ps(_mm512_loadu_si512(base), src, 4));
    }
}

/* dst[base[j]] += src[j] for j < VW, in one step per entry. */
static inline void add_run(int kind, const float *src, const int *base, float *dst)
{
    if (kind == CONTIG) {
        float *d = dst + base[0];
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), _mm512_loadu_ps(src)));
    } else if (kind == STRIDE2) {
        const __m512i lo_i = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        const __m512i hi_i = _mm512_add_epi32(lo_i, _mm512_set1_epi32(8));
        __m512 v = _mm512_loadu_ps(src);
        float *d = dst + base[0];
        __m512 lo = _mm512_loadu_ps(d), hi = _mm512_loadu_ps(d + 16);
        lo = _mm512_mask_add_ps(lo, 0x5555, lo, _mm512_permutexvar_ps(lo_i, v));
        hi = _mm512_mask_add_ps(hi, 0x5555, hi, _mm512_permutexvar_ps(hi_i, v));
        _mm512_storeu_ps(d, lo);
        _mm512_storeu_ps(d + 16, hi);
    } else {
        for (int j = 0; j < VW; j++)
            dst[base[j]] += src[j];
    }
}
#else
static inline void load_run(int kind, const float *src, const int *base, float *dst)
{
    (void)kind;
    for (int j = 0; j < VW; j++)
        dst[j] = src[base[j]];
}

static inline void add_run(int kind, const float *src, const int *base, float *dst)
{
    (void)kind;
    for (int j = 0; j < VW; j++)
        dst[base[j]] += src[j];
}
#endif

/* dst[j] = src[rows[j]] for j < n (n may exceed VW or be <= 0), 0 for
 * n <= j < VW. */
static inline void gather_rows(const float *src, const int *rows, int n, float *dst)
{
#if defined(__AVX512F__)
    if (n >= VW) {
        _mm512_storeu_ps(dst, _mm512_i32gather_ps(_mm512_loadu_si512(rows), src, 4));
        return;
    }
#endif
    for (int j = 0; j < VW; j++)
        dst[j] = j < n ? src[rows[j]] : 0.0f;
}

/* sum_{i < n} x[i] in double, in 32 lanes (i mod 32) added in a fixed
 * tree: an order fixed by n. */
static double sum_lanes(size_t n, const float *x)
{
    double acc[32] = {0};
    size_t i = 0;

#if defined(__AVX512F__)
    __m512d v[4] = {_mm512_setzero_pd(), _mm512_setzero_pd(), _mm512_setzero_pd(),
                    _mm512_setzero_pd()};
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++)
            v[l] = _mm512_add_pd(v[l], _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8 * l)));
    for (int l = 0; l < 4; l++)
        _mm512_storeu_pd(acc + 8 * l, v[l]);
#endif
    for (; i < n; i++)
        acc[i % 32] += x[i];
    for (int w = 16; w >= 1; w /= 2)
        for (int l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* ---- forward ------------------------------------------------------------------ */

/* bp[k - k0][j] = col[k][column j of the panel] for k0 <= k < k1, straight
 * from xp. */
static void pack_panel(const conv_plan *pl, const panel_map *m, const float *xp, int k0, int k1,
                       float *bp)
{
    for (int k = k0; k < k1; k++) {
        const float *src = xp + pl->off[k];
        for (int h = 0; h < NV; h++)
            load_run(m->kind[h], src, m->base + h * VW, bp + (size_t)(k - k0) * NR + h * VW);
    }
}

/* dst[j] = src[j] + b (b_on) or src[j], for one run of VW columns. */
static inline void store_run(const float *src, float b, int b_on, float *dst)
{
#if defined(__AVX512F__)
    __m512 v = _mm512_loadu_ps(src);
    _mm512_storeu_ps(dst, b_on ? _mm512_add_ps(v, _mm512_set1_ps(b)) : v);
#else
    for (int j = 0; j < VW; j++)
        dst[j] = b_on ? src[j] + b : src[j];
#endif
}

/* y[sample][o][position] = ct[o][j] (+ bias[o]) for the panel's columns;
 * whole aligned runs with streaming stores when pl->stream. */
static void store_panel(const conv_plan *pl, const panel_map *m, const float *ct,
                        const float *bias, float *y)
{
    for (int o = 0; o < pl->O; o++) {
        const float *src = ct + (size_t)o * NR;
        float *yo = y + (size_t)o * pl->P, b = bias ? bias[o] : 0.0f;
        for (int h = 0; h < NV; h++) {
            float *dst = yo + m->ybase[h * VW];
#if defined(__AVX512F__)
            if (m->ycont[h] && pl->stream && ((uintptr_t)dst & 63) == 0) {
                __m512 v = _mm512_loadu_ps(src + h * VW);
                _mm512_stream_ps(dst, bias ? _mm512_add_ps(v, _mm512_set1_ps(b)) : v);
                continue;
            }
#endif
            if (m->ycont[h]) {
                store_run(src + h * VW, b, bias != NULL, dst);
                continue;
            }
            for (int j = h * VW; j < (h + 1) * VW && j < m->w; j++)
                yo[m->ybase[j]] = bias ? src[j] + b : src[j];
        }
    }
}

/* Forward pass of the ns samples from i0: panel by panel, the panel packed
 * KC rows at a time (kept in L1 while every row group uses it). */
static void forward_unit(const conv_plan *pl, const float *apw, const float *bias, int i0, int ns,
                         const float *x, float *y, float *buf)
{
    size_t in_sz = (size_t)pl->g->c * pl->g->h * pl->g->w;
    float *bp = buf, *ct = bp + (size_t)KC * NR, *xp = ct + pl->op * NR;
    int n_panels = (ns * pl->P + NR - 1) / NR, mr = pl->fmr, ng = (pl->O + mr - 1) / mr;
    panel_map m;

    fill_padded(pl, x + in_sz * i0, ns, xp);
    for (int p = 0; p < n_panels; p++) {
        map_panel(pl, i0, ns, p, &m);
        for (int k0 = 0; k0 < pl->K; k0 += KC) {
            int kc = pl->K - k0 < KC ? pl->K - k0 : KC;
            pack_panel(pl, &m, xp, k0, k0 + kc, bp);
            for (int gr = 0; gr < ng; gr++) {
                const float *ag = apw + ((size_t)gr * pl->K + k0) * mr;
                float *cg = ct + (size_t)gr * mr * NR;
                if (mr == MR)
                    mt_fma_kernel_ab(kc, ag, bp, NR, cg, NR, k0 == 0);
                else
                    mt_fma_kernel_ab_small(kc, ag, bp, NR, cg, NR, k0 == 0);
            }
        }
        store_panel(pl, &m, ct, bias, y);
    }
#if defined(__AVX512F__)
    if (pl->stream)
        _mm_sfence(); /* this thread's streaming stores reach memory in order */
#endif
}

/* Per-thread floats of the forward and data passes. */
static size_t unit_floats(const conv_plan *pl)
{
    size_t xp = mt_round_up(pl->spc * pl->xsz + SLACK, 16);
    size_t dcol = pl->spc > 1 ? pl->kp * mt_round_up((size_t)pl->spc * pl->P, NR) : 0;
    size_t panel = pl->kp > KC ? pl->kp : KC; /* forward: KC rows; data: dcol tile */
    return panel * NR + pl->op * NR + xp + dcol;
}

/* Workspace: shared_floats (rounded to 64 bytes), the offsets, then the
 * threads' buffers of per_thread floats each. */
static mt_status reserve(conv_plan *pl, size_t shared_floats, size_t per_thread, mt_scratch *ws,
                         float **shared, float **threads)
{
    size_t sh = mt_round_up(shared_floats, 16), offs = mt_round_up((size_t)pl->K, 16);

    per_thread = mt_round_up(per_thread, 16);
    MT_CHECK(mt_scratch_reserve(
        ws, sizeof(float) * (sh + offs + per_thread * mt_kernel_threads()), "conv2d buffers"));
    *shared = ws->p;
    pl->off = (int *)(*shared + sh);
    *threads = *shared + sh + offs;
    fill_offsets(pl, pl->off);
    return MT_OK;
}

mt_status mt_conv_forward(const mt_conv_geom *g, int out_c, const float *w, const float *bias,
                          int n, const float *x, float *y, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    int n_units = (n + pl.spc - 1) / pl.spc;
    size_t per = mt_round_up(unit_floats(&pl), 16);
    float *apw, *bufs;

    if (n <= 0)
        return MT_OK;
    MT_CHECK(reserve(&pl, pl.op * pl.K, per, ws, &apw, &bufs));
    mt_fma_pack_rows(pl.fmr, pl.O, pl.K, w, (size_t)pl.K, 1, apw);
    pl.stream = (size_t)n * pl.O * pl.P >= STREAM_MIN;

#pragma omp parallel for schedule(dynamic)
    for (int u = 0; u < n_units; u++) {
        int i0 = u * pl.spc, ns = n - i0 < pl.spc ? n - i0 : pl.spc;
        forward_unit(&pl, apw, bias, i0, ns, x, y, bufs + per * omp_get_thread_num());
    }
    return MT_OK;
}

/* ---- backward data ------------------------------------------------------------ */

/* dyp[o][j] = dy[sample][o][position] for the panel's columns. */
static void pack_dy_panel(const conv_plan *pl, const panel_map *m, const float *dy, float *dyp)
{
    for (int o = 0; o < pl->O; o++) {
        const float *src = dy + (size_t)o * pl->P;
        for (int h = 0; h < NV; h++) {
            if (m->ycont[h]) {
                store_run(src + m->ybase[h * VW], 0.0f, 0, dyp + (size_t)o * NR + h * VW);
                continue;
            }
            for (int j = h * VW; j < (h + 1) * VW; j++)
                dyp[(size_t)o * NR + j] = src[m->ybase[j]];
        }
    }
}

/* dxp[base(q) + off(k)] += dct[k - k0][j] for k0 <= k < k1 and the
 * panel's columns, k in order. */
static void scatter_panel(const conv_plan *pl, const panel_map *m, const float *dct, int k0,
                          int k1, float *dxp)
{
    for (int k = k0; k < k1; k++) {
        const float *src = dct + (size_t)(k - k0) * NR;
        float *dst = dxp + pl->off[k];
        for (int h = 0; h < NV; h++) {
            if (m->kind[h] != GATHER) {
                add_run(m->kind[h], src + h * VW, m->base + h * VW, dst);
                continue;
            }
            for (int j = h * VW; j < (h + 1) * VW && j < m->w; j++)
                dst[m->base[j]] += src[j];
        }
    }
}

/* Small samples: dxp of sample s += col2im of its columns of dcol [kp][ldd],
 * k by k, position by position. */
static void scatter_sample(const conv_plan *pl, const float *dcol, size_t ldd, int s, float *dxp)
{
    int ow = pl->g->ow, oh = pl->g->oh, st = pl->st;

    for (int k = 0; k < pl->K; k++) {
        const float *src = dcol + (size_t)k * ldd + (size_t)s * pl->P;
        float *dst = dxp + s * pl->xsz + pl->off[k];
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++)
                dst[oy * st * pl->wp + ox * st] += src[oy * ow + ox];
    }
}

static void data_unit(const conv_plan *pl, const float *apt, int i0, int ns, const float *dy,
                      float *dx, float *buf)
{
    size_t in_sz = (size_t)pl->g->c * pl->g->h * pl->g->w;
    size_t ldd = mt_round_up((size_t)pl->spc * pl->P, NR);
    float *dyp = buf, *dct = dyp + pl->op * NR, *dxp = dct + pl->kp * NR;
    float *dcol = dxp + mt_round_up(pl->spc * pl->xsz + SLACK, 16);
    int n_panels = (ns * pl->P + NR - 1) / NR, ng = (pl->K + MR - 1) / MR;
    panel_map m;

    memset(dxp, 0, sizeof(float) * (ns * pl->xsz + SLACK));
    for (int p = 0; p < n_panels; p++) {
        map_panel(pl, i0, ns, p, &m);
        pack_dy_panel(pl, &m, dy, dyp);
        for (int gr = 0; gr < ng; gr++) {
            /* one row group of dcol, then (large samples) its col2im */
            int k1 = (gr + 1) * MR < pl->K ? (gr + 1) * MR : pl->K;
            mt_fma_kernel_ab(pl->O, apt + (size_t)gr * pl->O * MR, dyp, NR,
                             pl->spc > 1 ? dcol + gr * MR * ldd + (size_t)p * NR : dct,
                             pl->spc > 1 ? ldd : NR, 1);
            if (pl->spc == 1)
                scatter_panel(pl, &m, dct, gr * MR, k1, dxp);
        }
    }
    for (int s = 0; pl->spc > 1 && s < ns; s++)
        scatter_sample(pl, dcol, ldd, s, dxp);
    copy_interior(pl, dxp, ns, dx + in_sz * i0);
}

/* Stride 1: dx is the convolution of dy, zero-padded by k - 1 - pad, with
 * the flipped, transposed kernel W'[ci][o][ki][kj] = W[o][ci][k-1-ki][k-1-kj]:
 * one FMA chain over (o, ki, kj) per dx entry (no col2im), on the forward
 * pass's panels. */
static mt_status data_as_forward(const mt_conv_geom *g, int out_c, const float *w, int n,
                                 const float *dy, float *dx, mt_scratch *ws)
{
    mt_conv_geom gt;
    int k = g->k, kk = k * k;
    float *apw, *bufs, *wt;

    MT_CHECK(mt_conv_geom_make(out_c, g->oh, g->ow, k, 1, k - 1 - g->pad, &gt));
    conv_plan pl = make_plan(&gt, g->c);
    size_t per = mt_round_up(unit_floats(&pl), 16), nw = (size_t)g->c * pl.K;
    MT_CHECK(reserve(&pl, pl.op * pl.K + nw, per, ws, &apw, &bufs));
    wt = apw + pl.op * pl.K;
    for (int ci = 0; ci < g->c; ci++)
        for (int o = 0; o < out_c; o++)
            for (int t = 0; t < kk; t++)
                wt[((size_t)ci * out_c + o) * kk + t] =
                    w[((size_t)o * g->c + ci) * kk + kk - 1 - t];
    mt_fma_pack_rows(pl.fmr, g->c, pl.K, wt, (size_t)pl.K, 1, apw);
    pl.stream = (size_t)n * g->c * pl.P >= STREAM_MIN;

#pragma omp parallel for schedule(dynamic)
    for (int u = 0; u < (n + pl.spc - 1) / pl.spc; u++) {
        int i0 = u * pl.spc, ns = n - i0 < pl.spc ? n - i0 : pl.spc;
        forward_unit(&pl, apw, NULL, i0, ns, dy, dx, bufs + per * omp_get_thread_num());
    }
    return MT_OK;
}

mt_status mt_conv_backward_data(const mt_conv_geom *g, int out_c, const float *w, int n,
                                const float *dy, float *dx, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    int n_units = (n + pl.spc - 1) / pl.spc;
    size_t per = mt_round_up(unit_floats(&pl), 16);
    float *apt, *bufs;

    if (n <= 0)
        return MT_OK;
    /* stride 1, about as many inputs as outputs (a valid convolution would
     * multiply the extra border by zeros), enough input channels to fill
     * the row groups: measured faster than dcol + col2im */
    if (g->stride == 1 && g->pad <= g->k - 1 && g->c >= MT_FMA_MR_SMALL &&
        (size_t)g->h * g->w * 10 <= (size_t)mt_conv_cols(g) * 11)
        return data_as_forward(g, out_c, w, n, dy, dx, ws);
    MT_CHECK(reserve(&pl, pl.kp * pl.O, per, ws, &apt, &bufs));
    mt_fma_pack(pl.K, pl.O, w, 1, (size_t)pl.K, apt); /* rows of W^T */
    pl.stream = (size_t)n * g->c * g->h * g->w >= STREAM_MIN;

#pragma omp parallel for schedule(dynamic)
    for (int u = 0; u < n_units; u++) {
        int i0 = u * pl.spc, ns = n - i0 < pl.spc ? n - i0 : pl.spc;
        data_unit(&pl, apt, i0, ns, dy, dx, bufs + per * omp_get_thread_num());
    }
    return MT_OK;
}

/* ---- backward weights ----------------------------------------------------------- */

/* One chunk of the weights pass: samples [i0, i0 + ns), output rows
 * [oy0, oy0 + noy) of each; nq = ns noy ow columns. */
typedef struct {
    int i0, ns, oy0, noy, nq;
} conv_chunk;

static int chunk_count(const conv_plan *pl, int a, int b)
{
    int per_sample = (pl->g->oh + pl->wrows - 1) / pl->wrows;
    return pl->wspc > 1 ? (b - a + pl->wspc - 1) / pl->wspc : (b - a) * per_sample;
}

static conv_chunk chunk_at(const conv_plan *pl, int a, int b, int c)
{
    int oh = pl->g->oh, per_sample = (oh + pl->wrows - 1) / pl->wrows;
    conv_chunk ch;

    if (pl->wspc > 1) {
        ch.i0 = a + c * pl->wspc;
        ch.ns = b - ch.i0 < pl->wspc ? b - ch.i0 : pl->wspc;
        ch.oy0 = 0;
        ch.noy = oh;
    } else {
        ch.i0 = a + c / per_sample;
        ch.ns = 1;
        ch.oy0 = (c % per_sample) * pl->wrows;
        ch.noy = oh - ch.oy0 < pl->wrows ? oh - ch.oy0 : pl->wrows;
    }
    ch.nq = ch.ns * ch.noy * pl->g->ow;
    return ch;
}

/* dst[i] = src[i st] for i < n. */
static void copy_strided(const float *src, int st, int n, float *dst)
{
    int i = 0;

#if defined(__AVX512F__)
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26,
                                           28, 30);
    for (; st <= 2 && i + VW <= n; i += VW) {
        __m512 lo = _mm512_loadu_ps(src + i * st);
        __m512 v = st == 1 ? lo
                           : _mm512_permutex2var_ps(lo, even, _mm512_loadu_ps(src + 2 * i + 16));
        _mm512_storeu_ps(dst + i, v);
    }
    if (st == 1 && i < n) { /* a short row or the tail: one masked copy */
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(dst + i, m, _mm512_maskz_loadu_ps(m, src + i));
        return;
    }
#endif
    for (; i < n; i++)
        dst[i] = src[i * st];
}

/* col[k][chunk column] for every k, rows ldq apart, from xp (the chunk's
 * samples, zero-bordered). */
static void chunk_col(const conv_plan *pl, const conv_chunk *ch, const float *xp, float *col)
{
    int ow = pl->g->ow, st = pl->st;

    for (int k = 0; k < pl->K; k++)
        for (int s = 0; s < ch->ns; s++)
            for (int r = 0; r < ch->noy; r++)
                copy_strided(xp + s * pl->xsz + pl->off[k] + (size_t)(ch->oy0 + r) * st * pl->wp,
                             st, ow, col + (size_t)k * pl->ldq + (size_t)(s * ch->noy + r) * ow);
}

/* dyb[o][column] = dy of the chunk, rows ldq apart (dy_rows layout). */
static void chunk_dy_rows(const conv_plan *pl, const conv_chunk *ch, const float *dy, float *dyb)
{
    size_t width = (size_t)ch->noy * pl->g->ow, out_sz = (size_t)pl->O * pl->P;

    for (int s = 0; s < ch->ns; s++)
        for (int o = 0; o < pl->O; o++)
            memcpy(dyb + (size_t)o * pl->ldq + width * s,
                   dy + out_sz * (ch->i0 + s) + (size_t)o * pl->P + (size_t)ch->oy0 * pl->g->ow,
                   sizeof(float) * width);
}

/* bp[p][q][j] = dy of channel p NR + j at the chunk's column q (0 past O):
 * one run of VW channels at a time (a gather of VW rows of dy). */
static void pack_dy_panels(const conv_plan *pl, const conv_chunk *ch, const float *dy, float *bp)
{
    size_t width = (size_t)ch->noy * pl->g->ow, out_sz = (size_t)pl->O * pl->P;
    int rows[VW];

    for (int j = 0; j < VW; j++)
        rows[j] = j * pl->P;
    for (size_t p = 0; p < pl->op / NR; p++)
        for (int s = 0; s < ch->ns; s++) {
            const float *src = dy + out_sz * (ch->i0 + s) + p * NR * pl->P +
                               (size_t)ch->oy0 * pl->g->ow;
            float *dst = bp + (p * (size_t)ch->nq + width * s) * NR;
            for (int h = 0; h < NV; h++) {
                int n_o = pl->O - (int)p * NR - h * VW;
                for (size_t q = 0; q < width; q++)
                    gather_rows(src + (size_t)h * VW * pl->P + q, rows, n_o,
                                dst + q * NR + h * VW);
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
 * kn = K rounded up to panels (dy rows, lanes). */
static size_t partial_ld(const conv_plan *pl)
{
    return pl->dy_rows || pl->lanes ? mt_round_up((size_t)pl->K, NR) : pl->op;
}

/* Lane tiles of the weights pass: TO output channels by TK rows of col. */
enum { TO = 4, TK = 6 };

/* Floats of the lane accumulators [O rounded to TO][K rounded to TK][VW]. */
static size_t lanes_floats(const conv_plan *pl)
{
    return mt_round_up((size_t)pl->O, TO) * mt_round_up((size_t)pl->K, TK) * VW;
}

/* Per-thread floats of the weights pass: xp, col [kp][ldq], then dy rows
 * [op][ldq] and the packed panels (the larger of dy^T and col^T), or the
 * lane accumulators and a zero row. */
static size_t weights_floats(const conv_plan *pl)
{
    size_t xp = mt_round_up(pl->wspc * pl->xsz + SLACK, 16);
    size_t panels = (mt_round_up(pl->op, NR) + mt_round_up(pl->kp, NR)) * pl->ldq;
    if (pl->lanes)
        panels = lanes_floats(pl) + pl->ldq;
    return xp + (pl->kp + pl->op) * pl->ldq + panels;
}

typedef float vlf __attribute__((vector_size(VW * sizeof(float))));
typedef float vlu __attribute__((vector_size(VW * sizeof(float)), aligned(sizeof(float))));

/* c + a b per lane, one rounding. */
static inline vlf vfma(vlf a, vlf b, vlf c)
{
#if defined(__AVX512F__)
    return (vlf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
#elif defined(__AVX2__) && defined(__FMA__)
    return (vlf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
#else
    for (int l = 0; l < VW; l++)
        c[l] = fmaf(a[l], b[l], c[l]);
    return c;
#endif
}

/* acc[a][b][l] += sum_v d[a][v VW + l] c[b][v VW + l] for a < TO, b < TK,
 * v < nv: lane l of every entry is one FMA chain over the columns = l mod
 * VW, in order. */
static void lanes_tile(int nv, const float *const *d, const float *const *c, float *acc)
{
    vlf s[TO][TK];

    for (int a = 0; a < TO; a++)
        for (int b = 0; b < TK; b++)
            s[a][b] = *(const vlu *)(acc + (a * TK + b) * VW);
    for (int v = 0; v < nv; v++) {
        vlf dv[TO];
        for (int a = 0; a < TO; a++)
            dv[a] = *(const vlu *)(d[a] + v * VW);
        for (int b = 0; b < TK; b++) {
            vlf cv = *(const vlu *)(c[b] + v * VW);
            for (int a = 0; a < TO; a++)
                s[a][b] = vfma(dv[a], cv, s[a][b]);
        }
    }
    for (int a = 0; a < TO; a++)
        for (int b = 0; b < TK; b++)
            *(vlu *)(acc + (a * TK + b) * VW) = s[a][b];
}

/* The chunk's lane partials: rows of dyb [O] and col [K] (ldq apart, zero
 * from nq to the next multiple of VW); rows past O or K read `zero`. */
static void lanes_chunk(const conv_plan *pl, int nq, const float *dyb, const float *col,
                        const float *zero, float *acc)
{
    int ot = (int)mt_round_up((size_t)pl->O, TO), kt = (int)mt_round_up((size_t)pl->K, TK);
    int nv = (nq + VW - 1) / VW;

    for (int k0 = 0; k0 < kt; k0 += TK)
        for (int o0 = 0; o0 < ot; o0 += TO) {
            const float *d[TO], *c[TK];
            for (int a = 0; a < TO; a++)
                d[a] = o0 + a < pl->O ? dyb + (size_t)(o0 + a) * pl->ldq : zero;
            for (int b = 0; b < TK; b++)
                c[b] = k0 + b < pl->K ? col + (size_t)(k0 + b) * pl->ldq : zero;
            lanes_tile(nv, d, c, acc + ((size_t)o0 * kt + (size_t)k0 * TO) * VW);
        }
}

/* pt[o][k] = the VW lanes of acc added in a fixed tree. */
static void lanes_reduce(const conv_plan *pl, const float *acc, float *pt)
{
    int kt = (int)mt_round_up((size_t)pl->K, TK);
    size_t ld = partial_ld(pl);

    for (int o = 0; o < pl->O; o++)
        for (int k = 0; k < pl->K; k++) {
            const float *t = acc + ((size_t)(o / TO * TO) * kt + (size_t)(k / TK * TK) * TO +
                                    (size_t)(o % TO) * TK + k % TK) * VW;
            float l[VW];
            memcpy(l, t, sizeof l);
            for (int w = VW / 2; w >= 1; w /= 2)
                for (int i = 0; i < w; i++)
                    l[i] += l[i + w];
            pt[(size_t)o * ld + k] = l[0];
        }
}

/* The chunk's contribution to the weight partials pt, tile by tile; the
 * chains continue across chunks in order (first = 1 starts them):
 *   dy_rows: pt[o][kk] (+)= dy[o][:nq] . col[kk][:nq]
 *   else:    pt[kk][o] (+)= col[kk][:nq] . dy[o][:nq] */
static void weights_chunk(const conv_plan *pl, const conv_chunk *ch, const float *xp,
                          const float *dy, float *buf, int first, float *pt)
{
    float *col = buf, *dyb = col + pl->kp * pl->ldq, *bp = dyb + pl->op * pl->ldq;
    size_t ld = partial_ld(pl), nq = (size_t)ch->nq;
    const float *rows = col;
    size_t n_groups = ((size_t)pl->K + MR - 1) / MR, n_panels = pl->op / NR;

    chunk_col(pl, ch, xp, col);
    if (pl->lanes) {
        size_t tail = mt_round_up(nq, VW) - nq;
        float *acc = bp, *zero = acc + lanes_floats(pl);
        chunk_dy_rows(pl, ch, dy, dyb);
        for (int k = 0; k < pl->K; k++)
            memset(col + (size_t)k * pl->ldq + nq, 0, sizeof(float) * tail);
        for (int o = 0; o < pl->O; o++)
            memset(dyb + (size_t)o * pl->ldq + nq, 0, sizeof(float) * tail);
        memset(zero, 0, sizeof(float) * pl->ldq);
        if (first)
            memset(acc, 0, sizeof(float) * lanes_floats(pl));
        lanes_chunk(pl, ch->nq, dyb, col, zero, acc);
        (void)pt;
        return;
    }
    if (pl->dy_rows) {
        chunk_dy_rows(pl, ch, dy, dyb);
        pack_col_panels(pl, col, ch->nq, bp);
        rows = dyb;
        n_groups = ((size_t)pl->O + MR - 1) / MR;
        n_panels = ld / NR;
    } else {
        pack_dy_panels(pl, ch, dy, bp);
    }
    /* panel outer: its nq x NR floats stay in L1 while the row groups
     * stream past */
    for (size_t p = 0; p < n_panels; p++)
        for (size_t gr = 0; gr < n_groups; gr++)
            mt_fma_kernel_rows(ch->nq, rows + gr * MR * pl->ldq, (size_t)pl->ldq, bp + p * nq * NR,
                               pt + gr * MR * ld + p * NR, ld, first);
}

/* Partial gradients of samples [a, b) in order into pt and pb [O]. */
static void weights_block(const conv_plan *pl, int a, int b, const float *x, const float *dy,
                          float *buf, float *pt, double *pb)
{
    size_t in_sz = (size_t)pl->g->c * pl->g->h * pl->g->w, out_sz = (size_t)pl->O * pl->P;
    float *xp = buf, *rest = xp + mt_round_up(pl->wspc * pl->xsz + SLACK, 16);

    for (int c = 0; c < chunk_count(pl, a, b); c++) {
        conv_chunk ch = chunk_at(pl, a, b, c);
        if (ch.oy0 == 0)
            fill_padded(pl, x + in_sz * ch.i0, ch.ns, xp);
        weights_chunk(pl, &ch, xp, dy, rest, c == 0, pt);
    }
    if (pl->lanes)
        lanes_reduce(pl, rest + (pl->kp + pl->op) * pl->ldq, pt);
    for (int o = 0; o < pl->O; o++)
        pb[o] = 0.0;
    for (int i = a; i < b; i++)
        for (int o = 0; o < pl->O; o++)
            pb[o] += sum_lanes((size_t)pl->P, dy + out_sz * i + (size_t)o * pl->P);
}

/* One block's partials: the biases' sums in double [O] (2 O floats), then
 * the transposed weights [kp op], each part on a 64-byte boundary. */
static size_t bias_floats(const conv_plan *pl) { return mt_round_up(2 * (size_t)pl->O, 16); }

static size_t block_floats(const conv_plan *pl)
{
    return bias_floats(pl) + mt_round_up(pl->kp * pl->op, 16);
}

size_t mt_conv_weight_block_floats(const mt_conv_geom *g, int out_c)
{
    conv_plan pl = make_plan(g, out_c);
    return block_floats(&pl);
}

/* Every block's partials into part, blocks to threads dynamically. */
static void weight_partials(const conv_plan *pl, int n, const float *x, const float *dy,
                            float *bufs, size_t per, float *part)
{
    int n_blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    size_t bf = block_floats(pl);

    /* TODO: with fewer blocks than threads (n <= MT_BLOCK) only one thread
     * works; splitting a block's weight tiles would spread it. */
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < n_blocks; b++) {
        int end = (b + 1) * MT_BLOCK < n ? (b + 1) * MT_BLOCK : n;
        float *blk = part + bf * b;
        weights_block(pl, b * MT_BLOCK, end, x, dy, bufs + per * omp_get_thread_num(),
                      blk + bias_floats(pl), (double *)blk);
    }
}

/* The blocks' partials added in block order, in double (transposed back if
 * need be). */
static void weight_reduce(const conv_plan *pl, int n_blocks, const float *part, float *dw,
                          float *db)
{
    size_t bf = block_floats(pl), bo = bias_floats(pl);
    size_t ld = partial_ld(pl), so = pl->dy_rows || pl->lanes ? ld : 1;
    size_t sk = pl->dy_rows || pl->lanes ? 1 : ld;

#pragma omp parallel for schedule(static)
    for (int o = 0; o < pl->O; o++)
        for (int kk = 0; kk < pl->K; kk++) {
            double s = 0.0;
            for (int b = 0; b < n_blocks; b++)
                s += part[bf * b + bo + so * o + sk * kk];
            dw[(size_t)o * pl->K + kk] = (float)s;
        }
    for (int o = 0; o < pl->O; o++) {
        double s = 0.0;
        for (int b = 0; b < n_blocks; b++)
            s += ((const double *)(part + bf * b))[o];
        db[o] = (float)s;
    }
}

mt_status mt_conv_weight_partials(const mt_conv_geom *g, int out_c, int n, const float *x,
                                  const float *dy, float *part, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    size_t per = mt_round_up(weights_floats(&pl), 16);
    float *none, *bufs;

    MT_CHECK(reserve(&pl, 0, per, ws, &none, &bufs));
    weight_partials(&pl, n, x, dy, bufs, per, part);
    return MT_OK;
}

void mt_conv_weight_reduce(const mt_conv_geom *g, int out_c, int n_blocks, const float *part,
                           float *dw, float *db)
{
    conv_plan pl = make_plan(g, out_c);
    weight_reduce(&pl, n_blocks, part, dw, db);
}

mt_status mt_conv_backward_weights(const mt_conv_geom *g, int out_c, int n, const float *x,
                                   const float *dy, float *dw, float *db, mt_scratch *ws)
{
    conv_plan pl = make_plan(g, out_c);
    int n_blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    size_t per = mt_round_up(weights_floats(&pl), 16);
    float *part, *bufs;

    MT_CHECK(reserve(&pl, block_floats(&pl) * n_blocks, per, ws, &part, &bufs));
    weight_partials(&pl, n, x, dy, bufs, per, part);
    weight_reduce(&pl, n_blocks, part, dw, db);
    return MT_OK;
}
