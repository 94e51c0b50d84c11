/*
 * main.c - the mtrain executable: start MPI, read the options, hand over to
 * the run driver, report the exit code. Owns no maths.
 */
#include <mpi.h>
#include <omp.h>
#include <stdio.h>

#include "cli/boundary.h"
#include "cli/options.h"
#include "cli/run.h"
#include "cli/signals.h"

int main(int argc, char **argv)
{
    mt_options o;
    char err[512] = "";
    int rank, provided, code;

    /* Preemption signals only set a flag from the first instant: one that
     * comes while MPI starts or the data loads is acted on after the first
     * step (checkpoint, exit 3) instead of killing the rank. */
    mt_status signals = mt_signals_install();

    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    mt_log_init(rank, MT_LOG_INFO);
    if (mt_agree_exit(MPI_COMM_WORLD, signals, 0) != MT_EXIT_OK) {
        MPI_Finalize();
        return MT_EXIT_FAILURE;
    }

    /* Every rank parses the same argv, so every rank reaches the same verdict. */
    if (mt_options_parse(argc, argv, &o, err, sizeof err) != MT_OK) {
        if (rank == 0)
            fprintf(stderr, "mtrain: %s\n", err);
        MPI_Finalize();
        return MT_EXIT_USAGE;
    }
    if (o.help || o.version) {
        if (rank == 0 && o.help)
            mt_options_usage(stdout);
        else if (rank == 0)
            printf("mtrain %s\n", MT_VERSION);
        MPI_Finalize();
        return MT_EXIT_OK;
    }
    if (o.threads == 0)
        o.threads = mt_default_threads(MPI_COMM_WORLD);
    omp_set_num_threads(o.threads);

    code = mt_run(MPI_COMM_WORLD, &o);
    MPI_Finalize();
    return code;
}
