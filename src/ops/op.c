/* op.c - creation and destruction of ops, and helpers shared by the kinds. */
#include <stdio.h>
#include <string.h>

#include "op_impl.h"

mt_status mt_op_alloc(const mt_op_vtable *vt, const char *name, mt_shape in, mt_shape out,
                      size_t priv_bytes, mt_op **op)
{
    mt_op *o = NULL;

    if (!op)
        return MT_FAIL(MT_ERR_ARG, "%s op: NULL output pointer", vt->kind);
    *op = NULL;
    if (name && strlen(name) >= sizeof(o->name))
        return MT_FAIL(MT_ERR_ARG, "%s op name '%s' longer than %zu characters", vt->kind, name,
                       sizeof(o->name) - 1);
    MT_CHECK(mt_alloc_checked((void **)&o, sizeof(*o), "op"));
    if (priv_bytes > 0 && !(o->priv = mt_alloc(priv_bytes))) {
        mt_free(o);
        return MT_FAIL(MT_ERR_MEM, "out of memory for the state of %s op", vt->kind);
    }
    o->vt = vt;
    if (name)
        strcpy(o->name, name); /* length checked above */
    o->in = in;
    o->out = out;
    *op = o;
    return MT_OK;
}

void mt_op_add_tensor(mt_op *op, const char *suffix, int ndim, const int *dims)
{
    mt_param_tensor *t = &op->tensors[op->n_tensors++];

    snprintf(t->suffix, sizeof(t->suffix), "%s", suffix);
    t->ndim = ndim;
    t->n = 1;
    for (int d = 0; d < ndim; d++) {
        t->dims[d] = dims[d];
        t->n *= (size_t)dims[d];
    }
    t->offset = op->n_params;
    op->n_params += t->n;
}

mt_status mt_op_check_args(const mt_op *op, const float *w, int n, const void *a, const void *b,
                           const void *c)
{
    if (n < 0)
        return MT_FAIL(MT_ERR_ARG, "op '%s' (%s): negative batch size %d", op->name, op->vt->kind,
                       n);
    if (n > 0 && (!a || !b || !c || (op->n_params > 0 && !w)))
        return MT_FAIL(MT_ERR_ARG, "op '%s' (%s): NULL array", op->name, op->vt->kind);
    return MT_OK;
}

void mt_op_fill_uniform(mt_rng *rng, float bound, size_t n, float *w)
{
    for (size_t i = 0; i < n; i++)
        w[i] = bound * (2.0f * mt_rng_uniform(rng) - 1.0f);
}

mt_status mt_op_init_none(mt_op *op, mt_rng *rng, float *w)
{
    (void)op;
    (void)rng;
    (void)w;
    return MT_OK;
}

void mt_op_destroy_plain(mt_op *op)
{
    mt_free(op->priv);
    op->priv = NULL;
}

void mt_op_copy_batch(const mt_op *op, int n, const float *x, float *y)
{
    size_t size = mt_shape_size(op->in);

    if (x == y)
        return;
#pragma omp parallel for schedule(static)
    for (int i = 0; i < n; i++)
        memcpy(y + (size_t)i * size, x + (size_t)i * size, sizeof(float) * size);
}

void mt_op_destroy(mt_op **op)
{
    if (!op || !*op)
        return;
    if ((*op)->vt && (*op)->vt->destroy)
        (*op)->vt->destroy(*op);
    mt_free(*op);
    *op = NULL;
}
