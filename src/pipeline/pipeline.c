/*
 * pipeline.c - a stage of the chain on each rank: buffers, forward and
 * backward passes over micro-batches, the weight-solve phase, metrics.
 *
 * Buffers of a stage with ops [a, b), K = b - a:
 *   x[k]   [B][size] input of op a+k (k < K); x[K] is the stage's output
 *   lam[k] [B][size] adjoint at x[k]; lam[K] arrives from the next stage
 *          or from the loss, lam[0] goes to the previous stage
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    mt_optim *opt;
    float **x, **lam;     /* [K+1] each */
    int32_t *labels;
    float *losses;
    int *correct;
    MPI_Request *reqs;
    int n_reqs, cap_reqs;
    long seq;             /* collective calls so far, for message tags */
    mt_arena ws;
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
    return p->reqs ? MT_OK : MT_FAIL(MT_ERR_MEM, "out of memory for MPI requests");
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
    return t >= p->a && t < p->b ? p->params + p->off[t - p->a] : NULL;
}

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

static mt_status post_send(mt_pipeline *p, const float *buf, size_t count, int dest, int tag)
{
    if (p->n_reqs == p->cap_reqs)
        return MT_FAIL(MT_ERR_STATE, "too many pending sends");
    return mpi_ok(MPI_Isend(buf, (int)count, MPI_FLOAT, dest, tag, p->comm,
                            &p->reqs[p->n_reqs++]),
                  "MPI_Isend");
}

static mt_status receive(mt_pipeline *p, float *buf, size_t count, int src, int tag,
                         double *t_wait)
{
    double t0 = mt_time_now();
    mt_status st = mpi_ok(MPI_Recv(buf, (int)count, MPI_FLOAT, src, tag, p->comm,
                                   MPI_STATUS_IGNORE),
                          "MPI_Recv");
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
        MT_CHECK(receive(p, p->x[0] + (size_t)lo * size_at(p, 0), (size_t)n * size_at(p, 0),
                         p->rank - 1, tag_of(p, M, m, DIR_FORWARD), t_wait));
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

static mt_status backward_micro(mt_pipeline *p, int M, int m, int lo, int hi, double *t_wait)
{
    const int n = hi - lo;
    const int k_stop = p->rank == 0 ? 1 : 0; /* lambda_0 is never needed */

    if (p->rank < p->size - 1)
        MT_CHECK(receive(p, p->lam[p->K] + (size_t)lo * size_at(p, p->K),
                         (size_t)n * size_at(p, p->K), p->rank + 1,
                         tag_of(p, M, m, DIR_BACKWARD), t_wait));
    for (int k = p->K - 1; k >= k_stop; k--) {
        mt_op *op = p->model->ops[p->a + k];
        size_t in = size_at(p, k), out = size_at(p, k + 1);
        MT_CHECK(mt_oracle_input(&p->cfg.oracle, p->a + k, op, p->params + p->off[k], n,
                                 p->x[k] + lo * in, p->x[k + 1] + lo * out,
                                 p->lam[k + 1] + lo * out, p->lam[k] + lo * in, NULL, &p->ws));
        mt_arena_reset(&p->ws);
    }
    if (p->rank > 0)
        MT_CHECK(post_send(p, p->lam[0] + (size_t)lo * size_at(p, 0), (size_t)n * size_at(p, 0),
                           p->rank - 1, tag_of(p, M, m, DIR_BACKWARD)));
    return MT_OK;
}

static mt_status weight_phase(mt_pipeline *p, int n)
{
    for (int k = 0; k < p->K; k++) {
        mt_op *op = p->model->ops[p->a + k];
        if (op->n_params == 0)
            continue;
        MT_CHECK(mt_oracle_weights(&p->cfg.oracle, op, p->params + p->off[k], n, p->x[k],
                                   p->x[k + 1], p->lam[k + 1], p->dirs + p->off[k], NULL,
                                   &p->ws));
        mt_arena_reset(&p->ws);
    }
    mt_optim_step(p->opt, p->params, p->dirs);
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

static mt_status run(mt_pipeline *p, int n, int train, mt_step_stats *stats)
{
    const int M = micro_count(p, n);
    const int last = p->rank == p->size - 1;
    double t0 = mt_time_now(), t_wait = 0.0, t_w = 0.0;
    int lo, hi;

    memset(stats, 0, sizeof *stats);
    for (int m = 0; m < M; m++) {
        micro_range(n, M, m, &lo, &hi);
        MT_CHECK(forward_micro(p, M, m, lo, hi, &t_wait));
        if (last)
            MT_CHECK(loss_micro(p, lo, hi, n, train));
    }
    for (int m = 0; train && m < M; m++) {
        micro_range(n, M, m, &lo, &hi);
        MT_CHECK(backward_micro(p, M, m, lo, hi, &t_wait));
    }
    if (train) {
        double tw = mt_time_now();
        MT_CHECK(weight_phase(p, n));
        t_w = mt_time_now() - tw;
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
