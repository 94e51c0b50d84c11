/*
 * bench_closed.c - timing and accuracy of the dense weight A solve at the
 * MLP's first layer size (n = 128, in = 3072, out = 4000). Not part of ctest
 * (it takes tens of seconds); build by hand against the library:
 *   cc -O2 -fopenmp -Iinclude -Isrc -I/usr/include/x86_64-linux-gnu/openblas-openmp \
 *      tests/bench/bench_closed.c build/libmtrain_core.a \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-openmp \
 *      -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm -o build/bench_closed
 * Usage: bench_closed [n in out s decay]. The accuracy reference of the
 * weight solve is the NORMAL side, whose products all accumulate in double;
 * the input A solve is timed on both sides and the two compared.
 */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/closed.h"

static void fill(float *x, size_t n, float lo, float hi, uint64_t seed, int relu)
{
    mt_rng rng = mt_rng_make(seed, 1);
    for (size_t i = 0; i < n; i++) {
        float v = lo + (hi - lo) * mt_rng_uniform(&rng);
        x[i] = relu && v < 0.0f ? 0.0f : v;
    }
}

static double rel_err(const float *y, const float *ref, size_t n)
{
    double num = 0.0, den = 1e-30;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)y[i] - ref[i]));
        den = fmax(den, fabs((double)ref[i]));
    }
    return num / den;
}

static double timed(const mt_subproblem *sp, mt_closed_side side, size_t n, int in, int out,
                    const float *w, const float *x, const float *l, float *y, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = mt_time_now();
        if (mt_dense_solve_w(sp, side, n, in, out, w, x, l, y) != MT_OK) {
            fprintf(stderr, "solve failed: %s\n", mt_error_message());
            exit(1);
        }
        best = fmin(best, mt_time_now() - t0);
    }
    return best;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 128;
    int in = argc > 2 ? atoi(argv[2]) : 3072, out = argc > 3 ? atoi(argv[3]) : 4000;
    mt_subproblem sp = {MT_SUB_A, argc > 4 ? atof(argv[4]) : 1.0, argc > 5 ? atof(argv[5]) : 0.0};
    size_t np = (size_t)out * (in + 1);
    float *w = malloc(np * 4), *x = malloc(n * in * 4), *l = malloc(n * out * 4);
    float *y1 = malloc(np * 4), *y2 = malloc(np * 4), *yr = malloc(np * 4);
    float bound = 1.0f / sqrtf((float)in);

    fill(w, np, -bound, bound, 1, 0);
    fill(x, n * in, -1.0f, 1.0f, 2, 1); /* ReLU-like activations */
    fill(l, n * out, -1e-2f, 1e-2f, 3, 0);

    omp_set_num_threads(1);
    double t1 = timed(&sp, MT_CLOSED_AUTO, n, in, out, w, x, l, y1, 3);
    omp_set_num_threads(2);
    double t2 = timed(&sp, MT_CLOSED_AUTO, n, in, out, w, x, l, y2, 3);
    printf("n=%zu in=%d out=%d s=%g decay=%g: AUTO %.3f s (1 thread), %.3f s (2 threads), "
           "bit-identical %s\n", n, in, out, sp.s, sp.decay, t1, t2,
           memcmp(y1, y2, np * 4) == 0 ? "yes" : "NO");
    double tr = timed(&sp, n < (size_t)in + 1 ? MT_CLOSED_NORMAL : MT_CLOSED_DUAL, n, in, out,
                      w, x, l, yr, 1);
    printf("other side %.3f s (2 threads); relative difference %.3g\n", tr,
           rel_err(y2, yr, np));

    /* the input A problem of the same layer, both sides */
    mt_subproblem spx = {MT_SUB_A, sp.s, 0.0};
    float *yx1 = malloc(n * in * 4), *yx2 = malloc(n * in * 4);
    for (int side = MT_CLOSED_NORMAL; side <= MT_CLOSED_DUAL; side++) {
        double t0 = mt_time_now();
        if (mt_dense_solve_x(&spx, side, n, in, out, w, l, side == MT_CLOSED_DUAL ? yx2 : yx1)
            != MT_OK)
            return 1;
        printf("input A, %s side (%d x %d): %.3f s (2 threads)\n",
               side == MT_CLOSED_DUAL ? "DUAL" : "NORMAL", side == MT_CLOSED_DUAL ? out : in,
               side == MT_CLOSED_DUAL ? out : in, mt_time_now() - t0);
    }
    printf("input A, relative difference between the sides %.3g\n",
           rel_err(yx1, yx2, n * in));
    return 0;
}
