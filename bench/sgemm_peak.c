/*
 * sgemm_peak.c - the reference peak the kernels are judged against: one
 * large square cblas_sgemm (OpenBLAS, its own threading) at a given thread
 * count, wall clock, best of several runs after a warm-up. Prints
 * openblas_get_config() and the core OpenBLAS picked.
 *
 * usage: sgemm_peak THREADS [N] [reps]     (defaults N = 2048, reps = 5)
 * Output: "sgemm threads=T n=N best_gflops=G median_gflops=M". Not a test.
 */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "mtrain/core.h"

char *openblas_get_config(void);
char *openblas_get_corename(void);
void openblas_set_num_threads(int n);

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1, n = argc > 2 ? atoi(argv[2]) : 2048;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    size_t nn = (size_t)n * n;
    float *a = mt_alloc(4 * nn), *b = mt_alloc(4 * nn), *c = mt_alloc(4 * nn);
    double gf[64];

    if (threads < 1 || n < 64 || reps < 1 || reps > 64 || !a || !b || !c) {
        fprintf(stderr, "usage: sgemm_peak THREADS [N >= 64] [reps 1..64]\n");
        return 2;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    printf("openblas_get_config: %s\nopenblas core: %s\n", openblas_get_config(),
           openblas_get_corename());
    for (int r = -1; r < reps; r++) { /* r = -1 warms up */
        double t = mt_time_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        t = mt_time_now() - t;
        if (r >= 0)
            gf[r] = 2.0 * n * (double)n * n / t / 1e9;
    }
    qsort(gf, (size_t)reps, sizeof *gf, bench_cmp_double);
    printf("sgemm threads=%d n=%d best_gflops=%.1f median_gflops=%.1f\n", threads, n,
           gf[reps - 1], gf[reps / 2]);
    mt_free(a), mt_free(b), mt_free(c);
    return 0;
}
