/*
 * bench_ops.c - per-op costs of a net's gd step: forward, vjp_x and vjp_w of
 * every op of mlp, convnet or allcnn at a given batch and thread count, as
 * the pipeline calls them (same ops, same buffers' shapes). The figures feed
 * the scaling model (bench/scaling.md) and show where a step's time goes.
 *
 * usage: bench_ops NET [threads] [reps] [batch] [op name]
 * Prints one "op" line per op (milliseconds, medians of reps runs after a
 * warm-up), then a "total" line. With one thread the times are the thread's
 * CPU time (robust to other processes on a shared machine); with more they
 * are wall-clock times. Not a test.
 */
#define _POSIX_C_SOURCE 200809L
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "mtrain/model.h"
#include "mtrain/optim.h"

enum { MAX_REPS = 64 };

static int g_threads = 1;


/* Median seconds of forward, vjp_x, vjp_w (t[2] = 0 without parameters). */
static mt_status time_op(mt_op *op, int batch, int reps, double t[3])
{
    size_t nx = mt_shape_size(op->in) * batch, ny = mt_shape_size(op->out) * batch;
    float *w = bench_filled(op->n_params, 1), *x = bench_filled(nx, 2);
    float *dy = bench_filled(ny, 3), *y = bench_filled(ny, 4), *dx = bench_filled(nx, 5);
    float *dw = bench_filled(op->n_params, 6);
    double s[3][MAX_REPS];
    mt_status st = MT_OK;

    if (!w || !x || !dy || !y || !dx || !dw)
        st = MT_FAIL(MT_ERR_MEM, "bench_ops: out of memory");
    for (int r = 0; st == MT_OK && r <= reps; r++) { /* run 0 warms up */
        double t0 = bench_now(g_threads);
        st = op->vt->forward(op, w, batch, x, y);
        double t1 = bench_now(g_threads);
        if (st == MT_OK)
            st = op->vt->vjp_x(op, w, batch, x, dy, dx);
        double t2 = bench_now(g_threads);
        if (st == MT_OK && op->vt->vjp_w)
            st = op->vt->vjp_w(op, w, batch, x, dy, dw);
        double t3 = bench_now(g_threads);
        if (r > 0)
            s[0][r - 1] = t1 - t0, s[1][r - 1] = t2 - t1, s[2][r - 1] = t3 - t2;
    }
    for (int k = 0; st == MT_OK && k < 3; k++)
        t[k] = bench_median(s[k], reps);
    mt_free(w), mt_free(x), mt_free(dy), mt_free(y), mt_free(dx), mt_free(dw);
    return st;
}

/* Median seconds of one SGD update (momentum 0.9, as gd's default) of n
 * parameters, plus the weight-decay pass the gd rule makes over them. */
static mt_status time_update(size_t n, int reps, double *t)
{
    mt_optim_config cfg = {.kind = MT_OPTIM_SGD, .lr = 0.05, .momentum = 0.9};
    float *w = bench_filled(n, 7), *g = bench_filled(n, 8);
    double s[MAX_REPS];
    mt_optim *opt = NULL;

    if (!w || !g)
        return MT_FAIL(MT_ERR_MEM, "bench_ops: out of memory");
    MT_CHECK(mt_optim_create(&cfg, n, &opt));
    for (int r = 0; r <= reps; r++) {
        double t0 = bench_now(g_threads);
        for (size_t i = 0; i < n; i++)
            g[i] += 1e-6f * w[i];
        mt_optim_step(opt, w, g);
        if (r > 0)
            s[r - 1] = bench_now(g_threads) - t0;
    }
    *t = bench_median(s, reps);
    mt_optim_destroy(&opt);
    mt_free(w), mt_free(g);
    return MT_OK;
}

int main(int argc, char **argv)
{
    const char *net = argc > 1 ? argv[1] : "allcnn";
    int threads = argc > 2 ? atoi(argv[2]) : 1, reps = argc > 3 ? atoi(argv[3]) : 5;
    int batch = argc > 4 ? atoi(argv[4]) : 128;
    const char *only = argc > 5 ? argv[5] : NULL;
    mt_shape in = {3, 32, 32};
    mt_model *m = NULL;
    double sum[3] = {0, 0, 0}, flops = 0;

    if (threads < 1 || reps < 1 || reps > MAX_REPS || batch < 1) {
        fprintf(stderr, "usage: bench_ops NET [threads] [reps 1..%d] [batch]\n", MAX_REPS);
        return 2;
    }
    if (mt_model_build(net, in, 10, &m) != MT_OK) {
        fprintf(stderr, "bench_ops: %s\n", mt_error_message());
        return 2;
    }
    omp_set_num_threads(g_threads = threads);
    printf("# %s, batch %d, %d threads, median of %d (ms; GF/s = op flops x batch / time)\n",
           net, batch, threads, reps);
    for (int i = 0; i < m->n_ops; i++) {
        mt_op *op = m->ops[i];
        double t[3] = {0, 0, 0}, gf = op->flops * batch / 1e9;
        if (only && strcmp(only, op->name) != 0)
            continue;
        if (time_op(op, batch, reps, t) != MT_OK) {
            fprintf(stderr, "bench_ops: %s\n", mt_error_message());
            return 1;
        }
        printf("op %-14s %-8s in %7zu out %7zu params %9zu mflop %8.2f "
               "fwd %8.3f vjp_x %8.3f vjp_w %8.3f GF/s %6.1f %6.1f %6.1f\n",
               op->name, op->vt->kind, mt_shape_size(op->in), mt_shape_size(op->out),
               op->n_params, op->flops / 1e6, 1e3 * t[0], 1e3 * t[1],
               1e3 * t[2], t[0] > 0 ? gf / t[0] : 0, t[1] > 0 ? gf / t[1] : 0,
               t[2] > 0 && op->n_params ? gf / t[2] : 0);
        for (int k = 0; k < 3; k++)
            sum[k] += t[k];
        flops += op->flops;
    }
    double tot = sum[0] + sum[1] + sum[2], t_up = 0;
    if (time_update(mt_model_n_params(m), reps, &t_up) != MT_OK) {
        fprintf(stderr, "bench_ops: %s\n", mt_error_message());
        return 1;
    }
    printf("update params %zu sgd_ms %.3f\n", mt_model_n_params(m), 1e3 * t_up);
    /* mtrain's own stage cuts (mt_model_partition) for every possible S */
    for (int S = 1; S <= mt_model_n_param_ops(m); S++) {
        int first[65];
        if (S > 64 || mt_model_partition(m, S, first) != MT_OK)
            break;
        printf("partition %d:", S);
        for (int k = 0; k <= S; k++)
            printf(" %d", first[k]);
        printf("\n");
    }
    printf("total %s threads %d fwd %.3f vjp_x %.3f vjp_w %.3f sum %.3f ms, %.1f GF/s "
           "(3 x forward flops)\n",
           net, threads, 1e3 * sum[0], 1e3 * sum[1], 1e3 * sum[2], 1e3 * tot,
           3 * flops * batch / 1e9 / tot);
    mt_model_destroy(&m);
    return 0;
}
