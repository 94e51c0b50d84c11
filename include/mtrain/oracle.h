/*
 * oracle.h - the backward rules of ALGORITHMS.md section 4, one op at a time.
 *
 * An oracle turns the forward states into a direction g_t for every op with
 * parameters, through adjoints lambda_t travelling from the loss down the
 * chain:
 *   gd         lambda_T = grad h;  lambda_{t-1} = J_x^T lambda_t;
 *              g_t = J_w^T lambda_t + wd w_t                  (back-propagation)
 *   penalized  lambda_T = M_sigma(h)(x_T);                     (Algo 4)
 *              lambda_{t-1} = A_{sigma kappa}(phi_t(w_t, .))(x_{t-1}, lambda_t)
 *              g_t = A_{gamma kappa}(phi_t(., x_{t-1}))(w_t, lambda_t) with the
 *              proximal decay term gamma wd ||w_t - v||^2
 * The functions here never call MPI: pipeline/ moves lambdas between ranks.
 *
 * Inner solvers for the subproblems (--inner): gd:K (K gradient steps from
 * y = 0, step 1 for M and 1/2 for A problems, halved when a step would raise
 * the objective), cg:K (Gauss-Newton conjugate gradient with jvp/vjp, exact
 * for affine ops), closed (the op's exact solver where it has one).
 *
 * Scratch memory comes from the caller's arena `ws` (rewound before return).
 * Per-sample problems are solved with per-sample step sizes, so the result
 * for a sample does not depend on the other samples of its micro-batch.
 */
#ifndef MTRAIN_ORACLE_H
#define MTRAIN_ORACLE_H

#include "mtrain/loss.h"
#include "mtrain/op.h"

typedef enum {
    MT_ORACLE_GD = 0,
    MT_ORACLE_PENALIZED,
} mt_oracle_kind;

typedef enum { MT_INNER_GD = 0, MT_INNER_CG, MT_INNER_CLOSED } mt_inner_kind;

typedef struct {
    mt_inner_kind kind;
    int iters;        /* K for gd:K and cg:K */
    double tol;       /* relative residual at which cg stops early */
    int residual;     /* also compute the final residual of gd:K (one more
                         product; cg's comes for free) */
} mt_inner;

typedef struct {
    mt_oracle_kind kind;
    double kappa, sigma, gamma;
    double wd;        /* weight decay */
    mt_inner inner;   /* solver of every input and weight subproblem */
} mt_oracle_config;

const char *mt_oracle_name(mt_oracle_kind kind);
/* Parse "gd:K", "cg:K" or "closed" (K >= 1). */
mt_status mt_inner_parse(const char *text, mt_inner *inner);
/* Format an inner solver as text ("cg:3"). */
void mt_inner_format(const mt_inner *inner, char *buf, size_t cap);

/* lambda_T for the micro-batch x_T[n][out] of a mini-batch of n_total. */
mt_status mt_oracle_output(const mt_oracle_config *cfg, mt_loss *loss, int n, int n_total,
                           const float *xT, const void *targets, float *lambda,
                           mt_solve_report *rep, mt_arena *ws);

/* lambda_{t-1}[n][in] from lambda_t[n][out]; x = x_{t-1}, fx = phi_t(w, x). */
mt_status mt_oracle_input(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                          const float *x, const float *fx, const float *lambda,
                          float *lambda_in, mt_solve_report *rep, mt_arena *ws);

/* g_t[n_params] from the whole mini-batch (n samples). */
mt_status mt_oracle_weights(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                            const float *x, const float *fx, const float *lambda, float *g,
                            mt_solve_report *rep, mt_arena *ws);

/* Generic subproblem solvers over an op's input (per sample) or weights. */
mt_status mt_solve_input(const mt_inner *inner, const mt_subproblem *sp, mt_op *op,
                         const float *w, int n, const float *x, const float *fx,
                         const float *lambda, float *y, mt_solve_report *rep, mt_arena *ws);
mt_status mt_solve_weights(const mt_inner *inner, const mt_subproblem *sp, mt_op *op,
                           const float *w, int n, const float *x, const float *fx,
                           const float *lambda, float *y, mt_solve_report *rep, mt_arena *ws);

#endif
