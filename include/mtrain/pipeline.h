/*
 * pipeline.h - one stage of the chain per MPI rank (ALGORITHMS.md section 7).
 *
 * The chain is cut into S = comm size contiguous stages. A training step:
 *   forward   for each micro-batch: receive x from the previous rank (stage 0
 *             reads the input buffer), run the stage's ops, keep every op's
 *             input, send the output on;
 *   backward  for each micro-batch: receive lambda from the next rank (the
 *             last stage gets it from the loss), solve the input subproblems
 *             down the stage, send lambda back;
 *   weights   once the whole mini-batch is in, solve every op's weight
 *             subproblem and apply the optimiser.
 * Messages are point-to-point, tagged by step, micro-batch and direction.
 * Micro-batches start at multiples of MT_BLOCK samples, so the trajectory is
 * bit-identical for any number of ranks and micro-batches.
 *
 * All functions named "collective" must be called by every rank of the
 * communicator. A failure seen by one rank alone is returned to the caller,
 * which must then abort the job (the other ranks may be waiting for it).
 */
#ifndef MTRAIN_PIPELINE_H
#define MTRAIN_PIPELINE_H

#include <mpi.h>

#include "mtrain/checkpoint.h"
#include "mtrain/model.h"
#include "mtrain/optim.h"
#include "mtrain/oracle.h"

typedef struct {
    int batch;              /* mini-batch size B */
    int micro_batches;      /* M, 1 <= M <= ceil(B / MT_BLOCK) */
    mt_oracle_config oracle;
    mt_optim_config optim;
    int delay_us;           /* testing: sleep up to this long (pseudo-random per
                               rank, step and message) before every message */
} mt_pipeline_config;

/* Figures of one step or one evaluation, valid on every rank. */
typedef struct {
    int n;                  /* samples */
    double loss;            /* mean loss over the samples */
    double accuracy;        /* fraction classified right */
    double lambda_norm;     /* ||lambda_T|| over the batch (training only) */
    double t_compute;       /* this rank's seconds computing */
    double t_wait;          /* this rank's seconds waiting for messages */
    double t_weights;       /* this rank's seconds in weight solves + update */
} mt_step_stats;

/* Figures of one stage for one detailed training step. */
typedef struct {
    double penalty;      /* sum_t ||phi_t(w_t - g_t, x_{t-1} - lambda_{t-1}) - (x_t - lambda_t)||^2
                            over the stage's ops (penalized, moreau, dtp; else 0) */
    long iterations;     /* inner-solver iterations, input and weight problems */
    double residual_x;   /* largest final residual of the input problems */
    double residual_w;   /* largest final residual of the weight problems */
    double lambda_norm;  /* ||lambda|| at the stage's output, whole batch */
} mt_stage_stats;

typedef struct mt_pipeline mt_pipeline;

/* Collective. Partition the model over the ranks of comm, allocate this
 * stage's parameters, optimiser state and activation buffers. Fails on every
 * rank alike when the model cannot be cut into comm-size stages. The model
 * is borrowed and must outlive the pipeline. */
mt_status mt_pipeline_create(MPI_Comm comm, mt_model *model, const mt_pipeline_config *cfg,
                             mt_pipeline **p);
void mt_pipeline_destroy(mt_pipeline **p);

/* The stage layout: first op of every stage, comm size + 1 entries. */
const int *mt_pipeline_stage_first(const mt_pipeline *p);
int mt_pipeline_rank(const mt_pipeline *p);
int mt_pipeline_size(const mt_pipeline *p);

/* Stage 0: [B][input size] floats to fill before a step (NULL elsewhere).
 * Last stage: [B] labels (NULL elsewhere). */
float *mt_pipeline_input(mt_pipeline *p);
int32_t *mt_pipeline_labels(mt_pipeline *p);

/* 1 when the last training step's update left every parameter of this stage
 * finite, 0 when it did not, -1 when unknown (no step yet, or the parameters
 * were handed out for writing since: mt_pipeline_op_params, checkpoints). */
int mt_pipeline_update_finite(const mt_pipeline *p);

/* Initialise this stage's parameters from `seed` (each op draws from its
 * own stream, named after the op, so the values do not depend on ranks). */
mt_status mt_pipeline_init_params(mt_pipeline *p, uint64_t seed);

/* Collective: one training step on the n = B samples in the buffers. */
mt_status mt_pipeline_train_step(mt_pipeline *p, mt_step_stats *stats);
/* Measure the stage figures during the following training steps (on) or
 * not (off, the default: the figures cost one forward pass and, for gd:K,
 * one more product per subproblem). Every rank must pass the same value. */
void mt_pipeline_set_detail(mt_pipeline *p, int on);
/* Collective: rank 0 receives every stage's figures of the last detailed
 * step in all[0 .. size-1]; other ranks may pass NULL. */
mt_status mt_pipeline_gather_stages(mt_pipeline *p, mt_stage_stats *all);

/* Collective: loss and accuracy of the current weights on n <= B samples. */
mt_status mt_pipeline_evaluate(mt_pipeline *p, int n, mt_step_stats *stats);

/* The run's tensors for a checkpoint (every rank lists all of them, data
 * only for its own): model/<op>.<tensor> and optim/<op>.<tensor>/<state>.
 * Free with mt_pipeline_ckpt_free. */
mt_status mt_pipeline_ckpt_tensors(mt_pipeline *p, mt_ckpt_state *st);
void mt_pipeline_ckpt_free(mt_ckpt_state *st);
/* Number of optimiser updates done (saved and restored with the state). */
long *mt_pipeline_optim_steps(mt_pipeline *p);
/* Set the optimiser's learning rate for the next steps (a schedule). Local. */
void mt_pipeline_set_lr(mt_pipeline *p, double lr);

/* This rank's stage parameters (for tests): first op, op count, block. */
float *mt_pipeline_op_params(mt_pipeline *p, int t);
/* This rank's last direction g_t of op t (for tests), NULL if not owned. */
const float *mt_pipeline_op_direction(mt_pipeline *p, int t);

#endif
