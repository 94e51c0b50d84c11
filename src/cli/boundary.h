/*
 * boundary.h - what the ranks agree on after every training step, in one
 * MPI_Allreduce: whether a preemption signal arrived on any rank, whether
 * rank 0's clock says a timed checkpoint is due, and the first op whose
 * parameters hold a non-finite value after the update (each rank scans its
 * own stage: one pass over its parameters); and whether a phase of the run
 * (setup, loading, training) failed on any rank.
 */
#ifndef MTRAIN_CLI_BOUNDARY_H
#define MTRAIN_CLI_BOUNDARY_H

#include <mpi.h>

#include "mtrain/model.h"
#include "mtrain/pipeline.h"

typedef struct {
    int signal;   /* a preemption signal some rank received, 0 if none */
    int time_due; /* a --checkpoint-minutes checkpoint is due */
    int bad_op;   /* first op (chain index) with non-finite parameters, -1 if none */
    int bad_rank; /* the rank owning bad_op */
} mt_boundary;

/* Collective. `time_due` counts on rank 0 only. The same result on every
 * rank; MT_ERR_MPI if the reduction fails. */
mt_status mt_boundary_agree(MPI_Comm comm, mt_pipeline *p, const mt_model *m, int time_due,
                            mt_boundary *b);

/* Collective: every rank learns whether `st` failed on any rank; the lowest
 * failing rank prints its message once ("mtrain: ..."). Returns the exit
 * code all ranks share: MT_EXIT_OK, MT_EXIT_USAGE for bad options, data or
 * checkpoints when `usage` is set (before training starts), else
 * MT_EXIT_FAILURE. */
int mt_agree_exit(MPI_Comm comm, mt_status st, int usage);

/* 1 when every one of the n floats is finite. Local. */
int mt_all_finite(const float *x, size_t n);

#endif
