/*
 * fma.h - the FMA micro-kernel shared by the kernels' own products
 * (fma_gemm.c, conv_fma.c); private to src/kernels/.
 *
 * Register tiles of MR rows x NR columns, NR = two vectors of VW floats.
 * Every output element is one sequential fused multiply-add chain over k
 * (a partial chain may be stored and continued exactly), with explicit FMA
 * intrinsics (AVX-512, AVX2+FMA) or fmaf per lane: the bits do not depend
 * on tiling, threads, compiler contraction or optimisation level.
 */
#ifndef MTRAIN_KERNELS_FMA_H
#define MTRAIN_KERNELS_FMA_H

#include <math.h>
#include <stddef.h>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

/* MR_SMALL: a second, smaller row count for products whose row count
 * MR would pad much more (16 output channels). */
#if defined(__AVX512F__)
enum { MT_FMA_VW = 16, MT_FMA_MR = 12, MT_FMA_MR_SMALL = 8 }; /* 24 zmm accumulators */
#elif defined(__AVX2__) && defined(__FMA__)
enum { MT_FMA_VW = 8, MT_FMA_MR = 6, MT_FMA_MR_SMALL = 4 }; /* 12 ymm accumulators */
#else
enum { MT_FMA_VW = 4, MT_FMA_MR = 4, MT_FMA_MR_SMALL = 2 }; /* portable: fmaf per lane */
#endif
/* NR columns per tile; KC rows of k per chunk where a product is chunked. */
enum { MT_FMA_NR = 2 * MT_FMA_VW, MT_FMA_KC = 256 };

static inline size_t mt_round_up(size_t x, size_t m)
{
    return (x + m - 1) / m * m;
}

/* c[r][j] (+)= sum_{k < kc} ap[k][r] b[k][j] for r < MR, j < NR: ap packed
 * [kc][MR] (mt_fma_pack), b and c rows ldb and ldc floats apart (any
 * alignment); first = 1 starts from 0, else continues the chains in c. */
void mt_fma_kernel_ab(int kc, const float *ap, const float *b, size_t ldb, float *c, size_t ldc,
                      int first);

/* The same for MR_SMALL rows, ap packed [kc][MR_SMALL]. */
void mt_fma_kernel_ab_small(int kc, const float *ap, const float *b, size_t ldb, float *c,
                            size_t ldc, int first);

/* c[r][j] (+)= sum_{k < K} a[r][k] bp[k][j] for r < MR, j < NR: the MR rows
 * of a read in place (lda apart), bp a packed panel [K][NR] aligned to 64
 * bytes, c rows ldc floats apart; first = 1 starts from 0, else continues
 * the chains in c. */
void mt_fma_kernel_rows(int K, const float *a, size_t lda, const float *bp, float *c, size_t ldc,
                        int first);

/* ap[g][k][r] = a[(g MR + r) rs + k cs] for rows g MR + r < rows (0 past
 * them), k < K: row groups of a strided matrix (cs = 1: rows of a; rs = 1:
 * columns). ap holds round_up(rows, MR) K floats. Serial. */
void mt_fma_pack(int rows, int K, const float *a, size_t rs, size_t cs, float *ap);
/* The same in groups of mr rows (mr = MR or MR_SMALL). */
void mt_fma_pack_rows(int mr, int rows, int K, const float *a, size_t rs, size_t cs, float *ap);

#endif
