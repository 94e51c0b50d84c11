/*
 * op_impl.h - helpers shared by the op kinds under src/ops/ (private: not
 * part of the public API).
 */
#ifndef MTRAIN_OP_IMPL_H
#define MTRAIN_OP_IMPL_H

#include "mtrain/kernels.h"
#include "mtrain/op.h"

/* A zeroed heap op with its vtable, name (at most 47 characters; NULL gives
 * ""), shapes and, when priv_bytes > 0, a zeroed private block in op->priv. */
mt_status mt_op_alloc(const mt_op_vtable *vt, const char *name, mt_shape in, mt_shape out,
                      size_t priv_bytes, mt_op **op);

/* Append a parameter tensor after the existing ones (offset = the running
 * total) and add its size to op->n_params. dims in PyTorch order. */
void mt_op_add_tensor(mt_op *op, const char *suffix, int ndim, const int *dims);

/* Validate a rule's arguments: n >= 0, the weights when the op has
 * parameters, and (for n > 0) the three arrays. */
mt_status mt_op_check_args(const mt_op *op, const float *w, int n, const void *a, const void *b,
                           const void *c);

/* w[i] = bound (2 u - 1), u uniform in [0, 1) from rng, i in element order. */
void mt_op_fill_uniform(mt_rng *rng, float bound, size_t n, float *w);

/* init for ops without parameters: draws nothing. */
mt_status mt_op_init_none(mt_op *op, mt_rng *rng, float *w);

/* destroy for ops whose private block holds no owned memory. */
void mt_op_destroy_plain(mt_op *op);

/* y = x for n samples of op->in (a no-op when y == x). OpenMP over samples. */
void mt_op_copy_batch(const mt_op *op, int n, const float *x, float *y);

#endif
