/* Prototypes from the caller's features: class means (K = 1, the CIDER reference) and per-class
 * spherical k-means++ (K > 1). SPEC.md §5. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "bank.h"
#include "errors.h"
#include "rng.h"
#include "validate.h"

/* Lloyd iterations stop when no assignment changes, or after this many (documented in protood.h). */
#define POOD_KMEANS_MAX_ITERS 100

/* Everything a call needs, sized once from n, C, K and D; nothing is allocated per class or row. */
typedef struct init_scratch {
    float *z;         /* n x D normalised rows, grouped by class, in input order within a class */
    int64_t *start;   /* C + 1: class c owns rows start[c] .. start[c+1]-1 of z */
    int64_t *next;    /* C: fill cursor while grouping */
    float *protos;    /* P x D: the result, committed to the bank only at the end */
    double *acc;      /* K x D (D for K = 1): sums of rows in double */
    /* K > 1 only */
    float *sims;      /* n x K cosine similarities of a class's rows to its centres */
    int64_t *assign;  /* n: centre of each row of a class */
    int64_t *count;   /* K: rows per centre */
    double *d2;       /* n: squared distance to the nearest centre chosen so far (k-means++) */
} init_scratch;

static void scratch_free(init_scratch *s)
{
    free(s->z);
    free(s->start);
    free(s->next);
    free(s->protos);
    free(s->acc);
    free(s->sims);
    free(s->assign);
    free(s->count);
    free(s->d2);
}

/* Write n2(acc) to out, or return 0 (out untouched) when acc is too short to give a direction,
 * which happens only when the summed unit rows cancel. */
static int store_direction(const double *acc, int64_t dim, float *out)
{
    double s = 0.0;
    for (int64_t j = 0; j < dim; j++)
        s += acc[j] * acc[j];
    double norm = sqrt(s);
    if (!(norm > 1e-12))
        return 0;
    double inv = 1.0 / norm;
    for (int64_t j = 0; j < dim; j++)
        out[j] = (float)(acc[j] * inv);
    return 1;
}

/* Squared Euclidean distance in double, in a fixed order: the k-means++ draw then depends on no
 * BLAS rounding, and two identical normalised rows are exactly at distance 0. */
static double sqdist(const float *a, const float *b, int64_t dim)
{
    double s = 0.0;
    for (int64_t j = 0; j < dim; j++) {
        double d = (double)a[j] - (double)b[j];
        s += d * d;
    }
    return s;
}

/* k-means++ seeding on the nc rows of zc: up to k centres copied into `centres`. Stops early
 * when every row coincides with a chosen centre (fewer than k distinct rows); returns the count. */
static int64_t kmeanspp_seed(const float *zc, int64_t nc, int64_t dim, int64_t k, pood_rng *rng, float *centres,
                             double *d2)
{
    int64_t first = (int64_t)pood_rng_below(rng, (uint64_t)nc);
    memcpy(centres, zc + first * dim, (size_t)dim * sizeof(float));
    for (int64_t i = 0; i < nc; i++)
        d2[i] = sqdist(zc + i * dim, centres, dim);
    int64_t m = 1;
    while (m < k) {
        double total = 0.0;
        for (int64_t i = 0; i < nc; i++)
            total += d2[i];
        if (!(total > 0.0))
            break;
        /* The running sum is formed in the same order as `total`, so it reaches total > u at the
         * last row of positive weight at the latest; zero-weight rows can never be picked. */
        double u = pood_rng_uniform(rng) * total, cum = 0.0;
        int64_t pick = -1;
        for (int64_t i = 0; i < nc && pick < 0; i++) {
            cum += d2[i];
            if (d2[i] > 0.0 && cum > u)
                pick = i;
        }
        float *c = centres + m * dim;
        memcpy(c, zc + pick * dim, (size_t)dim * sizeof(float));
        for (int64_t i = 0; i < nc; i++) {
            double d = sqdist(zc + i * dim, c, dim);
            if (d < d2[i])
                d2[i] = d;
        }
        m++;
    }
    return m;
}

/* Assign each row to the centre of highest cosine (the lowest index on ties); returns how many
 * assignments changed. */
static int64_t assign_rows(const float *zc, int64_t nc, int64_t dim, int64_t m, const float *centres, float *sims,
                           int64_t *assign)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nc, (int)m, (int)dim, 1.0f, zc, (int)dim, centres,
                (int)dim, 0.0f, sims, (int)m);
    int64_t changed = 0;
    for (int64_t i = 0; i < nc; i++) {
        const float *s = sims + i * m;
        int64_t best = 0;
        for (int64_t k = 1; k < m; k++)
            if (s[k] > s[best])
                best = k;
        changed += assign[i] != best;
        assign[i] = best;
    }
    return changed;
}

/* Each centre becomes n2 of the sum of its rows; an empty cluster, or one whose rows cancel,
 * keeps its centre. */
static void update_centres(const float *zc, int64_t nc, int64_t dim, int64_t m, const int64_t *assign,
                           float *centres, double *acc, int64_t *count)
{
    memset(acc, 0, (size_t)m * (size_t)dim * sizeof(double));
    memset(count, 0, (size_t)m * sizeof(int64_t));
    for (int64_t i = 0; i < nc; i++) {
        double *a = acc + assign[i] * dim;
        const float *row = zc + i * dim;
        for (int64_t j = 0; j < dim; j++)
            a[j] += row[j];
        count[assign[i]]++;
    }
    for (int64_t k = 0; k < m; k++)
        if (count[k] > 0)
            store_direction(acc + k * dim, dim, centres + k * dim);
}

/* Spherical k-means++ on one class: writes m <= K centres to `centres` and returns m. */
static int64_t spherical_kmeans(const float *zc, int64_t nc, int64_t dim, int64_t k, pood_rng *rng, float *centres,
                                init_scratch *s)
{
    int64_t m = kmeanspp_seed(zc, nc, dim, k, rng, centres, s->d2);
    for (int64_t i = 0; i < nc; i++)
        s->assign[i] = -1;
    assign_rows(zc, nc, dim, m, centres, s->sims, s->assign);
    for (int it = 0; it < POOD_KMEANS_MAX_ITERS; it++) {
        update_centres(zc, nc, dim, m, s->assign, centres, s->acc, s->count);
        if (assign_rows(zc, nc, dim, m, centres, s->sims, s->assign) == 0)
            break;
    }
    return m;
}

static protood_status alloc_scratch(const char *func, const protood_bank *bank, int64_t n, init_scratch *s)
{
    int64_t c = bank->n_classes, k = bank->protos_per_class, d = bank->dim;
    size_t z_bytes, acc_bytes, sims_bytes, assign_bytes, d2_bytes;
    protood_status st;
    if ((st = pood_checked_size(func, n, d, sizeof(float), &z_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, k, d, sizeof(double), &acc_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, k, sizeof(float), &sims_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, 1, sizeof(int64_t), &assign_bytes)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, 1, sizeof(double), &d2_bytes)) != PROTOOD_OK)
        return st;
    memset(s, 0, sizeof *s);
    s->z = pood_malloc(z_bytes);
    s->start = pood_calloc((size_t)c + 1, sizeof(int64_t));
    s->next = pood_malloc((size_t)c * sizeof(int64_t));
    s->protos = pood_malloc((size_t)bank->n_protos * (size_t)d * sizeof(float));
    s->acc = pood_malloc(acc_bytes);
    int ok = s->z && s->start && s->next && s->protos && s->acc;
    if (k > 1) {
        s->sims = pood_malloc(sims_bytes);
        s->assign = pood_malloc(assign_bytes);
        s->count = pood_malloc((size_t)k * sizeof(int64_t));
        s->d2 = pood_malloc(d2_bytes);
        ok = ok && s->sims && s->assign && s->count && s->d2;
    }
    if (!ok) {
        scratch_free(s);
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for the scratch of %lld rows x %lld", (long long)n,
                         (long long)d);
    }
    return PROTOOD_OK;
}

protood_status protood_bank_init_from_features(protood_bank *bank, int64_t n, const float *x,
                                               const int32_t *labels, uint64_t seed)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    protood_status st;
    if ((st = pood_check_count(__func__, "n", n)) != PROTOOD_OK ||
        (st = pood_check_rows(__func__, "x", n, bank->dim, x)) != PROTOOD_OK ||
        (st = pood_check_labels(__func__, n, labels, bank->n_classes)) != PROTOOD_OK)
        return st;
    int64_t c_count = bank->n_classes, k = bank->protos_per_class, d = bank->dim;
    /* CBLAS takes int sizes. */
    if (k > 1 && (n > INT_MAX || d > INT_MAX || k > INT_MAX))
        return pood_fail(PROTOOD_E_SHAPE, __func__, "n = %lld, dim = %lld or protos_per_class = %lld exceeds "
                         "the BLAS limit %d", (long long)n, (long long)d, (long long)k, INT_MAX);
    init_scratch s;
    if ((st = alloc_scratch(__func__, bank, n, &s)) != PROTOOD_OK)
        return st;

    /* Group the normalised rows by class (counting sort, stable) so each class is one contiguous
     * matrix for the similarity products. Rows are scaled to exactly unit norm: the same as n2
     * except for rows of norm below 1e-12, which n2 would leave shorter and which could then
     * become a prototype (a k-means++ centre) that is not a unit vector. */
    for (int64_t i = 0; i < n; i++)
        s.start[labels[i] + 1]++;
    for (int64_t c = 0; c < c_count; c++) {
        s.start[c + 1] += s.start[c];
        s.next[c] = s.start[c];
    }
    for (int64_t i = 0; i < n; i++)
        pood_unit_rows(1, d, x + i * d, s.z + s.next[labels[i]]++ * d);

    /* Slots no data reach keep the bank's current prototypes. */
    memcpy(s.protos, bank->protos, (size_t)bank->n_protos * (size_t)d * sizeof(float));
    pood_rng rng;
    pood_rng_seed(&rng, seed);
    for (int64_t c = 0; c < c_count; c++) {
        int64_t nc = s.start[c + 1] - s.start[c];
        const float *zc = s.z + s.start[c] * d;
        if (nc == 0)
            continue;
        if (k == 1) {
            memset(s.acc, 0, (size_t)d * sizeof(double));
            for (int64_t i = 0; i < nc; i++)
                for (int64_t j = 0; j < d; j++)
                    s.acc[j] += zc[i * d + j];
            store_direction(s.acc, d, s.protos + c * d);
        } else {
            spherical_kmeans(zc, nc, d, k, &rng, s.protos + c * k * d, &s);
        }
    }
    memcpy(bank->protos, s.protos, (size_t)bank->n_protos * (size_t)d * sizeof(float));
    scratch_free(&s);
    return PROTOOD_OK;
}
