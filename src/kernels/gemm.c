/*
 * gemm.c - deterministic tiled matrix products on single-threaded OpenBLAS
 * calls: fixed-shape tiles, OpenMP over tiles (see kernels.h for why).
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "mtrain/kernels.h"

int mt_gemm_tile(int dim)
{
    return dim <= 768 ? dim : 512;
}

static CBLAS_TRANSPOSE cblas_trans(mt_trans t)
{
    return t == MT_TRANS ? CblasTrans : CblasNoTrans;
}

void mt_sgemm(mt_trans ta, mt_trans tb, int m, int n, int k, float alpha, const float *a, int lda,
              const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), m, n, k, alpha, a, lda, b, ldb,
                beta, c, ldc);
}

/* Address of element (row, col) of op(M) for a row-major M with leading dim ld. */
static const float *op_at(const float *m, int ld, mt_trans t, int row, int col)
{
    return t == MT_TRANS ? m + (size_t)col * ld + row : m + (size_t)row * ld + col;
}

void mt_gemm_tiled(mt_trans ta, mt_trans tb, int m, int n, int k, float alpha, const float *a,
                   int lda, const float *b, int ldb, float beta, float *c, int ldc, int tile_m,
                   int tile_n)
{
    if (m <= 0 || n <= 0)
        return;
    int n_tm = (m + tile_m - 1) / tile_m, n_tn = (n + tile_n - 1) / tile_n;

#pragma omp parallel for schedule(static)
    for (int u = 0; u < n_tm * n_tn; u++) {
        int i0 = (u / n_tn) * tile_m, j0 = (u % n_tn) * tile_n;
        int mi = m - i0 < tile_m ? m - i0 : tile_m;
        int nj = n - j0 < tile_n ? n - j0 : tile_n;
        mt_sgemm(ta, tb, mi, nj, k, alpha, op_at(a, lda, ta, i0, 0), lda, op_at(b, ldb, tb, 0, j0),
                 ldb, beta, c + (size_t)i0 * ldc + j0, ldc);
    }
}

/* The last, partial row block run as a full MT_BLOCK-row sgemm on zero-padded
 * copies in buf (MT_BLOCK x k for A, then MT_BLOCK x nc for C). */
static void padded_block(int r0, int rows, int nc, int k, float alpha, const float *a, int lda,
                         mt_trans tb, const float *bt, int ldb, float beta, float *c, int ldc,
                         float *buf)
{
    int nr = rows - r0;
    float *pa = buf, *pc = buf + (size_t)MT_BLOCK * k;

    memset(buf, 0, sizeof(float) * MT_BLOCK * ((size_t)k + nc));
    for (int i = 0; i < nr; i++) {
        memcpy(pa + (size_t)i * k, a + (size_t)(r0 + i) * lda, sizeof(float) * k);
        if (beta != 0.0f)
            memcpy(pc + (size_t)i * nc, c + (size_t)(r0 + i) * ldc, sizeof(float) * nc);
    }
    mt_sgemm(MT_NOTRANS, tb, MT_BLOCK, nc, k, alpha, pa, k, bt, ldb, beta, pc, nc);
    for (int i = 0; i < nr; i++)
        memcpy(c + (size_t)(r0 + i) * ldc, pc + (size_t)i * nc, sizeof(float) * nc);
}

mt_status mt_gemm_batch(int rows, int n, int k, float alpha, const float *a, int lda, mt_trans tb,
                        const float *b, int ldb, float beta, float *c, int ldc, mt_scratch *ws)
{
    if (rows <= 0 || n <= 0)
        return MT_OK;
    int tile_n = mt_gemm_tile(n);
    int n_rb = (rows + MT_BLOCK - 1) / MT_BLOCK, n_cb = (n + tile_n - 1) / tile_n;
    size_t per_thread = (size_t)MT_BLOCK * ((size_t)k + tile_n);
    float *buf = NULL;

    /* Only a partial last block needs the padded copies. */
    if (rows % MT_BLOCK) {
        MT_CHECK(mt_scratch_reserve(ws, sizeof(float) * per_thread * mt_kernel_threads(),
                                    "gemm block padding"));
        buf = ws->p;
    }

    /* Column tile outer, row block inner: a thread's consecutive units share
     * the same tile of B, which stays in cache. */
#pragma omp parallel for schedule(static)
    for (int u = 0; u < n_rb * n_cb; u++) {
        int r0 = (u % n_rb) * MT_BLOCK, c0 = (u / n_rb) * tile_n;
        int nc = n - c0 < tile_n ? n - c0 : tile_n;
        const float *bt = op_at(b, ldb, tb, 0, c0);

        if (r0 + MT_BLOCK <= rows)
            mt_sgemm(MT_NOTRANS, tb, MT_BLOCK, nc, k, alpha, a + (size_t)r0 * lda, lda, bt, ldb,
                     beta, c + (size_t)r0 * ldc + c0, ldc);
        else
            padded_block(r0, rows, nc, k, alpha, a, lda, tb, bt, ldb, beta, c + c0, ldc,
                         buf + per_thread * omp_get_thread_num());
    }
    return MT_OK;
}
