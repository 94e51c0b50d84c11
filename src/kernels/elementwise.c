/*
 * elementwise.c - ReLU and its derivative mask over whole arrays, OpenMP
 * over elements. Arrays of activations are larger than the caches, so the
 * results are written with streaming stores when the arrays are long and
 * 64-byte aligned: no read-for-ownership of the destination, half the
 * memory traffic. Both paths compute the same values (the scalar
 * expressions below, element by element).
 */
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "mtrain/kernels.h"

enum { VW = 16, STREAM_MIN = 1 << 20 }; /* floats; below this the caches win */

static int streamable(size_t n, const void *a, const void *b, const void *c)
{
#if defined(__AVX512F__)
    return n >= STREAM_MIN && (((uintptr_t)a | (uintptr_t)b | (uintptr_t)c) & 63) == 0;
#else
    (void)n, (void)a, (void)b, (void)c;
    return 0;
#endif
}

void mt_relu_forward(size_t n, const float *x, float *y)
{
    if (!streamable(n, x, y, y)) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            y[i] = x[i] <= 0.0f ? 0.0f : x[i];
        return;
    }
#if defined(__AVX512F__)
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t j = 0; j < n / VW; j++) {
            __m512 v = _mm512_load_ps(x + j * VW);
            __mmask16 le = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LE_OQ);
            _mm512_stream_ps(y + j * VW, _mm512_mask_mov_ps(v, le, _mm512_setzero_ps()));
        }
        _mm_sfence();
    }
    for (size_t i = n / VW * VW; i < n; i++)
        y[i] = x[i] <= 0.0f ? 0.0f : x[i];
#endif
}

void mt_relu_mask(size_t n, const float *x, const float *v, float *out)
{
    if (!streamable(n, x, v, out)) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++)
            out[i] = x[i] > 0.0f ? v[i] : 0.0f;
        return;
    }
#if defined(__AVX512F__)
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (size_t j = 0; j < n / VW; j++) {
            __mmask16 gt = _mm512_cmp_ps_mask(_mm512_load_ps(x + j * VW), _mm512_setzero_ps(),
                                              _CMP_GT_OQ);
            _mm512_stream_ps(out + j * VW, _mm512_maskz_mov_ps(gt, _mm512_load_ps(v + j * VW)));
        }
        _mm_sfence();
    }
    for (size_t i = n / VW * VW; i < n; i++)
        out[i] = x[i] > 0.0f ? v[i] : 0.0f;
#endif
}
