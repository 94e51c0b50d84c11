/*
 * data.c - what the readers share: dataset allocation, loading by kind,
 * per-channel normalisation, the seeded permutation of each epoch and the
 * gathering of normalised mini-batches. No result here depends on the number
 * of ranks or OpenMP threads: sums are exact integers, the permutation is a
 * pure function of (seed, epoch), and gathering is elementwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_internal.h"

/* Salt of the shuffle's RNG stream, so that it shares no stream with other
 * users of the same seed (weight initialisation, ...). */
#define MT_SHUFFLE_SALT 0x53485546464c45ull /* "SHUFFLE" */

const char *mt_dataset_name(mt_dataset_kind kind)
{
    switch (kind) {
    case MT_DATASET_AUTO:
        return "auto";
    case MT_DATASET_CIFAR10:
        return "cifar10";
    case MT_DATASET_MNIST:
        return "mnist";
    }
    return "unknown";
}

mt_status mt_data_join(char *out, size_t cap, const char *dir, const char *name)
{
    size_t len = strlen(dir);
    const char *sep = (len > 0 && dir[len - 1] == '/') ? "" : "/";
    int n = snprintf(out, cap, "%s%s%s", dir, sep, name);

    if (n < 0 || (size_t)n >= cap)
        return MT_FAIL(MT_ERR_ARG, "path too long: %s%s%s", dir, sep, name);
    return MT_OK;
}

mt_status mt_data_open_regular(const char *path, const char *what, int *fd, long long *size)
{
    struct stat sb;
    int flags;

    *fd = open(path, O_RDONLY | O_NONBLOCK);
    if (*fd < 0)
        return MT_FAIL(MT_ERR_IO, "cannot open %s %s: %s", what, path, strerror(errno));
    if (fstat(*fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(*fd);
        *fd = -1;
        return MT_FAIL(MT_ERR_IO, "cannot read %s %s: not a regular file", what, path);
    }
    flags = fcntl(*fd, F_GETFL);
    if (flags != -1)
        fcntl(*fd, F_SETFL, flags & ~O_NONBLOCK);
    *size = (long long)sb.st_size;
    return MT_OK;
}

int mt_data_is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int mt_data_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int mt_data_has_file(const char *dir, const char *name)
{
    char path[MT_DATA_PATH_MAX];
    size_t len = strlen(dir);
    int n = snprintf(path, sizeof path, "%s%s%s", dir, (len > 0 && dir[len - 1] == '/') ? "" : "/",
                     name);

    return n > 0 && (size_t)n < sizeof path && mt_data_is_file(path);
}

mt_status mt_data_new(mt_dataset_kind kind, size_t n, mt_dataset **out)
{
    mt_shape cifar = {3, 32, 32}, mnist = {1, 28, 28};
    void *ds = NULL, *pixels = NULL, *labels = NULL;
    mt_dataset *d;
    mt_status st = MT_OK;

    if (kind != MT_DATASET_CIFAR10 && kind != MT_DATASET_MNIST)
        return MT_FAIL(MT_ERR_ARG, "mt_data_new: no data set of kind %d", (int)kind);
    MT_CHECK_GOTO(mt_alloc_checked(&ds, sizeof(mt_dataset), "a dataset"), st, fail);
    d = ds;
    d->kind = kind;
    d->shape = kind == MT_DATASET_CIFAR10 ? cifar : mnist;
    d->n_classes = 10;
    d->n = n;
    MT_CHECK_GOTO(mt_alloc_checked(&pixels, n * mt_shape_size(d->shape), "dataset pixels"), st,
                  fail);
    MT_CHECK_GOTO(mt_alloc_checked(&labels, n * sizeof(int32_t), "dataset labels"), st, fail);
    d->pixels = pixels;
    d->labels = labels;
    *out = d;
    return MT_OK;

fail:
    mt_free(pixels);
    mt_free(ds);
    return st;
}

mt_status mt_data_append(mt_dataset **ds, mt_dataset *tail)
{
    mt_dataset *head = *ds, *both = NULL;
    mt_status st = MT_OK;
    size_t sample_bytes;

    if (!head) {
        *ds = tail;
        return MT_OK;
    }
    if (head->kind != tail->kind) {
        st = MT_FAIL(MT_ERR_ARG, "cannot append %s samples to a %s data set",
                     mt_dataset_name(tail->kind), mt_dataset_name(head->kind));
        goto done;
    }
    MT_CHECK_GOTO(mt_data_new(head->kind, head->n + tail->n, &both), st, done);
    sample_bytes = mt_shape_size(head->shape);
    memcpy(both->pixels, head->pixels, head->n * sample_bytes);
    memcpy(both->pixels + head->n * sample_bytes, tail->pixels, tail->n * sample_bytes);
    memcpy(both->labels, head->labels, head->n * sizeof(int32_t));
    memcpy(both->labels + head->n, tail->labels, tail->n * sizeof(int32_t));
    mt_dataset_destroy(ds);
    *ds = both;

done:
    mt_dataset_destroy(&tail);
    return st;
}

void mt_dataset_destroy(mt_dataset **ds)
{
    if (!ds || !*ds)
        return;
    mt_free((*ds)->pixels);
    mt_free((*ds)->labels);
    mt_free(*ds);
    *ds = NULL;
}

mt_status mt_dataset_load(const char *dir, mt_dataset_kind kind, int train, mt_dataset **out)
{
    mt_dataset *ds = NULL;

    if (!dir || !out)
        return MT_FAIL(MT_ERR_ARG, "mt_dataset_load: NULL directory or output");
    if (kind == MT_DATASET_AUTO)
        MT_CHECK(mt_data_detect(dir, &kind));
    if (kind == MT_DATASET_CIFAR10)
        MT_CHECK(mt_cifar_load_dir(dir, train, &ds));
    else if (kind == MT_DATASET_MNIST)
        MT_CHECK(mt_mnist_load_dir(dir, train, &ds));
    else
        return MT_FAIL(MT_ERR_ARG, "mt_dataset_load: no data set of kind %d", (int)kind);
    mt_log(MT_LOG_DEBUG, "read %zu %s %s samples from %s", ds->n, mt_dataset_name(kind),
           train ? "training" : "test", dir);
    *out = ds;
    return MT_OK;
}

mt_status mt_norm_fit(const mt_dataset *ds, mt_norm *norm)
{
    uint64_t sum[3] = {0, 0, 0}, sumsq[3] = {0, 0, 0};

    if (!ds || !norm || ds->n == 0 || ds->shape.c < 1 || ds->shape.c > 3)
        return MT_FAIL(MT_ERR_ARG, "mt_norm_fit needs a non-empty data set of 1 to 3 channels");

    const int c = ds->shape.c;
    const size_t plane = (size_t)ds->shape.h * ds->shape.w, sample = c * plane;

    /* Exact integer sums (< 2^53 for any real data set): the result cannot
     * depend on the order of the additions, hence on the thread count. */
#pragma omp parallel for schedule(static) reduction(+ : sum[:3], sumsq[:3])
    for (size_t i = 0; i < ds->n; i++) {
        for (int ch = 0; ch < c; ch++) {
            const uint8_t *p = ds->pixels + i * sample + ch * plane;
            uint64_t s = 0, q = 0;

            for (size_t j = 0; j < plane; j++) {
                s += p[j];
                q += (uint64_t)p[j] * p[j];
            }
            sum[ch] += s;
            sumsq[ch] += q;
        }
    }

    norm->c = c;
    for (int ch = 0; ch < 3; ch++) {
        double count = (double)ds->n * (double)plane;
        double mean = ch < c ? (double)sum[ch] / count : 0.0;
        double var = ch < c ? (double)sumsq[ch] / count - mean * mean : 1.0;
        double std = sqrt(var > 0.0 ? var : 0.0) / 255.0;

        /* A constant channel keeps unit scale (it normalises to zeros). */
        norm->mean[ch] = (float)(mean / 255.0);
        norm->std[ch] = std > 1e-6 ? (float)std : 1.0f;
    }
    return MT_OK;
}

void mt_data_shuffle(uint64_t seed, uint64_t epoch, size_t n, uint32_t *order)
{
    mt_rng rng = mt_rng_make(seed, mt_hash2(MT_SHUFFLE_SALT, epoch));

    for (size_t i = 0; i < n; i++)
        order[i] = (uint32_t)i;
    /* Fisher-Yates from the back: position i-1 takes a uniform pick of [0, i). */
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)mt_rng_below(&rng, i);
        uint32_t t = order[i - 1];

        order[i - 1] = order[j];
        order[j] = t;
    }
}

void mt_data_gather(const mt_dataset *ds, const mt_norm *norm, const uint32_t *order, size_t first,
                    int count, float *x, int32_t *labels)
{
    const int c = ds->shape.c;
    const size_t plane = (size_t)ds->shape.h * ds->shape.w, sample = c * plane;
    float lut[3][256];

    assert(c >= 1 && c <= 3 && (!norm || norm->c == c));
    /* One table per channel evaluates the formula once per byte value. */
    for (int ch = 0; ch < c; ch++) {
        float mean = norm ? norm->mean[ch] : 0.0f, std = norm ? norm->std[ch] : 1.0f;

        for (int p = 0; p < 256; p++)
            lut[ch][p] = ((float)p / 255.0f - mean) / std;
    }

#pragma omp parallel for schedule(static)
    for (int k = 0; k < count; k++) {
        size_t idx = order ? order[first + (size_t)k] : first + (size_t)k;

        assert(idx < ds->n);
        if (x) {
            const uint8_t *src = ds->pixels + idx * sample;
            float *dst = x + (size_t)k * sample;

            for (int ch = 0; ch < c; ch++)
                for (size_t j = 0; j < plane; j++)
                    dst[ch * plane + j] = lut[ch][src[ch * plane + j]];
        }
        if (labels)
            labels[k] = ds->labels[idx];
    }
}
