/*
 * ckpt_internal.h - private helpers of the checkpoint room, shared by
 * checkpoint.c (the two collective entry points) and the files that hold
 * the MPI side (ckpt_agree.c), the HDF5 side (ckpt_h5.c) and the POSIX side
 * (ckpt_fs.c).
 *
 * Failure policy: a step one rank may fail alone is followed by
 * mt_ckpt_agree, after which every rank holds the same status, so that all
 * ranks take the same branch and no rank is left waiting in a collective.
 */
#ifndef MTRAIN_CKPT_INTERNAL_H
#define MTRAIN_CKPT_INTERNAL_H

#include <hdf5.h>
#include <mpi.h>

#include "mtrain/checkpoint.h"

/* Longest path accepted, ".tmp" suffix included. */
#define MT_CKPT_PATH_MAX 4096

typedef enum { MT_CKPT_FOR_WRITE, MT_CKPT_FOR_READ } mt_ckpt_mode;

/* ---- ckpt_agree.c: agreement between ranks ----------------------------- */

/* Collective. Returns the status of the lowest failing rank on every rank
 * (MT_OK when none failed). A rank that did not fail itself records that
 * rank's message, prefixed "rank R: ", so every rank can report it. */
mt_status mt_ckpt_agree(MPI_Comm comm, mt_status st);

/* Collective. Checks the state list (names, shapes, owners, buffers on the
 * owners, attribute strings) and that every rank passed the same list;
 * returns the same status on every rank (MT_ERR_ARG naming the problem). */
mt_status mt_ckpt_validate(MPI_Comm comm, const char *path, const mt_ckpt_state *st,
                           mt_ckpt_mode mode);

/* ---- ckpt_h5.c: HDF5 calls, each checked ------------------------------- */

/* Record `code` with "<path>: <what> (<innermost HDF5 error>)". */
mt_status mt_ckpt_h5_fail(mt_status code, const char *file, int line, const char *path,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define MT_CKPT_H5_FAIL(code, path, ...)                                                           \
    mt_ckpt_h5_fail((code), __FILE__, __LINE__, (path), __VA_ARGS__)

/* Collective. Create (truncating) or open read-only `path` with the MPI-IO
 * driver on comm; *file is a valid id on success, H5I_INVALID_HID else. */
mt_status mt_ckpt_h5_create(MPI_Comm comm, const char *path, hid_t *file);
mt_status mt_ckpt_h5_open(MPI_Comm comm, const char *path, hid_t *file);
/* Close every valid id of dsets[n] and then the file (collective). */
mt_status mt_ckpt_h5_close(const char *path, hid_t file, hid_t *dsets, int n);

/* Collective (metadata). Create the float32 dataset of t, intermediate
 * groups included. */
mt_status mt_ckpt_h5_dataset_create(hid_t file, const char *path, const mt_ckpt_tensor *t,
                                    hid_t *dset);
/* Open the dataset of t and check it is float32 with exactly t's dims
 * (MT_ERR_FORMAT otherwise). */
mt_status mt_ckpt_h5_dataset_check(hid_t file, const char *path, const mt_ckpt_tensor *t,
                                   hid_t *dset);

/* Collective (metadata): every rank writes the same value. */
mt_status mt_ckpt_h5_attr_write(hid_t file, const char *path, const mt_ckpt_attr *a);
/* Fill a->value or a->text from the root group (MT_ERR_FORMAT when missing
 * or of the other kind). */
mt_status mt_ckpt_h5_attr_read(hid_t file, const char *path, mt_ckpt_attr *a);

/* ---- ckpt_integrity.c: checksums and the completeness marker ---------- */

/* zlib's CRC-32 of n floats' bytes. Local, thread safe. */
uint32_t mt_ckpt_crc(const float *data, size_t n);
/* Collective, after the owners wrote their data: every dataset gets its
 * CRC-32 as attribute "crc32", then the root group the completeness marker.
 * Returns the same status on every rank for the MPI part; HDF5 failures
 * there are metadata failures, alike on every rank. */
mt_status mt_ckpt_seal(MPI_Comm comm, int rank, hid_t file, const char *path,
                       const mt_ckpt_state *st, const hid_t *dsets);
/* The completeness marker is present and 1 (MT_ERR_FORMAT otherwise). */
mt_status mt_ckpt_check_complete(hid_t file, const char *path);
/* The stored CRC-32 of a dataset (MT_ERR_FORMAT when missing or invalid). */
mt_status mt_ckpt_read_crc(hid_t dset, const char *path, const char *name, uint32_t *crc);
/* The tensor's buffer, just read, has CRC-32 `want` (MT_ERR_FORMAT naming
 * the dataset otherwise). */
mt_status mt_ckpt_verify_crc(const char *path, const mt_ckpt_tensor *t, uint32_t want);

/* ---- ckpt_fs.c: the file system around the HDF5 file (rank 0) ----------- */

/* The directory of `path` exists and `path` is not a directory. */
mt_status mt_ckpt_fs_check_target(const char *path);
/* `path` exists, is a regular readable file and carries the HDF5 signature
 * (MT_ERR_IO when it cannot be read, MT_ERR_FORMAT when it is not HDF5). */
mt_status mt_ckpt_fs_probe(const char *path);
/* fsync tmp, rename it over path, fsync the directory. */
mt_status mt_ckpt_fs_publish(const char *tmp, const char *path);
/* "; <dir> has N KiB free" for the directory of `path` ("" if unknown). */
void mt_ckpt_fs_free_note(const char *path, char *out, size_t cap);
/* Allocate n_bytes on disk in "<tmp>.reserve" (posix_fallocate), so that
 * a full disk fails here rather than in HDF5's close (MT_ERR_IO naming the
 * free space). */
mt_status mt_ckpt_fs_reserve(const char *tmp, size_t n_bytes);
/* Collective. Rank 0 frees the reserve of tmp and, when `failed`, truncates
 * tmp (a failed, still open file) to 0 bytes, so that the close can write
 * its metadata on a full disk; all ranks wait for it. */
void mt_ckpt_fs_make_room(MPI_Comm comm, int rank, const char *tmp, int failed);
/* Remove tmp if present (failures are ignored: this runs on error paths). */
void mt_ckpt_fs_discard(const char *tmp);

#endif
