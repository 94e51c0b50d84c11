/* testutil.c - the CUnit runner and numeric helpers shared by all suites. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include "testutil.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run_suite(const char *suite, const mt_test_case *tests, int n_tests, int verbose)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    for (int i = 0; s && i < n_tests; i++)
        CU_add_test(s, tests[i].name, tests[i].fn);
    CU_basic_set_mode(verbose ? CU_BRM_VERBOSE : CU_BRM_SILENT);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return (failed > 0 || ran == 0) ? 1 : 0;
}

int mt_test_main(const char *suite, const mt_test_case *tests, int n_tests)
{
    mt_log_init(0, MT_LOG_WARN);
    return run_suite(suite, tests, n_tests, 1);
}

int mt_test_main_mpi(int *argc, char ***argv, const char *suite, const mt_test_case *tests,
                     int n_tests)
{
    int rank, size, rc, any;

    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    mt_log_init(rank, MT_LOG_WARN);
    rc = run_suite(suite, tests, n_tests, rank == 0);
    MPI_Allreduce(&rc, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%s on %d ranks: %s\n", suite, size, any ? "FAILED" : "passed");
    MPI_Finalize();
    return any;
}

void mt_test_fill(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    mt_rng rng = mt_rng_make(seed, 0x7e57);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * mt_rng_uniform(&rng);
}

double mt_test_max_rel(const float *a, const float *b, size_t n, double abs_floor)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        double m = fmax(fabs((double)a[i]), fabs((double)b[i]));
        double r = d / (abs_floor + m);
        if (r > worst || isnan(r))
            worst = isnan(r) ? INFINITY : r;
    }
    return worst;
}

const char *mt_test_data_dir(void)
{
    const char *dir = getenv("MTRAIN_SHARED_DATA");
    return dir ? dir : "../shared/data";
}

int mt_test_tmpdir(char *dir, size_t cap, const char *tag)
{
    int len = snprintf(dir, cap, "/tmp/%s-", tag);

    if (len < 0 || (size_t)len + 7 > cap)
        return -1;
    /* mkdtemp's template: the name ends in six 'X', which it replaces */
    memset(dir + len, 'X', 6);
    dir[len + 6] = '\0';
    return mkdtemp(dir) ? 0 : -1;
}
