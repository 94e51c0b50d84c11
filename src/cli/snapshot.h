/*
 * snapshot.h - save and restore a run: the pipeline's tensors plus the
 * attributes that say where the run stands (step, seed, configuration).
 * Collective over comm.
 */
#ifndef MTRAIN_CLI_SNAPSHOT_H
#define MTRAIN_CLI_SNAPSHOT_H

#include "cli/options.h"

/* Write <checkpoint_dir>/<net>-step<N>.h5 and point <checkpoint_dir>/latest
 * at it. */
mt_status mt_snapshot_save(MPI_Comm comm, mt_pipeline *p, const mt_options *o, long step);
/* Restore o->resume into the pipeline; *step receives the saved step.
 * Fails with MT_ERR_FORMAT when the file is for another net, data set,
 * batch size or optimiser. */
mt_status mt_snapshot_load(MPI_Comm comm, mt_pipeline *p, const mt_options *o, long *step);

#endif
