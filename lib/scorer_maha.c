/* Gaussian scores (SPEC.md §6): class-conditional Mahalanobis with a tied covariance, and SSD's
 * single Gaussian on standardised features. Both become "a set of centres and a pseudo-inverse
 * precision", so they share the fit and the scoring.
 *
 * Fit, one pass over the rows (so a streamed fit needs no second pull from the caller):
 *   - Each row is shifted by the first row of its class, and the shifted rows are accumulated in
 *     float64: per-class sums d_c and the scatter S = sum y y^T (cblas_dsyrk on fixed blocks of
 *     POOD_GAUSS_BLOCK rows). The within-class scatter is then S - sum_c d_c d_c^T / n_c, a
 *     rank-C update. The shift keeps the numbers at the size of the within-class spread, so the
 *     subtraction loses almost nothing (the textbook sum x x^T - n mu mu^T can lose everything
 *     when the features sit far from the origin). The blocks do not depend on how rows arrive,
 *     so streamed and in-memory fits agree bit for bit.
 *   - The covariance (scatter / N; for SSD rescaled to the standardised features) is
 *     eigendecomposed in float64 by LAPACK dsyevd; eigenvalues with |l| <= D * eps * max|l| are
 *     dropped as scipy.linalg.pinvh does, and the precision is kept factored as
 *     S+ = W diag(sign) W^T with W = V |L|^(-1/2). A covariance with nothing left (every row equal
 *     to its class mean) is rejected: every score would be 0.
 *
 * Scoring, per tile of queries: centre on the training mean, P = Q W (one sgemm), candidate scores
 * for every class from the expansion -(|p|^2 - 2 p.m_c + |m_c|^2) with G = P M^T (a second sgemm),
 * and the exact -(sum_t sign_t (p_t - m_ct)^2) in double for the classes whose candidate score is
 * within the expansion's rounding bound of the best. The expansion alone cancels badly when |p|
 * is large next to the distance; the difference form keeps the error at the size of the inputs'
 * rounding, and the bound guarantees that the class it misses cannot be the maximum. */
#include <cblas.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"
#include "lapack.h"
#include "scorer.h"
#include "simd.h"
#include "validate.h"

/* Rows per dsyrk call: large enough for an efficient (and, with two threads, parallel) rank-k
 * update; measured 1.5x faster than 256 at D = 512 with two threads. */
#define POOD_GAUSS_BLOCK 1024

struct pood_gauss_fit {
    int32_t kind;
    int32_t normalize;
    int64_t dim, n_classes, n, filled;
    double *block;     /* POOD_GAUSS_BLOCK x dim shifted rows */
    double *shift;     /* n_classes x dim: first row of each class */
    double *sum;       /* n_classes x dim: sum of shifted rows */
    int64_t *count;    /* n_classes */
    double *scatter;   /* dim x dim, upper triangle: sum of shifted outer products */
    int preset;        /* shift given by pood_gauss_fit_preset_shift (a distributed fit) */
};

void pood_gauss_fit_free(pood_gauss_fit *g)
{
    if (!g)
        return;
    free(g->block);
    free(g->shift);
    free(g->sum);
    free(g->count);
    free(g->scatter);
    free(g);
}

protood_status pood_gauss_fit_begin(const char *func, int32_t kind, int64_t dim, int32_t normalize,
                                    int64_t n_classes, pood_gauss_fit **out)
{
    size_t block_bytes, class_bytes, scatter_bytes, count_bytes;
    protood_status st;
    if ((st = pood_checked_size(func, POOD_GAUSS_BLOCK, dim, sizeof(double), &block_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n_classes, dim, sizeof(double), &class_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, dim, dim, sizeof(double), &scatter_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n_classes, 1, sizeof(int64_t), &count_bytes)) != PROTOOD_OK)
        return st;
    pood_gauss_fit *g = pood_calloc(1, sizeof *g);
    if (g) {
        g->block = pood_malloc(block_bytes);
        g->shift = pood_malloc(class_bytes);
        g->sum = pood_calloc(1, class_bytes);
        g->count = pood_calloc(1, count_bytes);
        g->scatter = pood_calloc(1, scatter_bytes);
    }
    if (!g || !g->block || !g->shift || !g->sum || !g->count || !g->scatter) {
        pood_gauss_fit_free(g);
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for the %lld x %lld covariance", (long long)dim,
                         (long long)dim);
    }
    g->kind = kind;
    g->normalize = normalize;
    g->dim = dim;
    g->n_classes = n_classes;
    *out = g;
    return PROTOOD_OK;
}

static void flush_block(pood_gauss_fit *g)
{
    if (g->filled == 0)
        return;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)g->dim, (int)g->filled, 1.0, g->block, (int)g->dim, 1.0,
                g->scatter, (int)g->dim);
    g->filled = 0;
}

void pood_gauss_fit_add(pood_gauss_fit *g, int64_t count, const float *rows, const int32_t *labels)
{
    const int64_t d = g->dim;
    for (int64_t i = 0; i < count; i++) {
        const float *x = rows + i * d;
        int64_t c = labels ? labels[i] : 0;
        double inv = 1.0;
        if (g->normalize) { /* x / ||x|| in double, as pood_unit_rows (rows are never all zero) */
            double s = 0.0;
            POOD_SIMD_SUM(s)
            for (int64_t j = 0; j < d; j++)
                s += (double)x[j] * x[j];
            double norm = sqrt(s);
            inv = 1.0 / norm;
        }
        double *shift = g->shift + c * d, *sum = g->sum + c * d, *y = g->block + g->filled * d;
        if (g->count[c] == 0 && !g->preset)
            for (int64_t j = 0; j < d; j++)
                shift[j] = x[j] * inv;
        POOD_SIMD
        for (int64_t j = 0; j < d; j++) {
            y[j] = x[j] * inv - shift[j];
            sum[j] += y[j];
        }
        g->count[c]++;
        g->n++;
        if (++g->filled == POOD_GAUSS_BLOCK)
            flush_block(g);
    }
}

/* Symmetric eigendecomposition of the dim x dim matrix a (overwritten by the eigenvectors, one
 * per row since a symmetric matrix reads the same in either order); eigenvalues ascending. */
static protood_status eigh(const char *func, int64_t dim, double *a, double *w)
{
    /* dsyevd's workspace for jobz = 'V': 1 + 6n + 2n^2 doubles and 3 + 5n integers. */
    if (dim > 32000)
        return pood_fail(PROTOOD_E_SHAPE, func, "dim = %lld is too large for LAPACK's 32-bit workspace sizes",
                         (long long)dim);
    pood_lapack_int n = (pood_lapack_int)dim, lwork = 1 + 6 * n + 2 * n * n, liwork = 3 + 5 * n, info = 0;
    double *work = pood_malloc((size_t)lwork * sizeof *work);
    pood_lapack_int *iwork = pood_malloc((size_t)liwork * sizeof *iwork);
    if (!work || !iwork) {
        free(work);
        free(iwork);
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for the eigendecomposition workspace");
    }
    dsyevd_("V", "U", &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    free(work);
    free(iwork);
    if (info != 0)
        return pood_fail(PROTOOD_E_INTERNAL, func, "LAPACK dsyevd failed (info = %d) on the %lld x %lld covariance",
                         (int)info, (long long)dim, (long long)dim);
    return PROTOOD_OK;
}

protood_status pood_gauss_fit_finish(const char *func, pood_gauss_fit *g, pood_model **out)
{
    const int64_t d = g->dim, nc = g->n_classes;
    const int ssd = g->kind == PROTOOD_SCORER_SSD;
    for (int64_t c = 0; c < nc; c++)
        if (g->count[c] == 0)
            return pood_fail(PROTOOD_E_INVALID_ARG, func,
                             "labels: class %lld of n_classes = %lld has no rows (every class needs at least one)",
                             (long long)c, (long long)nc);
    flush_block(g);

    protood_status st = PROTOOD_OK;
    pood_model *m = pood_calloc(1, sizeof *m);
    double *cov = g->scatter, *w = pood_malloc((size_t)d * sizeof *w), *scale = pood_malloc((size_t)d * sizeof *scale);
    double *proj_d = NULL, *diff = NULL;
    if (!m || !w || !scale) {
        st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for the model");
        goto done;
    }
    m->n_centres = nc;

    /* Within-class scatter: S - sum_c d_c d_c^T / n_c, as one rank-C update of rows d_c / sqrt(n_c)
     * (written over the sums, which are not needed any more after the means below). */
    m->origin = pood_calloc((size_t)d, sizeof(double));
    if (!m->origin) {
        st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for the model");
        goto done;
    }
    for (int64_t c = 0; c < nc; c++) {
        double nc_d = (double)g->count[c], r = 1.0 / sqrt(nc_d);
        double *sum = g->sum + c * d, *shift = g->shift + c * d;
        for (int64_t j = 0; j < d; j++) {
            double mean = shift[j] + sum[j] / nc_d;
            m->origin[j] += nc_d * mean;
            shift[j] = mean; /* the shift array now holds the class means */
            sum[j] *= r;
        }
    }
    for (int64_t j = 0; j < d; j++)
        m->origin[j] /= (double)g->n;
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nc, -1.0, g->sum, (int)d, 1.0, cov, (int)d);
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = i; j < d; j++)
            cov[j * d + i] = cov[i * d + j] = cov[i * d + j] / (double)g->n;

    /* SSD: covariance of t = (x - mean) / (std + 1e-10), i.e. cov_ij / (s_i s_j). A feature with
     * zero spread gets scale 0 as its mark (its row and column of the covariance are exactly 0):
     * std + 1e-10 == 1e-10 cannot mark it, as that also holds for any std below 1e-26 (raw
     * features of magnitude 1e-30, which standardise like any others). */
    for (int64_t i = 0; i < d; i++)
        scale[i] = !ssd ? 1.0 : cov[i * d + i] > 0.0 ? sqrt(cov[i * d + i]) + 1e-10 : 0.0;
    if (ssd)
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++)
                cov[i * d + j] = scale[i] == 0.0 || scale[j] == 0.0 ? 0.0 : cov[i * d + j] / (scale[i] * scale[j]);

    if ((st = eigh(func, d, cov, w)) != PROTOOD_OK)
        goto done;
    double top = 0.0;
    for (int64_t j = 0; j < d; j++)
        top = fabs(w[j]) > top ? fabs(w[j]) : top;
    const double cutoff = (double)d * DBL_EPSILON * top;
    int64_t rank = 0;
    for (int64_t j = 0; j < d; j++)
        rank += fabs(w[j]) > cutoff;
    if (rank == 0) {
        st = pood_fail(PROTOOD_E_INVALID_ARG, func,
                       "x: the %s covariance is zero (every row equals its %s after normalisation), so every "
                       "score would be 0",
                       ssd ? "feature" : "class-centred", ssd ? "mean" : "class mean");
        goto done;
    }
    m->rank = rank;
    m->proj = pood_malloc((size_t)d * (size_t)rank * sizeof(float));
    m->signs = pood_malloc((size_t)rank * sizeof(double));
    m->centres = pood_malloc((size_t)nc * (size_t)rank * sizeof(double));
    proj_d = pood_malloc((size_t)d * (size_t)rank * sizeof(double));
    diff = pood_malloc((size_t)nc * (size_t)d * sizeof(double));
    if (!m->proj || !m->signs || !m->centres || !proj_d || !diff) {
        st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for the %lld x %lld projection", (long long)d,
                       (long long)rank);
        goto done;
    }
    double proj_max = 0.0;
    for (int64_t j = 0, t = 0; j < d; j++) {
        if (!(fabs(w[j]) > cutoff))
            continue;
        double inv_sqrt = 1.0 / sqrt(fabs(w[j]));
        m->signs[t] = w[j] > 0.0 ? 1.0 : -1.0;
        for (int64_t i = 0; i < d; i++) {
            /* A feature with zero spread (SSD) has a zero row and column in the covariance, so
             * every kept eigenvector is exactly 0 there; write that 0 rather than rounding noise
             * divided by 1e-10. */
            double v = scale[i] == 0.0 ? 0.0 : cov[j * d + i] * inv_sqrt / scale[i];
            proj_max = fabs(v) > proj_max ? fabs(v) : proj_max;
            m->proj[i * rank + t] = (float)v;
            proj_d[i * rank + t] = (double)m->proj[i * rank + t]; /* centres use the W queries see */
        }
        t++;
    }
    /* The projection scales by 1/sqrt of the eigenvalues: raw features (normalize = 0) spread by
     * less than about 1e-31 give entries beyond float32, and every score would be -inf or NaN. */
    if (!(proj_max <= FLT_MAX)) {
        st = pood_fail(PROTOOD_E_INVALID_ARG, func,
                       "x: the %s covariance is too small for float32, its projection reaches %g (raw features "
                       "spread by less than about 1e-31: scale them up or set normalize = 1)",
                       ssd ? "feature" : "class-centred", proj_max);
        goto done;
    }
    /* Projected centres W^T (mu_c - origin), in double. */
    for (int64_t c = 0; c < nc; c++)
        for (int64_t j = 0; j < d; j++)
            diff[c * d + j] = g->shift[c * d + j] - m->origin[j];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nc, (int)rank, (int)d, 1.0, diff, (int)d, proj_d,
                (int)rank, 0.0, m->centres, (int)rank);
    st = pood_model_derive(func, g->kind, d, m);

done:
    free(w);
    free(scale);
    free(proj_d);
    free(diff);
    if (st != PROTOOD_OK) {
        pood_model_free(m);
        return st;
    }
    *out = m;
    return PROTOOD_OK;
}

/* ---- Scoring ------------------------------------------------------------------------------ */

typedef struct gauss_layout {
    size_t centred, proj, cross;
    pood_layout l;
} gauss_layout;

static gauss_layout layout(const protood_scorer *s, int64_t tile_rows)
{
    gauss_layout g = {0};
    g.centred = pood_layout_add(&g.l, tile_rows, s->dim, sizeof(float));
    g.proj = pood_layout_add(&g.l, tile_rows, s->model->rank, sizeof(float));
    g.cross = pood_layout_add(&g.l, tile_rows, s->model->n_centres, sizeof(float));
    return g;
}

size_t pood_gauss_scratch(const protood_scorer *s, int64_t tile_rows)
{
    gauss_layout g = layout(s, tile_rows);
    return g.l.overflow ? 0 : g.l.size;
}

static double exact_score(const pood_model *m, const float *p, int64_t c)
{
    const double *centre = m->centres + c * m->rank, *signs = m->signs;
    double s = 0.0;
    POOD_SIMD_SUM(s)
    for (int64_t t = 0; t < m->rank; t++) {
        double diff = (double)p[t] - centre[t];
        s += signs[t] * diff * diff;
    }
    return -s;
}

void pood_gauss_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch)
{
    const pood_model *m = s->model;
    const int64_t d = s->dim, r = m->rank, nc = m->n_centres;
    gauss_layout lay = layout(s, rows);
    float *qc = (float *)((char *)scratch + lay.centred);
    float *p = (float *)((char *)scratch + lay.proj);
    float *cross = (float *)((char *)scratch + lay.cross);

    const double *origin = m->origin;
    for (int64_t i = 0; i < rows; i++) {
        const float *x = q + i * d;
        float *out_row = qc + i * d;
        double inv = 1.0;
        if (s->normalize) {
            double ss = 0.0;
            POOD_SIMD_SUM(ss)
            for (int64_t j = 0; j < d; j++)
                ss += (double)x[j] * x[j];
            double norm = sqrt(ss);
            inv = 1.0 / norm;
        }
        POOD_SIMD
        for (int64_t j = 0; j < d; j++)
            out_row[j] = (float)(x[j] * inv - origin[j]);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)r, (int)d, 1.0f, qc, (int)d, m->proj,
                (int)r, 0.0f, p, (int)r);
    if (nc == 1) {
        for (int64_t i = 0; i < rows; i++)
            out[i] = (float)exact_score(m, p + i * r, 0);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)nc, (int)r, 1.0f, p, (int)r, m->centres_f,
                (int)r, 0.0f, cross, (int)nc);

    /* |fl(p.m) - p.m| <= gamma_n |p|.|m| for any summation order (n = rank + 1 counting the
     * rounding of m to float): candidate c is off by at most 2 gamma |p| |m_c|. */
    /* Candidate c scores -(pp - t_c) with t_c = 2 p.m_c - |m_c|^2: only t_c varies with c. */
    const double u = FLT_EPSILON / 2, nu = (double)(r + 1) * u, gamma = nu / (1.0 - nu);
    const double *signs = m->signs, *centres_sq = m->centres_sq;
    for (int64_t i = 0; i < rows; i++) {
        const float *pi = p + i * r;
        const float *gi = cross + i * nc;
        double pp = 0.0, pn = 0.0;
        POOD_SIMD_SUM(pp, pn)
        for (int64_t t = 0; t < r; t++) {
            double v = pi[t];
            pp += signs[t] * v * v;
            pn += v * v;
        }
        pn = sqrt(pn);
        double best = -INFINITY;
        POOD_SIMD_MAX(best)
        for (int64_t c = 0; c < nc; c++) {
            double t_c = 2.0 * gi[c] - centres_sq[c];
            best = t_c > best ? t_c : best;
        }
        const double cut = best - (4.0 * gamma * pn * m->centres_norm_max +
                                   1e-12 * (fabs(pp) + m->centres_norm_max * m->centres_norm_max));
        double score = -INFINITY;
        for (int64_t c = 0; c < nc; c++)
            if (2.0 * gi[c] - centres_sq[c] >= cut) {
                double e = exact_score(m, pi, c);
                score = e > score ? e : score;
            }
        out[i] = (float)score;
    }
}

/* ---- Several processes (scorer_dist.c) --------------------------------------------------- */
/* Moments summed over ranks must share their shifts: every rank takes, per class, the first row
 * of the lowest rank holding that class, i.e. the row a single process would have taken. */

void pood_gauss_shift_row(int32_t normalize, int64_t d, const float *x, double *out)
{
    double inv = 1.0;
    if (normalize) { /* as pood_gauss_fit_add: the shift must be bit for bit what it would compute */
        double s = 0.0;
        for (int64_t j = 0; j < d; j++)
            s += (double)x[j] * x[j];
        double norm = sqrt(s);
        inv = 1.0 / norm;
    }
    for (int64_t j = 0; j < d; j++)
        out[j] = x[j] * inv;
}

void pood_gauss_fit_preset_shift(pood_gauss_fit *g, const double *shift)
{
    memcpy(g->shift, shift, (size_t)g->n_classes * (size_t)g->dim * sizeof *shift);
    g->preset = 1;
}

int64_t pood_gauss_fit_moments_count(const pood_gauss_fit *g)
{
    return 1 + g->n_classes + g->n_classes * g->dim + g->dim * g->dim;
}

void pood_gauss_fit_moments_pack(pood_gauss_fit *g, double *buf)
{
    const int64_t d = g->dim, nc = g->n_classes;
    flush_block(g);
    buf[0] = (double)g->n;
    for (int64_t c = 0; c < nc; c++)
        buf[1 + c] = (double)g->count[c];
    memcpy(buf + 1 + nc, g->sum, (size_t)(nc * d) * sizeof *buf);
    memcpy(buf + 1 + nc + nc * d, g->scatter, (size_t)(d * d) * sizeof *buf);
}

void pood_gauss_fit_moments_unpack(pood_gauss_fit *g, const double *buf)
{
    const int64_t d = g->dim, nc = g->n_classes;
    g->n = (int64_t)buf[0];
    for (int64_t c = 0; c < nc; c++)
        g->count[c] = (int64_t)buf[1 + c];
    memcpy(g->sum, buf + 1 + nc, (size_t)(nc * d) * sizeof *buf);
    memcpy(g->scatter, buf + 1 + nc + nc * d, (size_t)(d * d) * sizeof *buf);
}
