/*
 * ckpt_fs.c - the POSIX side of checkpointing, run by rank 0 alone: checks
 * before the collective open, and the atomic publication of a finished file
 * (fsync the file, rename it over the old one, fsync the directory).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "checkpoint/ckpt_internal.h"

/* The directory holding `path`: "." without a slash, "/" for "/name". */
static void dir_of(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');

    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == path)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

mt_status mt_ckpt_fs_check_target(const char *path)
{
    char dir[MT_CKPT_PATH_MAX];
    struct stat sb;

    dir_of(path, dir, sizeof dir);
    if (stat(dir, &sb) != 0)
        return MT_FAIL(MT_ERR_IO, "%s: cannot write into directory %s: %s", path, dir,
                       strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return MT_FAIL(MT_ERR_IO, "%s: %s is not a directory", path, dir);
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return MT_FAIL(MT_ERR_IO, "%s: is a directory, cannot replace it by a checkpoint", path);
    return MT_OK;
}

mt_status mt_ckpt_fs_probe(const char *path)
{
    struct stat sb;
    htri_t is_hdf5;

    if (stat(path, &sb) != 0)
        return MT_FAIL(MT_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return MT_FAIL(MT_ERR_IO, "%s: not a regular file", path);
    if (access(path, R_OK) != 0)
        return MT_FAIL(MT_ERR_IO, "%s: cannot read checkpoint: %s", path, strerror(errno));

    /* H5Fis_hdf5 opens read-only and looks for the superblock signature. */
    is_hdf5 = H5Fis_hdf5(path);
    if (is_hdf5 <= 0)
        return MT_FAIL(MT_ERR_FORMAT, "%s: not an HDF5 file (no HDF5 signature in its %lld bytes)",
                       path, (long long)sb.st_size);
    return MT_OK;
}

static mt_status sync_path(const char *path, int is_dir)
{
    int fd = open(path, O_RDONLY | (is_dir ? O_DIRECTORY : 0));
    int err;

    if (fd < 0)
        return MT_FAIL(MT_ERR_IO, "%s: cannot open it to sync: %s", path, strerror(errno));
    if (fsync(fd) != 0) {
        err = errno;
        close(fd);
        return MT_FAIL(MT_ERR_IO, "%s: fsync failed: %s", path, strerror(err));
    }
    if (close(fd) != 0)
        return MT_FAIL(MT_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return MT_OK;
}

mt_status mt_ckpt_fs_publish(const char *tmp, const char *path)
{
    char dir[MT_CKPT_PATH_MAX];

    MT_CHECK(sync_path(tmp, 0));
    if (rename(tmp, path) != 0)
        return MT_FAIL(MT_ERR_IO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));

    /* Make the new directory entry durable too. */
    dir_of(path, dir, sizeof dir);
    MT_CHECK(sync_path(dir, 1));
    return MT_OK;
}

void mt_ckpt_fs_discard(const char *tmp)
{
    if (unlink(tmp) != 0 && errno != ENOENT)
        mt_log_rank(MT_LOG_WARN, "%s: could not remove it: %s", tmp, strerror(errno));
}

static void reserve_name(const char *tmp, char *out, size_t cap)
{
    size_t len = strlen(tmp);

    /* "<name>.h5.tmp" -> "<name>.h5.reserve" */
    if (len > 4 && strcmp(tmp + len - 4, ".tmp") == 0)
        len -= 4;
    snprintf(out, cap, "%.*s.reserve", (int)len, tmp);
}

void mt_ckpt_fs_free_note(const char *path, char *out, size_t cap)
{
    char dir[MT_CKPT_PATH_MAX];
    struct statvfs sv;

    dir_of(path, dir, sizeof dir);
    out[0] = '\0';
    if (statvfs(dir, &sv) == 0)
        snprintf(out, cap, "; %s has %llu KiB free", dir,
                 (unsigned long long)sv.f_bavail * sv.f_frsize / 1024);
}

mt_status mt_ckpt_fs_reserve(const char *tmp, size_t n_bytes)
{
    char name[MT_CKPT_PATH_MAX + 16], room[MT_CKPT_PATH_MAX + 64];
    int fd, err;

    reserve_name(tmp, name, sizeof name);
    fd = open(name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return MT_FAIL(MT_ERR_IO, "%s: cannot create it: %s", name, strerror(errno));
    err = posix_fallocate(fd, 0, (off_t)n_bytes);
    close(fd);
    if (err == 0)
        return MT_OK;
    unlink(name);
    mt_ckpt_fs_free_note(tmp, room, sizeof room);
    return MT_FAIL(MT_ERR_IO, "%s: cannot reserve %zu KiB for the checkpoint's metadata: %s%s",
                   name, n_bytes / 1024, strerror(err), room);
}

void mt_ckpt_fs_make_room(MPI_Comm comm, int rank, const char *tmp, int failed)
{
    char name[MT_CKPT_PATH_MAX + 16];

    if (rank == 0) {
        reserve_name(tmp, name, sizeof name);
        if (unlink(name) != 0 && errno != ENOENT)
            mt_log_rank(MT_LOG_WARN, "%s: could not remove it: %s", name, strerror(errno));
        if (failed && truncate(tmp, 0) != 0 && errno != ENOENT)
            mt_log_rank(MT_LOG_WARN, "%s: could not empty it: %s", tmp, strerror(errno));
    }
    MPI_Barrier(comm);
}
