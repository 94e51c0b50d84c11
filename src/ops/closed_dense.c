/*
 * closed_dense.c - exact M and A solvers of the dense layer f(W, x) = W x + b
 * (ALGORITHMS.md section 5), for its inputs and its weights.
 *
 * Weights. Fold the bias: X~ = [X, 1] (n x (in+1)), W~ = [W, b], V~ = [V, v_b]
 * (out x (in+1)). Then f(W~ - V~, x_i) - f(W~, x_i) = -V~ x~_i, the A residual
 * is Lambda - X~ V~^T and, with c = decay, setting the gradient to zero gives
 *   M: -s Lambda^T X~ + V~ - c (W~ - V~) = 0  =>  V~ = (s Lambda^T X~ + c W~)/(1+c)
 *   A: (s X~^T X~ + (1+c) I) U = s X~^T Lambda + c W~^T,   U = V~^T.
 * NORMAL side: factorise the (in+1) system directly. DUAL side (push-through
 * with decay): write U = beta W~^T + U', beta = c/(1+c); the beta W~^T part
 * absorbs c W~^T, leaving (s X~^T X~ + (1+c) I) U' = s X~^T Lambda' with
 * Lambda' = Lambda - beta X~ W~^T, a problem of the decay-free form, so
 *   U' = X~^T Z,   (s X~ X~^T + (1+c) I) Z = s Lambda'        (n x n system)
 * by (s B^T B + a I)^{-1} B^T = B^T (s B B^T + a I)^{-1}.
 *
 * Inputs (no decay, per sample): M: y = s W^T l; A: (s W^T W + I) y = s W^T l,
 * NORMAL through the in x in system, DUAL as y = W^T z, (s W W^T + I) z = s l.
 *
 * Precision: the Gram matrices, factorisations and solves run in double (see
 * closed_linalg.c). Of the large rectangular products, the weight DUAL side's
 * Z^T X accumulates in double: Z carries the components of Lambda that X^T
 * annihilates, so Z^T X can cancel, and in float it cost up to 1e-5 relative
 * (n = 300, in = 30) against 7e-8 in double; with n = 128, in = 3072,
 * out = 4000 float gave 4e-7, double 4e-8, for about twice the time. The
 * others (X W^T in Lambda', W^T l, Z W for inputs) run in float through
 * sgemm: the maps applied after them either have norm <= 1 (K^{-1}) or,
 * for y = W^T z on the input DUAL side (out < in), amplify relative error by
 * at most cond(W) (measured: the two input sides agree to 9e-7 for a
 * 4000 -> 1000 layer at PyTorch's initialisation).
 *
 * Determinism: input problems run on MT_BLOCK-sample tiles from sample 0,
 * weight problems on OUT_TILE tiles of output units, each with
 * single-threaded BLAS calls of fixed shapes.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <string.h>

#include "ops/closed.h"

enum { OUT_TILE = 64 };

static int n_tiles(size_t n, size_t tile) { return (int)((n + tile - 1) / tile); }

static mt_status check_args(const mt_subproblem *sp, size_t n, int in, int out, int weights)
{
    if (!sp || (sp->kind != MT_SUB_M && sp->kind != MT_SUB_A))
        return MT_FAIL(MT_ERR_ARG, "dense solver: missing or unknown subproblem");
    if (!(sp->s > 0.0) || !isfinite(sp->s))
        return MT_FAIL(MT_ERR_ARG, "dense solver: s = %g must be finite and > 0", sp->s);
    if (!(sp->decay >= 0.0) || !isfinite(sp->decay))
        return MT_FAIL(MT_ERR_ARG, "dense solver: decay = %g must be finite and >= 0",
                       sp->decay);
    if (!weights && sp->decay != 0.0)
        return MT_FAIL(MT_ERR_ARG, "dense solver: decay = %g given for an input problem",
                       sp->decay);
    if (in < 1 || out < 1 || in == INT_MAX || n > (size_t)INT_MAX)
        return MT_FAIL(MT_ERR_ARG, "dense solver: bad sizes n = %zu, in = %d, out = %d", n, in,
                       out);
    if (weights && n == 0)
        return MT_FAIL(MT_ERR_ARG, "dense solver: weight problem over an empty batch");
    return MT_OK;
}

/* ---- weights ---------------------------------------------------------------- */

static void dense_w_m(double s, double c, size_t n, int in, int out, const float *w,
                      const float *x, const float *lambda, float *y)
{
    const float *b = w + (size_t)out * in;
    float *yb = y + (size_t)out * in;

#pragma omp parallel for schedule(dynamic)
    for (int t = 0; t < n_tiles(out, OUT_TILE); t++) {
        int o0 = t * OUT_TILE, ob = out - o0 < OUT_TILE ? out - o0 : OUT_TILE;

        memcpy(y + (size_t)o0 * in, w + (size_t)o0 * in, (size_t)ob * in * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ob, in, (int)n,
                    (float)(s / (1.0 + c)), lambda + o0, out, x, in, (float)(c / (1.0 + c)),
                    y + (size_t)o0 * in, in);
        for (int o = o0; o < o0 + ob; o++) {
            double sum = 0.0;
            for (size_t i = 0; i < n; i++)
                sum += lambda[i * out + o];
            yb[o] = (float)((s * sum + c * b[o]) / (1.0 + c));
        }
    }
}

/* The shared state of a DUAL weight solve. */
typedef struct {
    double s, beta;      /* beta = c / (1 + c) */
    size_t n;
    int in, out;
    const float *w, *x, *lambda;
    const double *k;     /* Cholesky factor of s X~ X~^T + (1 + c) I */
    const double *xd;    /* x in double, [n][in] */
    float *r;            /* Lambda' [n][out] (decay > 0 only) */
    double *bt;          /* s Lambda'^T, then Z^T: [out][n] = column-major n x out */
    float *y;
} dual_ctx;

/* One tile of output units o0..o0+ob: form s Lambda'^T, solve for Z, then
 * V = beta W + Z^T X (accumulated in double in vbuf [ob][in], since Z^T X can
 * cancel strongly) and v_b = beta b + Z^T 1. */
static void dense_w_dual_tile(const dual_ctx *d, int o0, int ob, double *vbuf)
{
    size_t n = d->n;
    int in = d->in, out = d->out;
    const float *b = d->w + (size_t)out * in, *src = d->lambda;

    if (d->beta > 0.0) {
        for (size_t i = 0; i < n; i++)
            for (int o = o0; o < o0 + ob; o++)
                d->r[i * out + o] = d->lambda[i * out + o] - (float)d->beta * b[o];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, ob, in, (float)-d->beta,
                    d->x, in, d->w + (size_t)o0 * in, in, 1.0f, d->r + o0, out);
        src = d->r;
    }
    for (int o = o0; o < o0 + ob; o++)
        for (size_t i = 0; i < n; i++)
            d->bt[(size_t)o * n + i] = d->s * src[i * out + o];

    mt_closed_cholesky_solve_d((int)n, d->k, ob, d->bt + (size_t)o0 * n, (int)n);

    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ob, in, (int)n, 1.0,
                d->bt + (size_t)o0 * n, (int)n, d->xd, in, 0.0, vbuf, in);
    for (int o = o0; o < o0 + ob; o++) {
        const double *zo = d->bt + (size_t)o * n;
        double sum = 0.0;

        for (int j = 0; j < in; j++) {
            size_t at = (size_t)o * in + j;
            d->y[at] = (float)(d->beta * d->w[at] + vbuf[(size_t)(o - o0) * in + j]);
        }
        for (size_t i = 0; i < n; i++)
            sum += zo[i];
        d->y[(size_t)out * in + o] = (float)(d->beta * b[o] + sum);
    }
}

static mt_status dense_w_a_dual(double s, double c, size_t n, int in, int out, const float *w,
                                const float *x, const float *lambda, float *y)
{
    dual_ctx d = {s, c / (1.0 + c), n, in, out, w, x, lambda, NULL, NULL, NULL, NULL, y};
    double *k = NULL, *xd = NULL;
    int failed = 0;
    mt_status st;

    MT_CHECK_GOTO(mt_alloc_checked((void **)&k, n * n * sizeof(double), "dense K"), st, done);
    MT_CHECK_GOTO(mt_alloc_checked((void **)&xd, n * in * sizeof(double), "dense X"), st, done);
    MT_CHECK_GOTO(mt_alloc_checked((void **)&d.bt, n * out * sizeof(double), "dense Z"), st,
                  done);
    if (d.beta > 0.0)
        MT_CHECK_GOTO(mt_alloc_checked((void **)&d.r, n * out * sizeof(float), "dense Lambda'"),
                      st, done);
    for (size_t j = 0; j < n * in; j++)
        xd[j] = x[j];
    d.k = k, d.xd = xd;

    /* K = s (X X^T + 1 1^T) + (1 + c) I, the n x n system */
    MT_CHECK_GOTO(mt_closed_gemm_tn_d(n, n, in, x, in, 0, x, in, 0, 1, k, n), st, done);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            k[i * n + j] = s * (k[i * n + j] + 1.0) + (i == j ? 1.0 + c : 0.0);
    MT_CHECK_GOTO(mt_closed_cholesky_d((int)n, k), st, done);

#pragma omp parallel
    {
        double *vbuf = mt_alloc((size_t)OUT_TILE * in * sizeof(double));

        if (!vbuf) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic)
        for (int t = 0; t < n_tiles(out, OUT_TILE); t++) {
            int o0 = t * OUT_TILE, ob = out - o0 < OUT_TILE ? out - o0 : OUT_TILE;
            if (vbuf)
                dense_w_dual_tile(&d, o0, ob, vbuf);
        }
        mt_free(vbuf);
    }
    st = failed ? MT_FAIL(MT_ERR_MEM, "out of memory for the dense solve's tile buffers")
                : MT_OK;
done:
    mt_free(k);
    mt_free(xd);
    mt_free(d.bt);
    mt_free(d.r);
    return st;
}

/* K = s X~^T X~ + (1 + c) I, (in+1) x (in+1), from X^T X, X^T 1 and n. */
static mt_status dense_w_normal_matrix(double s, double c, size_t n, int in, const float *x,
                                       double *k)
{
    size_t d = (size_t)in + 1;
    double *last = k + (size_t)in * d; /* the row of the bias column, X^T 1 */

    MT_CHECK(mt_closed_gemm_tn_d(in, in, n, x, in, 1, x, in, 1, 1, k, d));
    for (size_t j = 0; j < (size_t)in; j++)
        last[j] = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < (size_t)in; j++)
            last[j] += x[i * in + j];

    for (size_t i = 0; i < (size_t)in; i++) {
        for (size_t j = 0; j < (size_t)in; j++)
            k[i * d + j] *= s;
        last[i] *= s;
        k[i * d + in] = last[i];
    }
    last[in] = s * (double)n;
    for (size_t i = 0; i < d; i++)
        k[i * d + i] += 1.0 + c;
    return MT_OK;
}

static mt_status dense_w_a_normal(double s, double c, size_t n, int in, int out, const float *w,
                                  const float *x, const float *lambda, float *y)
{
    size_t d = (size_t)in + 1;
    double *k = NULL, *rhs = NULL;
    mt_status st;

    MT_CHECK_GOTO(mt_alloc_checked((void **)&k, d * d * sizeof(double), "dense K"), st, done);
    MT_CHECK_GOTO(mt_alloc_checked((void **)&rhs, d * out * sizeof(double), "dense rhs"), st,
                  done);
    MT_CHECK_GOTO(dense_w_normal_matrix(s, c, n, in, x, k), st, done);
    MT_CHECK_GOTO(mt_closed_cholesky_d((int)d, k), st, done);

    /* rhs[o] = s X~^T lambda_o + c w~_o: column-major d x out */
    MT_CHECK_GOTO(mt_closed_gemm_tn_d(out, in, n, lambda, out, 1, x, in, 1, 0, rhs, d), st,
                  done);

#pragma omp parallel for schedule(dynamic)
    for (int t = 0; t < n_tiles(out, OUT_TILE); t++) {
        int o0 = t * OUT_TILE, ob = out - o0 < OUT_TILE ? out - o0 : OUT_TILE;

        for (int o = o0; o < o0 + ob; o++) {
            double *ro = rhs + (size_t)o * d, sum = 0.0;
            for (size_t i = 0; i < n; i++)
                sum += lambda[i * out + o];
            for (int j = 0; j < in; j++)
                ro[j] = s * ro[j] + c * w[(size_t)o * in + j];
            ro[in] = s * sum + c * w[(size_t)out * in + o];
        }
        mt_closed_cholesky_solve_d((int)d, k, ob, rhs + (size_t)o0 * d, (int)d);
        for (int o = o0; o < o0 + ob; o++) {
            for (int j = 0; j < in; j++)
                y[(size_t)o * in + j] = (float)rhs[(size_t)o * d + j];
            y[(size_t)out * in + o] = (float)rhs[(size_t)o * d + in];
        }
    }
    st = MT_OK;
done:
    mt_free(k);
    mt_free(rhs);
    return st;
}

mt_status mt_dense_solve_w(const mt_subproblem *sp, mt_closed_side side, size_t n, int in,
                           int out, const float *w, const float *x, const float *lambda,
                           float *y)
{
    MT_CHECK(check_args(sp, n, in, out, 1));
    if (sp->kind == MT_SUB_M) {
        dense_w_m(sp->s, sp->decay, n, in, out, w, x, lambda, y);
        return MT_OK;
    }
    if (side == MT_CLOSED_AUTO)
        side = n < (size_t)in + 1 ? MT_CLOSED_DUAL : MT_CLOSED_NORMAL;
    if (side == MT_CLOSED_DUAL)
        MT_CHECK(dense_w_a_dual(sp->s, sp->decay, n, in, out, w, x, lambda, y));
    else
        MT_CHECK(dense_w_a_normal(sp->s, sp->decay, n, in, out, w, x, lambda, y));
    return MT_OK;
}

/* ---- inputs ----------------------------------------------------------------- */

static void dense_x_m(double s, size_t n, int in, int out, const float *w, const float *lambda,
                      float *y)
{
#pragma omp parallel for schedule(dynamic)
    for (int t = 0; t < n_tiles(n, MT_BLOCK); t++) {
        size_t i0 = (size_t)t * MT_BLOCK;
        int nb = (int)mt_min_sz(MT_BLOCK, n - i0);

        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, in, out, (float)s,
                    lambda + i0 * out, out, w, in, 0.0f, y + i0 * in, in);
    }
}

/* A, DUAL: (s W W^T + I) z_i = s l_i, y_i = W^T z_i; buf [n][out] doubles
 * (column-major out x nb per tile), zf [n][out] floats. */
static void dense_x_a_dual_tile(double s, size_t i0, int nb, int in, int out, const float *w,
                                const float *lambda, const double *k, double *buf, float *zf,
                                float *y)
{
    size_t len = (size_t)nb * out;

    for (size_t j = 0; j < len; j++)
        buf[i0 * out + j] = s * lambda[i0 * out + j];
    mt_closed_cholesky_solve_d(out, k, nb, buf + i0 * out, out);
    for (size_t j = 0; j < len; j++)
        zf[i0 * out + j] = (float)buf[i0 * out + j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, in, out, 1.0f, zf + i0 * out, out,
                w, in, 0.0f, y + i0 * in, in);
}

/* A, NORMAL: (s W^T W + I) y_i = s W^T l_i; buf [n][in] doubles, zf [n][in]. */
static void dense_x_a_normal_tile(double s, size_t i0, int nb, int in, int out, const float *w,
                                  const float *lambda, const double *k, double *buf, float *zf,
                                  float *y)
{
    size_t len = (size_t)nb * in;

    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, in, out, 1.0f, lambda + i0 * out,
                out, w, in, 0.0f, zf + i0 * in, in);
    for (size_t j = 0; j < len; j++)
        buf[i0 * in + j] = s * zf[i0 * in + j];
    mt_closed_cholesky_solve_d(in, k, nb, buf + i0 * in, in);
    for (size_t j = 0; j < len; j++)
        y[i0 * in + j] = (float)buf[i0 * in + j];
}

void mt_dense_factor_free(mt_dense_factor *f)
{
    mt_free(f->w);
    mt_free(f->k);
    memset(f, 0, sizeof *f);
}

/* K's Cholesky factor for these weights: from the cache when it holds the
 * same weights (compared exactly), s and side, else computed (and kept). */
static mt_status dense_factor(double s, int dual, int in, int out, const float *w,
                              mt_dense_factor *cache, double **k_out, double **owned)
{
    size_t dim = dual ? (size_t)out : (size_t)in, n_w = (size_t)in * out;
    double *k = NULL;

    *owned = NULL;
    if (cache && cache->k && cache->s == s && cache->dual == dual && cache->dim == dim &&
        cache->n_w == n_w && memcmp(cache->w, w, n_w * sizeof(float)) == 0) {
        *k_out = cache->k;
        return MT_OK;
    }
    MT_CHECK(mt_alloc_checked((void **)&k, dim * dim * sizeof(double), "dense K"));
    /* K = s W W^T + I (dual) or s W^T W + I (normal), shared by all samples */
    mt_status st = mt_closed_gemm_tn_d(dim, dim, dual ? in : out, w, in, !dual, w, in, !dual,
                                       1, k, dim);
    for (size_t i = 0; st == MT_OK && i < dim * dim; i++)
        k[i] = s * k[i] + (i % (dim + 1) == 0 ? 1.0 : 0.0);
    if (st == MT_OK)
        st = mt_closed_cholesky_d((int)dim, k);
    if (st != MT_OK) {
        mt_free(k);
        return st;
    }
    *k_out = k;
    if (!cache) {
        *owned = k;
        return MT_OK;
    }
    mt_dense_factor_free(cache);
    cache->w = mt_alloc(n_w * sizeof(float));
    if (!cache->w) { /* no room to cache: use it once */
        *owned = k;
        return MT_OK;
    }
    memcpy(cache->w, w, n_w * sizeof(float));
    cache->n_w = n_w, cache->s = s, cache->dual = dual, cache->dim = dim, cache->k = k;
    return MT_OK;
}

static mt_status dense_x_a(double s, mt_closed_side side, size_t n, int in, int out,
                           const float *w, const float *lambda, float *y, mt_dense_factor *cache)
{
    int dual = side == MT_CLOSED_DUAL || (side == MT_CLOSED_AUTO && out < in);
    size_t dim = dual ? (size_t)out : (size_t)in;
    double *k = NULL, *owned = NULL, *buf = NULL;
    float *zf = NULL;
    mt_status st;

    MT_CHECK_GOTO(mt_alloc_checked((void **)&buf, n * dim * sizeof(double), "dense rhs"), st,
                  done);
    MT_CHECK_GOTO(mt_alloc_checked((void **)&zf, n * dim * sizeof(float), "dense rhs"), st,
                  done);
    MT_CHECK_GOTO(dense_factor(s, dual, in, out, w, cache, &k, &owned), st, done);

#pragma omp parallel for schedule(dynamic)
    for (int t = 0; t < n_tiles(n, MT_BLOCK); t++) {
        size_t i0 = (size_t)t * MT_BLOCK;
        int nb = (int)mt_min_sz(MT_BLOCK, n - i0);

        if (dual)
            dense_x_a_dual_tile(s, i0, nb, in, out, w, lambda, k, buf, zf, y);
        else
            dense_x_a_normal_tile(s, i0, nb, in, out, w, lambda, k, buf, zf, y);
    }
    st = MT_OK;
done:
    mt_free(owned);
    mt_free(buf);
    mt_free(zf);
    return st;
}

mt_status mt_dense_solve_x_cached(const mt_subproblem *sp, mt_closed_side side, size_t n,
                                  int in, int out, const float *w, const float *lambda, float *y,
                                  mt_dense_factor *cache)
{
    MT_CHECK(check_args(sp, n, in, out, 0));
    if (n == 0)
        return MT_OK;
    if (sp->kind == MT_SUB_M)
        dense_x_m(sp->s, n, in, out, w, lambda, y);
    else
        MT_CHECK(dense_x_a(sp->s, side, n, in, out, w, lambda, y, cache));
    return MT_OK;
}

mt_status mt_dense_solve_x(const mt_subproblem *sp, mt_closed_side side, size_t n, int in,
                           int out, const float *w, const float *lambda, float *y)
{
    return mt_dense_solve_x_cached(sp, side, n, in, out, w, lambda, y, NULL);
}
