/* reduce.c - bias broadcast and fixed-order sums (double accumulators). */
#include "mtrain/kernels.h"

void mt_add_row_bias(int rows, int cols, const float *bias, float *c, int ldc)
{
#pragma omp parallel for schedule(static)
    for (int i = 0; i < rows; i++) {
        float *ci = c + (size_t)i * ldc;
        for (int j = 0; j < cols; j++)
            ci[j] += bias[j];
    }
}

enum { SUM_CHUNK = 64 };

void mt_sum_rows(int rows, int cols, const float *a, int lda, float *out)
{
    int n_chunks = (cols + SUM_CHUNK - 1) / SUM_CHUNK;

    /* Each chunk of columns is summed down the rows in increasing order. */
#pragma omp parallel for schedule(static)
    for (int t = 0; t < n_chunks; t++) {
        double acc[SUM_CHUNK] = {0};
        int j0 = t * SUM_CHUNK, nj = cols - j0 < SUM_CHUNK ? cols - j0 : SUM_CHUNK;

        for (int i = 0; i < rows; i++) {
            const float *ai = a + (size_t)i * lda + j0;
            for (int j = 0; j < nj; j++)
                acc[j] += ai[j];
        }
        for (int j = 0; j < nj; j++)
            out[j0 + j] = (float)acc[j];
    }
}

double mt_sum_fixed(size_t n, const float *x)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += x[i];
    return s;
}
