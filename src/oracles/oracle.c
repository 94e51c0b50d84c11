/*
 * oracle.c - the per-op backward rules of the oracles (ALGORITHMS.md
 * section 4). The pipeline calls mt_oracle_output once per micro-batch at
 * the end of the chain, mt_oracle_input for every op from the top down, and
 * mt_oracle_weights once per op with the whole mini-batch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mtrain/oracle.h"

const char *mt_oracle_name(mt_oracle_kind kind)
{
    static const char *const names[] = {"gd", "penalized"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

mt_status mt_inner_parse(const char *text, mt_inner *inner)
{
    char *end = NULL;
    long k;

    inner->tol = 1e-6;
    inner->residual = 0;
    if (strcmp(text, "closed") == 0) {
        inner->kind = MT_INNER_CLOSED;
        inner->iters = 1;
        return MT_OK;
    }
    if (strncmp(text, "gd:", 3) == 0)
        inner->kind = MT_INNER_GD;
    else if (strncmp(text, "cg:", 3) == 0)
        inner->kind = MT_INNER_CG;
    else
        return MT_FAIL(MT_ERR_ARG, "--inner '%s': expected gd:K, cg:K or closed", text);
    k = strtol(text + 3, &end, 10);
    if (end == text + 3 || *end != '\0' || k < 1 || k > 10000)
        return MT_FAIL(MT_ERR_ARG, "--inner '%s': K must be an integer in 1..10000", text);
    inner->iters = (int)k;
    return MT_OK;
}

void mt_inner_format(const mt_inner *inner, char *buf, size_t cap)
{
    if (inner->kind == MT_INNER_CLOSED)
        snprintf(buf, cap, "closed");
    else
        snprintf(buf, cap, "%s:%d", inner->kind == MT_INNER_GD ? "gd" : "cg", inner->iters);
}

mt_status mt_oracle_output(const mt_oracle_config *cfg, mt_loss *loss, int n, int n_total,
                           const float *xT, const void *targets, float *lambda,
                           mt_solve_report *rep, mt_arena *ws)
{
    const size_t size = (size_t)n * mt_shape_size(loss->in);
    (void)ws;

    if (rep)
        rep->iterations = 0, rep->residual = 0.0;
    MT_CHECK(loss->vt->grad(loss, n, n_total, xT, targets, lambda));
    if (cfg->kind == MT_ORACLE_GD)
        return MT_OK;

    /* M_sigma(h)(x_T): gd:K from y = 0 with step 1 gives sigma grad h for
     * K = 1; every other solver minimises exactly (Newton). */
    if (cfg->inner.kind == MT_INNER_GD && cfg->inner.iters == 1) {
        const float sigma = (float)cfg->sigma;
        for (size_t i = 0; i < size; i++)
            lambda[i] *= sigma;
        return MT_OK;
    }
    return loss->vt->prox(loss, cfg->sigma, n, n_total, xT, targets, 1e-7, lambda, rep);
}

mt_status mt_oracle_input(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                          const float *x, const float *fx, const float *lambda,
                          float *lambda_in, mt_solve_report *rep, mt_arena *ws)
{
    mt_subproblem sp = {MT_SUB_A, cfg->sigma * cfg->kappa, 0.0};

    if (cfg->kind == MT_ORACLE_GD) {
        if (rep)
            rep->iterations = 1, rep->residual = 0.0;
        return op->vt->vjp_x(op, w, n, x, lambda, lambda_in);
    }
    return mt_solve_input(&cfg->inner, &sp, op, w, n, x, fx, lambda, lambda_in, rep, ws);
}

mt_status mt_oracle_weights(const mt_oracle_config *cfg, mt_op *op, const float *w, int n,
                            const float *x, const float *fx, const float *lambda, float *g,
                            mt_solve_report *rep, mt_arena *ws)
{
    mt_subproblem sp = {MT_SUB_A, cfg->gamma * cfg->kappa, cfg->gamma * cfg->wd};

    if (cfg->kind == MT_ORACLE_GD) {
        const float wd = (float)cfg->wd;
        if (rep)
            rep->iterations = 1, rep->residual = 0.0;
        MT_CHECK(op->vt->vjp_w(op, w, n, x, lambda, g));
        if (wd != 0.0f)
            for (size_t i = 0; i < op->n_params; i++)
                g[i] += wd * w[i];
        return MT_OK;
    }
    return mt_solve_weights(&cfg->inner, &sp, op, w, n, x, fx, lambda, g, rep, ws);
}
