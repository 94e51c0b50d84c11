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
    "      one op per time step, controls start at 0, one sample. With --task the\n"       \
    "      defaults become --oracle gd, --optim plain, --weight-decay 0, --threads 1\n"   \
    "      and, per oracle (grid searches, README \"Nonlinear control\"):\n"                \
    "        gd         --lr 0.25 d^(50-T), at most 1, d = 1.0971 (0.25 for T = 50,\n"      \
    "                   0.0024 for T = 100; the paper's 1 and 0.25 diverge here)\n"        \
    "        moreau     --sigma 0.5 --gamma 128 (the paper's M-GD)\n"                      \
    "        penalized  --kappa 4 --sigma 4 --gamma 8\n"                                   \
    "        dtp        --sigma 1 --dtp-rho 0.3 --gamma 64\n"                              \
    "        proxprop   --prox-tau as gd's --lr, --lr 1\n"                                 \
    "      inner solver: closed (exact); --inner pendulum=qn for the paper's\n"          \
    "      quasi-Newton. Writes <run-dir>/metrics.csv (iteration,cost,...);\n"           \
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
