/* Numerical extremes (issue 9, part 4): features of magnitude 1e30 and 1e-30, one feature, one
 * class, a class of one row, duplicate rows, all rows identical, k = n for KNN and Sinkhorn's
 * epsilon down to 1e-4, through every entry point they reach. Each case must give a correct finite
 * result, checked against a value computed independently here (a brute-force or float64
 * reference, a hand-derived formula, or an exact invariance such as scaling by 2^100), or a clear
 * error that names the argument and leaves the handle as it was.
 *
 * Magnitudes are powers of two (2^100 = 1.27e30, 2^-100 = 7.9e-31) so that scaling a row is exact
 * and "the same result" can mean the same bits. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "refsteps.h"
#include "testutil.h"

static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* n x d entries uniform in [-1, 1], shifted by `offset` times the row's class (i % classes) so
 * that class means differ. */
static float *make_rows(uint64_t seed, int64_t n, int64_t d, int64_t classes, double offset)
{
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (float)(2.0 * uniform(&seed) - 1.0 + (j == 0 ? offset * (double)(i % classes) : 0.0));
    return x;
}

static int32_t *cyclic_labels(int64_t n, int64_t classes)
{
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)(i % classes);
    return y;
}

/* x times 2^e, exactly (no result here leaves the float range or becomes subnormal unless meant to). */
static float *pow2_scaled(const float *x, int64_t count, int e)
{
    float *out = malloc((size_t)count * sizeof *out);
    for (int64_t k = 0; k < count; k++)
        out[k] = ldexpf(x[k], e);
    return out;
}

/* x / |x| in double, kept in double (the Gaussian scorers' normalisation) or rounded to float as
 * the library stores normalised rows. */
static void unit_row(const float *x, int64_t d, double *out)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++)
        s += (double)x[j] * x[j];
    double inv = 1.0 / sqrt(s);
    for (int64_t j = 0; j < d; j++)
        out[j] = x[j] * inv;
}

static void unit_row_f(const float *x, int64_t d, float *out)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++)
        s += (double)x[j] * x[j];
    double inv = 1.0 / sqrt(s);
    for (int64_t j = 0; j < d; j++)
        out[j] = (float)(x[j] * inv);
}

static void expect_error(protood_status got, protood_status want, const char *needle)
{
    ck_assert_msg(got == want, "status %d (%s), expected %d", got, protood_last_error(), want);
    ck_assert_msg(strstr(protood_last_error(), needle) != NULL, "\"%s\" does not name \"%s\"", protood_last_error(),
                  needle);
}

/* A handle's serialised bytes: equal bytes before and after a failed call = unchanged handle. */
static unsigned char *scorer_bytes(const protood_scorer *s, size_t *size)
{
    ck_assert_int_eq(protood_scorer_to_buffer(s, NULL, 0, size), PROTOOD_OK);
    unsigned char *b = malloc(*size);
    ck_assert_int_eq(protood_scorer_to_buffer(s, b, *size, size), PROTOOD_OK);
    return b;
}

static void assert_scorer_unchanged(const protood_scorer *s, const unsigned char *before, size_t size)
{
    size_t now;
    unsigned char *after = scorer_bytes(s, &now);
    ck_assert_msg(now == size && memcmp(after, before, size) == 0, "the scorer changed");
    free(after);
}

static void assert_bank_round_trips(const protood_bank *b)
{
    size_t size;
    ck_assert_int_eq(protood_bank_to_buffer(b, NULL, 0, &size), PROTOOD_OK);
    unsigned char *buf = malloc(size);
    ck_assert_int_eq(protood_bank_to_buffer(b, buf, size, &size), PROTOOD_OK);
    protood_bank *copy = NULL;
    ck_assert_msg(protood_bank_from_buffer(&copy, buf, size) == PROTOOD_OK, "a saved bank does not load: %s",
                  protood_last_error());
    protood_bank_free(copy);
    free(buf);
}

static float *prototypes(const protood_bank *b)
{
    int64_t C, K, D;
    ck_assert_int_eq(protood_bank_shape(b, &C, &K, &D), PROTOOD_OK);
    float *p = malloc((size_t)(C * K * D) * sizeof *p);
    ck_assert_int_eq(protood_bank_get_prototypes(b, p), PROTOOD_OK);
    return p;
}

/* ---- independent scorer references -------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The KNN score as documented: the k-th smallest squared distance, in double, between the
 * (normalised, float32) rows, negated. Brute force over every training row. */
static float knn_ref(int64_t n, int64_t d, const float *x, int normalize, int64_t k, const float *q)
{
    float *xr = malloc((size_t)d * sizeof *xr), *qr = malloc((size_t)d * sizeof *qr);
    double *dist = malloc((size_t)n * sizeof *dist);
    if (normalize)
        unit_row_f(q, d, qr);
    else
        memcpy(qr, q, (size_t)d * sizeof *qr);
    for (int64_t i = 0; i < n; i++) {
        if (normalize)
            unit_row_f(x + i * d, d, xr);
        else
            memcpy(xr, x + i * d, (size_t)d * sizeof *xr);
        double s = 0.0;
        for (int64_t j = 0; j < d; j++) {
            double t = (double)qr[j] - (double)xr[j];
            s += t * t;
        }
        dist[i] = s;
    }
    qsort(dist, (size_t)n, sizeof *dist, cmp_double);
    float out = (float)-dist[k - 1];
    free(xr);
    free(qr);
    free(dist);
    return out;
}

/* In-place inverse of the d x d matrix a by Gauss-Jordan with partial pivoting (the covariances
 * here are full rank, so the pseudo-inverse is the inverse). */
static void invert(int64_t d, double *a)
{
    double *w = calloc((size_t)(d * 2 * d), sizeof *w);
    for (int64_t i = 0; i < d; i++) {
        for (int64_t j = 0; j < d; j++)
            w[i * 2 * d + j] = a[i * d + j];
        w[i * 2 * d + d + i] = 1.0;
    }
    for (int64_t c = 0; c < d; c++) {
        int64_t piv = c;
        for (int64_t r = c + 1; r < d; r++)
            if (fabs(w[r * 2 * d + c]) > fabs(w[piv * 2 * d + c]))
                piv = r;
        for (int64_t j = 0; j < 2 * d; j++) {
            double t = w[c * 2 * d + j];
            w[c * 2 * d + j] = w[piv * 2 * d + j];
            w[piv * 2 * d + j] = t;
        }
        double f = w[c * 2 * d + c];
        ck_assert_msg(fabs(f) > 0, "singular covariance in the reference");
        for (int64_t j = 0; j < 2 * d; j++)
            w[c * 2 * d + j] /= f;
        for (int64_t r = 0; r < d; r++)
            if (r != c) {
                double g = w[r * 2 * d + c];
                for (int64_t j = 0; j < 2 * d; j++)
                    w[r * 2 * d + j] -= g * w[c * 2 * d + j];
            }
    }
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++)
            a[i * d + j] = w[i * 2 * d + d + j];
    free(w);
}

/* SPEC.md §6 in float64 with an explicit inverse: MAHALANOBIS (labels y, C classes) or SSD
 * (y NULL) fitted on x, scoring the m rows q into out. */
static void gauss_ref(int64_t n, int64_t d, const float *x, const int32_t *y, int64_t C, int normalize, int64_t m,
                      const float *q, double *out)
{
    int ssd = y == NULL;
    if (ssd)
        C = 1;
    double *z = malloc((size_t)(n * d) * sizeof *z), *mu = calloc((size_t)(C * d), sizeof *mu);
    double *cnt = calloc((size_t)C, sizeof *cnt), *cov = calloc((size_t)(d * d), sizeof *cov);
    double *sd = malloc((size_t)d * sizeof *sd), *t = malloc((size_t)d * sizeof *t);
    for (int64_t i = 0; i < n; i++) {
        if (normalize)
            unit_row(x + i * d, d, z + i * d);
        else
            for (int64_t j = 0; j < d; j++)
                z[i * d + j] = x[i * d + j];
        int64_t c = ssd ? 0 : y[i];
        cnt[c] += 1;
        for (int64_t j = 0; j < d; j++)
            mu[c * d + j] += z[i * d + j];
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t j = 0; j < d; j++)
            mu[c * d + j] /= cnt[c];
    for (int64_t i = 0; i < n; i++) {
        int64_t c = ssd ? 0 : y[i];
        for (int64_t a = 0; a < d; a++)
            for (int64_t b = 0; b < d; b++)
                cov[a * d + b] += (z[i * d + a] - mu[c * d + a]) * (z[i * d + b] - mu[c * d + b]) / (double)n;
    }
    /* SSD: the covariance of t = (x - mean) / (std + 1e-10) */
    for (int64_t j = 0; j < d; j++)
        sd[j] = ssd ? sqrt(cov[j * d + j]) + 1e-10 : 1.0;
    for (int64_t a = 0; a < d; a++)
        for (int64_t b = 0; b < d; b++)
            cov[a * d + b] /= sd[a] * sd[b];
    invert(d, cov);
    for (int64_t r = 0; r < m; r++) {
        double qz[64], best = -INFINITY;
        ck_assert_int_le(d, 64);
        if (normalize)
            unit_row(q + r * d, d, qz);
        else
            for (int64_t j = 0; j < d; j++)
                qz[j] = q[r * d + j];
        for (int64_t c = 0; c < C; c++) {
            for (int64_t j = 0; j < d; j++)
                t[j] = (qz[j] - mu[c * d + j]) / sd[j];
            double s = 0.0;
            for (int64_t a = 0; a < d; a++)
                for (int64_t b = 0; b < d; b++)
                    s += t[a] * cov[a * d + b] * t[b];
            best = fmax(best, -s);
        }
        out[r] = best;
    }
    free(z);
    free(mu);
    free(cnt);
    free(cov);
    free(sd);
    free(t);
}

/* Scores within SPEC.md §8's 1e-4, relative to max(1, |expected|). */
static void assert_scores_close(const float *got, const double *want, int64_t m, const char *what)
{
    for (int64_t r = 0; r < m; r++)
        ck_assert_msg(fabs(got[r] - want[r]) <= 1e-4 * fmax(1.0, fabs(want[r])), "%s: score[%lld] = %.9g, expected %.9g",
                      what, (long long)r, (double)got[r], want[r]);
}

static protood_scorer *fitted(int32_t kind, int64_t d, int normalize, int64_t k, int64_t n, const float *x,
                              const int32_t *y, int64_t C)
{
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, kind, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, normalize), PROTOOD_OK);
    if (kind == PROTOOD_SCORER_KNN)
        ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, (double)k), PROTOOD_OK);
    ck_assert_msg(protood_scorer_fit(s, n, x, kind == PROTOOD_SCORER_MAHALANOBIS ? y : NULL,
                                     kind == PROTOOD_SCORER_MAHALANOBIS ? C : 0) == PROTOOD_OK,
                  "fit: %s", protood_last_error());
    return s;
}

static float *scores(const protood_scorer *s, int64_t m, const float *q)
{
    float *out = malloc((size_t)m * sizeof *out);
    ck_assert_msg(protood_scorer_score(s, m, q, out) == PROTOOD_OK, "score: %s", protood_last_error());
    return out;
}

/* Every scorer kind against its reference on (x, y) -> q: KNN exactly, the others within 1e-4. */
static void assert_scorer_matches_reference(int32_t kind, int64_t d, int normalize, int64_t k, int64_t n, const float *x,
                                            const int32_t *y, int64_t C, int64_t m, const float *q)
{
    protood_scorer *s = fitted(kind, d, normalize, k, n, x, y, C);
    float *got = scores(s, m, q);
    double *want = malloc((size_t)m * sizeof *want);
    for (int64_t r = 0; r < m; r++) {
        if (kind == PROTOOD_SCORER_KNN) {
            float w = knn_ref(n, d, x, normalize, k, q + r * d);
            ck_assert_msg(got[r] == w, "KNN score[%lld] = %.9g, brute force %.9g", (long long)r, (double)got[r], (double)w);
        } else if (kind == PROTOOD_SCORER_PROTOTYPE) {
            double qz[64], xz[64], best = -INFINITY;
            if (normalize)
                unit_row(q + r * d, d, qz);
            else
                for (int64_t j = 0; j < d; j++)
                    qz[j] = q[r * d + j];
            for (int64_t i = 0; i < n; i++) {
                if (normalize)
                    unit_row(x + i * d, d, xz);
                else
                    for (int64_t j = 0; j < d; j++)
                        xz[j] = x[i * d + j];
                double dot = 0.0;
                for (int64_t j = 0; j < d; j++)
                    dot += qz[j] * xz[j];
                best = fmax(best, dot);
            }
            want[r] = best;
        }
    }
    if (kind == PROTOOD_SCORER_MAHALANOBIS || kind == PROTOOD_SCORER_SSD)
        gauss_ref(n, d, x, kind == PROTOOD_SCORER_MAHALANOBIS ? y : NULL, C, normalize, m, q, want);
    if (kind != PROTOOD_SCORER_KNN)
        assert_scores_close(got, want, m, kind == PROTOOD_SCORER_PROTOTYPE ? "PROTOTYPE"
                                          : kind == PROTOOD_SCORER_SSD    ? "SSD"
                                                                          : "MAHALANOBIS");
    free(want);
    free(got);
    protood_scorer_free(s);
}

/* ---- magnitudes 1e30 and 1e-30 --------------------------------------------------------- */

/* With normalize = 1 every scorer sees directions only: rows scaled by 2^100 or 2^-100, in
 * training or in the queries, give the bits of the unscaled rows, which match the references. */
START_TEST(scorers_ignore_the_magnitude_of_rows)
{
    const int64_t n = 40, d = 6, C = 3, m = 10;
    float *x = make_rows(1, n, d, C, 1.5), *q = make_rows(2, m, d, C, 1.5);
    int32_t *y = cyclic_labels(n, C);
    static const int exps[][2] = {{100, 100}, {-100, -100}, {100, -100}, {-100, 100}};
    for (int32_t kind = PROTOOD_SCORER_KNN; kind <= PROTOOD_SCORER_PROTOTYPE; kind++) {
        int64_t nk = kind == PROTOOD_SCORER_PROTOTYPE ? 9 : n;
        assert_scorer_matches_reference(kind, d, 1, 3, nk, x, y, C, m, q);
        protood_scorer *base = fitted(kind, d, 1, 3, nk, x, y, C);
        float *want = scores(base, m, q);
        for (size_t e = 0; e < sizeof exps / sizeof exps[0]; e++) {
            float *xs = pow2_scaled(x, n * d, exps[e][0]), *qs = pow2_scaled(q, m * d, exps[e][1]);
            protood_scorer *s = fitted(kind, d, 1, 3, nk, xs, y, C);
            float *got = scores(s, m, qs);
            ck_assert_msg(memcmp(got, want, (size_t)m * sizeof *got) == 0, "kind %d, rows x 2^%d, queries x 2^%d", kind,
                          exps[e][0], exps[e][1]);
            free(got);
            protood_scorer_free(s);
            free(xs);
            free(qs);
        }
        free(want);
        protood_scorer_free(base);
    }
    /* a PROTOTYPE scorer fitted to a bank */
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, C, 2, d), PROTOOD_OK);
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_PROTOTYPE, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit_bank(s, bank), PROTOOD_OK);
    float *want = scores(s, m, q);
    for (int e = -100; e <= 100; e += 200) {
        float *qs = pow2_scaled(q, m * d, e), *got = scores(s, m, qs);
        ck_assert_mem_eq(got, want, (size_t)m * sizeof *got);
        free(got);
        free(qs);
    }
    free(want);
    protood_scorer_free(s);
    protood_bank_free(bank);
    free(x);
    free(q);
    free(y);
}
END_TEST

/* With normalize = 0 rows are used as given. 1e30: the float32 products would overflow, so fit
 * and score refuse the rows (naming them) and leave the scorer as it was. 1e-30: Mahalanobis and
 * SSD distances do not depend on a common scale, so they equal the unscaled scores; KNN and
 * PROTOTYPE values (about 1e-60) lie below float32 and are the float32 rounding of the exact
 * value, 0. 1e-41 (subnormal): the Gaussian projection would overflow, and fit refuses. */
START_TEST(unnormalised_scorers_at_extreme_magnitudes)
{
    const int64_t n = 40, d = 4, C = 3, m = 8;
    float *x = make_rows(3, n, d, C, 1.5), *q = make_rows(4, m, d, C, 1.5);
    int32_t *y = cyclic_labels(n, C);
    float *xb = pow2_scaled(x, n * d, 100), *qb = pow2_scaled(q, m * d, 100);
    float *xt = pow2_scaled(x, n * d, -100), *qt = pow2_scaled(q, m * d, -100);
    float *xs = pow2_scaled(x, n * d, -136);
    for (int32_t kind = PROTOOD_SCORER_KNN; kind <= PROTOOD_SCORER_PROTOTYPE; kind++) {
        assert_scorer_matches_reference(kind, d, 0, 3, n, x, y, C, m, q);
        protood_scorer *s = fitted(kind, d, 0, 3, n, x, y, C);
        float *want = scores(s, m, q), out[8];
        size_t size;
        unsigned char *before = scorer_bytes(s, &size);
        const int32_t *yk = kind == PROTOOD_SCORER_MAHALANOBIS ? y : NULL;
        int64_t ck = kind == PROTOOD_SCORER_MAHALANOBIS ? C : 0;

        expect_error(protood_scorer_fit(s, n, xb, yk, ck), PROTOOD_E_NONFINITE, "x row 0 has squared norm");
        assert_scorer_unchanged(s, before, size);
        for (int64_t r = 0; r < m; r++)
            out[r] = 42.0f;
        expect_error(protood_scorer_score(s, m, qb, out), PROTOOD_E_NONFINITE, "q row 0 has squared norm");
        for (int64_t r = 0; r < m; r++)
            ck_assert(out[r] == 42.0f);

        protood_scorer *t = fitted(kind, d, 0, 3, n, xt, y, C);
        float *got = scores(t, m, qt);
        if (kind == PROTOOD_SCORER_MAHALANOBIS || kind == PROTOOD_SCORER_SSD) {
            double *wd = malloc((size_t)m * sizeof *wd);
            for (int64_t r = 0; r < m; r++)
                wd[r] = want[r];
            assert_scores_close(got, wd, m, "Gaussian score of rows x 2^-100");
            free(wd);
            /* 2^-136 (subnormal floats): refused, naming x, scorer unchanged */
            expect_error(protood_scorer_fit(s, n, xs, yk, ck), PROTOOD_E_INVALID_ARG, "x: the ");
            ck_assert_ptr_nonnull(strstr(protood_last_error(), "too small for float32"));
            assert_scorer_unchanged(s, before, size);
        } else {
            for (int64_t r = 0; r < m; r++) {
                /* -|q - x|^2 and q.p both scale by 2^-200: exactly about 1e-60, 0 in float32 */
                double exact = ldexp(want[r], -200);
                ck_assert_msg(got[r] == (float)exact && got[r] == 0.0f, "kind %d score[%lld] = %g", kind, (long long)r,
                              (double)got[r]);
            }
            assert_scorer_matches_reference(kind, d, 0, 3, n, xt, y, C, m, qt);
        }
        free(got);
        protood_scorer_free(t);
        free(before);
        free(want);
        protood_scorer_free(s);
    }
    free(x);
    free(q);
    free(y);
    free(xb);
    free(qb);
    free(xt);
    free(qt);
    free(xs);
}
END_TEST

/* Prototypes from features: the rows are scaled to unit norm first, so 2^100 and 2^-100 give the
 * bits of the unscaled rows; with K = 1 those are n2 of the mean of the unit rows. */
START_TEST(bank_init_ignores_the_magnitude_of_rows)
{
    const int64_t n = 30, d = 5, C = 3;
    float *x = make_rows(5, n, d, C, 1.0);
    int32_t *y = cyclic_labels(n, C);
    for (int64_t K = 1; K <= 3; K += 2) {
        float *want = NULL;
        for (int e = -100; e <= 100; e += 100) {
            protood_bank *b;
            ck_assert_int_eq(protood_bank_create(&b, C, K, d), PROTOOD_OK);
            float *xs = pow2_scaled(x, n * d, e);
            ck_assert_int_eq(protood_bank_init_from_features(b, n, xs, y, 9), PROTOOD_OK);
            float *p = prototypes(b);
            if (!want)
                want = p;
            else {
                ck_assert_msg(memcmp(p, want, (size_t)(C * K * d) * sizeof *p) == 0, "K = %lld, rows x 2^%d",
                              (long long)K, e);
                free(p);
            }
            free(xs);
            protood_bank_free(b);
        }
        if (K == 1)
            for (int64_t c = 0; c < C; c++) {
                double mean[5] = {0}, u[5], s = 0.0;
                for (int64_t i = c; i < n; i += C) {
                    unit_row(x + i * d, d, u);
                    for (int64_t j = 0; j < d; j++)
                        mean[j] += u[j];
                }
                for (int64_t j = 0; j < d; j++)
                    s += mean[j] * mean[j];
                for (int64_t j = 0; j < d; j++)
                    ck_assert_double_eq_tol(want[c * d + j], mean[j] / sqrt(s), 1e-6);
            }
        free(want);
    }
    free(x);
    free(y);
}
END_TEST

/* A training step normalises its rows: at 2^100 the losses and the bank are the bits of the
 * unscaled step and the gradient (dL/dh, proportional to 1/|h|) is 2^-100 times the unscaled
 * one; palm_assign gives the same weights. */
START_TEST(steps_on_rows_of_magnitude_1e30)
{
    const int64_t n = 12, D = 5;
    float *h = make_rows(6, n, D, 1, 0.0), *hb = pow2_scaled(h, n * D, 100);
    for (int cider = 0; cider <= 1; cider++) {
        const int64_t C = 3, K = cider ? 1 : 2, P = C * K;
        int32_t *y = cyclic_labels(n, C);
        protood_bank *a, *b;
        ck_assert_int_eq(protood_bank_create(&a, C, K, D), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_random(a, PROTOOD_INIT_SPHERE, 6), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_set_param(a, PROTOOD_BANK_MOMENTUM, cider ? 0.5 : 0.9), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_clone(&b, a), PROTOOD_OK);
        if (!cider) {
            float *wa = malloc((size_t)(n * P) * sizeof *wa), *wb = malloc((size_t)(n * P) * sizeof *wb);
            ck_assert_int_eq(protood_palm_assign(a, n, h, y, wa), PROTOOD_OK);
            ck_assert_int_eq(protood_palm_assign(b, n, hb, y, wb), PROTOOD_OK);
            ck_assert_mem_eq(wa, wb, (size_t)(n * P) * sizeof *wa);
            free(wa);
            free(wb);
        }
        double la[3], lb[3];
        float ga[60], gb[60];
        ck_assert_int_eq(cider ? protood_cider_step(a, n, h, y, la, ga) : protood_palm_step(a, n, h, y, la, ga),
                         PROTOOD_OK);
        ck_assert_int_eq(cider ? protood_cider_step(b, n, hb, y, lb, gb) : protood_palm_step(b, n, hb, y, lb, gb),
                         PROTOOD_OK);
        ck_assert_mem_eq(la, lb, sizeof la);
        float *pa = prototypes(a), *pb = prototypes(b);
        ck_assert_mem_eq(pa, pb, (size_t)(P * D) * sizeof *pa);
        double gmax = 0.0;
        for (int64_t k = 0; k < n * D; k++)
            gmax = fmax(gmax, fabs(ga[k]));
        for (int64_t k = 0; k < n * D; k++)
            ck_assert_msg(fabs(ldexp(gb[k], 100) - ga[k]) <= 1e-6 * gmax, "%s grad[%lld]: 2^100 x %g vs %g",
                          cider ? "CIDER" : "PALM", (long long)k, (double)gb[k], (double)ga[k]);
        free(pa);
        free(pb);
        free(y);
        protood_bank_free(a);
        protood_bank_free(b);
    }
    free(h);
    free(hb);
}
END_TEST

/* Below norm 1e-12 a step normalises by SPEC.md §1's n2, x / max(|x|, 1e-12), as the reference's
 * F.normalize does: a row of magnitude 1e-30 becomes a vector of norm ~1e-18, whose cosine with
 * every prototype is ~0. The steps must give the float64 reference's finite losses, prototypes and
 * gradient (about 1e12, the n2 Jacobian I / 1e-12), checked by finite differences of 1e-18 that
 * keep the rows below the floor. TOPK = 0: with all scores ~0 a top-k would be decided by
 * rounding noise. palm_assign gives the uniform 1/K over each row's class. */
START_TEST(steps_on_rows_of_magnitude_1e_30)
{
    const int64_t n = 8, D = 4;
    float *h0 = make_rows(7, n, D, 1, 0.0), *h = pow2_scaled(h0, n * D, -100);
    int32_t *y = cyclic_labels(n, 3);
    tu_palm_params rp = {3, 2, D, 0.9, 0.1, 0.05, 1.0, 0.5, 3, 0};
    protood_bank *b = tu_palm_bank(&rp, 8);
    float w[8 * 6];
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, w), PROTOOD_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < 6; j++)
            ck_assert_double_eq_tol(w[i * 6 + j], j / 2 == y[i] ? 0.5 : 0.0, 1e-6);
    tu_step_check c = tu_check_palm_step(&rp, b, n, h, y);
    ck_assert_msg(c.gmax > 1e9, "the gradient (max %g) should carry n2's 1/1e-12", c.gmax);
    protood_bank_free(b);
    b = tu_palm_bank(&rp, 9);
    tu_check_palm_step(&rp, b, n, h, NULL);
    protood_bank_free(b);

    tu_cider_params cp = {3, D, 0.5, 0.1, 1.0, 0.1, 0.07};
    b = tu_cider_bank(&cp, 10);
    c = tu_check_cider_step(&cp, b, n, h, y);
    ck_assert_msg(c.gmax > 1e9, "the gradient (max %g) should carry n2's 1/1e-12", c.gmax);
    protood_bank_free(b);
    free(h0);
    free(h);
    free(y);
}
END_TEST

/* ---- one feature (D = 1) ---------------------------------------------------------------- */

/* With D = 1 every normalised row and prototype is +1 or -1. PALM on a bank of +1 prototypes,
 * by hand: all scores of a row are equal, so Sinkhorn is uniform and W = 1/K on the row's class;
 * L = z / tau for every prototype gives L_mle = log P; the prototypes stay +1 (m + (1 - m) u > 0
 * for m = 0.9), so G = 0 and L_pcon = log(P - 1); and the gradient is 0, since a one-feature row
 * keeps its direction under any small change. */
START_TEST(palm_step_with_one_feature)
{
    const int64_t n = 7, C = 2, K = 3, P = C * K;
    float h[7] = {0.5f, -2.0f, 3.0f, -0.25f, 1.0f, -7.0f, 2.5f}, grad[7], w[7 * 6];
    int32_t *y = cyclic_labels(n, C);
    tu_palm_params rp = {C, K, 1, 0.9, 0.1, 0.05, 1.0, 0.5, 3, 5};
    protood_bank *b = tu_palm_bank(&rp, 1);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_POSITIVE, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, w), PROTOOD_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < P; j++)
            ck_assert_double_eq_tol(w[i * P + j], j / K == y[i] ? 1.0 / K : 0.0, 1e-6);
    double losses[3];
    ck_assert_int_eq(protood_palm_step(b, n, h, y, losses, grad), PROTOOD_OK);
    ck_assert_double_eq_tol(losses[1], log((double)P), 1e-6);
    ck_assert_double_eq_tol(losses[2], log((double)(P - 1)), 1e-6);
    ck_assert_double_eq_tol(losses[0], log((double)P) + log((double)(P - 1)), 1e-6);
    for (int64_t i = 0; i < n; i++)
        ck_assert(grad[i] == 0.0f);
    float *p = prototypes(b);
    for (int64_t j = 0; j < P; j++)
        ck_assert(p[j] == 1.0f);
    free(p);
    protood_bank_free(b);
    /* and the same step against the float64 reference, unsupervised too */
    ck_assert_int_eq(protood_bank_init_random(b = tu_palm_bank(&rp, 1), PROTOOD_INIT_POSITIVE, 1), PROTOOD_OK);
    tu_check_palm_step(&rp, b, n, h, y);
    tu_check_palm_step(&rp, b, n, h, NULL);
    protood_bank_free(b);
    free(y);
}
END_TEST

/* With m = 0.5 a prototype whose rows all point the other way gets m p + (1 - m) u = 0: D = 1
 * makes that the usual case. The prototype keeps its row (the reference would zero it, and a bank
 * holding a zero prototype could be saved but not loaded), and carries no gradient. */
START_TEST(palm_update_that_cancels_keeps_the_prototype)
{
    const int64_t n = 3;
    tu_palm_params rp = {1, 2, 1, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 0};
    const float protos[2] = {1.0f, -1.0f}, h[3] = {-2.0f, -0.5f, -3.0f};
    const int32_t y[3] = {0, 0, 0};
    protood_bank *b = tu_palm_bank(&rp, 2);
    ck_assert_int_eq(protood_bank_set_prototypes(b, protos), PROTOOD_OK);
    tu_check_palm_step(&rp, b, n, h, y);
    float *p = prototypes(b);
    ck_assert(p[0] == 1.0f && p[1] == -1.0f);
    assert_bank_round_trips(b);
    free(p);
    protood_bank_free(b);
}
END_TEST

/* CIDER with m = 0.5 (its default) on one feature: a row opposite to its class prototype cancels
 * the update, which is skipped. Bank [+1, +1] and rows of class 0 pointing to -1: the bank stays
 * [+1, +1]; by hand L_dis = (tau / 0.1) log e^(1 / tau) = 10 and every row's logits are equal
 * (+-1 / tau for both classes) so L_comp = (tau / 0.07) log 2; the gradient is 0 (D = 1). */
START_TEST(cider_step_with_one_feature)
{
    const int64_t n = 4;
    tu_cider_params cp = {2, 1, 0.5, 0.1, 1.0, 0.1, 0.07};
    const float h[4] = {-1.0f, 2.0f, -3.0f, 0.5f};
    const int32_t y[4] = {0, 1, 0, 1};
    protood_bank *b = tu_cider_bank(&cp, 3);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_POSITIVE, 3), PROTOOD_OK);
    double losses[3];
    float grad[4];
    ck_assert_int_eq(protood_cider_step(b, n, h, y, losses, grad), PROTOOD_OK);
    ck_assert_double_eq_tol(losses[2], 10.0, 1e-6);
    ck_assert_double_eq_tol(losses[1], 0.1 / 0.07 * log(2.0), 1e-6);
    ck_assert_double_eq_tol(losses[0], losses[1] + losses[2], 1e-12);
    for (int64_t i = 0; i < n; i++)
        ck_assert(grad[i] == 0.0f);
    float *p = prototypes(b);
    ck_assert(p[0] == 1.0f && p[1] == 1.0f);
    assert_bank_round_trips(b);
    free(p);
    protood_bank_free(b);
    ck_assert_int_eq(protood_bank_init_random(b = tu_cider_bank(&cp, 3), PROTOOD_INIT_POSITIVE, 3), PROTOOD_OK);
    tu_check_cider_step(&cp, b, n, h, y);
    protood_bank_free(b);
}
END_TEST

/* Scorers on one feature, by hand. KNN: normalised rows are +-1 at distance 0 or 4. MAHALANOBIS
 * (raw): max_c -(q - mu_c)^2 / sigma^2 with the pooled population variance; on normalised rows the
 * same on +-1. SSD (raw): -(q - mean)^2 / var (standardising one feature changes nothing).
 * PROTOTYPE: max_j q x_j, or on normalised rows +1 if any row has the query's sign. */
START_TEST(scorers_with_one_feature)
{
    const float x[6] = {1.0f, -2.0f, 3.0f, 0.5f, -1.0f, 4.0f}, q[4] = {2.0f, -7.0f, 0.25f, -0.5f};
    const int32_t y[6] = {0, 0, 0, 1, 1, 1};
    for (int norm = 0; norm <= 1; norm++) {
        double v[6], mu[2] = {0, 0}, mean = 0, var = 0, pooled = 0;
        for (int i = 0; i < 6; i++) {
            v[i] = norm ? (x[i] > 0 ? 1.0 : -1.0) : x[i];
            mu[y[i]] += v[i] / 3;
            mean += v[i] / 6;
        }
        for (int i = 0; i < 6; i++) {
            pooled += (v[i] - mu[y[i]]) * (v[i] - mu[y[i]]) / 6;
            var += (v[i] - mean) * (v[i] - mean) / 6;
        }
        protood_scorer *maha = fitted(PROTOOD_SCORER_MAHALANOBIS, 1, norm, 0, 6, x, y, 2);
        protood_scorer *ssd = fitted(PROTOOD_SCORER_SSD, 1, norm, 0, 6, x, y, 0);
        protood_scorer *proto = fitted(PROTOOD_SCORER_PROTOTYPE, 1, norm, 0, 6, x, y, 0);
        float *sm = scores(maha, 4, q), *ss = scores(ssd, 4, q), *sp = scores(proto, 4, q);
        for (int r = 0; r < 4; r++) {
            double u = norm ? (q[r] > 0 ? 1.0 : -1.0) : q[r], best = -INFINITY, dot = -INFINITY;
            for (int c = 0; c < 2; c++)
                best = fmax(best, -(u - mu[c]) * (u - mu[c]) / pooled);
            for (int i = 0; i < 6; i++)
                dot = fmax(dot, u * v[i]);
            ck_assert_double_eq_tol(sm[r], best, 1e-4 * fmax(1, fabs(best)));
            ck_assert_double_eq_tol(ss[r], -(u - mean) * (u - mean) / var, 1e-4 * fmax(1, (u - mean) * (u - mean) / var));
            ck_assert_double_eq_tol(sp[r], dot, 1e-6 * fmax(1, fabs(dot)));
        }
        for (int64_t k = 1; k <= 6; k++) {
            protood_scorer *knn = fitted(PROTOOD_SCORER_KNN, 1, norm, k, 6, x, y, 0);
            float *sk = scores(knn, 4, q);
            for (int r = 0; r < 4; r++) {
                double d2[6];
                double u = norm ? (q[r] > 0 ? 1.0 : -1.0) : q[r];
                for (int i = 0; i < 6; i++)
                    d2[i] = (u - v[i]) * (u - v[i]);
                qsort(d2, 6, sizeof *d2, cmp_double);
                ck_assert_msg(sk[r] == (float)-d2[k - 1], "k = %lld, normalize = %d: score %g, by hand %g", (long long)k,
                              norm, (double)sk[r], -d2[k - 1]);
            }
            free(sk);
            protood_scorer_free(knn);
        }
        free(sm);
        free(ss);
        free(sp);
        protood_scorer_free(maha);
        protood_scorer_free(ssd);
        protood_scorer_free(proto);
    }
}
END_TEST

/* Prototypes from one-feature rows: K = 1 takes the sign of the sum of the row signs, and a class
 * whose rows cancel (one +, one -) keeps its prototype (documented); K = 2 finds both signs, and a
 * class of one sign fills slot 0 and keeps slot 1. Sinkhorn on n x 1 and 1 x p scores, by hand:
 * every row of an n x 1 matrix is its single entry, 1; a 1 x p row is uniform, 1/p. */
START_TEST(bank_init_and_sinkhorn_with_one_feature)
{
    const float x[5] = {2.0f, -1.0f, 3.0f, -1.5f, 0.5f}, keep[2] = {-1.0f, -1.0f};
    const int32_t y1[5] = {0, 0, 0, 1, 1};
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 2, 1, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_prototypes(b, keep), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_from_features(b, 5, x, y1, 1), PROTOOD_OK);
    float *p = prototypes(b);
    ck_assert(p[0] == 1.0f && p[1] == -1.0f);   /* class 1: -1.5 and 0.5 cancel as unit rows */
    free(p);
    protood_bank_free(b);

    const int32_t y2[5] = {0, 0, 0, 0, 1};
    const float keep2[4] = {-1.0f, -1.0f, -1.0f, -1.0f};
    ck_assert_int_eq(protood_bank_create(&b, 2, 2, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_prototypes(b, keep2), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_from_features(b, 5, x, y2, 1), PROTOOD_OK);
    p = prototypes(b);
    ck_assert(p[0] == -p[1] && fabsf(p[0]) == 1.0f);   /* class 0: both signs */
    ck_assert(p[2] == 1.0f && p[3] == -1.0f);           /* class 1: one row, slot 1 kept */
    free(p);
    protood_bank_free(b);

    float s[5] = {0.3f, -0.9f, 0.7f, 0.1f, -0.2f}, out[5];
    for (double eps = 1e-4; eps < 0.1; eps *= 500) {
        ck_assert_int_eq(protood_sinkhorn(5, 1, s, eps, 3, out), PROTOOD_OK);
        for (int i = 0; i < 5; i++)
            ck_assert_double_eq_tol(out[i], 1.0, 1e-6);
        ck_assert_int_eq(protood_sinkhorn(1, 5, s, eps, 3, out), PROTOOD_OK);
        for (int j = 0; j < 5; j++)
            ck_assert_double_eq_tol(out[j], 0.2, 1e-6);
    }
}
END_TEST

/* ---- a single class ------------------------------------------------------------------------ */

/* PALM with one class: supervised and unsupervised steps see the same mask and the same top-k
 * (clamped to K = P), so they agree on L_mle and on the new bank; they differ only in L_pcon,
 * whose supervised form adds the positive term -(1/P) sum_a mean_{b != a} G_ab with
 * G_ab = (p_a.p_b - 1) / tau_p, computed here from the new bank. */
START_TEST(palm_step_with_a_single_class)
{
    const int64_t n = 10, K = 4, D = 6;
    tu_palm_params rp = {1, K, D, 0.7, 0.1, 0.05, 1.0, 0.5, 3, 2};
    float *h = make_rows(11, n, D, 1, 0.0);
    int32_t *y = cyclic_labels(n, 1);
    protood_bank *b = tu_palm_bank(&rp, 11), *u;
    ck_assert_int_eq(protood_bank_clone(&u, b), PROTOOD_OK);
    float ws[10 * 4], wu[10 * 4];
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, ws), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_assign(u, n, h, NULL, wu), PROTOOD_OK);
    for (int64_t k = 0; k < n * K; k++)
        ck_assert_double_eq_tol(ws[k], wu[k], 1e-6);
    tu_check_palm_step(&rp, b, n, h, y);
    double lu[3], ls[3];
    protood_bank *b2;
    ck_assert_int_eq(protood_bank_clone(&b2, u), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(u, n, h, NULL, lu, NULL), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b2, n, h, y, ls, NULL), PROTOOD_OK);
    float *pu = prototypes(u), *ps = prototypes(b2);
    for (int64_t k = 0; k < K * D; k++)
        ck_assert_double_eq_tol(pu[k], ps[k], 1e-7);
    ck_assert_double_eq_tol(ls[1], lu[1], 1e-9 * fabs(lu[1]));
    double pos = 0.0;
    for (int64_t a = 0; a < K; a++)
        for (int64_t c = 0; c < K; c++) {
            if (c == a)
                continue;
            double dot = 0.0;
            for (int64_t j = 0; j < D; j++)
                dot += (double)ps[a * D + j] * ps[c * D + j];
            pos += (dot - 1.0) / rp.tau_p / (double)(K - 1);
        }
    ck_assert_double_eq_tol(ls[2] - lu[2], -pos / (double)K, 1e-5);
    free(pu);
    free(ps);
    protood_bank_free(b);
    protood_bank_free(b2);
    protood_bank_free(u);
    free(h);
    free(y);
}
END_TEST

/* CIDER with one class: no other prototype to disperse from (L_dis = 0, documented) and a
 * softmax over one class is 1, so L_comp = 0 and the gradient is exactly 0; the prototype still
 * moves by the sequential EMA (checked against the reference). */
START_TEST(cider_step_with_a_single_class)
{
    const int64_t n = 6, D = 5;
    tu_cider_params cp = {1, D, 0.5, 0.1, 1.0, 0.1, 0.07};
    float *h = make_rows(12, n, D, 1, 0.0), grad[6 * 5];
    int32_t *y = cyclic_labels(n, 1);
    protood_bank *b = tu_cider_bank(&cp, 12);
    double losses[3];
    ck_assert_int_eq(protood_cider_step(b, n, h, y, losses, grad), PROTOOD_OK);
    ck_assert(losses[0] == 0.0 && losses[1] == 0.0 && losses[2] == 0.0);
    for (int64_t k = 0; k < n * D; k++)
        ck_assert(grad[k] == 0.0f);
    protood_bank_free(b);
    tu_check_cider_step(&cp, b = tu_cider_bank(&cp, 12), n, h, y);
    protood_bank_free(b);
    free(h);
    free(y);
}
END_TEST

/* Gaussian scorers with one class: MAHALANOBIS is then -(q - mu)^T S^-1 (q - mu), which is also
 * SSD's score when the covariance has full rank (standardising each feature is an invertible
 * diagonal change of variables, under which that distance does not change). Both against the
 * float64 reference, and against each other. Prototypes from one class with K = 1: n2 of the mean
 * of the unit rows. */
START_TEST(scorers_and_bank_with_a_single_class)
{
    const int64_t n = 30, d = 3, m = 12;
    float *x = make_rows(13, n, d, 1, 0.0), *q = make_rows(14, m, d, 1, 0.0);
    int32_t *y = cyclic_labels(n, 1);
    for (int norm = 0; norm <= 1; norm++) {
        assert_scorer_matches_reference(PROTOOD_SCORER_MAHALANOBIS, d, norm, 0, n, x, y, 1, m, q);
        assert_scorer_matches_reference(PROTOOD_SCORER_SSD, d, norm, 0, n, x, NULL, 0, m, q);
        protood_scorer *maha = fitted(PROTOOD_SCORER_MAHALANOBIS, d, norm, 0, n, x, y, 1);
        protood_scorer *ssd = fitted(PROTOOD_SCORER_SSD, d, norm, 0, n, x, NULL, 0);
        float *a = scores(maha, m, q), *b = scores(ssd, m, q);
        for (int64_t r = 0; r < m; r++)
            ck_assert_double_eq_tol(a[r], b[r], 1e-4 * fmax(1, fabs(b[r])));
        free(a);
        free(b);
        protood_scorer_free(maha);
        protood_scorer_free(ssd);
    }
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, 1, 1, d), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_from_features(bank, n, x, y, 1), PROTOOD_OK);
    float *p = prototypes(bank);
    double mean[3] = {0, 0, 0}, u[3], s = 0;
    for (int64_t i = 0; i < n; i++) {
        unit_row(x + i * d, d, u);
        for (int64_t j = 0; j < d; j++)
            mean[j] += u[j];
    }
    for (int64_t j = 0; j < d; j++)
        s += mean[j] * mean[j];
    for (int64_t j = 0; j < d; j++)
        ck_assert_double_eq_tol(p[j], mean[j] / sqrt(s), 1e-6);
    free(p);
    protood_bank_free(bank);
    free(x);
    free(q);
    free(y);
}
END_TEST

/* ---- a class with one row ------------------------------------------------------------------ */

/* PALM: the lone row of class 2 is the only row in its prototypes' columns of A, so those columns
 * are 1 on the row's support (the top-k that palm_assign reports on the bank as it is) and
 * U_j = z: by hand, P'_j = n2(m p_j + (1 - m) z) there, and the class's other prototypes keep
 * their bits. CIDER: the lone row's class takes one update, n2(m mu + (1 - m) z). Both steps also
 * against the float64 reference. */
START_TEST(steps_with_a_class_of_one_row)
{
    const int64_t n = 9, C = 3, K = 3, D = 5, P = C * K, lone = 8;
    const int32_t y[9] = {0, 1, 0, 1, 0, 1, 0, 1, 2};
    float *h = make_rows(15, n, D, 1, 0.0);
    tu_palm_params rp = {C, K, D, 0.7, 0.1, 0.05, 1.0, 0.5, 3, 2};
    protood_bank *b = tu_palm_bank(&rp, 15);
    float w[9 * 9], grad[9 * 5];
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, w), PROTOOD_OK);
    float *before = prototypes(b);
    double z[5], losses[3];
    unit_row(h + lone * D, D, z);
    ck_assert_int_eq(protood_palm_step(b, n, h, y, losses, grad), PROTOOD_OK);
    float *after = prototypes(b);
    int moved = 0;
    for (int64_t j = 2 * K; j < P; j++) {
        if (w[lone * P + j] > 0) {
            double v[5], s = 0;
            for (int64_t t = 0; t < D; t++) {
                v[t] = 0.7 * before[j * D + t] + 0.3 * z[t];
                s += v[t] * v[t];
            }
            for (int64_t t = 0; t < D; t++)
                ck_assert_double_eq_tol(after[j * D + t], v[t] / sqrt(s), 1e-6);
            moved++;
        } else {
            ck_assert_mem_eq(after + j * D, before + j * D, (size_t)D * sizeof(float));
        }
    }
    ck_assert_int_eq(moved, 2);   /* TOPK = 2 of the class's K = 3 */
    free(before);
    free(after);
    protood_bank_free(b);
    tu_check_palm_step(&rp, b = tu_palm_bank(&rp, 15), n, h, y);
    protood_bank_free(b);

    tu_cider_params cp = {C, D, 0.5, 0.1, 1.0, 0.1, 0.07};
    b = tu_cider_bank(&cp, 16);
    before = prototypes(b);
    ck_assert_int_eq(protood_cider_step(b, n, h, y, losses, grad), PROTOOD_OK);
    after = prototypes(b);
    double v[5], s = 0;
    for (int64_t t = 0; t < D; t++) {
        v[t] = 0.5 * before[2 * D + t] + 0.5 * z[t];
        s += v[t] * v[t];
    }
    for (int64_t t = 0; t < D; t++)
        ck_assert_double_eq_tol(after[2 * D + t], v[t] / sqrt(s), 1e-6);
    free(before);
    free(after);
    protood_bank_free(b);
    tu_check_cider_step(&cp, b = tu_cider_bank(&cp, 16), n, h, y);
    protood_bank_free(b);
    free(h);
}
END_TEST

/* MAHALANOBIS with a class of one row: that row is the class mean, so a query equal to it scores
 * 0 (the largest possible score); all scores match the reference. A class with no row at all is
 * refused, naming it, and the scorer stays as it was. KNN on a single row (k = 1 = n) is the
 * distance to it. Prototypes from features: K = 1 gives the unit row; K = 3 fills slot 0 with it
 * and keeps slots 1 and 2. */
START_TEST(scorers_and_bank_with_a_class_of_one_row)
{
    const int64_t n = 25, d = 3, C = 3, m = 6;
    float *x = make_rows(17, n, d, 2, 2.0), *q = make_rows(18, m, d, 2, 2.0);
    int32_t *y = cyclic_labels(n, 2);
    y[n - 1] = 2;   /* the lone row of class 2 */
    for (int norm = 0; norm <= 1; norm++) {
        assert_scorer_matches_reference(PROTOOD_SCORER_MAHALANOBIS, d, norm, 0, n, x, y, C, m, q);
        protood_scorer *s = fitted(PROTOOD_SCORER_MAHALANOBIS, d, norm, 0, n, x, y, C);
        float at;
        ck_assert_int_eq(protood_scorer_score(s, 1, x + (n - 1) * d, &at), PROTOOD_OK);
        ck_assert_msg(fabs(at) <= 1e-5, "the lone row scores %g, expected 0", (double)at);
        size_t size;
        unsigned char *bytes = scorer_bytes(s, &size);
        expect_error(protood_scorer_fit(s, n, x, y, C + 1), PROTOOD_E_INVALID_ARG, "class 3 of n_classes = 4 has no rows");
        assert_scorer_unchanged(s, bytes, size);
        free(bytes);
        protood_scorer_free(s);
    }
    for (int norm = 0; norm <= 1; norm++)
        assert_scorer_matches_reference(PROTOOD_SCORER_KNN, d, norm, 1, 1, x, NULL, 0, m, q);

    const int32_t one[1] = {1};
    float keep[2 * 3 * 3], u[3];
    for (int64_t k = 0; k < 2 * 3 * 3; k++)
        keep[k] = k % 3 == 0 ? 1.0f : 0.0f;
    unit_row_f(x, d, u);
    for (int64_t K = 1; K <= 3; K += 2) {
        protood_bank *b;
        ck_assert_int_eq(protood_bank_create(&b, 2, K, d), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_set_prototypes(b, keep), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_from_features(b, 1, x, one, 4), PROTOOD_OK);
        float *p = prototypes(b);
        for (int64_t j = 0; j < d; j++)
            ck_assert_double_eq_tol(p[K * d + j], u[j], 1e-7);
        ck_assert_mem_eq(p, keep, (size_t)(K * d) * sizeof *p);                     /* class 0: no rows */
        ck_assert_mem_eq(p + (K + 1) * d, keep, (size_t)((K - 1) * d) * sizeof *p); /* slots 1.. kept */
        free(p);
        protood_bank_free(b);
    }
    free(x);
    free(q);
    free(y);
}
END_TEST

/* ---- duplicate rows ---------------------------------------------------------------------- */

/* A PALM batch in which every row appears twice is the same step: Sinkhorn's scalings do not see
 * the repetition, A's column normalisation halves each copy's weight, so U, the bank and the
 * losses (means over rows) are unchanged, and each copy's gradient is half the row's. Checked on
 * the doubled batch against the reference too; and CIDER with duplicate rows (each a separate
 * sequential update) against its reference. */
START_TEST(steps_with_duplicate_rows)
{
    const int64_t n = 8, D = 5;
    tu_palm_params rp = {2, 3, D, 0.7, 0.1, 0.05, 1.0, 0.5, 3, 2};
    float *h = make_rows(21, n, D, 1, 0.0), *h2 = malloc((size_t)(2 * n * D) * sizeof *h2);
    int32_t *y = cyclic_labels(n, 2), y2[16];
    memcpy(h2, h, (size_t)(n * D) * sizeof *h);
    memcpy(h2 + n * D, h, (size_t)(n * D) * sizeof *h);
    memcpy(y2, y, (size_t)n * sizeof *y);
    memcpy(y2 + n, y, (size_t)n * sizeof *y);
    protood_bank *a = tu_palm_bank(&rp, 21), *b;
    ck_assert_int_eq(protood_bank_clone(&b, a), PROTOOD_OK);
    double la[3], lb[3];
    float ga[8 * 5], gb[16 * 5];
    ck_assert_int_eq(protood_palm_step(a, n, h, y, la, ga), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b, 2 * n, h2, y2, lb, gb), PROTOOD_OK);
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq_tol(lb[k], la[k], 1e-6 * fabs(la[k]));
    float *pa = prototypes(a), *pb = prototypes(b);
    for (int64_t k = 0; k < 6 * D; k++)
        ck_assert_double_eq_tol(pb[k], pa[k], 1e-6);
    double gmax = 0;
    for (int64_t k = 0; k < n * D; k++)
        gmax = fmax(gmax, fabs(ga[k]));
    for (int64_t k = 0; k < n * D; k++) {
        ck_assert_double_eq_tol(gb[k], ga[k] / 2, 1e-5 * gmax);
        ck_assert_double_eq_tol(gb[n * D + k], ga[k] / 2, 1e-5 * gmax);
    }
    free(pa);
    free(pb);
    protood_bank_free(a);
    protood_bank_free(b);
    tu_check_palm_step(&rp, b = tu_palm_bank(&rp, 21), 2 * n, h2, y2);
    protood_bank_free(b);
    tu_cider_params cp = {2, D, 0.5, 0.1, 1.0, 0.1, 0.07};
    tu_check_cider_step(&cp, b = tu_cider_bank(&cp, 22), 2 * n, h2, y2);
    protood_bank_free(b);
    free(h);
    free(h2);
    free(y);
}
END_TEST

/* Scorers on training rows that each appear three times. KNN for every k from 1 to 7: the three
 * copies are at distance exactly 0 from a query equal to them (the crowded boundary that takes
 * the exact fallback), then the next distinct row; brute force gives the bits. MAHALANOBIS and
 * SSD: repeating every row leaves the means and the population covariance unchanged, so the
 * scores equal those of the rows taken once. Prototypes from features with K = 3 on two distinct
 * rows (a three times, b twice): slots 0 and 1 are the two unit rows, slot 2 is kept. */
START_TEST(scorers_and_bank_with_duplicate_rows)
{
    const int64_t n = 20, d = 5, C = 2, m = 6;
    float *x = make_rows(23, n, d, C, 1.0), *x3 = malloc((size_t)(3 * n * d) * sizeof *x3);
    int32_t *y = cyclic_labels(n, C), y3[60];
    for (int r = 0; r < 3; r++) {
        memcpy(x3 + r * n * d, x, (size_t)(n * d) * sizeof *x);
        memcpy(y3 + r * n, y, (size_t)n * sizeof *y);
    }
    float *q = make_rows(24, m, d, C, 1.0);
    memcpy(q, x + 3 * d, (size_t)d * sizeof *q);   /* a query equal to a training row */
    for (int64_t k = 1; k <= 7; k++)
        assert_scorer_matches_reference(PROTOOD_SCORER_KNN, d, 1, k, 3 * n, x3, NULL, 0, m, q);
    protood_scorer *knn = fitted(PROTOOD_SCORER_KNN, d, 1, 3, 3 * n, x3, NULL, 0);
    float *sk = scores(knn, m, q);
    ck_assert(sk[0] == 0.0f);
    free(sk);
    protood_scorer_free(knn);
    for (int32_t kind = PROTOOD_SCORER_MAHALANOBIS; kind <= PROTOOD_SCORER_SSD; kind++) {
        protood_scorer *once = fitted(kind, d, 1, 0, n, x, y, C), *thrice = fitted(kind, d, 1, 0, 3 * n, x3, y3, C);
        float *a = scores(once, m, q), *b = scores(thrice, m, q);
        for (int64_t r = 0; r < m; r++)
            ck_assert_double_eq_tol(b[r], a[r], 1e-5 * fmax(1, fabs(a[r])));
        free(a);
        free(b);
        protood_scorer_free(once);
        protood_scorer_free(thrice);
    }

    float rows[5 * 5], keep[3 * 5], ua[5], ub[5];
    const int32_t zero[5] = {0, 0, 0, 0, 0};
    for (int r = 0; r < 5; r++)
        memcpy(rows + r * d, x + (r < 3 ? 0 : 1) * d, (size_t)d * sizeof(float));
    for (int64_t k = 0; k < 3 * d; k++)
        keep[k] = k % d == 4 ? 1.0f : 0.0f;
    unit_row_f(x, d, ua);
    unit_row_f(x + d, d, ub);
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, 1, 3, d), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_prototypes(bank, keep), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_from_features(bank, 5, rows, zero, 7), PROTOOD_OK);
    float *p = prototypes(bank);
    int a_first = fabsf(p[0] - ua[0]) < 1e-6f;
    for (int64_t j = 0; j < d; j++) {
        ck_assert_double_eq_tol(p[j], (a_first ? ua : ub)[j], 1e-6);
        ck_assert_double_eq_tol(p[d + j], (a_first ? ub : ua)[j], 1e-6);
    }
    ck_assert_mem_eq(p + 2 * d, keep + 2 * d, (size_t)d * sizeof *p);
    free(p);
    protood_bank_free(bank);
    free(x);
    free(x3);
    free(y);
    free(q);
}
END_TEST

/* ---- all rows identical ------------------------------------------------------------------ */

/* PALM on a batch of one row repeated, one label, TOPK = 0, lambda = 0, by hand. Sinkhorn of
 * identical rows is uniform whatever the scores, so W = 1/K on the class; every row has
 * A_ij = 1/n, so U = z and the class's prototypes become n2(m p + (1 - m) z) while the others
 * keep their bits; L_mle = -(mean_{j in class} L_j - log sum_j e^{L_j}) with L_j = z.P'_j / tau;
 * and each row's gradient is (I - z z^T) g / |h| with g = sum_j (softmax_j - W_j) P'_j / (n tau).
 * CIDER on the same batch: the prototype takes n updates n2(m mu + (1 - m) z) in turn. Both steps
 * also against the references (PALM with lambda = 1). palm_assign: 1/K on the class. */
START_TEST(steps_on_identical_rows)
{
    const int64_t n = 6, C = 2, K = 3, D = 4, P = C * K;
    const float row[4] = {0.3f, -1.2f, 0.8f, 2.0f};
    float h[6 * 4], w[6 * 6], grad[6 * 4];
    int32_t y[6];
    for (int64_t i = 0; i < n; i++) {
        memcpy(h + i * D, row, sizeof row);
        y[i] = 1;
    }
    tu_palm_params rp = {C, K, D, 0.6, 0.1, 0.05, 0.0, 0.5, 3, 0};
    protood_bank *b = tu_palm_bank(&rp, 31);
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, w), PROTOOD_OK);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < P; j++)
            ck_assert_double_eq_tol(w[i * P + j], j / K == 1 ? 1.0 / K : 0.0, 1e-6);
    float *p0 = prototypes(b);
    double losses[3], z[4], hn = 0;
    for (int64_t t = 0; t < D; t++)
        hn += (double)row[t] * row[t];
    hn = sqrt(hn);
    unit_row(row, D, z);
    ck_assert_int_eq(protood_palm_step(b, n, h, y, losses, grad), PROTOOD_OK);
    float *p1 = prototypes(b);
    double pn[6 * 4], L[6], lse = 0, mean_own = 0;
    for (int64_t j = 0; j < P; j++) {
        double s = 0;
        for (int64_t t = 0; t < D; t++) {
            pn[j * D + t] = j / K == 1 ? rp.m * p0[j * D + t] + (1 - rp.m) * z[t] : p0[j * D + t];
            s += pn[j * D + t] * pn[j * D + t];
        }
        for (int64_t t = 0; t < D; t++)
            pn[j * D + t] /= sqrt(s);
        L[j] = 0;
        for (int64_t t = 0; t < D; t++)
            L[j] += z[t] * pn[j * D + t] / rp.tau;
        lse += exp(L[j]);
        if (j / K == 1)
            mean_own += L[j] / K;
    }
    for (int64_t k = 0; k < P * D; k++)
        ck_assert_double_eq_tol(p1[k], pn[k], 1e-6);
    ck_assert_mem_eq(p1, p0, (size_t)(K * D) * sizeof *p1);   /* class 0: no rows */
    ck_assert_double_eq_tol(losses[1], -(mean_own - log(lse)), 1e-6);
    ck_assert(losses[2] == 0.0 && losses[0] == losses[1]);
    double g[4] = {0, 0, 0, 0}, dot = 0, gmax = 0;
    for (int64_t j = 0; j < P; j++) {
        double f = (exp(L[j]) / lse - (j / K == 1 ? 1.0 / K : 0.0)) / (n * rp.tau);
        for (int64_t t = 0; t < D; t++)
            g[t] += f * pn[j * D + t];
    }
    for (int64_t t = 0; t < D; t++)
        dot += z[t] * g[t];
    for (int64_t t = 0; t < D; t++) {
        g[t] = (g[t] - z[t] * dot) / hn;
        gmax = fmax(gmax, fabs(g[t]));
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t t = 0; t < D; t++)
            ck_assert_double_eq_tol(grad[i * D + t], g[t], 1e-5 * gmax);
    free(p0);
    free(p1);
    protood_bank_free(b);
    rp.lambda = 1.0;
    tu_check_palm_step(&rp, b = tu_palm_bank(&rp, 32), n, h, y);
    protood_bank_free(b);

    tu_cider_params cp = {C, D, 0.5, 0.1, 1.0, 0.1, 0.07};
    b = tu_cider_bank(&cp, 33);
    p0 = prototypes(b);
    ck_assert_int_eq(protood_cider_step(b, n, h, y, losses, grad), PROTOOD_OK);
    p1 = prototypes(b);
    double mu[4];
    for (int64_t t = 0; t < D; t++)
        mu[t] = p0[D + t];
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t t = 0; t < D; t++) {
            mu[t] = 0.5 * mu[t] + 0.5 * z[t];
            s += mu[t] * mu[t];
        }
        for (int64_t t = 0; t < D; t++)
            mu[t] /= sqrt(s);
    }
    for (int64_t t = 0; t < D; t++)
        ck_assert_double_eq_tol(p1[D + t], mu[t], 1e-6);
    ck_assert_mem_eq(p1, p0, (size_t)D * sizeof *p1);
    free(p0);
    free(p1);
    protood_bank_free(b);
    tu_check_cider_step(&cp, b = tu_cider_bank(&cp, 33), n, h, y);
    protood_bank_free(b);
}
END_TEST

/* Training rows all identical. KNN, for k = 1 and k = n: every row is at the same distance, the
 * score is -|q - x|^2 (brute force); PROTOTYPE: cos(q, x). MAHALANOBIS and SSD: the covariance is
 * zero and every score would be 0, so fit refuses, naming x, and a scorer fitted before keeps its
 * bits. Sinkhorn on identical rows is uniform, 1/p, for any epsilon. Prototypes from identical
 * rows: K = 1 gives the unit row; K = 3 fills slot 0 and keeps slots 1 and 2. */
START_TEST(scorers_bank_and_sinkhorn_on_identical_rows)
{
    const int64_t n = 12, d = 4, m = 5;
    const float row[4] = {1.5f, -0.5f, 0.25f, 3.0f};
    float x[12 * 4], *q = make_rows(41, m, d, 1, 0.0), *other = make_rows(42, n, d, 2, 1.0);
    int32_t *y = cyclic_labels(n, 2);
    for (int64_t i = 0; i < n; i++)
        memcpy(x + i * d, row, sizeof row);
    for (int64_t k = 1; k <= n; k += n - 1)
        assert_scorer_matches_reference(PROTOOD_SCORER_KNN, d, 1, k, n, x, NULL, 0, m, q);
    assert_scorer_matches_reference(PROTOOD_SCORER_PROTOTYPE, d, 1, 0, n, x, NULL, 0, m, q);
    for (int32_t kind = PROTOOD_SCORER_MAHALANOBIS; kind <= PROTOOD_SCORER_SSD; kind++) {
        const int32_t *yk = kind == PROTOOD_SCORER_MAHALANOBIS ? y : NULL;
        protood_scorer *s = fitted(kind, d, 1, 0, n, other, y, 2);
        size_t size;
        unsigned char *bytes = scorer_bytes(s, &size);
        expect_error(protood_scorer_fit(s, n, x, yk, yk ? 2 : 0), PROTOOD_E_INVALID_ARG, "x: the ");
        ck_assert_ptr_nonnull(strstr(protood_last_error(), "covariance is zero"));
        assert_scorer_unchanged(s, bytes, size);
        free(bytes);
        protood_scorer_free(s);
        protood_scorer *fresh;
        ck_assert_int_eq(protood_scorer_create(&fresh, kind, d), PROTOOD_OK);
        expect_error(protood_scorer_fit(fresh, n, x, yk, yk ? 2 : 0), PROTOOD_E_INVALID_ARG, "covariance is zero");
        int32_t fitted_flag = 1;
        ck_assert_int_eq(protood_scorer_info(fresh, NULL, NULL, &fitted_flag), PROTOOD_OK);
        ck_assert_int_eq(fitted_flag, 0);
        protood_scorer_free(fresh);
    }

    float s[7 * 5], out[7 * 5];
    for (int64_t i = 0; i < 7; i++)
        for (int64_t j = 0; j < 5; j++)
            s[i * 5 + j] = (float)(0.2 * (double)j - 0.4);
    for (double eps = 1e-4; eps < 0.1; eps *= 500) {
        ck_assert_int_eq(protood_sinkhorn(7, 5, s, eps, 3, out), PROTOOD_OK);
        for (int64_t k = 0; k < 35; k++)
            ck_assert_double_eq_tol(out[k], 0.2, 1e-6);
    }

    float keep[3 * 4], u[4];
    const int32_t zero[12] = {0};
    for (int64_t k = 0; k < 3 * d; k++)
        keep[k] = k % d == 1 ? 1.0f : 0.0f;
    unit_row_f(row, d, u);
    for (int64_t K = 1; K <= 3; K += 2) {
        protood_bank *b;
        ck_assert_int_eq(protood_bank_create(&b, 1, K, d), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_set_prototypes(b, keep), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_from_features(b, n, x, zero, 5), PROTOOD_OK);
        float *p = prototypes(b);
        for (int64_t j = 0; j < d; j++)
            ck_assert_double_eq_tol(p[j], u[j], 1e-7);
        ck_assert_mem_eq(p + d, keep + d, (size_t)((K - 1) * d) * sizeof *p);
        free(p);
        protood_bank_free(b);
    }
    free(q);
    free(other);
    free(y);
}
END_TEST

/* Metrics when every score is the same (the KNN scores of identical rows, for instance), by hand
 * as SPEC.md §7 defines them: one threshold admits everything, so AUROC = 1/2, AUPR = the positive
 * fraction, the ROC conventions count every OOD row (FPR 1) and the threshold conventions count
 * OOD rows strictly above an ID score (none). Also for large sets and extreme values. */
START_TEST(metrics_when_every_score_is_equal)
{
    static const float values[] = {0.0f, -4.0f, -1e30f, 1e-30f, -FLT_MAX};
    static const int64_t sizes[][2] = {{3, 2}, {1, 7}, {5000, 3000}};
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            int64_t ni = sizes[z][0], no = sizes[z][1];
            float *in = malloc((size_t)ni * sizeof *in), *out = malloc((size_t)no * sizeof *out);
            for (int64_t i = 0; i < ni; i++)
                in[i] = values[v];
            for (int64_t i = 0; i < no; i++)
                out[i] = values[v];
            double r;
            ck_assert_int_eq(protood_auroc(ni, in, no, out, &r), PROTOOD_OK);
            ck_assert_double_eq(r, 0.5);
            ck_assert_int_eq(protood_aupr(ni, in, no, out, PROTOOD_POSITIVE_IN, &r), PROTOOD_OK);
            ck_assert_double_eq(r, (double)ni / (double)(ni + no));
            ck_assert_int_eq(protood_aupr(ni, in, no, out, PROTOOD_POSITIVE_OUT, &r), PROTOOD_OK);
            ck_assert_double_eq(r, (double)no / (double)(ni + no));
            static const int32_t conv[4] = {PROTOOD_FPR_ROC, PROTOOD_FPR_OOD_POSITIVE, PROTOOD_FPR_KNN,
                                            PROTOOD_FPR_PERCENTILE};
            for (int c = 0; c < 4; c++) {
                ck_assert_int_eq(protood_fpr_at_tpr(ni, in, no, out, 0.95, conv[c], &r), PROTOOD_OK);
                ck_assert_msg(r == (c < 2 ? 1.0 : 0.0), "value %g, %lld/%lld, convention %d: %g", (double)values[v],
                              (long long)ni, (long long)no, conv[c], r);
            }
            free(in);
            free(out);
        }
}
END_TEST

/* ---- k = n_train --------------------------------------------------------------------------- */

/* KNN with k equal to the number of training rows: the score is minus the squared distance to the
 * farthest row (brute force, bit for bit), also when set on a fitted scorer. One more is refused
 * by set_param and by fit, naming k, and leaves the scorer as it was. */
START_TEST(knn_with_k_equal_to_the_training_rows)
{
    const int64_t n = 50, d = 8, m = 9;
    float *x = make_rows(51, n, d, 1, 0.0), *q = make_rows(52, m, d, 1, 0.0);
    for (int norm = 0; norm <= 1; norm++)
        assert_scorer_matches_reference(PROTOOD_SCORER_KNN, d, norm, n, n, x, NULL, 0, m, q);
    protood_scorer *s = fitted(PROTOOD_SCORER_KNN, d, 1, 5, n, x, NULL, 0);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, (double)n), PROTOOD_OK);
    float *got = scores(s, m, q);
    for (int64_t r = 0; r < m; r++) {
        float far = knn_ref(n, d, x, 1, n, q + r * d);
        ck_assert(got[r] == far);
        double farthest = 0.0;   /* the same value as a maximum, without sorting */
        float qn[8], xn[8];
        unit_row_f(q + r * d, d, qn);
        for (int64_t i = 0; i < n; i++) {
            unit_row_f(x + i * d, d, xn);
            double s2 = 0.0;
            for (int64_t j = 0; j < d; j++)
                s2 += ((double)qn[j] - xn[j]) * ((double)qn[j] - xn[j]);
            farthest = fmax(farthest, s2);
        }
        ck_assert(far == (float)-farthest);
    }
    size_t size;
    unsigned char *bytes = scorer_bytes(s, &size);
    expect_error(protood_scorer_set_param(s, PROTOOD_SCORER_K, (double)(n + 1)), PROTOOD_E_INVALID_ARG,
                 "k = 51 exceeds the 50 training rows");
    assert_scorer_unchanged(s, bytes, size);
    double k;
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_K, &k), PROTOOD_OK);
    ck_assert_double_eq(k, (double)n);
    expect_error(protood_scorer_fit(s, n - 1, x, NULL, 0), PROTOOD_E_INVALID_ARG, "k = 50 exceeds n = 49");
    assert_scorer_unchanged(s, bytes, size);
    float *again = scores(s, m, q);
    ck_assert_mem_eq(again, got, (size_t)m * sizeof *got);
    free(again);
    free(bytes);
    free(got);
    protood_scorer_free(s);
    free(x);
    free(q);
}
END_TEST

/* ---- Sinkhorn's epsilon down to 1e-4 ------------------------------------------------------- */

/* protood_sinkhorn at epsilon 1e-4 and 3e-4 on cosine-like scores: exp(S / eps) reaches e^10000,
 * far beyond float64, and the library promises the exact floorless Sinkhorn there: finite,
 * non-negative, every row summing to 1, equal to the long-double reference (which holds e^10000)
 * on the same float32 scores. Scores within [-0.05, 0.05] keep exp(S / 1e-4) below e^500, where
 * the reference's 1e-12 floor applies again: the library must follow it there too. */
START_TEST(sinkhorn_at_epsilon_1e_4)
{
    const int64_t n = 30, p = 12;
    float *s = make_rows(61, n, p, 1, 0.0), *q = malloc((size_t)(n * p) * sizeof *q);
    double *sd = malloc((size_t)(n * p) * sizeof *sd), *want = malloc((size_t)(n * p) * sizeof *want);
    for (int narrow = 0; narrow <= 1; narrow++) {
        for (int64_t k = 0; k < n * p; k++) {
            if (narrow)
                s[k] *= 0.05f;
            sd[k] = s[k];
        }
        for (double eps = 1e-4; eps <= 3e-4; eps += 2e-4)
            for (int iters = 1; iters <= 10; iters += 3) {
                ck_assert_int_eq(protood_sinkhorn(n, p, s, eps, iters, q), PROTOOD_OK);
                tu_ref_sinkhorn(n, p, sd, eps, iters, want);
                for (int64_t i = 0; i < n; i++) {
                    double row = 0;
                    for (int64_t j = 0; j < p; j++) {
                        float v = q[i * p + j];
                        ck_assert_msg(isfinite(v) && v >= 0, "q[%lld][%lld] = %g", (long long)i, (long long)j, (double)v);
                        ck_assert_msg(fabs(v - want[i * p + j]) <= 1e-5, "eps %g iters %d narrow %d: q[%lld][%lld] = %.9g, "
                                      "reference %.9g", eps, iters, narrow, (long long)i, (long long)j, (double)v,
                                      want[i * p + j]);
                        row += v;
                    }
                    if (!narrow)
                        ck_assert_double_eq_tol(row, 1.0, 1e-5);
                    else
                        ck_assert(row <= 1.0 + 1e-5);
                }
            }
    }
    free(s);
    free(q);
    free(sd);
    free(want);
}
END_TEST

/* Training steps with SINKHORN_EPSILON = 1e-4. At this epsilon the assignment of a row moves by
 * e^(1e-7 / 1e-4) - 1 = 0.1% when its float32 scores round differently, so the reference is only
 * comparable where the step does not depend on those digits: TOPK = 1, where A and W are 1 on
 * each row's most likely prototype. There the step matches the float64 reference (losses,
 * prototypes, gradient by finite differences), supervised and unsupervised. With TOPK = 0 (all
 * weights in use) the step stays finite with unit prototypes, and palm_assign's unsupervised
 * weights sum to 1 per row. */
START_TEST(palm_at_epsilon_1e_4)
{
    const int64_t n = 16, C = 3, K = 3, D = 6, P = C * K;
    float *h = make_rows(62, n, D, 1, 0.0), w[16 * 9], grad[16 * 6];
    int32_t *y = cyclic_labels(n, C);
    tu_palm_params rp = {C, K, D, 0.7, 0.1, 1e-4, 1.0, 0.5, 3, 1};
    protood_bank *b = tu_palm_bank(&rp, 62);
    tu_check_palm_step(&rp, b, n, h, y);
    tu_check_palm_step(&rp, b, n, h, NULL);
    protood_bank_free(b);

    rp.topk = 0;
    b = tu_palm_bank(&rp, 63);
    double losses[3];
    for (int step = 0; step < 3; step++) {
        ck_assert_int_eq(protood_palm_step(b, n, h, step == 1 ? NULL : y, losses, grad), PROTOOD_OK);
        for (int k = 0; k < 3; k++)
            ck_assert(isfinite(losses[k]));
        for (int64_t k = 0; k < n * D; k++)
            ck_assert(isfinite(grad[k]));
        float *p = prototypes(b);
        for (int64_t j = 0; j < P; j++) {
            double s = 0;
            for (int64_t t = 0; t < D; t++)
                s += (double)p[j * D + t] * p[j * D + t];
            ck_assert_double_eq_tol(sqrt(s), 1.0, 1e-6);
        }
        free(p);
    }
    ck_assert_int_eq(protood_palm_assign(b, n, h, NULL, w), PROTOOD_OK);
    for (int64_t i = 0; i < n; i++) {
        double row = 0;
        for (int64_t j = 0; j < P; j++) {
            ck_assert(isfinite(w[i * P + j]) && w[i * P + j] >= 0);
            row += w[i * P + j];
        }
        ck_assert_double_eq_tol(row, 1.0, 1e-5);
    }
    protood_bank_free(b);
    free(h);
    free(y);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("extremes");
    TCase *tc = tcase_create("magnitude");
    tcase_add_test(tc, scorers_ignore_the_magnitude_of_rows);
    tcase_add_test(tc, unnormalised_scorers_at_extreme_magnitudes);
    tcase_add_test(tc, bank_init_ignores_the_magnitude_of_rows);
    tcase_add_test(tc, steps_on_rows_of_magnitude_1e30);
    tcase_add_test(tc, steps_on_rows_of_magnitude_1e_30);
    suite_add_tcase(s, tc);
    tc = tcase_create("one_feature");
    tcase_add_test(tc, palm_step_with_one_feature);
    tcase_add_test(tc, palm_update_that_cancels_keeps_the_prototype);
    tcase_add_test(tc, cider_step_with_one_feature);
    tcase_add_test(tc, scorers_with_one_feature);
    tcase_add_test(tc, bank_init_and_sinkhorn_with_one_feature);
    suite_add_tcase(s, tc);
    tc = tcase_create("single_class");
    tcase_add_test(tc, palm_step_with_a_single_class);
    tcase_add_test(tc, cider_step_with_a_single_class);
    tcase_add_test(tc, scorers_and_bank_with_a_single_class);
    suite_add_tcase(s, tc);
    tc = tcase_create("class_of_one_row");
    tcase_add_test(tc, steps_with_a_class_of_one_row);
    tcase_add_test(tc, scorers_and_bank_with_a_class_of_one_row);
    suite_add_tcase(s, tc);
    tc = tcase_create("duplicates");
    tcase_add_test(tc, steps_with_duplicate_rows);
    tcase_add_test(tc, scorers_and_bank_with_duplicate_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("identical_rows");
    tcase_add_test(tc, steps_on_identical_rows);
    tcase_add_test(tc, scorers_bank_and_sinkhorn_on_identical_rows);
    tcase_add_test(tc, metrics_when_every_score_is_equal);
    suite_add_tcase(s, tc);
    tc = tcase_create("k_all_rows");
    tcase_add_test(tc, knn_with_k_equal_to_the_training_rows);
    suite_add_tcase(s, tc);
    tc = tcase_create("tiny_epsilon");
    tcase_add_test(tc, sinkhorn_at_epsilon_1e_4);
    tcase_add_test(tc, palm_at_epsilon_1e_4);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
