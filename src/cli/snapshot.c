/*
 * snapshot.c - checkpoints of a run, with the attributes needed to resume
 * exactly and to refuse a file that is damaged or belongs to another run.
 *
 * Loading goes in three reads of the same file: the format version alone
 * (so that a file of another version is named as such), then every
 * attribute (digest, position and problem checks), then the tensors (the
 * checkpoint room checks the completeness marker and every CRC-32).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "cli/boundary.h"
#include "cli/report.h"
#include "cli/snapshot.h"

/* The state is counter-based: nothing random is carried between steps. */
#define RNG_TEXT "counter-based (seed, stream, counter); init stream = hash(op name), " \
                 "shuffle stream = hash(salt, epoch); no other random state"

enum { A_VERSION, A_STEP, A_EPOCH, A_EPOCH_STEP, A_STEPS_PER_EPOCH, A_TRAIN_SAMPLES, A_SEED,
       A_OPTIM_STEPS, A_BATCH, A_NET, A_MODEL, A_DATASET, A_OPTIM, A_ORACLE, A_LR_SCHEDULE,
       A_RNG, A_RUN_DIR, A_CONFIG, A_DIGEST, A_COUNT };

static void set_int(mt_ckpt_attr *a, const char *name, int64_t v)
{
    snprintf(a->name, sizeof a->name, "%s", name);
    a->is_string = 0;
    a->value = v;
}

static void set_text(mt_ckpt_attr *a, const char *name, const char *text)
{
    snprintf(a->name, sizeof a->name, "%s", name);
    a->is_string = 1;
    snprintf(a->text, sizeof a->text, "%s", text ? text : "");
}

mt_status mt_snapshot_model_text(const mt_model *m, char *buf, size_t cap)
{
    size_t len = strlen(m->net) + 2, used;
    char *full;

    for (int t = 0; t < m->n_ops; t++)
        len += strlen(m->ops[t]->vt->kind) + strlen(m->ops[t]->name) + 128;
    full = malloc(len);
    if (!full)
        return MT_FAIL(MT_ERR_MEM, "out of memory describing net %s", m->net);
    used = (size_t)snprintf(full, len, "%s:", m->net);
    for (int t = 0; t < m->n_ops; t++) {
        const mt_op *op = m->ops[t];
        used += (size_t)snprintf(full + used, len - used, " %s %s %dx%dx%d>%dx%dx%d %zu;",
                                 op->vt->kind, op->name, op->in.c, op->in.h, op->in.w,
                                 op->out.c, op->out.h, op->out.w, op->n_params);
    }
    /* A long chain (the pendulum's thousands of steps) is described by its
     * length and the CRC-32 of the full text: as exact a match, and short. */
    if (used < cap)
        memcpy(buf, full, used + 1);
    else
        snprintf(buf, cap, "%s: %d ops, description of %zu bytes with CRC-32 %08lx", m->net,
                 m->n_ops, used, (unsigned long)crc32(crc32(0L, Z_NULL, 0),
                                                      (const Bytef *)full, (uInt)used));
    free(full);
    return MT_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const mt_ckpt_attr *)a)->name, ((const mt_ckpt_attr *)b)->name);
}

/* CRC-32 of "name=value\n" for every attribute before A_DIGEST, in name
 * order (integers in decimal): a reader can check it in a few lines of
 * Python (tests/corpus/make-ckpt-corpus.py does). */
static int64_t attrs_digest(const mt_ckpt_attr *attrs)
{
    mt_ckpt_attr sorted[A_DIGEST];
    char num[32];
    uLong crc = crc32(0L, Z_NULL, 0);

    memcpy(sorted, attrs, sizeof sorted);
    qsort(sorted, A_DIGEST, sizeof sorted[0], by_name);
    for (int i = 0; i < A_DIGEST; i++) {
        const char *value = sorted[i].text;
        if (!sorted[i].is_string) {
            snprintf(num, sizeof num, "%lld", (long long)sorted[i].value);
            value = num;
        }
        crc = crc32(crc, (const Bytef *)sorted[i].name, (uInt)strlen(sorted[i].name));
        crc = crc32(crc, (const Bytef *)"=", 1);
        crc = crc32(crc, (const Bytef *)value, (uInt)strlen(value));
        crc = crc32(crc, (const Bytef *)"\n", 1);
    }
    return (int64_t)crc;
}

/* The attribute list; values are filled from the run (names and kinds
 * matter on read, values are overwritten). */
static mt_status make_attrs(mt_ckpt_state *st, mt_pipeline *p, const mt_model *m,
                            const mt_options *o, const mt_snapshot_pos *pos)
{
    mt_ckpt_attr *a = calloc(A_COUNT, sizeof *a);
    const long spe = pos->steps_per_epoch > 0 ? pos->steps_per_epoch : 1;

    if (!a)
        return MT_FAIL(MT_ERR_MEM, "out of memory for checkpoint attributes");
    st->attrs = a;
    st->n_attrs = A_COUNT;
    set_int(&a[A_VERSION], "format_version", MT_CKPT_FORMAT_VERSION);
    set_int(&a[A_STEP], "step", pos->step);
    set_int(&a[A_EPOCH], "epoch", pos->step / spe);
    set_int(&a[A_EPOCH_STEP], "epoch_step", pos->step % spe);
    set_int(&a[A_STEPS_PER_EPOCH], "steps_per_epoch", pos->steps_per_epoch);
    set_int(&a[A_TRAIN_SAMPLES], "train_samples", pos->train_samples);
    set_int(&a[A_SEED], "seed", (int64_t)o->seed);
    set_int(&a[A_OPTIM_STEPS], "optim_steps", *mt_pipeline_optim_steps(p));
    set_int(&a[A_BATCH], "batch", o->pipe.batch);
    set_text(&a[A_NET], "net", o->net);
    set_text(&a[A_DATASET], "dataset", mt_dataset_name(o->dataset));
    set_text(&a[A_OPTIM], "optimizer", mt_optim_name(o->pipe.optim.kind));
    set_text(&a[A_ORACLE], "oracle", mt_oracle_name(o->pipe.oracle.kind));
    set_text(&a[A_LR_SCHEDULE], "lr_schedule", o->lr_schedule_text);
    set_text(&a[A_RNG], "rng", RNG_TEXT);
    set_text(&a[A_RUN_DIR], "run_dir", o->run_dir);
    set_text(&a[A_CONFIG], "config", "");
    mt_options_describe(o, a[A_CONFIG].text, sizeof a[A_CONFIG].text);
    set_text(&a[A_MODEL], "model", "");
    MT_CHECK(mt_snapshot_model_text(m, a[A_MODEL].text, sizeof a[A_MODEL].text));
    set_int(&a[A_DIGEST], "attrs_digest", attrs_digest(a));
    return MT_OK;
}

/* <dir>/latest names `file`, replaced atomically. The temporary file is the
 * net's own (".latest.<net>.tmp"): runs of other nets may share the
 * directory and write theirs at the same moment, and one run per net holds
 * the directory (mt_ckpt_dir_claim). */
static mt_status write_latest(const char *dir, const char *net, const char *file)
{
    char path[1100], tmp[1200];
    FILE *f;
    int bad;

    snprintf(path, sizeof path, "%s/latest", dir);
    snprintf(tmp, sizeof tmp, "%s/.latest.%s.tmp", dir, net);
    f = fopen(tmp, "w");
    if (!f)
        return MT_FAIL(MT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "%s\n", file);
    bad = fflush(f) != 0 || fsync(fileno(f)) != 0; /* on disk before the rename */
    bad = fclose(f) != 0 || bad;
    if (bad || rename(tmp, path) != 0) {
        mt_status st = MT_FAIL(MT_ERR_IO, "cannot update %s: %s", path, strerror(errno));
        remove(tmp);
        return st;
    }
    return MT_OK;
}

/* Rank 0 creates the directory; every rank learns the outcome. */
static mt_status make_dir(MPI_Comm comm, int rank, const char *dir)
{
    mt_status status = rank == 0 ? mt_mkdir_p(dir) : MT_OK;
    int ok = status == MT_OK;

    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (!ok && rank != 0)
        return MT_FAIL(MT_ERR_IO, "cannot create %s (see rank 0)", dir);
    return status;
}

mt_status mt_snapshot_save(MPI_Comm comm, mt_pipeline *p, const mt_model *m,
                           const mt_options *o, const mt_snapshot_pos *pos, char *file,
                           size_t cap)
{
    mt_ckpt_state st;
    char path[1200];
    int rank, ok;
    mt_status status;

    MPI_Comm_rank(comm, &rank);
    MT_CHECK(make_dir(comm, rank, o->checkpoint_dir));
    snprintf(file, cap, "%s-step%08ld.h5", o->net, pos->step);
    snprintf(path, sizeof path, "%s/%s", o->checkpoint_dir, file);
    MT_CHECK(mt_pipeline_ckpt_tensors(p, &st));
    status = make_attrs(&st, p, m, o, pos);
    if (status == MT_OK)
        status = mt_checkpoint_write(comm, path, &st);
    mt_pipeline_ckpt_free(&st);
    MT_CHECK(status);

    /* The pointer follows the file; every rank learns whether it moved. */
    status = rank == 0 ? write_latest(o->checkpoint_dir, o->net, file) : MT_OK;
    ok = status == MT_OK;
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (!ok)
        return rank == 0 ? status : MT_FAIL(MT_ERR_IO, "cannot update %s/latest (see rank 0)",
                                             o->checkpoint_dir);
    mt_log(MT_LOG_INFO, "checkpoint %s written at step %ld", path, pos->step);
    return MT_OK;
}

/* A text attribute must equal this run's value (MT_ERR_ARG otherwise). */
static mt_status same_text(const mt_ckpt_attr *got, const char *want, const char *what,
                           const char *path)
{
    if (strcmp(got->text, want) == 0)
        return MT_OK;
    return MT_FAIL(MT_ERR_ARG, "%s: checkpoint is for %s '%s', this run uses '%s'", path, what,
                   got->text, want);
}

static mt_status same_int(const mt_ckpt_attr *got, int64_t want, const char *what,
                          const char *path)
{
    if (got->value == want)
        return MT_OK;
    return MT_FAIL(MT_ERR_ARG, "%s: checkpoint was written with %s %lld, this run has %lld "
                   "(the trajectory depends on it)", path, what, (long long)got->value,
                   (long long)want);
}

/* The stored attributes hang together: digest, position, optimiser steps. */
static mt_status check_consistent(const mt_ckpt_attr *a, const char *path)
{
    const int64_t step = a[A_STEP].value, spe = a[A_STEPS_PER_EPOCH].value;

    if (a[A_DIGEST].value != attrs_digest(a))
        return MT_FAIL(MT_ERR_FORMAT, "%s: damaged checkpoint (the attributes do not match "
                       "their digest)", path);
    if (step < 0 || spe < 1 || a[A_EPOCH].value != step / spe ||
        a[A_EPOCH_STEP].value != step % spe)
        return MT_FAIL(MT_ERR_FORMAT, "%s: inconsistent position: step %lld, epoch %lld, "
                       "epoch_step %lld, steps_per_epoch %lld", path, (long long)step,
                       (long long)a[A_EPOCH].value, (long long)a[A_EPOCH_STEP].value,
                       (long long)spe);
    if (a[A_OPTIM_STEPS].value != step)
        return MT_FAIL(MT_ERR_FORMAT, "%s: inconsistent optimiser step count %lld at step %lld",
                       path, (long long)a[A_OPTIM_STEPS].value, (long long)step);
    return MT_OK;
}

/* The checkpoint must describe the same problem as this run. */
static mt_status check_match(const mt_ckpt_attr *a, const mt_ckpt_attr *want, const char *path)
{
    MT_CHECK(same_text(&a[A_NET], want[A_NET].text, "net", path));
    if (strcmp(a[A_MODEL].text, want[A_MODEL].text) != 0)
        return MT_FAIL(MT_ERR_ARG, "%s: checkpoint is for another layout of net %s "
                       "(stored: %.200s)", path, a[A_NET].text, a[A_MODEL].text);
    MT_CHECK(same_text(&a[A_DATASET], want[A_DATASET].text, "data set", path));
    MT_CHECK(same_text(&a[A_OPTIM], want[A_OPTIM].text, "optimiser", path));
    MT_CHECK(same_int(&a[A_BATCH], want[A_BATCH].value, "--batch", path));
    MT_CHECK(same_int(&a[A_SEED], want[A_SEED].value, "--seed", path));
    MT_CHECK(same_int(&a[A_TRAIN_SAMPLES], want[A_TRAIN_SAMPLES].value, "training samples",
                      path));
    return same_int(&a[A_STEPS_PER_EPOCH], want[A_STEPS_PER_EPOCH].value, "steps per epoch",
                    path);
}

/* Reads 1 and 2: the version alone, then all attributes, checked. */
static mt_status load_attrs(MPI_Comm comm, const char *path, const mt_ckpt_attr *want,
                            mt_ckpt_attr *got)
{
    mt_ckpt_state st = {0};

    memcpy(got, want, A_COUNT * sizeof *got);
    st.n_attrs = 1;
    st.attrs = &got[A_VERSION];
    MT_CHECK(mt_checkpoint_read(comm, path, &st));
    if (got[A_VERSION].value != MT_CKPT_FORMAT_VERSION)
        return MT_FAIL(MT_ERR_FORMAT, "%s: checkpoint format version %lld, this mtrain reads "
                       "version %d", path, (long long)got[A_VERSION].value,
                       MT_CKPT_FORMAT_VERSION);
    st.n_attrs = A_COUNT;
    st.attrs = got;
    MT_CHECK(mt_checkpoint_read(comm, path, &st));
    MT_CHECK(check_consistent(got, path));
    return check_match(got, want, path);
}

/* mtrain writes finite parameters only: anything else is damage. */
static mt_status check_finite(MPI_Comm comm, mt_pipeline *p, const mt_model *m, const char *path)
{
    const int *first = mt_pipeline_stage_first(p);
    int rank = mt_pipeline_rank(p), mine = m->n_ops, bad;

    for (int t = first[rank]; t < first[rank + 1] && mine == m->n_ops; t++) {
        const float *w = mt_pipeline_op_params(p, t);
        if (w && !mt_all_finite(w, m->ops[t]->n_params))
            mine = t;
    }
    if (MPI_Allreduce(&mine, &bad, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return MT_FAIL(MT_ERR_MPI, "%s: MPI_Allreduce of the finiteness check failed", path);
    if (bad < m->n_ops)
        return MT_FAIL(MT_ERR_FORMAT, "%s: non-finite parameters in op %s", path,
                       m->ops[bad]->name);
    return MT_OK;
}

mt_status mt_snapshot_load(MPI_Comm comm, mt_pipeline *p, const mt_model *m,
                           const mt_options *o, const char *path, mt_snapshot_pos *pos)
{
    mt_ckpt_state want = {0}, st;
    mt_ckpt_attr *got = malloc(A_COUNT * sizeof *got);
    mt_status status;

    status = got ? make_attrs(&want, p, m, o, pos)
                 : MT_FAIL(MT_ERR_MEM, "out of memory for checkpoint attributes");
    if (status == MT_OK)
        status = load_attrs(comm, path, want.attrs, got);
    if (status == MT_OK)
        status = mt_pipeline_ckpt_tensors(p, &st);
    if (status == MT_OK) {
        status = mt_checkpoint_read(comm, path, &st);
        mt_pipeline_ckpt_free(&st);
    }
    if (status == MT_OK)
        status = check_finite(comm, p, m, path);
    if (status == MT_OK) {
        pos->step = (long)got[A_STEP].value;
        *mt_pipeline_optim_steps(p) = (long)got[A_OPTIM_STEPS].value;
        snprintf(pos->run_dir, sizeof pos->run_dir, "%.1023s", got[A_RUN_DIR].text);
    }
    free(want.attrs);
    free(got);
    return status;
}
