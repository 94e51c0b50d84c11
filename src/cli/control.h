/*
 * control.h - the driver of nonlinear control tasks (--task): the controls
 * w_1..w_T of a dynamical system trained through the same pipeline as the
 * nets, one sample (the initial state), no data set and no test set.
 */
#ifndef MTRAIN_CLI_CONTROL_H
#define MTRAIN_CLI_CONTROL_H

#include <mpi.h>

#include "cli/options.h"
#include "mtrain/control.h"

/* The --task help line: the task and its per-oracle defaults. */
#define MT_CONTROL_TASK_HELP                                                               \
    "control task instead of a net: the pendulum swing-up of ALGORITHMS.md section 8,\n" \
    "      one op per time step, controls start at 0, full batch. With --task the\n"     \
    "      defaults become: --oracle gd, --optim plain, --weight-decay 0, and per\n"     \
    "      oracle (paper, section 8, or a grid search, see README):\n"                    \
    "        gd         --lr 1 for T <= 50, 0.25 for T > 50 (the paper's GD steps)\n"     \
    "        moreau     --sigma 0.5 --gamma 128 (the paper's M-GD)\n"                     \
    "        penalized  --kappa 1 --sigma 1 --gamma 0.5 for T <= 50, 0.125 for T > 50\n"  \
    "        dtp        --sigma 1 --dtp-rho 0.1 --gamma as gd's --lr\n"                   \
    "        proxprop   --prox-tau as gd's --lr, --lr 1\n"                                 \
    "      inner solver: closed (exact Newton); --inner pendulum=qn for the paper's"      \
    "\n      quasi-Newton. Writes <run-dir>/metrics.csv (iteration,cost,...);\n"          \
    "      checkpoints only with --checkpoint-every N"

/* Before the options are mapped onto enums: a task trains with --oracle gd
 * and --optim plain unless they were given. */
void mt_control_preset(mt_options *o);

/* After parsing: the task's defaults for every option not given (above),
 * and the checks that involve the task: options that only make sense for
 * nets are refused with --task, and --horizon/--iterations without it.
 * Writes one line into err and returns MT_ERR_ARG on a bad combination.
 * Without --task and without task options, returns MT_OK untouched. */
mt_status mt_control_finish(mt_options *o, char *err, size_t cap);

/* Run the task: collective over comm. Returns the process exit code (see
 * options.h): 2 on bad input seen by every rank (e.g. more ranks than time
 * steps), 1 when the run fails; a failure one rank meets alone in the middle
 * of an iteration aborts the job. */
int mt_control_run(MPI_Comm comm, mt_options *o);

#endif
