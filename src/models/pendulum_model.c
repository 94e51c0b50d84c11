/*
 * pendulum_model.c - the pendulum swing-up of ALGORITHMS.md section 8 as a
 * chain of T pendulum steps (one op, one control w_t per time step) ending
 * in the terminal cost. The initial state x_0 is the chain's input.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mtrain/control.h"

mt_status mt_model_build_pendulum(int T, mt_model **out)
{
    mt_model *m;
    mt_status st = MT_OK;

    if (!out)
        return MT_FAIL(MT_ERR_ARG, "pendulum model: NULL output pointer");
    *out = NULL;
    if (T < 1 || T > MT_PENDULUM_MAX_HORIZON)
        return MT_FAIL(MT_ERR_ARG, "pendulum model: horizon %d outside 1..%d", T,
                       MT_PENDULUM_MAX_HORIZON);
    m = calloc(1, sizeof *m);
    if (!m || !(m->ops = calloc((size_t)T, sizeof *m->ops))) {
        free(m);
        return MT_FAIL(MT_ERR_MEM, "out of memory building a pendulum chain of %d steps", T);
    }
    snprintf(m->net, sizeof m->net, "pendulum");
    m->in = mt_shape_vec(2);

    /* op t (0-based) carries w_{t+1}, the paper's 1-based control */
    for (int t = 0; t < T && st == MT_OK; t++) {
        char name[48];
        snprintf(name, sizeof name, "control.%d", t + 1);
        st = mt_op_pendulum_create(name, &m->ops[t]);
        m->n_ops += st == MT_OK;
    }
    if (st == MT_OK)
        st = mt_loss_pendulum_create(&m->loss);
    if (st != MT_OK) {
        mt_error_trace(__FILE__, __LINE__);
        mt_model_destroy(&m);
        return st;
    }
    *out = m;
    return MT_OK;
}
