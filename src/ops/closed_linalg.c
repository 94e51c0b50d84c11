/*
 * closed_linalg.c - the double-precision linear algebra under the dense
 * closed forms: Gram-type products of float matrices accumulated in double,
 * a tiled Cholesky factorisation and its triangular solves.
 *
 * Why double: the systems s B^T B + a I can have condition numbers of 1e3 to
 * 1e5 (activations with large norms, s ~ 1); formed and factorised in float
 * they would lose 2 to 4 of float's 7 digits. They are small (n x n, or the
 * layer width) next to the float products around them.
 *
 * Determinism: the work units (tiles of TILE x TILE, row chunks of CHUNK) are
 * fixed constants, each BLAS/LAPACK call runs single-threaded inside an
 * OpenMP region, and every tile's accumulation runs in one fixed order.
 */
#include <cblas.h>
#include <string.h>

#include "ops/closed.h"

/* LAPACK (bundled in OpenBLAS), Fortran calling convention with the hidden
 * length of the character argument. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info,
             size_t uplo_len);

enum { TILE = 128, CHUNK = 256 };

/* buf[kc][tc] = M'[k0 + k][j0 + j] for M' stored by rows or transposed. */
static void pack_d(const float *m, size_t ld, int rows, size_t k0, size_t kc, size_t j0,
                   size_t tc, double *buf)
{
    for (size_t k = 0; k < kc; k++) {
        for (size_t j = 0; j < tc; j++) {
            size_t at = rows ? (k0 + k) * ld + j0 + j : (j0 + j) * ld + k0 + k;
            buf[k * tc + j] = m[at];
        }
    }
}

typedef struct {
    size_t p, q, m, lda, ldb, ldc;
    const float *a, *b;
    int a_rows, b_rows;
    double *c;
} gemm_args;

/* One tile C[i0:i0+tp][j0:j0+tq] = sum over row chunks, in order. */
static void gemm_tile(const gemm_args *g, size_t i0, size_t j0, double *pa, double *pb)
{
    size_t tp = mt_min_sz(TILE, g->p - i0), tq = mt_min_sz(TILE, g->q - j0);
    double *ct = g->c + i0 * g->ldc + j0;

    if (g->m == 0) {
        for (size_t i = 0; i < tp; i++)
            memset(ct + i * g->ldc, 0, tq * sizeof(double));
        return;
    }
    for (size_t k0 = 0; k0 < g->m; k0 += CHUNK) {
        size_t kc = mt_min_sz(CHUNK, g->m - k0);

        pack_d(g->a, g->lda, g->a_rows, k0, kc, i0, tp, pa);
        pack_d(g->b, g->ldb, g->b_rows, k0, kc, j0, tq, pb);
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)tp, (int)tq, (int)kc, 1.0, pa,
                    (int)tp, pb, (int)tq, k0 == 0 ? 0.0 : 1.0, ct, (int)g->ldc);
    }
}

mt_status mt_closed_gemm_tn_d(size_t p, size_t q, size_t m, const float *a, size_t lda,
                              int a_rows, const float *b, size_t ldb, int b_rows, int sym,
                              double *c, size_t ldc)
{
    gemm_args g = {p, q, m, lda, ldb, ldc, a, b, a_rows, b_rows, c};
    size_t nti = (p + TILE - 1) / TILE, ntj = (q + TILE - 1) / TILE;
    int failed = 0;

#pragma omp parallel
    {
        double *pa = mt_alloc(2 * (size_t)CHUNK * TILE * sizeof(double));

        if (!pa) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for collapse(2) schedule(dynamic)
        for (size_t ti = 0; ti < nti; ti++) {
            for (size_t tj = 0; tj < ntj; tj++) {
                if (pa && !(sym && tj < ti))
                    gemm_tile(&g, ti * TILE, tj * TILE, pa, pa + (size_t)CHUNK * TILE);
            }
        }
        mt_free(pa);
    }
    if (failed)
        return MT_FAIL(MT_ERR_MEM, "out of memory for the double-precision product buffers");

    /* mirror the upper tiles onto the lower ones */
    for (size_t i = 0; sym && i < p; i++) {
        for (size_t j = 0; j < (i / TILE) * TILE; j++)
            c[i * ldc + j] = c[j * ldc + i];
    }
    return MT_OK;
}

/* Right-looking tiled Cholesky, step k: factor the diagonal tile (one
 * thread), scale the panel below it, update the trailing lower tiles. */
mt_status mt_closed_cholesky_d(int dim, double *g)
{
    int nt = (dim + TILE - 1) / TILE, info = 0;

#pragma omp parallel
    for (int k = 0; k < nt; k++) {
        int k0 = k * TILE, kb = dim - k0 < TILE ? dim - k0 : TILE;
        double *akk = g + k0 + (size_t)k0 * dim;

#pragma omp single
        {
            int tile_info = 0;
            dpotrf_("L", &kb, akk, &dim, &tile_info, 1);
            if (tile_info != 0)
                info = tile_info > 0 ? k0 + tile_info : tile_info;
        }
        if (info != 0)
            break; /* every thread read info after the barrier of `single` */

#pragma omp for schedule(dynamic)
        for (int i = k + 1; i < nt; i++) {
            int ib = dim - i * TILE < TILE ? dim - i * TILE : TILE;
            cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, ib, kb,
                        1.0, akk, dim, g + i * TILE + (size_t)k0 * dim, dim);
        }

#pragma omp for collapse(2) schedule(dynamic)
        for (int i = k + 1; i < nt; i++) {
            for (int j = k + 1; j < nt; j++) {
                int i0 = i * TILE, j0 = j * TILE;
                int ib = dim - i0 < TILE ? dim - i0 : TILE, jb = dim - j0 < TILE ? dim - j0 : TILE;
                const double *aik = g + i0 + (size_t)k0 * dim, *ajk = g + j0 + (size_t)k0 * dim;
                double *aij = g + i0 + (size_t)j0 * dim;

                if (j == i)
                    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, ib, kb, -1.0, aik, dim,
                                1.0, aij, dim);
                else if (j < i)
                    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, ib, jb, kb, -1.0, aik,
                                dim, ajk, dim, 1.0, aij, dim);
            }
        }
    }
    if (info != 0)
        return MT_FAIL(MT_ERR_NUMERIC, "Cholesky factorisation failed (info %d, order %d)",
                       info, dim);
    return MT_OK;
}

void mt_closed_cholesky_solve_d(int dim, const double *g, int nrhs, double *b, int ldb)
{
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, dim, nrhs, 1.0,
                g, dim, b, ldb);
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, dim, nrhs, 1.0,
                g, dim, b, ldb);
}
