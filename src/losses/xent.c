/*
 * xent.c - softmax cross-entropy over C logits with int32 labels:
 *   l_i = logsumexp(x_i) - x_i[label_i]    (max-shifted, in double)
 * Gradient rows (softmax(x_i) - onehot(label_i)) / N. The prox (ALGORITHMS.md
 * section 5) is per sample the C-dimensional strongly convex problem
 *   min_y  phi(y) = c l(x - y) + ||y||^2 / 2,   c = s / N,
 * with gradient g = y - c (p - e), p = softmax(x - y), and Hessian
 * H = I + c (diag p - p p^T), solved by damped Newton in double. H is a
 * diagonal minus a rank-one term, so H d = g is solved by Sherman-Morrison.
 */
#include <math.h>
#include <stdint.h>

#include "loss_impl.h"

enum { XENT_MAX_NEWTON = 50, XENT_MAX_HALVINGS = 40 };

typedef struct {
    mt_scratch work; /* 6 C doubles for the prox */
} xent_priv;

/* p = softmax(z) for z[C]; returns logsumexp(z), shifted by the max. */
static double softmax(int C, const double *z, double *p)
{
    double m = z[0], sum = 0.0;

    for (int j = 1; j < C; j++)
        m = z[j] > m ? z[j] : m;
    for (int j = 0; j < C; j++)
        sum += (p[j] = exp(z[j] - m));
    for (int j = 0; j < C; j++)
        p[j] /= sum;
    return m + log(sum);
}

static mt_status check_labels(const mt_loss *loss, int n, const int32_t *labels)
{
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= loss->n_classes)
            return MT_FAIL(MT_ERR_ARG, "cross-entropy: label %d of sample %d not in [0, %d)",
                           (int)labels[i], i, loss->n_classes);
    return MT_OK;
}

/* Index of the first maximum of x[C]. */
static int argmax_first(int C, const float *x)
{
    int best = 0;
    for (int j = 1; j < C; j++)
        if (x[j] > x[best])
            best = j;
    return best;
}

static mt_status xent_value(mt_loss *loss, int n, const float *x, const void *targets, float *l,
                            int *correct)
{
    const int32_t *labels = targets;
    int C = loss->n_classes;

    MT_CHECK(mt_loss_check_args(loss, n, n, 0.0, x, targets, l));
    MT_CHECK(check_labels(loss, n, labels));
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)C * i;
        double m = xi[0], sum = 0.0;
        for (int j = 1; j < C; j++)
            m = xi[j] > m ? xi[j] : m;
        for (int j = 0; j < C; j++)
            sum += exp((double)xi[j] - m);
        l[i] = (float)(m + log(sum) - xi[labels[i]]);
        if (correct)
            correct[i] = argmax_first(C, xi) == labels[i];
    }
    return MT_OK;
}

static mt_status xent_grad(mt_loss *loss, int n, int n_total, const float *x, const void *targets,
                           float *g)
{
    const int32_t *labels = targets;
    int C = loss->n_classes;
    double *z, *p;
    xent_priv *pr = loss->priv;

    MT_CHECK(mt_loss_check_args(loss, n, n_total, 0.0, x, targets, g));
    MT_CHECK(check_labels(loss, n, labels));
    MT_CHECK(mt_scratch_reserve(&pr->work, sizeof(double) * 6 * C, "cross-entropy work"));
    z = pr->work.p;
    p = z + C;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < C; j++)
            z[j] = x[(size_t)C * i + j];
        softmax(C, z, p);
        for (int j = 0; j < C; j++)
            g[(size_t)C * i + j] = (float)((p[j] - (j == labels[i])) / n_total);
    }
    return MT_OK;
}

/* One sample's subproblem state: x, label, c and work arrays of C. */
typedef struct {
    int C, label;
    double c;
    const float *x;
    double *z, *p, *g, *d, *yt;
} xent_sub;

/* phi(y); leaves p = softmax(x - y) in sub->p. */
static double sub_value(xent_sub *sb, const double *y)
{
    double yy = 0.0;

    for (int j = 0; j < sb->C; j++) {
        sb->z[j] = (double)sb->x[j] - y[j];
        yy += y[j] * y[j];
    }
    return sb->c * (softmax(sb->C, sb->z, sb->p) - sb->z[sb->label]) + 0.5 * yy;
}

/* g = y - c (p - e) with p from the last sub_value(y); returns ||g||. */
static double sub_grad(xent_sub *sb, const double *y)
{
    double nn = 0.0;

    for (int j = 0; j < sb->C; j++) {
        sb->g[j] = y[j] - sb->c * (sb->p[j] - (j == sb->label));
        nn += sb->g[j] * sb->g[j];
    }
    return sqrt(nn);
}

/* d = H^{-1} g, H = D - c p p^T, D = I + c diag p (Sherman-Morrison; the
 * denominator 1 - c sum p_j^2 / D_j > 0 because sum p_j = 1). */
static void sub_newton_dir(xent_sub *sb)
{
    double c = sb->c, pdg = 0.0, pdp = 0.0;

    for (int j = 0; j < sb->C; j++) {
        double dj = 1.0 + c * sb->p[j];
        pdg += sb->p[j] * sb->g[j] / dj;
        pdp += sb->p[j] * sb->p[j] / dj;
    }
    for (int j = 0; j < sb->C; j++)
        sb->d[j] = (sb->g[j] + c * sb->p[j] * pdg / (1.0 - c * pdp)) / (1.0 + c * sb->p[j]);
}

/* Backtracking (Armijo) along -d from y with value f0; y moves to the
 * accepted point, whose value is returned (p is left at that point). */
static double sub_line_search(xent_sub *sb, double *y, double f0)
{
    double gd = 0.0, alpha = 1.0, f = f0;

    for (int j = 0; j < sb->C; j++)
        gd += sb->g[j] * sb->d[j];
    for (int h = 0; h <= XENT_MAX_HALVINGS; h++, alpha *= 0.5) {
        for (int j = 0; j < sb->C; j++)
            sb->yt[j] = y[j] - alpha * sb->d[j];
        f = sub_value(sb, sb->yt);
        /* The slack absorbs rounding once the decrease is below double eps. */
        if (f <= f0 - 1e-4 * alpha * gd + 1e-15 * (fabs(f0) + 1.0))
            break;
    }
    for (int j = 0; j < sb->C; j++)
        y[j] = sb->yt[j];
    return f;
}

/* Damped Newton from y = 0 until ||g|| <= tol ||g(0)||. */
static void sub_solve(xent_sub *sb, double tol, double *y, int *iters, double *residual)
{
    double f, g0, gn;
    int it = 0;

    for (int j = 0; j < sb->C; j++)
        y[j] = 0.0;
    f = sub_value(sb, y);
    g0 = gn = sub_grad(sb, y);
    while (gn > 0.0 && gn > tol * g0 && it < XENT_MAX_NEWTON) {
        sub_newton_dir(sb);
        f = sub_line_search(sb, y, f);
        gn = sub_grad(sb, y);
        it++;
    }
    *iters = it;
    /* NaN when the logits were not finite (g0 is NaN then). */
    *residual = g0 > 0.0 ? gn / g0 : (g0 == 0.0 ? 0.0 : NAN);
}

static mt_status xent_prox(mt_loss *loss, double s, int n, int n_total, const float *x,
                           const void *targets, double tol, float *y, mt_solve_report *rep)
{
    const int32_t *labels = targets;
    int C = loss->n_classes, max_it = 0;
    double max_res = 0.0, *yd;
    xent_priv *pr = loss->priv;
    xent_sub sb = {.C = C, .c = n > 0 ? s / n_total : 0.0};

    MT_CHECK(mt_loss_check_args(loss, n, n_total, s, x, targets, y));
    MT_CHECK(check_labels(loss, n, labels));
    MT_CHECK(mt_scratch_reserve(&pr->work, sizeof(double) * 6 * C, "cross-entropy work"));
    yd = pr->work.p;
    sb.z = yd + C, sb.p = yd + 2 * C, sb.g = yd + 3 * C, sb.d = yd + 4 * C, sb.yt = yd + 5 * C;

    for (int i = 0; i < n; i++) {
        int it;
        double res;
        sb.x = x + (size_t)C * i;
        sb.label = labels[i];
        sub_solve(&sb, tol, yd, &it, &res);
        /* Non-finite logits (a diverged step) give a non-finite prox, passed
         * on like any other value: the step ends, and the trainer's check of
         * the loss and the parameters stops every rank together. */
        for (int j = 0; j < C; j++)
            y[(size_t)C * i + j] = isfinite(res) ? (float)yd[j] : NAN;
        max_it = it > max_it ? it : max_it;
        max_res = isnan(max_res) || res <= max_res ? max_res : res;
    }
    if (rep) {
        rep->iterations = max_it;
        rep->residual = max_res;
    }
    return MT_OK;
}

static void xent_destroy(mt_loss *loss)
{
    xent_priv *pr = loss->priv;

    if (pr)
        mt_scratch_free(&pr->work);
    mt_loss_destroy_plain(loss);
}

static const mt_loss_vtable xent_vtable = {
    .kind = "xent",
    .value = xent_value,
    .grad = xent_grad,
    .prox = xent_prox,
    .destroy = xent_destroy,
};

mt_status mt_loss_xent_create(int n_classes, mt_loss **loss)
{
    if (n_classes < 2)
        return MT_FAIL(MT_ERR_ARG, "cross-entropy needs at least 2 classes, got %d", n_classes);
    MT_CHECK(
        mt_loss_alloc(&xent_vtable, mt_shape_vec(n_classes), n_classes, sizeof(xent_priv), loss));
    return MT_OK;
}
