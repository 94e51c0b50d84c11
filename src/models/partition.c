/*
 * partition.c - cut a chain into S contiguous stages with at least one op
 * with parameters each, minimising the largest stage cost (dynamic
 * programming over cut points, O(S T^2); T is at most a few hundred ops).
 */
#include <float.h>
#include <stdlib.h>

#include "mtrain/model.h"

/* prefix[t] = cost of ops [0, t); params[t] = ops with parameters in [0, t). */
typedef struct {
    double *prefix;
    int *params;
} chain_sums;

static int segment_ok(const chain_sums *cs, int i, int j)
{
    return j > i && cs->params[j] - cs->params[i] > 0;
}

static double segment_cost(const chain_sums *cs, int i, int j)
{
    return cs->prefix[j] - cs->prefix[i];
}

mt_status mt_model_partition(const mt_model *model, int n_stages, int *first)
{
    const int T = model->n_ops, S = n_stages;
    int n_param_ops = mt_model_n_param_ops(model);
    chain_sums cs;
    double *best;
    int *arg;

    if (S < 1 || S > n_param_ops)
        return MT_FAIL(MT_ERR_ARG,
                       "%d pipeline stages (ranks) for net '%s', which has %d ops with "
                       "parameters: use between 1 and %d ranks",
                       S, model->net, n_param_ops, n_param_ops);
    cs.prefix = calloc((size_t)T + 1, sizeof(double));
    cs.params = calloc((size_t)T + 1, sizeof(int));
    best = malloc(sizeof(double) * (size_t)(S + 1) * (size_t)(T + 1));
    arg = calloc((size_t)(S + 1) * (size_t)(T + 1), sizeof(int));
    if (!cs.prefix || !cs.params || !best || !arg) {
        free(cs.prefix), free(cs.params), free(best), free(arg);
        return MT_FAIL(MT_ERR_MEM, "out of memory partitioning the model");
    }
    for (int t = 0; t < T; t++) {
        cs.prefix[t + 1] = cs.prefix[t] + mt_model_op_cost(model, t);
        cs.params[t + 1] = cs.params[t] + (model->ops[t]->n_params > 0);
    }

    /* best[s][j]: smallest largest-stage cost of ops [0, j) cut into s stages. */
#define BEST(s, j) best[(size_t)(s) * (size_t)(T + 1) + (size_t)(j)]
#define ARG(s, j) arg[(size_t)(s) * (size_t)(T + 1) + (size_t)(j)]
    for (int s = 0; s <= S; s++)
        for (int j = 0; j <= T; j++)
            BEST(s, j) = DBL_MAX;
    BEST(0, 0) = 0.0;
    for (int s = 1; s <= S; s++)
        for (int j = 1; j <= T; j++)
            for (int i = s - 1; i < j; i++) {
                if (BEST(s - 1, i) == DBL_MAX || !segment_ok(&cs, i, j))
                    continue;
                double c = segment_cost(&cs, i, j);
                double worst = c > BEST(s - 1, i) ? c : BEST(s - 1, i);
                if (worst < BEST(s, j)) {
                    BEST(s, j) = worst;
                    ARG(s, j) = i;
                }
            }

    first[S] = T;
    for (int s = S; s >= 1; s--)
        first[s - 1] = ARG(s, first[s]);
#undef BEST
#undef ARG
    free(cs.prefix), free(cs.params), free(best), free(arg);
    return MT_OK;
}
