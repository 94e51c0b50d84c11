/*
 * test_data.c - the data room against known values of the real files in
 * the development mirror ($MTRAIN_SHARED_DATA), damaged files (written to a
 * temporary directory and from tests/corpus/data/), the shuffle, the
 * normalisation and the search for the data directory.
 */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mtrain/data.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------- */

static void path_of(char *out, size_t cap, const char *dir, const char *name)
{
    CU_ASSERT_FATAL(snprintf(out, cap, "%s/%s", dir, name) < (int)cap);
}

static void write_file(const char *dir, const char *name, const void *bytes, size_t n)
{
    char path[PATH_MAX];
    FILE *f;

    path_of(path, sizeof path, dir, name);
    f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT_FATAL(n == 0 || fwrite(bytes, 1, n, f) == n);
    CU_ASSERT_FATAL(fclose(f) == 0);
}

/* The first n bytes of a file into a new buffer. */
static uint8_t *read_prefix(const char *path, size_t n)
{
    uint8_t *buf = malloc(n);
    FILE *f = fopen(path, "rb");

    CU_ASSERT_FATAL(buf != NULL && f != NULL);
    CU_ASSERT_FATAL(fread(buf, 1, n, f) == n);
    fclose(f);
    return buf;
}

static void make_tmpdir(char *dir, size_t cap)
{
    CU_ASSERT_FATAL(mt_test_tmpdir(dir, cap, "mtrain-test-data") == 0);
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[PATH_MAX];

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (unlink(path) != 0)
            remove_tree(path);
    }
    closedir(d);
    rmdir(dir);
}

/* A failure with status `want` whose message names `needle` (and mentions
 * `also` when not NULL). Clears the error afterwards. */
static void expect_error(mt_status got, mt_status want, const char *needle, const char *also)
{
    const char *msg = mt_error_message();

    if (got != want || !strstr(msg, needle) || (also && !strstr(msg, also)))
        fprintf(stderr, "expected %s naming '%s'%s%s, got %s: %s\n", mt_status_name(want), needle,
                also ? " and '" : "", also ? also : "", mt_status_name(got), msg);
    CU_ASSERT_EQUAL(got, want);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    if (also)
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, also));
    mt_error_clear();
}

static void shared_dir(char *out, size_t cap, const char *sub)
{
    path_of(out, cap, mt_test_data_dir(), sub);
}

static void histogram(const mt_dataset *ds, int hist[10])
{
    memset(hist, 0, 10 * sizeof hist[0]);
    for (size_t i = 0; i < ds->n; i++) {
        CU_ASSERT_FATAL(ds->labels[i] >= 0 && ds->labels[i] < 10);
        hist[ds->labels[i]]++;
    }
}

static void expect_hist(const mt_dataset *ds, const int want[10])
{
    int hist[10];

    histogram(ds, hist);
    for (int k = 0; k < 10; k++) {
        if (hist[k] != want[k])
            fprintf(stderr, "class %d: %d samples, expected %d\n", k, hist[k], want[k]);
        CU_ASSERT_EQUAL(hist[k], want[k]);
    }
}

/* ---- real files ---------------------------------------------------------- */

/* Known first red pixels and histograms (shared/data/README.md, which
 * checked them against the official data_batch_1 / test_batch). */
static void test_cifar_known_values(void)
{
    static const uint8_t train_red[10] = {59, 43, 50, 68, 98, 119, 139, 145, 149, 149};
    static const uint8_t test_red[10] = {158, 159, 165, 166, 160, 156, 162, 159, 158, 159};
    static const int train_hist[10] = {396, 366, 420, 384, 422, 393, 414, 385, 407, 413};
    static const int test_hist[10] = {103, 89, 100, 103, 90, 86, 112, 102, 106, 109};
    static const int32_t test_labels[10] = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
    char dir[PATH_MAX];
    mt_dataset *train = NULL, *test = NULL;
    double t0;

    shared_dir(dir, sizeof dir, "cifar10");
    t0 = mt_time_now();
    MT_TEST_OK(mt_dataset_load(dir, MT_DATASET_CIFAR10, 1, &train));
    printf("\n  load of cifar10/data_batch_1.bin (4000 records): %.1f ms\n",
           1e3 * (mt_time_now() - t0));
    MT_TEST_OK(mt_dataset_load(dir, MT_DATASET_CIFAR10, 0, &test));

    CU_ASSERT_EQUAL_FATAL(train->n, 4000);
    CU_ASSERT_EQUAL_FATAL(test->n, 1000);
    CU_ASSERT(train->shape.c == 3 && train->shape.h == 32 && train->shape.w == 32);
    CU_ASSERT_EQUAL(train->kind, MT_DATASET_CIFAR10);
    CU_ASSERT_EQUAL(train->n_classes, 10);
    CU_ASSERT_EQUAL(memcmp(train->pixels, train_red, 10), 0);
    CU_ASSERT_EQUAL(memcmp(test->pixels, test_red, 10), 0);
    CU_ASSERT_EQUAL(memcmp(test->labels, test_labels, sizeof test_labels), 0);
    expect_hist(train, train_hist);
    expect_hist(test, test_hist);
    mt_dataset_destroy(&train);
    mt_dataset_destroy(&test);
    CU_ASSERT_PTR_NULL(train);
}

/* Record i of the file is label byte + pixels: compare a reading of the raw
 * bytes with what the reader put in the dataset, for a few records. */
static void test_cifar_matches_raw_bytes(void)
{
    char path[PATH_MAX];
    mt_dataset *ds = NULL;
    const size_t picks[4] = {0, 1, 1234, 3999};
    uint8_t *raw;

    shared_dir(path, sizeof path, "cifar10/data_batch_1.bin");
    MT_TEST_OK(mt_cifar_read(path, &ds));
    raw = read_prefix(path, 4000 * (size_t)3073);
    for (int k = 0; k < 4; k++) {
        const uint8_t *rec = raw + picks[k] * 3073;

        CU_ASSERT_EQUAL(ds->labels[picks[k]], rec[0]);
        CU_ASSERT_EQUAL(memcmp(ds->pixels + picks[k] * 3072, rec + 1, 3072), 0);
    }

    /* Appending a second file keeps the first samples and adds the new. */
    shared_dir(path, sizeof path, "cifar10/test_batch.bin");
    MT_TEST_OK(mt_cifar_read(path, &ds));
    CU_ASSERT_EQUAL(ds->n, 5000);
    CU_ASSERT_EQUAL(memcmp(ds->pixels + 3999 * (size_t)3072, raw + 3999 * (size_t)3073 + 1, 3072),
                    0);
    CU_ASSERT_EQUAL(ds->pixels[4000 * (size_t)3072], 158);
    free(raw);
    mt_dataset_destroy(&ds);
}

static void test_mnist_known_values(void)
{
    static const int train_hist[10] = {5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949};
    static const int test_hist[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    char dir[PATH_MAX];
    mt_dataset *train = NULL, *test = NULL;
    mt_dataset_kind kind = MT_DATASET_AUTO;
    double t0;

    shared_dir(dir, sizeof dir, "mnist");
    t0 = mt_time_now();
    MT_TEST_OK(mt_dataset_load(dir, MT_DATASET_MNIST, 1, &train));
    printf("\n  load of mnist train (60000 images, gzip): %.1f ms\n", 1e3 * (mt_time_now() - t0));
    MT_TEST_OK(mt_dataset_load(dir, kind, 0, &test));

    CU_ASSERT_EQUAL_FATAL(train->n, 60000);
    CU_ASSERT_EQUAL_FATAL(test->n, 10000);
    CU_ASSERT_EQUAL(test->kind, MT_DATASET_MNIST);
    CU_ASSERT(train->shape.c == 1 && train->shape.h == 28 && train->shape.w == 28);
    expect_hist(train, train_hist);
    expect_hist(test, test_hist);
    mt_dataset_destroy(&train);
    mt_dataset_destroy(&test);
}

/* ---- damaged CIFAR-10 files -------------------------------------------- */

static void test_cifar_damaged(void)
{
    char tmp[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
    uint8_t *head, junk[5000] = {0};
    mt_dataset *ds = NULL;

    make_tmpdir(tmp, sizeof tmp);
    shared_dir(real, sizeof real, "cifar10/data_batch_1.bin");
    head = read_prefix(real, 3 * 3073);

    /* Truncated copy of the real file: 2 records and 1000 bytes of a third. */
    write_file(tmp, "truncated.bin", head, 2 * 3073 + 1000);
    path_of(path, sizeof path, tmp, "truncated.bin");
    expect_error(mt_cifar_read(path, &ds), MT_ERR_FORMAT, path, "remainder 1000");
    CU_ASSERT_PTR_NULL(ds);

    /* 5000 bytes = 3073 + 1927. */
    write_file(tmp, "odd.bin", junk, sizeof junk);
    path_of(path, sizeof path, tmp, "odd.bin");
    expect_error(mt_cifar_read(path, &ds), MT_ERR_FORMAT, path, "remainder 1927");

    write_file(tmp, "empty.bin", junk, 0);
    path_of(path, sizeof path, tmp, "empty.bin");
    expect_error(mt_cifar_read(path, &ds), MT_ERR_FORMAT, path, "empty");

    /* Record 2 gets label 12. */
    head[2 * 3073] = 12;
    write_file(tmp, "label.bin", head, 3 * 3073);
    path_of(path, sizeof path, tmp, "label.bin");
    expect_error(mt_cifar_read(path, &ds), MT_ERR_FORMAT, path, "record 2 has label 12");

    path_of(path, sizeof path, tmp, "missing.bin");
    expect_error(mt_cifar_read(path, &ds), MT_ERR_IO, path, "No such file");
    expect_error(mt_cifar_read(tmp, &ds), MT_ERR_IO, tmp, "not a regular file");

    /* A failed append leaves the existing data set as it was. */
    head[2 * 3073] = 4;
    write_file(tmp, "good.bin", head, 3 * 3073);
    path_of(path, sizeof path, tmp, "good.bin");
    MT_TEST_OK(mt_cifar_read(path, &ds));
    path_of(path, sizeof path, tmp, "odd.bin");
    expect_error(mt_cifar_read(path, &ds), MT_ERR_FORMAT, path, NULL);
    CU_ASSERT_EQUAL(ds->n, 3);
    CU_ASSERT_EQUAL(ds->labels[2], 4);

    mt_dataset_destroy(&ds);
    free(head);
    remove_tree(tmp);
}

/* Training files are read in numeric order (1, 2, 10), other names ignored. */
static void test_cifar_file_order(void)
{
    static const char *const names[] = {"data_batch_10.bin", "data_batch_2.bin", "data_batch_1.bin",
                                        "data_batch_x.bin", "data_batch_3.bin.bak"};
    static const uint8_t labels[] = {9, 2, 1, 5, 6};
    uint8_t rec[3073];
    char tmp[PATH_MAX], path[PATH_MAX];
    mt_dataset *ds = NULL;

    make_tmpdir(tmp, sizeof tmp);
    for (int i = 0; i < 5; i++) {
        memset(rec, 100 + i, sizeof rec);
        rec[0] = labels[i];
        write_file(tmp, names[i], rec, sizeof rec);
    }
    MT_TEST_OK(mt_dataset_load(tmp, MT_DATASET_AUTO, 1, &ds));
    CU_ASSERT_EQUAL_FATAL(ds->n, 3);
    CU_ASSERT(ds->labels[0] == 1 && ds->labels[1] == 2 && ds->labels[2] == 9);
    CU_ASSERT(ds->pixels[0] == 102 && ds->pixels[3072] == 101 && ds->pixels[2 * 3072] == 100);
    mt_dataset_destroy(&ds);

    /* No test file: the error names it. */
    path_of(path, sizeof path, tmp, "test_batch.bin");
    expect_error(mt_dataset_load(tmp, MT_DATASET_CIFAR10, 0, &ds), MT_ERR_IO, path, NULL);
    remove_tree(tmp);
}

/* ---- damaged MNIST files --------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_mnist_damaged(void)
{
    char tmp[PATH_MAX], img[PATH_MAX], lab[PATH_MAX], real[PATH_MAX];
    uint8_t head[16 + 784], labels[8 + 1] = {0};
    mt_dataset *ds = NULL;

    make_tmpdir(tmp, sizeof tmp);
    path_of(img, sizeof img, tmp, "images");
    path_of(lab, sizeof lab, tmp, "labels");
    put_be32(labels, 2049);
    put_be32(labels + 4, 1);
    write_file(tmp, "labels", labels, sizeof labels);

    /* A valid one-image pair first, so that the failures below are real. */
    memset(head, 7, sizeof head);
    put_be32(head, 2051);
    put_be32(head + 4, 1);
    put_be32(head + 8, 28);
    put_be32(head + 12, 28);
    write_file(tmp, "images", head, sizeof head);
    MT_TEST_OK(mt_mnist_read(img, lab, &ds));
    CU_ASSERT(ds->n == 1 && ds->pixels[783] == 7 && ds->labels[0] == 0);
    mt_dataset_destroy(&ds);

    /* Truncated pixels, garbage magic, a huge count, a short header. */
    write_file(tmp, "images", head, sizeof head - 1);
    expect_error(mt_mnist_read(img, lab, &ds), MT_ERR_FORMAT, img, "truncated");
    put_be32(head, 0x12345678);
    write_file(tmp, "images", head, sizeof head);
    expect_error(mt_mnist_read(img, lab, &ds), MT_ERR_FORMAT, img, "magic number 305419896");
    put_be32(head, 2051);
    put_be32(head + 4, 0xffffffffu);
    write_file(tmp, "images", head, sizeof head);
    expect_error(mt_mnist_read(img, lab, &ds), MT_ERR_FORMAT, img, "declares 4294967295 images");
    put_be32(labels + 4, 0xffffffffu); /* counts agree: the size check refuses it */
    write_file(tmp, "labels", labels, sizeof labels);
    expect_error(mt_mnist_read(img, lab, &ds), MT_ERR_FORMAT, img,
                 "header declares 3367254359280 data bytes, 784 follow");
    write_file(tmp, "images", head, 12);
    expect_error(mt_mnist_read(img, lab, &ds), MT_ERR_FORMAT, img, "too short");

    /* A real gzip file cut in half: the stream ends early. */
    shared_dir(real, sizeof real, "mnist/t10k-labels-idx1-ubyte.gz");
    uint8_t *gz = read_prefix(real, 2000);
    write_file(tmp, "labels.gz", gz, 2000);
    free(gz);
    shared_dir(real, sizeof real, "mnist/t10k-images-idx3-ubyte.gz");
    path_of(lab, sizeof lab, tmp, "labels.gz");
    expect_error(mt_mnist_read(real, lab, &ds), MT_ERR_FORMAT, lab, "cut short");
    CU_ASSERT_PTR_NULL(ds);

    path_of(lab, sizeof lab, tmp, "no-labels");
    expect_error(mt_mnist_read(real, lab, &ds), MT_ERR_IO, lab, "No such file");
    remove_tree(tmp);
}

/* ---- the corpus of damaged files ------------------------------------------ */

static int corpus_dir(char *out, size_t cap)
{
    const char *src = getenv("MTRAIN_SOURCE_DIR");

    if (!src) {
        fprintf(stderr, "MTRAIN_SOURCE_DIR is not set: cannot find tests/corpus/data\n");
        return 0;
    }
    return snprintf(out, cap, "%s/tests/corpus/data", src) < (int)cap;
}

/* Read one corpus file the way its name says; returns the status. */
static mt_status read_corpus_file(const char *dir, const char *name, mt_dataset **ds)
{
    char path[PATH_MAX], good[PATH_MAX];

    path_of(path, sizeof path, dir, name);
    if (strncmp(name, "cifar-", 6) == 0)
        return mt_cifar_read(path, ds);
    if (strncmp(name, "idx3-", 5) == 0) {
        path_of(good, sizeof good, dir, "good-labels-idx1-ubyte");
        return mt_mnist_read(path, good, ds);
    }
    path_of(good, sizeof good, dir, "good-images-idx3-ubyte");
    return mt_mnist_read(good, path, ds);
}

static void test_corpus(void)
{
    char dir[PATH_MAX], img[PATH_MAX], lab[PATH_MAX];
    struct dirent *e;
    mt_dataset *ds = NULL;
    DIR *d;
    int n_files = 0;

    CU_ASSERT_FATAL(corpus_dir(dir, sizeof dir));
    path_of(img, sizeof img, dir, "good-images-idx3-ubyte");
    path_of(lab, sizeof lab, dir, "good-labels-idx1-ubyte");
    MT_TEST_OK(mt_mnist_read(img, lab, &ds));
    CU_ASSERT(ds->n == 2 && ds->labels[0] == 3 && ds->labels[1] == 7);
    mt_dataset_destroy(&ds);

    d = opendir(dir);
    CU_ASSERT_FATAL(d != NULL);
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;

        if (strncmp(name, "cifar-", 6) != 0 && strncmp(name, "idx1-", 5) != 0 &&
            strncmp(name, "idx3-", 5) != 0)
            continue;
        mt_error_clear();
        expect_error(read_corpus_file(dir, name, &ds), MT_ERR_FORMAT, name, NULL);
        CU_ASSERT_PTR_NULL(ds);
        n_files++;
    }
    closedir(d);
    /* make-data-corpus.sh writes 26 damaged files; an empty folder must fail. */
    CU_ASSERT(n_files >= 26);
}

/* Huge sizes in headers are refused before allocation: in a child limited to
 * 256 MB of address space more than the parent uses (far below the 3.4 TB
 * that 2^32-1 images declare), each read must end in a format error about
 * the header, not in MT_ERR_MEM or a crash. Image and label counts agree in
 * the first two pairs, so the size check itself is what refuses them. */
static void test_huge_headers_do_not_allocate(void)
{
    static const char *const pairs[][2] = {
        {"idx3-huge-count", "idx1-huge-count"},
        {"idx3-huge-count.gz", "idx1-huge-count"},
        {"idx3-huge-dims", "good-labels-idx1-ubyte"},
        {"idx3-overflow-dims", "good-labels-idx1-ubyte"},
    };
    char dir[PATH_MAX], img[PATH_MAX], lab[PATH_MAX], line[256];
    unsigned long vm_kb = 0;
    struct rlimit lim;
    int wstatus;
    pid_t pid;
    FILE *f;

    CU_ASSERT_FATAL(corpus_dir(dir, sizeof dir));
    f = fopen("/proc/self/status", "r");
    CU_ASSERT_FATAL(f != NULL);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %lu kB", &vm_kb) == 1)
            break;
    fclose(f);
    CU_ASSERT_FATAL(vm_kb > 0);

    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        mt_dataset *ds = NULL;
        int bad = 0;

        lim.rlim_cur = lim.rlim_max = (vm_kb + 256 * 1024) * 1024;
        if (setrlimit(RLIMIT_AS, &lim) != 0)
            _exit(3);
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
            path_of(img, sizeof img, dir, pairs[i][0]);
            path_of(lab, sizeof lab, dir, pairs[i][1]);
            mt_error_clear();
            if (mt_mnist_read(img, lab, &ds) != MT_ERR_FORMAT ||
                (!strstr(mt_error_message(), "header") &&
                 !strstr(mt_error_message(), "expected 28x28"))) {
                fprintf(stderr, "%s: %s\n", pairs[i][0], mt_error_message());
                bad = 1;
            }
        }
        _exit(bad);
    }
    CU_ASSERT_FATAL(waitpid(pid, &wstatus, 0) == pid);
    CU_ASSERT(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
}

/* ---- shuffle ----------------------------------------------------------------- */

static int is_permutation(const uint32_t *order, size_t n)
{
    uint8_t *seen = calloc(n ? n : 1, 1);
    int ok = seen != NULL;

    for (size_t i = 0; ok && i < n; i++) {
        ok = order[i] < n && !seen[order[i]];
        if (ok)
            seen[order[i]] = 1;
    }
    free(seen);
    return ok;
}

static void test_shuffle(void)
{
    enum { N = 1000 };
    static uint32_t a[N], b[N], c[N], d[N];
    uint32_t one = 7;

    mt_data_shuffle(42, 0, N, a);
    mt_data_shuffle(42, 0, N, b);
    mt_data_shuffle(42, 1, N, c);
    mt_data_shuffle(43, 0, N, d);
    CU_ASSERT(is_permutation(a, N) && is_permutation(c, N) && is_permutation(d, N));
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, c, sizeof a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, d, sizeof a), 0);
    mt_data_shuffle(42, 0, 1, &one);
    CU_ASSERT_EQUAL(one, 0);
    mt_data_shuffle(42, 0, 0, NULL);

    /* Uniformity: the 24 orders of 4 items over 24000 epochs. Chi-square with
     * 23 degrees of freedom stays below 49.7 with probability 0.999 for a
     * uniform shuffle (the draws are fixed by the seeds, so this cannot
     * flake); an off-by-one Fisher-Yates lands far above. */
    int counts[256] = {0};
    for (uint64_t e = 0; e < 24000; e++) {
        uint32_t o[4];

        mt_data_shuffle(7, e, 4, o);
        counts[o[0] * 64 + o[1] * 16 + o[2] * 4 + o[3]]++;
    }
    double chi2 = 0.0;
    int distinct = 0;
    for (int k = 0; k < 256; k++) {
        if (counts[k]) {
            distinct++;
            chi2 += (counts[k] - 1000.0) * (counts[k] - 1000.0) / 1000.0;
        }
    }
    printf("\n  shuffle of 4: %d orders, chi-square %.1f\n", distinct, chi2);
    CU_ASSERT_EQUAL(distinct, 24);
    CU_ASSERT(chi2 < 49.7);
}

/* ---- normalisation and gathering -------------------------------------------- */

/* Per-channel mean and population std of x [n][c][plane], in double. */
static void moments(const float *x, size_t n, int c, size_t plane, double *mean, double *std)
{
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0, q = 0.0;

        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < plane; j++)
                s += x[(i * c + ch) * plane + j];
        mean[ch] = s / (double)(n * plane);
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < plane; j++) {
                double dv = x[(i * c + ch) * plane + j] - mean[ch];
                q += dv * dv;
            }
        std[ch] = sqrt(q / (double)(n * plane));
    }
}

/* The same from the bytes, p / 255 in double. */
static void byte_moments(const mt_dataset *ds, double *mean, double *std)
{
    const size_t plane = 1024, count = ds->n * plane;

    for (int ch = 0; ch < 3; ch++) {
        double s = 0.0, q = 0.0;

        for (size_t i = 0; i < ds->n; i++)
            for (size_t j = 0; j < plane; j++)
                s += ds->pixels[(i * 3 + ch) * plane + j] / 255.0;
        mean[ch] = s / (double)count;
        for (size_t i = 0; i < ds->n; i++)
            for (size_t j = 0; j < plane; j++) {
                double dv = ds->pixels[(i * 3 + ch) * plane + j] / 255.0 - mean[ch];
                q += dv * dv;
            }
        std[ch] = sqrt(q / (double)count);
    }
}

static void test_norm_and_gather(void)
{
    char dir[PATH_MAX];
    mt_dataset *ds = NULL;
    mt_norm norm, norm2;
    float *x, *x2, *raw;
    int32_t *labels;
    uint32_t *order;
    double mean[3], std[3];

    shared_dir(dir, sizeof dir, "cifar10");
    MT_TEST_OK(mt_dataset_load(dir, MT_DATASET_CIFAR10, 1, &ds));
    const size_t n = ds->n, sample = 3072;
    x = malloc(n * sample * sizeof *x);
    x2 = malloc(n * sample * sizeof *x2);
    raw = malloc(n * sample * sizeof *raw);
    labels = malloc(n * sizeof *labels);
    order = malloc(n * sizeof *order);
    CU_ASSERT_FATAL(x && x2 && raw && labels && order);

    /* The fitted statistics against a two-pass double computation on the
     * bytes / 255: the fit rounds its result once to float (half an ulp,
     * 6e-8 relative), so 2e-7 relative is a tight but safe bound. */
    omp_set_num_threads(1);
    MT_TEST_OK(mt_norm_fit(ds, &norm));
    byte_moments(ds, mean, std);
    CU_ASSERT_EQUAL(norm.c, 3);
    for (int ch = 0; ch < 3; ch++) {
        CU_ASSERT(fabs(norm.mean[ch] - mean[ch]) < 2e-7 * mean[ch]);
        CU_ASSERT(fabs(norm.std[ch] - std[ch]) < 2e-7 * std[ch]);
    }

    /* Without a norm, gather gives exactly p / 255 in float. */
    mt_data_gather(ds, NULL, NULL, 0, (int)n, raw, NULL);
    for (size_t i = 0; i < n * sample; i += 997)
        CU_ASSERT_EQUAL(raw[i], (float)ds->pixels[i] / 255.0f);
    printf("\n  CIFAR-10 (4000) mean %.4f %.4f %.4f std %.4f %.4f %.4f\n", norm.mean[0],
           norm.mean[1], norm.mean[2], norm.std[0], norm.std[1], norm.std[2]);

    /* After gathering: each value is off by a few float ulps of |x| < 4, so
     * the channel mean is within 1e-5 of 0 and the std within 1e-5 of 1. */
    mt_data_gather(ds, &norm, NULL, 0, (int)n, x, labels);
    moments(x, n, 3, 1024, mean, std);
    for (int ch = 0; ch < 3; ch++) {
        printf("  channel %d after gather: mean %.2e std - 1 %.2e\n", ch, mean[ch], std[ch] - 1.0);
        CU_ASSERT(fabs(mean[ch]) < 1e-5);
        CU_ASSERT(fabs(std[ch] - 1.0) < 1e-5);
    }
    CU_ASSERT_EQUAL(memcmp(labels, ds->labels, n * sizeof *labels), 0);

    /* A shuffled gather of a window holds exactly the rows it names, and
     * 1 and 2 threads give the same bits (fit and gather). */
    mt_data_shuffle(5, 3, n, order);
    omp_set_num_threads(2);
    MT_TEST_OK(mt_norm_fit(ds, &norm2));
    CU_ASSERT_EQUAL(memcmp(&norm, &norm2, sizeof norm), 0);
    mt_data_gather(ds, &norm, order, 100, 777, x2, labels);
    for (int k = 0; k < 777; k++) {
        CU_ASSERT_EQUAL(labels[k], ds->labels[order[100 + k]]);
        CU_ASSERT_EQUAL(memcmp(x2 + k * sample, x + order[100 + k] * sample, sample * sizeof *x),
                        0);
    }
    mt_data_gather(ds, &norm, NULL, 0, (int)n, x2, NULL);
    CU_ASSERT_EQUAL(memcmp(x, x2, n * sample * sizeof *x), 0);

    free(x);
    free(x2);
    free(raw);
    free(labels);
    free(order);
    mt_dataset_destroy(&ds);
}

/* ---- locate -------------------------------------------------------------------- */

static void test_locate(void)
{
    char cifar[PATH_MAX], mnist[PATH_MAX], found[PATH_MAX], tmp[PATH_MAX];
    char missing[PATH_MAX];
    mt_dataset_kind kind;

    shared_dir(cifar, sizeof cifar, "cifar10");
    shared_dir(mnist, sizeof mnist, "mnist");
    unsetenv("MTRAIN_DATA");

    kind = MT_DATASET_AUTO;
    MT_TEST_OK(mt_data_locate(cifar, &kind, found, sizeof found));
    CU_ASSERT(kind == MT_DATASET_CIFAR10 && strcmp(found, cifar) == 0);
    kind = MT_DATASET_AUTO;
    MT_TEST_OK(mt_data_locate(mnist, &kind, found, sizeof found));
    CU_ASSERT(kind == MT_DATASET_MNIST && strcmp(found, mnist) == 0);

    /* The parent folder: CIFAR-10 first, MNIST when asked for. */
    kind = MT_DATASET_AUTO;
    MT_TEST_OK(mt_data_locate(mt_test_data_dir(), &kind, found, sizeof found));
    CU_ASSERT(kind == MT_DATASET_CIFAR10 && strcmp(found, cifar) == 0);
    kind = MT_DATASET_MNIST;
    MT_TEST_OK(mt_data_locate(mt_test_data_dir(), &kind, found, sizeof found));
    CU_ASSERT(kind == MT_DATASET_MNIST && strcmp(found, mnist) == 0);

    /* $MTRAIN_DATA comes first when no directory is given. */
    setenv("MTRAIN_DATA", mnist, 1);
    kind = MT_DATASET_AUTO;
    MT_TEST_OK(mt_data_locate(NULL, &kind, found, sizeof found));
    CU_ASSERT(kind == MT_DATASET_MNIST && strcmp(found, mnist) == 0);
    unsetenv("MTRAIN_DATA");

    /* Wrong kind, missing and empty directories: clear errors. */
    kind = MT_DATASET_MNIST;
    expect_error(mt_data_locate(cifar, &kind, found, sizeof found), MT_ERR_IO, cifar,
                 "no MNIST files");
    make_tmpdir(tmp, sizeof tmp);
    path_of(missing, sizeof missing, tmp, "nowhere");
    /* $MTRAIN_DATA set to no directory is an error, not silently skipped */
    setenv("MTRAIN_DATA", missing, 1);
    kind = MT_DATASET_AUTO;
    expect_error(mt_data_locate(NULL, &kind, found, sizeof found), MT_ERR_IO, missing,
                 "MTRAIN_DATA=");
    unsetenv("MTRAIN_DATA");
    kind = MT_DATASET_AUTO;
    expect_error(mt_data_locate(missing, &kind, found, sizeof found), MT_ERR_IO, missing,
                 "get-cifar10.sh");
    kind = MT_DATASET_AUTO;
    expect_error(mt_data_locate(tmp, &kind, found, sizeof found), MT_ERR_IO, tmp, "get-cifar10.sh");
    expect_error(mt_dataset_load(tmp, MT_DATASET_AUTO, 1, &(mt_dataset *){NULL}), MT_ERR_IO, tmp,
                 "neither CIFAR-10");
    remove_tree(tmp);
}

/* From an empty current directory, the search falls back to the project root
 * found from the executable (build/tests/test_data -> root): it finds the
 * mirror when the build tree sits in the project, and otherwise says where
 * the data should go. */
static void test_locate_from_elsewhere(void)
{
    char cwd[PATH_MAX], tmp[PATH_MAX], found[PATH_MAX], exe[PATH_MAX], want[PATH_MAX + 32];
    char expect_dir[PATH_MAX];
    mt_dataset_kind kind = MT_DATASET_AUTO;
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    mt_status st;

    CU_ASSERT_FATAL(len > 0 && getcwd(cwd, sizeof cwd) != NULL);
    exe[len] = '\0';
    /* .../build/tests/test_data: the root is three components up. */
    for (int up = 0; up < 3; up++)
        *strrchr(exe, '/') = '\0';
    snprintf(want, sizeof want, "%s/../shared/data/cifar10", exe);
    int reachable = realpath(want, expect_dir) != NULL;

    make_tmpdir(tmp, sizeof tmp);
    unsetenv("MTRAIN_DATA");
    CU_ASSERT_FATAL(chdir(tmp) == 0);
    st = mt_data_locate(NULL, &kind, found, sizeof found);
    CU_ASSERT_FATAL(chdir(cwd) == 0);
    if (reachable) {
        char real[PATH_MAX];

        if (st != MT_OK)
            fprintf(stderr, "locate from %s: %s\n", tmp, mt_error_message());
        CU_ASSERT_EQUAL_FATAL(st, MT_OK);
        CU_ASSERT(kind == MT_DATASET_CIFAR10);
        CU_ASSERT(realpath(found, real) && strcmp(real, expect_dir) == 0);
    } else {
        expect_error(st, MT_ERR_IO, "data/cifar-10-batches-bin/", "get-cifar10.sh");
    }
    remove_tree(tmp);
}

int main(void)
{
    static const mt_test_case tests[] = {
        {"CIFAR-10 known pixels and histograms", test_cifar_known_values},
        {"CIFAR-10 records equal the raw bytes; append", test_cifar_matches_raw_bytes},
        {"MNIST counts and histograms", test_mnist_known_values},
        {"damaged CIFAR-10 files", test_cifar_damaged},
        {"CIFAR-10 training files in numeric order", test_cifar_file_order},
        {"damaged MNIST files", test_mnist_damaged},
        {"corpus of damaged files", test_corpus},
        {"huge headers do not allocate", test_huge_headers_do_not_allocate},
        {"shuffle: permutation, deterministic, uniform", test_shuffle},
        {"normalisation and gather", test_norm_and_gather},
        {"locate and auto-detect", test_locate},
        {"locate from another directory", test_locate_from_elsewhere},
    };
    return mt_test_main("data", tests, sizeof tests / sizeof tests[0]);
}
