/*
 * snapshot.h - save and restore a run: the pipeline's tensors plus the
 * attributes that say where the run stands and what it is (step, epoch and
 * position in the epoch's order, seed, the net's description, the
 * configuration), with a digest over them. Collective over comm.
 */
#ifndef MTRAIN_CLI_SNAPSHOT_H
#define MTRAIN_CLI_SNAPSHOT_H

#include "cli/options.h"

/* Where a run stands. The next batch is the samples
 * [epoch_step * batch, (epoch_step + 1) * batch) of the permutation
 * mt_data_shuffle(seed, epoch): all derive from step and steps_per_epoch. */
typedef struct {
    long step;            /* steps done */
    long steps_per_epoch; /* train_samples / batch */
    long train_samples;
    char run_dir[1024];   /* load: the run directory the checkpoint names */
} mt_snapshot_pos;

/* Write <checkpoint_dir>/<net>-step<N>.h5 (N = pos->step, 8 digits) and
 * point <checkpoint_dir>/latest at it; `file` (cap bytes) receives the
 * file's name. Failures (I/O, disk full) leave earlier checkpoints and
 * `latest` as they were. */
mt_status mt_snapshot_save(MPI_Comm comm, mt_pipeline *p, const mt_model *m,
                           const mt_options *o, const mt_snapshot_pos *pos, char *file,
                           size_t cap);

/* Restore `path` into the pipeline. `pos` gives this run's steps_per_epoch
 * and train_samples and receives the saved step and run directory. Nothing is modified on
 * disk. Returns the same status on every rank:
 *   MT_ERR_IO      the file is missing or unreadable
 *   MT_ERR_FORMAT  damaged: not HDF5, truncated, incomplete, other format
 *                  version, checksum or digest mismatch, inconsistent
 *                  position attributes
 *   MT_ERR_ARG     sound but for another run: other net or net layout, data
 *                  set, optimiser, batch size, seed or training set size.
 * On MT_ERR_FORMAT / MT_ERR_IO the pipeline's tensors may be partly
 * overwritten; the step counter is only set on success. */
mt_status mt_snapshot_load(MPI_Comm comm, mt_pipeline *p, const mt_model *m,
                           const mt_options *o, const char *path, mt_snapshot_pos *pos);

/* The net's description stored in checkpoints: per op its kind, name,
 * input and output shapes and parameter count; when that does not fit in
 * cap bytes, the op count and the full text's length and CRC-32. */
mt_status mt_snapshot_model_text(const mt_model *m, char *buf, size_t cap);

#endif
