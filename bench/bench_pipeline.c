/*
 * bench_pipeline.c - every rank's share of a training step: runs the same
 * mt_pipeline_train_step as the mtrain executable (options parsed by the
 * executable's own parser, so defaults agree) on a random batch, and prints
 * each rank's median t_compute, t_wait and t_weights and the wall step time.
 * mtrain's metrics.csv holds rank 0's figures only; this shows all ranks.
 *
 * usage: mpirun -n S bench_pipeline [mtrain options] --steps N
 *        (warm-up: the first 2 steps are not counted)
 * Output: "pipeline ranks=S threads=T micro=M step_s=..." then one
 * "rank r ops a..b compute_s=... wait_s=... weights_s=..." per rank. Not a
 * test.
 */
#include <mpi.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "cli/options.h"

enum { WARMUP = 2, MAX_STEPS = 256 };


/* Random inputs in [-1, 1) and labels 0..9 (the stage's own buffers). */
static void fill_batch(mt_pipeline *p, const mt_model *m, int batch, int step)
{
    mt_rng rng = mt_rng_make(1234, (uint64_t)step);
    float *x = mt_pipeline_input(p);
    int32_t *labels = mt_pipeline_labels(p);

    for (size_t i = 0; x && i < (size_t)batch * mt_shape_size(m->in); i++)
        x[i] = 2.0f * mt_rng_uniform(&rng) - 1.0f;
    for (int i = 0; labels && i < batch; i++)
        labels[i] = (int32_t)(mt_rng_uniform(&rng) * 10.0f) % 10;
}

/* Time `steps` steps; t[k][i] = step i's figure k (wall, compute, wait, weights). */
static mt_status time_steps(mt_pipeline *p, const mt_model *m, int batch, int steps,
                            double t[4][MAX_STEPS])
{
    for (int s = 0; s < WARMUP + steps; s++) {
        mt_step_stats st;
        fill_batch(p, m, batch, s);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = mt_time_now();
        MT_CHECK(mt_pipeline_train_step(p, &st));
        double wall = mt_time_now() - t0;
        if (s >= WARMUP) {
            t[0][s - WARMUP] = wall;
            t[1][s - WARMUP] = st.t_compute;
            t[2][s - WARMUP] = st.t_wait;
            t[3][s - WARMUP] = st.t_weights;
        }
    }
    return MT_OK;
}

static void report(mt_pipeline *p, const mt_options *o, int steps, double t[4][MAX_STEPS])
{
    int rank = mt_pipeline_rank(p), size = mt_pipeline_size(p);
    const int *first = mt_pipeline_stage_first(p);
    double mine[4], *all = malloc(sizeof(double) * 4 * (size_t)size);

    for (int k = 0; k < 4; k++)
        mine[k] = bench_median(t[k], steps);
    MPI_Gather(mine, 4, MPI_DOUBLE, all, 4, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (rank == 0 && all) {
        printf("pipeline net=%s oracle=%s ranks=%d threads=%d micro=%d batch=%d steps=%d "
               "step_s=%.5f images_per_s=%.2f\n",
               o->net, o->oracle_name, size, o->threads, o->pipe.micro_batches, o->pipe.batch,
               steps, all[0], o->pipe.batch / all[0]);
        for (int r = 0; r < size; r++)
            printf("rank %d ops %d..%d compute_s=%.5f wait_s=%.5f weights_s=%.5f\n", r, first[r],
                   first[r + 1] - 1, all[4 * r + 1], all[4 * r + 2], all[4 * r + 3]);
    }
    free(all);
}

static int run(mt_options *o)
{
    static double t[4][MAX_STEPS];
    mt_shape in = {3, 32, 32};
    mt_model *m = NULL;
    mt_pipeline *p = NULL;
    int steps = (int)o->steps, code = 1;

    if (steps < 1 || steps > MAX_STEPS) {
        fprintf(stderr, "bench_pipeline: --steps 1..%d\n", MAX_STEPS);
        return 2;
    }
    if (mt_model_build(o->net, in, 10, &m) == MT_OK &&
        mt_pipeline_create(MPI_COMM_WORLD, m, &o->pipe, &p) == MT_OK &&
        mt_pipeline_init_params(p, o->seed) == MT_OK &&
        time_steps(p, m, o->pipe.batch, steps, t) == MT_OK) {
        report(p, o, steps, t);
        code = 0;
    } else {
        fprintf(stderr, "bench_pipeline: %s\n", mt_error_message());
    }
    mt_pipeline_destroy(&p);
    mt_model_destroy(&m);
    return code;
}

int main(int argc, char **argv)
{
    mt_options o;
    char err[512] = "";
    int provided, code, size;

    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (mt_options_parse(argc, argv, &o, err, sizeof err) != MT_OK) {
        fprintf(stderr, "bench_pipeline: %s\n", err);
        MPI_Finalize();
        return 2;
    }
    if (!o.micro_set)
        o.pipe.micro_batches = size;
    if (o.threads == 0)
        o.threads = 1;
    omp_set_num_threads(o.threads);
    code = run(&o);
    if (code != 0)
        MPI_Abort(MPI_COMM_WORLD, code);
    MPI_Finalize();
    return code;
}
