/*
 * model.c - build the chains of ALGORITHMS.md section 8 from a net's name,
 * estimate per-op costs, and cut the chain into pipeline stages.
 */
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/model.h"

const char *const mt_model_names[] = {"mlp", "convnet", "allcnn", NULL};

/* A chain under construction: ops are appended, shapes flow from op to op. */
typedef struct {
    mt_model *m;
    int cap;
    const char *group; /* "features" or "classifier" */
    int index;         /* position inside the group's nn.Sequential */
} builder;

static mt_status push(builder *b, mt_op *op)
{
    if (b->m->n_ops == b->cap) {
        int cap = b->cap ? 2 * b->cap : 16;
        mt_op **ops = realloc(b->m->ops, (size_t)cap * sizeof *ops);
        if (!ops) {
            mt_op_destroy(&op);
            return MT_FAIL(MT_ERR_MEM, "out of memory building the model");
        }
        b->m->ops = ops;
        b->cap = cap;
    }
    b->m->ops[b->m->n_ops++] = op;
    return MT_OK;
}

static mt_shape tail_shape(const builder *b)
{
    return b->m->n_ops ? b->m->ops[b->m->n_ops - 1]->out : b->m->in;
}

static void next_name(builder *b, char *name, size_t cap)
{
    snprintf(name, cap, "%s.%d", b->group, b->index++);
}

static mt_status add_conv(builder *b, int out_c, int k, int stride, int pad)
{
    char name[48];
    mt_op *op = NULL;
    next_name(b, name, sizeof name);
    MT_CHECK(mt_op_conv2d_create(name, tail_shape(b), out_c, k, stride, pad, &op));
    return push(b, op);
}

static mt_status add_dense(builder *b, int out)
{
    char name[48];
    mt_op *op = NULL;
    next_name(b, name, sizeof name);
    MT_CHECK(mt_op_dense_create(name, (int)mt_shape_size(tail_shape(b)), out, &op));
    return push(b, op);
}

static mt_status add_relu(builder *b)
{
    char name[48];
    mt_op *op = NULL;
    next_name(b, name, sizeof name);
    MT_CHECK(mt_op_relu_create(name, tail_shape(b), &op));
    return push(b, op);
}

static mt_status add_pool(builder *b, int k)
{
    char name[48];
    mt_op *op = NULL;
    next_name(b, name, sizeof name);
    MT_CHECK(mt_op_avgpool_create(name, tail_shape(b), k, &op));
    return push(b, op);
}

static mt_status add_gap(builder *b)
{
    char name[48];
    mt_op *op = NULL;
    next_name(b, name, sizeof name);
    MT_CHECK(mt_op_gap_create(name, tail_shape(b), &op));
    return push(b, op);
}

/* The flatten op ends the "features" group; dense layers follow in "classifier". */
static mt_status add_flatten(builder *b)
{
    mt_op *op = NULL;
    MT_CHECK(mt_op_flatten_create("flatten", tail_shape(b), &op));
    b->group = "classifier";
    b->index = 0;
    return push(b, op);
}

static mt_status build_mlp(builder *b, int n_classes)
{
    static const int widths[] = {4000, 1000, 4000};

    MT_CHECK(add_flatten(b));
    for (int i = 0; i < 3; i++) {
        MT_CHECK(add_dense(b, widths[i]));
        MT_CHECK(add_relu(b));
    }
    return add_dense(b, n_classes);
}

static mt_status build_convnet(builder *b, int n_classes)
{
    static const int channels[] = {16, 20, 20};

    for (int i = 0; i < 3; i++) {
        MT_CHECK(add_conv(b, channels[i], 5, 1, 2));
        MT_CHECK(add_relu(b));
        MT_CHECK(add_pool(b, 2));
    }
    MT_CHECK(add_flatten(b));
    return add_dense(b, n_classes);
}

static mt_status build_allcnn(builder *b, int n_classes)
{
    /* channels, kernel, stride, padding of All-CNN-C's nine convolutions */
    const int spec[9][4] = {{96, 3, 1, 1},  {96, 3, 1, 1},  {96, 3, 2, 1},
                            {192, 3, 1, 1}, {192, 3, 1, 1}, {192, 3, 2, 1},
                            {192, 3, 1, 0}, {192, 1, 1, 0}, {n_classes, 1, 1, 0}};

    for (int i = 0; i < 9; i++) {
        MT_CHECK(add_conv(b, spec[i][0], spec[i][1], spec[i][2], spec[i][3]));
        MT_CHECK(add_relu(b));
    }
    MT_CHECK(add_gap(b));
    return add_flatten(b);
}

mt_status mt_model_build(const char *net, mt_shape in, int n_classes, mt_model **out)
{
    builder b = {0};
    mt_status st;

    *out = NULL;
    b.m = calloc(1, sizeof *b.m);
    if (!b.m)
        return MT_FAIL(MT_ERR_MEM, "out of memory building the model");
    snprintf(b.m->net, sizeof b.m->net, "%s", net);
    b.m->in = in;
    b.group = "features";

    if (strcmp(net, "mlp") == 0)
        st = build_mlp(&b, n_classes);
    else if (strcmp(net, "convnet") == 0)
        st = build_convnet(&b, n_classes);
    else if (strcmp(net, "allcnn") == 0)
        st = build_allcnn(&b, n_classes);
    else
        st = MT_FAIL(MT_ERR_ARG, "unknown net '%s' (expected mlp, convnet or allcnn)", net);
    if (st == MT_OK)
        MT_CHECK_GOTO(mt_loss_xent_create(n_classes, &b.m->loss), st, fail);
    if (st != MT_OK)
        goto fail;
    *out = b.m;
    return MT_OK;

fail:
    mt_model_destroy(&b.m);
    return st;
}

void mt_model_destroy(mt_model **model)
{
    if (!model || !*model)
        return;
    for (int t = 0; t < (*model)->n_ops; t++)
        mt_op_destroy(&(*model)->ops[t]);
    free((*model)->ops);
    mt_loss_destroy(&(*model)->loss);
    free(*model);
    *model = NULL;
}

static int joins_layer(const mt_op *op)
{
    const char *k = op->vt->kind;
    return op->n_params == 0 && (!strcmp(k, "relu") || !strcmp(k, "avgpool") || !strcmp(k, "gap"));
}

mt_status mt_model_group_layers(mt_model *model)
{
    int out = 0;

    for (int t = 0; t < model->n_ops;) {
        int len = 1;
        if (model->ops[t]->n_params > 0)
            while (t + len < model->n_ops && len < 4 && joins_layer(model->ops[t + len]))
                len++;
        if (len == 1) {
            model->ops[out++] = model->ops[t++];
            continue;
        }
        mt_op *block = NULL;
        mt_status st = mt_op_block_create(&model->ops[t], len, &block);
        if (st != MT_OK) { /* keep the chain whole, so destroy frees each op once */
            while (t < model->n_ops)
                model->ops[out++] = model->ops[t++];
            model->n_ops = out;
            return st;
        }
        model->ops[out++] = block;
        t += len;
    }
    for (int t = out; t < model->n_ops; t++)
        model->ops[t] = NULL;
    model->n_ops = out;
    return MT_OK;
}

double mt_model_op_cost(const mt_model *model, int t)
{
    const mt_op *op = model->ops[t];
    /* forward + input subproblem + weight subproblem, each about one pass;
     * memory-bound ops (relu, pooling) cost their output size. */
    double cost = 3.0 * op->flops;
    return cost + 4.0 * (double)mt_shape_size(op->out);
}

size_t mt_model_n_params(const mt_model *model)
{
    size_t n = 0;
    for (int t = 0; t < model->n_ops; t++)
        n += model->ops[t]->n_params;
    return n;
}

int mt_model_n_param_ops(const mt_model *model)
{
    int k = 0;
    for (int t = 0; t < model->n_ops; t++)
        k += model->ops[t]->n_params > 0;
    return k;
}
