/* pool.c - average pooling (non-overlapping, floor mode) and global average
 * pooling for one sample, with their adjoints. */
#include <string.h>

#include "mtrain/kernels.h"

void mt_avgpool_forward(int c, int h, int w, int k, const float *x, float *y)
{
    int oh = h / k, ow = w / k;
    float area = (float)(k * k);

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
