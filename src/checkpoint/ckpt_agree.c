/*
 * ckpt_agree.c - the MPI side of checkpointing: ranks agreeing on a status
 * (with the failing rank's message) and validating the state list, which
 * every rank must pass identically.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "checkpoint/ckpt_internal.h"

typedef struct {
    int code;
    char message[1000];
} agree_msg;

mt_status mt_ckpt_agree(MPI_Comm comm, mt_status st)
{
    int rank, size, mine, first;
    agree_msg msg = {0};

    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "checkpoint: invalid communicator");
    mine = st != MT_OK ? rank : size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "checkpoint: MPI_Allreduce of the status failed");
    if (first == size)
        return MT_OK;

    /* The lowest failing rank tells the others what went wrong. */
    if (rank == first) {
        msg.code = (int)st;
        snprintf(msg.message, sizeof msg.message, "%s", mt_error_message());
    }
    if (MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, first, comm) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "checkpoint: MPI_Bcast of the error message failed");
    if (st == MT_OK)
        mt_error_set((mt_status)msg.code, __FILE__, __LINE__, "rank %d: %s", first, msg.message);
    return (mt_status)msg.code;
}

/* A dataset name: relative HDF5 path, no empty component, NUL-terminated. */
static mt_status check_name(const char *path, const char *name, size_t cap)
{
    size_t len = strnlen(name, cap);

    if (len == cap)
        return MT_FAIL(MT_ERR_ARG, "%s: a tensor name is not NUL-terminated", path);
    if (len == 0 || name[0] == '/' || name[len - 1] == '/' || strstr(name, "//"))
        return MT_FAIL(MT_ERR_ARG,
                       "%s: tensor name '%s' is not a relative path of non-empty components", path,
                       name);
    return MT_OK;
}

static mt_status check_tensor(const char *path, const mt_ckpt_tensor *t, int rank, int size)
{
    size_t n = 1;

    MT_CHECK(check_name(path, t->name, sizeof t->name));
    if (t->ndim < 1 || t->ndim > 4)
        return MT_FAIL(MT_ERR_ARG, "%s: tensor %s has %d dims, expected 1 to 4", path, t->name,
                       t->ndim);
    for (int d = 0; d < t->ndim; d++) {
        if (t->dims[d] < 1)
            return MT_FAIL(MT_ERR_ARG, "%s: tensor %s has dim %d = %d, expected >= 1", path,
                           t->name, d, t->dims[d]);
        n *= (size_t)t->dims[d];
    }
    if (n != t->n)
        return MT_FAIL(MT_ERR_ARG, "%s: tensor %s has n = %zu but its dims hold %zu", path, t->name,
                       t->n, n);
    if (t->owner < 0 || t->owner >= size)
        return MT_FAIL(MT_ERR_ARG, "%s: tensor %s is owned by rank %d, outside [0, %d)", path,
                       t->name, t->owner, size);
    if (t->owner == rank && !t->data)
        return MT_FAIL(MT_ERR_ARG, "%s: tensor %s has no buffer on its owner (rank %d)", path,
                       t->name, rank);
    return MT_OK;
}

static mt_status check_attr(const char *path, const mt_ckpt_attr *a, mt_ckpt_mode mode)
{
    size_t len = strnlen(a->name, sizeof a->name);

    if (len == 0 || len == sizeof a->name)
        return MT_FAIL(MT_ERR_ARG, "%s: an attribute name is empty or not NUL-terminated", path);
    if (mode == MT_CKPT_FOR_WRITE && a->is_string &&
        strnlen(a->text, sizeof a->text) == sizeof a->text)
        return MT_FAIL(MT_ERR_ARG, "%s: string attribute %s is not NUL-terminated", path, a->name);
    return MT_OK;
}

static mt_status check_local(const char *path, const mt_ckpt_state *st, mt_ckpt_mode mode, int rank,
                             int size)
{
    if (!path || !st)
        return MT_FAIL(MT_ERR_ARG, "checkpoint: NULL path or state");
    if (strlen(path) + sizeof ".tmp" > MT_CKPT_PATH_MAX || path[0] == '\0')
        return MT_FAIL(MT_ERR_ARG, "checkpoint path is empty or longer than %d bytes",
                       MT_CKPT_PATH_MAX - 5);
    if (st->n_tensors < 0 || st->n_attrs < 0 || (st->n_tensors > 0 && !st->tensors) ||
        (st->n_attrs > 0 && !st->attrs))
        return MT_FAIL(MT_ERR_ARG, "%s: bad tensor or attribute list", path);
    for (int i = 0; i < st->n_tensors; i++)
        MT_CHECK(check_tensor(path, &st->tensors[i], rank, size));
    for (int i = 0; i < st->n_attrs; i++)
        MT_CHECK(check_attr(path, &st->attrs[i], mode));
    return MT_OK;
}

/* A digest of everything that must be the same on every rank: the list
 * shapes and owners, attribute names and kinds, and on write their values
 * (attributes are HDF5 metadata, which all ranks write identically). */
static uint64_t state_digest(const char *path, const mt_ckpt_state *st, mt_ckpt_mode mode)
{
    uint64_t h = mt_hash2(mt_hash_str(path), (uint64_t)st->n_tensors);

    for (int i = 0; i < st->n_tensors; i++) {
        const mt_ckpt_tensor *t = &st->tensors[i];
        h = mt_hash2(h, mt_hash_str(t->name));
        h = mt_hash2(h, ((uint64_t)t->ndim << 32) | (uint32_t)t->owner);
        for (int d = 0; d < t->ndim; d++)
            h = mt_hash2(h, (uint64_t)t->dims[d]);
    }
    h = mt_hash2(h, (uint64_t)st->n_attrs);
    for (int i = 0; i < st->n_attrs; i++) {
        const mt_ckpt_attr *a = &st->attrs[i];
        h = mt_hash2(mt_hash2(h, mt_hash_str(a->name)), (uint64_t)a->is_string);
        if (mode == MT_CKPT_FOR_WRITE)
            h = mt_hash2(h, a->is_string ? mt_hash_str(a->text) : (uint64_t)a->value);
    }
    return h;
}

mt_status mt_ckpt_validate(MPI_Comm comm, const char *path, const mt_ckpt_state *st,
                           mt_ckpt_mode mode)
{
    int rank, size;
    uint64_t mine[2], all[2];
    mt_status status;

    if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "checkpoint: invalid communicator");
    status = mt_ckpt_agree(comm, check_local(path, st, mode, rank, size));
    MT_CHECK(status);

    /* min of h and of ~h gives min and max of h in one reduction. */
    mine[0] = state_digest(path, st, mode);
    mine[1] = ~mine[0];
    if (MPI_Allreduce(mine, all, 2, MPI_UINT64_T, MPI_MIN, comm) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "%s: MPI_Allreduce of the state digest failed", path);
    if (all[0] != ~all[1])
        return MT_FAIL(MT_ERR_ARG,
                       "%s: ranks passed different tensor or attribute lists "
                       "(names, shapes, owners and attribute values must match)",
                       path);
    return MT_OK;
}
