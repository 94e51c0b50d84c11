/*
 * testutil.h - shared helpers for the CUnit suites.
 *
 * mt_test_main runs the given tests as one CUnit suite and returns the exit
 * code (0 only when every assertion passed and at least one test ran).
 * mt_test_main_mpi does the same inside MPI_Init/MPI_Finalize; the run fails
 * when any rank failed.
 */
#ifndef MTRAIN_TESTUTIL_H
#define MTRAIN_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <stddef.h>

#include "mtrain/core.h"

typedef struct {
    const char *name;
    void (*fn)(void);
} mt_test_case;

int mt_test_main(const char *suite, const mt_test_case *tests, int n_tests);
int mt_test_main_mpi(int *argc, char ***argv, const char *suite, const mt_test_case *tests,
                     int n_tests);

/* Fill x[n] with uniform values in [lo, hi) from a seeded stream. */
void mt_test_fill(float *x, size_t n, float lo, float hi, uint64_t seed);
/* Largest |a_i - b_i| / (abs_floor + max(|a_i|, |b_i|)). */
double mt_test_max_rel(const float *a, const float *b, size_t n, double abs_floor);
/* Directory of the development data mirror ($MTRAIN_SHARED_DATA or ../shared/data). */
const char *mt_test_data_dir(void);
/* Create a fresh directory /tmp/<tag>-<6 random characters> (mkdtemp); its
 * name in dir (cap bytes). 0 on success, -1 otherwise. Local. */
int mt_test_tmpdir(char *dir, size_t cap, const char *tag);

/* Assert that a status is MT_OK, printing the error message otherwise. */
#define MT_TEST_OK(expr)                                                           \
    do {                                                                           \
        mt_status st_ = (expr);                                                    \
        if (st_ != MT_OK)                                                          \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr,   \
                    mt_error_message());                                           \
        CU_ASSERT_EQUAL_FATAL(st_, MT_OK);                                         \
    } while (0)

#endif
