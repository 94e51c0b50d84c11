/*
 * pipeline.c - a stage of the chain on each rank: buffers, forward and
 * backward passes over micro-batches, the weight-solve phase, metrics.
 *
 * Schedule (GPipe): every receive is posted at the start of a step; the
 * stage runs its micro-batches forward in order as their activations
 * arrive, then backward in order as their lambdas arrive, sending each
 * micro-batch's lambdas upstream before anything else; then the weight
 * phase over the whole batch. With the gradient oracles (gd, dtp) on several
 * ranks, the weight gradients of ops that offer it (conv2d) are instead
 * taken micro-batch by micro-batch right after the lambdas leave, in the
 * time the stage would wait for the next micro-batch (the same bits: see
 * vjp_w_part in mtrain/op.h).
 *
 * Buffers of a stage with ops [a, b), K = b - a:
 *   x[k]   [B][size] input of op a+k (k < K); x[K] is the stage's output
 *   lam[k] [B][size] adjoint at x[k]; lam[K] arrives from the next stage
 *          or from the loss, lam[0] goes to the previous stage
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mtrain/pipeline.h"

enum { DIR_FORWARD = 0, DIR_BACKWARD = 1 };

struct mt_pipeline {
    MPI_Comm comm;
    int rank, size, tag_ub;
    mt_model *model;
    mt_pipeline_config cfg;
    int *stage_first;
    int a, b, K;
    size_t *off;          /* [K] parameter offset of op a+k */
    size_t n_params;
    float *params, *dirs;
    int update_finite;    /* the last update left every parameter finite: 1 yes,
                           * 0 no, -1 unknown (parameters exposed for writing) */
    mt_optim *opt;
    float **x, **lam;     /* [K+1] each */
    int32_t *labels;
    float *losses;
    int *correct;
    MPI_Request *reqs;    /* pending sends */
    int n_reqs, cap_reqs;
    MPI_Request *recv_fwd, *recv_bwd; /* [micro-batch] receives posted up front */
    long seq;             /* collective calls so far, for message tags */
    mt_arena ws;
    int by_micro;         /* this step takes gradient directions by micro-batch */
    int detail;           /* next step also measures the stage figures */
    mt_oracle_config detail_cfg; /* the oracle asking for residuals */
    int numeric_warned;           /* solver failures met this step (soft_numeric) */
    mt_stage_stats st;    /* this stage's figures of the last detailed step */
};

/* ---- layout ------------------------------------------------------------ */

static size_t size_at(const mt_pipeline *p, int k)
{
    return k < p->K ? mt_shape_size(p->model->ops[p->a + k]->in)
                    : mt_shape_size(p->model->ops[p->b - 1]->out);
}

/* Samples [lo, hi) of micro-batch m when n samples are cut into M parts of
 * whole MT_BLOCK blocks. Returns the number of non-empty micro-batches. */
static int micro_count(const mt_pipeline *p, int n)
{
    int blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    return p->cfg.micro_batches < blocks ? p->cfg.micro_batches : blocks;
}

static void micro_range(int n, int M, int m, int *lo, int *hi)
{
    int blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    *lo = (int)((long)m * blocks / M) * MT_BLOCK;
    *hi = (int)((long)(m + 1) * blocks / M) * MT_BLOCK;
    if (*hi > n)
        *hi = n;
}

static int tag_of(const mt_pipeline *p, int M, int m, int dir)
{
    long period = (p->tag_ub + 1L) / (2L * M);
    if (period < 1)
        period = 1;
    return (int)(((p->seq % period) * M + m) * 2 + dir);
}

static mt_status alloc_floats(float **out, size_t n, const char *what)
{
    return mt_alloc_checked((void **)out, n * sizeof(float), what);
}

static mt_status alloc_buffers(mt_pipeline *p)
{
    const size_t B = (size_t)p->cfg.batch;

    p->K = p->b - p->a;
    p->off = calloc((size_t)p->K, sizeof *p->off);
    p->x = calloc((size_t)p->K + 1, sizeof *p->x);
    p->lam = calloc((size_t)p->K + 1, sizeof *p->lam);
    if (!p->off || !p->x || !p->lam)
        return MT_FAIL(MT_ERR_MEM, "out of memory for the stage layout");
    for (int k = 0; k < p->K; k++) {
        p->off[k] = p->n_params;
        p->n_params += p->model->ops[p->a + k]->n_params;
    }
    MT_CHECK(alloc_floats(&p->params, p->n_params, "parameters"));
    MT_CHECK(alloc_floats(&p->dirs, p->n_params, "directions"));
    MT_CHECK(mt_optim_create(&p->cfg.optim, p->n_params, &p->opt));
    for (int k = 0; k <= p->K; k++) {
        MT_CHECK(alloc_floats(&p->x[k], B * size_at(p, k), "activations"));
        if (k > 0 || p->rank > 0)
            MT_CHECK(alloc_floats(&p->lam[k], B * size_at(p, k), "adjoints"));
    }
    if (p->rank == p->size - 1) {
        MT_CHECK(mt_alloc_checked((void **)&p->labels, B * sizeof(int32_t), "labels"));
        MT_CHECK(alloc_floats(&p->losses, B, "losses"));
        MT_CHECK(mt_alloc_checked((void **)&p->correct, B * sizeof(int), "accuracy"));
    }
    p->cap_reqs = 4 * (p->cfg.micro_batches + 1);
    p->reqs = calloc((size_t)p->cap_reqs, sizeof *p->reqs);
    p->recv_fwd = calloc((size_t)p->cfg.micro_batches, sizeof *p->recv_fwd);
    p->recv_bwd = calloc((size_t)p->cfg.micro_batches, sizeof *p->recv_bwd);
    if (!p->reqs || !p->recv_fwd || !p->recv_bwd)
        return MT_FAIL(MT_ERR_MEM, "out of memory for MPI requests");
    return MT_OK;
}

mt_status mt_pipeline_create(MPI_Comm comm, mt_model *model, const mt_pipeline_config *cfg,
                             mt_pipeline **out)
{
    mt_pipeline *p = calloc(1, sizeof *p);
    int flag = 0, *ub = NULL, max_micro = (cfg->batch + MT_BLOCK - 1) / MT_BLOCK;
    mt_status st;

    *out = NULL;
    if (!p)
        return MT_FAIL(MT_ERR_MEM, "out of memory for the pipeline");
    p->comm = comm;
    p->model = model;
    p->cfg = *cfg;
    /* gd's weight decay goes into the update's pass over the parameters */
    p->cfg.oracle.decay_by_caller = cfg->oracle.kind == MT_ORACLE_GD;
    p->update_finite = -1;
    MPI_Comm_rank(comm, &p->rank);
    MPI_Comm_size(comm, &p->size);
    MPI_Comm_get_attr(comm, MPI_TAG_UB, &ub, &flag);
    p->tag_ub = flag ? *ub : 32767;
    if (cfg->micro_batches < 1 || cfg->micro_batches > max_micro) {
        st = MT_FAIL(MT_ERR_ARG,
                     "--micro-batches %d: micro-batches are whole blocks of %d samples, so "
                     "a batch of %d allows 1..%d",
                     cfg->micro_batches, MT_BLOCK, cfg->batch, max_micro);
        goto fail;
    }
    p->stage_first = calloc((size_t)p->size + 1, sizeof(int));
    if (!p->stage_first) {
        st = MT_FAIL(MT_ERR_MEM, "out of memory for the stage table");
        goto fail;
    }
    p->cfg.oracle.n_ops = model->n_ops;
    MT_CHECK_GOTO(mt_oracle_check(&p->cfg.oracle, model->ops, model->n_ops), st, fail);
    MT_CHECK_GOTO(mt_model_partition(model, p->size, p->stage_first), st, fail);
    p->a = p->stage_first[p->rank];
    p->b = p->stage_first[p->rank + 1];
    MT_CHECK_GOTO(alloc_buffers(p), st, fail);
    *out = p;
    return MT_OK;

fail:
    mt_pipeline_destroy(&p);
    return st;
}

void mt_pipeline_destroy(mt_pipeline **pp)
{
    mt_pipeline *p;

    if (!pp || !*pp)
        return;
    p = *pp;
    for (int k = 0; p->x && k <= p->K; k++)
        mt_free(p->x[k]);
    for (int k = 0; p->lam && k <= p->K; k++)
        mt_free(p->lam[k]);
    free(p->x), free(p->lam), free(p->off), free(p->stage_first), free(p->reqs);
    free(p->recv_fwd), free(p->recv_bwd);
    mt_free(p->params), mt_free(p->dirs), mt_free(p->labels), mt_free(p->losses);
    mt_free(p->correct);
    mt_optim_destroy(&p->opt);
    mt_arena_release(&p->ws);
    free(p);
    *pp = NULL;
}

const int *mt_pipeline_stage_first(const mt_pipeline *p) { return p->stage_first; }
int mt_pipeline_rank(const mt_pipeline *p) { return p->rank; }
int mt_pipeline_size(const mt_pipeline *p) { return p->size; }
float *mt_pipeline_input(mt_pipeline *p) { return p->rank == 0 ? p->x[0] : NULL; }
int32_t *mt_pipeline_labels(mt_pipeline *p) { return p->labels; }
long *mt_pipeline_optim_steps(mt_pipeline *p) { return &p->opt->steps; }
void mt_pipeline_set_lr(mt_pipeline *p, double lr) { p->opt->cfg.lr = lr; }

float *mt_pipeline_op_params(mt_pipeline *p, int t)
{
    p->update_finite = -1;
    return t >= p->a && t < p->b ? p->params + p->off[t - p->a] : NULL;
}

int mt_pipeline_update_finite(const mt_pipeline *p) { return p->update_finite; }

const float *mt_pipeline_op_direction(mt_pipeline *p, int t)
{
    return t >= p->a && t < p->b ? p->dirs + p->off[t - p->a] : NULL;
}

mt_status mt_pipeline_init_params(mt_pipeline *p, uint64_t seed)
{
    for (int k = 0; k < p->K; k++) {
        mt_op *op = p->model->ops[p->a + k];
        mt_rng rng = mt_rng_make(seed, mt_hash_str(op->name));
        if (op->n_params > 0)
            MT_CHECK(op->vt->init(op, &rng, p->params + p->off[k]));
    }
    return MT_OK;
}

/* ---- messages ---------------------------------------------------------- */

static mt_status mpi_ok(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;

    if (rc == MPI_SUCCESS)
        return MT_OK;
    MPI_Error_string(rc, msg, &len);
    return MT_FAIL(MT_ERR_MPI, "%s failed: %s", what, msg);
}

/* Testing aid: a delay drawn from (rank, step, tag), so runs are repeatable
 * and every rank lags differently. */
static void inject_delay(const mt_pipeline *p, int tag)
{
    if (p->cfg.delay_us <= 0)
        return;
    uint64_t h = mt_hash2(mt_hash2((uint64_t)p->rank, (uint64_t)p->seq), (uint64_t)tag);
    long us = (long)(h % (uint64_t)p->cfg.delay_us);
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static mt_status post_send(mt_pipeline *p, const float *buf, size_t count, int dest, int tag)
{
    inject_delay(p, tag);
    if (p->n_reqs == p->cap_reqs)
        return MT_FAIL(MT_ERR_STATE, "too many pending sends");
    return mpi_ok(MPI_Isend(buf, (int)count, MPI_FLOAT, dest, tag, p->comm,
                            &p->reqs[p->n_reqs++]),
                  "MPI_Isend");
}

/* Post the receive of micro-batch m's activations (forward) or lambdas
 * (backward) into its slice of the stage buffer, so that the transfer runs
 * while this rank computes earlier micro-batches. */
static mt_status post_receive(mt_pipeline *p, int n, int M, int m, int dir)
{
    int lo, hi, k = dir == DIR_FORWARD ? 0 : p->K;
    float *buf = dir == DIR_FORWARD ? p->x[0] : p->lam[p->K];
    int src = dir == DIR_FORWARD ? p->rank - 1 : p->rank + 1;
    MPI_Request *req = dir == DIR_FORWARD ? &p->recv_fwd[m] : &p->recv_bwd[m];

    micro_range(n, M, m, &lo, &hi);
    return mpi_ok(MPI_Irecv(buf + (size_t)lo * size_at(p, k), (int)((size_t)(hi - lo) *
                            size_at(p, k)), MPI_FLOAT, src, tag_of(p, M, m, dir), p->comm, req),
                  "MPI_Irecv");
}

static mt_status post_receives(mt_pipeline *p, int n, int M, int train)
{
    for (int m = 0; m < M; m++) {
        if (p->rank > 0)
            MT_CHECK(post_receive(p, n, M, m, DIR_FORWARD));
        if (train && p->rank < p->size - 1)
            MT_CHECK(post_receive(p, n, M, m, DIR_BACKWARD));
    }
    return MT_OK;
}

static mt_status await(mt_pipeline *p, MPI_Request *req, int tag, double *t_wait)
{
    inject_delay(p, tag + 1);
    double t0 = mt_time_now();
    mt_status st = mpi_ok(MPI_Wait(req, MPI_STATUS_IGNORE), "MPI_Wait (receive)");
    *t_wait += mt_time_now() - t0;
    return st;
}

static mt_status finish_sends(mt_pipeline *p, double *t_wait)
{
    double t0 = mt_time_now();
    int rc = MPI_Waitall(p->n_reqs, p->reqs, MPI_STATUSES_IGNORE);
    *t_wait += mt_time_now() - t0;
    p->n_reqs = 0;
    return mpi_ok(rc, "MPI_Waitall");
}

/* ---- passes ------------------------------------------------------------ */

static mt_status forward_micro(mt_pipeline *p, int M, int m, int lo, int hi, double *t_wait)
{
    const int n = hi - lo;

    if (p->rank > 0)
        MT_CHECK(await(p, &p->recv_fwd[m], tag_of(p, M, m, DIR_FORWARD), t_wait));
    for (int k = 0; k < p->K; k++) {
        mt_op *op = p->model->ops[p->a + k];
        MT_CHECK(op->vt->forward(op, p->params + p->off[k], n,
                                 p->x[k] + (size_t)lo * size_at(p, k),
                                 p->x[k + 1] + (size_t)lo * size_at(p, k + 1)));
    }
    if (p->rank < p->size - 1)
        MT_CHECK(post_send(p, p->x[p->K] + (size_t)lo * size_at(p, p->K),
                           (size_t)n * size_at(p, p->K), p->rank + 1,
                           tag_of(p, M, m, DIR_FORWARD)));
    return MT_OK;
}

/* Last stage: per-sample losses, and lambda_T for a training step. */
static mt_status loss_micro(mt_pipeline *p, int lo, int hi, int n_total, int train)
{
    mt_loss *loss = p->model->loss;
    const size_t d = size_at(p, p->K);
    const float *xT = p->x[p->K] + (size_t)lo * d;

    MT_CHECK(loss->vt->value(loss, hi - lo, xT, p->labels + lo, p->losses + lo,
                             p->correct + lo));
    if (!train)
        return MT_OK;
    return mt_oracle_output(&p->cfg.oracle, loss, hi - lo, n_total, xT, p->labels + lo,
                            p->lam[p->K] + (size_t)lo * d, NULL, &p->ws);
}

static const mt_oracle_config *oracle_of(const mt_pipeline *p)
{
    return p->detail ? &p->detail_cfg : &p->cfg.oracle;
}

static void count(mt_pipeline *p, const mt_solve_report *rep, int weights)
{
    if (!p->detail)
        return;
    p->st.iterations += rep->iterations;
    double *worst = weights ? &p->st.residual_w : &p->st.residual_x;
    if (rep->residual > *worst)
        *worst = rep->residual;
}

/* The lowest op whose input problem matters. On the first stage, the inputs
 * of the ops up to the first op with parameters depend on the data alone:
 * no weight solve reads the adjoints there, so those input problems are
 * skipped (for mlp this is the 3072 x 4000 layer's, the costliest of all). */
static int first_needed(const mt_pipeline *p)
{
    if (p->rank > 0)
        return 0;
    for (int k = 0; k < p->K; k++)
        if (p->model->ops[p->a + k]->n_params > 0)
            return k + 1;
    return p->K;
}

/* Whether op's direction is taken micro-batch by micro-batch this step. */
static int in_parts(const mt_pipeline *p, const mt_op *op)
{
    return p->by_micro && mt_oracle_weights_in_parts(oracle_of(p), op);
}

/* Whether a training step of n samples in M micro-batches takes the weights
 * by micro-batch: only where another stage keeps this one waiting (more than
 * one rank), and where every micro-batch has a block per thread (an op's
 * weight pass spreads its blocks over the threads). Either way gives the
 * same bits; this is a choice of speed. */
static int weights_by_micro(const mt_pipeline *p, int n, int M)
{
    int blocks = (n + MT_BLOCK - 1) / MT_BLOCK;
    return p->size > 1 && M > 1 && blocks / M >= omp_get_max_threads();
}

/* A solver that fails numerically inside a step (a Cholesky factor of a
 * non-finite Gram matrix, say) fills its result with NaN instead of ending
 * this rank alone: the NaNs reach the parameters, and the trainer's agreed
 * check after the step stops every rank together. The first failure of a
 * step is named in a warning. */
static mt_status soft_numeric(mt_pipeline *p, mt_status st, const mt_op *op, float *out,
                              size_t len)
{
    if (st != MT_ERR_NUMERIC)
        return st;
    if (!p->numeric_warned++)
        mt_log_rank(MT_LOG_WARN, "op %s: %s; its result is set to NaN", op->name,
                    mt_error_message());
    mt_error_clear();
    for (size_t i = 0; i < len; i++)
        out[i] = NAN;
    return MT_OK;
}

/* The gradient oracles' weight directions, micro-batch m's share, taken as
 * soon as its lambdas are known (after they went upstream): the weights need
 * not wait for the last micro-batch, and the work fills the time this stage
 * would otherwise spend waiting for the next one's lambdas. */
static mt_status weights_micro(mt_pipeline *p, int M, int m, int lo, int hi)
{
    const int part = (m == 0 ? MT_PART_FIRST : 0) | (m == M - 1 ? MT_PART_LAST : 0);

    for (int k = 0; k < p->K; k++) {
        mt_op *op = p->model->ops[p->a + k];
        size_t in = size_at(p, k), out = size_at(p, k + 1);
        mt_solve_report rep = {0, 0.0};

        if (!in_parts(p, op))
            continue;
        MT_CHECK(soft_numeric(p, mt_oracle_weights_part(oracle_of(p), op, p->params + p->off[k],
                                                     hi - lo, p->x[k] + lo * in,
                                                     p->lam[k + 1] + lo * out,
                                                     p->dirs + p->off[k], part, &rep),
                              op, p->dirs + p->off[k], op->n_params));
        if (part & MT_PART_LAST)
            count(p, &rep, 1);
    }
    return MT_OK;
}

static mt_status backward_micro(mt_pipeline *p, int M, int m, int lo, int hi, double *t_wait,
                                double *t_w)
{
    const int n = hi - lo;
    const int k_stop = first_needed(p);

    if (p->rank < p->size - 1)
        MT_CHECK(await(p, &p->recv_bwd[m], tag_of(p, M, m, DIR_BACKWARD), t_wait));
    for (int k = p->K - 1; k >= k_stop; k--) {
        mt_op *op = p->model->ops[p->a + k];
        size_t in = size_at(p, k), out = size_at(p, k + 1);
        mt_solve_report rep = {0, 0.0};
        MT_CHECK(soft_numeric(p, mt_oracle_input(oracle_of(p), p->a + k, op, p->params + p->off[k],
                                              n, p->x[k] + lo * in, p->x[k + 1] + lo * out,
                                              p->lam[k + 1] + lo * out, p->lam[k] + lo * in,
                                              &rep, &p->ws),
                              op, p->lam[k] + lo * in, (size_t)n * in));
        count(p, &rep, 0);
        mt_arena_reset(&p->ws);
    }
    if (p->rank > 0)
        MT_CHECK(post_send(p, p->lam[0] + (size_t)lo * size_at(p, 0), (size_t)n * size_at(p, 0),
                           p->rank - 1, tag_of(p, M, m, DIR_BACKWARD)));
    double t0 = mt_time_now();
    MT_CHECK(weights_micro(p, M, m, lo, hi));
    *t_w += mt_time_now() - t0;
    return MT_OK;
}

/* Oracles whose lambdas are displacements of the states (x_t^+ = x_t - lambda_t). */
static int lambdas_are_targets(const mt_pipeline *p)
{
    mt_oracle_kind k = p->cfg.oracle.kind;
    return k == MT_ORACLE_PENALIZED || k == MT_ORACLE_MOREAU || k == MT_ORACLE_DTP;
}

/* sum_t ||phi_t(w_t - g_t, x_{t-1}^+) - x_t^+||^2 over the stage's ops, with
 * x^+ = x - lambda (the data x_0 has no lambda): how far the proposed
 * weights and targets are from satisfying the chain. One forward pass. */
static mt_status measure_penalty(mt_pipeline *p, int n)
{
    double total = 0.0;

    if (!lambdas_are_targets(p))
        return MT_OK;
    for (int k = 0; k < p->K; k++) {
        mt_op *op = p->model->ops[p->a + k];
        size_t in = (size_t)n * size_at(p, k), out = (size_t)n * size_at(p, k + 1);
        float *xin, *wt = NULL, *fy;
        mt_status st;
        MT_CHECK(mt_arena_take(&p->ws, in * sizeof(float), (void **)&xin));
        MT_CHECK(mt_arena_take(&p->ws, out * sizeof(float), (void **)&fy));
        /* w - g for one op at a time, freed at once: kept in the arena it
         * would stay allocated (47 MiB for mlp's first layer) */
        MT_CHECK(mt_alloc_checked((void **)&wt, (op->n_params + 1) * sizeof(float),
                                  "the penalty's trial weights"));
        for (size_t i = 0; i < in; i++)
            xin[i] = p->x[k][i] - (p->lam[k] ? p->lam[k][i] : 0.0f);
        for (size_t i = 0; i < op->n_params; i++)
            wt[i] = p->params[p->off[k] + i] - p->dirs[p->off[k] + i];
        st = op->vt->forward(op, wt, n, xin, fy);
        mt_free(wt);
        MT_CHECK(st);
        for (size_t i = 0; i < out; i++) {
            double d = (double)fy[i] - (p->x[k + 1][i] - p->lam[k + 1][i]);
            total += d * d;
        }
        mt_arena_reset(&p->ws); /* nothing else lives in the arena here */
    }
    p->st.penalty = total;
    return MT_OK;
}

static mt_status weight_phase(mt_pipeline *p, int n)
{
    for (int k = 0; k < p->K; k++) {
        mt_op *op = p->model->ops[p->a + k];
        if (op->n_params == 0 || in_parts(p, op))
            continue; /* none, or taken micro-batch by micro-batch */
        mt_solve_report rep = {0, 0.0};
        MT_CHECK(soft_numeric(p, mt_oracle_weights(oracle_of(p), op, p->params + p->off[k], n,
                                                p->x[k], p->x[k + 1], p->lam[k + 1],
                                                p->dirs + p->off[k], &rep, &p->ws),
                              op, p->dirs + p->off[k], op->n_params));
        count(p, &rep, 1);
        mt_arena_reset(&p->ws);
    }
    if (p->detail)
        MT_CHECK(measure_penalty(p, n));
    if (oracle_of(p)->decay_by_caller)
        p->update_finite = mt_optim_step_decayed(p->opt, p->params, p->dirs,
                                                 (float)oracle_of(p)->wd);
    else
        p->update_finite = mt_optim_step(p->opt, p->params, p->dirs);
    return MT_OK;
}

/* Sum the last stage's per-sample figures in sample order and share them. */
static mt_status share_metrics(mt_pipeline *p, int n, int train, mt_step_stats *stats)
{
    double v[3] = {0.0, 0.0, 0.0};

    if (p->rank == p->size - 1) {
        size_t d = size_at(p, p->K);
        for (int i = 0; i < n; i++) {
            v[0] += p->losses[i];
            v[1] += p->correct[i];
        }
        for (size_t i = 0; train && i < (size_t)n * d; i++)
            v[2] += (double)p->lam[p->K][i] * p->lam[p->K][i];
    }
    MT_CHECK(mpi_ok(MPI_Bcast(v, 3, MPI_DOUBLE, p->size - 1, p->comm), "MPI_Bcast"));
    stats->n = n;
    stats->loss = v[0] / n;
    stats->accuracy = v[1] / n;
    stats->lambda_norm = sqrt(v[2]);
    return MT_OK;
}

static double norm_of(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    return sqrt(s);
}

static mt_status run(mt_pipeline *p, int n, int train, mt_step_stats *stats)
{
    const int M = micro_count(p, n);
    const int last = p->rank == p->size - 1;
    double t0 = mt_time_now(), t_wait = 0.0, t_w = 0.0;
    int lo, hi;

    memset(stats, 0, sizeof *stats);
    p->numeric_warned = 0;
    p->by_micro = train && weights_by_micro(p, n, M);
    if (train && p->detail)
        memset(&p->st, 0, sizeof p->st);
    MT_CHECK(post_receives(p, n, M, train));
    for (int m = 0; m < M; m++) {
        micro_range(n, M, m, &lo, &hi);
        MT_CHECK(forward_micro(p, M, m, lo, hi, &t_wait));
        if (last)
            MT_CHECK(loss_micro(p, lo, hi, n, train));
    }
    for (int m = 0; train && m < M; m++) {
        micro_range(n, M, m, &lo, &hi);
        MT_CHECK(backward_micro(p, M, m, lo, hi, &t_wait, &t_w));
    }
    if (train) {
        double tw = mt_time_now();
        MT_CHECK(weight_phase(p, n));
        t_w += mt_time_now() - tw;
        if (p->detail)
            p->st.lambda_norm = norm_of(p->lam[p->K], (size_t)n * size_at(p, p->K));
    }
    MT_CHECK(finish_sends(p, &t_wait));
    MT_CHECK(share_metrics(p, n, train, stats));
    p->seq++;
    stats->t_wait = t_wait;
    stats->t_weights = t_w;
    stats->t_compute = mt_time_now() - t0 - t_wait - t_w;
    return MT_OK;
}

mt_status mt_pipeline_train_step(mt_pipeline *p, mt_step_stats *stats)
{
    return run(p, p->cfg.batch, 1, stats);
}

void mt_pipeline_set_detail(mt_pipeline *p, int on)
{
    mt_oracle_config *c = &p->detail_cfg;

    p->detail = on;
    if (!on)
        return;
    *c = p->cfg.oracle;
    c->fallback.residual = 1;
    for (int i = 0; i < c->n_rules; i++)
        c->rules[i].inner.residual = 1;
}

mt_status mt_pipeline_gather_stages(mt_pipeline *p, mt_stage_stats *all)
{
    double mine[5] = {p->st.penalty, (double)p->st.iterations, p->st.residual_x,
                      p->st.residual_w, p->st.lambda_norm};
    double *rows = p->rank == 0 ? malloc(sizeof(double) * 5 * (size_t)p->size) : NULL;
    int rc;

    if (p->rank == 0 && !rows)
        return MT_FAIL(MT_ERR_MEM, "out of memory gathering stage figures");
    rc = MPI_Gather(mine, 5, MPI_DOUBLE, rows, 5, MPI_DOUBLE, 0, p->comm);
    for (int s = 0; p->rank == 0 && s < p->size; s++) {
        const double *r = rows + 5 * s;
        all[s] = (mt_stage_stats){r[0], (long)r[1], r[2], r[3], r[4]};
    }
    free(rows);
    return mpi_ok(rc, "MPI_Gather");
}

mt_status mt_pipeline_evaluate(mt_pipeline *p, int n, mt_step_stats *stats)
{
    if (n < 1 || n > p->cfg.batch)
        return MT_FAIL(MT_ERR_ARG, "evaluation batch of %d samples (1..%d)", n, p->cfg.batch);
    return run(p, n, 0, stats);
}

/* ---- checkpoint layout ------------------------------------------------- */

static int owner_of(const mt_pipeline *p, int t)
{
    int s = 0;
    while (s + 1 < p->size && p->stage_first[s + 1] <= t)
        s++;
    return s;
}

/* Append one tensor: an op's parameter tensor or one of its optimiser states. */
static void list_tensor(mt_pipeline *p, mt_ckpt_state *st, int t, int j, int state)
{
    const mt_op *op = p->model->ops[t];
    const mt_param_tensor *pt = &op->tensors[j];
    mt_ckpt_tensor *ct = &st->tensors[st->n_tensors++];
    int mine = t >= p->a && t < p->b;

    if (state < 0)
        snprintf(ct->name, sizeof ct->name, "model/%s.%s", op->name, pt->suffix);
    else
        snprintf(ct->name, sizeof ct->name, "optim/%s.%s/%s", op->name, pt->suffix,
                 mt_optim_state_name(p->opt, state));
    ct->ndim = pt->ndim;
    memcpy(ct->dims, pt->dims, sizeof ct->dims);
    ct->n = pt->n;
    ct->owner = owner_of(p, t);
    ct->data = NULL;
    if (mine) {
        float *base = state < 0 ? p->params : p->opt->state[state];
        ct->data = base + p->off[t - p->a] + pt->offset;
    }
}

mt_status mt_pipeline_ckpt_tensors(mt_pipeline *p, mt_ckpt_state *st)
{
    int count = 0;
    const mt_model *m = p->model;

    for (int t = 0; t < m->n_ops; t++)
        count += m->ops[t]->n_tensors * (1 + p->opt->n_states);
    p->update_finite = -1;
    memset(st, 0, sizeof *st);
    st->tensors = calloc((size_t)count + 1, sizeof *st->tensors);
    if (!st->tensors)
        return MT_FAIL(MT_ERR_MEM, "out of memory listing checkpoint tensors");
    for (int t = 0; t < m->n_ops; t++)
        for (int j = 0; j < m->ops[t]->n_tensors; j++)
            list_tensor(p, st, t, j, -1);
    for (int i = 0; i < p->opt->n_states; i++)
        for (int t = 0; t < m->n_ops; t++)
            for (int j = 0; j < m->ops[t]->n_tensors; j++)
                list_tensor(p, st, t, j, i);
    return MT_OK;
}

void mt_pipeline_ckpt_free(mt_ckpt_state *st)
{
    free(st->tensors);
    free(st->attrs);
    memset(st, 0, sizeof *st);
}
