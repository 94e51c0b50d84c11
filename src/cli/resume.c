/*
 * resume.c - the checkpoint directory of a run: list its checkpoints, pick
 * the newest usable one for --resume auto, prune old ones for --keep, and
 * cut metrics.csv back to the resumed step, claim the directory for one
 * run at a time. File-system work is done by
 * rank 0 and its outcome broadcast, so every rank takes the same branch.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/report.h"
#include "cli/resume.h"

/* "<anything>-step<digits>.h5<suffix>": the step, or -1. */
static long name_step(const char *name, const char *suffix)
{
    const char *tag = strstr(name, "-step"), *next;
    char *end = NULL;
    long step;

    if (!tag)
        return -1;
    while ((next = strstr(tag + 1, "-step")))
        tag = next;
    errno = 0;
    step = strtol(tag + 5, &end, 10);
    if (end == tag + 5 || errno || step < 0 || strncmp(end, ".h5", 3) != 0 ||
        strcmp(end + 3, suffix) != 0)
        return -1;
    return step;
}

static int newest_first(const void *a, const void *b)
{
    const char *na = a, *nb = b;
    long sa = name_step(na, ""), sb = name_step(nb, "");

    if (sa != sb)
        return sa < sb ? 1 : -1;
    return strcmp(na, nb);
}

static mt_status list_add(mt_ckpt_list *list, int *cap, const char *name)
{
    if (list->n == *cap) {
        int grown = *cap ? 2 * *cap : 16;
        void *names = realloc(list->names, (size_t)grown * sizeof *list->names);
        if (!names)
            return MT_FAIL(MT_ERR_MEM, "out of memory listing checkpoints");
        list->names = names;
        *cap = grown;
    }
    snprintf(list->names[list->n++], sizeof list->names[0], "%s", name);
    return MT_OK;
}

/* Rank 0: the names, sorted newest first. */
static mt_status scan(const char *dir, mt_ckpt_list *list)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int cap = 0;
    mt_status status = MT_OK;

    /* Missing, or under a regular file: no checkpoints (creating it fails later). */
    if (!d)
        return errno == ENOENT || errno == ENOTDIR
                   ? MT_OK
                   : MT_FAIL(MT_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    while (status == MT_OK && (e = readdir(d)))
        if (strlen(e->d_name) < 256 && name_step(e->d_name, "") >= 0)
            status = list_add(list, &cap, e->d_name);
    closedir(d);
    if (list->n > 0)
        qsort(list->names, (size_t)list->n, sizeof *list->names, newest_first);
    return status;
}

mt_status mt_ckpt_list_dir(MPI_Comm comm, const char *dir, mt_ckpt_list *list)
{
    int rank, n, ok, all_ok;
    mt_status status = MT_OK;

    memset(list, 0, sizeof *list);
    MPI_Comm_rank(comm, &rank);
    if (rank == 0)
        status = scan(dir, list);
    n = status == MT_OK ? list->n : -1;
    MPI_Bcast(&n, 1, MPI_INT, 0, comm);
    if (n < 0) {
        mt_ckpt_list_free(list);
        return rank == 0 ? status : MT_FAIL(MT_ERR_IO, "cannot list %s (see rank 0)", dir);
    }

    /* Every rank makes room, then they agree before the broadcast. */
    if (rank != 0)
        list->names = malloc(((size_t)n + 1) * sizeof *list->names);
    list->steps = malloc(((size_t)n + 1) * sizeof *list->steps);
    ok = list->names != NULL || n == 0;
    ok = ok && list->steps != NULL;
    MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm);
    if (!all_ok) {
        mt_ckpt_list_free(list);
        return MT_FAIL(MT_ERR_MEM, "out of memory listing checkpoints");
    }
    list->n = n;
    if (n > 0)
        MPI_Bcast(list->names, n * (int)sizeof *list->names, MPI_CHAR, 0, comm);
    for (int i = 0; i < n; i++)
        list->steps[i] = name_step(list->names[i], "");
    return MT_OK;
}

void mt_ckpt_list_free(mt_ckpt_list *list)
{
    free(list->names);
    free(list->steps);
    memset(list, 0, sizeof *list);
}

/* A name of this net's checkpoints ("<net>-step<N>.h5<suffix>"). */
static int ours(const char *name, const char *net, const char *suffix)
{
    size_t len = strlen(net);
    return strncmp(name, net, len) == 0 && strncmp(name + len, "-step", 5) == 0 &&
           name_step(name, suffix) >= 0;
}

/* One candidate: loaded, and its step attribute agrees with its name. */
static mt_status try_one(MPI_Comm comm, mt_pipeline *p, const mt_model *m, const mt_options *o,
                         const char *path, long name_step_value, mt_snapshot_pos *pos)
{
    MT_CHECK(mt_snapshot_load(comm, p, m, o, path, pos));
    if (pos->step != name_step_value)
        return MT_FAIL(MT_ERR_FORMAT, "%s: holds step %ld but is named for step %ld", path,
                       pos->step, name_step_value);
    return MT_OK;
}

mt_status mt_resume_auto(MPI_Comm comm, mt_pipeline *p, const mt_model *m, const mt_options *o,
                         mt_snapshot_pos *pos, char *path, size_t cap)
{
    mt_ckpt_list list;
    mt_status status;

    int n_ours = 0;

    path[0] = '\0';
    pos->step = 0;
    MT_CHECK(mt_ckpt_list_dir(comm, o->checkpoint_dir, &list));
    for (int i = 0; i < list.n; i++)
        n_ours += ours(list.names[i], o->net, "");
    status = n_ours == 0 ? MT_OK : MT_ERR_FORMAT;
    for (int i = 0; i < list.n && status == MT_ERR_FORMAT; i++) {
        if (!ours(list.names[i], o->net, ""))
            continue; /* another net's checkpoints, sharing the directory */
        snprintf(path, cap, "%s/%s", o->checkpoint_dir, list.names[i]);
        status = try_one(comm, p, m, o, path, list.steps[i], pos);
        if (status == MT_ERR_FORMAT || status == MT_ERR_IO) {
            mt_log(MT_LOG_WARN, "skipping checkpoint %s: %s", path, mt_error_message());
            mt_error_clear();
            status = MT_ERR_FORMAT;
        }
    }
    if (status == MT_ERR_FORMAT) {
        path[0] = '\0';
        status = MT_FAIL(MT_ERR_FORMAT, "--resume auto: none of the %d checkpoints of %s in %s "
                         "is usable (see the warnings above); move them away to start afresh",
                         n_ours, o->net, o->checkpoint_dir);
    }
    if (status == MT_OK && n_ours == 0)
        mt_log(MT_LOG_INFO, "--resume auto: no checkpoint of %s in %s, starting fresh",
               o->net, o->checkpoint_dir);
    mt_ckpt_list_free(&list);
    return status;
}

/* A fresh start into `dir` would overwrite the checkpoints of `net` there. */
static mt_status fresh_check(MPI_Comm comm, const char *dir, const char *net)
{
    mt_ckpt_list list;
    mt_status status = MT_OK;

    MT_CHECK(mt_ckpt_list_dir(comm, dir, &list));
    for (int i = 0; i < list.n && status == MT_OK; i++)
        if (ours(list.names[i], net, "")) /* newest first */
            status = MT_FAIL(MT_ERR_ARG, "--checkpoint-dir %s already holds checkpoints of %s "
                             "(newest %s) that a fresh start would overwrite: continue them "
                             "with --resume auto, or give another --checkpoint-dir",
                             dir, net, list.names[i]);
    mt_ckpt_list_free(&list);
    return status;
}

static void remove_file(const char *dir, const char *name)
{
    char path[1400];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (unlink(path) != 0 && errno != ENOENT)
        mt_log(MT_LOG_WARN, "could not delete old checkpoint %s: %s", path, strerror(errno));
}

/* The checkpoints of `net` up to `step` beyond the newest `keep`. */
static void prune_old(const char *dir, const char *net, long keep, long step)
{
    mt_ckpt_list list = {0};
    long kept = 0;

    if (scan(dir, &list) != MT_OK) {
        mt_log(MT_LOG_WARN, "--keep: %s", mt_error_message());
        mt_error_clear();
        return;
    }
    for (int i = 0; i < list.n; i++) {
        if (!ours(list.names[i], net, "") || name_step(list.names[i], "") > step)
            continue;
        if (++kept > keep)
            remove_file(dir, list.names[i]);
    }
    mt_ckpt_list_free(&list);
}

void mt_ckpt_prune(const char *dir, const char *net, long keep, long step)
{
    DIR *d;
    struct dirent *e;

    if (keep > 0)
        prune_old(dir, net, keep, step);
    /* Left by a writer that was killed (never renamed, never readable): gone
     * whatever --keep says, as they can be as large as a checkpoint. */
    if ((d = opendir(dir))) {
        while ((e = readdir(d)))
            if (ours(e->d_name, net, ".tmp") || ours(e->d_name, net, ".reserve"))
                remove_file(dir, e->d_name);
        closedir(d);
    }
}

/* The step in column `col` (0-based) of a CSV row, or -1 (the header). */
static long row_step(const char *line, int col)
{
    char *end = NULL;
    long step;

    for (int i = 0; i < col && line; i++)
        if ((line = strchr(line, ',')))
            line++;
    if (!line)
        return -1;
    step = strtol(line, &end, 10);
    return end == line ? -1 : step;
}

/* Keep the header and the rows of steps <= step; atomic (tmp + rename). */
static mt_status trim_csv(const char *dir, const char *name, int col, long step)
{
    char path[1100], tmp[1110], line[4096];
    FILE *in, *out;
    int bad;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    MT_CHECK(mt_regular_or_absent(path));
    if (!(in = fopen(path, "r")))
        return MT_OK; /* nothing to trim */
    if (!(out = fopen(tmp, "w"))) {
        fclose(in);
        return MT_FAIL(MT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    }
    while (fgets(line, sizeof line, in))
        if (row_step(line, col) <= step && strchr(line, '\n'))
            fputs(line, out);
    bad = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0 || bad || rename(tmp, path) != 0) {
        mt_status st = MT_FAIL(MT_ERR_IO, "cannot rewrite %s: %s", path, strerror(errno));
        remove(tmp);
        return st;
    }
    return MT_OK;
}

mt_status mt_metrics_trim(const char *dir, long step)
{
    MT_CHECK(trim_csv(dir, "metrics.csv", 1, step)); /* kind,step,... */
    return trim_csv(dir, "stages.csv", 0, step);     /* step,stage,... */
}

/* The lock file descriptor of this process's claim (rank 0), or -1. A POSIX
 * record lock dies with its process, so a killed job never leaves its
 * directory claimed; closing any other descriptor of the file would drop
 * it, and nothing else opens the file. */
static int claim_fd = -1;

/* Rank 0: lock <dir>/.<net>.lock for this process's lifetime. */
static mt_status lock_dir(const char *dir, const char *net)
{
    char path[1200], who[128] = "";
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    int fd;

    if (claim_fd >= 0)
        return MT_OK;
    snprintf(path, sizeof path, "%s/.%s.lock", dir, net);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return MT_FAIL(MT_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    if (fcntl(fd, F_SETLK, &fl) == 0) {
        char host[64] = "?";
        gethostname(host, sizeof host - 1);
        snprintf(who, sizeof who, "pid %ld on %s\n", (long)getpid(), host);
        if (ftruncate(fd, 0) != 0 || pwrite(fd, who, strlen(who), 0) < 0)
            mt_log(MT_LOG_WARN, "%s: cannot record this run in it: %s", path, strerror(errno));
        claim_fd = fd;
        return MT_OK;
    }
    if (errno != EACCES && errno != EAGAIN) { /* a file system without locks */
        mt_log(MT_LOG_WARN, "cannot lock %s (%s): two runs of %s sharing this directory "
               "would overwrite each other's checkpoints", path, strerror(errno), net);
        close(fd);
        return MT_OK;
    }
    ssize_t got = pread(fd, who, sizeof who - 1, 0);
    close(fd);
    who[got > 0 ? got : 0] = '\0';
    who[strcspn(who, "\n")] = '\0';
    return MT_FAIL(MT_ERR_ARG, "--checkpoint-dir %s is in use by another run of %s (%s holds "
                   "%s): wait for it to end, or give another --checkpoint-dir", dir, net,
                   who[0] ? who : "a process", path);
}

/* Collective: rank 0 creates `dir` when `create` (else a missing one is
 * left alone), checks that it takes files, and locks it for `net`. */
static mt_status claim(MPI_Comm comm, const char *dir, const char *net, int create)
{
    int rank, ok, absent = 0;
    mt_status status = MT_OK;
    struct stat sb;

    MPI_Comm_rank(comm, &rank);
    if (rank == 0 && !create)
        absent = stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode);
    if (rank == 0 && !absent) {
        status = mt_mkdir_p(dir);
        if (status == MT_OK && access(dir, W_OK | X_OK) != 0)
            status = MT_FAIL(MT_ERR_IO, "--checkpoint-dir %s is not writable: %s", dir,
                             strerror(errno));
        if (status == MT_OK)
            status = lock_dir(dir, net);
    }
    ok = status == MT_OK;
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (!ok && rank != 0)
        return MT_FAIL(MT_ERR_IO, "--checkpoint-dir %s is not usable (see rank 0)", dir);
    return status;
}

mt_status mt_ckpt_dir_open(MPI_Comm comm, const char *dir, const char *net, int fresh)
{
    MT_CHECK(claim(comm, dir, net, 0));
    return fresh ? fresh_check(comm, dir, net) : MT_OK;
}

mt_status mt_ckpt_dir_claim(MPI_Comm comm, const char *dir, const char *net)
{
    return claim(comm, dir, net, 1);
}

void mt_ckpt_dir_release(void)
{
    if (claim_fd >= 0)
        close(claim_fd);
    claim_fd = -1;
}
