/*
 * control.c - the driver of control tasks (--task): options and defaults,
 * then the loop of optimiser steps on the chain of time steps, one sample
 * (the initial state x_0 = 0), a metrics file with the cost per iteration
 * and optional checkpoints. The maths is the pipeline's, as for the nets.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/boundary.h"
#include "cli/control.h"
#include "cli/report.h"
#include "cli/resume.h"
#include "cli/signals.h"
#include "cli/snapshot.h"

/* ---- options ------------------------------------------------------------ */

void mt_control_preset(mt_options *o)
{
    if (!mt_options_given(o, "oracle"))
        snprintf(o->oracle_name, sizeof o->oracle_name, "gd");
    if (!mt_options_given(o, "optim"))
        snprintf(o->optim_name, sizeof o->optim_name, "plain");
}

/*
 * The GD step for horizon T. The paper's steps (1 for T = 50, 0.25 for
 * T = 100) diverge on this discretisation (README, "Nonlinear control"):
 * explicit Euler makes the pendulum at rest an unstable spiral, the
 * linearised step J_x having det d = 1 + delta^2 g/l - delta c/(m l^2)
 * = 1.0971, so gradients grow like d^(T/2), the curvature like d^T, and
 * the largest stable step shrinks like d^-T. A grid search over powers of 2
 * gave 0.25 at T = 50, hence 0.25 d^(50 - T), at most 1 (short horizons).
 * At T = 75, 100 and 150, twice this step did best and four times it
 * diverged or went erratic: the rule keeps a factor 4 of safety.
 */
static double default_step(long T)
{
    const double d = 1.0 + MT_PENDULUM_DELTA * MT_PENDULUM_DELTA * MT_PENDULUM_GRAVITY /
                               MT_PENDULUM_LENGTH -
                     MT_PENDULUM_DELTA * MT_PENDULUM_FRICTION /
                         (MT_PENDULUM_MASS * MT_PENDULUM_LENGTH * MT_PENDULUM_LENGTH);
    return fmin(1.0, 0.25 * pow(d, 50.0 - (double)T));
}

/*
 * Per-oracle defaults for the options not given (MT_CONTROL_TASK_HELP),
 * from grid searches on powers of 2 at T = 50 and 100 (README, "Nonlinear
 * control"; jobs/paper/pendulum.sh repeats those of gd, moreau and
 * penalized), checked at T = 25 .. 200:
 *   gd         default_step(T)
 *   moreau     the paper's sigma 0.5, gamma 2^7 (2^9 converges faster, 2^11
 *              diverges); mu_t then scales as sigma^(T-t): the late
 *              controls do the work, whatever T
 *   penalized  kappa 4, sigma 4, gamma 8: sigma kappa = 16 makes the input
 *              step nearly the Gauss-Newton inverse of the dynamics (target
 *              propagation); cost below 1e-2 after 4 iterations for
 *              T = 25 .. 200 (sigma 16, gamma 16, kappa 1: 5 or 6)
 *   dtp        rho 0.3, gamma 64: below 1e-2 after 11 iterations for
 *              T = 25 .. 150; stable for gamma 8 .. 128 (rho 0.1 diverges
 *              from gamma 64)
 *   proxprop   tau = default_step(T) with lr 1: for an op affine in w the
 *              proximal step is the gradient step scaled by 1/(1 + tau b^2)
 */
static void task_defaults(mt_options *o)
{
    mt_oracle_config *oc = &o->pipe.oracle;
    const double step = default_step(o->horizon);
    int given_lr = mt_options_given(o, "lr");

#define UNLESS_GIVEN(name, field, value) \
    do {                                 \
        if (!mt_options_given(o, name))  \
            field = (value);             \
    } while (0)
    UNLESS_GIVEN("weight-decay", oc->wd, 0.0);
    switch (oc->kind) {
    case MT_ORACLE_GD:
        if (!given_lr && o->pipe.optim.kind == MT_OPTIM_PLAIN)
            o->pipe.optim.lr = step;
        break;
    case MT_ORACLE_MOREAU:
        UNLESS_GIVEN("sigma", oc->sigma, 0.5);
        UNLESS_GIVEN("gamma", oc->gamma, 128.0);
        break;
    case MT_ORACLE_PENALIZED:
        UNLESS_GIVEN("kappa", oc->kappa, 4.0);
        UNLESS_GIVEN("sigma", oc->sigma, 4.0);
        UNLESS_GIVEN("gamma", oc->gamma, 8.0);
        break;
    case MT_ORACLE_DTP:
        UNLESS_GIVEN("sigma", oc->sigma, 1.0);
        UNLESS_GIVEN("dtp-rho", oc->dtp_rho, 0.3);
        UNLESS_GIVEN("gamma", oc->gamma, 64.0);
        break;
    case MT_ORACLE_PROXPROP:
        UNLESS_GIVEN("prox-tau", oc->prox_tau, step);
        break;
    default:
        break;
    }
#undef UNLESS_GIVEN
}

mt_status mt_control_finish(mt_options *o, char *err, size_t cap)
{
    static const char *const net_only[] = {"net", "dataset", "data", "batch", "micro-batches",
                                           "epochs", "steps", "eval-every", "granularity"};
    static const char *const task_only[] = {"horizon", "iterations"};

    if (!o->task[0]) {
        for (size_t i = 0; i < sizeof task_only / sizeof task_only[0]; i++)
            if (mt_options_given(o, task_only[i])) {
                snprintf(err, cap, "--%s applies to control tasks only: add --task pendulum",
                         task_only[i]);
                return MT_ERR_ARG;
            }
        return MT_OK;
    }
    for (size_t i = 0; i < sizeof net_only / sizeof net_only[0]; i++)
        if (mt_options_given(o, net_only[i])) {
            snprintf(err, cap, "--%s does not apply to --task %s (one sample, no data set; "
                     "see --help)", net_only[i], o->task);
            return MT_ERR_ARG;
        }
    if (!mt_options_given(o, "horizon"))
        o->horizon = 50;
    if (!mt_options_given(o, "iterations"))
        o->iterations = 300;
    if (!mt_options_given(o, "threads"))
        o->threads = 1; /* a step is a few flops: threads would only wait */
    snprintf(o->net, sizeof o->net, "%s", o->task);
    o->pipe.batch = 1;
    o->pipe.micro_batches = 1;
    o->micro_set = 1;
    task_defaults(o);
    return MT_OK;
}

/* ---- the run ------------------------------------------------------------ */

typedef struct {
    MPI_Comm comm;
    int rank, size;
    mt_options *o;
    mt_model *model;
    mt_pipeline *pipe;
    FILE *csv;          /* rank 0 */
    long iter;          /* optimiser steps done */
    long first_row;     /* first iteration this run writes to the CSV */
    double t_start;
    int preempted;      /* the signal that stopped the run, 0 if none */
} ctl_ctx;

static int agree(ctl_ctx *c, mt_status st) { return mt_agree_exit(c->comm, st, 1); }

/* A failure met by this rank alone in the middle of an iteration: the
 * others may wait for its messages, so the whole job ends here. */
static void die(ctl_ctx *c)
{
    fprintf(stderr, "mtrain: [rank %d] iteration %ld: %s (at %s)\n", c->rank, c->iter,
            mt_error_message(), mt_error_where());
    fflush(stderr);
    MPI_Abort(c->comm, MT_EXIT_FAILURE);
}

static mt_status build(ctl_ctx *c)
{
    const long T = c->o->horizon;
    float *x0;
    int32_t *labels;

    if (T < c->size)
        return MT_FAIL(MT_ERR_ARG,
                       "--horizon %ld on %d ranks: each rank needs at least one time step; "
                       "run on at most %ld ranks or lengthen the horizon", T, c->size, T);
    MT_CHECK(mt_model_build_pendulum((int)T, &c->model));
    MT_CHECK(mt_pipeline_create(c->comm, c->model, &c->o->pipe, &c->pipe));
    MT_CHECK(mt_pipeline_init_params(c->pipe, c->o->seed));

    /* the one sample: x_0 = (0, 0); the cost has no targets */
    x0 = mt_pipeline_input(c->pipe);
    labels = mt_pipeline_labels(c->pipe);
    if (x0)
        memset(x0, 0, mt_shape_size(c->model->in) * sizeof *x0);
    if (labels)
        labels[0] = 0;
    return MT_OK;
}

/* Rank 0: <run-dir>/metrics.csv, appended to when resuming. */
/* Keep the header and the rows of iterations before `iter` (a run that went
 * on past its checkpoint, or stopped right after it, resumes at `iter`);
 * atomic through a temporary file. */
static mt_status trim_rows(const char *path, long iter)
{
    char tmp[1110], line[512];
    FILE *in = fopen(path, "r"), *out; /* a regular file, checked by the caller */

    if (!in)
        return MT_OK; /* nothing written yet */
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return MT_FAIL(MT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    for (int first = 1; fgets(line, sizeof line, in); first = 0)
        if (first || strtol(line, NULL, 10) < iter)
            fputs(line, out);
    fclose(in);
    if (fclose(out) != 0 || rename(tmp, path) != 0)
        return MT_FAIL(MT_ERR_IO, "cannot update %s: %s", path, strerror(errno));
    return MT_OK;
}

static mt_status open_metrics(ctl_ctx *c)
{
    char path[1100];
    int append = c->iter > 0;

    if (c->rank != 0)
        return MT_OK;
    MT_CHECK(mt_mkdir_p(c->o->run_dir));
    snprintf(path, sizeof path, "%s/metrics.csv", c->o->run_dir);
    MT_CHECK(mt_regular_or_absent(path));
    if (append)
        MT_CHECK(trim_rows(path, c->iter));
    c->csv = fopen(path, append ? "a" : "w");
    if (!c->csv)
        return MT_FAIL(MT_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (!append)
        fprintf(c->csv, "iteration,cost,lambda_norm,elapsed_s,t_compute,t_wait,t_weights\n");
    fflush(c->csv);
    return MT_OK;
}

/* One row: the cost of the controls after `iter` steps (full precision),
 * the timings of the pass that measured it. */
static void write_row(ctl_ctx *c, long iter, const mt_step_stats *s)
{
    if (!c->csv || iter < c->first_row)
        return;
    fprintf(c->csv, "%ld,%.17g,%.9g,%.4f,%.6f,%.6f,%.6f\n", iter, s->loss, s->lambda_norm,
            mt_time_now() - c->t_start, s->t_compute, s->t_wait, s->t_weights);
    fflush(c->csv);
}

static void print_start(ctl_ctx *c)
{
    const mt_options *o = c->o;
    const mt_oracle_config *oc = &o->pipe.oracle;
    const int *first = mt_pipeline_stage_first(c->pipe);

    mt_log(MT_LOG_INFO, "mtrain %s: %d rank%s x %d thread%s", MT_VERSION, c->size,
           mt_plural(c->size), o->threads, mt_plural(o->threads));
    mt_log(MT_LOG_INFO, "task %s: horizon %ld, %ld iterations, oracle %s (inner %s), kappa %g "
           "sigma %g gamma %g prox_tau %g dtp_rho %g weight_decay %g, optim %s lr %g",
           o->task, o->horizon, o->iterations, mt_oracle_name(oc->kind),
           o->inner_text[0] ? o->inner_text : "closed", oc->kappa, oc->sigma, oc->gamma,
           oc->prox_tau, oc->dtp_rho, oc->wd, mt_optim_name(o->pipe.optim.kind),
           o->pipe.optim.lr);
    for (int s = 0; s < c->size; s++)
        mt_log(MT_LOG_INFO, "  rank %d: %s .. %s (%d steps)", s, c->model->ops[first[s]]->name,
               c->model->ops[first[s + 1] - 1]->name, first[s + 1] - first[s]);
    mt_log(MT_LOG_INFO, "run directory: %s", o->run_dir);
}

static int due(long iter, long every) { return every > 0 && iter % every == 0; }

/* Checkpoints when asked for (--checkpoint-every > 0: every period and at
 * the end) and always when a preemption signal reached any rank (the ranks
 * agree after every iteration); then the run stops to be requeued. After a
 * write, old checkpoints beyond --keep and stale writes are deleted. */
static mt_status maybe_save(ctl_ctx *c)
{
    long every = c->o->checkpoint_every;
    /* A control task has one "sample" and one step per "epoch". */
    mt_snapshot_pos pos = {c->iter, 1, 1, ""};
    char file[256];
    mt_boundary b;
    int preempt;

    MT_CHECK(mt_boundary_agree(c->comm, c->pipe, c->model, 0, &b));
    preempt = b.signal && c->iter < c->o->iterations;
    if (!preempt && !(every > 0 && (due(c->iter, every) || c->iter == c->o->iterations)))
        return MT_OK;
    MT_CHECK(mt_snapshot_save(c->comm, c->pipe, c->model, c->o, &pos, file, sizeof file));
    if (c->rank == 0)
        mt_ckpt_prune(c->o->checkpoint_dir, c->o->net, c->o->keep, c->iter);
    if (preempt) {
        mt_log(MT_LOG_INFO, "%s: checkpoint %s at iteration %ld; exit %d asks to requeue "
               "(--resume auto continues)", mt_signal_name(b.signal), file, c->iter,
               MT_EXIT_REQUEUE);
        c->preempted = b.signal;
    }
    return MT_OK;
}

/* The cost of a step is that of the controls before it; the last row comes
 * from one more forward pass. The cost is shared, so every rank stops
 * together on a non-finite one. */
static mt_status iterate(ctl_ctx *c)
{
    const long N = c->o->iterations;
    mt_step_stats s;

    c->t_start = mt_time_now();
    while (c->iter < N) {
        if (mt_pipeline_train_step(c->pipe, &s) != MT_OK)
            die(c);
        write_row(c, c->iter, &s);
        if (!isfinite(s.loss))
            return MT_FAIL(MT_ERR_NUMERIC, "iteration %ld: the cost is %g; the step is too "
                           "long for this horizon (lower --lr or --gamma)", c->iter, s.loss);
        if (due(c->iter, c->o->log_every))
            mt_log(MT_LOG_INFO, "iteration %ld/%ld: cost %.9g, |lambda_T| %.3g, %.2f s", c->iter,
                   N, s.loss, s.lambda_norm, mt_time_now() - c->t_start);
        c->iter++;
        MT_CHECK(maybe_save(c));
        if (c->preempted)
            return MT_OK;
    }
    if (mt_pipeline_evaluate(c->pipe, 1, &s) != MT_OK)
        die(c);
    write_row(c, N, &s);
    mt_log(MT_LOG_INFO, "iteration %ld/%ld: cost %.9g, %.2f s", N, N, s.loss,
           mt_time_now() - c->t_start);
    return MT_OK;
}

int mt_control_run(MPI_Comm comm, mt_options *o)
{
    ctl_ctx c = {0};
    int code;

    c.comm = comm;
    c.o = o;
    MPI_Comm_rank(comm, &c.rank);
    MPI_Comm_size(comm, &c.size);

    code = agree(&c, build(&c));
    /* The directory is this run's alone while it runs, and a fresh run
     * refuses earlier checkpoints there (a preemption writes one even
     * without --checkpoint-every), as for nets. */
    if (code == MT_EXIT_OK)
        code = agree(&c, mt_ckpt_dir_open(comm, o->checkpoint_dir, o->net, !o->resume[0]));
    if (code == MT_EXIT_OK && o->resume[0]) {
        mt_snapshot_pos pos = {0, 1, 1, ""};
        char used[1024] = "";
        if (strcmp(o->resume, "auto") == 0)
            code = agree(&c, mt_resume_auto(comm, c.pipe, c.model, o, &pos, used, sizeof used));
        else
            code = agree(&c, mt_snapshot_load(comm, c.pipe, c.model, o, o->resume, &pos));
        c.iter = pos.step;
        c.first_row = c.iter; /* rows from `iter` on are (re)written by this run */
    }
    if (code == MT_EXIT_OK && c.iter > o->iterations)
        code = agree(&c, MT_FAIL(MT_ERR_ARG, "--resume: the checkpoint is at iteration %ld, "
                                 "past --iterations %ld", c.iter, o->iterations));
    if (code == MT_EXIT_OK) {
        char what[64];
        snprintf(what, sizeof what, "%s-T%ld", o->task, o->horizon);
        mt_default_run_dir(comm, what, mt_oracle_name(o->pipe.oracle.kind), o->run_dir,
                           sizeof o->run_dir);
        code = agree(&c, open_metrics(&c));
    }
    if (code == MT_EXIT_OK)
        code = agree(&c, mt_ckpt_dir_claim(comm, o->checkpoint_dir, o->net));
    if (code == MT_EXIT_OK) {
        print_start(&c);
        code = agree(&c, iterate(&c));
    }
    if (c.csv)
        fclose(c.csv);
    mt_ckpt_dir_release();
    mt_pipeline_destroy(&c.pipe);
    mt_model_destroy(&c.model);
    return code == MT_EXIT_OK && c.preempted ? MT_EXIT_REQUEUE : code;
}
