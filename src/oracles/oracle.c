/*
 * oracle.c - the per-op backward rules of the oracles (ALGORITHMS.md
 * section 4) and the choice of inner solver per op kind. The pipeline calls
 * mt_oracle_output once per micro-batch at the end of the chain,
 * mt_oracle_input for every op from the top down, and mt_oracle_weights once
 * per op with the whole mini-batch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/oracle.h"

static const char *const oracle_names[MT_ORACLE_COUNT] = {"gd", "penalized", "moreau",
                                                          "proxprop", "dtp"};

const char *mt_oracle_name(mt_oracle_kind kind)
{
    return (unsigned)kind < MT_ORACLE_COUNT ? oracle_names[kind] : "?";
}

mt_status mt_oracle_parse(const char *text, mt_oracle_kind *kind)
{
    for (int k = 0; k < MT_ORACLE_COUNT; k++)
        if (strcmp(text, oracle_names[k]) == 0) {
            *kind = (mt_oracle_kind)k;
            return MT_OK;
        }
    return MT_FAIL(MT_ERR_ARG, "--oracle '%s': expected gd, penalized, moreau, proxprop or dtp",
                   text);
}

/* ---- inner solvers ------------------------------------------------------ */

mt_status mt_inner_parse(const char *text, mt_inner *inner)
{
    char *end = NULL;
    long k;

    inner->tol = 1e-6;
    inner->residual = 0;
    inner->iters = 1;
    if (strcmp(text, "closed") == 0 || strcmp(text, "qn") == 0) {
        inner->kind = text[0] == 'c' ? MT_INNER_CLOSED : MT_INNER_QN;
        return MT_OK;
    }
    if (strncmp(text, "gd:", 3) == 0)
        inner->kind = MT_INNER_GD;
    else if (strncmp(text, "cg:", 3) == 0)
        inner->kind = MT_INNER_CG;
    else
        return MT_FAIL(MT_ERR_ARG, "--inner '%s': expected gd:K, cg:K, qn or closed", text);
    k = strtol(text + 3, &end, 10);
    if (end == text + 3 || *end != '\0' || k < 1 || k > 10000)
        return MT_FAIL(MT_ERR_ARG, "--inner '%s': K must be an integer in 1..10000", text);
    inner->iters = (int)k;
    return MT_OK;
}

static int known_kind(const char *kind)
{
    static const char *const kinds[] = {"dense", "conv2d", "relu", "avgpool", "gap",
                                        "flatten", "pendulum", "block", "loss"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kind, kinds[i]) == 0)
            return 1;
    return 0;
}

/* One item of --inner: "SOLVER" or "KIND=SOLVER". */
static mt_status parse_rule(const char *item, mt_oracle_config *cfg)
{
    const char *eq = strchr(item, '=');
    mt_inner inner;

    MT_CHECK(mt_inner_parse(eq ? eq + 1 : item, &inner));
    if (!eq) {
        cfg->fallback = inner;
        cfg->fallback_set = 1;
        return MT_OK;
    }
    if (eq - item >= 16 || cfg->n_rules == MT_INNER_MAX_RULES)
        return MT_FAIL(MT_ERR_ARG, "--inner item '%s' is too long or there are too many", item);
    mt_inner_rule *r = &cfg->rules[cfg->n_rules];
    memcpy(r->kind, item, (size_t)(eq - item));
    r->kind[eq - item] = '\0';
    if (!known_kind(r->kind))
        return MT_FAIL(MT_ERR_ARG, "--inner '%s': unknown op kind '%s' (expected dense, conv2d, "
                       "relu, avgpool, gap, pendulum, block or loss)", item, r->kind);
    r->inner = inner;
    cfg->n_rules++;
    return MT_OK;
}

mt_status mt_inner_parse_rules(const char *text, mt_oracle_config *cfg)
{
    char buf[256];
    char *save = NULL;

    cfg->n_rules = 0;
    cfg->fallback_set = 0;
    if (strlen(text) >= sizeof buf || text[0] == '\0')
        return MT_FAIL(MT_ERR_ARG, "--inner: expected a non-empty value under 256 characters");
    snprintf(buf, sizeof buf, "%s", text);
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save))
        MT_CHECK(parse_rule(item, cfg));
    if (cfg->n_rules == 0 && !cfg->fallback_set)
        return MT_FAIL(MT_ERR_ARG, "--inner '%s': expected SOLVER or KIND=SOLVER,... "
                       "(SOLVER gd:K, cg:K, qn or closed)", text);
    return MT_OK;
}

void mt_inner_format(const mt_inner *inner, char *buf, size_t cap)
{
    if (inner->kind == MT_INNER_CLOSED || inner->kind == MT_INNER_QN)
        snprintf(buf, cap, "%s", inner->kind == MT_INNER_QN ? "qn" : "closed");
    else
        snprintf(buf, cap, "%s:%d", inner->kind == MT_INNER_GD ? "gd" : "cg", inner->iters);
}

static const mt_inner *rule_for(const mt_oracle_config *cfg, const char *kind)
{
    for (int i = 0; i < cfg->n_rules; i++)
        if (strcmp(cfg->rules[i].kind, kind) == 0)
            return &cfg->rules[i].inner;
    return cfg->fallback_set ? &cfg->fallback : NULL;
}

mt_inner mt_oracle_inner_for(const mt_oracle_config *cfg, const mt_op *op)
{
    const mt_inner *r = rule_for(cfg, op->vt->kind);
    mt_inner def = {MT_INNER_CG, 3, 1e-6, 0};

    if (r)
        return *r;
    if (op->vt->solve_x || op->vt->solve_w)
        def.kind = MT_INNER_CLOSED;
    return def;
}

mt_status mt_oracle_check(const mt_oracle_config *cfg, mt_op *const *ops, int n_ops)
{
    for (int t = 0; t < n_ops; t++) {
        const mt_op *op = ops[t];
        mt_inner in = mt_oracle_inner_for(cfg, op);
        int needs_w = op->n_params > 0 && !op->vt->solve_w;
        if (in.kind == MT_INNER_CLOSED && (!op->vt->solve_x || needs_w))
            return MT_FAIL(MT_ERR_ARG, "--inner: %s ops (%s) have no closed-form solver; "
                           "use gd:K, cg:K or qn for them (e.g. --inner %s=cg:3)",
                           op->vt->kind, op->name, op->vt->kind);
    }
    return MT_OK;
}

double mt_oracle_sigma_at(const mt_oracle_config *cfg, int t)
{
    if (cfg->schedule == MT_SIGMA_GEOMETRIC)
        return pow(cfg->sigma, (double)(cfg->n_ops - t));
    return cfg->sigma;
}

/* ---- the rules ---------------------------------------------------------- */

static void report_one(mt_solve_report *rep)
{
    if (rep)
        rep->iterations = 1, rep->residual = 0.0;
}

static void scale(float *v, size_t n, float a)
{
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++)
        v[i] *= a;
}

mt_status mt_oracle_output(const mt_oracle_config *cfg, mt_loss *loss, int n, int n_total,
                           const float *xT, const void *targets, float *lambda,
                           mt_solve_report *rep, mt_arena *ws)
{
    const size_t size = (size_t)n * mt_shape_size(loss->in);
    const mt_inner *r = rule_for(cfg, "loss");
    (void)ws;

    report_one(rep);
    MT_CHECK(loss->vt->grad(loss, n, n_total, xT, targets, lambda));
    switch (cfg->kind) {
    case MT_ORACLE_GD:
    case MT_ORACLE_PROXPROP:
        return MT_OK;
    case MT_ORACLE_DTP:
        scale(lambda, size, (float)cfg->sigma);
        return MT_OK;
    default:
        break;
    }
    /* M_sigma(h)(x_T): one gradient step from y = 0 gives sigma grad h; any
     * other solver minimises it exactly (Newton or closed form). */
    if (r && r->kind == MT_INNER_GD && r->iters == 1) {
        scale(lambda, size, (float)cfg->sigma);
        return MT_OK;
    }
    return loss->vt->prox(loss, cfg->sigma, n, n_total, xT, targets, 1e-7, lambda, rep);
}

/* dtp's input step is the linearised A problem: the closed form is that
 * only where the op is affine; elsewhere "closed" means Gauss-Newton CG,
 * exact in two steps on elementwise ops (J^T J diagonal, two eigenvalues).
 * gd:K and qn are kept as asked (gd:1 is back-propagation). */
static mt_inner dtp_inner(const mt_oracle_config *cfg, const mt_op *op)
{
    mt_inner in = mt_oracle_inner_for(cfg, op);
    if (in.kind == MT_INNER_CLOSED && !op->is_affine)
        in = (mt_inner){MT_INNER_CG, 3, 1e-6, 0};
    return in;
}

mt_status mt_oracle_input(const mt_oracle_config *cfg, int t, mt_op *op, const float *w,
                          int n, const float *x, const float *fx, const float *lambda,
                          float *lambda_in, mt_solve_report *rep, mt_arena *ws)
{
    mt_subproblem sp = {MT_SUB_A, 0.0, 0.0};
    mt_inner in = mt_oracle_inner_for(cfg, op);
    double s_t = mt_oracle_sigma_at(cfg, t);

    switch (cfg->kind) {
    case MT_ORACLE_GD:
    case MT_ORACLE_PROXPROP:
        report_one(rep);
        return op->vt->vjp_x(op, w, n, x, lambda, lambda_in);
    case MT_ORACLE_PENALIZED:
        sp.s = s_t * cfg->kappa;
        break;
    case MT_ORACLE_MOREAU:
        sp.kind = MT_SUB_M;
        sp.s = s_t;
        break;
    case MT_ORACLE_DTP:
        sp.s = 1.0 / cfg->dtp_rho;
        in = dtp_inner(cfg, op);
        break;
    default:
        return MT_FAIL(MT_ERR_STATE, "unknown oracle %d", (int)cfg->kind);
    }
    return mt_solve_input(&in, &sp, op, w, n, x, fx, lambda, lambda_in, rep, ws);
}

/* The gradient oracles' factor a of g = a (J_w^T lambda + wd w); 0 for the
 * oracles whose weight rule is a subproblem. */
static double gradient_factor(const mt_oracle_config *cfg)
{
    return cfg->kind == MT_ORACLE_GD ? 1.0 : cfg->kind == MT_ORACLE_DTP ? cfg->gamma : 0.0;
}

/* g <- a (g + wd w), g = J_w^T lambda on entry. */
static void finish_gradient(const mt_oracle_config *cfg, double a, const mt_op *op,
                            const float *w, float *g)
{
    const float wd = (float)cfg->wd, af = (float)a;

    if ((wd == 0.0f || (cfg->kind == MT_ORACLE_GD && cfg->decay_by_caller)) && a == 1.0)
        return;
    /* one threaded pass over the parameters (20M on mlp: a serial loop cost
     * about 12 ms a step); elementwise, so the threads do not change it */
    if (wd == 0.0f) {
        scale(g, op->n_params, af);
        return;
    }
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < op->n_params; i++)
        g[i] = (g[i] + wd * w[i]) * af;
}

/* g = a (J_w^T lambda + wd w): back-propagation's weight rule, scaled. */
static mt_status gradient_rule(const mt_oracle_config *cfg, double a, mt_op *op,
                               const float *w, int n, const float *x, const float *lambda,
                               float *g, mt_solve_report *rep)
{
    report_one(rep);
    MT_CHECK(op->vt->vjp_w(op, w, n, x, lambda, g));
    finish_gradient(cfg, a, op, w, g);
    return MT_OK;
}

int mt_oracle_weights_in_parts(const mt_oracle_config *cfg, const mt_op *op)
{
    return gradient_factor(cfg) != 0.0 && op->n_params > 0 && op->vt->vjp_w_part != NULL;
}

mt_status mt_oracle_weights_part(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                                 const float *x, const float *lambda, float *g, int part,
                                 mt_solve_report *rep)
{
    if (!mt_oracle_weights_in_parts(cfg, op))
        return MT_FAIL(MT_ERR_STATE, "op '%s': the %s oracle's weights cannot be taken in parts",
                       op->name, mt_oracle_name(cfg->kind));
    MT_CHECK(op->vt->vjp_w_part(op, w, n, x, lambda, g, part));
    if (part & MT_PART_LAST) {
        report_one(rep);
        finish_gradient(cfg, gradient_factor(cfg), op, w, g);
    }
    return MT_OK;
}

mt_status mt_oracle_weights(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                            const float *x, const float *fx, const float *lambda, float *g,
                            mt_solve_report *rep, mt_arena *ws)
{
    mt_subproblem sp = {MT_SUB_A, 0.0, 0.0};
    mt_inner in = mt_oracle_inner_for(cfg, op);

    switch (cfg->kind) {
    case MT_ORACLE_GD:
        return gradient_rule(cfg, 1.0, op, w, n, x, lambda, g, rep);
    case MT_ORACLE_DTP:
        return gradient_rule(cfg, cfg->gamma, op, w, n, x, lambda, g, rep);
    case MT_ORACLE_PENALIZED:
        sp.s = cfg->gamma * cfg->kappa;
        sp.decay = cfg->gamma * cfg->wd;
        break;
    case MT_ORACLE_MOREAU:
        sp.kind = MT_SUB_M;
        sp.s = cfg->gamma;
        sp.decay = cfg->gamma * cfg->wd;
        break;
    case MT_ORACLE_PROXPROP:
        sp.s = cfg->prox_tau;
        sp.decay = cfg->prox_tau * cfg->wd;
        break;
    default:
        return MT_FAIL(MT_ERR_STATE, "unknown oracle %d", (int)cfg->kind);
    }
    return mt_solve_weights(&in, &sp, op, w, n, x, fx, lambda, g, rep, ws);
}
