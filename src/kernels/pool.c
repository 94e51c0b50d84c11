/* pool.c - average pooling (non-overlapping, floor mode) and global average
 * pooling for one sample, with their adjoints. The 2x2 windows of even-sized
 * planes take a vector path (AVX-512) computing the same sums in the same
 * order, so both paths give the same bits. */
#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "mtrain/kernels.h"

#if defined(__AVX512F__)
/* One output row of a 2x2 pooling: y[ox] = ((((0 + r0[2ox]) + r0[2ox+1]) +
 * r1[2ox]) + r1[2ox+1]) / 4 for ox < ow, 16 at a time: the scalar loop's
 * operations in its order. */
static void pool2_row(const float *r0, const float *r1, int ow, float *y)
{
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_add_epi32(ev, _mm512_set1_epi32(1));
    const __m512 four = _mm512_set1_ps(4.0f);
    int ox = 0;

    for (; ox + 16 <= ow; ox += 16) {
        __m512 a0 = _mm512_loadu_ps(r0 + 2 * ox), a1 = _mm512_loadu_ps(r0 + 2 * ox + 16);
        __m512 b0 = _mm512_loadu_ps(r1 + 2 * ox), b1 = _mm512_loadu_ps(r1 + 2 * ox + 16);
        __m512 s = _mm512_add_ps(_mm512_setzero_ps(), _mm512_permutex2var_ps(a0, ev, a1));
        s = _mm512_add_ps(s, _mm512_permutex2var_ps(a0, od, a1));
        s = _mm512_add_ps(s, _mm512_permutex2var_ps(b0, ev, b1));
        s = _mm512_add_ps(s, _mm512_permutex2var_ps(b0, od, b1));
        _mm512_storeu_ps(y + ox, _mm512_div_ps(s, four));
    }
    for (; ox < ow; ox++)
        y[ox] = ((((0.0f + r0[2 * ox]) + r0[2 * ox + 1]) + r1[2 * ox]) + r1[2 * ox + 1]) / 4.0f;
}

/* The adjoint of pool2_row: both input rows get dy[ox] / 4 at 2ox, 2ox+1. */
static void unpool2_row(const float *dy, int ow, float *r0, float *r1)
{
    const __m512i lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
    const __m512 four = _mm512_set1_ps(4.0f);
    int ox = 0;

    for (; ox + 16 <= ow; ox += 16) {
        __m512 v = _mm512_div_ps(_mm512_loadu_ps(dy + ox), four);
        __m512 a = _mm512_permutexvar_ps(lo, v), b = _mm512_permutexvar_ps(hi, v);
        _mm512_storeu_ps(r0 + 2 * ox, a);
        _mm512_storeu_ps(r0 + 2 * ox + 16, b);
        _mm512_storeu_ps(r1 + 2 * ox, a);
        _mm512_storeu_ps(r1 + 2 * ox + 16, b);
    }
    for (; ox < ow; ox++) {
        float v = dy[ox] / 4.0f;
        r0[2 * ox] = r0[2 * ox + 1] = r1[2 * ox] = r1[2 * ox + 1] = v;
    }
}
#endif

void mt_avgpool_forward(int c, int h, int w, int k, const float *x, float *y)
{
    int oh = h / k, ow = w / k;
    float area = (float)(k * k);

#if defined(__AVX512F__)
    if (k == 2) {
        for (int ci = 0; ci < c; ci++)
            for (int oy = 0; oy < oh; oy++) {
                const float *r0 = x + ((size_t)ci * h + 2 * oy) * w;
                pool2_row(r0, r0 + w, ow, y + ((size_t)ci * oh + oy) * ow);
            }
        return;
    }
#endif
    for (int ci = 0; ci < c; ci++) {
        const float *xc = x + (size_t)ci * h * w;
        float *yc = y + (size_t)ci * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float sum = 0.0f;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++)
                        sum += xc[(size_t)(oy * k + ki) * w + ox * k + kj];
                yc[oy * ow + ox] = sum / area;
            }
    }
}

void mt_avgpool_backward(int c, int h, int w, int k, const float *dy, float *dx)
{
    int oh = h / k, ow = w / k;
    float area = (float)(k * k);

    memset(dx, 0, sizeof(float) * (size_t)c * h * w);
#if defined(__AVX512F__)
    if (k == 2) {
        for (int ci = 0; ci < c; ci++)
            for (int oy = 0; oy < oh; oy++) {
                float *r0 = dx + ((size_t)ci * h + 2 * oy) * w;
                unpool2_row(dy + ((size_t)ci * oh + oy) * ow, ow, r0, r0 + w);
            }
        return;
    }
#endif
    for (int ci = 0; ci < c; ci++) {
        float *dxc = dx + (size_t)ci * h * w;
        const float *dyc = dy + (size_t)ci * oh * ow;
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float v = dyc[oy * ow + ox] / area;
                for (int ki = 0; ki < k; ki++)
                    for (int kj = 0; kj < k; kj++)
                        dxc[(size_t)(oy * k + ki) * w + ox * k + kj] = v;
            }
    }
}

void mt_gap_forward(int c, int hw, const float *x, float *y)
{
    for (int ci = 0; ci < c; ci++)
        y[ci] = (float)(mt_sum_fixed((size_t)hw, x + (size_t)ci * hw) / hw);
}

void mt_gap_backward(int c, int hw, const float *dy, float *dx)
{
    for (int ci = 0; ci < c; ci++) {
        float v = (float)((double)dy[ci] / hw);
        for (int j = 0; j < hw; j++)
            dx[(size_t)ci * hw + j] = v;
    }
}
