/*
 * op.h - one elementary operation x_t = phi_t(w_t, x_{t-1}) of a chain.
 *
 * Every op kind (dense, conv2d, relu, avgpool, gap, flatten, pendulum step,
 * ...) lives in one file under src/ops/ behind the vtable below. The rules
 * take the weights `w` explicitly (not op->w) because the inner solvers
 * evaluate the op at displaced weights w - v.
 *
 * Layout: a batch of n samples is a dense float array [n][in_size] (NCHW for
 * images); outputs are [n][out_size]. The op's parameters are one contiguous
 * float block of n_params: its tensors in order (weight, then bias), each in
 * PyTorch's layout (dense [out][in], conv [out][in][kh][kw]).
 *
 * Determinism contract (see MT_BLOCK in core.h): for any n, the values
 * computed for sample i depend only on sample i's data and on i mod MT_BLOCK
 * (callers pass micro-batches starting at multiples of MT_BLOCK); vjp_w sums
 * over samples in an order fixed by n alone. No result may depend on the
 * number of OpenMP threads. OpenBLAS is only called single-threaded, from
 * inside our OpenMP loops over work units whose shapes are fixed by the op.
 *
 * Ops are not thread safe: one caller at a time (each op parallelises
 * internally with OpenMP). An op may keep private scratch memory, grown on
 * first use for a batch size and reused afterwards.
 */
#ifndef MTRAIN_OP_H
#define MTRAIN_OP_H

#include "mtrain/core.h"

/* Per-sample shape, channels x height x width; vectors are (d, 1, 1). */
typedef struct {
    int c, h, w;
} mt_shape;

static inline size_t mt_shape_size(mt_shape s) { return (size_t)s.c * s.h * s.w; }
static inline mt_shape mt_shape_vec(int d) { mt_shape s = {d, 1, 1}; return s; }

/* One named parameter tensor inside an op's parameter block. */
typedef struct {
    char suffix[16]; /* "weight", "bias", "control" */
    int ndim;
    int dims[4];     /* PyTorch order */
    size_t offset;   /* first element within the op's block */
    size_t n;        /* element count */
} mt_param_tensor;

/* The strongly convex subproblems of ALGORITHMS.md section 3, over y:
 *   MT_SUB_M:  s <lambda, f(z - y)> + ||y||^2 / 2       + decay/2 ||z - y||^2
 *   MT_SUB_A:  s ||f(z - y) - f(z) + lambda||^2 + ||y||^2 + decay ||z - y||^2
 * z is the op's input (input problems) or its weights (weight problems);
 * decay is the proximal weight-decay coefficient (gamma * wd), 0 for inputs. */
typedef enum { MT_SUB_M = 0, MT_SUB_A = 1 } mt_sub_kind;

typedef struct {
    mt_sub_kind kind;
    double s;
    double decay;
} mt_subproblem;

/* What a solver reports back: iterations used and the final residual
 * (norm of the subproblem's gradient, relative to its value at y = 0). */
typedef struct {
    int iterations;
    double residual;
} mt_solve_report;

typedef struct mt_op mt_op;

enum { MT_PART_FIRST = 1, MT_PART_LAST = 2 };

typedef struct {
    const char *kind; /* "dense", "conv2d", ... */

    /* y[n][out] = phi(w, x[n][in]). */
    mt_status (*forward)(mt_op *op, const float *w, int n, const float *x, float *y);
    /* dx[n][in] = J_x(w, x)^T dy, per sample. */
    mt_status (*vjp_x)(mt_op *op, const float *w, int n, const float *x, const float *dy,
                       float *dx);
    /* dw[n_params] = sum_i J_w(w, x_i)^T dy_i (overwrites dw). NULL without params. */
    mt_status (*vjp_w)(mt_op *op, const float *w, int n, const float *x, const float *dy,
                       float *dw);
    /* vy[n][out] = J_x(w, x) vx, per sample. */
    mt_status (*jvp_x)(mt_op *op, const float *w, int n, const float *x, const float *vx,
                       float *vy);
    /* vy[n][out] = J_w(w, x_i) vw for every sample. NULL without params. */
    mt_status (*jvp_w)(mt_op *op, const float *w, int n, const float *x, const float *vw,
                       float *vy);
    /* Fill w[n_params] with the op's default initialisation (PyTorch's
     * defaults for dense/conv), drawing from `rng` only. */
    mt_status (*init)(mt_op *op, mt_rng *rng, float *w);

    /* Optional exact solvers (NULL when the op has none). fx = phi(w, x) as
     * stored by the forward pass, lambda[n][out]; the solution y has the
     * shape of x (solve_x, per sample) or of w (solve_w, whole batch). */
    mt_status (*solve_x)(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                         const float *x, const float *fx, const float *lambda, float *y,
                         mt_solve_report *rep);
    mt_status (*solve_w)(mt_op *op, const mt_subproblem *sp, const float *w, int n,
                         const float *x, const float *fx, const float *lambda, float *y,
                         mt_solve_report *rep);

    /* Free op->priv and scratch (not the op itself). */
    void (*destroy)(mt_op *op);

    /* Optional (NULL when not offered): vjp_w over the samples of several
     * consecutive calls, bit for bit vjp_w over all of them, so that a
     * pipeline can take each micro-batch's share as soon as its dy arrives.
     * part & MT_PART_FIRST: the first slice (starts the sum); part &
     * MT_PART_LAST: the last (completes dw). dw holds partial sums in
     * between and must be left alone; one sum at a time per op. */
    mt_status (*vjp_w_part)(mt_op *op, const float *w, int n, const float *x, const float *dy,
                            float *dw, int part);
} mt_op_vtable;

#define MT_OP_MAX_TENSORS 2

struct mt_op {
    const mt_op_vtable *vt;
    char name[48];          /* state_dict prefix, e.g. "features.0" */
    mt_shape in, out;       /* per-sample shapes */
    size_t n_params;        /* total parameters (0 for relu, pooling, ...) */
    int n_tensors;
    mt_param_tensor tensors[MT_OP_MAX_TENSORS];
    double flops;           /* forward multiply-adds x 2 per sample */
    int is_affine;          /* phi is affine in x (dense, conv, pooling, flatten) */
    void *priv;             /* kind-specific state */
};

/* Constructors. Each returns a heap op in *out (free with mt_op_destroy) or
 * fails with MT_ERR_ARG naming the bad dimension. */
mt_status mt_op_dense_create(const char *name, int in, int out, mt_op **op);
mt_status mt_op_conv2d_create(const char *name, mt_shape in, int out_channels, int kernel,
                              int stride, int pad, mt_op **op);
mt_status mt_op_relu_create(const char *name, mt_shape in, mt_op **op);
/* Non-overlapping average pooling, window = stride = k; trailing rows and
 * columns that do not fill a window are dropped (PyTorch's floor mode). */
mt_status mt_op_avgpool_create(const char *name, mt_shape in, int k, mt_op **op);
/* Global average pooling: (c, h, w) -> (c, 1, 1). */
mt_status mt_op_gap_create(const char *name, mt_shape in, mt_op **op);
/* Reshape (c, h, w) -> (c*h*w, 1, 1); the identity on memory. */
mt_status mt_op_flatten_create(const char *name, mt_shape in, mt_op **op);

/* A layer as one op (--granularity layer): children[0] (the only one with
 * parameters) followed by up to 3 ops without; the block takes the first
 * child's name and tensors and owns the children (the entries of `children`
 * are set to NULL). Kind "block"; solved by the generic inner solvers. */
mt_status mt_op_block_create(mt_op **children, int n_children, mt_op **op);

void mt_op_destroy(mt_op **op);

#endif
