/*
 * vec.h - grouped vector arithmetic for the inner solvers (private).
 *
 * A solver variable is G groups of L floats, contiguous: one group per
 * sample for input problems, one group for weight problems. Dot products are
 * summed in double over fixed chunks, then the chunks in order, so a group's
 * result depends neither on the thread count nor on the other groups.
 */
#ifndef MTRAIN_ORACLES_VEC_H
#define MTRAIN_ORACLES_VEC_H

#include <stddef.h>

#include "mtrain/core.h"

/* out[g] = <a_g, b_g>; `partial` has room for mt_vec_n_chunks(G, L) doubles. */
size_t mt_vec_n_chunks(int G, size_t L);
void mt_vec_dot(int G, size_t L, const float *a, const float *b, double *partial, double *out);
/* y_g += alpha[g] * x_g */
void mt_vec_axpy(int G, size_t L, const double *alpha, const float *x, float *y);
/* y_g = x_g + beta[g] * y_g */
void mt_vec_xpby(int G, size_t L, const float *x, const double *beta, float *y);
/* out = a * x + b * y (scalars, elementwise; out may alias x or y) */
void mt_vec_lin(size_t n, float a, const float *x, float b, const float *y, float *out);

#endif
