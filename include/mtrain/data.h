/*
 * data.h - CIFAR-10 and MNIST readers, normalisation, seeded shuffling and
 * mini-batches that do not depend on the number of ranks.
 *
 * Formats: CIFAR-10 binary (records of 3073 bytes: label, then 1024 red,
 * 1024 green, 1024 blue bytes, row-major) and MNIST IDX (big-endian header,
 * optionally gzip-compressed, read through zlib).
 *
 * Mini-batch b of epoch e holds the samples order_e[b*B .. b*B+B-1] where
 * order_e is a permutation drawn from (seed, e) alone; an epoch has
 * floor(n / B) steps (the remainder is left out of that epoch).
 */
#ifndef MTRAIN_DATA_H
#define MTRAIN_DATA_H

#include <stdint.h>

#include "mtrain/core.h"
#include "mtrain/op.h"

typedef enum { MT_DATASET_AUTO = 0, MT_DATASET_CIFAR10, MT_DATASET_MNIST } mt_dataset_kind;

typedef struct {
    mt_dataset_kind kind;
    mt_shape shape;  /* per sample: 3x32x32 (CIFAR-10) or 1x28x28 (MNIST) */
    int n_classes;   /* 10 */
    size_t n;        /* samples */
    uint8_t *pixels; /* [n][c*h*w], raw bytes */
    int32_t *labels; /* [n], 0..n_classes-1 */
} mt_dataset;

/* Per-channel normalisation x = (p / 255 - mean[c]) / std[c]. */
typedef struct {
    int c;
    float mean[3];
    float std[3];
} mt_norm;

const char *mt_dataset_name(mt_dataset_kind kind);

/* Find the data directory: `dir` when not NULL (it must exist), else the
 * first of $MTRAIN_DATA, data/cifar-10-batches-bin/ (data/mnist/ for MNIST),
 * ../shared/data/cifar10/ (../shared/data/mnist/) that holds the data set.
 * The relative paths are tried from the current directory, then from the
 * project root guessed from the executable's path (two and three levels up
 * from /proc/self/exe). `dir` and $MTRAIN_DATA may also be a parent holding
 * cifar-10-batches-bin/, cifar10/ or mnist/.
 * *kind may be MT_DATASET_AUTO on entry: it is then detected from the file
 * names found (data_batch_N.bin / test_batch.bin: CIFAR-10, searched first;
 * train- / t10k-images-idx3-ubyte[.gz]: MNIST) and set on return. `found`
 * receives the directory (found_cap bytes, PATH_MAX is enough).
 * Returns MT_ERR_IO when nothing is found; the message says where the data
 * should go and how to fetch it (data/get-cifar10.sh). */
mt_status mt_data_locate(const char *dir, mt_dataset_kind *kind, char *found, size_t found_cap);

/* Read the training (train = 1: every data_batch_N.bin in increasing N, or
 * train-*-idx*-ubyte[.gz]) or test (test_batch.bin or t10k-*) split of the
 * data set in `dir` into a new *out (MT_DATASET_AUTO: detect the kind).
 * Errors: MT_ERR_IO (missing or unreadable file), MT_ERR_FORMAT (damaged
 * file), each with one line naming the file and what was expected. */
mt_status mt_dataset_load(const char *dir, mt_dataset_kind kind, int train, mt_dataset **out);

/* Append the records of one CIFAR-10 binary file (any number of 3073-byte
 * records) to *ds (created when *ds is NULL). *ds is unchanged on failure. */
mt_status mt_cifar_read(const char *path, mt_dataset **ds);
/* Read an MNIST image file and its label file (plain or .gz) and append
 * them to *ds like mt_cifar_read. Headers are checked (magic, 28x28, equal
 * counts, sizes the file can hold) before anything large is allocated. */
mt_status mt_mnist_read(const char *images_path, const char *labels_path, mt_dataset **ds);

void mt_dataset_destroy(mt_dataset **ds);

/* Mean and standard deviation (population) per channel over all pixels of
 * `ds`, on the p / 255 scale. Sums are exact integers, so the result does
 * not depend on the thread count. A constant channel gets std 1. */
mt_status mt_norm_fit(const mt_dataset *ds, mt_norm *norm);

/* order[0..n) = the permutation of epoch `epoch` for `seed` (Fisher-Yates
 * on the counter-based stream (seed, hash(epoch))): a pure function of its
 * arguments, the same on every rank. n <= UINT32_MAX. */
void mt_data_shuffle(uint64_t seed, uint64_t epoch, size_t n, uint32_t *order);

/* Write samples order[first .. first+count) normalised into x
 * ([count][c*h*w] floats, NULL to skip) and their labels (NULL to skip).
 * order NULL means the identity (samples first .. first+count); norm NULL
 * means plain p / 255. Indices must be < ds->n (asserted). Elementwise,
 * OpenMP over samples: the result does not depend on the thread count. */
void mt_data_gather(const mt_dataset *ds, const mt_norm *norm, const uint32_t *order, size_t first,
                    int count, float *x, int32_t *labels);

#endif
