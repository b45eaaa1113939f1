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
 *     lies in [e^-200, 1] and the scalings stay far inside the double range, so K is computed once
 *     and each iteration is one fused pass (row sums with the current v, then column sums with the
 *     new u for the next v). This is the path of every practical epsilon on unit vectors
 *     (|S| <= 1, eps >= 0.01).
 *   - log domain: otherwise the log-scalings a = log u, b = log v are kept and every sum is a
 *     log-sum-exp shifted by its own maximum, so nothing overflows or vanishes wholesale.
 *
 * Every row sums to 1 except a row whose whole mass fell below the 1e-12 floor before the last
 * row step (the reference leaves such a row short too; it takes a row that every column finds
 * e^-27 less likely than its best row, i.e. a cosine margin of 27.6 eps).
 */
#include "sinkhorn.h"

#include <math.h>
#include <string.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "errors.h"
#include "validate.h"

/* Below this many entries a second thread costs more than it saves. */
#define PAR_MIN_ENTRIES 32768.0
#define FLOOR 1e-12   /* F.normalize's eps */

static int team_size(int64_t n, int64_t p)
{
#ifdef _OPENMP
    if ((double)n * (double)p < PAR_MIN_ENTRIES)
        return 1;
    int t = omp_get_max_threads();
    return t < 1 ? 1 : t;
#else
    (void)n;
    (void)p;
    return 1;
#endif
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

size_t pood_sinkhorn_scratch_doubles(int64_t n, int64_t p)
{
    /* u or a (n), v or b (p), one column accumulator per thread (p each), column maxima (p) */
    return (size_t)n + (size_t)p * (size_t)(team_size(n, p) + 2);
}

/* Direct route. q receives K, then the output in place. Returns 0 if a scaling left the double
 * range (not expected below the spread threshold; the caller then takes the log route). */
static int sinkhorn_direct(int64_t n, int64_t p, const float *s, double smax, double inv_eps, int32_t iters,
                           double *q, double *scratch)
{
    int nt = team_size(n, p);
    double *u = scratch, *v = scratch + n;
    double *acc = v + p;  /* nt x p column accumulators */
    double total = 0.0;
    int ok = 1;

#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        double *my = acc + (size_t)thread_id() * (size_t)p;
        memset(my, 0, (size_t)p * sizeof *my);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t i = 0; i < n; i++) {
            const float *si = s + i * p;
            double *qi = q + i * p;
            for (int64_t j = 0; j < p; j++) {
                double k = exp(((double)si[j] - smax) * inv_eps);
                qi[j] = k;
                my[j] += k;
            }
            u[i] = 1.0;
        }
        for (int32_t it = 1; it <= iters; it++) {
            /* column step on Q = diag(u) K diag(v): col_j = v_j sum_i u_i K_ij */
#ifdef _OPENMP
#pragma omp single
#endif
            {
                if (it == 1) { /* Q / sum(Q): the total folds into v */
                    for (int64_t j = 0; j < p; j++)
                        for (int t = 0; t < nt; t++)
                            total += acc[(size_t)t * (size_t)p + (size_t)j];
                    for (int64_t j = 0; j < p; j++)
                        v[j] = 1.0 / total;
                }
                for (int64_t j = 0; j < p; j++) {
                    double c = 0.0;
                    for (int t = 0; t < nt; t++)
                        c += acc[(size_t)t * (size_t)p + (size_t)j];
                    c *= v[j];
                    v[j] /= (c > FLOOR ? c : FLOOR) * (double)p;
                    if (!(v[j] > 0.0 && v[j] < INFINITY))
                        ok = 0;
                }
            } /* implicit barrier: every thread sees v */
            memset(my, 0, (size_t)p * sizeof *my);
            int last = it == iters;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (int64_t i = 0; i < n; i++) {
                double *qi = q + i * p;
                double r = 0.0;
                for (int64_t j = 0; j < p; j++)
                    r += qi[j] * v[j];
                r *= u[i];
                u[i] /= (r > FLOOR ? r : FLOOR) * (double)n;
                double ui = u[i];
                if (last) {
                    double f = ui * (double)n;
                    for (int64_t j = 0; j < p; j++)
                        qi[j] = qi[j] * v[j] * f;
                } else {
                    for (int64_t j = 0; j < p; j++)
                        my[j] += qi[j] * ui;
                }
            }
        }
    }
    for (int64_t i = 0; i < n && ok; i++)
        if (!(u[i] > 0.0 && u[i] < INFINITY))
            ok = 0;
    return ok;
}

/* Log-domain route for spreads the direct form cannot hold (tiny epsilon, large scores):
 * log Q_ij = x_ij + g + a_i + b_j with x = S/eps and g = -logsumexp(x) the global normalisation. */
static void sinkhorn_log(int64_t n, int64_t p, const float *s, double inv_eps, int32_t iters, double *q,
                         double *scratch)
{
    double *a = scratch, *b = scratch + n, *cmax = b + p, *csum = cmax + p;
    const double log_floor = log(FLOOR), log_n = log((double)n), log_p = log((double)p);
    double gmax = -INFINITY, gsum = 0.0;
    for (size_t k = 0; k < (size_t)n * (size_t)p; k++)
        if ((double)s[k] * inv_eps > gmax)
            gmax = (double)s[k] * inv_eps;
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
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(team_size(n, p))
#endif
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

void pood_sinkhorn(int64_t n, int64_t p, const float *scores, double epsilon, int32_t iters, double *q,
                   double *scratch)
{
    float smin = scores[0], smax = scores[0];
    for (size_t k = 1; k < (size_t)n * (size_t)p; k++) {
        if (scores[k] < smin)
            smin = scores[k];
        if (scores[k] > smax)
            smax = scores[k];
    }
    double inv_eps = 1.0 / epsilon;
    if (((double)smax - (double)smin) * inv_eps <= POOD_SINKHORN_DIRECT_RANGE &&
        sinkhorn_direct(n, p, scores, (double)smax, inv_eps, iters, q, scratch))
        return;
    sinkhorn_log(n, p, scores, inv_eps, iters, q, scratch);
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
    double *q = malloc(bytes + scratch * sizeof(double));
    if (!q)
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for %lld x %lld assignments", (long long)n,
                         (long long)p);
    pood_sinkhorn(n, p, scores, epsilon, iters, q, q + (size_t)n * (size_t)p);
    for (size_t k = 0; k < (size_t)n * (size_t)p; k++)
        assign_out[k] = (float)q[k];
    free(q);
    return PROTOOD_OK;
}
