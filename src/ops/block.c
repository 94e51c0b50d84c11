/*
 * block.c - a layer as one op: an affine/conv op followed by the activation
 * and pooling after it, phi = pool o relu o conv (--granularity layer, how
 * the paper's experiments ran). It has the first child's parameters and no
 * exact solver: the generic inner solvers see it through the rules below,
 * which chain the children's rules. Intermediate activations are recomputed
 * by every rule (a forward pass through the children), so the rules stay
 * pure functions of (w, x).
 */
#include <string.h>

#include "mtrain/op.h"
#include "op_impl.h"

typedef struct {
    int n_children;
    mt_op *children[4];
    float *act[4];     /* act[i] = input of child i, [cap][size], act[0] unused */
    int cap;           /* samples the buffers hold */
} block_priv;

static mt_status reserve(mt_op *op, int n)
{
    block_priv *p = op->priv;

    if (n <= p->cap)
        return MT_OK;
    for (int i = 1; i < p->n_children; i++) {
        mt_free(p->act[i]);
        p->act[i] = NULL;
        MT_CHECK(mt_alloc_checked((void **)&p->act[i],
                                  (size_t)n * mt_shape_size(p->children[i]->in) * sizeof(float),
                                  "block activations"));
    }
    p->cap = n;
    return MT_OK;
}

/* act[i] for i >= 1 from x through children 0..n_children-2. */
static mt_status forward_inner(mt_op *op, const float *w, int n, const float *x)
{
    block_priv *p = op->priv;

    MT_CHECK(reserve(op, n));
    for (int i = 0; i + 1 < p->n_children; i++) {
        const float *in = i == 0 ? x : p->act[i];
        const float *wi = i == 0 ? w : NULL;
        MT_CHECK(p->children[i]->vt->forward(p->children[i], wi, n, in, p->act[i + 1]));
    }
    return MT_OK;
}

static const float *input_of(block_priv *p, int i, const float *x) { return i ? p->act[i] : x; }

static mt_status block_forward(mt_op *op, const float *w, int n, const float *x, float *y)
{
    block_priv *p = op->priv;
    int last = p->n_children - 1;

    MT_CHECK(forward_inner(op, w, n, x));
    return p->children[last]->vt->forward(p->children[last], last ? NULL : w, n,
                                          input_of(p, last, x), y);
}

/* Back from dy at the block's output to the first child's output, in `buf`
 * (ping-pong through two scratch rows of the largest size). */
static mt_status back_to_first(mt_op *op, int n, const float *x, const float *dy, float **out)
{
    block_priv *p = op->priv;
    const float *d = dy;
    float *scratch[2];
    size_t big = 0;

    for (int i = 1; i < p->n_children; i++)
        big = mt_max_sz(big, mt_shape_size(p->children[i]->in));
    MT_CHECK(mt_alloc_checked((void **)&scratch[0], 2 * (size_t)n * big * sizeof(float),
                              "block adjoints"));
    scratch[1] = scratch[0] + (size_t)n * big;
    for (int i = p->n_children - 1; i >= 1; i--) {
        float *dst = scratch[i & 1];
        mt_status st = p->children[i]->vt->vjp_x(p->children[i], NULL, n, input_of(p, i, x), d,
                                                 dst);
        if (st != MT_OK) {
            mt_free(scratch[0]);
            return st;
        }
        d = dst;
    }
    /* Hand back the scratch block with the result at its start. */
    if (d != scratch[0])
        memcpy(scratch[0], d, (size_t)n * mt_shape_size(p->children[0]->out) * sizeof(float));
    *out = scratch[0];
    return MT_OK;
}

/* dx (in_weights = 0) or dw (in_weights = 1) = J^T dy through the chain. */
static mt_status block_vjp(mt_op *op, const float *w, int n, const float *x, const float *dy,
                           float *out, int in_weights)
{
    mt_op *c0 = ((block_priv *)op->priv)->children[0];
    float *d = NULL;
    mt_status st;

    MT_CHECK(forward_inner(op, w, n, x));
    MT_CHECK(back_to_first(op, n, x, dy, &d));
    st = in_weights ? c0->vt->vjp_w(c0, w, n, x, d, out) : c0->vt->vjp_x(c0, w, n, x, d, out);
    mt_free(d);
    return st;
}

static mt_status block_vjp_x(mt_op *op, const float *w, int n, const float *x, const float *dy,
                             float *dx)
{
    return block_vjp(op, w, n, x, dy, dx, 0);
}

static mt_status block_vjp_w(mt_op *op, const float *w, int n, const float *x, const float *dy,
                             float *dw)
{
    return block_vjp(op, w, n, x, dy, dw, 1);
}

/* Push a tangent v at the first child's output through the other children. */
static mt_status push_tangent(mt_op *op, int n, const float *x, const float *v, float *vy)
{
    block_priv *p = op->priv;
    size_t big = 0;
    float *buf;
    const float *cur = v;

    for (int i = 1; i < p->n_children; i++)
        big = mt_max_sz(big, mt_shape_size(p->children[i]->out));
    MT_CHECK(mt_alloc_checked((void **)&buf, 2 * (size_t)n * big * sizeof(float),
                              "block tangents"));
    for (int i = 1; i < p->n_children; i++) {
        int last = i == p->n_children - 1;
        float *dst = last ? vy : buf + (size_t)(i & 1) * (size_t)n * big;
        mt_status st = p->children[i]->vt->jvp_x(p->children[i], NULL, n, input_of(p, i, x), cur,
                                                 dst);
        if (st != MT_OK) {
            mt_free(buf);
            return st;
        }
        cur = dst;
    }
    mt_free(buf);
    return MT_OK;
}

static mt_status block_jvp(mt_op *op, const float *w, int n, const float *x, const float *v,
                           float *vy, int in_weights)
{
    block_priv *p = op->priv;
    mt_op *c0 = p->children[0];
    float *t = NULL;
    mt_status st;

    MT_CHECK(forward_inner(op, w, n, x));
    if (p->n_children == 1)
        return in_weights ? c0->vt->jvp_w(c0, w, n, x, v, vy) : c0->vt->jvp_x(c0, w, n, x, v, vy);
    MT_CHECK(mt_alloc_checked((void **)&t, (size_t)n * mt_shape_size(c0->out) * sizeof(float),
                              "block tangent"));
    st = in_weights ? c0->vt->jvp_w(c0, w, n, x, v, t) : c0->vt->jvp_x(c0, w, n, x, v, t);
    if (st == MT_OK)
        st = push_tangent(op, n, x, t, vy);
    mt_free(t);
    return st;
}

static mt_status block_jvp_x(mt_op *op, const float *w, int n, const float *x, const float *vx,
                             float *vy)
{
    return block_jvp(op, w, n, x, vx, vy, 0);
}

static mt_status block_jvp_w(mt_op *op, const float *w, int n, const float *x, const float *vw,
                             float *vy)
{
    return block_jvp(op, w, n, x, vw, vy, 1);
}

static mt_status block_init(mt_op *op, mt_rng *rng, float *w)
{
    mt_op *c0 = ((block_priv *)op->priv)->children[0];
    return c0->vt->init(c0, rng, w);
}

static void block_destroy(mt_op *op)
{
    block_priv *p = op->priv;
    if (!p)
        return;
    for (int i = 0; i < p->n_children; i++) {
        mt_free(p->act[i]);
        mt_op_destroy(&p->children[i]);
    }
    mt_op_destroy_plain(op);
}

static const mt_op_vtable block_vtable = {
    .kind = "block",
    .forward = block_forward,
    .vjp_x = block_vjp_x,
    .vjp_w = block_vjp_w,
    .jvp_x = block_jvp_x,
    .jvp_w = block_jvp_w,
    .init = block_init,
    .destroy = block_destroy,
};

mt_status mt_op_block_create(mt_op **children, int n_children, mt_op **op)
{
    block_priv *p;
    mt_op *c0 = children[0];

    if (n_children < 1 || n_children > 4)
        return MT_FAIL(MT_ERR_ARG, "a block holds 1 to 4 ops, not %d", n_children);
    for (int i = 1; i < n_children; i++)
        if (children[i]->n_params > 0)
            return MT_FAIL(MT_ERR_ARG, "block %s: only its first op may have parameters",
                           c0->name);
    MT_CHECK(mt_op_alloc(&block_vtable, c0->name, c0->in, children[n_children - 1]->out,
                         sizeof(block_priv), op));
    p = (*op)->priv;
    p->n_children = n_children;
    for (int i = 0; i < n_children; i++) {
        p->children[i] = children[i];
        (*op)->flops += children[i]->flops;
        children[i] = NULL;
    }
    (*op)->n_params = c0->n_params;
    (*op)->n_tensors = c0->n_tensors;
    memcpy((*op)->tensors, c0->tensors, sizeof c0->tensors);
    (*op)->is_affine = 0;
    return MT_OK;
}
