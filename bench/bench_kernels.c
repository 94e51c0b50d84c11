/*
 * bench_kernels.c - times forward + vjp_x + vjp_w of the nets' heavy ops at
 * batch 128 with 1 and 2 OpenMP threads, and a large single-threaded and
 * a two-threaded cblas_sgemm for reference (the "peak" the ops are judged
 * against). Usage: bench_kernels [repeats]. Not a test.
 *
 * With one thread the times are the calling thread's CPU time, which does
 * not count time slices lost to other processes on a shared machine; with
 * two threads they are wall-clock times (best of the repeats).
 */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench_util.h"
#include "mtrain/op.h"

enum { BATCH = 128 };

static int g_threads = 1;


/* Best time of `reps` runs of forward, vjp_x, vjp_w; prints one line. */
static int bench_op(const char *label, mt_op *op, int threads, int reps)
{
    size_t nx = mt_shape_size(op->in) * BATCH, ny = mt_shape_size(op->out) * BATCH;
    float *w = bench_filled(op->n_params, 1), *x = bench_filled(nx, 2);
    float *dy = bench_filled(ny, 3), *y = bench_filled(ny, 4), *dx = bench_filled(nx, 5);
    float *dw = bench_filled(op->n_params, 6);
    double best[3] = {1e30, 1e30, 1e30};

    if (!w || !x || !dy || !y || !dx || !dw)
        return 1;
    omp_set_num_threads(g_threads = threads);
    for (int r = 0; r <= reps; r++) { /* run 0 warms up (scratch growth) */
        double t[4];
        t[0] = bench_now(g_threads);
        if (op->vt->forward(op, w, BATCH, x, y) != MT_OK)
            return 1;
        t[1] = bench_now(g_threads);
        if (op->vt->vjp_x(op, w, BATCH, x, dy, dx) != MT_OK)
            return 1;
        t[2] = bench_now(g_threads);
        if (op->vt->vjp_w(op, w, BATCH, x, dy, dw) != MT_OK)
            return 1;
        t[3] = bench_now(g_threads);
        for (int k = 0; r > 0 && k < 3; k++)
            best[k] = t[k + 1] - t[k] < best[k] ? t[k + 1] - t[k] : best[k];
    }
    double gf = op->flops * BATCH / 1e9, total = best[0] + best[1] + best[2];
    printf("%-28s %d thr: fwd %7.2f ms (%5.1f GF/s)  vjp_x %7.2f ms (%5.1f)  "
           "vjp_w %7.2f ms (%5.1f)  total %7.2f ms (%5.1f GF/s)\n",
           label, threads, 1e3 * best[0], gf / best[0], 1e3 * best[1], gf / best[1], 1e3 * best[2],
           gf / best[2], 1e3 * total, 3 * gf / total);
    mt_free(w), mt_free(x), mt_free(dy), mt_free(y), mt_free(dx), mt_free(dw);
    return 0;
}

static void bench_sgemm(int threads, int reps)
{
    int m = 2048;
    float *a = bench_filled((size_t)m * m, 7), *b = bench_filled((size_t)m * m, 8),
          *c = bench_filled((size_t)m * m, 9);
    double best = 1e30;

    omp_set_num_threads(g_threads = threads);
    for (int r = 0; r <= reps; r++) {
        double t = bench_now(g_threads);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, m, m, 1.0f, a, m, b, m, 0.0f, c,
                    m);
        t = bench_now(g_threads) - t;
        best = r > 0 && t < best ? t : best;
    }
    printf("%-28s %d thr: %7.2f ms, %5.1f GF/s\n", "sgemm 2048^3 (reference)", threads, 1e3 * best,
           2.0 * m * m * m / best / 1e9);
    mt_free(a), mt_free(b), mt_free(c);
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    mt_shape in = {96, 32, 32};
    mt_op *dense = NULL, *conv = NULL;

    if (mt_op_dense_create("dense", 3072, 4000, &dense) != MT_OK ||
        mt_op_conv2d_create("conv", in, 96, 3, 1, 1, &conv) != MT_OK) {
        fprintf(stderr, "bench_kernels: %s\n", mt_error_message());
        return 1;
    }
    printf("OpenBLAS core: %s, batch %d, best of %d\n", openblas_get_corename(), BATCH, reps);
    for (int t = 1; t <= 2; t++) {
        bench_sgemm(t, reps);
        if (bench_op("dense 3072->4000", dense, t, reps) ||
            bench_op("conv 96->96 3x3 p1 32x32", conv, t, reps)) {
            fprintf(stderr, "bench_kernels: %s\n", mt_error_message());
            return 1;
        }
    }
    mt_op_destroy(&dense);
    mt_op_destroy(&conv);
    return 0;
}
