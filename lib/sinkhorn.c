/* Sinkhorn-Knopp soft assignment (SPEC.md §2), exactly as the reference computes it, for any epsilon.
 *
 * The reference exponentiates S/eps directly, divides by the total, then alternates
 * F.normalize(p=1) over columns (then / p) and over rows (then / n). F.normalize divides by
 * max(sum, 1e-12), and that floor is part of the result: with a sharp epsilon a prototype column
 * that every sample ignores sums to less than 1e-12 and is left short of 1/p (the reference case
 * palm_sharp_sinkhorn depends on it). The floor makes the result depend on the absolute size of
 * the entries, so both routes below track Q's true scale, not just its shape:
 * Q = diag(u) K diag(v) with the global normalisation folded into v.
 *
 *   - direct: when the spread of S/eps is at most POOD_SINKHORN_DIRECT_RANGE, K = exp(S/eps - max)
 *     lies in [e^-250, 1] and the scalings stay far inside the double range, so K is computed once
 *     and each iteration is one fused pass (row sums with the current v, then column sums with the
 *     new u for the next v). This is the path of every practical epsilon on unit vectors
 *     (|S| <= 1, eps >= 0.008).
 *   - log domain: otherwise the log-scalings a = log u, b = log v are kept and every sum is a
 *     log-sum-exp shifted by its own maximum, so nothing overflows or vanishes wholesale.
 *
 * Where the reference's float64 exp(S/eps) overflows (max S/eps > log(DBL_MAX), e.g. eps = 0.001 on
 * cosines) it has no finite result to reproduce; there the floor is dropped and the result is the
 * exact, scale-free Sinkhorn, whose last row step makes every row sum to 1 (SPEC.md §2, step 3).
 * Below that, every row sums to 1 except a row whose whole mass fell under the 1e-12 floor before
 * the last row step (the reference leaves such a row short too; it takes a row that every column
 * finds e^-27 less likely than its best row, i.e. a cosine margin of 27.6 eps).
 */
#include "sinkhorn.h"

#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "alloc.h"
#include "errors.h"
#include "vecmath.h"
#include "validate.h"

#define FLOOR 1e-12   /* F.normalize's eps */
#define LOG_DBL_MAX 709.782712893384   /* beyond it the reference's exp(S/eps) is infinite */

size_t pood_sinkhorn_scratch_doubles(int64_t n, int64_t p)
{
    /* u or a (n), v or b (p), column sums (p), column maxima (p), K as float (n x p) */
    return (size_t)n + (size_t)p * 3 + ((size_t)n * (size_t)p + 1) / 2;
}

/* sum_j k_j v_j with eight independent partial sums: one accumulator would leave these
 * memory-bound loops waiting on the add latency. Inlined, so that they take the instruction set of
 * the sinkhorn_direct version that calls them. */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline double dot8_d(int64_t n, const double *k, const double *v)
{
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int t = 0; t < 8; t++)
            part[t] += k[j + t] * v[j + t];
    for (; j < n; j++)
        part[0] += k[j] * v[j];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline double dot8_f(int64_t n, const float *k, const double *v)
{
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int t = 0; t < 8; t++)
            part[t] += k[j + t] * v[j + t];
    for (; j < n; j++)
        part[0] += k[j] * v[j];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/* Direct route. K = exp((S - smax)/eps) is kept as float when it fits float's normal range
 * (spread <= POOD_SINKHORN_FLOAT_RANGE: every practical epsilon on unit vectors), which halves the
 * memory traffic of these memory-bound passes, and as double in q otherwise; q receives the
 * output. Returns 0 if a scaling left the double range (not expected below the spread threshold;
 * the caller then takes the log route). Single-threaded on purpose: these passes run between
 * BLAS calls, and an OpenMP team next to the BLAS's own threads on a small machine costs more in
 * spinning than it saves. */
POOD_MULTIVERSION static int sinkhorn_direct(int64_t n, int64_t p, const float *s, double smin, double smax,
                                             double inv_eps, int32_t iters, const pood_sinkhorn_window *window,
                                             double *q, double *scratch, pood_sinkhorn_dist *dist)
{
    /* acc has room for p + 1 values (the column-maxima slot of the log route is unused here): the
     * distributed form sends a failure flag along with the column sums. */
    double *u = scratch, *v = scratch + n, *acc = v + p;
    /* Distributed: n is this rank's share of the rows, the row step scales by the global count,
     * and a rank whose scalings leave the double range keeps going (so that every rank makes the
     * same exchanges) and reports it instead of switching to the log route alone. */
    const double n_all = dist ? dist->n_total : (double)n;
    int bad = 0;
    float *kf = (smax - smin) * inv_eps <= POOD_SINKHORN_FLOAT_RANGE ? (float *)(acc + 2 * p) : NULL;
    float smax_f = (float)smax, inv_eps_f = (float)inv_eps;

    memset(acc, 0, (size_t)p * sizeof *acc);
    for (int64_t i = 0; i < n; i++) {
        const float *si = s + i * p;
        if (kf) { /* the vectorised float exp: relative error 1e-7, the precision of the scores */
            float *ki = kf + i * p;
#pragma omp simd
            for (int64_t j = 0; j < p; j++) {
                float k = pood_expf((si[j] - smax_f) * inv_eps_f);
                ki[j] = k;
                acc[j] += k;
            }
        } else {
            double *ki = q + i * p;
            for (int64_t j = 0; j < p; j++) {
                double k = exp(((double)si[j] - smax) * inv_eps);
                ki[j] = k;
                acc[j] += k;
            }
        }
        u[i] = 1.0;
    }
    if (dist) {
        acc[p] = 0.0;
        if ((dist->status = pood_reduce(dist->func, dist->reducer, "Sinkhorn column sums", acc, p + 1)) != PROTOOD_OK)
            return 1;
    }
    double total = 0.0;   /* Q / sum(Q): the total folds into v */
    for (int64_t j = 0; j < p; j++)
        total += acc[j];
    for (int64_t j = 0; j < p; j++)
        v[j] = 1.0 / total;
    for (int32_t it = 1; it <= iters; it++) {
        /* column step on Q = diag(u) K diag(v): col_j = v_j sum_i u_i K_ij */
        for (int64_t j = 0; j < p; j++) {
            double c = acc[j] * v[j];
            v[j] /= (c > FLOOR ? c : FLOOR) * (double)p;
            if (!(v[j] > 0.0 && v[j] < INFINITY)) {
                if (!dist)
                    return 0;
                bad = 1;
            }
        }
        /* row step, fused with the column sums of the next iteration or the output */
        memset(acc, 0, (size_t)p * sizeof *acc);
        int last = it == iters;
        for (int64_t i = 0; i < n; i++) {
            const float *kfi = kf ? kf + i * p : NULL;
            double *qi = q + i * p;
            double r = (kfi ? dot8_f(p, kfi, v) : dot8_d(p, qi, v)) * u[i];
            u[i] /= (r > FLOOR ? r : FLOOR) * n_all;
            double ui = u[i];
            if (!(ui > 0.0 && ui < INFINITY)) {
                if (!dist)
                    return 0;
                bad = 1;
            }
            if (last) {
                double f = ui * n_all;
                int64_t j0 = window ? (int64_t)window->group[i] * window->width : 0;
                int64_t j1 = window ? j0 + window->width : p;
                if (kfi) {
#pragma omp simd
                    for (int64_t j = j0; j < j1; j++)
                        qi[j] = kfi[j] * v[j] * f;
                } else {
#pragma omp simd
                    for (int64_t j = j0; j < j1; j++)
                        qi[j] = qi[j] * v[j] * f;
                }
            } else if (kfi) {
#pragma omp simd
                for (int64_t j = 0; j < p; j++)
                    acc[j] += kfi[j] * ui;
            } else {
#pragma omp simd
                for (int64_t j = 0; j < p; j++)
                    acc[j] += qi[j] * ui;
            }
        }
        if (dist && !last) {
            acc[p] = bad;
            if ((dist->status = pood_reduce(dist->func, dist->reducer, "Sinkhorn column sums", acc, p + 1)) !=
                PROTOOD_OK)
                return 1;
            bad = acc[p] != 0.0;
        }
    }
    if (dist) {
        /* the last row step is local: one more flag, so that every rank agrees on the outcome */
        double flag = bad;
        if ((dist->status = pood_reduce(dist->func, dist->reducer, "Sinkhorn status", &flag, 1)) != PROTOOD_OK)
            return 1;
        if (flag != 0.0)
            dist->status = pood_fail(PROTOOD_E_INTERNAL, dist->func,
                                     "Sinkhorn scalings left the double range on %.0f rank(s) (epsilon too small "
                                     "for the distributed step)", flag);
    }
    return 1;
}

/* Log-domain route for spreads the direct form cannot hold (tiny epsilon, large scores):
 * log Q_ij = x_ij + g + a_i + b_j with x = S/eps and g = -logsumexp(x) the global normalisation. */
static void sinkhorn_log(int64_t n, int64_t p, const float *s, double inv_eps, int32_t iters, double *q,
                         double *scratch)
{
    double *a = scratch, *b = scratch + n, *cmax = b + p, *csum = cmax + p;
    const double log_n = log((double)n), log_p = log((double)p);
    double gmax = -INFINITY, gsum = 0.0;
    for (size_t k = 0; k < (size_t)n * (size_t)p; k++)
        if ((double)s[k] * inv_eps > gmax)
            gmax = (double)s[k] * inv_eps;
    /* The floor is the reference's only where the reference is finite (see the top of the file). */
    const double log_floor = gmax <= LOG_DBL_MAX ? log(FLOOR) : -INFINITY;
    for (size_t k = 0; k < (size_t)n * (size_t)p; k++)
        gsum += exp((double)s[k] * inv_eps - gmax);
    double g = -(gmax + log(gsum));
    for (int64_t i = 0; i < n; i++)
        a[i] = 0.0;
    for (int64_t j = 0; j < p; j++)
        b[j] = 0.0;
    for (int32_t it = 1; it <= iters; it++) {
        /* column step: log col_j = g + b_j + logsumexp_i(x_ij + a_i) */
        for (int64_t j = 0; j < p; j++) {
            cmax[j] = -INFINITY;
            csum[j] = 0.0;
        }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < p; j++) {
                double x = (double)s[i * p + j] * inv_eps + a[i];
                if (x > cmax[j])
                    cmax[j] = x;
            }
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < p; j++)
                csum[j] += exp((double)s[i * p + j] * inv_eps + a[i] - cmax[j]);
        for (int64_t j = 0; j < p; j++) {
            double lc = g + b[j] + cmax[j] + log(csum[j]);
            b[j] -= (lc > log_floor ? lc : log_floor) + log_p;
        }
        /* row step; the last one also writes the output n Q */
        int last = it == iters;
        for (int64_t i = 0; i < n; i++) {
            const float *si = s + i * p;
            double rmax = -INFINITY;
            for (int64_t j = 0; j < p; j++) {
                double x = (double)si[j] * inv_eps + b[j];
                if (x > rmax)
                    rmax = x;
            }
            double r = 0.0;
            for (int64_t j = 0; j < p; j++) {
                double e = exp((double)si[j] * inv_eps + b[j] - rmax);
                if (last)
                    q[i * p + j] = e;
                r += e;
            }
            double lr = g + a[i] + rmax + log(r);
            a[i] -= (lr > log_floor ? lr : log_floor) + log_n;
            if (last) {
                double f = exp(rmax + g + a[i] + log_n);
                for (int64_t j = 0; j < p; j++)
                    q[i * p + j] *= f;
            }
        }
    }
}

void pood_sinkhorn(int64_t n, int64_t p, const float *scores, double bound, double epsilon, int32_t iters,
                   const pood_sinkhorn_window *window, double *q, double *scratch)
{
    double lo = -bound, hi = bound;
    if (!(bound > 0.0)) { /* no bound known: scan */
        float smin = scores[0], smax = scores[0];
#pragma omp simd reduction(min : smin) reduction(max : smax)
        for (size_t k = 0; k < (size_t)n * (size_t)p; k++) {
            smin = scores[k] < smin ? scores[k] : smin;
            smax = scores[k] > smax ? scores[k] : smax;
        }
        lo = smin;
        hi = smax;
    }
    double inv_eps = 1.0 / epsilon;
    if ((hi - lo) * inv_eps <= POOD_SINKHORN_DIRECT_RANGE && hi * inv_eps <= LOG_DBL_MAX &&
        sinkhorn_direct(n, p, scores, lo, hi, inv_eps, iters, window, q, scratch, NULL))
        return;
    sinkhorn_log(n, p, scores, inv_eps, iters, q, scratch);
}

int pood_sinkhorn_dist_ok(double bound, double epsilon)
{
    return 2.0 * bound / epsilon <= POOD_SINKHORN_DIRECT_RANGE && bound / epsilon <= LOG_DBL_MAX;
}

void pood_sinkhorn_reduced(int64_t n, int64_t p, const float *scores, double bound, double epsilon, int32_t iters,
                           const pood_sinkhorn_window *window, double *q, double *scratch, pood_sinkhorn_dist *dist)
{
    dist->status = PROTOOD_OK;
    sinkhorn_direct(n, p, scores, -bound, bound, 1.0 / epsilon, iters, window, q, scratch, dist);
}

protood_status protood_sinkhorn(int64_t n, int64_t p, const float *scores, double epsilon, int32_t iters,
                                float *assign_out)
{
    protood_status st;
    size_t bytes;
    if ((st = pood_check_count(__func__, "n", n)) != PROTOOD_OK ||
        (st = pood_check_count(__func__, "p", p)) != PROTOOD_OK)
        return st;
    if (!(epsilon > 0.0) || !isfinite(epsilon))
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "epsilon = %g, must be finite and > 0", epsilon);
    if (iters < 1)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "iters = %d, must be >= 1", iters);
    if (!assign_out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "assign_out is NULL");
    if ((st = pood_checked_size(__func__, n, p, sizeof(double), &bytes)) != PROTOOD_OK)
        return st;
    if ((st = pood_check_finite(__func__, "scores", n, p, scores)) != PROTOOD_OK)
        return st;
    size_t scratch = pood_sinkhorn_scratch_doubles(n, p);
    double *q = pood_malloc(bytes + scratch * sizeof(double));
    if (!q)
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for %lld x %lld assignments", (long long)n,
                         (long long)p);
    pood_sinkhorn(n, p, scores, 0.0, epsilon, iters, NULL, q, q + (size_t)n * (size_t)p);
    for (size_t k = 0; k < (size_t)n * (size_t)p; k++)
        assign_out[k] = (float)q[k];
    free(q);
    return PROTOOD_OK;
}
