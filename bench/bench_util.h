/*
 * bench_util.h - what the benchmark programs share: a clock (the calling
 * thread's CPU time when one thread runs, robust to other processes on a
 * shared machine; wall-clock time otherwise), random operands and medians.
 * Header-only: each benchmark is one file.
 */
#ifndef MTRAIN_BENCH_UTIL_H
#define MTRAIN_BENCH_UTIL_H

#include <stdlib.h>
#include <time.h>

#include "mtrain/core.h"

/* Seconds: thread CPU time when threads == 1, else wall-clock time. */
static inline double bench_now(int threads)
{
    struct timespec ts;

    if (threads > 1)
        return mt_time_now();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* n floats uniform in [-1, 1) from `seed` (NULL when out of memory). */
static inline float *bench_filled(size_t n, uint64_t seed)
{
    float *p = mt_alloc(sizeof(float) * (n ? n : 1));
    mt_rng rng = mt_rng_make(seed, 1);

    for (size_t i = 0; p && i < n; i++)
        p[i] = 2.0f * mt_rng_uniform(&rng) - 1.0f;
    return p;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (sorts v). */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif
