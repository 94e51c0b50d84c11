/*
 * grad_dump.c - one back-propagation step (--oracle gd) of a net on the
 * first BATCH CIFAR-10 training samples, dumped to one HDF5 file for
 * tests/torch/check_grads.py, which redoes the step in PyTorch:
 *   model/<op>.<tensor>   parameters before the step (state_dict layout)
 *   grad/<op>.<tensor>    the directions g_t = J_w^T lambda_t + wd w_t
 *   input/x [B,3,32,32], input/labels [B] (float)
 *   act/<relu op> [B,c,h,w] the input of every relu op, from a forward pass
 *                 with the same kernels and batch as the step's (its loss
 *                 must equal the step's bit for bit): check_grads.py takes
 *                 mtrain's side of pre-activations that round to either
 *                 side of 0 in float32
 *   attributes: net, batch, wd, loss (text, %.17g), optimizer ...
 * With OPTIM = sgd or adam it takes a second step and also writes
 *   grad2/<op>.<tensor>   the directions of step 2
 *   after/<op>.<tensor>   the parameters after step 2
 *   optim/<op>.<tensor>/<state>  the optimiser state, as in a checkpoint
 * so that torch.optim can replay both updates from the same directions.
 *
 * usage: grad_dump NET OUT.h5 [BATCH [plain|sgd|adam]]  (an MPI singleton)
 * Data: $MTRAIN_SHARED_DATA/cifar10 when set, else mtrain's usual search.
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/checkpoint.h"
#include "mtrain/data.h"
#include "mtrain/model.h"
#include "mtrain/pipeline.h"

#define WD 1e-3
#define SEED 20240601u
#define MAX_ATTRS 16

typedef struct {
    const char *net, *out;
    int batch;
    mt_optim_kind optim;
} dump_args;

/* Everything kept between the steps and the file. */
typedef struct {
    mt_model *model;
    mt_pipeline *p;
    size_t *off;       /* [n_ops] offset of op t in before/dir1 */
    float *before;     /* parameters before step 1, ops in order */
    float *dir1;       /* directions of step 1 */
    float **acts;      /* [n_ops] input of op t when it is a relu, else NULL */
    double loss[2];
    mt_ckpt_state listed; /* mt_pipeline_ckpt_tensors */
    mt_ckpt_state out;
} dump;

static int parse_args(int argc, char **argv, dump_args *a)
{
    static const char *const optims[] = {"plain", "sgd", "adam"};

    if (argc < 3 || argc > 5)
        return 0;
    a->net = argv[1];
    a->out = argv[2];
    a->batch = argc > 3 ? atoi(argv[3]) : 32;
    a->optim = MT_OPTIM_PLAIN;
    if (argc > 4) {
        int k = 0;
        while (k < 3 && strcmp(argv[4], optims[k]) != 0)
            k++;
        if (k == 3)
            return 0;
        a->optim = (mt_optim_kind)k; /* the names are in the enum's order */
    }
    return a->batch >= 1 && a->batch <= 10000;
}

static mt_pipeline_config pipeline_config(const dump_args *a)
{
    mt_pipeline_config c;

    memset(&c, 0, sizeof c);
    c.batch = a->batch;
    c.micro_batches = 1;
    c.oracle.kind = MT_ORACLE_GD;
    c.oracle.kappa = c.oracle.sigma = c.oracle.gamma = 1.0;
    c.oracle.wd = WD;
    c.optim.kind = a->optim;
    c.optim.lr = a->optim == MT_OPTIM_PLAIN ? 1.0 : a->optim == MT_OPTIM_SGD ? 0.05 : 1e-3;
    c.optim.momentum = 0.9;
    c.optim.nesterov = 1;
    c.optim.beta1 = 0.9;
    c.optim.beta2 = 0.999;
    c.optim.eps = 1e-8;
    return c;
}

/* The first B training samples, normalised as mtrain's runs do. */
static mt_status load_batch(int B, float *x, int32_t *labels)
{
    const char *shared = getenv("MTRAIN_SHARED_DATA");
    char want[4096], dir[4096];
    mt_dataset_kind kind = MT_DATASET_CIFAR10;
    mt_dataset *ds = NULL;
    mt_norm norm;
    mt_status st;

    if (shared)
        snprintf(want, sizeof want, "%s/cifar10", shared);
    MT_CHECK(mt_data_locate(shared ? want : NULL, &kind, dir, sizeof dir));
    MT_CHECK(mt_dataset_load(dir, kind, 1, &ds));
    MT_CHECK_GOTO(mt_norm_fit(ds, &norm), st, done);
    if ((size_t)B > ds->n) {
        st = MT_FAIL(MT_ERR_ARG, "batch %d > %zu training samples", B, ds->n);
        goto done;
    }
    mt_data_gather(ds, &norm, NULL, 0, B, x, labels);
done:
    mt_dataset_destroy(&ds);
    return st;
}

/* Build the model and the 1-rank pipeline, initialise, fill the batch. */
static mt_status setup(dump *d, const dump_args *a)
{
    mt_shape in = {3, 32, 32};
    mt_pipeline_config cfg = pipeline_config(a);
    size_t n = 0;

    MT_CHECK(mt_model_build(a->net, in, 10, &d->model));
    MT_CHECK(mt_pipeline_create(MPI_COMM_WORLD, d->model, &cfg, &d->p));
    MT_CHECK(mt_pipeline_init_params(d->p, SEED));
    MT_CHECK(load_batch(a->batch, mt_pipeline_input(d->p), mt_pipeline_labels(d->p)));

    d->off = calloc((size_t)d->model->n_ops, sizeof *d->off);
    for (int t = 0; d->off && t < d->model->n_ops; t++) {
        d->off[t] = n;
        n += d->model->ops[t]->n_params;
    }
    d->before = malloc((n + 1) * sizeof(float));
    d->dir1 = malloc((n + 1) * sizeof(float));
    if (!d->off || !d->before || !d->dir1)
        return MT_FAIL(MT_ERR_MEM, "out of memory for the copies");
    return MT_OK;
}

static int is_relu(const mt_op *op) { return strcmp(op->vt->kind, "relu") == 0; }

/* The chain's forward pass on the batch (x ping-pongs between a and b);
 * keeps each relu's input in d->acts and returns the mean loss. */
static mt_status forward_acts(dump *d, int B, float *a, float *b, double *loss)
{
    const mt_model *m = d->model;
    float *tmp;
    double sum = 0.0;

    memcpy(a, mt_pipeline_input(d->p), (size_t)B * mt_shape_size(m->in) * sizeof(float));
    for (int t = 0; t < m->n_ops; t++) {
        mt_op *op = m->ops[t];
        size_t n_in = (size_t)B * mt_shape_size(op->in);
        if (is_relu(op)) {
            d->acts[t] = malloc(n_in * sizeof(float));
            if (!d->acts[t])
                return MT_FAIL(MT_ERR_MEM, "out of memory for activations");
            memcpy(d->acts[t], a, n_in * sizeof(float));
        }
        MT_CHECK(op->vt->forward(op, mt_pipeline_op_params(d->p, t), B, a, b));
        tmp = a, a = b, b = tmp;
    }
    /* the logits are in a; per-sample losses go to b, summed as the step does */
    MT_CHECK(m->loss->vt->value(m->loss, B, a, mt_pipeline_labels(d->p), b, (int *)(b + B)));
    for (int i = 0; i < B; i++)
        sum += b[i];
    *loss = sum / B;
    return MT_OK;
}

/* forward_acts with its scratch: two buffers of the largest activation. */
static mt_status keep_acts(dump *d, int B, double *loss)
{
    size_t big = mt_shape_size(d->model->in) + 2;
    float *a, *b;
    mt_status st;

    for (int t = 0; t < d->model->n_ops; t++)
        big = mt_max_sz(big, mt_shape_size(d->model->ops[t]->out) + 2);
    a = malloc((size_t)B * big * sizeof(float));
    b = malloc((size_t)B * big * sizeof(float));
    d->acts = calloc((size_t)d->model->n_ops, sizeof *d->acts);
    st = a && b && d->acts ? forward_acts(d, B, a, b, loss)
                           : MT_FAIL(MT_ERR_MEM, "out of memory for activations");
    free(a), free(b);
    return st;
}

/* Copy every op's parameters (dirs = 0) or last directions (dirs = 1). */
static void copy_ops(dump *d, float *dst, int dirs)
{
    for (int t = 0; t < d->model->n_ops; t++) {
        const float *src = dirs ? mt_pipeline_op_direction(d->p, t)
                                : mt_pipeline_op_params(d->p, t);
        if (d->model->ops[t]->n_params > 0)
            memcpy(dst + d->off[t], src, d->model->ops[t]->n_params * sizeof(float));
    }
}

static mt_status run_steps(dump *d, const dump_args *a)
{
    mt_step_stats stats;
    double loss = 0.0;

    copy_ops(d, d->before, 0);
    MT_CHECK(keep_acts(d, a->batch, &loss));
    MT_CHECK(mt_pipeline_train_step(d->p, &stats));
    d->loss[0] = stats.loss;
    if (loss != stats.loss)
        return MT_FAIL(MT_ERR_STATE, "forward pass loss %.17g != the step's %.17g", loss,
                       stats.loss);
    copy_ops(d, d->dir1, 1);
    if (a->optim != MT_OPTIM_PLAIN) {
        MT_CHECK(mt_pipeline_train_step(d->p, &stats));
        d->loss[1] = stats.loss;
    }
    return MT_OK;
}

/* Append a copy of `like` named prefix/<name without its first component>. */
static void add_like(mt_ckpt_state *st, const mt_ckpt_tensor *like, const char *prefix,
                     const float *data)
{
    mt_ckpt_tensor *ct = &st->tensors[st->n_tensors++];

    *ct = *like;
    snprintf(ct->name, sizeof ct->name, "%s/%s", prefix, strchr(like->name, '/') + 1);
    ct->data = (float *)data;
}

static void add_plain(mt_ckpt_state *st, const char *name, int ndim, const int *dims,
                      float *data)
{
    mt_ckpt_tensor *ct = &st->tensors[st->n_tensors++];

    memset(ct, 0, sizeof *ct);
    snprintf(ct->name, sizeof ct->name, "%s", name);
    ct->ndim = ndim;
    ct->n = 1;
    for (int i = 0; i < ndim; i++)
        ct->n *= (size_t)(ct->dims[i] = dims[i]);
    ct->data = data;
}

/* The op and tensor behind listed model tensor `k` (ops and tensors in
 * order); fails when the pipeline's name differs from "model/<op>.<suffix>". */
static mt_status locate_tensor(const dump *d, int k, int *op_t, const mt_param_tensor **pt)
{
    char want[96];

    for (int t = 0, i = 0; t < d->model->n_ops; t++)
        for (int j = 0; j < d->model->ops[t]->n_tensors; j++, i++) {
            if (i != k)
                continue;
            *op_t = t;
            *pt = &d->model->ops[t]->tensors[j];
            snprintf(want, sizeof want, "model/%s.%s", d->model->ops[t]->name, (*pt)->suffix);
            if (strcmp(want, d->listed.tensors[k].name) != 0)
                return MT_FAIL(MT_ERR_STATE, "tensor %d is %s, expected %s", k,
                               d->listed.tensors[k].name, want);
            return MT_OK;
        }
    return MT_FAIL(MT_ERR_STATE, "tensor %d: no such parameter tensor", k);
}

/* model/, grad/ (and grad2/, after/, optim/ after two steps). */
static mt_status list_tensors(dump *d, int two_steps)
{
    mt_ckpt_state *st = &d->out;
    int n_model = 0;

    MT_CHECK(mt_pipeline_ckpt_tensors(d->p, &d->listed));
    st->tensors = calloc(3 * (size_t)d->listed.n_tensors + 2 + (size_t)d->model->n_ops,
                         sizeof *st->tensors);
    if (!st->tensors)
        return MT_FAIL(MT_ERR_MEM, "out of memory listing tensors");
    for (int k = 0; k < d->listed.n_tensors; k++) {
        const mt_ckpt_tensor *ct = &d->listed.tensors[k];
        const mt_param_tensor *pt = NULL;
        int t = 0;

        if (strncmp(ct->name, "model/", 6) != 0) {
            if (two_steps)
                st->tensors[st->n_tensors++] = *ct;
            continue;
        }
        MT_CHECK(locate_tensor(d, n_model++, &t, &pt));
        add_like(st, ct, "model", d->before + d->off[t] + pt->offset);
        add_like(st, ct, "grad", d->dir1 + d->off[t] + pt->offset);
        if (two_steps) {
            add_like(st, ct, "grad2", mt_pipeline_op_direction(d->p, t) + pt->offset);
            add_like(st, ct, "after", ct->data);
        }
    }
    return MT_OK;
}

static void set_text(mt_ckpt_state *st, const char *name, const char *fmt, double v)
{
    mt_ckpt_attr *at = &st->attrs[st->n_attrs++];

    snprintf(at->name, sizeof at->name, "%s", name);
    at->is_string = 1;
    snprintf(at->text, sizeof at->text, fmt, v);
}

static void list_attrs(dump *d, const dump_args *a)
{
    mt_pipeline_config c = pipeline_config(a);
    mt_ckpt_state *st = &d->out;
    mt_ckpt_attr *at;

    set_text(st, "loss", "%.17g", d->loss[0]);
    set_text(st, "loss2", "%.17g", d->loss[1]);
    set_text(st, "wd", "%.17g", WD);
    set_text(st, "lr", "%.17g", c.optim.lr);
    set_text(st, "momentum", "%.17g", c.optim.momentum);
    set_text(st, "nesterov", "%.0f", c.optim.nesterov);
    set_text(st, "beta1", "%.17g", c.optim.beta1);
    set_text(st, "beta2", "%.17g", c.optim.beta2);
    set_text(st, "eps", "%.17g", c.optim.eps);
    at = &st->attrs[st->n_attrs++];
    snprintf(at->name, sizeof at->name, "batch");
    at->value = a->batch;
    at = &st->attrs[st->n_attrs++];
    snprintf(at->name, sizeof at->name, "net");
    at->is_string = 1;
    snprintf(at->text, sizeof at->text, "%s", a->net);
    at = &st->attrs[st->n_attrs++];
    snprintf(at->name, sizeof at->name, "optimizer");
    at->is_string = 1;
    snprintf(at->text, sizeof at->text, "%s", mt_optim_name(a->optim));
}

static mt_status write_dump(dump *d, const dump_args *a, float *labels_f)
{
    const int B = a->batch, x_dims[4] = {B, 3, 32, 32};
    const int32_t *labels = mt_pipeline_labels(d->p);

    MT_CHECK(list_tensors(d, a->optim != MT_OPTIM_PLAIN));
    for (int i = 0; i < B; i++)
        labels_f[i] = (float)labels[i];
    add_plain(&d->out, "input/x", 4, x_dims, mt_pipeline_input(d->p));
    add_plain(&d->out, "input/labels", 1, &B, labels_f);
    for (int t = 0; t < d->model->n_ops; t++) {
        mt_shape in = d->model->ops[t]->in;
        const int dims[4] = {B, in.c, in.h, in.w};
        char name[96];
        if (!d->acts[t])
            continue;
        snprintf(name, sizeof name, "act/%s", d->model->ops[t]->name);
        add_plain(&d->out, name, 4, dims, d->acts[t]);
    }

    d->out.attrs = calloc(MAX_ATTRS, sizeof *d->out.attrs);
    if (!d->out.attrs)
        return MT_FAIL(MT_ERR_MEM, "out of memory for attributes");
    list_attrs(d, a);
    return mt_checkpoint_write(MPI_COMM_WORLD, a->out, &d->out);
}

static void dump_free(dump *d)
{
    for (int t = 0; d->acts && t < d->model->n_ops; t++)
        free(d->acts[t]);
    mt_pipeline_ckpt_free(&d->listed);
    mt_pipeline_ckpt_free(&d->out);
    mt_pipeline_destroy(&d->p);
    mt_model_destroy(&d->model);
    free(d->acts), free(d->off), free(d->before), free(d->dir1);
}

int main(int argc, char **argv)
{
    dump_args a;
    dump d;
    float *labels_f = NULL;
    mt_status st;

    MPI_Init(&argc, &argv);
    memset(&d, 0, sizeof d);
    if (!parse_args(argc, argv, &a)) {
        fprintf(stderr, "usage: grad_dump NET OUT.h5 [BATCH [plain|sgd|adam]]\n");
        MPI_Finalize();
        return 2;
    }
    st = setup(&d, &a);
    if (st == MT_OK)
        st = run_steps(&d, &a);
    labels_f = malloc((size_t)a.batch * sizeof *labels_f);
    if (st == MT_OK)
        st = labels_f ? write_dump(&d, &a, labels_f) : MT_FAIL(MT_ERR_MEM, "out of memory");
    if (st == MT_OK)
        printf("%s: loss %.9g, %zu parameters -> %s\n", a.net, d.loss[0],
               mt_model_n_params(d.model), a.out);
    else
        fprintf(stderr, "grad_dump: %s (%s)\n", mt_error_message(), mt_error_where());
    free(labels_f);
    dump_free(&d);
    MPI_Finalize();
    return st == MT_OK ? 0 : 1;
}
