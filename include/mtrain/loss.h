/*
 * loss.h - the loss h(x_T) at the end of a chain.
 *
 * h is the mean over the mini-batch of a per-sample loss, h = (1/N) sum_i l_i.
 * A pipeline stage sees one micro-batch at a time, so every function takes
 * the micro-batch's n samples and the whole mini-batch's size N, and works
 * per sample (results for sample i depend only on sample i).
 *
 * Targets: int32 class labels for cross-entropy, float vectors of the
 * output's size for the squared loss (NULL for losses with a fixed target).
 */
#ifndef MTRAIN_LOSS_H
#define MTRAIN_LOSS_H

#include "mtrain/core.h"
#include "mtrain/op.h"

typedef struct mt_loss mt_loss;

typedef struct {
    const char *kind;
    /* Per-sample loss l_i and, when `correct` is not NULL, 1 if the arg-max
     * of x_i equals its label (0 otherwise; losses without classes write 0). */
    mt_status (*value)(mt_loss *loss, int n, const float *x, const void *targets,
                       float *l, int *correct);
    /* g_i = grad of l_i / N, i.e. the rows of grad h. */
    mt_status (*grad)(mt_loss *loss, int n, int n_total, const float *x, const void *targets,
                      float *g);
    /* y_i = argmin_y s l_i(x_i - y) / N + ||y||^2 / 2 (the rows of M_s(h)(x)),
     * exactly (Newton or closed form) to relative residual `tol`. */
    mt_status (*prox)(mt_loss *loss, double s, int n, int n_total, const float *x,
                      const void *targets, double tol, float *y, mt_solve_report *rep);
    void (*destroy)(mt_loss *loss);
} mt_loss_vtable;

struct mt_loss {
    const mt_loss_vtable *vt;
    mt_shape in;       /* per-sample input shape (the chain's output) */
    int n_classes;     /* classes for classification losses, else 0 */
    void *priv;
};

/* Softmax cross-entropy over in.c = classes logits, int32 labels. */
mt_status mt_loss_xent_create(int n_classes, mt_loss **loss);
/* l_i = ||x_i - t_i||^2 / 2, float targets of the same shape. */
mt_status mt_loss_square_create(mt_shape in, mt_loss **loss);
void mt_loss_destroy(mt_loss **loss);

#endif
