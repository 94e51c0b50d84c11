/*
 * checkpoint.c - collective write and read of a run's state in one HDF5
 * file through parallel HDF5 (MPI-IO driver).
 *
 * Write: every rank creates every group, dataset and attribute of path.tmp
 * in the same order (HDF5 metadata operations are collective), then each
 * owner writes its tensors with independent transfers, all write the
 * datasets' CRC-32 and last the completeness marker (ckpt_integrity.c), all
 * close the file, and rank 0 syncs it and renames it over path. Read: every
 * rank opens the file read-only and checks the marker, every dataset's type,
 * shape and checksum attribute and the requested attributes before any
 * owner reads its tensors and checks their CRC-32.
 *
 * Data transfers are independent, not collective: each tensor is one
 * contiguous block written or read whole by a single rank, so there is
 * nothing for two-phase collective I/O to aggregate, and a collective call
 * per tensor would only add a synchronisation of all ranks per tensor.
 *
 * After each step that a rank may fail alone, the ranks agree on the status
 * (mt_ckpt_agree), so that all of them reach the same collective calls.
 * Known limit: metadata steps (create/open, H5Dcreate, H5Fclose) must fail
 * on all ranks alike, which they do since all ranks run them on the same
 * file and arguments; a rank-local failure there (out of memory) would
 * leave HDF5's collective close waiting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint/ckpt_internal.h"

/* One id per tensor, all invalid to start with. */
static mt_status alloc_ids(hid_t **ids, int n)
{
    *ids = malloc(sizeof **ids * (size_t)(n > 0 ? n : 1));
    if (!*ids)
        return MT_FAIL(MT_ERR_MEM, "checkpoint: out of memory for %d dataset ids", n);
    for (int i = 0; i < n; i++)
        (*ids)[i] = H5I_INVALID_HID;
    return MT_OK;
}

/* Collective: every group, dataset and attribute, in list order. */
static mt_status create_layout(hid_t file, const char *tmp, const mt_ckpt_state *st, hid_t *dsets)
{
    for (int i = 0; i < st->n_tensors; i++)
        MT_CHECK(mt_ckpt_h5_dataset_create(file, tmp, &st->tensors[i], &dsets[i]));
    for (int i = 0; i < st->n_attrs; i++)
        MT_CHECK(mt_ckpt_h5_attr_write(file, tmp, &st->attrs[i]));
    return MT_OK;
}

/* Independent: each rank writes the tensors it owns. */
static mt_status write_owned(int rank, const char *tmp, const mt_ckpt_state *st, const hid_t *dsets)
{
    for (int i = 0; i < st->n_tensors; i++) {
        const mt_ckpt_tensor *t = &st->tensors[i];
        if (t->owner != rank)
            continue;
        if (H5Dwrite(dsets[i], H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0) {
            char room[MT_CKPT_PATH_MAX + 64];
            mt_ckpt_fs_free_note(tmp, room, sizeof room);
            return MT_CKPT_H5_FAIL(MT_ERR_IO, tmp, "cannot write dataset %s%s", t->name, room);
        }
    }
    return MT_OK;
}

/* A generous bound on the metadata HDF5 writes when closing the file:
 * object headers, group indexes and attributes (measured: ~1 KiB per
 * dataset and the attribute text). */
static size_t metadata_bytes(const mt_ckpt_state *st)
{
    size_t n = 256 * 1024 + 4096 * (size_t)st->n_tensors;

    for (int i = 0; i < st->n_attrs; i++)
        n += 512 + (st->attrs[i].is_string ? 2 * strlen(st->attrs[i].text) : 8);
    return n;
}

/* Collective: the whole of path.tmp, closed; the same status on every rank. */
static mt_status write_tmp(MPI_Comm comm, int rank, const char *tmp, const mt_ckpt_state *st)
{
    hid_t file = H5I_INVALID_HID, *dsets = NULL;
    mt_status status, closed;

    status = mt_ckpt_agree(comm, alloc_ids(&dsets, st->n_tensors));
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, mt_ckpt_h5_create(comm, tmp, &file));
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, create_layout(file, tmp, st, dsets));
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, write_owned(rank, tmp, st, dsets));
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, mt_ckpt_seal(comm, rank, file, tmp, st, dsets));

    /* MPI_File_sync on every rank, so that the data are on storage whichever
     * node wrote them before rank 0 makes the file visible. */
    if (status == MT_OK && H5Fflush(file, H5F_SCOPE_GLOBAL) < 0)
        status = MT_CKPT_H5_FAIL(MT_ERR_IO, tmp, "cannot flush the file");
    status = mt_ckpt_agree(comm, status);

    /* The close writes the metadata. Were that to fail (a full disk), HDF5
     * 1.10 would keep a half-closed file that crashes it at MPI_Finalize, and
     * a rank-local failure inside the collective close could hang the
     * others: the reserve is freed now to give the close its room, and a
     * failed file, lost anyway, is emptied too. */
    mt_ckpt_fs_make_room(comm, rank, tmp, status != MT_OK);

    closed = dsets ? mt_ckpt_h5_close(tmp, file, dsets, st->n_tensors) : MT_OK;
    free(dsets);
    return mt_ckpt_agree(comm, status != MT_OK ? status : closed);
}

mt_status mt_checkpoint_write(MPI_Comm comm, const char *path, const mt_ckpt_state *st)
{
    char tmp[MT_CKPT_PATH_MAX];
    int rank;
    mt_status status;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    MT_CHECK(mt_ckpt_validate(comm, path, st, MT_CKPT_FOR_WRITE));
    MPI_Comm_rank(comm, &rank);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    /* A missing directory is one clear message rather than an MPI-IO one. */
    MT_CHECK(mt_ckpt_agree(comm, rank == 0 ? mt_ckpt_fs_check_target(path) : MT_OK));

    /* Room for the metadata, taken before HDF5 writes anything (see
     * write_tmp); a disk too full for it fails here, cleanly. */
    MT_CHECK(mt_ckpt_agree(comm, rank == 0 ? mt_ckpt_fs_reserve(tmp, metadata_bytes(st)) : MT_OK));

    status = write_tmp(comm, rank, tmp, st);
    if (rank == 0 && status == MT_OK)
        status = mt_ckpt_fs_publish(tmp, path);
    if (rank == 0 && status != MT_OK)
        mt_ckpt_fs_discard(tmp);

    /* No rank returns before the rename (or the removal) is done. */
    MT_CHECK(mt_ckpt_agree(comm, status));
    return MT_OK;
}

/* Every rank checks the completeness marker, every dataset and its
 * checksum (metadata reads), then the attributes. */
static mt_status check_layout(hid_t file, const char *path, const mt_ckpt_state *st, hid_t *dsets,
                              uint32_t *crcs, mt_ckpt_attr *attrs)
{
    if (st->n_tensors > 0) /* a look at attributes alone may precede it */
        MT_CHECK(mt_ckpt_check_complete(file, path));
    for (int i = 0; i < st->n_tensors; i++) {
        MT_CHECK(mt_ckpt_h5_dataset_check(file, path, &st->tensors[i], &dsets[i]));
        MT_CHECK(mt_ckpt_read_crc(dsets[i], path, st->tensors[i].name, &crcs[i]));
    }
    for (int i = 0; i < st->n_attrs; i++)
        MT_CHECK(mt_ckpt_h5_attr_read(file, path, &attrs[i]));
    return MT_OK;
}

/* Independent: each owner fills its buffers and checks their CRC-32. */
static mt_status read_owned(int rank, const char *path, mt_ckpt_state *st, const hid_t *dsets,
                            const uint32_t *crcs)
{
    for (int i = 0; i < st->n_tensors; i++) {
        mt_ckpt_tensor *t = &st->tensors[i];
        if (t->owner != rank)
            continue;
        if (H5Dread(dsets[i], H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) < 0)
            return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot read dataset %s", t->name);
        MT_CHECK(mt_ckpt_verify_crc(path, t, crcs[i]));
    }
    return MT_OK;
}

/* Collective, on an open file: the same status on every rank. */
static mt_status read_open_file(MPI_Comm comm, int rank, const char *path, hid_t file, hid_t *dsets,
                                mt_ckpt_state *st)
{
    mt_ckpt_attr *attrs;
    uint32_t *crcs = calloc((size_t)st->n_tensors + 1, sizeof *crcs);
    mt_status status;
    size_t attrs_bytes = sizeof *attrs * (size_t)(st->n_attrs > 0 ? st->n_attrs : 1);

    /* Attributes go to a copy first: on failure the caller's list is intact. */
    attrs = malloc(attrs_bytes);
    status = attrs && crcs ? MT_OK : MT_FAIL(MT_ERR_MEM, "%s: out of memory for attributes", path);
    if (status == MT_OK && st->n_attrs > 0)
        memcpy(attrs, st->attrs, sizeof *attrs * (size_t)st->n_attrs);
    status = mt_ckpt_agree(comm, status);
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, check_layout(file, path, st, dsets, crcs, attrs));
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, read_owned(rank, path, st, dsets, crcs));
    if (status == MT_OK && st->n_attrs > 0)
        memcpy(st->attrs, attrs, sizeof *attrs * (size_t)st->n_attrs);
    free(attrs);
    free(crcs);
    return status;
}

mt_status mt_checkpoint_read(MPI_Comm comm, const char *path, mt_ckpt_state *st)
{
    hid_t file = H5I_INVALID_HID, *dsets = NULL;
    int rank;
    mt_status status, closed;

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    MT_CHECK(mt_ckpt_validate(comm, path, st, MT_CKPT_FOR_READ));
    MPI_Comm_rank(comm, &rank);

    /* Rank 0 tells a missing or foreign file apart before the collective open. */
    MT_CHECK(mt_ckpt_agree(comm, rank == 0 ? mt_ckpt_fs_probe(path) : MT_OK));
    status = mt_ckpt_agree(comm, alloc_ids(&dsets, st->n_tensors));
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, mt_ckpt_h5_open(comm, path, &file));
    if (status == MT_OK)
        status = read_open_file(comm, rank, path, file, dsets, st);

    closed = dsets ? mt_ckpt_h5_close(path, file, dsets, st->n_tensors) : MT_OK;
    free(dsets);
    MT_CHECK(mt_ckpt_agree(comm, status != MT_OK ? status : closed));
    return MT_OK;
}

mt_ckpt_attr *mt_ckpt_attr_find(mt_ckpt_state *st, const char *name)
{
    if (!st || !name)
        return NULL;
    for (int i = 0; i < st->n_attrs; i++)
        if (strncmp(st->attrs[i].name, name, sizeof st->attrs[i].name) == 0)
            return &st->attrs[i];
    return NULL;
}
