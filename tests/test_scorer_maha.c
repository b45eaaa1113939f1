/* Mahalanobis (tied covariance), SSD and prototype scorers: the reference cases, an independent
 * float64 computation (Jacobi eigendecomposition, pinvh cutoff, per-class quadratic forms) on
 * full-rank, rank-deficient and far-from-the-origin data, and the degenerate cases. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "scorer.h"
#include "testutil.h"

static double uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* ---- Independent float64 reference ------------------------------------------------------- */

/* Cyclic Jacobi eigendecomposition of the symmetric d x d matrix a (destroyed): eigenvalues in
 * w, eigenvectors in the columns of v. Slow and simple, and shares no code with LAPACK. */
static void jacobi_eigh(int64_t d, double *a, double *w, double *v)
{
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++)
            v[i * d + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, diag = 0.0;
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++)
                if (i != j)
                    off += a[i * d + j] * a[i * d + j];
                else
                    diag += a[i * d + j] * a[i * d + j];
        if (off <= 1e-60 * diag || off == 0.0)
            break;
        for (int64_t p = 0; p < d; p++)
            for (int64_t q = p + 1; q < d; q++) {
                double apq = a[p * d + q];
                if (apq == 0.0)
                    continue;
                double theta = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                double t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                double c = 1.0 / sqrt(t * t + 1.0), s = t * c;
                for (int64_t k = 0; k < d; k++) { /* A <- A J */
                    double akp = a[k * d + p], akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for (int64_t k = 0; k < d; k++) { /* A <- J^T A */
                    double apk = a[p * d + k], aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
                for (int64_t k = 0; k < d; k++) {
                    double vkp = v[k * d + p], vkq = v[k * d + q];
                    v[k * d + p] = c * vkp - s * vkq;
                    v[k * d + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int64_t i = 0; i < d; i++)
        w[i] = a[i * d + i];
}

/* scipy.linalg.pinvh: drop |l| <= d * eps * max|l|. Returns the rank kept. */
static int64_t pinvh(int64_t d, const double *cov, double *out)
{
    double *a = malloc((size_t)(d * d) * sizeof *a), *v = malloc((size_t)(d * d) * sizeof *v);
    double *w = malloc((size_t)d * sizeof *w);
    memcpy(a, cov, (size_t)(d * d) * sizeof *a);
    jacobi_eigh(d, a, w, v);
    double top = 0.0;
    for (int64_t i = 0; i < d; i++)
        top = fmax(top, fabs(w[i]));
    int64_t rank = 0;
    memset(out, 0, (size_t)(d * d) * sizeof *out);
    for (int64_t t = 0; t < d; t++) {
        if (fabs(w[t]) <= (double)d * DBL_EPSILON * top)
            continue;
        rank++;
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < d; j++)
                out[i * d + j] += v[i * d + t] * v[j * d + t] / w[t];
    }
    free(a);
    free(v);
    free(w);
    return rank;
}

static double *normalized(int64_t n, int64_t d, const float *x, int normalize)
{
    double *out = malloc((size_t)(n * d) * sizeof *out);
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < d; j++)
            s += (double)x[i * d + j] * x[i * d + j];
        double inv = normalize ? 1.0 / sqrt(s) : 1.0;
        for (int64_t j = 0; j < d; j++)
            out[i * d + j] = x[i * d + j] * inv;
    }
    return out;
}

static double quad(int64_t d, const double *prec, const double *a, const double *mu)
{
    double s = 0.0;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < d; j++)
            s += (a[i] - mu[i]) * prec[i * d + j] * (a[j] - mu[j]);
    return s;
}

/* SPEC.md §6 Mahalanobis, two-pass in float64. */
static double *ref_maha(int64_t n, int64_t d, const float *x, const int32_t *y, int64_t nc, int64_t m, const float *q,
                        int normalize, int64_t *rank)
{
    double *xn = normalized(n, d, x, normalize), *qn = normalized(m, d, q, normalize);
    double *mu = calloc((size_t)(nc * d), sizeof *mu), *cov = calloc((size_t)(d * d), sizeof *cov);
    double *prec = malloc((size_t)(d * d) * sizeof *prec), *out = malloc((size_t)m * sizeof *out);
    int64_t *cnt = calloc((size_t)nc, sizeof *cnt);
    for (int64_t i = 0; i < n; i++) {
        cnt[y[i]]++;
        for (int64_t j = 0; j < d; j++)
            mu[y[i] * d + j] += xn[i * d + j];
    }
    for (int64_t c = 0; c < nc; c++)
        for (int64_t j = 0; j < d; j++)
            mu[c * d + j] /= (double)cnt[c];
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < d; a++)
            for (int64_t b = 0; b < d; b++)
                cov[a * d + b] += (xn[i * d + a] - mu[y[i] * d + a]) * (xn[i * d + b] - mu[y[i] * d + b]) / (double)n;
    *rank = pinvh(d, cov, prec);
    for (int64_t i = 0; i < m; i++) {
        out[i] = -INFINITY;
        for (int64_t c = 0; c < nc; c++)
            out[i] = fmax(out[i], -quad(d, prec, qn + i * d, mu + c * d));
    }
    free(xn);
    free(qn);
    free(mu);
    free(cov);
    free(prec);
    free(cnt);
    return out;
}

/* SPEC.md §6 SSD, literally: standardise, covariance of the standardised rows, pinvh. */
static double *ref_ssd(int64_t n, int64_t d, const float *x, int64_t m, const float *q, int normalize)
{
    double *xn = normalized(n, d, x, normalize), *qn = normalized(m, d, q, normalize);
    double *mean = calloc((size_t)d, sizeof *mean), *sd = calloc((size_t)d, sizeof *sd);
    double *tbar = calloc((size_t)d, sizeof *tbar), *cov = calloc((size_t)(d * d), sizeof *cov);
    double *prec = malloc((size_t)(d * d) * sizeof *prec), *out = malloc((size_t)m * sizeof *out);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            mean[j] += xn[i * d + j] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            sd[j] += (xn[i * d + j] - mean[j]) * (xn[i * d + j] - mean[j]) / (double)n;
    for (int64_t j = 0; j < d; j++)
        sd[j] = sqrt(sd[j]) + 1e-10;
    for (int64_t i = 0; i < n; i++) /* t in place */
        for (int64_t j = 0; j < d; j++)
            xn[i * d + j] = (xn[i * d + j] - mean[j]) / sd[j];
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++)
            tbar[j] += xn[i * d + j] / (double)n;
    for (int64_t i = 0; i < n; i++)
        for (int64_t a = 0; a < d; a++)
            for (int64_t b = 0; b < d; b++)
                cov[a * d + b] += (xn[i * d + a] - tbar[a]) * (xn[i * d + b] - tbar[b]) / (double)n;
    pinvh(d, cov, prec);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < d; j++)
            qn[i * d + j] = (qn[i * d + j] - mean[j]) / sd[j];
        out[i] = -quad(d, prec, qn + i * d, tbar);
    }
    free(xn);
    free(qn);
    free(mean);
    free(sd);
    free(tbar);
    free(cov);
    free(prec);
    return out;
}

/* ---- Helpers ------------------------------------------------------------------------------ */

static protood_scorer *make(int32_t kind, int64_t d, int normalize)
{
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, kind, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, normalize), PROTOOD_OK);
    return s;
}

static float *score_all(const protood_scorer *s, int64_t m, const float *q)
{
    float *out = malloc((size_t)m * sizeof *out);
    ck_assert_msg(protood_scorer_score(s, m, q, out) == PROTOOD_OK, "%s", protood_last_error());
    return out;
}

/* Largest |got - want| / max(|want|, floor) with every element checked against rtol. */
static double check_rel(const float *got, const double *want, int64_t n, double rtol, double floor_,
                        const char *what)
{
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double rel = fabs((double)got[i] - want[i]) / fmax(fabs(want[i]), floor_);
        ck_assert_msg(rel <= rtol, "%s[%lld] = %.9g, expected %.9g (relative error %.3g)", what, (long long)i,
                      (double)got[i], want[i], rel);
        worst = fmax(worst, rel);
    }
    return worst;
}

/* Rows in `rank` random directions of R^d (rank < d makes the covariance singular), class c
 * spread around its own mean: offset + a random vector, or with offset < 0 a random point of the
 * span of those directions, so that the rows lie in a linear subspace (which normalisation keeps). */
static float *class_rows(uint64_t seed, int64_t n, int64_t d, int64_t nc, int64_t rank, double offset, double spread,
                         int32_t *labels)
{
    double *basis = malloc((size_t)(rank * d) * sizeof *basis), *means = calloc((size_t)(nc * d), sizeof *means);
    for (int64_t i = 0; i < rank * d; i++)
        basis[i] = 2.0 * uniform(&seed) - 1.0;
    for (int64_t c = 0; c < nc; c++)
        for (int64_t r = 0; r < (offset < 0 ? rank : 0); r++) {
            double a = 2.0 * uniform(&seed) - 1.0;
            for (int64_t j = 0; j < d; j++)
                means[c * d + j] += a * basis[r * d + j];
        }
    for (int64_t i = 0; i < nc * d && offset >= 0; i++)
        means[i] = offset + 0.5 * (2.0 * uniform(&seed) - 1.0);
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        int32_t c = (int32_t)(i % nc);
        if (labels)
            labels[i] = c;
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (float)means[c * d + j];
        for (int64_t r = 0; r < rank; r++) {
            double z = spread * (2.0 * uniform(&seed) - 1.0) * (1.0 + (double)r);
            for (int64_t j = 0; j < d; j++)
                x[i * d + j] += (float)(z * basis[r * d + j]);
        }
    }
    free(basis);
    free(means);
    return x;
}

/* ---- Reference cases ---------------------------------------------------------------------- */

START_TEST(gaussian_and_prototype_scores_match_reference_cases)
{
    tu_fixture *fx = tu_fixture_load("scorers");
    int64_t n, d, m, cols, ny, np;
    float *x = tu_fixture_f32(fx, "train.npy", &n, &d);
    float *q = tu_fixture_f32(fx, "test.npy", &m, &cols);
    int32_t *y = tu_fixture_i32(fx, "train_labels.npy", &ny);
    float *protos = tu_fixture_f32(fx, "prototypes.npy", &np, &cols);
    int64_t nc = (int64_t)tu_fixture_param(fx, "n_classes");
    ck_assert_int_eq(ny, n);
    ck_assert_int_eq(d, (int64_t)tu_fixture_param(fx, "dim"));

    struct {
        int32_t kind;
        const char *file;
    } cases[] = {{PROTOOD_SCORER_MAHALANOBIS, "maha_tied.npy"},
                 {PROTOOD_SCORER_SSD, "ssd.npy"},
                 {PROTOOD_SCORER_PROTOTYPE, "proto_max_cosine.npy"}};
    for (int c = 0; c < 3; c++) {
        protood_scorer *s = make(cases[c].kind, d, 1);
        if (cases[c].kind == PROTOOD_SCORER_PROTOTYPE)
            ck_assert_int_eq(protood_scorer_fit(s, np, protos, NULL, 0), PROTOOD_OK);
        else
            ck_assert_msg(protood_scorer_fit(s, n, x, y, nc) == PROTOOD_OK, "%s", protood_last_error());
        double *want = tu_fixture_f64(fx, cases[c].file, NULL, NULL);
        float *got = score_all(s, m, q);
        tu_assert_close_f32_f64(got, want, (size_t)m, 1e-4, cases[c].file); /* SPEC.md §8 */
        double worst = check_rel(got, want, m, 1e-5, 1e-3, cases[c].file);  /* and what we reach */
        ck_assert_double_lt(worst, 1e-5);
        free(got);
        free(want);
        protood_scorer_free(s);
    }

    /* The prototype scorer fitted to a bank holding the same prototypes gives the same scores. */
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, 4, 3, d), PROTOOD_OK);
    ck_assert_int_eq(np, 12);
    ck_assert_int_eq(protood_bank_set_prototypes(bank, protos), PROTOOD_OK);
    protood_scorer *a = make(PROTOOD_SCORER_PROTOTYPE, d, 1), *b = make(PROTOOD_SCORER_PROTOTYPE, d, 1);
    ck_assert_int_eq(protood_scorer_fit_bank(a, bank), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(b, np, protos, NULL, 0), PROTOOD_OK);
    float *sa = score_all(a, m, q), *sb = score_all(b, m, q);
    double *want = tu_fixture_f64(fx, "proto_max_cosine.npy", NULL, NULL);
    check_rel(sa, want, m, 1e-5, 1e-3, "fit_bank");
    check_rel(sb, want, m, 1e-5, 1e-3, "fit");
    free(sa);
    free(sb);
    free(want);
    protood_scorer_free(a);
    protood_scorer_free(b);
    protood_bank_free(bank);
    free(x);
    free(q);
    free(y);
    free(protos);
    tu_fixture_free(fx);
}
END_TEST

/* ---- Independent float64 computation ------------------------------------------------------ */

/* Full rank and rank-deficient covariances (d = 12, rows in 12 or 5 directions), normalised or
 * raw, raw rows far from the origin (offset 50: the one-pass moments must not cancel), several
 * query tile sizes. (Not rank-deficient far from the origin: rounding the rows to float32 there
 * makes the covariance full rank with eigenvalues 1e-12 of the largest, whose values no float64
 * eigensolver gets to better than 1e-4, the reference included.) */
START_TEST(mahalanobis_and_ssd_equal_float64_reference)
{
    const int64_t n = 600, d = 12, nc = 4, m = 90;
    static const struct {
        int64_t rank;
        double offset;
        int normalize;
    } cases[] = {{12, 0.0, 1}, {5, -1.0, 1}, {12, 50.0, 0}, {5, -1.0, 0}, {12, 3.0, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t *y = malloc((size_t)n * sizeof *y);
        float *x = class_rows(100 + c, n, d, nc, cases[c].rank, cases[c].offset, 0.3, y);
        /* queries: training-like rows and rows off the training subspace */
        float *q = class_rows(200 + c, m, d, nc, d, fabs(cases[c].offset), 0.3, NULL);
        int64_t rank;
        double *want = ref_maha(n, d, x, y, nc, m, q, cases[c].normalize, &rank);
        ck_assert_int_eq(rank, cases[c].rank); /* the reference sees the deficient rank too */
        protood_scorer *s = make(PROTOOD_SCORER_MAHALANOBIS, d, cases[c].normalize);
        ck_assert_msg(protood_scorer_fit(s, n, x, y, nc) == PROTOOD_OK, "%s", protood_last_error());
        ck_assert_int_eq(s->model->rank, rank);
        static const int64_t tiles[] = {256, 1, 7, 90};
        for (size_t t = 0; t < 4; t++) {
            pood_scorer_set_tiles(s, tiles[t], tiles[t]);
            float *got = score_all(s, m, q);
            check_rel(got, want, m, 2e-5, 1.0, "mahalanobis");
            free(got);
        }
        protood_scorer_free(s);
        free(want);

        want = ref_ssd(n, d, x, m, q, cases[c].normalize);
        s = make(PROTOOD_SCORER_SSD, d, cases[c].normalize);
        ck_assert_msg(protood_scorer_fit(s, n, x, NULL, 0) == PROTOOD_OK, "%s", protood_last_error());
        float *got = score_all(s, m, q);
        check_rel(got, want, m, 2e-5, 1.0, "ssd");
        free(got);
        free(want);
        protood_scorer_free(s);
        free(x);
        free(q);
        free(y);
    }
}
END_TEST

/* Many classes with near-equal scores: the candidate set of the expansion must not lose the
 * best class. Classes are copies of one mean nudged by 1e-6, queries sit between them. */
START_TEST(mahalanobis_near_tied_classes)
{
    const int64_t d = 16, nc = 40, per = 30, n = nc * per, m = 50;
    uint64_t seed = 7;
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i / per);
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (float)(1.0 + 1e-3 * (2.0 * uniform(&seed) - 1.0) + 1e-6 * (double)y[i] * (double)(j == 0));
    }
    float *q = malloc((size_t)(m * d) * sizeof *q);
    for (int64_t i = 0; i < m * d; i++)
        q[i] = (float)(1.0 + 2e-3 * (2.0 * uniform(&seed) - 1.0));
    int64_t rank;
    double *want = ref_maha(n, d, x, y, nc, m, q, 0, &rank);
    protood_scorer *s = make(PROTOOD_SCORER_MAHALANOBIS, d, 0);
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, nc), PROTOOD_OK);
    float *got = score_all(s, m, q);
    check_rel(got, want, m, 2e-5, 1.0, "near-tied");
    free(got);
    free(want);
    protood_scorer_free(s);
    free(x);
    free(y);
    free(q);
}
END_TEST

/* ---- The stored model, evaluated independently ------------------------------------------- */

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static double le_f64(const unsigned char *p)
{
    uint64_t bits = le64(p);
    double v;
    memcpy(&v, &bits, 8);
    return v;
}

static float le_f32(const unsigned char *p)
{
    uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Read the model from the bytes as docs/scorer-format.md lays it out and evaluate
 * max_c -sum_t sign_t (p_t - m_ct)^2, p = W^T (n2(q) - origin), in double; also with a sign
 * flipped to -1 (what pinvh keeps for a negative eigenvalue beyond the cutoff), which a
 * covariance matrix hardly ever produces, so that path is reached through the file. */
START_TEST(stored_model_evaluates_as_documented)
{
    const int64_t n = 150, d = 6, nc = 3, m = 40;
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *x = class_rows(31, n, d, nc, d, 0.0, 0.3, y), *q = class_rows(32, m, d, nc, d, 0.0, 0.3, NULL);
    protood_scorer *s = make(PROTOOD_SCORER_MAHALANOBIS, d, 1);
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, nc), PROTOOD_OK);
    size_t size;
    ck_assert_int_eq(protood_scorer_to_buffer(s, NULL, 0, &size), PROTOOD_OK);
    unsigned char *buf = malloc(size);
    ck_assert_int_eq(protood_scorer_to_buffer(s, buf, size, &size), PROTOOD_OK);
    ck_assert_int_eq((int64_t)le64(buf + 48), nc);
    int64_t r = (int64_t)le64(buf + 56);
    ck_assert_int_eq(r, d);
    const unsigned char *origin = buf + 64, *w = origin + 8 * d, *signs = w + 4 * d * r, *centres = signs + 8 * r;
    ck_assert_uint_eq((size_t)(centres + 8 * nc * r - buf) + 4, size);
    double *qn = normalized(m, d, q, 1);
    for (int flip = 0; flip <= 1; flip++) {
        if (flip) { /* sign of the largest-variance direction to -1, checksum renewed */
            double minus = -1.0;
            uint64_t bits;
            memcpy(&bits, &minus, 8);
            for (int i = 0; i < 8; i++)
                ((unsigned char *)signs)[8 * (r - 1) + i] = (unsigned char)(bits >> (8 * i));
            uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(size - 4));
            for (int i = 0; i < 4; i++)
                buf[size - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
        }
        protood_scorer *t;
        ck_assert_msg(protood_scorer_from_buffer(&t, buf, size) == PROTOOD_OK, "%s", protood_last_error());
        float *got = score_all(t, m, q);
        double *want = malloc((size_t)m * sizeof *want);
        for (int64_t i = 0; i < m; i++) {
            want[i] = -INFINITY;
            for (int64_t c = 0; c < nc; c++) {
                double sc = 0.0;
                for (int64_t tt = 0; tt < r; tt++) {
                    double p = 0.0;
                    for (int64_t j = 0; j < d; j++)
                        p += (double)le_f32(w + 4 * (j * r + tt)) * (qn[i * d + j] - le_f64(origin + 8 * j));
                    double diff = p - le_f64(centres + 8 * (c * r + tt));
                    sc -= le_f64(signs + 8 * tt) * diff * diff;
                }
                want[i] = fmax(want[i], sc);
            }
        }
        check_rel(got, want, m, 1e-5, 1.0, flip ? "flipped sign" : "stored model");
        free(got);
        free(want);
        protood_scorer_free(t);
    }
    free(qn);
    free(buf);
    free(x);
    free(q);
    free(y);
    protood_scorer_free(s);
}
END_TEST

/* ---- Degenerate and invalid input --------------------------------------------------------- */

START_TEST(degenerate_covariance_is_refused_and_scorer_kept)
{
    const int64_t d = 5, n = 40;
    float *x = malloc((size_t)(n * d) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++) {
        y[i] = (int32_t)(i % 2);
        for (int64_t j = 0; j < d; j++)
            x[i * d + j] = (float)(j + 1 + 3 * y[i] * (j == 0)); /* every row equals its class mean */
    }
    int32_t *y2 = calloc((size_t)n, sizeof *y2);
    float *good = class_rows(5, n, d, 2, d, 0.0, 0.3, y2);
    float before[4], after[4];
    for (int kind = PROTOOD_SCORER_MAHALANOBIS; kind <= PROTOOD_SCORER_SSD; kind++) {
        protood_scorer *s = make(kind, d, 1);
        ck_assert_int_eq(protood_scorer_fit(s, n, good, y2, 2), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_score(s, 4, good, before), PROTOOD_OK);
        /* MAHALANOBIS: rows equal to their class means; SSD: one class, so all rows of class 0 */
        int64_t rows = kind == PROTOOD_SCORER_SSD ? n / 2 : n;
        const float *bad = x;
        float *same = NULL;
        if (kind == PROTOOD_SCORER_SSD) {
            same = malloc((size_t)(rows * d) * sizeof *same);
            for (int64_t i = 0; i < rows; i++)
                memcpy(same + i * d, x, (size_t)d * sizeof *same);
            bad = same;
        }
        ck_assert_int_eq(protood_scorer_fit(s, rows, bad, y, 2), PROTOOD_E_INVALID_ARG);
        ck_assert_msg(strstr(protood_last_error(), "covariance is zero") != NULL, "%s", protood_last_error());
        ck_assert_int_eq(protood_scorer_score(s, 4, good, after), PROTOOD_OK);
        ck_assert_mem_eq(before, after, sizeof before);
        free(same);
        protood_scorer_free(s);
    }
    free(x);
    free(y);
    free(y2);
    free(good);
}
END_TEST

START_TEST(bad_labels_are_refused)
{
    const int64_t d = 4, n = 30;
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *x = class_rows(9, n, d, 3, d, 0.0, 0.3, y);
    protood_scorer *s = make(PROTOOD_SCORER_MAHALANOBIS, d, 1);
    y[17] = 3;
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 3), PROTOOD_E_LABEL);
    ck_assert_str_eq(protood_last_error(), "protood_scorer_fit: labels[17] = 3 outside [0, 3)");
    y[17] = -1;
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 3), PROTOOD_E_LABEL);
    y[17] = 2;
    ck_assert_int_eq(protood_scorer_fit(s, n, x, NULL, 3), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "labels is NULL"));
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 0), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "n_classes = 0"));
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 31), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "n_classes = 31 exceeds n = 30"));
    /* class 3 of 4 has no rows */
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 4), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "class 3 of n_classes = 4 has no rows"));
    float score;
    ck_assert_int_eq(protood_scorer_score(s, 1, x, &score), PROTOOD_E_STATE); /* still unfitted */
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 3), PROTOOD_OK);
    protood_scorer_free(s);
    free(x);
    free(y);
}
END_TEST

START_TEST(fit_bank_checks_kind_and_dim)
{
    protood_bank *bank;
    ck_assert_int_eq(protood_bank_create(&bank, 3, 2, 8), PROTOOD_OK);
    protood_scorer *s = make(PROTOOD_SCORER_KNN, 8, 1);
    ck_assert_int_eq(protood_scorer_fit_bank(s, bank), PROTOOD_E_STATE);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "only a PROTOTYPE scorer"));
    protood_scorer_free(s);
    s = make(PROTOOD_SCORER_PROTOTYPE, 9, 1);
    ck_assert_int_eq(protood_scorer_fit_bank(s, bank), PROTOOD_E_SHAPE);
    ck_assert_str_eq(protood_last_error(), "protood_scorer_fit_bank: bank dim = 8, scorer dim = 9");
    ck_assert_int_eq(protood_scorer_fit_bank(s, NULL), PROTOOD_E_INVALID_ARG);
    float score, q[9] = {1};
    ck_assert_int_eq(protood_scorer_score(s, 1, q, &score), PROTOOD_E_STATE);
    protood_scorer_free(s);

    /* A prototype scorer's score for a prototype itself is 1 (cosine with itself). */
    s = make(PROTOOD_SCORER_PROTOTYPE, 8, 1);
    ck_assert_int_eq(protood_scorer_fit_bank(s, bank), PROTOOD_OK);
    float protos[6 * 8], scores[6];
    ck_assert_int_eq(protood_bank_get_prototypes(bank, protos), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(bank, PROTOOD_INIT_SPHERE, 99), PROTOOD_OK); /* copied, not shared */
    ck_assert_int_eq(protood_scorer_score(s, 6, protos, scores), PROTOOD_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq_tol(scores[i], 1.0f, 1e-6f);
    protood_scorer_free(s);
    protood_bank_free(bank);
}
END_TEST

START_TEST(gaussian_concurrent_scoring_equals_sequential)
{
    const int64_t n = 2000, d = 32, nc = 10;
    int32_t *y = malloc((size_t)n * sizeof *y);
    float *x = class_rows(77, n, d, nc, d, 0.0, 0.3, y);
    for (int kind = PROTOOD_SCORER_MAHALANOBIS; kind <= PROTOOD_SCORER_PROTOTYPE; kind++) {
        protood_scorer *s = make(kind, d, 1);
        ck_assert_int_eq(protood_scorer_fit(s, kind == PROTOOD_SCORER_PROTOTYPE ? 60 : n, x, y, nc), PROTOOD_OK);
        enum { T = 4 };
        int64_t m[T];
        float *q[T], *want[T];
        for (int t = 0; t < T; t++) {
            m[t] = 1000 + 211 * t;
            q[t] = class_rows(80 + (uint64_t)t, m[t], d, nc, d, 0.0, 0.3, NULL);
            want[t] = score_all(s, m[t], q[t]);
        }
        tu_assert_concurrent_scores(s, T, m, q, want, 5);
        for (int t = 0; t < T; t++) {
            free(q[t]);
            free(want[t]);
        }
        protood_scorer_free(s);
    }
    free(x);
    free(y);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("scorer_maha");
    TCase *tc = tcase_create("gaussian");
    tcase_add_test(tc, gaussian_and_prototype_scores_match_reference_cases);
    tcase_add_test(tc, mahalanobis_and_ssd_equal_float64_reference);
    tcase_add_test(tc, mahalanobis_near_tied_classes);
    tcase_add_test(tc, stored_model_evaluates_as_documented);
    tcase_add_test(tc, degenerate_covariance_is_refused_and_scorer_kept);
    tcase_add_test(tc, bad_labels_are_refused);
    tcase_add_test(tc, fit_bank_checks_kind_and_dim);
    tcase_add_test(tc, gaussian_concurrent_scoring_equals_sequential);
    suite_add_tcase(suite, tc);
    return tu_run_suite(suite);
}
