/*
 * closed_relu.c - exact M and A solvers of the elementwise ReLU (input
 * problems, ALGORITHMS.md section 5). Each coordinate is a 1-D problem in y,
 * piecewise quadratic with the kink at y = z: piece 1 (z - y > 0) where
 * relu(z - y) = z - y, piece 2 (z - y <= 0) where it is 0. We minimise on
 * each piece and keep the lower value; ties go to the smaller |y|.
 *
 * M, with a = s l:  g(y) = a relu(z - y) + y^2/2.
 *   piece 1: a (z - y) + y^2/2, stationary at y = a, admissible iff a < z,
 *            value a z - a^2/2;
 *   piece 2: y^2/2 on y >= z, minimised at y = relu(z), value relu(z)^2/2.
 *   If a >= z piece 1's infimum is its boundary y = z, never below piece 2.
 *   If a < z and z > 0: piece 2 minus piece 1 is (z - a)^2/2 > 0, so y = a.
 *   If a < z <= 0: piece 1 wins iff a (z - a/2) < 0 iff z > a/2.
 *   So y = a when z > a (a >= 0) or z > a/2 (a < 0), else y = relu(z).
 *   This is the paper's formula min(relu(z), relu(a)) + min(a, 0)[z >= a/2]
 *   except at the tie z = a/2 < 0, where both y = a and y = 0 are minimisers
 *   and we return 0.
 *
 * A, with r = relu(z):  g(y) = s (relu(z - y) - r + l)^2 + y^2.
 *   piece 1: s (z - y - r + l)^2 + y^2, stationary at
 *            y1 = s u / (1 + s), u = l + min(z, 0) (= z - r + l),
 *            value s u^2 / (1 + s); admissible iff y1 < z;
 *   piece 2: s l^2 + y^2 on y >= z, minimised at y = relu(z).
 *   z > 0: u = l; piece 1 is q(y) = s (l - y)^2 + y^2 on y < z and piece 2
 *          is s (l - z)^2 + y^2 >= q(z) on y >= z, so the convex q minimised
 *          over y <= z: y = min(s l / (1 + s), z).
 *   z <= 0: piece 2 gives y = 0, value s l^2. Piece 1 wins iff it is
 *          admissible (s l < z) and (z + l)^2 < (1 + s) l^2; for z <= 0 both
 *          reduce to z > (sqrt(1 + s) - 1) l (which forces l < 0 and then
 *          implies s l < z since sqrt(1 + s) - 1 < s). Then y = s (z + l) /
 *          (1 + s), else y = 0 (also at equality: the tie goes to 0).
 *   The paper's formula returns y = 0 for every z < 0, which is wrong when
 *   l is strongly negative (e.g. s = 1, z = -0.1, l = -10: y = -5.05 gives
 *   51.005 against 100 at y = 0).
 */
#include <math.h>

#include "ops/closed.h"

static double relu_solve_m(double s, double z, double l)
{
    double a = s * l;

    if (a >= 0.0 ? z > a : z > 0.5 * a)
        return a;
    return z > 0.0 ? z : 0.0;
}

static double relu_solve_a(double s, double z, double l)
{
    double u = l + (z < 0.0 ? z : 0.0);
    double y1 = s * u / (1.0 + s);

    if (z > 0.0)
        return y1 < z ? y1 : z;
    /* sqrt(1 + s) - 1 written without cancellation for small s */
    if (z > s / (sqrt(1.0 + s) + 1.0) * l)
        return y1;
    return 0.0;
}

double mt_relu_solve1(mt_sub_kind kind, double s, double z, double l)
{
    return kind == MT_SUB_M ? relu_solve_m(s, z, l) : relu_solve_a(s, z, l);
}

mt_status mt_relu_solve(mt_sub_kind kind, double s, size_t n_elems, const float *z,
                        const float *lambda, float *y)
{
    if (!(s > 0.0) || !isfinite(s))
        return MT_FAIL(MT_ERR_ARG, "relu solver: s = %g must be finite and > 0", s);
    if (kind != MT_SUB_M && kind != MT_SUB_A)
        return MT_FAIL(MT_ERR_ARG, "relu solver: unknown subproblem kind %d", (int)kind);

#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n_elems; i++)
        y[i] = (float)mt_relu_solve1(kind, s, z[i], lambda[i]);
    return MT_OK;
}
