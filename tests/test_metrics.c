/* The metrics of SPEC.md §7 against the reference case, an independent O(n^2) computation on
 * heavily tied random scores, small cases worked out by hand, and every error path. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "testutil.h"

/* ---- Independent brute force: straight from the definitions, no sorting tricks ------------ */

static double bf_auroc(int64_t n_in, const float *in, int64_t n_out, const float *out)
{
    double wins = 0.0;
    for (int64_t i = 0; i < n_in; i++)
        for (int64_t j = 0; j < n_out; j++)
            wins += in[i] > out[j] ? 1.0 : in[i] == out[j] ? 0.5 : 0.0;
    return wins / ((double)n_in * (double)n_out);
}

static int cmp_float_up(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The distinct scores of both sets, ascending, in a malloc'd array; their number in *n_t. */
static float *bf_thresholds(int64_t n_in, const float *in, int64_t n_out, const float *out, int64_t *n_t)
{
    float *all = malloc((size_t)(n_in + n_out) * sizeof *all);
    memcpy(all, in, (size_t)n_in * sizeof *all);
    memcpy(all + n_in, out, (size_t)n_out * sizeof *all);
    qsort(all, (size_t)(n_in + n_out), sizeof *all, cmp_float_up);
    int64_t k = 0;
    for (int64_t i = 0; i < n_in + n_out; i++)
        if (k == 0 || all[i] != all[k - 1])
            all[k++] = all[i];
    *n_t = k;
    return all;
}

static int64_t count_ge(int64_t n, const float *x, float t)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += x[i] >= t;
    return c;
}

static int64_t count_le(int64_t n, const float *x, float t)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += x[i] <= t;
    return c;
}

static int64_t count_gt(int64_t n, const float *x, double t)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += (double)x[i] > t;
    return c;
}

/* ROC (ID positive, highest threshold first) and OOD-positive (lowest first) FPR. */
static double bf_fpr_roc(int64_t n_in, const float *in, int64_t n_out, const float *out, double tpr)
{
    int64_t n_t;
    float *t = bf_thresholds(n_in, in, n_out, out, &n_t);
    double fpr = NAN;
    for (int64_t k = n_t - 1; k >= 0; k--)
        if ((double)count_ge(n_in, in, t[k]) / (double)n_in >= tpr) {
            fpr = (double)count_ge(n_out, out, t[k]) / (double)n_out;
            break;
        }
    free(t);
    return fpr;
}

static double bf_fpr_ood_positive(int64_t n_in, const float *in, int64_t n_out, const float *out, double tpr)
{
    int64_t n_t;
    float *t = bf_thresholds(n_in, in, n_out, out, &n_t);
    double fpr = NAN;
    for (int64_t k = 0; k < n_t; k++)
        if ((double)count_le(n_out, out, t[k]) / (double)n_out >= tpr) {
            fpr = (double)count_le(n_in, in, t[k]) / (double)n_in;
            break;
        }
    free(t);
    return fpr;
}

/* Average precision: sum over thresholds of (recall gain) x precision. */
static double bf_aupr(int64_t n_in, const float *in, int64_t n_out, const float *out, int positive_in)
{
    int64_t n_t;
    float *t = bf_thresholds(n_in, in, n_out, out, &n_t);
    double ap = 0.0, prev_recall = 0.0;
    for (int64_t s = 0; s < n_t; s++) {
        int64_t tp, fp;
        if (positive_in) {
            float th = t[n_t - 1 - s];
            tp = count_ge(n_in, in, th);
            fp = count_ge(n_out, out, th);
        } else {
            float th = t[s];
            tp = count_le(n_out, out, th);
            fp = count_le(n_in, in, th);
        }
        double recall = (double)tp / (double)(positive_in ? n_in : n_out);
        if (tp + fp > 0)
            ap += (recall - prev_recall) * (double)tp / (double)(tp + fp);
        prev_recall = recall;
    }
    free(t);
    return ap;
}

static float *sorted_copy(int64_t n, const float *x)
{
    float *s = malloc((size_t)n * sizeof *s);
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_float_up);
    return s;
}

/* KNN: known[round(c * n)], c the literal rate (0.05); rint rounds halves to even in the default
 * rounding mode, which is what Python's round does. */
static double bf_fpr_knn(int64_t n_in, const float *in, int64_t n_out, const float *out, double c)
{
    float *s = sorted_copy(n_in, in);
    int64_t k = (int64_t)rint(c * (double)n_in);
    if (k > n_in - 1)
        k = n_in - 1;
    double fpr = (double)count_gt(n_out, out, s[k]) / (double)n_out;
    free(s);
    return fpr;
}

/* Percentile by the textbook formula: h = (n - 1) q, x[lo] + (h - lo)(x[lo + 1] - x[lo]), then
 * compared with the float32 OOD scores in float32, as numpy 1.24 compares a float32 array with a
 * float64 scalar. */
static double bf_fpr_percentile(int64_t n_in, const float *in, int64_t n_out, const float *out, double q)
{
    float *s = sorted_copy(n_in, in);
    double h = (double)(n_in - 1) * q;
    int64_t lo = (int64_t)floor(h);
    double thr = lo >= n_in - 1 ? s[n_in - 1] : s[lo] + (h - (double)lo) * ((double)s[lo + 1] - (double)s[lo]);
    double fpr = (double)count_gt(n_out, out, (float)thr) / (double)n_out;
    free(s);
    return fpr;
}

/* ---- Helpers ---------------------------------------------------------------------------- */

static double auroc(int64_t n_in, const float *in, int64_t n_out, const float *out)
{
    double v = -7.0;
    ck_assert_int_eq(protood_auroc(n_in, in, n_out, out, &v), PROTOOD_OK);
    return v;
}

static double aupr(int64_t n_in, const float *in, int64_t n_out, const float *out, int32_t positive)
{
    double v = -7.0;
    ck_assert_int_eq(protood_aupr(n_in, in, n_out, out, positive, &v), PROTOOD_OK);
    return v;
}

static double fpr(int64_t n_in, const float *in, int64_t n_out, const float *out, double tpr, int32_t conv)
{
    double v = -7.0;
    protood_status st = protood_fpr_at_tpr(n_in, in, n_out, out, tpr, conv, &v);
    ck_assert_msg(st == PROTOOD_OK, "convention %d tpr %g: %s", conv, tpr, protood_last_error());
    return v;
}

static uint64_t rng_state;
static uint64_t rnd(void) /* splitmix64: independent of the library's generator */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- Reference case --------------------------------------------------------------------- */

START_TEST(fixture_values)
{
    tu_fixture *fx = tu_fixture_load("metrics");
    int64_t n_in, n_out, cols;
    float *in = tu_fixture_f32(fx, "scores_in.npy", &n_in, &cols);
    ck_assert_int_eq(cols, 1);
    float *out = tu_fixture_f32(fx, "scores_out.npy", &n_out, &cols);
    ck_assert_int_eq(cols, 1);
    ck_assert_double_eq_tol(auroc(n_in, in, n_out, out), tu_fixture_param(fx, "auroc"), 1e-9);
    ck_assert_double_eq_tol(aupr(n_in, in, n_out, out, PROTOOD_POSITIVE_IN), tu_fixture_param(fx, "aupr_in"), 1e-9);
    ck_assert_double_eq_tol(aupr(n_in, in, n_out, out, PROTOOD_POSITIVE_OUT), tu_fixture_param(fx, "aupr_out"),
                            1e-9);
    ck_assert_double_eq_tol(fpr(n_in, in, n_out, out, 0.95, PROTOOD_FPR_ROC), tu_fixture_param(fx, "fpr95"), 1e-9);
    ck_assert_double_eq_tol(fpr(n_in, in, n_out, out, 0.95, PROTOOD_FPR_KNN), tu_fixture_param(fx, "fpr95_knn"),
                            1e-9);
    ck_assert_double_eq_tol(fpr(n_in, in, n_out, out, 0.95, PROTOOD_FPR_PERCENTILE),
                            tu_fixture_param(fx, "fpr95_palm"), 1e-9);
    ck_assert_double_eq_tol(fpr(n_in, in, n_out, out, 0.95, PROTOOD_FPR_OOD_POSITIVE),
                            tu_fixture_param(fx, "fpr95_openood"), 1e-9);
    free(in);
    free(out);
    tu_fixture_free(fx);
}
END_TEST

/* ---- Against the brute force ------------------------------------------------------------ */

static const struct {
    double tpr, c; /* c: 1 - tpr as the published code writes it */
} rates[] = {{0.95, 0.05}, {0.9, 0.1}, {0.8, 0.2}, {0.5, 0.5}, {0.99, 0.01}, {1.0, 0.0}, {0.3, 0.7}, {0.05, 0.95}};

/* Scores drawn from few levels so that ties within and across the sets are the rule. */
static void random_scores(int64_t n, float *x, int levels, int shift, int with_inf, int grid)
{
    for (int64_t i = 0; i < n; i++) {
        if (grid) {
            int k = (int)(rnd() % (uint64_t)levels) + shift;
            x[i] = (float)k * 0.25f;
            if (x[i] == 0.0f && (rnd() & 1)) /* -0 must tie with +0 */
                x[i] = -0.0f;
        } else {
            x[i] = (float)((double)(rnd() >> 11) / 9007199254740992.0 * 4.0 - 2.0 + shift * 0.1);
        }
        if (with_inf && rnd() % 10 == 0)
            x[i] = (rnd() & 1) ? INFINITY : -INFINITY;
    }
}

START_TEST(matches_brute_force_on_tied_random_scores)
{
    static const int level_choices[] = {1, 2, 3, 4, 7, 30, 1000};
    float in[301], out[301];
    for (uint64_t seed = 1; seed <= 600; seed++) {
        rng_state = seed * 7919;
        int64_t n_in = 1 + (int64_t)(rnd() % 300), n_out = 1 + (int64_t)(rnd() % 300);
        if (seed % 5 == 0)
            n_in = 1 + (int64_t)(rnd() % 4); /* tiny sets: where conventions differ most */
        if (seed % 7 == 0)
            n_out = 1 + (int64_t)(rnd() % 4);
        int levels = level_choices[rnd() % 7];
        int grid = seed % 11 != 0;
        int with_inf = seed % 4 == 0;
        random_scores(n_in, in, levels, (int)(rnd() % 3) - 1, with_inf, grid);
        random_scores(n_out, out, levels, (int)(rnd() % 3) - 2, with_inf, grid);

        double got = auroc(n_in, in, n_out, out), want = bf_auroc(n_in, in, n_out, out);
        ck_assert_msg(got == want, "seed %llu: auroc %.17g, brute force %.17g", (unsigned long long)seed, got, want);
        for (int pos = 0; pos < 2; pos++) {
            got = aupr(n_in, in, n_out, out, pos ? PROTOOD_POSITIVE_IN : PROTOOD_POSITIVE_OUT);
            want = bf_aupr(n_in, in, n_out, out, pos);
            ck_assert_msg(fabs(got - want) <= 1e-12, "seed %llu: aupr(%d) %.17g, brute force %.17g",
                          (unsigned long long)seed, pos, got, want);
        }
        for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
            double tpr = rates[r].tpr, c = rates[r].c;
            struct {
                int32_t conv;
                double want;
            } cases[4] = {
                {PROTOOD_FPR_ROC, bf_fpr_roc(n_in, in, n_out, out, tpr)},
                {PROTOOD_FPR_OOD_POSITIVE, bf_fpr_ood_positive(n_in, in, n_out, out, tpr)},
                {PROTOOD_FPR_KNN, bf_fpr_knn(n_in, in, n_out, out, c)},
                {PROTOOD_FPR_PERCENTILE, with_inf ? NAN : bf_fpr_percentile(n_in, in, n_out, out, c)},
            };
            for (int k = 0; k < 4; k++) {
                if (isnan(cases[k].want))
                    continue; /* percentile next to infinities: the hand-made cases below */
                got = fpr(n_in, in, n_out, out, tpr, cases[k].conv);
                ck_assert_msg(got == cases[k].want, "seed %llu n_in %lld n_out %lld tpr %g convention %d: %.17g, "
                              "brute force %.17g", (unsigned long long)seed, (long long)n_in, (long long)n_out,
                              tpr, cases[k].conv, got, cases[k].want);
            }
        }
    }
}
END_TEST

/* ---- Small cases worked out by hand ------------------------------------------------------ */

START_TEST(perfect_separation)
{
    const float in[] = {5, 3, 4}, out[] = {0, 2, 1};
    ck_assert_double_eq(auroc(3, in, 3, out), 1.0);
    ck_assert_double_eq(aupr(3, in, 3, out, PROTOOD_POSITIVE_IN), 1.0);
    ck_assert_double_eq(aupr(3, in, 3, out, PROTOOD_POSITIVE_OUT), 1.0);
    for (int32_t conv = 0; conv <= 3; conv++)
        ck_assert_double_eq(fpr(3, in, 3, out, 0.95, conv), 0.0);
}
END_TEST

START_TEST(reversed)
{
    const float in[] = {0, 1, 2}, out[] = {3, 5, 4};
    ck_assert_double_eq(auroc(3, in, 3, out), 0.0);
    /* ID positive, best first: 5, 4, 3 (OOD), then 2, 1, 0 at precisions 1/4, 2/5, 3/6 */
    ck_assert_double_eq_tol(aupr(3, in, 3, out, PROTOOD_POSITIVE_IN), (1.0 / 4 + 2.0 / 5 + 3.0 / 6) / 3, 1e-15);
    ck_assert_double_eq_tol(aupr(3, in, 3, out, PROTOOD_POSITIVE_OUT), (1.0 / 4 + 2.0 / 5 + 3.0 / 6) / 3, 1e-15);
    ck_assert_double_eq(fpr(3, in, 3, out, 0.95, PROTOOD_FPR_ROC), 1.0);
    ck_assert_double_eq(fpr(3, in, 3, out, 0.95, PROTOOD_FPR_OOD_POSITIVE), 1.0);
    ck_assert_double_eq(fpr(3, in, 3, out, 0.95, PROTOOD_FPR_KNN), 1.0);        /* threshold in[round(0.15)] = 0 */
    ck_assert_double_eq(fpr(3, in, 3, out, 0.95, PROTOOD_FPR_PERCENTILE), 1.0); /* threshold 0.1 */
    /* TPR 1/3 is first reached at threshold 2, below every OOD row */
    ck_assert_double_eq(fpr(3, in, 3, out, 1.0 / 3, PROTOOD_FPR_ROC), 1.0);
}
END_TEST

START_TEST(all_tied)
{
    const float in[] = {1, 1, 1}, out[] = {1, 1};
    ck_assert_double_eq(auroc(3, in, 2, out), 0.5);
    ck_assert_double_eq(aupr(3, in, 2, out, PROTOOD_POSITIVE_IN), 3.0 / 5);
    ck_assert_double_eq(aupr(3, in, 2, out, PROTOOD_POSITIVE_OUT), 2.0 / 5);
    /* One threshold admits everything at once: the ROC conventions count every OOD row; the
     * threshold conventions count OOD rows strictly above an ID score: none. */
    ck_assert_double_eq(fpr(3, in, 2, out, 0.95, PROTOOD_FPR_ROC), 1.0);
    ck_assert_double_eq(fpr(3, in, 2, out, 0.95, PROTOOD_FPR_OOD_POSITIVE), 1.0);
    ck_assert_double_eq(fpr(3, in, 2, out, 0.95, PROTOOD_FPR_KNN), 0.0);
    ck_assert_double_eq(fpr(3, in, 2, out, 0.95, PROTOOD_FPR_PERCENTILE), 0.0);
}
END_TEST

START_TEST(single_element_per_side)
{
    const float hi[] = {2}, lo[] = {1}, same[] = {1};
    ck_assert_double_eq(auroc(1, hi, 1, lo), 1.0);
    ck_assert_double_eq(auroc(1, lo, 1, hi), 0.0);
    ck_assert_double_eq(auroc(1, same, 1, lo), 0.5);
    ck_assert_double_eq(aupr(1, hi, 1, lo, PROTOOD_POSITIVE_IN), 1.0);
    ck_assert_double_eq(aupr(1, lo, 1, hi, PROTOOD_POSITIVE_IN), 0.5);
    ck_assert_double_eq(aupr(1, same, 1, lo, PROTOOD_POSITIVE_OUT), 0.5);
    for (int32_t conv = 0; conv <= 3; conv++) {
        ck_assert_double_eq(fpr(1, hi, 1, lo, 0.95, conv), 0.0);
        ck_assert_double_eq(fpr(1, lo, 1, hi, 0.95, conv), 1.0);
    }
    ck_assert_double_eq(fpr(1, same, 1, lo, 0.95, PROTOOD_FPR_ROC), 1.0);
    ck_assert_double_eq(fpr(1, same, 1, lo, 0.95, PROTOOD_FPR_KNN), 0.0);
}
END_TEST

START_TEST(negative_zero_ties_with_zero)
{
    const float in[] = {-0.0f}, out[] = {0.0f};
    ck_assert_double_eq(auroc(1, in, 1, out), 0.5);
    ck_assert_double_eq(aupr(1, in, 1, out, PROTOOD_POSITIVE_IN), 0.5);
    ck_assert_double_eq(fpr(1, in, 1, out, 0.95, PROTOOD_FPR_ROC), 1.0);
    ck_assert_double_eq(fpr(1, in, 1, out, 0.95, PROTOOD_FPR_KNN), 0.0);
}
END_TEST

START_TEST(roc_tpr_boundary_and_other_rates)
{
    /* 20 ID rows 1..20, OOD rows at 0.5 + k: TPR 0.95 is reached exactly at 19/20 (threshold 2),
     * where the OOD rows 2.5 .. 19.5 (18 of 20) are admitted. */
    float in[20], out[20];
    for (int k = 0; k < 20; k++) {
        in[k] = (float)(k + 1);
        out[k] = (float)k + 0.5f;
    }
    ck_assert_double_eq(fpr(20, in, 20, out, 0.95, PROTOOD_FPR_ROC), 18.0 / 20);
    ck_assert_double_eq(fpr(20, in, 20, out, 0.5, PROTOOD_FPR_ROC), 9.0 / 20);   /* threshold 11: 11.5..19.5 */
    ck_assert_double_eq(fpr(20, in, 20, out, 1.0, PROTOOD_FPR_ROC), 19.0 / 20);  /* threshold 1 */
    ck_assert_double_eq(fpr(20, in, 20, out, 0.01, PROTOOD_FPR_ROC), 0.0);       /* threshold 20 */
    /* OOD positive: OOD 0.5..19.5 ascending; 19 of 20 reached at 18.5, with ID rows 1..18 below */
    ck_assert_double_eq(fpr(20, in, 20, out, 0.95, PROTOOD_FPR_OOD_POSITIVE), 18.0 / 20);
}
END_TEST

START_TEST(knn_rounds_halves_to_even_with_the_literal_rate)
{
    /* n = 10: Python computes round(0.05 * 10) = round(0.5) = 0, threshold in[0] = 0; with
     * 1 - 0.95 = 0.050000000000000044 it would be index 1 and the OOD row 0.5 would not count. */
    float in[50], out[] = {0.5f};
    for (int k = 0; k < 50; k++)
        in[k] = (float)k;
    ck_assert_double_eq(fpr(10, in, 1, out, 0.95, PROTOOD_FPR_KNN), 1.0);
    /* n = 50: round(2.5) = 2 (not 3): threshold 2, so 2.5 counts */
    const float out2[] = {2.5f};
    ck_assert_double_eq(fpr(50, in, 1, out2, 0.95, PROTOOD_FPR_KNN), 1.0);
    /* n = 30: 0.05 * 30 = 1.5 -> 2: threshold 2, so 1.5 does not count but 2.5 does */
    const float out3[] = {1.5f, 2.5f};
    ck_assert_double_eq(fpr(30, in, 2, out3, 0.95, PROTOOD_FPR_KNN), 0.5);
    /* TPR 0.9 on n = 5: round(0.1 * 5) = round(0.5) = 0 */
    ck_assert_double_eq(fpr(5, in, 1, out, 0.9, PROTOOD_FPR_KNN), 1.0);
    /* index n (tpr < 0.5 / n) takes the highest ID score: nothing above 1 */
    const float out4[] = {0.5f, 1.0f};
    ck_assert_double_eq(fpr(2, in, 2, out4, 0.2, PROTOOD_FPR_KNN), 0.0);
}
END_TEST

START_TEST(percentile_interpolates_like_numpy)
{
    /* n = 21 values 0..20: (n - 1) * 0.05 = 1 exactly, threshold 1 */
    float in[21];
    for (int k = 0; k < 21; k++)
        in[k] = (float)k;
    const float out[] = {1.0f, 1.5f};
    ck_assert_double_eq(fpr(21, in, 2, out, 0.95, PROTOOD_FPR_PERCENTILE), 0.5);
    /* numpy rounds b - a to float32: numpy.percentile(np.float32([-0.4, 0.6000001]), 40) is
     * 4.172325135387567e-08 where the exact interpolation gives 2.98e-08; an OOD score between
     * the two is above the exact threshold but not above numpy's. */
    const float two[] = {-0.4f, 0.6000001f};
    const float probe[] = {3.5e-8f};
    ck_assert(probe[0] > (double)two[0] + ((double)two[1] - (double)two[0]) * 0.4 && probe[0] < 4.172325135387567e-08);
    ck_assert_double_eq(fpr(2, two, 1, probe, 0.6, PROTOOD_FPR_PERCENTILE), 0.0);
    /* numpy.percentile(np.float32([0, 1]), 10) = 0.1 (double), but PALM's comparison
     * novel > threshold runs in float32 under numpy 1.24: float32(0.1) is not above itself. */
    const float unit[] = {0.0f, 1.0f}, tenth[] = {0.1f};
    ck_assert_double_eq(fpr(2, unit, 1, tenth, 0.9, PROTOOD_FPR_PERCENTILE), 0.0);
    /* Next to an infinity the threshold is that infinity: -inf, so every finite OOD row counts */
    const float inf_lo[] = {-INFINITY, 1.0f}, finite[] = {-1e30f, 0.5f};
    ck_assert_double_eq(fpr(2, inf_lo, 2, finite, 0.5, PROTOOD_FPR_PERCENTILE), 1.0);
    const float inf_hi[] = {0.0f, INFINITY};
    ck_assert_double_eq(fpr(2, inf_hi, 2, finite, 0.5, PROTOOD_FPR_PERCENTILE), 0.0);
    /* ... but at an exact index an infinite neighbour plays no part */
    const float three[] = {0.0f, 1.0f, INFINITY}, half[] = {0.5f, 2.0f};
    ck_assert_double_eq(fpr(3, three, 2, half, 0.5, PROTOOD_FPR_PERCENTILE), 0.5);
}
END_TEST

START_TEST(infinities_are_ordered)
{
    const float in[] = {INFINITY, 1.0f, -INFINITY}, out[] = {-INFINITY, 0.0f};
    /* pairs: inf beats both, 1 beats both, -inf ties -inf and loses to 0: (2 + 2 + 0.5) / 6 */
    ck_assert_double_eq(auroc(3, in, 2, out), 4.5 / 6);
    ck_assert_double_eq(fpr(3, in, 2, out, 0.95, PROTOOD_FPR_ROC), 1.0);
    ck_assert_double_eq(fpr(3, in, 2, out, 2.0 / 3, PROTOOD_FPR_ROC), 0.0); /* inf and 1: no OOD row */
    ck_assert_double_eq(fpr(3, in, 2, out, 0.95, PROTOOD_FPR_KNN), 0.5); /* above in[0] = -inf */
}
END_TEST

/* ---- Internal helpers -------------------------------------------------------------------- */

START_TEST(keys_preserve_float_order)
{
    const float v[] = {-INFINITY, -FLT_MAX, -1.5f, -1.0f, -FLT_MIN, -1e-45f, 0.0f,
                       1e-45f,    FLT_MIN,  1.0f,  1.5f,  FLT_MAX,  INFINITY};
    size_t n = sizeof v / sizeof v[0];
    for (size_t i = 0; i + 1 < n; i++)
        ck_assert_uint_lt(pood_score_key(v[i]), pood_score_key(v[i + 1]));
    for (size_t i = 0; i < n; i++) {
        float back = pood_score_from_key(pood_score_key(v[i]));
        ck_assert(memcmp(&back, &v[i], sizeof back) == 0);
    }
    ck_assert_uint_eq(pood_score_key(-0.0f), pood_score_key(0.0f));
}
END_TEST

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(radix_sort_sorts)
{
    static const size_t sizes[] = {0, 1, 2, 3, 17, 256, 1000, 100003};
    rng_state = 42;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int kind = 0; kind < 3; kind++) {
            size_t n = sizes[s];
            uint32_t *a = malloc((n + 1) * sizeof *a), *b = malloc((n + 1) * sizeof *b),
                     *tmp = malloc((n + 1) * sizeof *tmp);
            for (size_t i = 0; i < n; i++) /* full range, one varying byte, scores of one sign */
                a[i] = kind == 0 ? (uint32_t)rnd() : kind == 1 ? 0xabcd0000u | (uint32_t)(rnd() % 7) << 8
                                                               : pood_score_key((float)(rnd() % 1000) * 0.001f);
            if (n)
                memcpy(b, a, n * sizeof *a);
            pood_sort_keys(a, tmp, n);
            qsort(b, n, sizeof *b, cmp_u32);
            ck_assert_msg(n == 0 || memcmp(a, b, n * sizeof *a) == 0, "size %zu kind %d", n, kind);
            free(a);
            free(b);
            free(tmp);
        }
    }
}
END_TEST

START_TEST(complement_rate_is_digit_exact)
{
    ck_assert(pood_complement_rate(0.95) == 0.05);
    ck_assert(pood_complement_rate(0.9) == 0.1);
    ck_assert(pood_complement_rate(0.99) == 0.01);
    ck_assert(pood_complement_rate(0.999) == 0.001);
    ck_assert(pood_complement_rate(0.123456789) == 0.876543211);
    ck_assert(pood_complement_rate(1.0) == 0.0);
    ck_assert(pood_complement_rate(0.5) == 0.5);
    ck_assert(pood_complement_rate(0.05) == 0.95);
    /* not a short decimal: the plain difference */
    double odd = nextafter(0.95, 1.0);
    ck_assert(pood_complement_rate(odd) == 1.0 - odd);
    ck_assert(pood_complement_rate(2.0 / 3) == 1.0 - 2.0 / 3);
}
END_TEST

START_TEST(round_half_even_like_python)
{
    ck_assert(pood_round_half_even(0.5) == 0.0);
    ck_assert(pood_round_half_even(1.5) == 2.0);
    ck_assert(pood_round_half_even(2.5) == 2.0);
    ck_assert(pood_round_half_even(3.5) == 4.0);
    ck_assert(pood_round_half_even(2.4999999) == 2.0);
    ck_assert(pood_round_half_even(2.5000001) == 3.0);
    ck_assert(pood_round_half_even(0.0) == 0.0);
    ck_assert(pood_round_half_even(0.5000000000000004) == 1.0);
    ck_assert(pood_round_half_even(1e300) == 1e300);
}
END_TEST

/* ---- Errors -------------------------------------------------------------------------------- */

#define EXPECT_FAIL(call, status, substring)                                                            \
    do {                                                                                                \
        double out_ = -7.0;                                                                             \
        double *out = &out_;                                                                            \
        ck_assert_int_eq((call), (status));                                                             \
        ck_assert_msg(strstr(protood_last_error(), (substring)) != NULL, "message '%s' lacks '%s'",    \
                      protood_last_error(), (substring));                                              \
        ck_assert_double_eq(out_, -7.0);                                                                \
        (void)out;                                                                                      \
    } while (0)

START_TEST(errors_name_argument_and_value)
{
    float in[20], o[4] = {0, 1, 2, 3};
    for (int k = 0; k < 20; k++)
        in[k] = (float)k;
    EXPECT_FAIL(protood_auroc(20, in, 4, o, NULL), PROTOOD_E_INVALID_ARG, "protood_auroc: out is NULL");
    EXPECT_FAIL(protood_auroc(0, in, 4, o, out), PROTOOD_E_INVALID_ARG, "protood_auroc: n_in = 0, must be >= 1");
    EXPECT_FAIL(protood_auroc(20, in, -1, o, out), PROTOOD_E_INVALID_ARG, "protood_auroc: n_out = -1");
    EXPECT_FAIL(protood_auroc(20, NULL, 4, o, out), PROTOOD_E_INVALID_ARG, "protood_auroc: s_in is NULL");
    EXPECT_FAIL(protood_auroc(20, in, 4, NULL, out), PROTOOD_E_INVALID_ARG, "protood_auroc: s_out is NULL");
    EXPECT_FAIL(protood_auroc(INT64_MAX / 2, in, INT64_MAX / 2, o, out), PROTOOD_E_SHAPE, "protood_auroc: n_in = ");
    EXPECT_FAIL(protood_auroc((int64_t)1 << 61, in, (int64_t)1 << 61, o, out), PROTOOD_E_SHAPE, "overflow");

    in[17] = NAN;
    EXPECT_FAIL(protood_auroc(20, in, 4, o, out), PROTOOD_E_NONFINITE, "protood_auroc: s_in[17] = nan");
    EXPECT_FAIL(protood_aupr(20, in, 4, o, PROTOOD_POSITIVE_IN, out), PROTOOD_E_NONFINITE,
                "protood_aupr: s_in[17] = nan");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, 0.95, PROTOOD_FPR_ROC, out), PROTOOD_E_NONFINITE,
                "protood_fpr_at_tpr: s_in[17] = nan");
    in[17] = 17.0f;
    o[3] = NAN;
    EXPECT_FAIL(protood_auroc(20, in, 4, o, out), PROTOOD_E_NONFINITE, "protood_auroc: s_out[3] = nan");
    o[3] = 3.0f;

    EXPECT_FAIL(protood_aupr(20, in, 4, o, 0, out), PROTOOD_E_INVALID_ARG, "protood_aupr: positive = 0, must be");
    EXPECT_FAIL(protood_aupr(20, in, 4, o, 3, out), PROTOOD_E_INVALID_ARG, "positive = 3");
    EXPECT_FAIL(protood_aupr(20, in, 4, o, PROTOOD_POSITIVE_OUT, NULL), PROTOOD_E_INVALID_ARG,
                "protood_aupr: out is NULL");
    EXPECT_FAIL(protood_aupr(0, in, 4, o, PROTOOD_POSITIVE_OUT, out), PROTOOD_E_INVALID_ARG, "protood_aupr: n_in = 0");
    EXPECT_FAIL(protood_aupr(20, in, 4, NULL, PROTOOD_POSITIVE_OUT, out), PROTOOD_E_INVALID_ARG,
                "protood_aupr: s_out is NULL");

    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, 0.0, PROTOOD_FPR_ROC, out), PROTOOD_E_INVALID_ARG,
                "protood_fpr_at_tpr: tpr = 0, must be in (0, 1]");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, 1.5, PROTOOD_FPR_ROC, out), PROTOOD_E_INVALID_ARG, "tpr = 1.5");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, -0.5, PROTOOD_FPR_ROC, out), PROTOOD_E_INVALID_ARG, "tpr = -0.5");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, NAN, PROTOOD_FPR_ROC, out), PROTOOD_E_INVALID_ARG, "tpr = nan");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, 0.95, 4, out), PROTOOD_E_INVALID_ARG,
                "protood_fpr_at_tpr: convention = 4, must be");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, 0.95, -1, out), PROTOOD_E_INVALID_ARG, "convention = -1");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 4, o, 0.95, PROTOOD_FPR_KNN, NULL), PROTOOD_E_INVALID_ARG,
                "protood_fpr_at_tpr: out is NULL");
    EXPECT_FAIL(protood_fpr_at_tpr(20, NULL, 4, o, 0.95, PROTOOD_FPR_KNN, out), PROTOOD_E_INVALID_ARG,
                "protood_fpr_at_tpr: s_in is NULL");
    EXPECT_FAIL(protood_fpr_at_tpr(20, in, 0, o, 0.95, PROTOOD_FPR_KNN, out), PROTOOD_E_INVALID_ARG,
                "protood_fpr_at_tpr: n_out = 0");

    /* The percentile between -inf and +inf defines no threshold */
    const float split[] = {-INFINITY, INFINITY};
    EXPECT_FAIL(protood_fpr_at_tpr(2, split, 4, o, 0.5, PROTOOD_FPR_PERCENTILE, out), PROTOOD_E_NONFINITE,
                "protood_fpr_at_tpr: tpr = 0.5, convention PROTOOD_FPR_PERCENTILE");
    /* ... while the other conventions order them */
    ck_assert_double_eq(fpr(2, split, 4, o, 0.5, PROTOOD_FPR_ROC), 0.0);
}
END_TEST

/* ---- Threads ------------------------------------------------------------------------------- */

typedef struct {
    const float *in, *out;
    int64_t n_in, n_out;
    double auroc, fpr;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    for (int rep = 0; rep < 20; rep++) {
        if (protood_auroc(j->n_in, j->in, j->n_out, j->out, &j->auroc) != PROTOOD_OK ||
            protood_fpr_at_tpr(j->n_in, j->in, j->n_out, j->out, 0.95, PROTOOD_FPR_ROC, &j->fpr) != PROTOOD_OK)
            j->auroc = NAN;
    }
    return NULL;
}

START_TEST(concurrent_calls_agree)
{
    tu_fixture *fx = tu_fixture_load("metrics");
    int64_t n_in, n_out, cols;
    float *in = tu_fixture_f32(fx, "scores_in.npy", &n_in, &cols);
    float *out = tu_fixture_f32(fx, "scores_out.npy", &n_out, &cols);
    pthread_t t[4];
    job jobs[4];
    for (int k = 0; k < 4; k++) {
        jobs[k] = (job){in, out, n_in, n_out, NAN, NAN};
        ck_assert_int_eq(pthread_create(&t[k], NULL, run_job, &jobs[k]), 0);
    }
    for (int k = 0; k < 4; k++) {
        ck_assert_int_eq(pthread_join(t[k], NULL), 0);
        ck_assert_double_eq_tol(jobs[k].auroc, tu_fixture_param(fx, "auroc"), 1e-9);
        ck_assert_double_eq_tol(jobs[k].fpr, tu_fixture_param(fx, "fpr95"), 1e-9);
    }
    free(in);
    free(out);
    tu_fixture_free(fx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("reference");
    tcase_add_test(tc, fixture_values);
    tcase_add_test(tc, matches_brute_force_on_tied_random_scores);
    tcase_add_test(tc, concurrent_calls_agree);
    suite_add_tcase(s, tc);
    tc = tcase_create("by_hand");
    tcase_add_test(tc, perfect_separation);
    tcase_add_test(tc, reversed);
    tcase_add_test(tc, all_tied);
    tcase_add_test(tc, single_element_per_side);
    tcase_add_test(tc, negative_zero_ties_with_zero);
    tcase_add_test(tc, roc_tpr_boundary_and_other_rates);
    tcase_add_test(tc, knn_rounds_halves_to_even_with_the_literal_rate);
    tcase_add_test(tc, percentile_interpolates_like_numpy);
    tcase_add_test(tc, infinities_are_ordered);
    suite_add_tcase(s, tc);
    tc = tcase_create("internals");
    tcase_add_test(tc, keys_preserve_float_order);
    tcase_add_test(tc, radix_sort_sorts);
    tcase_add_test(tc, complement_rate_is_digit_exact);
    tcase_add_test(tc, round_half_even_like_python);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, errors_name_argument_and_value);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
