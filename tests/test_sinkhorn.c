/* Sinkhorn-Knopp (SPEC.md §2): the reference case, an independent float64 implementation (the
 * direct form where float64 holds exp(S/eps), the log domain beyond), tiny epsilon, and the error
 * paths. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "refsteps.h"
#include "sinkhorn.h"
#include "testutil.h"
#include "vecmath.h"

/* The float64 reference of refsteps.c on float32 scores. */
static void reference_sinkhorn(int64_t n, int64_t p, const float *s, double eps, int iters, double *out)
{
    double *sd = malloc((size_t)(n * p) * sizeof *sd);
    for (int64_t k = 0; k < n * p; k++)
        sd[k] = s[k];
    tu_ref_sinkhorn(n, p, sd, eps, iters, out);
    free(sd);
}

/* Deterministic pseudo-random scores in [lo, hi]. */
static float *make_scores(int64_t n, int64_t p, unsigned seed, float lo, float hi)
{
    float *s = malloc((size_t)(n * p) * sizeof *s);
    unsigned x = seed * 2654435761u + 12345u;
    for (int64_t k = 0; k < n * p; k++) {
        x = x * 1664525u + 1013904223u;
        s[k] = lo + (hi - lo) * (float)((x >> 8) & 0xffffff) / 16777216.0f;
    }
    return s;
}

static void assert_rows_sum_to_one(const float *q, int64_t n, int64_t p)
{
    for (int64_t i = 0; i < n; i++) {
        double r = 0;
        for (int64_t j = 0; j < p; j++) {
            ck_assert_msg(isfinite(q[i * p + j]) && q[i * p + j] >= 0.0f, "q[%lld][%lld] = %g", (long long)i,
                          (long long)j, (double)q[i * p + j]);
            r += q[i * p + j];
        }
        ck_assert_msg(fabs(r - 1.0) < 1e-5, "row %lld sums to %.9g", (long long)i, r);
    }
}

static void assert_rows_at_most_one(const float *q, int64_t n, int64_t p)
{
    for (int64_t i = 0; i < n; i++) {
        double r = 0;
        for (int64_t j = 0; j < p; j++) {
            ck_assert_msg(isfinite(q[i * p + j]) && q[i * p + j] >= 0.0f, "q[%lld][%lld] = %g", (long long)i,
                          (long long)j, (double)q[i * p + j]);
            r += q[i * p + j];
        }
        ck_assert_msg(r < 1.0 + 1e-5, "row %lld sums to %.9g", (long long)i, r);
    }
}

START_TEST(matches_reference_case)
{
    tu_fixture *fx = tu_fixture_load("sinkhorn");
    int64_t n, p, n2, p2;
    float *s = tu_fixture_f32(fx, "scores.npy", &n, &p);
    double *want = tu_fixture_f64(fx, "assign.npy", &n2, &p2);
    ck_assert_int_eq(n, n2);
    ck_assert_int_eq(p, p2);
    ck_assert_int_eq(n, (int64_t)tu_fixture_param(fx, "n"));
    ck_assert_int_eq(p, (int64_t)tu_fixture_param(fx, "n_protos_total"));
    float *got = malloc((size_t)(n * p) * sizeof *got);
    ck_assert_int_eq(protood_sinkhorn(n, p, s, tu_fixture_param(fx, "sinkhorn_epsilon"),
                                      (int32_t)tu_fixture_param(fx, "sinkhorn_iters"), got),
                     PROTOOD_OK);
    tu_assert_close_f32_f64(got, want, (size_t)(n * p), 1e-4, "assign");
    /* much tighter than the spec's tolerance: the direct route is exact up to the float32 precision
     * of the exponent (a relative 1e-7 of scores/eps, spread <= 40 here) */
    for (int64_t k = 0; k < n * p; k++)
        ck_assert_msg(fabs(got[k] - want[k]) <= 1e-5 * fabs(want[k]) + 1e-9, "assign[%lld] = %.9g, expected %.9g",
                      (long long)k, (double)got[k], want[k]);
    free(s);
    free(want);
    free(got);
    tu_fixture_free(fx);
}
END_TEST

/* Both routes (direct below the spread threshold, log domain above) against the long-double
 * reference, for epsilon from the default down to where float64 exp(S/eps) overflows. */
START_TEST(matches_long_double_reference_for_every_epsilon)
{
    static const double eps_list[] = {0.5, 0.05, 0.01, 0.005, 0.002, 0.001};
    int64_t n = 23, p = 11;
    float *s = make_scores(n, p, 7, -1.0f, 1.0f);
    double *want = malloc((size_t)(n * p) * sizeof *want);
    float *got = malloc((size_t)(n * p) * sizeof *got);
    for (size_t e = 0; e < sizeof eps_list / sizeof eps_list[0]; e++)
        for (int iters = 1; iters <= 5; iters += 2) {
            reference_sinkhorn(n, p, s, eps_list[e], iters, want);
            ck_assert_int_eq(protood_sinkhorn(n, p, s, eps_list[e], iters, got), PROTOOD_OK);
            for (int64_t k = 0; k < n * p; k++)
                ck_assert_msg(fabs(got[k] - want[k]) <= 1e-5, "eps %g iters %d: q[%lld] = %.9g, expected %.9g",
                              eps_list[e], iters, (long long)k, (double)got[k], want[k]);
            if (eps_list[e] >= 0.05 || eps_list[e] <= 0.001) /* 0.001: beyond float64, no floor */
                assert_rows_sum_to_one(got, n, p);
            else
                assert_rows_at_most_one(got, n, p);
        }
    free(s);
    free(want);
    free(got);
}
END_TEST

/* The two internal routes agree where both apply: same scores, spread just under and just over
 * the threshold (so one call goes each way), compared in float64. */
START_TEST(direct_and_log_routes_agree)
{
    int64_t n = 40, p = 9;
    float *s = make_scores(n, p, 3, -1.0f, 1.0f);
    float lo = s[0], hi = s[0];
    for (int64_t k = 0; k < n * p; k++) {
        lo = s[k] < lo ? s[k] : lo;
        hi = s[k] > hi ? s[k] : hi;
    }
    double eps_direct = (hi - lo) / (POOD_SINKHORN_DIRECT_RANGE * 0.999);
    double eps_log = (hi - lo) / (POOD_SINKHORN_DIRECT_RANGE * 1.001);
    size_t scratch = pood_sinkhorn_scratch_doubles(n, p);
    double *w = malloc(scratch * sizeof *w), *qd = malloc((size_t)(n * p) * sizeof *qd);
    double *ql = malloc((size_t)(n * p) * sizeof *ql), *ref = malloc((size_t)(n * p) * sizeof *ref);
    pood_sinkhorn(n, p, s, 0.0, eps_direct, 3, NULL, qd, w);
    reference_sinkhorn(n, p, s, eps_direct, 3, ref);
    for (int64_t k = 0; k < n * p; k++)
        ck_assert_msg(fabs(qd[k] - ref[k]) <= 1e-9 + 1e-9 * ref[k], "direct q[%lld] = %.17g vs %.17g", (long long)k,
                      qd[k], ref[k]);
    pood_sinkhorn(n, p, s, 0.0, eps_log, 3, NULL, ql, w);
    reference_sinkhorn(n, p, s, eps_log, 3, ref);
    for (int64_t k = 0; k < n * p; k++)
        ck_assert_msg(fabs(ql[k] - ref[k]) <= 1e-9 + 1e-9 * ref[k], "log q[%lld] = %.17g vs %.17g", (long long)k,
                      ql[k], ref[k]);
    free(s);
    free(w);
    free(qd);
    free(ql);
    free(ref);
}
END_TEST

/* A windowed call (only each row's class block is needed) writes the same values there. */
START_TEST(windowed_output_matches_full_rows)
{
    static const double eps_list[] = {0.05, 0.01, 0.002};   /* float K, double K, log domain */
    int64_t n = 30, k = 4, c = 5, p = k * c;
    float *s = make_scores(n, p, 17, -1.0f, 1.0f);
    int32_t group[30];
    for (int64_t i = 0; i < n; i++)
        group[i] = (int32_t)((i * 3) % c);
    pood_sinkhorn_window win = {group, k};
    size_t scratch = pood_sinkhorn_scratch_doubles(n, p);
    double *w = malloc(scratch * sizeof *w), *full = malloc((size_t)(n * p) * sizeof *full);
    double *part = malloc((size_t)(n * p) * sizeof *part);
    for (size_t e = 0; e < 3; e++) {
        pood_sinkhorn(n, p, s, 1.0, eps_list[e], 3, NULL, full, w);
        pood_sinkhorn(n, p, s, 1.0, eps_list[e], 3, &win, part, w);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = group[i] * k; j < (group[i] + 1) * k; j++)
                ck_assert_msg(part[i * p + j] == full[i * p + j], "eps %g: q[%lld][%lld] %.17g vs %.17g",
                              eps_list[e], (long long)i, (long long)j, part[i * p + j], full[i * p + j]);
    }
    free(s);
    free(w);
    free(full);
    free(part);
}
END_TEST

START_TEST(tiny_epsilon_stays_finite)
{
    /* eps = 0.001 on cosine-like scores: exp(1000) overflows even float64, so the reference has no
     * finite result and the exact Sinkhorn is promised: finite, non-negative, every row summing to 1,
     * equal to the long-double computation without the floor. A large batch goes through the
     * threaded paths too; many of its rows would fall under the reference's floor. */
    int64_t n = 700, p = 60;
    float *s = make_scores(n, p, 11, -1.0f, 1.0f);
    float *q = malloc((size_t)(n * p) * sizeof *q);
    double *want = malloc((size_t)(n * p) * sizeof *want);
    ck_assert_int_eq(protood_sinkhorn(n, p, s, 0.001, 3, q), PROTOOD_OK);
    assert_rows_sum_to_one(q, n, p);
    reference_sinkhorn(n, p, s, 0.001, 3, want);
    for (int64_t k = 0; k < n * p; k++)
        ck_assert_msg(fabs(q[k] - want[k]) <= 1e-5, "q[%lld] = %.9g, expected %.9g", (long long)k, (double)q[k],
                      want[k]);
    /* scores far outside [-1, 1] with the default epsilon */
    for (int64_t k = 0; k < n * p; k++)
        s[k] *= 1000.0f;
    ck_assert_int_eq(protood_sinkhorn(n, p, s, 0.05, 3, q), PROTOOD_OK);
    assert_rows_sum_to_one(q, n, p);
    free(s);
    free(q);
    free(want);
}
END_TEST

START_TEST(tiny_epsilon_rows_sum_to_one)
{
    /* eps = 0.001 where every row is the best match of some prototype (the situation Sinkhorn
     * balances): no row reaches the floor, and every row sums to 1 although exp(S/eps) overflows. */
    int64_t n = 12, p = 12;
    float *s = make_scores(n, p, 13, -1.0f, 0.8f);
    for (int64_t i = 0; i < n; i++)
        s[i * p + (i * 5) % p] = 0.9f;
    float *q = malloc((size_t)(n * p) * sizeof *q);
    double *want = malloc((size_t)(n * p) * sizeof *want);
    ck_assert_int_eq(protood_sinkhorn(n, p, s, 0.001, 3, q), PROTOOD_OK);
    assert_rows_sum_to_one(q, n, p);
    reference_sinkhorn(n, p, s, 0.001, 3, want);
    for (int64_t k = 0; k < n * p; k++)
        ck_assert_msg(fabs(q[k] - want[k]) <= 1e-6, "q[%lld] = %.9g, expected %.9g", (long long)k, (double)q[k],
                      want[k]);
    free(s);
    free(q);
    free(want);
}
END_TEST

START_TEST(threaded_direct_route_matches_reference)
{
    int64_t n = 512, p = 96;   /* above the threading threshold */
    float *s = make_scores(n, p, 5, -1.0f, 1.0f);
    double *want = malloc((size_t)(n * p) * sizeof *want);
    float *got = malloc((size_t)(n * p) * sizeof *got);
    reference_sinkhorn(n, p, s, 0.05, 3, want);
    ck_assert_int_eq(protood_sinkhorn(n, p, s, 0.05, 3, got), PROTOOD_OK);
    for (int64_t k = 0; k < n * p; k++)
        ck_assert_msg(fabs(got[k] - want[k]) <= 1e-6 + 1e-5 * want[k], "q[%lld] = %.9g, expected %.9g",
                      (long long)k, (double)got[k], want[k]);
    free(s);
    free(want);
    free(got);
}
END_TEST

START_TEST(equal_scores_give_uniform_rows)
{
    float s[12], q[12];
    for (int k = 0; k < 12; k++)
        s[k] = 0.25f;
    ck_assert_int_eq(protood_sinkhorn(3, 4, s, 0.05, 3, q), PROTOOD_OK);
    for (int k = 0; k < 12; k++)
        ck_assert_float_eq_tol(q[k], 0.25f, 1e-7f);
    /* a single column: every row puts all its mass there */
    ck_assert_int_eq(protood_sinkhorn(3, 1, s, 0.05, 2, q), PROTOOD_OK);
    for (int k = 0; k < 3; k++)
        ck_assert_float_eq_tol(q[k], 1.0f, 1e-7f);
}
END_TEST

static void expect_error(protood_status got, protood_status want, const char *needle)
{
    ck_assert_int_eq(got, want);
    ck_assert_msg(strstr(protood_last_error(), needle) != NULL, "message '%s' lacks '%s'", protood_last_error(),
                  needle);
    ck_assert_msg(strncmp(protood_last_error(), "protood_sinkhorn: ", 18) == 0, "message '%s'", protood_last_error());
}

START_TEST(bad_arguments_are_rejected_and_output_untouched)
{
    float s[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, q[6];
    for (int k = 0; k < 6; k++)
        q[k] = -7.0f;
    expect_error(protood_sinkhorn(0, 3, s, 0.05, 3, q), PROTOOD_E_INVALID_ARG, "n = 0");
    expect_error(protood_sinkhorn(2, -1, s, 0.05, 3, q), PROTOOD_E_INVALID_ARG, "p = -1");
    expect_error(protood_sinkhorn(2, 3, NULL, 0.05, 3, q), PROTOOD_E_INVALID_ARG, "scores is NULL");
    expect_error(protood_sinkhorn(2, 3, s, 0.05, 3, NULL), PROTOOD_E_INVALID_ARG, "assign_out is NULL");
    expect_error(protood_sinkhorn(2, 3, s, 0.0, 3, q), PROTOOD_E_INVALID_ARG, "epsilon = 0");
    expect_error(protood_sinkhorn(2, 3, s, -1.0, 3, q), PROTOOD_E_INVALID_ARG, "epsilon = -1");
    expect_error(protood_sinkhorn(2, 3, s, NAN, 3, q), PROTOOD_E_INVALID_ARG, "epsilon = nan");
    expect_error(protood_sinkhorn(2, 3, s, INFINITY, 3, q), PROTOOD_E_INVALID_ARG, "epsilon = inf");
    expect_error(protood_sinkhorn(2, 3, s, 0.05, 0, q), PROTOOD_E_INVALID_ARG, "iters = 0");
    s[4] = NAN;
    expect_error(protood_sinkhorn(2, 3, s, 0.05, 3, q), PROTOOD_E_NONFINITE, "scores[1][1] = nan");
    s[4] = -INFINITY;
    expect_error(protood_sinkhorn(2, 3, s, 0.05, 3, q), PROTOOD_E_NONFINITE, "scores[1][1] = -inf");
    expect_error(protood_sinkhorn(INT64_MAX / 2, 3, s, 0.05, 3, q), PROTOOD_E_SHAPE, "overflow");
    for (int k = 0; k < 6; k++)
        ck_assert_float_eq(q[k], -7.0f);
}
END_TEST

/* The vectorised exp behind the Sinkhorn and softmax passes: within 2 ulp (relative 1.2e-7) of
 * libm's correctly rounded double exp over [-87, 0] (every argument the steps feed it is a
 * difference to a maximum), flushed to 0 below -87.3, and NaN maps to 0 rather than anything
 * undefined. */
START_TEST(vectorised_exp_is_accurate)
{
    double worst = 0;
    for (int k = 0; k <= 2000000; k++) { /* 2 million points across [-87, 0] */
        float x = -87.0f * (float)k / 2000000.0f;
        double want = exp((double)x), rel = fabs(pood_expf(x) - want) / want;
        worst = rel > worst ? rel : worst;
    }
    ck_assert_msg(worst < 1.2e-7, "max relative error %.3g", worst);
    ck_assert_float_eq(pood_expf(0.0f), 1.0f);
    ck_assert_float_eq(pood_expf(-88.0f), 0.0f);
    ck_assert_float_eq(pood_expf(-INFINITY), 0.0f);
    ck_assert_float_eq(pood_expf(NAN), 0.0f);
    float row[5] = {0.0f, -1.0f, -2.0f, -3.0f, -100.0f}, out[5];
    double sum = pood_exp_sum(5, row, 0.5f, 2.0f, out);   /* e^(2 (x - 0.5)) */
    double want = 0;
    for (int j = 0; j < 5; j++) {
        ck_assert_double_eq_tol(out[j], exp(2.0 * (row[j] - 0.5)), 1e-7 * exp(2.0 * (row[j] - 0.5)) + 1e-30);
        want += exp(2.0 * (row[j] - 0.5));
    }
    ck_assert_double_eq_tol(sum, want, 1e-7 * want);
    ck_assert_double_eq_tol(pood_exp_sum(5, row, 0.5f, 2.0f, NULL), want, 1e-7 * want);
    ck_assert_double_eq_tol(pood_exp_sum(5, row, 0.5f, 2.0f, row), want, 1e-7 * want);   /* in place */
    ck_assert_float_eq(pood_max_f(5, out), out[0]);
    ck_assert_float_eq(pood_max_f(0, out), -INFINITY);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sinkhorn");
    TCase *tc = tcase_create("sinkhorn");
    tcase_add_test(tc, matches_reference_case);
    tcase_add_test(tc, matches_long_double_reference_for_every_epsilon);
    tcase_add_test(tc, direct_and_log_routes_agree);
    tcase_add_test(tc, windowed_output_matches_full_rows);
    tcase_add_test(tc, tiny_epsilon_stays_finite);
    tcase_add_test(tc, tiny_epsilon_rows_sum_to_one);
    tcase_add_test(tc, threaded_direct_route_matches_reference);
    tcase_add_test(tc, equal_scores_give_uniform_rows);
    tcase_add_test(tc, bad_arguments_are_rejected_and_output_untouched);
    tcase_add_test(tc, vectorised_exp_is_accurate);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
