/*
 * run.c - the training driver: set up (data, model, pipeline, resume), loop
 * over steps (batches, progress, metrics, evaluation, checkpoints), finish.
 */
#define _GNU_SOURCE
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/boundary.h"
#include "cli/control.h"
#include "cli/report.h"
#include "cli/resume.h"
#include "cli/run.h"
#include "cli/signals.h"
#include "cli/snapshot.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    mt_options *o;
    mt_model *model;
    mt_pipeline *pipe;
    mt_dataset *train, *test;
    long n_train, n_test;     /* known on every rank */
    mt_norm norm;
    uint32_t *order;          /* this epoch's permutation (ranks with data) */
    uint32_t *identity;       /* test order */
    long order_epoch;
    long steps_per_epoch, total_steps, step;
    mt_metrics metrics;
    double t_start;
    double t_last_ckpt;       /* rank 0: when the last checkpoint was written */
    int training;             /* failures now exit 1, not 2 */
    int preempted;            /* the signal that stopped the run, 0 if none */
    char resumed_from[1100];  /* checkpoint file the run continues, "" if none */
} run_ctx;

int mt_default_threads(MPI_Comm comm)
{
    MPI_Comm node;
    cpu_set_t set;
    int local = 1, mine, online = (int)sysconf(_SC_NPROCESSORS_ONLN);

    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &local);
    MPI_Comm_free(&node);
    mine = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : online;
    /* A rank already bound to fewer cores than the node has owns those cores. */
    if (mine < online)
        return mine > 0 ? mine : 1;
    return mine / local > 0 ? mine / local : 1;
}

/* Bad input is a usage error (exit 2) until training starts. */
static int agree(run_ctx *c, mt_status st) { return mt_agree_exit(c->comm, st, !c->training); }

/* A failure met by this rank alone in the middle of a step: others may be
 * blocked on a message from it, so the whole job ends here. */
static void die(run_ctx *c, long step)
{
    fprintf(stderr, "mtrain: [rank %d] step %ld: %s (at %s)\n", c->rank, step,
            mt_error_message(), mt_error_where());
    fflush(stderr);
    MPI_Abort(c->comm, MT_EXIT_FAILURE);
}

static mt_status load_data(run_ctx *c, const char *dir)
{
    const int need = c->rank == 0 || c->rank == c->size - 1;
    long sizes[2] = {0, 0};

    if (need) {
        MT_CHECK(mt_dataset_load(dir, c->o->dataset, 1, &c->train));
        MT_CHECK(mt_dataset_load(dir, c->o->dataset, 0, &c->test));
        MT_CHECK(mt_norm_fit(c->train, &c->norm));
        sizes[0] = (long)c->train->n;
        sizes[1] = (long)c->test->n;
        c->order = malloc(c->train->n * sizeof *c->order);
        c->identity = malloc(c->test->n * sizeof *c->identity);
        if (!c->order || !c->identity)
            return MT_FAIL(MT_ERR_MEM, "out of memory for the sample order");
        for (size_t i = 0; i < c->test->n; i++)
            c->identity[i] = (uint32_t)i;
        c->order_epoch = -1;
    }
    c->n_train = sizes[0];
    c->n_test = sizes[1];
    return MT_OK;
}

/* Rank 0 knows the sizes; everybody needs them to count steps. */
static void share_sizes(run_ctx *c)
{
    long sizes[2] = {c->n_train, c->n_test};
    MPI_Bcast(sizes, 2, MPI_LONG, 0, c->comm);
    c->n_train = sizes[0];
    c->n_test = sizes[1];
}

static mt_status plan_steps(run_ctx *c)
{
    const int B = c->o->pipe.batch;

    c->steps_per_epoch = c->n_train / B;
    if (c->steps_per_epoch < 1)
        return MT_FAIL(MT_ERR_ARG, "--batch %d is larger than the %ld training samples", B,
                       c->n_train);
    c->total_steps = c->o->steps > 0 ? c->o->steps : c->o->epochs * c->steps_per_epoch;
    return MT_OK;
}

static mt_status setup(run_ctx *c, char *dir, size_t dir_cap)
{
    mt_shape in;

    MT_CHECK(mt_data_locate(c->o->data[0] ? c->o->data : NULL, &c->o->dataset, dir, dir_cap));
    in = c->o->dataset == MT_DATASET_MNIST ? (mt_shape){1, 28, 28} : (mt_shape){3, 32, 32};
    MT_CHECK(mt_model_build(c->o->net, in, 10, &c->model));
    if (strcmp(c->o->granularity, "layer") == 0)
        MT_CHECK(mt_model_group_layers(c->model));
    if (!c->o->micro_set) {
        int max_micro = (c->o->pipe.batch + MT_BLOCK - 1) / MT_BLOCK;
        c->o->pipe.micro_batches = c->size < max_micro ? c->size : max_micro;
    }
    return mt_pipeline_create(c->comm, c->model, &c->o->pipe, &c->pipe);
}

static void feed_batch(run_ctx *c)
{
    const int B = c->o->pipe.batch;
    long epoch = c->step / c->steps_per_epoch, pos = c->step % c->steps_per_epoch;
    float *x = mt_pipeline_input(c->pipe);
    int32_t *labels = mt_pipeline_labels(c->pipe);

    if (!x && !labels)
        return;
    if (epoch != c->order_epoch) {
        mt_data_shuffle(c->o->seed, (uint64_t)epoch, c->train->n, c->order);
        c->order_epoch = epoch;
    }
    mt_data_gather(c->train, &c->norm, c->order, (size_t)(pos * B), B, x, labels);
}

static mt_status evaluate(run_ctx *c, mt_step_stats *total)
{
    const int B = c->o->pipe.batch;
    double loss = 0.0, correct = 0.0;

    for (long first = 0; first < c->n_test; first += B) {
        int n = (int)(c->n_test - first < B ? c->n_test - first : B);
        float *x = mt_pipeline_input(c->pipe);
        int32_t *labels = mt_pipeline_labels(c->pipe);
        mt_step_stats s;
        if (x || labels)
            mt_data_gather(c->test, &c->norm, c->identity, (size_t)first, n, x, labels);
        MT_CHECK(mt_pipeline_evaluate(c->pipe, n, &s));
        loss += s.loss * n;
        correct += round(s.accuracy * n);
    }
    memset(total, 0, sizeof *total);
    total->n = (int)c->n_test;
    total->loss = loss / (double)c->n_test;
    total->accuracy = correct / (double)c->n_test;
    return MT_OK;
}

static void log_eval(run_ctx *c, const mt_step_stats *s)
{
    long epoch = c->step / c->steps_per_epoch;
    double epochs = (double)c->step / (double)c->steps_per_epoch;
    double elapsed = mt_time_now() - c->t_start;

    mt_log(MT_LOG_INFO, "eval  step %ld (%.2f epochs): test loss %.4f, accuracy %.2f%% (%d images)",
           c->step, epochs, s->loss, 100.0 * s->accuracy, s->n);
    if (c->rank == 0)
        mt_metrics_eval(&c->metrics, c->step, epoch, s, elapsed);
}

static int due(long step, long every) { return every > 0 && step % every == 0; }

/* After step c->step + 1: the ranks agree on signals, the checkpoint clock
 * and non-finite values (the loss is shared, parameters scanned per stage). */
static mt_status end_of_step(run_ctx *c, const mt_step_stats *s, mt_boundary *b)
{
    const double minutes = c->o->checkpoint_minutes;
    int time_due = minutes > 0 && mt_time_now() - c->t_last_ckpt >= 60.0 * minutes;

    MT_CHECK(mt_boundary_agree(c->comm, c->pipe, c->model, time_due, b));
    if (b->bad_op >= 0)
        return MT_FAIL(MT_ERR_NUMERIC, "step %ld: non-finite parameters in op %s (%s, stage of "
                       "rank %d) after the update (training loss %g); stopping without writing "
                       "a checkpoint", c->step + 1, c->model->ops[b->bad_op]->name,
                       c->model->ops[b->bad_op]->vt->kind, b->bad_rank, s->loss);
    if (!isfinite(s->loss))
        return MT_FAIL(MT_ERR_NUMERIC, "step %ld: the training loss is %g (at the loss, stage "
                       "of rank %d; parameters finite); stopping without writing a checkpoint",
                       c->step + 1, s->loss, c->size - 1);
    return MT_OK;
}

/* Write a checkpoint when one is due, then prune old ones (--keep) and stale writes. */
static mt_status checkpoint_if_due(run_ctx *c, const mt_boundary *b)
{
    mt_snapshot_pos pos = {c->step, c->steps_per_epoch, c->n_train, ""};
    char file[256];

    if (!due(c->step, c->o->checkpoint_every) && c->step != c->total_steps && !b->time_due &&
        !b->signal)
        return MT_OK;
    MT_CHECK(mt_snapshot_save(c->comm, c->pipe, c->model, c->o, &pos, file, sizeof file));
    c->t_last_ckpt = mt_time_now();
    if (c->rank == 0)
        mt_ckpt_prune(c->o->checkpoint_dir, c->o->net, c->o->keep, c->step);
    if (b->signal && c->step < c->total_steps) {
        mt_log(MT_LOG_INFO, "%s received: stopped at step %ld after writing %s/%s; exit code "
               "%d asks to requeue (--resume auto continues)", mt_signal_name(b->signal),
               c->step, c->o->checkpoint_dir, file, MT_EXIT_REQUEUE);
        c->preempted = b->signal;
    }
    return MT_OK;
}

/* The per-stage figures of a logged step (collective). */
static mt_status report_stages(run_ctx *c)
{
    mt_stage_stats *all = c->rank == 0 ? calloc((size_t)c->size, sizeof *all) : NULL;
    mt_status st;

    if (c->rank == 0 && !all)
        return MT_FAIL(MT_ERR_MEM, "out of memory for stage figures");
    st = mt_pipeline_gather_stages(c->pipe, all);
    if (st == MT_OK && c->rank == 0)
        mt_metrics_stages(&c->metrics, c->step, all, c->size);
    free(all);
    return st;
}

static mt_status train_loop(run_ctx *c)
{
    const mt_options *o = c->o;
    double t_log = mt_time_now();
    long steps_logged = 0;
    mt_boundary b;

    c->t_start = c->t_last_ckpt = mt_time_now();
    while (c->step < c->total_steps && !c->preempted) {
        mt_step_stats s;
        int logged = due(c->step + 1, o->log_every) || c->step + 1 == c->total_steps;
        feed_batch(c);
        mt_pipeline_set_lr(c->pipe, mt_lr_at(&o->lr_schedule, o->pipe.optim.lr, c->step,
                                             c->total_steps));
        mt_pipeline_set_detail(c->pipe, logged);
        if (mt_pipeline_train_step(c->pipe, &s) != MT_OK)
            die(c, c->step + 1);
        MT_CHECK(end_of_step(c, &s, &b));
        c->step++;
        steps_logged++;
        double now = mt_time_now(), ips = steps_logged * o->pipe.batch / (now - t_log);
        if (c->rank == 0)
            mt_metrics_step(&c->metrics, c->step, (c->step - 1) / c->steps_per_epoch, &s, ips,
                            now - c->t_start);
        if (due(c->step, o->log_every) || c->step == c->total_steps) {
            mt_log(MT_LOG_INFO, "step %ld/%ld epoch %ld: loss %.4f, accuracy %.2f%%, "
                   "%.0f images/s, %.1f s", c->step, c->total_steps,
                   (c->step - 1) / c->steps_per_epoch, s.loss, 100.0 * s.accuracy, ips,
                   now - c->t_start);
            if (report_stages(c) != MT_OK)
                die(c, c->step);
            t_log = now;
            steps_logged = 0;
        }
        int epoch_end = c->step % c->steps_per_epoch == 0;
        if ((o->eval_every ? due(c->step, o->eval_every) : epoch_end) ||
            c->step == c->total_steps) {
            mt_step_stats e;
            if (evaluate(c, &e) != MT_OK)
                die(c, c->step);
            log_eval(c, &e);
            t_log = mt_time_now();
        }
        MT_CHECK(checkpoint_if_due(c, &b));
    }
    return MT_OK;
}

static void print_start(run_ctx *c, const char *dir)
{
    char desc[2048];

    mt_options_describe(c->o, desc, sizeof desc);
    mt_log(MT_LOG_INFO, "mtrain %s: %d rank%s x %d thread%s", MT_VERSION, c->size,
           mt_plural(c->size), c->o->threads, mt_plural(c->o->threads));
    mt_log(MT_LOG_INFO, "config: %s", desc);
    mt_log(MT_LOG_INFO, "data: %s (%ld training, %ld test images); run directory: %s", dir,
           c->n_train, c->n_test, c->o->run_dir);
    mt_report_model(c->model, mt_pipeline_stage_first(c->pipe), c->size);
    mt_log(MT_LOG_INFO, "training: %ld step%s of %d images (%ld per epoch), %d micro-batch%s",
           c->total_steps, mt_plural(c->total_steps), c->o->pipe.batch, c->steps_per_epoch,
           c->o->pipe.micro_batches, c->o->pipe.micro_batches == 1 ? "" : "es");
}

/* --resume PATH or auto: the pipeline's state and the step; a run directory
 * not given on the command line is the one the checkpoint names. */
static mt_status resume(run_ctx *c)
{
    mt_snapshot_pos pos = {0, c->steps_per_epoch, c->n_train, ""};

    if (strcmp(c->o->resume, "auto") == 0) {
        MT_CHECK(mt_resume_auto(c->comm, c->pipe, c->model, c->o, &pos, c->resumed_from,
                                sizeof c->resumed_from));
    } else {
        MT_CHECK(mt_snapshot_load(c->comm, c->pipe, c->model, c->o, c->o->resume, &pos));
        snprintf(c->resumed_from, sizeof c->resumed_from, "%s", c->o->resume);
    }
    c->step = pos.step;
    if (c->resumed_from[0] && !c->o->run_dir[0])
        snprintf(c->o->run_dir, sizeof c->o->run_dir, "%s", pos.run_dir);
    return MT_OK;
}

/* The checkpoint directory must take files and be this run's alone;
 * metrics.csv continues at the resumed step (rows an interrupted attempt
 * wrote after it are dropped). */
static mt_status prepare_outputs(run_ctx *c)
{
    mt_status st = MT_OK;

    MT_CHECK(mt_ckpt_dir_claim(c->comm, c->o->checkpoint_dir, c->o->net));
    if (c->rank == 0 && c->step > 0)
        st = mt_metrics_trim(c->o->run_dir, c->step);
    if (c->rank == 0 && st == MT_OK)
        st = mt_metrics_open(&c->metrics, c->o->run_dir, c->step > 0);
    return st;
}

static void teardown(run_ctx *c)
{
    mt_ckpt_dir_release();
    mt_metrics_close(&c->metrics);
    mt_pipeline_destroy(&c->pipe);
    mt_model_destroy(&c->model);
    mt_dataset_destroy(&c->train);
    mt_dataset_destroy(&c->test);
    free(c->order);
    free(c->identity);
}

int mt_run(MPI_Comm comm, mt_options *o)
{
    run_ctx c = {0};
    char dir[1024] = "";
    int code;

    if (o->task[0]) /* a control task: no data set, its own loop */
        return mt_control_run(comm, o);
    c.comm = comm;
    c.o = o;
    MPI_Comm_rank(comm, &c.rank);
    MPI_Comm_size(comm, &c.size);

    /* Set-up failures are seen by every rank (or agreed on): exit cleanly.
     * A preemption signal (main installed the handlers) only sets a flag,
     * acted on after a step. */
    code = agree(&c, setup(&c, dir, sizeof dir));
    if (code == MT_EXIT_OK)
        code = agree(&c, load_data(&c, dir));
    if (code == MT_EXIT_OK) {
        share_sizes(&c);
        code = agree(&c, plan_steps(&c));
    }
    if (code == MT_EXIT_OK)
        code = agree(&c, mt_pipeline_init_params(c.pipe, o->seed));
    if (code == MT_EXIT_OK)
        code = agree(&c, mt_ckpt_dir_open(comm, o->checkpoint_dir, o->net, !o->resume[0]));
    if (code == MT_EXIT_OK && o->resume[0])
        code = agree(&c, resume(&c));
    if (code == MT_EXIT_OK) {
        mt_default_run_dir(comm, o->net, mt_oracle_name(o->pipe.oracle.kind), o->run_dir,
                           sizeof o->run_dir);
        code = agree(&c, prepare_outputs(&c));
    }
    if (code == MT_EXIT_OK) {
        print_start(&c, dir);
        if (c.resumed_from[0])
            mt_log(MT_LOG_INFO, "resumed from %s at step %ld%s", c.resumed_from, c.step,
                   c.step >= c.total_steps ? ": nothing left to do" : "");
        c.training = 1;
        code = agree(&c, train_loop(&c));
    }
    teardown(&c);
    return code == MT_EXIT_OK && c.preempted ? MT_EXIT_REQUEUE : code;
}
