/*
 * oracle.h - the backward rules of ALGORITHMS.md section 4, one op at a time.
 *
 * An oracle turns the forward states into a direction g_t for every op with
 * parameters, through adjoints lambda_t travelling from the loss down the
 * chain (s_t is sigma, or sigma^(T-t+1) with the geometric schedule):
 *   gd         lambda_T = grad h;  lambda_{t-1} = J_x^T lambda_t;
 *              g_t = J_w^T lambda_t + wd w_t                  (back-propagation)
 *   penalized  lambda_T = M_sigma(h)(x_T);                     (Algo 4)
 *              lambda_{t-1} = A_{s_t kappa}(phi_t(w_t, .))(x_{t-1}, lambda_t)
 *              g_t = A_{gamma kappa}(phi_t(., x_{t-1}))(w_t, lambda_t) with the
 *              proximal decay term gamma wd ||w_t - v||^2
 *   moreau     mu_T = M_sigma(h)(x_T);                         (Algo 3, rescaled)
 *              mu_{t-1} = M_{s_t}(phi_t(w_t, .))(x_{t-1}, mu_t)
 *              g_t = M_gamma(phi_t(., x_{t-1}))(w_t, mu_t) + decay gamma wd/2 ||w_t - v||^2
 *   proxprop   gradients back-propagated as in gd; each op with parameters
 *              takes the proximal step g_t = A_tau(phi_t(., x_{t-1}))(w_t, delta_t)
 *              with decay tau wd (Frerix et al. 2018), tau = --prox-tau
 *   dtp        lambda_T = sigma grad h;  lambda_{t-1} = (J^T J + rho I)^{-1} J^T lambda_t,
 *              the Gauss-Newton (linearised) A step with s = 1/rho;
 *              g_t = gamma (J_w^T lambda_t + wd w_t)
 * The functions here never call MPI: pipeline/ moves lambdas between ranks.
 *
 * Inner solvers for the subproblems (--inner), chosen per op kind:
 *   gd:K     K gradient steps from y = 0, step 1 (M) or 1/2 (A), so that K = 1
 *            is s J^T lambda (back-propagation); for K > 1 a group's step is
 *            halved whenever it would raise that group's objective
 *   cg:K     Gauss-Newton conjugate gradient with jvp/vjp, exact for affine ops
 *   qn       the paper's two steps: a gradient step with a Goldstein line
 *            search, then a Barzilai-Borwein step
 *   closed   the op's exact solver (relu, avgpool, gap, dense, pendulum)
 * The loss's M problem is solved exactly (Newton) unless its rule is gd:1.
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
    MT_ORACLE_MOREAU,
    MT_ORACLE_PROXPROP,
    MT_ORACLE_DTP,
    MT_ORACLE_COUNT
} mt_oracle_kind;

typedef enum { MT_INNER_GD = 0, MT_INNER_CG, MT_INNER_QN, MT_INNER_CLOSED } mt_inner_kind;

typedef struct {
    mt_inner_kind kind;
    int iters;        /* K for gd:K and cg:K */
    double tol;       /* relative residual at which cg stops early */
    int residual;     /* also compute the final residual of gd:K (one more
                         product; cg's comes for free) */
} mt_inner;

/* An inner solver for the ops of one kind ("relu", "conv2d", ...). */
typedef struct {
    char kind[16];
    mt_inner inner;
} mt_inner_rule;

#define MT_INNER_MAX_RULES 12

typedef enum { MT_SIGMA_CONST = 0, MT_SIGMA_GEOMETRIC } mt_sigma_schedule;

typedef struct {
    mt_oracle_kind kind;
    double kappa, sigma, gamma;
    double wd;                  /* weight decay */
    int decay_by_caller;        /* gd: directions leave out wd w, which the caller
                                   adds in its update (mt_optim_step_decayed) */
    double prox_tau;            /* proxprop */
    double dtp_rho;             /* dtp */
    mt_sigma_schedule schedule;
    int n_ops;                  /* T, for the geometric schedule */
    int n_rules;                /* per-kind solvers; kinds not listed use */
    mt_inner_rule rules[MT_INNER_MAX_RULES];
    mt_inner fallback;          /* ... their default (closed if the op has one) */
    int fallback_set;           /* the fallback was given for every kind */
} mt_oracle_config;

const char *mt_oracle_name(mt_oracle_kind kind);
/* Parse an oracle's name; MT_ERR_ARG naming the allowed values otherwise. */
mt_status mt_oracle_parse(const char *text, mt_oracle_kind *kind);
/* Parse "gd:K", "cg:K", "qn" or "closed" (K >= 1). */
mt_status mt_inner_parse(const char *text, mt_inner *inner);
/* Parse --inner: "SOLVER" for every op kind, or a comma-separated list of
 * "KIND=SOLVER" items (and at most one bare SOLVER for the others). */
mt_status mt_inner_parse_rules(const char *text, mt_oracle_config *cfg);
/* Format an inner solver as text ("cg:3"). */
void mt_inner_format(const mt_inner *inner, char *buf, size_t cap);
/* The solver used for `op`: its rule, else the fallback, else closed when
 * the op has an exact solver, else cg:3. */
mt_inner mt_oracle_inner_for(const mt_oracle_config *cfg, const mt_op *op);
/* Check before any work that every op of the chain can be solved as asked:
 * MT_ERR_ARG naming the op kind when `closed` is asked of an op without an
 * exact solver. */
mt_status mt_oracle_check(const mt_oracle_config *cfg, mt_op *const *ops, int n_ops);
/* s_t of op t (0-based) under the schedule. */
double mt_oracle_sigma_at(const mt_oracle_config *cfg, int t);

/* lambda_T for the micro-batch x_T[n][out] of a mini-batch of n_total. */
mt_status mt_oracle_output(const mt_oracle_config *cfg, mt_loss *loss, int n, int n_total,
                           const float *xT, const void *targets, float *lambda,
                           mt_solve_report *rep, mt_arena *ws);

/* lambda_{t-1}[n][in] from lambda_t[n][out] for op t (0-based);
 * x = x_{t-1}, fx = phi_t(w, x). */
mt_status mt_oracle_input(const mt_oracle_config *cfg, int t, mt_op *op, const float *w,
                          int n, const float *x, const float *fx, const float *lambda,
                          float *lambda_in, mt_solve_report *rep, mt_arena *ws);

/* Whether op's g_t can be taken in parts, micro-batch by micro-batch (the
 * gradient oracles gd and dtp, on ops offering vjp_w_part). */
int mt_oracle_weights_in_parts(const mt_oracle_config *cfg, const mt_op *op);
/* The share of micro-batch x[n], lambda[n] of such a g_t; part as for
 * vjp_w_part (MT_PART_FIRST, MT_PART_LAST). After the last part g equals
 * mt_oracle_weights over the union, bit for bit. */
mt_status mt_oracle_weights_part(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                                 const float *x, const float *lambda, float *g, int part,
                                 mt_solve_report *rep);

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
