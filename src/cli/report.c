/* report.c - model table, metrics file and directories of a run. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/report.h"

void mt_report_model(const mt_model *model, const int *stage_first, int n_stages)
{
    double flops = 0.0;
    int stage = 0;

    mt_log(MT_LOG_INFO, "model %s: %d ops, %zu parameters, %d stage%s", model->net,
           model->n_ops, mt_model_n_params(model), n_stages, mt_plural(n_stages));
    mt_log(MT_LOG_INFO, "  %-14s %-8s %5s %-14s %12s %10s", "op", "kind", "rank", "output",
           "params", "MFLOP");
    for (int t = 0; t < model->n_ops; t++) {
        const mt_op *op = model->ops[t];
        char shape[48];
        while (stage + 1 < n_stages && stage_first[stage + 1] <= t)
            stage++;
        snprintf(shape, sizeof shape, "%dx%dx%d", op->out.c, op->out.h, op->out.w);
        mt_log(MT_LOG_INFO, "  %-14s %-8s %5d %-14s %12zu %10.2f", op->name, op->vt->kind,
               stage, shape, op->n_params, op->flops * 1e-6);
        flops += op->flops;
    }
    mt_log(MT_LOG_INFO, "  forward: %.1f MFLOP per sample", flops * 1e-6);
}

void mt_default_run_dir(MPI_Comm comm, const char *what, const char *oracle, char *dir,
                        size_t cap)
{
    char stamp[32] = "";
    int rank;

    if (dir[0]) /* every rank was given the same options */
        return;
    MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        time_t now = time(NULL);
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    }
    MPI_Bcast(stamp, sizeof stamp, MPI_CHAR, 0, comm);
    snprintf(dir, cap, "runs/%s-%s-%s", stamp, what, oracle);
}

mt_status mt_mkdir_p(const char *path)
{
    char buf[1024];
    size_t len = strlen(path);
    struct stat sb;

    if (len == 0 || len >= sizeof buf)
        return MT_FAIL(MT_ERR_ARG, "directory name '%s' is empty or too long", path);
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return MT_FAIL(MT_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return MT_FAIL(MT_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode)) /* EEXIST: a file of that name */
        return MT_FAIL(MT_ERR_IO, "cannot create directory %s: %s", buf, strerror(ENOTDIR));
    return MT_OK;
}

const char *mt_plural(long n) { return n == 1 ? "" : "s"; }

mt_status mt_regular_or_absent(const char *path)
{
    struct stat sb;

    if (stat(path, &sb) != 0 || S_ISREG(sb.st_mode))
        return MT_OK;
    return MT_FAIL(MT_ERR_IO, "cannot write %s: not a regular file", path);
}

/* Open <dir>/<name> for writing or appending; a new file gets `header`. */
static mt_status open_csv(FILE **f, const char *dir, const char *name, int append,
                          const char *header)
{
    char path[1100];
    struct stat sb;
    int exists;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    MT_CHECK(mt_regular_or_absent(path));
    exists = stat(path, &sb) == 0 && sb.st_size > 0;
    *f = fopen(path, append ? "a" : "w");
    if (!*f)
        return MT_FAIL(MT_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    if (!append || !exists)
        fputs(header, *f);
    fflush(*f);
    return MT_OK;
}

mt_status mt_metrics_open(mt_metrics *m, const char *dir, int append)
{
    MT_CHECK(mt_mkdir_p(dir));
    MT_CHECK(open_csv(&m->csv, dir, "metrics.csv", append,
                      "kind,step,epoch,loss,accuracy,lambda_norm,images_per_s,elapsed_s,"
                      "t_compute,t_wait,t_weights\n"));
    return open_csv(&m->stages, dir, "stages.csv", append,
                    "step,stage,penalty,inner_iterations,residual_input,residual_weights,"
                    "lambda_norm\n");
}

void mt_metrics_stages(mt_metrics *m, long step, const mt_stage_stats *all, int n_stages)
{
    for (int s = 0; s < n_stages; s++) {
        const mt_stage_stats *x = &all[s];
        mt_log(MT_LOG_INFO, "  stage %d: penalty %.3e, %ld inner iterations, residuals %.1e "
               "(inputs) %.1e (weights), |lambda| %.3e", s, x->penalty, x->iterations,
               x->residual_x, x->residual_w, x->lambda_norm);
        if (m->stages)
            fprintf(m->stages, "%ld,%d,%.9g,%ld,%.3g,%.3g,%.9g\n", step, s, x->penalty,
                    x->iterations, x->residual_x, x->residual_w, x->lambda_norm);
    }
    if (m->stages)
        fflush(m->stages);
}

void mt_metrics_step(mt_metrics *m, long step, long epoch, const mt_step_stats *s,
                     double images_per_s, double elapsed)
{
    if (!m->csv)
        return;
    fprintf(m->csv, "train,%ld,%ld,%.17g,%.6f,%.9g,%.2f,%.3f,%.4f,%.4f,%.4f\n", step, epoch,
            s->loss, s->accuracy, s->lambda_norm, images_per_s, elapsed, s->t_compute,
            s->t_wait, s->t_weights);
    fflush(m->csv);
}

void mt_metrics_eval(mt_metrics *m, long step, long epoch, const mt_step_stats *s,
                     double elapsed)
{
    if (!m->csv)
        return;
    fprintf(m->csv, "test,%ld,%ld,%.17g,%.6f,,,%.3f,,,\n", step, epoch, s->loss, s->accuracy,
            elapsed);
    fflush(m->csv);
}

void mt_metrics_close(mt_metrics *m)
{
    if (m->csv)
        fclose(m->csv);
    if (m->stages)
        fclose(m->stages);
    m->csv = m->stages = NULL;
}
