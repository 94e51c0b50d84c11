/* boundary.c - the agreement of all ranks at the end of a training step. */
#include <float.h>
#include <math.h>
#include <stdio.h>

#include "cli/boundary.h"
#include "cli/options.h"
#include "cli/signals.h"

int mt_all_finite(const float *x, size_t n)
{
    int bad = 0;

    /* |x| <= FLT_MAX is false for inf and NaN; no branch, so it vectorises. */
    for (size_t i = 0; i < n; i++)
        bad |= !(fabsf(x[i]) <= FLT_MAX);
    return !bad;
}

/* This rank's first op with a non-finite parameter, -1 if none. The update
 * of a step tells in passing whether all of them are finite; the stage's
 * parameters are scanned only when it found one that is not, or when the
 * parameters may have changed since. */
static int first_bad_op(mt_pipeline *p, const mt_model *m)
{
    const int *first = mt_pipeline_stage_first(p);
    int rank = mt_pipeline_rank(p);

    if (mt_pipeline_update_finite(p) == 1)
        return -1;
    for (int t = first[rank]; t < first[rank + 1]; t++) {
        const float *w = mt_pipeline_op_params(p, t);
        if (w && m->ops[t]->n_params > 0 && !mt_all_finite(w, m->ops[t]->n_params))
            return t;
    }
    return -1;
}

mt_status mt_boundary_agree(MPI_Comm comm, mt_pipeline *p, const mt_model *m, int time_due,
                            mt_boundary *b)
{
    const int n_ops = m->n_ops, bad = first_bad_op(p, m);
    int mine[3], all[3], rank;

    /* MAX of n_ops - t picks the smallest bad op index t. */
    MPI_Comm_rank(comm, &rank);
    mine[0] = mt_signals_pending();
    mine[1] = rank == 0 && time_due;
    mine[2] = bad >= 0 ? n_ops - bad : 0;
    if (MPI_Allreduce(mine, all, 3, MPI_INT, MPI_MAX, comm) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "MPI_Allreduce at the step boundary failed");
    b->signal = all[0];
    b->time_due = all[1];
    b->bad_op = all[2] > 0 ? n_ops - all[2] : -1;
    b->bad_rank = -1;
    if (b->bad_op >= 0) {
        const int *first = mt_pipeline_stage_first(p);
        b->bad_rank = 0;
        while (first[b->bad_rank + 1] <= b->bad_op)
            b->bad_rank++;
    }
    return MT_OK;
}

int mt_agree_exit(MPI_Comm comm, mt_status st, int usage)
{
    int rank, size, mine, first, worst;
    int code = st == MT_OK ? MT_EXIT_OK
               : usage && (st == MT_ERR_ARG || st == MT_ERR_FORMAT || st == MT_ERR_IO)
                   ? MT_EXIT_USAGE
                   : MT_EXIT_FAILURE;

    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    mine = st == MT_OK ? size : rank;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
    if (first == size)
        return MT_EXIT_OK;
    if (rank == first)
        fprintf(stderr, "mtrain: %s\n", mt_error_message());
    MPI_Allreduce(&code, &worst, 1, MPI_INT, MPI_MAX, comm);
    return worst;
}
