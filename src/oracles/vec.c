/* vec.c - grouped, deterministic vector arithmetic for the inner solvers. */
#include "oracles/vec.h"

#define CHUNK 8192

static size_t chunks_per_group(size_t L) { return L ? (L + CHUNK - 1) / CHUNK : 1; }

size_t mt_vec_n_chunks(int G, size_t L) { return (size_t)G * chunks_per_group(L); }

void mt_vec_dot(int G, size_t L, const float *a, const float *b, double *partial, double *out)
{
    const size_t per = chunks_per_group(L);
    const long total = (long)((size_t)G * per);

    #pragma omp parallel for schedule(static)
    for (long c = 0; c < total; c++) {
        size_t g = (size_t)c / per, k = (size_t)c % per;
        size_t lo = g * L + k * CHUNK, hi = g * L + mt_min_sz((k + 1) * CHUNK, L);
        double s = 0.0;
        for (size_t i = lo; i < hi; i++)
            s += (double)a[i] * (double)b[i];
        partial[c] = s;
    }
    for (int g = 0; g < G; g++) {
        double s = 0.0;
        for (size_t k = 0; k < per; k++)
            s += partial[(size_t)g * per + k];
        out[g] = s;
    }
}

void mt_vec_axpy(int G, size_t L, const double *alpha, const float *x, float *y)
{
    const long n = (long)((size_t)G * L);

    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++)
        y[i] += (float)alpha[(size_t)i / L] * x[i];
}

void mt_vec_xpby(int G, size_t L, const float *x, const double *beta, float *y)
{
    const long n = (long)((size_t)G * L);

    #pragma omp parallel for schedule(static)
    for (long i = 0; i < n; i++)
        y[i] = x[i] + (float)beta[(size_t)i / L] * y[i];
}

void mt_vec_lin(size_t n, float a, const float *x, float b, const float *y, float *out)
{
    #pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++)
        out[i] = a * x[i] + b * y[i];
}
