/* KNN scorer: the reference cases, an exact brute-force search in double, invariance to the tile
 * sizes, the k <= n rule, and concurrent scoring from several threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "scorer.h"
#include "testutil.h"

static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* n x d rows, uniform in [-1, 1) plus `offset`; every `dup_every`-th row (if > 0) is a tiny
 * perturbation of the row before it, so that near neighbours at distance ~1e-6 occur. */
static float *rand_rows(uint64_t seed, int64_t n, int64_t d, double offset, int64_t dup_every)
{
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = dup_every > 0 && i > 0 && i % dup_every == 0
                               ? x[(i - 1) * d + j] + (float)(1e-3 * (uniform(&seed) - 0.5))
                               : (float)(2.0 * uniform(&seed) - 1.0 + offset);
    return x;
}

/* Row-wise x / |x| with the norm in double, the result rounded to `as_float` (what the
 * scorer stores) or kept in double (the float64 reference). */
static void normalize_rows(int64_t n, int64_t d, const float *in, double *out, int normalize, int as_float)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < d; j++)
            s += (double)in[i * d + j] * in[i * d + j];
        double inv = normalize ? 1.0 / sqrt(s) : 1.0;
        for (int64_t j = 0; j < d; j++)
            out[i * d + j] = as_float ? (double)(float)(in[i * d + j] * inv) : in[i * d + j] * inv;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* -(k-th smallest squared distance), computing every distance in double and sorting. */
static double *brute_knn(int64_t n, const float *x, int64_t m, const float *q, int64_t d, int64_t k, int normalize,
                         int as_float)
{
    double *xn = malloc((size_t)(n * d) * sizeof *xn), *qn = malloc((size_t)(m * d) * sizeof *qn);
    double *dist = malloc((size_t)n * sizeof *dist), *out = malloc((size_t)m * sizeof *out);
    normalize_rows(n, d, x, xn, normalize, as_float);
    normalize_rows(m, d, q, qn, normalize, as_float);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t r = 0; r < n; r++) {
            double s = 0.0;
            for (int64_t j = 0; j < d; j++) {
                double t = qn[i * d + j] - xn[r * d + j];
                s += t * t;
            }
            dist[r] = s;
        }
        qsort(dist, (size_t)n, sizeof *dist, cmp_double);
        out[i] = -dist[k - 1];
    }
    free(xn);
    free(qn);
    free(dist);
    return out;
}

/* The scorer's promise: exactly the k-th smallest double distance between the stored (float)
 * rows, whatever the GEMM did. */
static void assert_exact(const float *got, const double *want, int64_t n, const char *what)
{
    for (int64_t i = 0; i < n; i++)
        ck_assert_msg(got[i] == (float)want[i], "%s[%lld] = %.9g, the exact k-th distance is %.9g", what,
                      (long long)i, (double)got[i], want[i]);
}

/* |got - want| <= 1e-6 + rtol |want| elementwise; returns the largest relative error seen. */
static double assert_close(const float *got, const double *want, int64_t n, double rtol, const char *what)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        ck_assert_msg(err <= 1e-6 + rtol * fabs(want[i]), "%s[%lld] = %.9g, expected %.9g", what, (long long)i,
                      (double)got[i], want[i]);
        if (fabs(want[i]) > 1e-3 && err / fabs(want[i]) > worst)
            worst = err / fabs(want[i]);
    }
    return worst;
}

static protood_scorer *fit_knn(int64_t d, int64_t k, int normalize, int64_t n, const float *x)
{
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_KNN, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, (double)k), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, normalize), PROTOOD_OK);
    ck_assert_msg(protood_scorer_fit(s, n, x, NULL, 0) == PROTOOD_OK, "%s", protood_last_error());
    return s;
}

START_TEST(knn_matches_reference_cases)
{
    tu_fixture *fx = tu_fixture_load("scorers");
    int64_t n, d, m, cols;
    float *x = tu_fixture_f32(fx, "train.npy", &n, &d);
    float *q = tu_fixture_f32(fx, "test.npy", &m, &cols);
    ck_assert_int_eq(cols, d);
    static const int ks[] = {1, 5, 50};
    static const char *files[] = {"knn_k1.npy", "knn_k5.npy", "knn_k50.npy"};
    for (int c = 0; c < 3; c++) {
        int64_t rows;
        double *want = tu_fixture_f64(fx, files[c], &rows, NULL);
        ck_assert_int_eq(rows, m);
        protood_scorer *s = fit_knn(d, ks[c], 1, n, x);
        float *got = malloc((size_t)m * sizeof *got);
        ck_assert_int_eq(protood_scorer_score(s, m, q, got), PROTOOD_OK);
        tu_assert_close_f32_f64(got, want, (size_t)m, 1e-4, files[c]); /* SPEC.md §8 */
        double worst = assert_close(got, want, m, 1e-5, files[c]);  /* and what we actually reach */
        ck_assert_double_lt(worst, 1e-5);
        free(got);
        free(want);
        protood_scorer_free(s);
    }
    free(x);
    free(q);
    tu_fixture_free(fx);
}
END_TEST

/* k = 1, k = n and in between, with and without normalisation, near-duplicate rows (ties far below
 * float32 resolution), and tile sizes from 1 x 1 to larger than the data: every tiling gives
 * exactly the k-th smallest double distance, and the float64 reference within rounding. */
START_TEST(knn_equals_brute_force_for_any_tiling)
{
    const int64_t n = 157, m = 61, d = 13;
    float *x = rand_rows(11, n, d, 0.3, 10);
    float *q = rand_rows(12, m, d, 0.3, 0);
    memcpy(q + 5 * d, x + 40 * d, (size_t)d * sizeof *q); /* a query equal to a training row */
    static const int64_t ks[] = {1, 2, 17, 156, 157};
    static const int64_t tiles[][2] = {{256, 2048}, {1, 1}, {3, 5}, {7, 64}, {61, 157}, {64, 16}, {1000, 1000}};
    float *got = malloc((size_t)m * sizeof *got);
    for (int norm = 0; norm <= 1; norm++)
        for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
            double *exact = brute_knn(n, x, m, q, d, ks[a], norm, 1);
            double *ref = brute_knn(n, x, m, q, d, ks[a], norm, 0);
            protood_scorer *s = fit_knn(d, ks[a], norm, n, x);
            for (size_t t = 0; t < sizeof tiles / sizeof tiles[0]; t++) {
                pood_scorer_set_tiles(s, tiles[t][0], tiles[t][1]);
                ck_assert_int_eq(protood_scorer_score(s, m, q, got), PROTOOD_OK);
                assert_exact(got, exact, m, "knn");
                assert_close(got, ref, m, 2e-6, "knn");
            }
            if (ks[a] == 1) /* the query equal to a training row is at distance 0 from it */
                ck_assert_float_eq(got[5], 0.0f);
            free(exact);
            free(ref);
            protood_scorer_free(s);
        }
    free(got);
    free(x);
    free(q);
}
END_TEST

/* Many exact duplicates at the boundary overflow the band list: the exact fallback takes over. */
START_TEST(knn_crowded_boundary_takes_the_exact_fallback)
{
    const int64_t d = 6, n = 300, m = 9;
    float *x = rand_rows(61, n, d, 0.0, 0);
    for (int64_t i = 100; i < 200; i++) /* 100 copies of row 0, and 100 near-copies of row 1 */
        memcpy(x + i * d, x, (size_t)d * sizeof *x);
    for (int64_t i = 200; i < 300; i++)
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = x[d + j] * (1.0f + 1e-7f * (float)(i % 7));
    float *q = rand_rows(62, m, d, 0.0, 0);
    memcpy(q, x, (size_t)d * sizeof *q);
    memcpy(q + d, x + d, (size_t)d * sizeof *q);
    static const int64_t ks[] = {1, 50, 101, 150, 250};
    float *got = malloc((size_t)m * sizeof *got);
    for (size_t a = 0; a < sizeof ks / sizeof ks[0]; a++) {
        double *exact = brute_knn(n, x, m, q, d, ks[a], 1, 1);
        protood_scorer *s = fit_knn(d, ks[a], 1, n, x);
        for (int64_t tile = 1; tile <= 301; tile += 60) {
            pood_scorer_set_tiles(s, tile, tile);
            ck_assert_int_eq(protood_scorer_score(s, m, q, got), PROTOOD_OK);
            assert_exact(got, exact, m, "knn");
        }
        free(exact);
        protood_scorer_free(s);
    }
    free(got);
    free(x);
    free(q);
}
END_TEST

/* Large enough that several threads get tiles and the training rows span several column tiles. */
START_TEST(knn_large_case_equals_brute_force)
{
    const int64_t n = 5000, m = 700, d = 32, k = 50;
    float *x = rand_rows(21, n, d, 0.0, 0);
    float *q = rand_rows(22, m, d, 0.0, 0);
    double *want = brute_knn(n, x, m, q, d, k, 1, 1);
    protood_scorer *s = fit_knn(d, k, 1, n, x);
    float *got = malloc((size_t)m * sizeof *got);
    ck_assert_int_eq(protood_scorer_score(s, m, q, got), PROTOOD_OK);
    assert_exact(got, want, m, "knn");
    free(got);
    free(want);
    free(x);
    free(q);
    protood_scorer_free(s);
}
END_TEST

START_TEST(knn_k_larger_than_training_rows_is_refused)
{
    const int64_t n = 20, d = 4;
    float *x = rand_rows(31, n, d, 0.0, 0);
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_KNN, d), PROTOOD_OK);
    /* Default k = 50 > 20 rows: fit refuses and the scorer stays unfitted. */
    ck_assert_int_eq(protood_scorer_fit(s, n, x, NULL, 0), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "k = 50 exceeds n = 20"));
    float score;
    ck_assert_int_eq(protood_scorer_score(s, 1, x, &score), PROTOOD_E_STATE);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "not fitted"));

    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 20), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(s, n, x, NULL, 0), PROTOOD_OK);
    float before[3], after[3];
    ck_assert_int_eq(protood_scorer_score(s, 3, x, before), PROTOOD_OK);
    /* On a fitted scorer, k > rows is refused at set_param, and k is unchanged. */
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 21), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "k = 21 exceeds the 20 training rows"));
    double k;
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_K, &k), PROTOOD_OK);
    ck_assert_double_eq(k, 20);
    ck_assert_int_eq(protood_scorer_score(s, 3, x, after), PROTOOD_OK);
    ck_assert_mem_eq(before, after, sizeof before);
    /* A failed refit (k = 20 > 10 rows) keeps the old training set. */
    ck_assert_int_eq(protood_scorer_fit(s, 10, x, NULL, 0), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_scorer_score(s, 3, x, after), PROTOOD_OK);
    ck_assert_mem_eq(before, after, sizeof before);
    /* Lowering k takes effect on the fitted scorer: k = 1 on training rows gives distance 0. */
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 1), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_score(s, 3, x, after), PROTOOD_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_float_eq_tol(after[i], 0.0f, 1e-6f);
    protood_scorer_free(s);
    free(x);
}
END_TEST

/* Four threads score with one const scorer at once (each its own queries, all different sizes);
 * every result equals the sequential run. */
START_TEST(knn_concurrent_scoring_equals_sequential)
{
    const int64_t n = 3000, d = 24, k = 30;
    float *x = rand_rows(41, n, d, 0.2, 0);
    protood_scorer *s = fit_knn(d, k, 1, n, x);
    enum { T = 4 };
    int64_t m[T];
    float *q[T], *want[T];
    for (int t = 0; t < T; t++) {
        m[t] = 300 + 97 * t;
        q[t] = rand_rows(50 + (uint64_t)t, m[t], d, 0.2, 0);
        want[t] = malloc((size_t)m[t] * sizeof(float));
        ck_assert_int_eq(protood_scorer_score(s, m[t], q[t], want[t]), PROTOOD_OK);
    }
    tu_assert_concurrent_scores(s, T, m, q, want, 3);
    for (int t = 0; t < T; t++) {
        free(q[t]);
        free(want[t]);
    }
    protood_scorer_free(s);
    free(x);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("scorer_knn");
    TCase *tc = tcase_create("knn");
    tcase_add_test(tc, knn_matches_reference_cases);
    tcase_add_test(tc, knn_equals_brute_force_for_any_tiling);
    tcase_add_test(tc, knn_crowded_boundary_takes_the_exact_fallback);
    tcase_add_test(tc, knn_large_case_equals_brute_force);
    tcase_add_test(tc, knn_k_larger_than_training_rows_is_refused);
    tcase_add_test(tc, knn_concurrent_scoring_equals_sequential);
    suite_add_tcase(suite, tc);
    return tu_run_suite(suite);
}
