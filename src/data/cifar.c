/*
 * cifar.c - the CIFAR-10 binary reader. A file is any number of 3073-byte
 * records: one label byte (0..9), then the red, green and blue 32x32 planes,
 * row-major. The size is checked before anything is allocated, every read and
 * every label is checked, so a damaged file gives one clear error naming it.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data_internal.h"

#define CIFAR_RECORD_BYTES 3073
#define CIFAR_PIXEL_BYTES 3072
#define CIFAR_CHUNK 512     /* records per fread (1.5 MB) */
#define CIFAR_MAX_FILES 256 /* data_batch_N.bin files per directory */
#define CIFAR_PREFIX "data_batch_"

typedef struct {
    const char *path; /* borrowed */
    FILE *f;
    size_t n; /* records */
} cifar_file;

typedef struct {
    unsigned long number; /* N of data_batch_N.bin */
    char name[256];
} cifar_batch;

/* Open a CIFAR-10 file and count its records from its size. */
static mt_status cifar_open(const char *path, cifar_file *cf)
{
    long long size;
    int fd;

    cf->path = path;
    MT_CHECK(mt_data_open_regular(path, "CIFAR-10 file", &fd, &size));
    cf->f = fdopen(fd, "rb");
    if (!cf->f) {
        close(fd);
        return MT_FAIL(MT_ERR_IO, "cannot open CIFAR-10 file %s: %s", path, strerror(errno));
    }
    if (size == 0)
        return MT_FAIL(MT_ERR_FORMAT,
                       "CIFAR-10 file %s is empty; expected records of %d bytes "
                       "(label + 3x32x32 pixels)",
                       path, CIFAR_RECORD_BYTES);
    if (size % CIFAR_RECORD_BYTES != 0)
        return MT_FAIL(MT_ERR_FORMAT,
                       "CIFAR-10 file %s has %lld bytes, not a multiple of the %d-byte record "
                       "(remainder %lld): truncated or not a CIFAR-10 binary file",
                       path, size, CIFAR_RECORD_BYTES, size % CIFAR_RECORD_BYTES);
    cf->n = (size_t)(size / CIFAR_RECORD_BYTES);
    return MT_OK;
}

/* Explain why fread returned fewer records than the size promised. */
static mt_status cifar_short_read(const cifar_file *cf, size_t at)
{
    if (ferror(cf->f))
        return MT_FAIL(MT_ERR_IO, "cannot read CIFAR-10 file %s at record %zu: %s", cf->path, at,
                       strerror(errno));
    return MT_FAIL(MT_ERR_FORMAT,
                   "CIFAR-10 file %s ended at record %zu of %zu (it shrank while "
                   "being read)",
                   cf->path, at, cf->n);
}

/* Read the records of cf into pixels [n][3072] and labels [n]; buf holds
 * CIFAR_CHUNK records. */
static mt_status cifar_read_records(const cifar_file *cf, uint8_t *pixels, int32_t *labels,
                                    uint8_t *buf)
{
    for (size_t first = 0; first < cf->n; first += CIFAR_CHUNK) {
        size_t count = mt_min_sz(CIFAR_CHUNK, cf->n - first);
        size_t got = fread(buf, CIFAR_RECORD_BYTES, count, cf->f);

        if (got != count)
            return cifar_short_read(cf, first + got);
        for (size_t r = 0; r < count; r++) {
            const uint8_t *rec = buf + r * CIFAR_RECORD_BYTES;

            if (rec[0] > 9)
                return MT_FAIL(MT_ERR_FORMAT,
                               "CIFAR-10 file %s: record %zu has label %d, "
                               "expected 0..9",
                               cf->path, first + r, rec[0]);
            labels[first + r] = rec[0];
            memcpy(pixels + (first + r) * CIFAR_PIXEL_BYTES, rec + 1, CIFAR_PIXEL_BYTES);
        }
    }
    return MT_OK;
}

/* Read the files paths[0..k) into one new dataset, in that order. All sizes
 * are checked before the dataset is allocated. */
static mt_status cifar_read_files(const char *const *paths, size_t k, mt_dataset **out)
{
    cifar_file *files = calloc(k, sizeof *files);
    mt_dataset *ds = NULL;
    void *buf = NULL;
    size_t total = 0, at = 0;
    mt_status st = MT_OK;

    if (!files)
        return MT_FAIL(MT_ERR_MEM, "out of memory listing %zu CIFAR-10 files", k);

    /* Sizes first: a bad file fails before any large allocation. */
    for (size_t i = 0; i < k; i++) {
        MT_CHECK_GOTO(cifar_open(paths[i], &files[i]), st, done);
        total += files[i].n;
    }
    MT_CHECK_GOTO(mt_alloc_checked(&buf, (size_t)CIFAR_CHUNK * CIFAR_RECORD_BYTES,
                                   "the CIFAR-10 read buffer"),
                  st, done);
    MT_CHECK_GOTO(mt_data_new(MT_DATASET_CIFAR10, total, &ds), st, done);

    for (size_t i = 0; i < k; i++) {
        MT_CHECK_GOTO(cifar_read_records(&files[i], ds->pixels + at * CIFAR_PIXEL_BYTES,
                                         ds->labels + at, buf),
                      st, done);
        at += files[i].n;
    }
    *out = ds;
    ds = NULL;

done:
    for (size_t i = 0; i < k; i++)
        if (files[i].f)
            fclose(files[i].f);
    free(files);
    mt_free(buf);
    mt_dataset_destroy(&ds);
    return st;
}

/* 1 when `name` is exactly "data_batch_<N>.bin" with N decimal (N in *number). */
static int cifar_batch_number(const char *name, unsigned long *number)
{
    const char *digits = name + strlen(CIFAR_PREFIX);
    char *end;

    if (strncmp(name, CIFAR_PREFIX, strlen(CIFAR_PREFIX)) != 0 ||
        !isdigit((unsigned char)digits[0]))
        return 0;
    errno = 0;
    *number = strtoul(digits, &end, 10);
    return errno == 0 && strcmp(end, ".bin") == 0;
}

static int cifar_batch_cmp(const void *a, const void *b)
{
    const cifar_batch *x = a, *y = b;

    if (x->number != y->number)
        return x->number < y->number ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Collect the data_batch_N.bin names of `dir` (up to cap of them into out,
 * when out is not NULL), sorted by N. Returns how many there are, or -1 when
 * the directory cannot be read. Records no error. */
static long cifar_scan(const char *dir, cifar_batch *out, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL) {
        unsigned long number;

        if (!cifar_batch_number(e->d_name, &number))
            continue;
        if (out && n < cap) {
            out[n].number = number;
            snprintf(out[n].name, sizeof out[n].name, "%s", e->d_name);
        }
        n++;
    }
    closedir(d);
    if (out)
        qsort(out, mt_min_sz(n, cap), sizeof *out, cifar_batch_cmp);
    return (long)n;
}

int mt_cifar_present(const char *dir)
{
    if (mt_data_has_file(dir, "test_batch.bin"))
        return 1;
    return cifar_scan(dir, NULL, 0) > 0;
}

/* Paths of the training files of `dir` in numeric order, in one block. */
static mt_status cifar_train_paths(const char *dir, char (**paths)[MT_DATA_PATH_MAX], size_t *k)
{
    cifar_batch *batches = calloc(CIFAR_MAX_FILES, sizeof *batches);
    long n;
    mt_status st = MT_OK;

    if (!batches)
        return MT_FAIL(MT_ERR_MEM, "out of memory listing %s", dir);
    n = cifar_scan(dir, batches, CIFAR_MAX_FILES);
    if (n < 0)
        st = MT_FAIL(MT_ERR_IO, "cannot list data directory %s: %s", dir, strerror(errno));
    else if (n == 0)
        st = MT_FAIL(MT_ERR_IO, "no CIFAR-10 training files (data_batch_1.bin ...) in %s", dir);
    else if (n > CIFAR_MAX_FILES)
        st = MT_FAIL(MT_ERR_FORMAT, "%s holds %ld data_batch_N.bin files; at most %d are read", dir,
                     n, CIFAR_MAX_FILES);
    else if (!(*paths = calloc((size_t)n, sizeof **paths)))
        st = MT_FAIL(MT_ERR_MEM, "out of memory listing %s", dir);
    for (long i = 0; st == MT_OK && i < n; i++)
        st = mt_data_join((*paths)[i], MT_DATA_PATH_MAX, dir, batches[i].name);
    *k = st == MT_OK ? (size_t)n : 0;
    free(batches);
    return st;
}

mt_status mt_cifar_load_dir(const char *dir, int train, mt_dataset **out)
{
    char(*paths)[MT_DATA_PATH_MAX] = NULL;
    const char **list = NULL;
    size_t k = 0;
    mt_status st = MT_OK;

    if (!train) {
        char path[MT_DATA_PATH_MAX];
        const char *one = path;

        MT_CHECK(mt_data_join(path, sizeof path, dir, "test_batch.bin"));
        MT_CHECK(cifar_read_files(&one, 1, out));
        return MT_OK;
    }

    MT_CHECK_GOTO(cifar_train_paths(dir, &paths, &k), st, done);
    list = malloc(k * sizeof *list);
    if (!list) {
        st = MT_FAIL(MT_ERR_MEM, "out of memory listing %s", dir);
        goto done;
    }
    for (size_t i = 0; i < k; i++)
        list[i] = paths[i];
    MT_CHECK_GOTO(cifar_read_files(list, k, out), st, done);

done:
    free(list);
    free(paths);
    return st;
}

mt_status mt_cifar_read(const char *path, mt_dataset **ds)
{
    mt_dataset *tail = NULL;

    if (!path || !ds)
        return MT_FAIL(MT_ERR_ARG, "mt_cifar_read: NULL path or dataset");
    MT_CHECK(cifar_read_files(&path, 1, &tail));
    MT_CHECK(mt_data_append(ds, tail));
    return MT_OK;
}
