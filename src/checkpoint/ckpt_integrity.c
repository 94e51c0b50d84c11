/*
 * ckpt_integrity.c - what lets a reader trust a checkpoint beyond the atomic
 * rename: a CRC-32 of every dataset's data (an int64 attribute "crc32" on the
 * dataset, zlib's CRC-32 of the little-endian float32 bytes) and a
 * completeness marker (root attribute MT_CKPT_COMPLETE_ATTR = 1) written
 * after everything else. HDF5's own metadata checksums (object header v2,
 * superblock v2, see ckpt_h5.c) cover the layout; these cover the data.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "checkpoint/ckpt_internal.h"

#define CRC_ATTR "crc32"

uint32_t mt_ckpt_crc(const float *data, size_t n)
{
    const unsigned char *bytes = (const unsigned char *)data;
    size_t left = n * sizeof(float);
    uLong crc = crc32(0L, Z_NULL, 0);

    /* crc32() takes a 32-bit length: feed large tensors in pieces. */
    while (left > 0) {
        uInt piece = left > (1u << 30) ? (1u << 30) : (uInt)left;
        crc = crc32(crc, bytes, piece);
        bytes += piece;
        left -= piece;
    }
    return (uint32_t)crc;
}

static void int_attr(mt_ckpt_attr *a, const char *name, int64_t value)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", name);
    a->value = value;
}

/* Owners compute their tensors' CRCs; a sum gives every rank all of them
 * (each tensor has exactly one owner, the others add 0). */
static mt_status share_crcs(MPI_Comm comm, int rank, const mt_ckpt_state *st, uint64_t *crcs)
{
    uint64_t *mine = calloc((size_t)st->n_tensors + 1, sizeof *mine);

    if (!mine)
        return MT_FAIL(MT_ERR_MEM, "checkpoint: out of memory for %d checksums", st->n_tensors);
    for (int i = 0; i < st->n_tensors; i++)
        if (st->tensors[i].owner == rank)
            mine[i] = mt_ckpt_crc(st->tensors[i].data, st->tensors[i].n);
    int rc = MPI_Allreduce(mine, crcs, st->n_tensors, MPI_UINT64_T, MPI_SUM, comm);
    free(mine);
    return rc == MPI_SUCCESS ? MT_OK : MT_FAIL(MT_ERR_MPI, "checkpoint: sharing checksums failed");
}

mt_status mt_ckpt_seal(MPI_Comm comm, int rank, hid_t file, const char *path,
                       const mt_ckpt_state *st, const hid_t *dsets)
{
    uint64_t *crcs = calloc((size_t)st->n_tensors + 1, sizeof *crcs);
    mt_ckpt_attr a;
    mt_status status;

    status = crcs ? MT_OK : MT_FAIL(MT_ERR_MEM, "checkpoint: out of memory for checksums");
    status = mt_ckpt_agree(comm, status);
    if (status == MT_OK)
        status = mt_ckpt_agree(comm, share_crcs(comm, rank, st, crcs));

    /* Metadata, hence collective: every rank writes the same values. */
    for (int i = 0; status == MT_OK && i < st->n_tensors; i++) {
        int_attr(&a, CRC_ATTR, (int64_t)crcs[i]);
        status = mt_ckpt_h5_attr_write(dsets[i], path, &a);
    }
    if (status == MT_OK) {
        int_attr(&a, MT_CKPT_COMPLETE_ATTR, 1);
        status = mt_ckpt_h5_attr_write(file, path, &a);
    }
    free(crcs);
    return status;
}

mt_status mt_ckpt_check_complete(hid_t file, const char *path)
{
    mt_ckpt_attr a;
    htri_t found = H5Aexists(file, MT_CKPT_COMPLETE_ATTR);

    if (found < 0)
        return MT_CKPT_H5_FAIL(MT_ERR_FORMAT, path, "cannot look up the completeness marker");
    if (found == 0)
        return MT_FAIL(MT_ERR_FORMAT, "%s: incomplete checkpoint (no completeness marker '%s')",
                       path, MT_CKPT_COMPLETE_ATTR);
    int_attr(&a, MT_CKPT_COMPLETE_ATTR, 0);
    MT_CHECK(mt_ckpt_h5_attr_read(file, path, &a));
    if (a.value != 1)
        return MT_FAIL(MT_ERR_FORMAT, "%s: incomplete checkpoint (completeness marker is %lld)",
                       path, (long long)a.value);
    return MT_OK;
}

mt_status mt_ckpt_read_crc(hid_t dset, const char *path, const char *name, uint32_t *crc)
{
    mt_ckpt_attr a;
    htri_t found = H5Aexists(dset, CRC_ATTR);

    if (found <= 0)
        return MT_FAIL(MT_ERR_FORMAT, "%s: dataset %s has no %s checksum", path, name, CRC_ATTR);
    int_attr(&a, CRC_ATTR, 0);
    MT_CHECK(mt_ckpt_h5_attr_read(dset, path, &a));
    if (a.value < 0 || a.value > (int64_t)UINT32_MAX)
        return MT_FAIL(MT_ERR_FORMAT, "%s: dataset %s has checksum %lld, not a CRC-32", path, name,
                       (long long)a.value);
    *crc = (uint32_t)a.value;
    return MT_OK;
}

mt_status mt_ckpt_verify_crc(const char *path, const mt_ckpt_tensor *t, uint32_t want)
{
    uint32_t got = mt_ckpt_crc(t->data, t->n);

    if (got == want)
        return MT_OK;
    return MT_FAIL(MT_ERR_FORMAT, "%s: dataset %s is damaged (CRC-32 %08x, stored %08x)", path,
                   t->name, got, want);
}
