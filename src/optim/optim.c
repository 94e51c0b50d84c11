/*
 * optim.c - plain, SGD (momentum, Nesterov) and Adam with PyTorch 1.13's
 * update rules (torch.optim.SGD with dampening 0, torch.optim.Adam without
 * amsgrad); plain is torch.optim.SGD with momentum 0. Elementwise, so the
 * result does not depend on the threads. Each pass also tells whether every
 * updated parameter is finite (|w| <= FLT_MAX is false for inf and NaN), so
 * the step-end check needs no pass of its own over the parameters.
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>

#include "mtrain/optim.h"

const char *mt_optim_name(mt_optim_kind kind)
{
    static const char *const names[] = {"plain", "sgd", "adam"};
    return (unsigned)kind < 3 ? names[kind] : "?";
}

const char *mt_optim_state_name(const mt_optim *opt, int i)
{
    if (opt->cfg.kind == MT_OPTIM_SGD)
        return "momentum_buffer";
    return i == 0 ? "exp_avg" : "exp_avg_sq";
}

mt_status mt_optim_create(const mt_optim_config *cfg, size_t n, mt_optim **out)
{
    mt_optim *opt = calloc(1, sizeof *opt);

    if (!opt)
        return MT_FAIL(MT_ERR_MEM, "out of memory for the optimiser");
    opt->cfg = *cfg;
    opt->n = n;
    opt->n_states = cfg->kind == MT_OPTIM_PLAIN ? 0 : cfg->kind == MT_OPTIM_SGD ? 1 : 2;
    for (int i = 0; i < opt->n_states; i++) {
        opt->state[i] = mt_alloc(n * sizeof(float));
        if (!opt->state[i]) {
            mt_optim_destroy(&opt);
            return MT_FAIL(MT_ERR_MEM, "out of memory for optimiser state (%zu floats)", n);
        }
    }
    *out = opt;
    return MT_OK;
}

void mt_optim_destroy(mt_optim **opt)
{
    if (!opt || !*opt)
        return;
    for (int i = 0; i < 2; i++)
        mt_free((*opt)->state[i]);
    free(*opt);
    *opt = NULL;
}

/* w <- w - lr g, no state: SGD without momentum. With lr = 1 (the default
 * for plain) the product is exact, so this is w - g bit for bit. */
/* Entry i of the direction: g[i], or with wd != 0 g[i] + wd w[i], stored
 * back into g (wd = 0 leaves g untouched, so g may then be read-only). */
static inline float direction(float *g, const float *w, size_t i, float wd)
{
    float d;

    if (wd == 0.0f)
        return g[i];
    d = g[i] + wd * w[i];
    g[i] = d;
    return d;
}

static int plain_step(mt_optim *opt, float *w, float *g, float wd)
{
    const float lr = (float)opt->cfg.lr;
    int bad = 0;

    #pragma omp parallel for schedule(static) reduction(|:bad)
    for (size_t i = 0; i < opt->n; i++) {
        w[i] -= lr * direction(g, w, i, wd);
        bad |= !(fabsf(w[i]) <= FLT_MAX);
    }
    return !bad;
}

static int sgd_step(mt_optim *opt, float *w, float *g, float wd)
{
    const float lr = (float)opt->cfg.lr, mu = (float)opt->cfg.momentum;
    float *b = opt->state[0];
    const int first = opt->steps == 0, nesterov = opt->cfg.nesterov;
    int bad = 0;

    #pragma omp parallel for schedule(static) reduction(|:bad)
    for (size_t i = 0; i < opt->n; i++) {
        const float d = direction(g, w, i, wd);
        b[i] = first ? d : mu * b[i] + d;
        w[i] -= lr * (nesterov ? d + mu * b[i] : b[i]);
        bad |= !(fabsf(w[i]) <= FLT_MAX);
    }
    return !bad;
}

static int adam_step(mt_optim *opt, float *w, float *g, float wd)
{
    const double k = (double)(opt->steps + 1);
    const float b1 = (float)opt->cfg.beta1, b2 = (float)opt->cfg.beta2;
    const float step = (float)(opt->cfg.lr / (1.0 - pow(opt->cfg.beta1, k)));
    const float root_c2 = (float)sqrt(1.0 - pow(opt->cfg.beta2, k));
    const float eps = (float)opt->cfg.eps;
    float *m = opt->state[0], *v = opt->state[1];
    int bad = 0;

    #pragma omp parallel for schedule(static) reduction(|:bad)
    for (size_t i = 0; i < opt->n; i++) {
        const float d = direction(g, w, i, wd);
        m[i] = b1 * m[i] + (1.0f - b1) * d;
        v[i] = b2 * v[i] + (1.0f - b2) * d * d;
        w[i] -= step * m[i] / (sqrtf(v[i]) / root_c2 + eps);
        bad |= !(fabsf(w[i]) <= FLT_MAX);
    }
    return !bad;
}

static int step(mt_optim *opt, float *w, float *g, float wd)
{
    int finite = 0;

    switch (opt->cfg.kind) {
    case MT_OPTIM_PLAIN:
        finite = plain_step(opt, w, g, wd);
        break;
    case MT_OPTIM_SGD:
        finite = sgd_step(opt, w, g, wd);
        break;
    case MT_OPTIM_ADAM:
        finite = adam_step(opt, w, g, wd);
        break;
    }
    opt->steps++;
    return finite;
}

int mt_optim_step(mt_optim *opt, float *w, const float *g)
{
    /* wd = 0: the rules only read g */
    return step(opt, w, (float *)g, 0.0f);
}

int mt_optim_step_decayed(mt_optim *opt, float *w, float *g, float wd)
{
    return step(opt, w, g, wd);
}
