/*
 * report.h - what a run tells its user: the configuration and model tables
 * at start, progress lines, and the metrics file (CSV) in the run directory.
 * Rank 0 only.
 */
#ifndef MTRAIN_CLI_REPORT_H
#define MTRAIN_CLI_REPORT_H

#include <mpi.h>
#include <stdio.h>

#include "mtrain/model.h"
#include "mtrain/pipeline.h"

/* "s" unless n is 1: "%d rank%s". */
const char *mt_plural(long n);

/* The model table: op, stage (rank), output shape, parameters, MFLOPs. */
void mt_report_model(const mt_model *model, const int *stage_first, int n_stages);

typedef struct {
    FILE *csv;     /* metrics.csv: one row per step and per evaluation */
    FILE *stages;  /* stages.csv: one row per stage at every logged step */
} mt_metrics;

/* Create <dir>/metrics.csv and <dir>/stages.csv (appending when resuming
 * and they exist). */
mt_status mt_metrics_open(mt_metrics *m, const char *dir, int append);
void mt_metrics_step(mt_metrics *m, long step, long epoch, const mt_step_stats *s,
                     double images_per_s, double elapsed);
void mt_metrics_eval(mt_metrics *m, long step, long epoch, const mt_step_stats *s,
                     double elapsed);
/* Per-stage figures of a logged step: to stages.csv and the log. */
void mt_metrics_stages(mt_metrics *m, long step, const mt_stage_stats *all, int n_stages);
void mt_metrics_close(mt_metrics *m);

/* Collective: when dir (cap bytes) is empty, it becomes
 * runs/<YYYYmmdd-HHMMSS>-<what>-<oracle>, the time rank 0's, the same on
 * every rank; a given directory is kept. */
void mt_default_run_dir(MPI_Comm comm, const char *what, const char *oracle, char *dir,
                        size_t cap);

/* MT_OK when `path` does not exist or is a regular file; else MT_ERR_IO
 * naming it (opening a FIFO would block, a directory cannot be written). */
mt_status mt_regular_or_absent(const char *path);

/* Create a directory and its parents (like mkdir -p). */
mt_status mt_mkdir_p(const char *path);

#endif
