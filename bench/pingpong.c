/*
 * pingpong.c - MPI point-to-point latency and bandwidth between ranks 0 and
 * 1 (on one machine: OpenMPI's shared-memory transport), for the scaling
 * model of bench/scaling.md. Messages of 8 B to 64 MiB go back and forth;
 * the one-way time is half the median round trip.
 *
 * usage: mpirun -n 2 pingpong [reps]
 * Output per size: "pingpong bytes=N one_way_us=T bandwidth_gbs=G". Not a test.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"

/* Median one-way seconds for a message of `bytes` (rank 0's view). */
static double one_way(char *buf, int bytes, int reps, int rank)
{
    double t[256];

    for (int r = -2; r < reps; r++) { /* two warm-up round trips */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        if (rank == 0) {
            MPI_Send(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(buf, bytes, MPI_BYTE, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(buf, bytes, MPI_BYTE, 0, 0, MPI_COMM_WORLD);
        }
        if (r >= 0)
            t[r] = (MPI_Wtime() - t0) / 2;
    }
    qsort(t, (size_t)reps, sizeof *t, bench_cmp_double);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    int rank, size, reps;
    char *buf;

    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    reps = argc > 1 ? atoi(argv[1]) : 50;
    if (size < 2 || reps < 1 || reps > 256) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -n 2 pingpong [reps 1..256]\n");
        MPI_Finalize();
        return 2;
    }
    buf = malloc((size_t)64 << 20);
    if (!buf)
        MPI_Abort(MPI_COMM_WORLD, 1);
    memset(buf, 1, (size_t)64 << 20);
    for (int bytes = 8; bytes <= (64 << 20); bytes *= 8) {
        double t = one_way(buf, bytes, bytes >= (8 << 20) ? reps / 5 + 1 : reps, rank);
        if (rank == 0)
            printf("pingpong bytes=%d one_way_us=%.2f bandwidth_gbs=%.3f\n", bytes, 1e6 * t,
                   bytes / t / 1e9);
    }
    free(buf);
    MPI_Finalize();
    return 0;
}
