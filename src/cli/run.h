/*
 * run.h - one training run from parsed options: data, model, pipeline,
 * checkpoints, the training loop and its reports. Collective over comm.
 */
#ifndef MTRAIN_CLI_RUN_H
#define MTRAIN_CLI_RUN_H

#include <mpi.h>

#include "cli/options.h"

/* Returns the process exit code (see options.h). A failure that every rank
 * agrees on returns normally (printed once); a failure one rank meets alone
 * in the middle of a step is printed with its rank and aborts the job. */
int mt_run(MPI_Comm comm, mt_options *o);

/* OpenMP threads for this rank: the cores it may use divided by the ranks
 * sharing its node, at least 1. */
int mt_default_threads(MPI_Comm comm);

#endif
