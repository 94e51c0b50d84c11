/*
 * fma_gemm.c - mtrain's own batch products for dense layers on a register-
 * tiled micro-kernel: GCC vector extensions with explicit FMA intrinsics
 * (AVX-512 or AVX2+FMA as -march allows, else fmaf per lane).
 *
 * Every element of C is one sequential fused multiply-add chain over
 * k = 0 .. K-1 starting from 0 (partial chains are stored and reloaded
 * exactly), so its bits depend only on its row of A and its column of op(B):
 * not on the number of rows, the tiling, the thread count or the compiler's
 * optimisation level.
 *
 * Why not OpenBLAS here: its results depend on the call's shape, so batch
 * calls must be MT_BLOCK-row tiles, and each such call re-packs the whole
 * weight matrix for only 32 rows of work (measured: 50-60% of sgemm peak).
 * Here the weights are read in place (nt) or packed once per panel and
 * shared by all rows (nn). Work units go to threads dynamically; no result
 * depends on which thread ran a unit.
 */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "fma.h"
#include "mtrain/kernels.h"

enum { VW = MT_FMA_VW, MR = MT_FMA_MR, NR = MT_FMA_NR, KC = MT_FMA_KC };
/* PU panels per work unit of mt_gemm_nn, RB row groups per unit of
 * mt_gemm_tn. */
enum { PU = 8, RB = 4 };

typedef float vf __attribute__((vector_size(VW * sizeof(float))));
/* The same, for loads and stores at any float alignment. */
typedef float vfu __attribute__((vector_size(VW * sizeof(float)), aligned(sizeof(float))));

/* acc + s b with one rounding per lane, whatever the compiler's contraction
 * settings or optimisation level. */
static inline vf fma_bcast(float s, vf b, vf acc)
{
#if defined(__AVX512F__)
    return (vf)_mm512_fmadd_ps(_mm512_set1_ps(s), (__m512)b, (__m512)acc);
#elif defined(__AVX2__) && defined(__FMA__)
    return (vf)_mm256_fmadd_ps(_mm256_set1_ps(s), (__m256)b, (__m256)acc);
#else
    for (int i = 0; i < VW; i++)
        acc[i] = fmaf(s, b[i], acc[i]);
    return acc;
#endif
}

void mt_fma_kernel_rows(int K, const float *a, size_t lda, const float *bp, float *c, size_t ldc,
                        int first)
{
    vf acc[MR][2];

    for (int r = 0; r < MR; r++) {
        acc[r][0] = first ? (vf){0} : (vf)(*(const vfu *)(c + r * ldc));
        acc[r][1] = first ? (vf){0} : (vf)(*(const vfu *)(c + r * ldc + VW));
    }
    for (int k = 0; k < K; k++) {
        vf b0 = *(const vf *)(bp + (size_t)k * NR), b1 = *(const vf *)(bp + (size_t)k * NR + VW);
        for (int r = 0; r < MR; r++) {
            float s = a[r * lda + k];
            acc[r][0] = fma_bcast(s, b0, acc[r][0]);
            acc[r][1] = fma_bcast(s, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        *(vfu *)(c + r * ldc) = acc[r][0];
        *(vfu *)(c + r * ldc + VW) = acc[r][1];
    }
}

/* The kernel for mr rows (a constant at each call site below, so the loops
 * over r unroll into registers). */
static inline __attribute__((always_inline)) void kernel_ab(const int mr, int kc, const float *ap,
                                                            const float *b, size_t ldb, float *c,
                                                            size_t ldc, int first)
{
    vf acc[MR][2];

    for (int r = 0; r < mr; r++) {
        acc[r][0] = first ? (vf){0} : (vf)(*(const vfu *)(c + r * ldc));
        acc[r][1] = first ? (vf){0} : (vf)(*(const vfu *)(c + r * ldc + VW));
    }
    for (int k = 0; k < kc; k++) {
        vf b0 = *(const vfu *)(b + k * ldb), b1 = *(const vfu *)(b + k * ldb + VW);
        for (int r = 0; r < mr; r++) {
            float s = ap[k * mr + r];
            acc[r][0] = fma_bcast(s, b0, acc[r][0]);
            acc[r][1] = fma_bcast(s, b1, acc[r][1]);
        }
    }
    for (int r = 0; r < mr; r++) {
        *(vfu *)(c + r * ldc) = acc[r][0];
        *(vfu *)(c + r * ldc + VW) = acc[r][1];
    }
}

void mt_fma_kernel_ab(int kc, const float *ap, const float *b, size_t ldb, float *c, size_t ldc,
                      int first)
{
    kernel_ab(MR, kc, ap, b, ldb, c, ldc, first);
}

void mt_fma_kernel_ab_small(int kc, const float *ap, const float *b, size_t ldb, float *c,
                            size_t ldc, int first)
{
    kernel_ab(MT_FMA_MR_SMALL, kc, ap, b, ldb, c, ldc, first);
}

void mt_fma_pack_rows(int mr, int rows, int K, const float *a, size_t rs, size_t cs, float *ap)
{
    int ng = (rows + mr - 1) / mr;

    for (int g = 0; g < ng; g++) {
        float *dst = ap + (size_t)g * K * mr;
        for (int r = 0; r < mr; r++) {
            int i = g * mr + r;
            for (int k = 0; k < K; k++)
                dst[(size_t)k * mr + r] = i < rows ? a[(size_t)i * rs + k * cs] : 0.0f;
        }
    }
}

void mt_fma_pack(int rows, int K, const float *a, size_t rs, size_t cs, float *ap)
{
    mt_fma_pack_rows(MR, rows, K, a, rs, cs, ap);
}

/* Zero rows [0, rows) x [0, n) of c (the k == 0 product). */
static void zero_rows(int rows, int n, float *c, int ldc)
{
    for (int i = 0; i < rows; i++)
        memset(c + (size_t)i * ldc, 0, sizeof(float) * n);
}

/* ap[p][k][j] = a[p NR + j][k] (0 past the last row): A^T in panels. */
static void pack_rows_panels(int rows, int K, const float *a, int lda, float *ap)
{
    int np = (rows + NR - 1) / NR;

#pragma omp parallel for schedule(static)
    for (int p = 0; p < np; p++) {
        float *dst = ap + (size_t)p * K * NR;
        for (int j = 0; j < NR; j++) {
            int i = p * NR + j;
            for (int k = 0; k < K; k++)
                dst[(size_t)k * NR + j] = i < rows ? a[(size_t)i * lda + k] : 0.0f;
        }
    }
}

/* Store tile t[r][j] of T = B A^T transposed: c[p NR + j][g MR + r]. */
static void store_transposed(const float *t, int g, int p, int rows, int n, float *c, int ldc)
{
    for (int j = 0; j < NR && p * NR + j < rows; j++) {
        float *ci = c + (size_t)(p * NR + j) * ldc + g * MR;
        for (int r = 0; r < MR && g * MR + r < n; r++)
            ci[r] = t[r * NR + j];
    }
}

mt_status mt_gemm_nt(int rows, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, mt_scratch *ws)
{
    int np = (rows + NR - 1) / NR, ng = (n + MR - 1) / MR;
    size_t packed = mt_round_up((size_t)np * NR * k, 16);
    size_t per_thread = mt_round_up((size_t)MR * NR + (size_t)MR * k, 16);
    float *ap;

    if (rows <= 0 || n <= 0)
        return MT_OK;
    if (k <= 0) {
        zero_rows(rows, n, c, ldc);
        return MT_OK;
    }
    MT_CHECK(mt_scratch_reserve(ws, sizeof(float) * (packed + per_thread * mt_kernel_threads()),
                                "gemm packing"));
    ap = ws->p;
    pack_rows_panels(rows, k, a, lda, ap);

    /* C^T = B A^T: rows of B (MR at a time) against panels of NR rows of A;
     * consecutive units of a thread share the rows of B. */
#pragma omp parallel for schedule(dynamic, np)
    for (int u = 0; u < ng * np; u++) {
        int g = u / np, p = u % np;
        float *tile = ap + packed + per_thread * omp_get_thread_num(), *pad = tile + MR * NR;
        const float *bg = b + (size_t)g * MR * ldb;
        size_t ld = (size_t)ldb;

        if ((g + 1) * MR > n) { /* last, partial group of rows: zero-padded copy */
            memset(pad, 0, sizeof(float) * MR * (size_t)k);
            for (int r = 0; g * MR + r < n; r++)
                memcpy(pad + (size_t)r * k, bg + (size_t)r * ldb, sizeof(float) * k);
            bg = pad;
            ld = (size_t)k;
        }
        mt_fma_kernel_rows(k, bg, ld, ap + (size_t)p * k * NR, tile, NR, 1);
        store_transposed(tile, g, p, rows, n, c, ldc);
    }
    return MT_OK;
}

/* mt_fma_pack of the rows of A, OpenMP over row groups. */
static void pack_row_groups(int rows, int K, const float *a, int lda, float *ap)
{
    int ng = (rows + MR - 1) / MR;

#pragma omp parallel for schedule(static)
    for (int g = 0; g < ng; g++) {
        int n_rows = rows - g * MR < MR ? rows - g * MR : MR;
        mt_fma_pack(n_rows, K, a + (size_t)g * MR * lda, (size_t)lda, 1, ap + (size_t)g * K * MR);
    }
}

/* bb[k][j] = b[k0 + k][c0 + j] for k < kc, 0 past column n. */
static void pack_b_chunk(int kc, int k0, int c0, int n, const float *b, int ldb, float *bb)
{
    int w = n - c0 < NR ? n - c0 : NR;

    for (int k = 0; k < kc; k++) {
        memcpy(bb + k * NR, b + (size_t)(k0 + k) * ldb + c0, sizeof(float) * w);
        memset(bb + k * NR + w, 0, sizeof(float) * (NR - w));
    }
}

/* dst[0 .. NR) = src[0 .. NR): one panel row, in registers (a call to
 * memcpy per 128 bytes cost 3% of an mlp step). */
static inline void copy_panel_row(const float *src, float *dst)
{
    for (int v = 0; v < NR / VW; v++)
        *(vfu *)(dst + v * VW) = *(const vfu *)(src + v * VW);
}

/* bb[p - p0][k][j] = b[k0 + k][p NR + j] for the panels [p0, p1): one run
 * of a row of B per k (0 past column n). */
static void pack_b_panels(int kc, int k0, int p0, int p1, int n, const float *b, int ldb,
                          float *bb)
{
    for (int k = 0; k < kc; k++) {
        const float *row = b + (size_t)(k0 + k) * ldb;
        for (int p = p0; p < p1; p++) {
            float *dst = bb + ((size_t)(p - p0) * KC + k) * NR;
            int w = n - p * NR < NR ? n - p * NR : NR;
            if (w == NR) {
                copy_panel_row(row + p * NR, dst);
                continue;
            }
            memcpy(dst, row + p * NR, sizeof(float) * w);
            memset(dst + w, 0, sizeof(float) * (NR - w));
        }
    }
}

mt_status mt_gemm_nn(int rows, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, mt_scratch *ws)
{
    int ng = (rows + MR - 1) / MR, np = (n + NR - 1) / NR, nu = (np + PU - 1) / PU;
    size_t packed = mt_round_up((size_t)ng * MR * k, 16);
    size_t cpanel = (size_t)ng * MR * NR;
    size_t per_thread = mt_round_up(((size_t)KC * NR + cpanel) * PU, 16);
    float *ap;

    if (rows <= 0 || n <= 0)
        return MT_OK;
    if (k <= 0) {
        zero_rows(rows, n, c, ldc);
        return MT_OK;
    }
    MT_CHECK(mt_scratch_reserve(ws, sizeof(float) * (packed + per_thread * mt_kernel_threads()),
                                "gemm packing"));
    ap = ws->p;
    pack_row_groups(rows, k, a, lda, ap);

    /* A unit is PU panels of NR columns: each chunk of KC rows of B is packed
     * once for the unit (one run per row) and used by every row group; the
     * unit's panels of C
     * accumulate in cbuf and are copied out at the end. */
#pragma omp parallel for schedule(dynamic)
    for (int u = 0; u < nu; u++) {
        float *bb = ap + packed + per_thread * omp_get_thread_num(), *cbuf = bb + KC * NR * PU;
        int p0 = u * PU, p1 = p0 + PU < np ? p0 + PU : np;

        for (int k0 = 0; k0 < k; k0 += KC) {
            int kc = k - k0 < KC ? k - k0 : KC;
            pack_b_panels(kc, k0, p0, p1, n, b, ldb, bb);
            for (int p = p0; p < p1; p++) {
                for (int g = 0; g < ng; g++)
                    mt_fma_kernel_ab(kc, ap + ((size_t)g * k + k0) * MR,
                                     bb + (size_t)(p - p0) * KC * NR, NR,
                                     cbuf + cpanel * (p - p0) + (size_t)g * MR * NR, NR,
                                     k0 == 0);
            }
        }
        for (int p = p0; p < p1; p++) {
            int w = n - p * NR < NR ? n - p * NR : NR;
            for (int i = 0; i < rows; i++) {
                const float *src = cbuf + cpanel * (p - p0) + (size_t)i * NR;
                if (w == NR)
                    copy_panel_row(src, c + (size_t)i * ldc + p * NR);
                else
                    memcpy(c + (size_t)i * ldc + p * NR, src, sizeof(float) * w);
            }
        }
    }
    return MT_OK;
}

/* dst[0 .. n) = src[0 .. n): streaming (cache-bypassing) stores for the
 * 64-byte aligned middle of dst, plain ones at its ends. For results written
 * once and read much later (a weight gradient): no read-for-ownership. */
static void stream_row(const float *src, int n, float *dst)
{
    int i = 0;

#if defined(__AVX512F__)
    while (i < n && ((uintptr_t)(dst + i) & 63) != 0) {
        dst[i] = src[i];
        i++;
    }
    for (; i + VW <= n; i += VW)
        _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#endif
    for (; i < n; i++)
        dst[i] = src[i];
}

mt_status mt_gemm_tn(int rows, int n, int k, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, mt_scratch *ws)
{
    int ng = (rows + MR - 1) / MR, np = (n + NR - 1) / NR, nu = (ng + RB - 1) / RB;
    size_t packed_a = mt_round_up((size_t)ng * MR * k, 16), packed_b = (size_t)np * k * NR;
    size_t per_thread = (size_t)RB * MR * ((size_t)np * NR + VW);
    float *ap, *bp;

    if (rows <= 0 || n <= 0)
        return MT_OK;
    if (k <= 0) {
        zero_rows(rows, n, c, ldc);
        return MT_OK;
    }
    MT_CHECK(mt_scratch_reserve(
        ws, sizeof(float) * (packed_a + packed_b + per_thread * mt_kernel_threads()),
        "gemm packing"));
    ap = ws->p;
    bp = ap + packed_a;

    /* Row groups of A^T (columns of the stored A) and whole panels of B. */
#pragma omp parallel for schedule(static)
    for (int u = 0; u < ng + np; u++) {
        if (u < ng) {
            int n_rows = rows - u * MR < MR ? rows - u * MR : MR;
            mt_fma_pack(n_rows, k, a + (size_t)u * MR, 1, (size_t)lda, ap + (size_t)u * k * MR);
        } else {
            pack_b_chunk(k, 0, (u - ng) * NR, n, b, ldb, bp + (size_t)(u - ng) * k * NR);
        }
    }

    /* A unit is RB row groups of C: their tiles (chains over all of k, in KC
     * chunks; a panel of B serves the RB groups in turn) fill RB MR rows in
     * a buffer, which then go to C in full rows. */
#pragma omp parallel for schedule(dynamic)
    for (int u = 0; u < nu; u++) {
        float *rowbuf = bp + packed_b + per_thread * omp_get_thread_num();
        int g0 = u * RB, g1 = g0 + RB < ng ? g0 + RB : ng;
        size_t ldr = (size_t)np * NR + VW; /* rows off 4 KiB strides */

        for (int p = 0; p < np; p++)
            for (int g = g0; g < g1; g++)
                for (int k0 = 0; k0 < k; k0 += KC)
                    mt_fma_kernel_ab(k - k0 < KC ? k - k0 : KC, ap + ((size_t)g * k + k0) * MR,
                                     bp + ((size_t)p * k + k0) * NR, NR,
                                     rowbuf + (size_t)(g - g0) * MR * ldr + p * NR, ldr, k0 == 0);
        for (int i = g0 * MR; i < g1 * MR && i < rows; i++)
            stream_row(rowbuf + (size_t)(i - g0 * MR) * ldr, n, c + (size_t)i * ldc);
#if defined(__AVX512F__)
        _mm_sfence(); /* this thread's streaming stores reach memory in order */
#endif
    }
    return MT_OK;
}
