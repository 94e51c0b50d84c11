/*
 * checkpoint.h - the state of a run in one HDF5 file, written and read by
 * all ranks together through parallel HDF5 (MPI-IO).
 *
 * The module knows tensors and attributes, not models: the caller lists
 * every tensor of the run in the same order on every rank, each with the
 * rank that owns it. Tensor names are HDF5 paths whose groups are created
 * on demand, e.g. "model/features.0.weight" or
 * "optim/features.0.weight/momentum_buffer"; names never depend on the
 * rank layout, so a file written by S ranks reads back on any other number.
 *
 * Attributes on the root group: int64 scalars and strings (step, epoch,
 * seed, format_version, net, config, ...).
 *
 * Integrity: every dataset carries its CRC-32 (zlib, of the float32 bytes)
 * as int64 attribute "crc32", checked by the owner after reading; the root
 * group carries MT_CKPT_COMPLETE_ATTR, written last. HDF5 metadata is
 * written in the 1.8 format, whose object headers and superblock carry
 * checksums.
 */
#ifndef MTRAIN_CHECKPOINT_H
#define MTRAIN_CHECKPOINT_H

#include <mpi.h>

#include "mtrain/core.h"

/* Version 2: CRC-32 of every dataset's data, completeness marker, HDF5
 * 1.8-style metadata with checksums. */
#define MT_CKPT_FORMAT_VERSION 2
/* The root attribute (int64, 1) written after everything else: a file
 * without it is incomplete and is refused by mt_checkpoint_read. */
#define MT_CKPT_COMPLETE_ATTR "complete"

typedef struct {
    char name[96];  /* HDF5 path of the dataset */
    int ndim;
    int dims[4];
    size_t n;       /* element count = product of dims */
    int owner;      /* the rank that writes it and fills it on read */
    float *data;    /* n floats on the owner (borrowed), NULL elsewhere */
} mt_ckpt_tensor;

typedef struct {
    char name[32];
    int is_string;
    int64_t value;
    char text[4096];
} mt_ckpt_attr;

typedef struct {
    int n_tensors;
    mt_ckpt_tensor *tensors;
    int n_attrs;
    mt_ckpt_attr *attrs;
} mt_ckpt_state;

/* Collective over comm. Writes `path` (replacing it atomically: the data go
 * to path.tmp, which is renamed over path once closed). Every rank passes
 * the same list; each writes the tensors it owns.
 * Attribute values must be the same on every rank too (they are HDF5
 * metadata); a list that differs between ranks fails with MT_ERR_ARG.
 * Returns the same status on every rank: MT_ERR_ARG (bad list), MT_ERR_IO
 * (directory missing, create/write/sync/rename failed), MT_ERR_HDF5 (a
 * dataset or attribute could not be created); on failure path.tmp is
 * removed and an existing `path` is left as it was. A rank that did not
 * fail itself records "rank R: <message of the lowest failing rank>".
 * Not thread safe (HDF5 is not); turns HDF5's automatic error printing off. */
mt_status mt_checkpoint_write(MPI_Comm comm, const char *path, const mt_ckpt_state *st);

/* Collective over comm. Reads every tensor into the owner's buffer (shapes
 * must match exactly, else MT_ERR_FORMAT naming the file and the tensor) and
 * fills the value of every attribute named in st->attrs (missing ones fail).
 * Never modifies the file. Returns the same status on every rank: MT_ERR_IO
 * (missing or unreadable file), MT_ERR_FORMAT (not HDF5, truncated, dataset
 * missing / not float32 / other shape, attribute missing / other kind /
 * longer than 4095 bytes, no completeness marker, a dataset's CRC-32 not
 * matching its data), MT_ERR_ARG (bad or differing lists). Datasets and
 * attributes are all checked before any buffer is written, so a format
 * error in the metadata leaves the buffers and st->attrs as they were (an
 * I/O error or a CRC mismatch while reading data may leave some owner
 * buffers filled; st->attrs is only filled on success). A read of
 * attributes alone (n_tensors = 0) does not require the completeness marker,
 * so that a caller can look at a version attribute first. */
mt_status mt_checkpoint_read(MPI_Comm comm, const char *path, mt_ckpt_state *st);

/* The attribute called `name` in st->attrs, or NULL. Local, no MPI. */
mt_ckpt_attr *mt_ckpt_attr_find(mt_ckpt_state *st, const char *name);

#endif
