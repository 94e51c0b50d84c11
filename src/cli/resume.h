/*
 * resume.h - the checkpoint directory of a run: finding the newest complete
 * checkpoint (--resume auto), keeping the newest N (--keep), and cutting
 * metrics.csv back to the step a run resumes from.
 */
#ifndef MTRAIN_CLI_RESUME_H
#define MTRAIN_CLI_RESUME_H

#include "cli/snapshot.h"

/* Checkpoint files of a directory: names "<net>-step<N>.h5". */
typedef struct {
    int n;
    char (*names)[256]; /* newest (largest N) first */
    long *steps;
} mt_ckpt_list;

/* Rank 0 lists `dir` (missing = empty) and every rank receives the list.
 * Collective. Free with mt_ckpt_list_free. */
mt_status mt_ckpt_list_dir(MPI_Comm comm, const char *dir, mt_ckpt_list *list);
void mt_ckpt_list_free(mt_ckpt_list *list);

/* --resume auto. Collective. Tries this net's checkpoints in
 * o->checkpoint_dir ("<net>-step<N>.h5"; other nets' files are left alone)
 * from the newest: a damaged or unreadable one (MT_ERR_FORMAT, MT_ERR_IO, or a
 * step attribute other than its name's) is reported by a warning naming it
 * and the previous one is tried. `path` (cap bytes) receives the file used,
 * "" when the directory holds no checkpoint (start fresh; pos->step = 0).
 * Fails with MT_ERR_ARG when a checkpoint belongs to another run, and with
 * MT_ERR_FORMAT when checkpoints exist but none is usable. */
mt_status mt_resume_auto(MPI_Comm comm, mt_pipeline *p, const mt_model *m, const mt_options *o,
                         mt_snapshot_pos *pos, char *path, size_t cap);

/* Rank 0 only. After checkpoint `step` was written: delete the older
 * checkpoints of `net` in `dir` beyond the newest `keep` (0 keeps all; files
 * of later steps, left by an earlier attempt, are not counted) and stale
 * "<net>-step*.h5.tmp" and ".reserve" files. Failures to delete are warnings. */
void mt_ckpt_prune(const char *dir, const char *net, long keep, long step);

/* Rank 0 only. Drop the rows of <dir>/metrics.csv and <dir>/stages.csv
 * after `step` (left by an attempt that went on past its last checkpoint);
 * atomic (tmp + rename). */
mt_status mt_metrics_trim(const char *dir, long step);

/* Collective, before a run reads `dir`: when it exists, the run claims it
 * (as mt_ckpt_dir_claim, without creating it), so a run of `net` still
 * writing there is named first; a `fresh` run (no --resume) then fails with
 * MT_ERR_ARG, naming the newest, when `dir` holds checkpoints of `net`
 * (another run's, which its writes would overwrite step by step). */
mt_status mt_ckpt_dir_open(MPI_Comm comm, const char *dir, const char *net, int fresh);

/* Collective, before a run writes: the checkpoint directory exists (rank 0
 * creates it), is a writable directory (MT_ERR_IO naming it otherwise, on
 * every rank), and this run holds <dir>/.<net>.lock until it ends:
 * MT_ERR_ARG naming the holder when another run of `net` holds it (on a
 * file system without locks, a warning and no lock). A call after a claim
 * only checks. */
mt_status mt_ckpt_dir_claim(MPI_Comm comm, const char *dir, const char *net);

/* Drop this process's claim (rank 0; a no-op elsewhere). */
void mt_ckpt_dir_release(void);

#endif
