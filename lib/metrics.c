/* OOD metrics of SPEC.md §7: AUROC, average precision and FPR at a TPR, in-distribution positive.
 *
 * Every metric depends on the scores only through their order and their ties, so each call turns
 * both score sets into order-preserving integer keys, radix-sorts them once, and walks the groups
 * of equal scores from either end. Counts are integers, so the results are the exact rationals of
 * the definitions (rounded once to double), whatever the ties. */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"
#include "validate.h"

uint32_t pood_score_key(float x)
{
    if (x == 0.0f)
        x = 0.0f; /* -0 == +0: without this they would sort as distinct scores */
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    /* Positive floats order like their bits; negative ones in reverse. Setting the sign bit of
     * positives and flipping all bits of negatives makes unsigned order the float order. */
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

float pood_score_from_key(uint32_t key)
{
    uint32_t u = (key & 0x80000000u) ? (key & 0x7fffffffu) : ~key;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

void pood_sort_keys(uint32_t *keys, uint32_t *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t count[4][256] = {{0}};
    for (size_t i = 0; i < n; i++) {
        uint32_t k = keys[i];
        count[0][k & 0xffu]++;
        count[1][(k >> 8) & 0xffu]++;
        count[2][(k >> 16) & 0xffu]++;
        count[3][k >> 24]++;
    }
    uint32_t *src = keys, *dst = tmp;
    for (int pass = 0; pass < 4; pass++) {
        unsigned shift = 8u * (unsigned)pass;
        size_t *c = count[pass];
        /* Scores of one experiment share their sign and exponent bytes: skipping the passes where
         * every key has the same digit halves the work on typical data. */
        if (c[(src[0] >> shift) & 0xffu] == n)
            continue;
        size_t sum = 0;
        for (int b = 0; b < 256; b++) {
            size_t t = c[b];
            c[b] = sum;
            sum += t;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t k = src[i];
            dst[c[(k >> shift) & 0xffu]++] = k;
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != keys)
        memcpy(keys, src, n * sizeof *keys);
}

double pood_round_half_even(double x)
{
    double f = floor(x);
    double frac = x - f; /* exact for every double */
    if (frac > 0.5 || (frac == 0.5 && fmod(f, 2.0) != 0.0))
        return f + 1.0;
    return f;
}

double pood_complement_rate(double tpr)
{
    double p = 1.0;
    for (int d = 1; d <= 15; d++) {
        p *= 10.0; /* exact up to 1e22 */
        double m0 = round(tpr * p);
        for (double m = m0 - 1.0; m <= m0 + 1.0; m += 1.0) {
            /* m and p are exact integers, so m / p is the double nearest the decimal m / 10^d,
             * as the literal in a Python script would be; the same holds for (p - m) / p. */
            if (m >= 0.0 && m <= p && m / p == tpr)
                return (p - m) / p;
        }
    }
    return 1.0 - tpr;
}

/* ---- Both score sets, sorted once ---------------------------------------------------------- */

typedef struct ranked {
    int64_t n_in, n_out;
    uint32_t *in;  /* n_in keys, ascending */
    uint32_t *out; /* n_out keys, ascending */
} ranked;

/* Validate the score arguments and sort them. On success r->in owns the one allocation
 * (release with free(r->in)). */
static protood_status ranked_prepare(const char *func, int64_t n_in, const float *s_in, int64_t n_out,
                                     const float *s_out, ranked *r)
{
    protood_status st;
    if ((st = pood_check_count(func, "n_in", n_in)) != PROTOOD_OK ||
        (st = pood_check_count(func, "n_out", n_out)) != PROTOOD_OK)
        return st;
    if (!s_in)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "s_in is NULL");
    if (!s_out)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "s_out is NULL");
    /* keys of both sets plus radix scratch for the larger one */
    int64_t larger = n_in > n_out ? n_in : n_out, total;
    size_t bytes;
    if (__builtin_add_overflow(n_in, n_out, &total) || __builtin_add_overflow(total, larger, &total))
        return pood_fail(PROTOOD_E_SHAPE, func, "n_in = %lld, n_out = %lld: sort buffer overflows", (long long)n_in,
                         (long long)n_out);
    if ((st = pood_checked_size(func, total, 1, sizeof(uint32_t), &bytes)) != PROTOOD_OK)
        return st;
    /* ±Inf are kept: every metric here depends only on the order of the scores, and infinities
     * are ordered. NaN has no place in the order. */
    for (int64_t i = 0; i < n_in; i++)
        if (isnan(s_in[i]))
            return pood_fail(PROTOOD_E_NONFINITE, func, "s_in[%lld] = %g", (long long)i, (double)s_in[i]);
    for (int64_t j = 0; j < n_out; j++)
        if (isnan(s_out[j]))
            return pood_fail(PROTOOD_E_NONFINITE, func, "s_out[%lld] = %g", (long long)j, (double)s_out[j]);

    uint32_t *mem = pood_malloc(bytes);
    if (!mem)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for a sort buffer of %zu bytes", bytes);
    r->n_in = n_in;
    r->n_out = n_out;
    r->in = mem;
    r->out = mem + n_in;
    uint32_t *tmp = r->out + n_out;
    for (int64_t i = 0; i < n_in; i++)
        r->in[i] = pood_score_key(s_in[i]);
    for (int64_t j = 0; j < n_out; j++)
        r->out[j] = pood_score_key(s_out[j]);
    pood_sort_keys(r->in, tmp, (size_t)n_in);
    pood_sort_keys(r->out, tmp, (size_t)n_out);
    return PROTOOD_OK;
}

/* Groups of equal scores, from the lowest up: *i, *j are the next unread positions (start at 0).
 * Returns 0 when both sets are exhausted, else the group's ID count in *a and OOD count in *b. */
static int next_group_up(const ranked *r, int64_t *i, int64_t *j, int64_t *a, int64_t *b)
{
    int64_t i0 = *i, j0 = *j;
    if (i0 == r->n_in && j0 == r->n_out)
        return 0;
    uint32_t k;
    if (i0 == r->n_in)
        k = r->out[j0];
    else if (j0 == r->n_out)
        k = r->in[i0];
    else
        k = r->in[i0] < r->out[j0] ? r->in[i0] : r->out[j0];
    while (*i < r->n_in && r->in[*i] == k)
        (*i)++;
    while (*j < r->n_out && r->out[*j] == k)
        (*j)++;
    *a = *i - i0;
    *b = *j - j0;
    return 1;
}

/* Groups from the highest score down: *i, *j count the unread entries (start at n_in, n_out). */
static int next_group_down(const ranked *r, int64_t *i, int64_t *j, int64_t *a, int64_t *b)
{
    int64_t i0 = *i, j0 = *j;
    if (i0 == 0 && j0 == 0)
        return 0;
    uint32_t k;
    if (i0 == 0)
        k = r->out[j0 - 1];
    else if (j0 == 0)
        k = r->in[i0 - 1];
    else
        k = r->in[i0 - 1] > r->out[j0 - 1] ? r->in[i0 - 1] : r->out[j0 - 1];
    while (*i > 0 && r->in[*i - 1] == k)
        (*i)--;
    while (*j > 0 && r->out[*j - 1] == k)
        (*j)--;
    *a = i0 - *i;
    *b = j0 - *j;
    return 1;
}

/* Mann-Whitney: P(ID > OOD) + P(ID = OOD) / 2, which is what roc_auc_score's trapezoids add up to. */
static double auroc_of(const ranked *r)
{
    uint64_t pairs;
    int64_t i = 0, j = 0, a, b, below = 0;
    /* Twice the statistic is an integer <= 2 n_in n_out: exact in uint64 for any input that fits
     * in memory of today's machines; beyond that, summed in double (relative error ~1e-16 per
     * group). */
    if (!__builtin_mul_overflow((uint64_t)r->n_in, (uint64_t)r->n_out, &pairs) && pairs <= UINT64_MAX / 2) {
        uint64_t twice = 0;
        while (next_group_up(r, &i, &j, &a, &b)) {
            twice += (uint64_t)a * (uint64_t)(2 * below + b);
            below += b;
        }
        return (double)twice / (2.0 * (double)r->n_in * (double)r->n_out);
    }
    double twice = 0.0;
    while (next_group_up(r, &i, &j, &a, &b)) {
        twice += (double)a * (2.0 * (double)below + (double)b);
        below += b;
    }
    return twice / (2.0 * (double)r->n_in * (double)r->n_out);
}

/* average_precision_score: sum over thresholds (distinct scores, best first) of
 * (gain in recall) x precision, i.e. sum over groups holding positives of
 * (positives in the group / all positives) x TP / (TP + FP) at that group. */
static double aupr_of(const ranked *r, int32_t positive)
{
    int64_t i, j, a, b, tp = 0, fp = 0;
    double sum = 0.0, comp = 0.0; /* Neumaier summation: the sum has up to n terms */
    int pos_in = positive == PROTOOD_POSITIVE_IN;
    if (pos_in) {
        i = r->n_in;
        j = r->n_out;
    } else {
        i = j = 0;
    }
    /* OOD positive = OOD scores negated, so "best first" is lowest first. */
    while (pos_in ? next_group_down(r, &i, &j, &a, &b) : next_group_up(r, &i, &j, &a, &b)) {
        int64_t gain = pos_in ? a : b;
        tp += gain;
        fp += pos_in ? b : a;
        if (gain == 0)
            continue;
        double term = (double)gain * ((double)tp / (double)(tp + fp));
        double t = sum + term;
        comp += fabs(sum) >= fabs(term) ? (sum - t) + term : (term - t) + sum;
        sum = t;
    }
    return (sum + comp) / (double)(pos_in ? r->n_in : r->n_out);
}

/* Count of OOD scores strictly above the score whose key is `key` (upper bound in the keys). */
static int64_t out_above(const ranked *r, uint32_t key)
{
    int64_t lo = 0, hi = r->n_out; /* first index whose key is > key */
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (r->out[mid] > key)
            hi = mid;
        else
            lo = mid + 1;
    }
    return r->n_out - lo;
}

/* PALM's threshold: numpy.percentile(s_in, 100 q), method "linear", as numpy 1.24 computes it on
 * a float32 array: virtual index (n - 1) q, neighbours a <= b, the difference b - a rounded to
 * float32, then a + (b - a) g, or b - (b - a)(1 - g) when g >= 0.5, in double. PALM then
 * compares the float32 OOD scores with that float64 scalar, and numpy < 2 does such a comparison
 * in float32: the threshold is rounded to float32 (an OOD score equal to the rounded value is not
 * above it). */
static protood_status percentile_of(const char *func, const ranked *r, double tpr, float *thr)
{
    int64_t n = r->n_in;
    double q = pood_complement_rate(tpr);
    double vi = (double)(n - 1) * q;
    if (vi >= (double)(n - 1)) {
        *thr = pood_score_from_key(r->in[n - 1]);
        return PROTOOD_OK;
    }
    double lo = floor(vi), g = vi - lo;
    float a = pood_score_from_key(r->in[(int64_t)lo]), b = pood_score_from_key(r->in[(int64_t)lo + 1]);
    if (g == 0.0 || a == b) {
        *thr = a;
        return PROTOOD_OK;
    }
    if (isinf(a) || isinf(b)) {
        /* numpy returns NaN or an infinity here; the limit of a + (b - a) g as the infinite end
         * grows is the meaningful threshold, and between -inf and +inf there is none. */
        if (isinf(a) && isinf(b))
            return pood_fail(PROTOOD_E_NONFINITE, func,
                             "tpr = %g, convention PROTOOD_FPR_PERCENTILE: the percentile of s_in lies "
                             "between -inf and inf, which defines no threshold",
                             tpr);
        *thr = isinf(a) ? a : b;
        return PROTOOD_OK;
    }
    float d = b - a;
    /* numpy's float32 difference overflows only for scores near ±3.4e38; it would return ±inf or
     * NaN, so take the double difference there instead. */
    double dd = isinf(d) ? (double)b - (double)a : (double)d;
    *thr = (float)(g >= 0.5 ? (double)b - dd * (1.0 - g) : (double)a + dd * g);
    return PROTOOD_OK;
}

static protood_status fpr_of(const char *func, const ranked *r, double tpr, int32_t convention, double *fpr)
{
    int64_t i, j, a, b, tp = 0, fp = 0;
    switch (convention) {
    case PROTOOD_FPR_ROC:
        /* roc_curve(drop_intermediate=False): fpr[argmax(tpr >= rate)], with tpr and fpr divided
         * in double exactly as sklearn does, so the comparison at the boundary agrees. */
        i = r->n_in;
        j = r->n_out;
        while (next_group_down(r, &i, &j, &a, &b)) {
            tp += a;
            fp += b;
            if ((double)tp / (double)r->n_in >= tpr)
                break;
        }
        *fpr = (double)fp / (double)r->n_out;
        return PROTOOD_OK;
    case PROTOOD_FPR_OOD_POSITIVE:
        i = j = 0;
        while (next_group_up(r, &i, &j, &a, &b)) {
            tp += b;
            fp += a;
            if ((double)tp / (double)r->n_out >= tpr)
                break;
        }
        *fpr = (double)fp / (double)r->n_in;
        return PROTOOD_OK;
    case PROTOOD_FPR_KNN: {
        /* known.sort(); threshold = known[round(0.05 * num_k)] */
        double idx = pood_round_half_even(pood_complement_rate(tpr) * (double)r->n_in);
        /* round() reaches n only for tpr < 0.5 / n, where Python would raise IndexError: take the
         * highest ID score instead. */
        int64_t k = idx >= (double)r->n_in ? r->n_in - 1 : (int64_t)idx;
        *fpr = (double)out_above(r, r->in[k]) / (double)r->n_out;
        return PROTOOD_OK;
    }
    case PROTOOD_FPR_PERCENTILE: {
        float thr = 0.0f; /* set on success; initialised for the compiler's flow analysis */
        protood_status st = percentile_of(func, r, tpr, &thr);
        if (st != PROTOOD_OK)
            return st;
        *fpr = (double)out_above(r, pood_score_key(thr)) / (double)r->n_out;
        return PROTOOD_OK;
    }
    default:
        return pood_fail(PROTOOD_E_INTERNAL, func, "convention = %d passed validation", convention);
    }
}

/* ---- Public entry points ------------------------------------------------------------------ */

protood_status protood_auroc(int64_t n_in, const float *s_in, int64_t n_out, const float *s_out, double *out)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    ranked r;
    protood_status st = ranked_prepare(__func__, n_in, s_in, n_out, s_out, &r);
    if (st != PROTOOD_OK)
        return st;
    *out = auroc_of(&r);
    free(r.in);
    return PROTOOD_OK;
}

protood_status protood_aupr(int64_t n_in, const float *s_in, int64_t n_out, const float *s_out, int32_t positive,
                            double *out)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (positive != PROTOOD_POSITIVE_IN && positive != PROTOOD_POSITIVE_OUT)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__,
                         "positive = %d, must be PROTOOD_POSITIVE_IN (1) or PROTOOD_POSITIVE_OUT (2)", positive);
    ranked r;
    protood_status st = ranked_prepare(__func__, n_in, s_in, n_out, s_out, &r);
    if (st != PROTOOD_OK)
        return st;
    *out = aupr_of(&r, positive);
    free(r.in);
    return PROTOOD_OK;
}

protood_status protood_fpr_at_tpr(int64_t n_in, const float *s_in, int64_t n_out, const float *s_out, double tpr,
                                  int32_t convention, double *out)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!(tpr > 0.0 && tpr <= 1.0)) /* also rejects NaN */
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "tpr = %g, must be in (0, 1]", tpr);
    if (convention < PROTOOD_FPR_ROC || convention > PROTOOD_FPR_OOD_POSITIVE)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__,
                         "convention = %d, must be PROTOOD_FPR_ROC (0), PROTOOD_FPR_KNN (1), "
                         "PROTOOD_FPR_PERCENTILE (2) or PROTOOD_FPR_OOD_POSITIVE (3)",
                         convention);
    ranked r;
    protood_status st = ranked_prepare(__func__, n_in, s_in, n_out, s_out, &r);
    if (st != PROTOOD_OK)
        return st;
    double fpr;
    st = fpr_of(__func__, &r, tpr, convention, &fpr);
    free(r.in);
    if (st == PROTOOD_OK)
        *out = fpr;
    return st;
}
