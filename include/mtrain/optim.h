/*
 * optim.h - turn directions g into steps, PyTorch's update rules.
 *
 *   plain  w <- w - lr g, no state (lr = 1: the Moreau gradient descent;
 *          torch.optim.SGD with momentum 0)
 *   sgd    b <- mu b + g (b = g at the first step);  w <- w - lr b,
 *          Nesterov: w <- w - lr (g + mu b)
 *   adam   m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
 *          w <- w - lr/(1-b1^k) m / (sqrt(v)/sqrt(1-b2^k) + eps)
 * Weight decay is not applied here: the oracle puts it into g (or, for gd,
 * leaves it to mt_optim_step_decayed).
 * Updates are elementwise, so the result is the same whatever the threads.
 */
#ifndef MTRAIN_OPTIM_H
#define MTRAIN_OPTIM_H

#include "mtrain/core.h"

typedef enum { MT_OPTIM_PLAIN = 0, MT_OPTIM_SGD, MT_OPTIM_ADAM } mt_optim_kind;

typedef struct {
    mt_optim_kind kind;
    double lr;
    double momentum;  /* sgd */
    int nesterov;     /* sgd */
    double beta1, beta2, eps; /* adam */
} mt_optim_config;

typedef struct {
    mt_optim_config cfg;
    size_t n;
    long steps;      /* updates done so far (k) */
    int n_states;    /* 0 plain, 1 sgd, 2 adam */
    float *state[2]; /* [n] each: momentum_buffer | exp_avg, exp_avg_sq */
} mt_optim;

const char *mt_optim_name(mt_optim_kind kind);
/* PyTorch's name of state buffer i ("momentum_buffer", "exp_avg", "exp_avg_sq"). */
const char *mt_optim_state_name(const mt_optim *opt, int i);

mt_status mt_optim_create(const mt_optim_config *cfg, size_t n, mt_optim **opt);
void mt_optim_destroy(mt_optim **opt);
/* One update of w[0..n) by direction g[0..n); returns 1 when every updated
 * w is finite, 0 when one is inf or NaN. */
int mt_optim_step(mt_optim *opt, float *w, const float *g);
/* mt_optim_step along g + wd w, stored into g first (the direction a
 * gradient oracle gives with weight decay): the bits of adding the decay in
 * a pass of its own, with one pass over memory instead of two. */
int mt_optim_step_decayed(mt_optim *opt, float *w, float *g, float wd);

#endif
