/*
 * test_resume.c - the pieces of resuming that need no MPI: learning-rate
 * schedules (values against their closed forms), --keep pruning of a
 * checkpoint directory, trimming metrics rows past the resumed step, and
 * the finiteness scan of the step boundary.
 *
 * Tolerances: step schedules multiply by powers of 0.5 here, exact in
 * binary, so they are compared exactly; cosine values are one cos() and two
 * roundings away from the closed form, so they get 4 ulps (1e-15 relative).
 */
#define _XOPEN_SOURCE 700
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/boundary.h"
#include "cli/lr_schedule.h"
#include "cli/resume.h"
#include "testutil.h"

static mt_lr_schedule parsed(const char *text)
{
    mt_lr_schedule s;
    char err[256] = "";

    CU_ASSERT_EQUAL(mt_lr_schedule_parse(text, &s, err, sizeof err), MT_OK);
    return s;
}

static void test_parse(void)
{
    const char *bad[] = {"", "linear", "step:2", "step:0:0.5", "step:2:0", "step:2:1.5",
                         "step:2:0.5x", "step:-1:0.5", "cosine:", "cosine:0", "cosine:x",
                         "cosine:5:1", "const:1", "step:2:nan"};
    char err[256];
    mt_lr_schedule s;

    CU_ASSERT_EQUAL(parsed("const").kind, MT_LR_CONST);
    CU_ASSERT_EQUAL(parsed("cosine").kind, MT_LR_COSINE);
    CU_ASSERT_EQUAL(parsed("cosine").period, 0);
    CU_ASSERT_EQUAL(parsed("cosine:10").period, 10);
    s = parsed("step:3:0.25");
    CU_ASSERT(s.kind == MT_LR_STEP && s.every == 3 && s.factor == 0.25);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(mt_lr_schedule_parse(bad[i], &s, err, sizeof err), MT_ERR_ARG);
        CU_ASSERT(strstr(err, "--lr-schedule") != NULL);
    }
}

static void test_values(void)
{
    const double want_step[] = {0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1};
    mt_lr_schedule s = parsed("step:2:0.5"), c = parsed("cosine:4"), w = parsed("cosine");
    const double pi = 3.14159265358979323846;

    for (long k = 0; k < 7; k++)
        CU_ASSERT_EQUAL(mt_lr_at(&s, 0.8, k, 100), want_step[k]);
    for (long k = 0; k <= 6; k++) {
        double want = k >= 4 ? 0.0 : 0.8 * 0.5 * (1.0 + cos(pi * (double)k / 4.0));
        CU_ASSERT(fabs(mt_lr_at(&c, 0.8, k, 100) - want) <= 1e-15 * 0.8);
    }
    /* cosine without T spans the run: the middle step of 8 has half the rate */
    CU_ASSERT(fabs(mt_lr_at(&w, 0.8, 4, 8) - 0.4) <= 1e-15 * 0.8);
    CU_ASSERT_EQUAL(mt_lr_at(&w, 0.8, 8, 8), 0.0);
    CU_ASSERT_EQUAL(mt_lr_at(&w, 0.8, 0, 8), 0.8);
    CU_ASSERT_EQUAL(mt_lr_at(&(mt_lr_schedule){MT_LR_CONST, 0, 0, 0}, 0.3, 12345, 1), 0.3);
}

static char dir[64];

static void make_dir(void)
{
    CU_ASSERT_FATAL(mt_test_tmpdir(dir, sizeof dir, "mt_resume") == 0);
}

static void touch(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

static int present(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void remove_all(const char *const *names, int n)
{
    char path[256];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void test_prune(void)
{
    const char *names[] = {"net-step00000001.h5", "net-step00000002.h5", "net-step00000003.h5",
                           "net-step00000004.h5", "net-step00000005.h5", "net-step00000006.h5",
                           "other-step00000001.h5", "net-step00000009.h5.tmp",
                           "net-step00000009.h5.reserve", "latest", "net-notes.txt"};
    const int kept[] = {0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1};

    make_dir();
    for (int i = 0; i < 11; i++)
        touch(names[i], "x");
    /* Step 5 was just written: keep it and step 4; step 6 is from an
     * earlier attempt and not counted; another net's file is not ours. */
    mt_ckpt_prune(dir, "net", 2, 5);
    for (int i = 0; i < 11; i++) {
        if (present(names[i]) != kept[i])
            fprintf(stderr, "%s: present %d, expected %d\n", names[i], present(names[i]),
                    kept[i]);
        CU_ASSERT_EQUAL(present(names[i]), kept[i]);
    }
    mt_ckpt_prune(dir, "net", 0, 5); /* keep 0 = keep all */
    CU_ASSERT(present(names[3]) && present(names[4]));
    remove_all(names, 11);
}

static char *slurp(const char *name)
{
    static char buf[4096];
    char path[256];
    FILE *f;
    size_t n;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "r");
    if (!f)
        return NULL;
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_trim(void)
{
    const char *names[] = {"metrics.csv", "stages.csv"};
    char *text;

    make_dir();
    touch("metrics.csv", "kind,step,epoch,loss\ntrain,1,0,2.3\ntrain,2,0,2.2\ntest,2,0,2.25\n"
                         "train,3,0,2.1\ntrain,4,1,2.0\ntest,4,1,2.05\ntrain,5,1,1.9\n");
    touch("stages.csv", "step,stage,penalty\n2,0,1\n2,1,2\n4,0,3\n4,1,4\n");
    MT_TEST_OK(mt_metrics_trim(dir, 3));
    text = slurp("metrics.csv");
    CU_ASSERT(text && strcmp(text, "kind,step,epoch,loss\ntrain,1,0,2.3\ntrain,2,0,2.2\n"
                                   "test,2,0,2.25\ntrain,3,0,2.1\n") == 0);
    text = slurp("stages.csv");
    CU_ASSERT(text && strcmp(text, "step,stage,penalty\n2,0,1\n2,1,2\n") == 0);
    CU_ASSERT(!present("metrics.csv.tmp"));
    remove_all(names, 2);
}

static void test_finite(void)
{
    float x[37];
    const float bad[] = {INFINITY, -INFINITY, NAN};

    for (int i = 0; i < 37; i++)
        x[i] = (float)i - 18.0f;
    x[5] = FLT_MAX;
    x[6] = -FLT_MAX;
    x[7] = FLT_MIN / 4.0f; /* subnormal */
    CU_ASSERT(mt_all_finite(x, 37));
    for (int b = 0; b < 3; b++)
        for (int at = 0; at < 37; at += 12) {
            float saved = x[at];
            x[at] = bad[b];
            CU_ASSERT(!mt_all_finite(x, 37));
            CU_ASSERT(mt_all_finite(x, (size_t)at)); /* the prefix before it */
            x[at] = saved;
        }
}

int main(void)
{
    const mt_test_case tests[] = {
        {"lr schedule parse", test_parse},
        {"lr schedule values", test_values},
        {"prune --keep", test_prune},
        {"trim metrics", test_trim},
        {"finite scan", test_finite},
    };
    return mt_test_main("resume", tests, 5);
}
