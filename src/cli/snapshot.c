/* snapshot.c - checkpoints of a run, with the attributes needed to resume. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/report.h"
#include "cli/snapshot.h"

enum { A_VERSION, A_STEP, A_SEED, A_OPTIM_STEPS, A_BATCH, A_NET, A_DATASET, A_OPTIM,
       A_ORACLE, A_CONFIG, A_COUNT };

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

/* The attribute list; values are filled from the run when `o` is given. */
static mt_status make_attrs(mt_ckpt_state *st, mt_pipeline *p, const mt_options *o, long step)
{
    char config[2048];

    st->attrs = calloc(A_COUNT, sizeof *st->attrs);
    if (!st->attrs)
        return MT_FAIL(MT_ERR_MEM, "out of memory for checkpoint attributes");
    st->n_attrs = A_COUNT;
    mt_options_describe(o, config, sizeof config);
    set_int(&st->attrs[A_VERSION], "format_version", MT_CKPT_FORMAT_VERSION);
    set_int(&st->attrs[A_STEP], "step", step);
    set_int(&st->attrs[A_SEED], "seed", (int64_t)o->seed);
    set_int(&st->attrs[A_OPTIM_STEPS], "optim_steps", *mt_pipeline_optim_steps(p));
    set_int(&st->attrs[A_BATCH], "batch", o->pipe.batch);
    set_text(&st->attrs[A_NET], "net", o->net);
    set_text(&st->attrs[A_DATASET], "dataset", mt_dataset_name(o->dataset));
    set_text(&st->attrs[A_OPTIM], "optimizer", mt_optim_name(o->pipe.optim.kind));
    set_text(&st->attrs[A_ORACLE], "oracle", mt_oracle_name(o->pipe.oracle.kind));
    set_text(&st->attrs[A_CONFIG], "config", config);
    return MT_OK;
}

static mt_status write_latest(const char *dir, const char *file)
{
    char path[1100], tmp[1110];
    FILE *f;

    snprintf(path, sizeof path, "%s/latest", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return MT_FAIL(MT_ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
    fprintf(f, "%s\n", file);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return MT_FAIL(MT_ERR_IO, "cannot update %s: %s", path, strerror(errno));
    return MT_OK;
}

mt_status mt_snapshot_save(MPI_Comm comm, mt_pipeline *p, const mt_options *o, long step)
{
    mt_ckpt_state st;
    char file[128], path[1200];
    int rank, ok;
    mt_status status;

    MPI_Comm_rank(comm, &rank);
    status = rank == 0 ? mt_mkdir_p(o->checkpoint_dir) : MT_OK;
    ok = status == MT_OK;
    MPI_Bcast(&ok, 1, MPI_INT, 0, comm);
    if (!ok)
        return rank == 0 ? status
                         : MT_FAIL(MT_ERR_IO, "cannot create %s", o->checkpoint_dir);
    snprintf(file, sizeof file, "%s-step%08ld.h5", o->net, step);
    snprintf(path, sizeof path, "%s/%s", o->checkpoint_dir, file);
    MT_CHECK(mt_pipeline_ckpt_tensors(p, &st));
    status = make_attrs(&st, p, o, step);
    if (status == MT_OK)
        status = mt_checkpoint_write(comm, path, &st);
    mt_pipeline_ckpt_free(&st);
    MT_CHECK(status);
    if (rank == 0) {
        MT_CHECK(write_latest(o->checkpoint_dir, file));
        mt_log(MT_LOG_INFO, "checkpoint %s written at step %ld", path, step);
    }
    return MT_OK;
}

/* The checkpoint must describe the same problem as the options. */
static mt_status check_match(const mt_ckpt_state *st, const mt_options *o, const char *path)
{
    const struct { int idx; const char *want; const char *what; } text[] = {
        {A_NET, o->net, "net"},
        {A_DATASET, mt_dataset_name(o->dataset), "data set"},
        {A_OPTIM, mt_optim_name(o->pipe.optim.kind), "optimiser"},
    };

    if (st->attrs[A_VERSION].value != MT_CKPT_FORMAT_VERSION)
        return MT_FAIL(MT_ERR_FORMAT, "%s: checkpoint format version %lld, expected %d", path,
                       (long long)st->attrs[A_VERSION].value, MT_CKPT_FORMAT_VERSION);
    for (int i = 0; i < 3; i++)
        if (strcmp(st->attrs[text[i].idx].text, text[i].want) != 0)
            return MT_FAIL(MT_ERR_FORMAT, "%s: checkpoint is for %s '%s', this run uses '%s'",
                           path, text[i].what, st->attrs[text[i].idx].text, text[i].want);
    if (st->attrs[A_BATCH].value != o->pipe.batch)
        return MT_FAIL(MT_ERR_FORMAT, "%s: checkpoint was written with --batch %lld, this run "
                       "uses %d (the data order depends on it)", path,
                       (long long)st->attrs[A_BATCH].value, o->pipe.batch);
    if (st->attrs[A_STEP].value < 0)
        return MT_FAIL(MT_ERR_FORMAT, "%s: negative step %lld", path,
                       (long long)st->attrs[A_STEP].value);
    return MT_OK;
}

mt_status mt_snapshot_load(MPI_Comm comm, mt_pipeline *p, const mt_options *o, long *step)
{
    mt_ckpt_state meta = {0}, st;
    mt_status status;

    /* First the attributes alone, so a checkpoint of another problem is
     * named as such rather than as a missing tensor. */
    MT_CHECK(make_attrs(&meta, p, o, 0));
    status = mt_checkpoint_read(comm, o->resume, &meta);
    if (status == MT_OK)
        status = check_match(&meta, o, o->resume);
    if (status != MT_OK) {
        free(meta.attrs);
        return status;
    }
    MT_CHECK(mt_pipeline_ckpt_tensors(p, &st));
    st.attrs = NULL;
    st.n_attrs = 0;
    status = mt_checkpoint_read(comm, o->resume, &st);
    mt_pipeline_ckpt_free(&st);
    if (status == MT_OK) {
        *step = (long)meta.attrs[A_STEP].value;
        *mt_pipeline_optim_steps(p) = (long)meta.attrs[A_OPTIM_STEPS].value;
    }
    free(meta.attrs);
    return status;
}
