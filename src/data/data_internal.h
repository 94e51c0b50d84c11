/*
 * data_internal.h - helpers shared by the files of src/data/ (not part of
 * the public contract): path handling, dataset allocation and the per-format
 * directory loaders that mt_dataset_load dispatches to.
 */
#ifndef MTRAIN_DATA_INTERNAL_H
#define MTRAIN_DATA_INTERNAL_H

#include <stddef.h>

#include "mtrain/data.h"

/* Room for one path (directory + file name) held in a stack buffer. */
#define MT_DATA_PATH_MAX 4096

/* out = dir + "/" + name, or fail with MT_ERR_ARG when it does not fit. */
mt_status mt_data_join(char *out, size_t cap, const char *dir, const char *name);
/* 1 when dir/name is a regular file; records no error (for probing). */
int mt_data_has_file(const char *dir, const char *name);
/* *fd = `path` opened for reading, refusing anything but a regular file
 * (after symlinks) without blocking on it: a FIFO would wait for a writer
 * forever. *size = its bytes. Messages name `what` ("CIFAR-10 file"). */
mt_status mt_data_open_regular(const char *path, const char *what, int *fd, long long *size);
/* 1 when `path` is a regular file (after symlinks) / a directory, else 0. */
int mt_data_is_file(const char *path);
int mt_data_is_dir(const char *path);

/* A dataset of `kind` (its shape and class count filled in) with room for
 * n samples, pixels and labels zeroed. */
mt_status mt_data_new(mt_dataset_kind kind, size_t n, mt_dataset **out);
/* Move the samples of `tail` to the end of *ds (tail becomes *ds when *ds is
 * NULL). Consumes tail in every case; *ds is unchanged on failure. */
mt_status mt_data_append(mt_dataset **ds, mt_dataset *tail);

/* 1 when `dir` holds at least one file of the format (either split). */
int mt_cifar_present(const char *dir);
int mt_mnist_present(const char *dir);

/* The kind of data set in `dir`, told from its file names: CIFAR-10 when
 * it holds CIFAR-10 files (even beside MNIST ones), else MNIST; fails with a
 * message naming the expected files when it holds neither. */
mt_status mt_data_detect(const char *dir, mt_dataset_kind *kind);

/* Load the training or test split of the format from `dir` into *out. */
mt_status mt_cifar_load_dir(const char *dir, int train, mt_dataset **out);
mt_status mt_mnist_load_dir(const char *dir, int train, mt_dataset **out);

#endif
