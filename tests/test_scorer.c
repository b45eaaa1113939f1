/* The scorer handle: parameters, argument checking (status, message, scorer unchanged), streaming
 * through the feature callback, and the file format (round trip, truncation, corruption). */
#include <math.h>
#include <stdint.h>
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

static float *rand_rows(uint64_t seed, int64_t n, int64_t d)
{
    float *x = malloc((size_t)(n * d) * sizeof *x);
    for (int64_t i = 0; i < n * d; i++)
        x[i] = (float)(2.0 * uniform(&seed) - 1.0 + 0.2);
    return x;
}

static int32_t *rand_labels(uint64_t seed, int64_t n, int64_t nc)
{
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)(i < nc ? i : (int64_t)(uniform(&seed) * (double)nc));
    return y;
}

static const int32_t kinds[] = {PROTOOD_SCORER_KNN, PROTOOD_SCORER_MAHALANOBIS, PROTOOD_SCORER_SSD,
                                PROTOOD_SCORER_PROTOTYPE};

enum { D = 7, N = 120, NC = 4, M = 45 };

/* A fitted scorer of each kind on the same data (KNN with k = 5). */
static protood_scorer *fitted(int32_t kind, const float *x, const int32_t *y)
{
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, kind, D), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 5), PROTOOD_OK);
    ck_assert_msg(protood_scorer_fit(s, N, x, y, NC) == PROTOOD_OK, "%s", protood_last_error());
    return s;
}

static void assert_scores(const protood_scorer *s, const float *q, const float *want)
{
    float got[M];
    ck_assert_int_eq(protood_scorer_score(s, M, q, got), PROTOOD_OK);
    ck_assert_mem_eq(got, want, sizeof got);
}

#define ASSERT_FAILS(call, status, text)                                                                       \
    do {                                                                                                       \
        ck_assert_int_eq((call), (status));                                                                    \
        ck_assert_msg(strstr(protood_last_error(), (text)) != NULL, "message '%s' lacks '%s'",                \
                      protood_last_error(), (text));                                                           \
    } while (0)

/* ---- Handle and parameters ---------------------------------------------------------------- */

START_TEST(create_and_parameters)
{
    protood_scorer *s = NULL;
    ASSERT_FAILS(protood_scorer_create(NULL, PROTOOD_SCORER_KNN, 4), PROTOOD_E_INVALID_ARG, "out is NULL");
    ASSERT_FAILS(protood_scorer_create(&s, 0, 4), PROTOOD_E_INVALID_ARG, "kind = 0 is not");
    ASSERT_FAILS(protood_scorer_create(&s, 5, 4), PROTOOD_E_INVALID_ARG, "kind = 5 is not");
    ASSERT_FAILS(protood_scorer_create(&s, PROTOOD_SCORER_KNN, 0), PROTOOD_E_INVALID_ARG, "dim = 0, must be >= 1");
    ASSERT_FAILS(protood_scorer_create(&s, PROTOOD_SCORER_KNN, (int64_t)1 << 40), PROTOOD_E_SHAPE, "exceeds");
    ck_assert_ptr_null(s);
    protood_scorer_free(NULL);

    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_KNN, 4), PROTOOD_OK);
    int32_t kind = 0, fitted = -1;
    int64_t dim = 0;
    ck_assert_int_eq(protood_scorer_info(s, &kind, &dim, &fitted), PROTOOD_OK);
    ck_assert_int_eq(kind, PROTOOD_SCORER_KNN);
    ck_assert_int_eq(dim, 4);
    ck_assert_int_eq(fitted, 0);
    ck_assert_int_eq(protood_scorer_info(s, NULL, NULL, NULL), PROTOOD_OK);
    ASSERT_FAILS(protood_scorer_info(NULL, &kind, &dim, &fitted), PROTOOD_E_INVALID_ARG, "scorer is NULL");
    double v;
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_K, &v), PROTOOD_OK);
    ck_assert_double_eq(v, 50);
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_NORMALIZE, &v), PROTOOD_OK);
    ck_assert_double_eq(v, 1);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 300), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_K, &v), PROTOOD_OK);
    ck_assert_double_eq(v, 300);

    static const double bad_k[] = {0, -1, 2.5, NAN, INFINITY, 1e300};
    for (size_t i = 0; i < sizeof bad_k / sizeof bad_k[0]; i++)
        ASSERT_FAILS(protood_scorer_set_param(s, PROTOOD_SCORER_K, bad_k[i]), PROTOOD_E_INVALID_ARG,
                     "must be an integer >= 1");
    static const double bad_norm[] = {-1, 0.5, 2, NAN};
    for (size_t i = 0; i < sizeof bad_norm / sizeof bad_norm[0]; i++)
        ASSERT_FAILS(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, bad_norm[i]), PROTOOD_E_INVALID_ARG,
                     "must be 0 or 1");
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_K, &v), PROTOOD_OK);
    ck_assert_double_eq(v, 300); /* unchanged by the failures */
    ck_assert_int_eq(protood_scorer_get_param(s, PROTOOD_SCORER_NORMALIZE, &v), PROTOOD_OK);
    ck_assert_double_eq(v, 1);

    ASSERT_FAILS(protood_scorer_set_param(s, 3, 1), PROTOOD_E_INVALID_ARG, "key = 3 is not a scorer parameter");
    ASSERT_FAILS(protood_scorer_set_param(s, 0, 1), PROTOOD_E_INVALID_ARG, "key = 0 is not a scorer parameter");
    ASSERT_FAILS(protood_scorer_get_param(s, 3, &v), PROTOOD_E_INVALID_ARG, "key = 3");
    ASSERT_FAILS(protood_scorer_get_param(s, PROTOOD_SCORER_K, NULL), PROTOOD_E_INVALID_ARG, "value is NULL");
    ASSERT_FAILS(protood_scorer_set_param(NULL, PROTOOD_SCORER_K, 1), PROTOOD_E_INVALID_ARG, "scorer is NULL");
    ASSERT_FAILS(protood_scorer_get_param(NULL, PROTOOD_SCORER_K, &v), PROTOOD_E_INVALID_ARG, "scorer is NULL");
    protood_scorer_free(s);
}
END_TEST

START_TEST(normalize_is_fixed_once_fitted)
{
    float *x = rand_rows(1, N, D);
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_SSD, D), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, 0), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(s, N, x, NULL, 0), PROTOOD_OK);
    ASSERT_FAILS(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, 1), PROTOOD_E_STATE, "set it before fit");
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, 0), PROTOOD_OK); /* no change */

    /* Normalisation off means scale matters: a query scaled by 3 scores differently; on, it does not. */
    float q[2 * D];
    for (int j = 0; j < D; j++) {
        q[j] = x[j];
        q[D + j] = 3.0f * x[j];
    }
    float sc[2];
    ck_assert_int_eq(protood_scorer_score(s, 2, q, sc), PROTOOD_OK);
    ck_assert_float_ne(sc[0], sc[1]);
    protood_scorer_free(s);
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_SSD, D), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(s, N, x, NULL, 0), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_score(s, 2, q, sc), PROTOOD_OK);
    ck_assert_float_eq_tol(sc[0], sc[1], 1e-5f * fabsf(sc[0]));
    protood_scorer_free(s);
    free(x);
}
END_TEST

/* Every kind: each bad argument gives its status and message and leaves a fitted scorer scoring
 * exactly as before; a failed refit keeps the old fit. */
START_TEST(bad_input_changes_nothing)
{
    float *x = rand_rows(2, N, D), *q = rand_rows(3, M, D);
    int32_t *y = rand_labels(4, N, NC);
    for (size_t k = 0; k < 4; k++) {
        protood_scorer *s = fitted(kinds[k], x, y), *empty;
        float before[M], out[M];
        ck_assert_int_eq(protood_scorer_score(s, M, q, before), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_create(&empty, kinds[k], D), PROTOOD_OK);

        ASSERT_FAILS(protood_scorer_score(empty, M, q, out), PROTOOD_E_STATE, "not fitted");
        ASSERT_FAILS(protood_scorer_score(NULL, M, q, out), PROTOOD_E_INVALID_ARG, "scorer is NULL");
        ASSERT_FAILS(protood_scorer_score(s, M, NULL, out), PROTOOD_E_INVALID_ARG, "q is NULL");
        ASSERT_FAILS(protood_scorer_score(s, M, q, NULL), PROTOOD_E_INVALID_ARG, "scores_out is NULL");
        ASSERT_FAILS(protood_scorer_score(s, 0, q, out), PROTOOD_E_INVALID_ARG, "m = 0, must be >= 1");
        ASSERT_FAILS(protood_scorer_score(s, -3, q, out), PROTOOD_E_INVALID_ARG, "m = -3");
        ASSERT_FAILS(protood_scorer_score(s, INT64_MAX / 2, q, out), PROTOOD_E_SHAPE, "overflow");

        float *bad = malloc(sizeof(float) * M * D);
        memcpy(bad, q, sizeof(float) * M * D);
        for (int i = 0; i < M; i++)
            out[i] = -7.0f;
        bad[11 * D + 3] = NAN;
        ASSERT_FAILS(protood_scorer_score(s, M, bad, out), PROTOOD_E_NONFINITE, "q[11][3] = nan");
        bad[11 * D + 3] = -INFINITY;
        ASSERT_FAILS(protood_scorer_score(s, M, bad, out), PROTOOD_E_NONFINITE, "q[11][3] = -inf");
        memset(bad + 11 * D, 0, sizeof(float) * D);
        ASSERT_FAILS(protood_scorer_score(s, M, bad, out), PROTOOD_E_NONFINITE, "q row 11 is all zeros");
        for (int i = 0; i < M; i++)
            ck_assert_float_eq(out[i], -7.0f); /* outputs untouched on failure */

        /* Refits that fail keep the old fit. */
        memcpy(bad, x, sizeof(float) * M * D);
        bad[5 * D] = NAN;
        ASSERT_FAILS(protood_scorer_fit(s, M, bad, y, NC), PROTOOD_E_NONFINITE, "x[5][0] = nan");
        ASSERT_FAILS(protood_scorer_fit(s, 0, x, y, NC), PROTOOD_E_INVALID_ARG, "n = 0, must be >= 1");
        ASSERT_FAILS(protood_scorer_fit(s, N, NULL, y, NC), PROTOOD_E_INVALID_ARG, "x is NULL");
        ASSERT_FAILS(protood_scorer_fit(NULL, N, x, y, NC), PROTOOD_E_INVALID_ARG, "scorer is NULL");
        ASSERT_FAILS(protood_scorer_fit(s, INT64_MAX / 2, x, y, NC), PROTOOD_E_SHAPE, "overflow");
        free(bad);
        assert_scores(s, q, before);
        ASSERT_FAILS(protood_scorer_score(empty, M, q, out), PROTOOD_E_STATE, "not fitted");

        /* A successful refit on other data replaces the fit. */
        float *x2 = rand_rows(5, N, D);
        ck_assert_int_eq(protood_scorer_fit(s, N, x2, y, NC), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_score(s, M, q, out), PROTOOD_OK);
        ck_assert(memcmp(out, before, sizeof out) != 0);
        free(x2);
        protood_scorer_free(s);
        protood_scorer_free(empty);
    }
    free(x);
    free(q);
    free(y);
}
END_TEST

START_TEST(raw_rows_beyond_float_range_are_refused)
{
    protood_scorer *s;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_KNN, 2), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, 0), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 1), PROTOOD_OK);
    float x[4] = {1e19f, 0.0f, 0.0f, 0.0f}; /* squared norm 1e38: the float32 GEMM would overflow */
    ASSERT_FAILS(protood_scorer_fit(s, 2, x, NULL, 0), PROTOOD_E_NONFINITE, "x row 0 has squared norm");
    x[0] = 1.0f; /* all-zero rows are fine without normalisation */
    ck_assert_int_eq(protood_scorer_fit(s, 2, x, NULL, 0), PROTOOD_OK);
    float score;
    ck_assert_int_eq(protood_scorer_score(s, 1, x + 2, &score), PROTOOD_OK);
    ck_assert_float_eq(score, 0.0f);
    protood_scorer_free(s);
}
END_TEST

/* ---- Streaming ---------------------------------------------------------------------------- */

typedef struct feed {
    const float *x;
    const int32_t *y;
    int64_t n, batch;
    int64_t calls, fail_at;  /* fail_at: the call (0-based) that returns an error, -1 never */
    int64_t next;            /* rows must come in order */
    int order_ok;
    int labels_seen;
    int poison;              /* write a NaN into row 3 of the batch at fail_at instead of failing */
} feed;

static int32_t feed_fn(void *user, int64_t first, int64_t count, float *rows, int32_t *labels)
{
    feed *f = user;
    if (first != f->next || count < 1 || count > f->batch || (count < f->batch && first + count != f->n))
        f->order_ok = 0;
    f->next = first + count;
    if (f->calls++ == f->fail_at && !f->poison)
        return 42;
    memcpy(rows, f->x + first * D, (size_t)(count * D) * sizeof *rows);
    if (labels) {
        f->labels_seen = 1;
        memcpy(labels, f->y + first, (size_t)count * sizeof *labels);
    }
    if (f->calls - 1 == f->fail_at && f->poison && count > 3)
        rows[3 * D + 1] = NAN;
    return 0;
}

static feed make_feed(const float *x, const int32_t *y, int64_t n, int64_t batch)
{
    feed f = {x, y, n, batch, 0, -1, 0, 1, 0, 0};
    return f;
}

START_TEST(streamed_fit_and_score_equal_in_memory)
{
    float *x = rand_rows(6, N, D), *q = rand_rows(7, M, D);
    int32_t *y = rand_labels(8, N, NC);
    static const int64_t batches[] = {1, 2, 7, 16, 44, 45, 119, 120, 1000};
    for (size_t k = 0; k < 4; k++) {
        protood_scorer *ref = fitted(kinds[k], x, y);
        float want[M], got[M];
        ck_assert_int_eq(protood_scorer_score(ref, M, q, want), PROTOOD_OK);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            protood_scorer *s;
            ck_assert_int_eq(protood_scorer_create(&s, kinds[k], D), PROTOOD_OK);
            ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 5), PROTOOD_OK);
            feed f = make_feed(x, y, N, batches[b]);
            ck_assert_msg(protood_scorer_fit_stream(s, N, batches[b], feed_fn, &f, NC) == PROTOOD_OK, "%s",
                          protood_last_error());
            ck_assert(f.order_ok);
            ck_assert_int_eq(f.next, N);
            ck_assert_int_eq(f.labels_seen, kinds[k] == PROTOOD_SCORER_MAHALANOBIS);
            assert_scores(s, q, want); /* streamed fit == in-memory fit, bit for bit */

            /* Streamed scoring (with small tiles too, so a batch holds several tiles or a part of one). */
            for (int tiles = 0; tiles < 2; tiles++) {
                if (tiles)
                    pood_scorer_set_tiles(s, 4, 16);
                float tiled[M];
                ck_assert_int_eq(protood_scorer_score(s, M, q, tiled), PROTOOD_OK);
                feed g = make_feed(q, NULL, M, batches[b]);
                ck_assert_int_eq(protood_scorer_score_stream(s, M, batches[b], feed_fn, &g, got), PROTOOD_OK);
                ck_assert(g.order_ok);
                ck_assert_int_eq(g.labels_seen, 0);
                ck_assert_mem_eq(got, tiled, sizeof got);
            }
            protood_scorer_free(s);
        }
        protood_scorer_free(ref);
    }
    free(x);
    free(q);
    free(y);
}
END_TEST

/* The Gaussian fits accumulate in blocks of 1024 rows: a streamed fit over several blocks, with
 * batches that straddle them, gives the bits of the in-memory fit. */
START_TEST(streamed_gaussian_fit_across_blocks)
{
    const int64_t n = 2600;
    float *x = rand_rows(18, n, D), *q = rand_rows(19, M, D);
    int32_t *y = rand_labels(20, n, NC);
    static const int64_t batches[] = {1, 7, 1000, 1024, 1025, 2600};
    for (int32_t kind = PROTOOD_SCORER_MAHALANOBIS; kind <= PROTOOD_SCORER_SSD; kind++) {
        protood_scorer *ref;
        ck_assert_int_eq(protood_scorer_create(&ref, kind, D), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit(ref, n, x, y, NC), PROTOOD_OK);
        float want[M];
        ck_assert_int_eq(protood_scorer_score(ref, M, q, want), PROTOOD_OK);
        for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
            protood_scorer *s;
            ck_assert_int_eq(protood_scorer_create(&s, kind, D), PROTOOD_OK);
            feed f = make_feed(x, y, n, batches[b]);
            ck_assert_int_eq(protood_scorer_fit_stream(s, n, batches[b], feed_fn, &f, NC), PROTOOD_OK);
            ck_assert(f.order_ok);
            assert_scores(s, q, want);
            protood_scorer_free(s);
        }
        protood_scorer_free(ref);
    }
    free(x);
    free(q);
    free(y);
}
END_TEST

/* A callback failing at each batch in turn: E_CALLBACK with its value, the scorer exactly as it was
 * (fitted: same scores; unfitted: still unfitted), and scores_out untouched. */
START_TEST(callback_failure_at_any_batch_changes_nothing)
{
    float *x = rand_rows(9, N, D), *q = rand_rows(10, M, D);
    int32_t *y = rand_labels(11, N, NC);
    const int64_t batch = 16, fit_calls = (N + batch - 1) / batch, score_calls = (M + batch - 1) / batch;
    float *x2 = rand_rows(12, N, D);
    for (size_t k = 0; k < 4; k++) {
        protood_scorer *s = fitted(kinds[k], x, y), *empty;
        ck_assert_int_eq(protood_scorer_create(&empty, kinds[k], D), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(empty, PROTOOD_SCORER_K, 5), PROTOOD_OK);
        float before[M], out[M];
        ck_assert_int_eq(protood_scorer_score(s, M, q, before), PROTOOD_OK);
        for (int poison = 0; poison <= 1; poison++)
            for (int64_t at = 0; at < fit_calls; at++) {
                feed f = make_feed(x2, y, N, batch);
                f.fail_at = at;
                f.poison = poison;
                if (poison)
                    ASSERT_FAILS(protood_scorer_fit_stream(s, N, batch, feed_fn, &f, NC), PROTOOD_E_NONFINITE,
                                 "nan");
                else
                    ASSERT_FAILS(protood_scorer_fit_stream(s, N, batch, feed_fn, &f, NC), PROTOOD_E_CALLBACK,
                                 "fn returned 42 for rows [");
                ck_assert_int_eq(f.calls, at + 1); /* stopped at once */
                assert_scores(s, q, before);
                f = make_feed(x2, y, N, batch);
                f.fail_at = at;
                f.poison = poison;
                ck_assert_int_ne(protood_scorer_fit_stream(empty, N, batch, feed_fn, &f, NC), PROTOOD_OK);
                ASSERT_FAILS(protood_scorer_score(empty, M, q, out), PROTOOD_E_STATE, "not fitted");
            }
        for (int64_t at = 0; at < score_calls; at++) {
            for (int i = 0; i < M; i++)
                out[i] = 123.0f;
            feed g = make_feed(q, NULL, M, batch);
            g.fail_at = at;
            ASSERT_FAILS(protood_scorer_score_stream(s, M, batch, feed_fn, &g, out), PROTOOD_E_CALLBACK,
                         "fn returned 42");
            for (int i = 0; i < M; i++)
                ck_assert_float_eq(out[i], 123.0f);
        }
        /* The absolute row index is reported for rows from the callback. */
        feed f = make_feed(x2, y, N, batch);
        f.fail_at = 2;
        f.poison = 1;
        ASSERT_FAILS(protood_scorer_fit_stream(s, N, batch, feed_fn, &f, NC), PROTOOD_E_NONFINITE, "rows[35][1] = nan");
        feed g = make_feed(q, NULL, M, batch);
        g.fail_at = 1;
        g.poison = 1;
        ASSERT_FAILS(protood_scorer_score_stream(s, M, batch, feed_fn, &g, out), PROTOOD_E_NONFINITE,
                     "rows[19][1] = nan");
        protood_scorer_free(s);
        protood_scorer_free(empty);
    }
    free(x);
    free(x2);
    free(q);
    free(y);
}
END_TEST

START_TEST(stream_argument_checks)
{
    float *x = rand_rows(13, N, D);
    int32_t *y = rand_labels(14, N, NC);
    protood_scorer *s = fitted(PROTOOD_SCORER_MAHALANOBIS, x, y);
    float out[M];
    feed f = make_feed(x, y, N, 10);
    ASSERT_FAILS(protood_scorer_fit_stream(s, N, 10, NULL, &f, NC), PROTOOD_E_INVALID_ARG, "fn is NULL");
    ASSERT_FAILS(protood_scorer_fit_stream(s, N, 0, feed_fn, &f, NC), PROTOOD_E_INVALID_ARG, "batch = 0");
    ASSERT_FAILS(protood_scorer_fit_stream(s, 0, 10, feed_fn, &f, NC), PROTOOD_E_INVALID_ARG, "n = 0");
    ASSERT_FAILS(protood_scorer_fit_stream(NULL, N, 10, feed_fn, &f, NC), PROTOOD_E_INVALID_ARG, "scorer is NULL");
    ASSERT_FAILS(protood_scorer_fit_stream(s, N, 10, feed_fn, &f, 0), PROTOOD_E_INVALID_ARG, "n_classes = 0");
    ck_assert_int_eq(f.calls, 0);
    /* labels from the callback are checked, with the absolute index */
    int32_t *bad = malloc(sizeof(int32_t) * N);
    memcpy(bad, y, sizeof(int32_t) * N);
    bad[57] = NC;
    f = make_feed(x, bad, N, 10);
    ASSERT_FAILS(protood_scorer_fit_stream(s, N, 10, feed_fn, &f, NC), PROTOOD_E_LABEL, "labels[57] = 4 outside [0, 4)");
    ASSERT_FAILS(protood_scorer_score_stream(s, M, 10, NULL, &f, out), PROTOOD_E_INVALID_ARG, "fn is NULL");
    ASSERT_FAILS(protood_scorer_score_stream(s, M, 0, feed_fn, &f, out), PROTOOD_E_INVALID_ARG, "batch = 0");
    ASSERT_FAILS(protood_scorer_score_stream(s, 0, 10, feed_fn, &f, out), PROTOOD_E_INVALID_ARG, "m = 0");
    ASSERT_FAILS(protood_scorer_score_stream(s, M, 10, feed_fn, &f, NULL), PROTOOD_E_INVALID_ARG, "scores_out");
    protood_scorer *empty;
    ck_assert_int_eq(protood_scorer_create(&empty, PROTOOD_SCORER_KNN, D), PROTOOD_OK);
    f = make_feed(x, NULL, M, 10);
    ASSERT_FAILS(protood_scorer_score_stream(empty, M, 10, feed_fn, &f, out), PROTOOD_E_STATE, "not fitted");
    ck_assert_int_eq(f.calls, 0);
    /* KNN: k > n is refused before any row is pulled */
    ASSERT_FAILS(protood_scorer_fit_stream(empty, 20, 10, feed_fn, &f, 0), PROTOOD_E_INVALID_ARG,
                 "k = 50 exceeds n = 20");
    ck_assert_int_eq(f.calls, 0);
    protood_scorer_free(empty);
    protood_scorer_free(s);
    free(bad);
    free(x);
    free(y);
}
END_TEST

/* ---- File format -------------------------------------------------------------------------- */

static unsigned char *to_buffer(const protood_scorer *s, size_t *size)
{
    ck_assert_int_eq(protood_scorer_to_buffer(s, NULL, 0, size), PROTOOD_OK);
    unsigned char *buf = malloc(*size);
    size_t again = 0;
    ck_assert_int_eq(protood_scorer_to_buffer(s, buf, *size, &again), PROTOOD_OK);
    ck_assert_uint_eq(again, *size);
    return buf;
}

START_TEST(save_load_round_trip)
{
    float *x = rand_rows(15, N, D), *q = rand_rows(16, M, D);
    int32_t *y = rand_labels(17, N, NC);
    char *dir = tu_mkdtemp(), *path = tu_path(dir, "scorer.bin");
    for (size_t k = 0; k < 4; k++) {
        protood_scorer *s = fitted(kinds[k], x, y), *t = NULL;
        ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 3), PROTOOD_OK);
        float want[M];
        ck_assert_int_eq(protood_scorer_score(s, M, q, want), PROTOOD_OK);
        ck_assert_msg(protood_scorer_save(s, path) == PROTOOD_OK, "%s", protood_last_error());
        ck_assert_msg(protood_scorer_load(&t, path) == PROTOOD_OK, "%s", protood_last_error());
        assert_scores(t, q, want);
        double v;
        ck_assert_int_eq(protood_scorer_get_param(t, PROTOOD_SCORER_K, &v), PROTOOD_OK);
        ck_assert_double_eq(v, 3);
        ck_assert_int_eq(t->kind, kinds[k]);
        int32_t kind = 0, is_fitted = 0;
        int64_t dim = 0;
        ck_assert_int_eq(protood_scorer_info(t, &kind, &dim, &is_fitted), PROTOOD_OK);
        ck_assert_int_eq(kind, kinds[k]);
        ck_assert_int_eq(dim, D);
        ck_assert_int_eq(is_fitted, 1);
        /* The file is the buffer, and saving the loaded scorer gives the same bytes. */
        size_t size, size2, file_size;
        unsigned char *a = to_buffer(s, &size), *b = to_buffer(t, &size2), *file = tu_read_bytes(path, &file_size);
        ck_assert_uint_eq(size, file_size);
        ck_assert_mem_eq(a, file, size);
        ck_assert_uint_eq(size, size2);
        ck_assert_mem_eq(a, b, size);
        protood_scorer *u;
        ck_assert_int_eq(protood_scorer_from_buffer(&u, a, size), PROTOOD_OK);
        assert_scores(u, q, want);
        /* too small a buffer */
        size_t dummy = 0;
        ASSERT_FAILS(protood_scorer_to_buffer(s, a, size - 1, &dummy), PROTOOD_E_INVALID_ARG, "capacity");
        ck_assert_uint_eq(dummy, 0);
        free(a);
        free(b);
        free(file);
        protood_scorer_free(s);
        protood_scorer_free(t);
        protood_scorer_free(u);
    }
    /* An unfitted scorer round-trips with its parameters and stays unfitted. */
    protood_scorer *s, *t;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_SSD, 9), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, 0), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_save(s, path), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_load(&t, path), PROTOOD_OK);
    double v;
    ck_assert_int_eq(protood_scorer_get_param(t, PROTOOD_SCORER_NORMALIZE, &v), PROTOOD_OK);
    ck_assert_double_eq(v, 0);
    float out;
    ASSERT_FAILS(protood_scorer_score(t, 1, q, &out), PROTOOD_E_STATE, "not fitted");
    protood_scorer_free(s);
    protood_scorer_free(t);

    ASSERT_FAILS(protood_scorer_save(NULL, path), PROTOOD_E_INVALID_ARG, "scorer is NULL");
    ASSERT_FAILS(protood_scorer_load(&t, NULL), PROTOOD_E_INVALID_ARG, "path is NULL");
    ASSERT_FAILS(protood_scorer_load(NULL, path), PROTOOD_E_INVALID_ARG, "out is NULL");
    char *missing = tu_path(dir, "no-such-file");
    ASSERT_FAILS(protood_scorer_load(&t, missing), PROTOOD_E_IO, "cannot open");
    char *nodir = tu_path(dir, "no-such-dir/scorer.bin");
    s = fitted(PROTOOD_SCORER_SSD, x, y);
    ASSERT_FAILS(protood_scorer_save(s, nodir), PROTOOD_E_IO, "no-such-dir");
    protood_scorer_free(s);
    free(missing);
    free(nodir);
    tu_rmtree(dir);
    free(dir);
    free(path);
    free(x);
    free(q);
    free(y);
}
END_TEST

/* Every truncation and every single-bit flip of a small saved scorer of each kind is E_FORMAT
 * (the CRC-32 catches every burst up to 32 bits); truncated files too. */
START_TEST(truncated_or_corrupt_data_is_refused)
{
    enum { n = 8, d = 3 };
    float x[n * d];
    uint64_t seed = 5;
    for (int i = 0; i < n * d; i++)
        x[i] = (float)(uniform(&seed) - 0.5);
    int32_t y[n] = {0, 1, 0, 1, 0, 1, 1, 0};
    char *dir = tu_mkdtemp(), *path = tu_path(dir, "s.bin");
    for (size_t k = 0; k < 4; k++) {
        protood_scorer *s, *t = NULL;
        ck_assert_int_eq(protood_scorer_create(&s, kinds[k], d), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 2), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 2), PROTOOD_OK);
        size_t size;
        unsigned char *buf = to_buffer(s, &size);
        for (size_t len = 0; len < size; len++) {
            ck_assert_int_eq(protood_scorer_from_buffer(&t, buf, len), PROTOOD_E_FORMAT);
            tu_write_bytes(path, buf, len);
            ck_assert_int_eq(protood_scorer_load(&t, path), PROTOOD_E_FORMAT);
            ck_assert_ptr_null(t);
        }
        for (size_t i = 0; i < size; i++)
            for (int bit = 0; bit < 8; bit++) {
                buf[i] ^= (unsigned char)(1u << bit);
                ck_assert_msg(protood_scorer_from_buffer(&t, buf, size) == PROTOOD_E_FORMAT, "byte %zu bit %d", i,
                              bit);
                buf[i] ^= (unsigned char)(1u << bit);
            }
        /* trailing garbage */
        unsigned char *longer = malloc(size + 1);
        memcpy(longer, buf, size);
        longer[size] = 0;
        ck_assert_int_eq(protood_scorer_from_buffer(&t, longer, size + 1), PROTOOD_E_FORMAT);
        ck_assert_int_eq(protood_scorer_from_buffer(&t, buf, size), PROTOOD_OK);
        protood_scorer_free(t);
        free(longer);
        free(buf);
        protood_scorer_free(s);
    }
    tu_rmtree(dir);
    free(dir);
    free(path);
}
END_TEST

/* Well-formed (valid checksum) but wrong: each is E_FORMAT with a message saying why. */
static void reseal(unsigned char *buf, size_t size)
{
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)(size - 4));
    for (int i = 0; i < 4; i++)
        buf[size - 4 + (size_t)i] = (unsigned char)(crc >> (8 * i));
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

START_TEST(inconsistent_files_are_refused)
{
    enum { n = 6, d = 3 };
    float x[n * d];
    uint64_t seed = 8;
    for (int i = 0; i < n * d; i++)
        x[i] = (float)(uniform(&seed) - 0.5);
    protood_scorer *s, *t = NULL;
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_KNN, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 2), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(s, n, x, NULL, 0), PROTOOD_OK);
    size_t size;
    unsigned char *good = to_buffer(s, &size), *buf = malloc(size);
    /* Layout (docs/scorer-format.md): magic 0, version 8, kind 12, dim 16, k 24, normalize 32,
     * fitted 36, payload size 40, payload 48 (KNN: n_rows, rows), CRC at the end. */
    ck_assert_mem_eq(good, "POODSCOR", 8);
    ck_assert_uint_eq(size, 48 + 8 + n * d * 4 + 4);
    static const struct {
        size_t at;
        int bytes;
        uint64_t value;
        const char *text;
    } cases[] = {
        {8, 4, 2, "format version 2 is not supported"},
        {12, 4, 9, "kind = 9 is unknown"},
        {16, 8, 0, "dim = 0"},
        {16, 8, 4, "rows truncated"},       /* rows of 4 no longer fit the payload */
        {24, 8, 7, "k exceeds the training rows"},
        {24, 8, 0, "k = 0"},
        {32, 4, 2, "normalize = 2"},
        {36, 4, 0, "payload size"},         /* unfitted with a payload */
        {40, 8, 1000, "payload size 1000"},
        {48, 8, 0, "row count out of range"},
        {48, 8, 5, "trailing bytes"},
        {48, 8, 7, "rows truncated"},
        {56, 4, 0x7fc00000u, "non-finite"}, /* a NaN row entry */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(buf, good, size);
        put_le(buf + cases[c].at, cases[c].value, cases[c].bytes);
        reseal(buf, size);
        ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, cases[c].text);
        ck_assert_ptr_null(t);
    }
    memcpy(buf, good, size);
    buf[0] = 'X';
    ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, "bad magic");
    memcpy(buf, good, size);
    buf[50] ^= 1;
    ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, "checksum mismatch");
    ASSERT_FAILS(protood_scorer_from_buffer(&t, good, 10), PROTOOD_E_FORMAT, "too short");
    ASSERT_FAILS(protood_scorer_from_buffer(&t, NULL, size), PROTOOD_E_INVALID_ARG, "buf is NULL");
    ASSERT_FAILS(protood_scorer_from_buffer(NULL, good, size), PROTOOD_E_INVALID_ARG, "out is NULL");
    free(buf);
    free(good);
    protood_scorer_free(s);

    /* Gaussian models: rank beyond dim, a sign other than +-1. */
    int32_t y[n] = {0, 1, 0, 1, 0, 1};
    ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_MAHALANOBIS, d), PROTOOD_OK);
    ck_assert_int_eq(protood_scorer_fit(s, n, x, y, 2), PROTOOD_OK);
    good = to_buffer(s, &size);
    buf = malloc(size);
    int64_t rank = s->model->rank;
    /* payload: n_centres 48, rank 56, origin 64 (d doubles), proj (d x rank floats), signs */
    size_t signs_at = 64 + 8 * d + 4 * (size_t)(d * rank);
    memcpy(buf, good, size);
    put_le(buf + 56, (uint64_t)d + 1, 8);
    reseal(buf, size);
    ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, "rank outside [1, dim]");
    memcpy(buf, good, size);
    double two = 2.0;
    memcpy(buf + signs_at, &two, 8);
    reseal(buf, size);
    ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, "sign other than +1 or -1");
    memcpy(buf, good, size);
    put_le(buf + 48, 3, 8);
    reseal(buf, size);
    ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, "MAHALANOBIS scorer");
    free(buf);
    free(good);
    protood_scorer_free(s);
}
END_TEST

/* Found by fuzzing (tests/fuzz/corpus/scorer/finding-proto-rows-not-unit.scorer): a file whose
 * stored rows fit could never have produced loaded fine, and a PROTOTYPE scorer with normalize = 1
 * then scored a "cosine" of 6e14. Rows must be unit vectors when normalize is 1 and within fit's
 * squared-norm bound when it is 0. */
START_TEST(stored_rows_must_be_what_fit_leaves)
{
    enum { n = 4, d = 3 };
    float x[n * d];
    uint64_t seed = 21;
    for (int i = 0; i < n * d; i++)
        x[i] = (float)(uniform(&seed) - 0.5);
    static const struct {
        int32_t kind;
        int normalize;
        float first; /* replaces row 0, column 0 */
        const char *text;
    } cases[] = {
        {PROTOOD_SCORER_PROTOTYPE, 1, 3.0f, "not unit-norm"},
        {PROTOOD_SCORER_KNN, 1, 3.0f, "not unit-norm"},
        {PROTOOD_SCORER_KNN, 1, 0.0f, "not unit-norm"}, /* a zero row breaks the unit norm too */
        {PROTOOD_SCORER_KNN, 0, 1e19f, "squared norm exceeds"},
        {PROTOOD_SCORER_PROTOTYPE, 0, 1e19f, "squared norm exceeds"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        protood_scorer *s, *t = NULL;
        ck_assert_int_eq(protood_scorer_create(&s, cases[c].kind, d), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, cases[c].normalize), PROTOOD_OK);
        if (cases[c].kind == PROTOOD_SCORER_KNN)
            ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_K, 2), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit(s, n, x, NULL, 0), PROTOOD_OK);
        size_t size;
        unsigned char *buf = to_buffer(s, &size);
        ck_assert_int_eq(protood_scorer_from_buffer(&t, buf, size), PROTOOD_OK); /* as saved: fine */
        protood_scorer_free(t);
        t = NULL;
        /* payload at 48: n_rows, then the rows from 56; row 0 of unit norm (or small when raw) */
        uint32_t bits;
        memcpy(&bits, &cases[c].first, 4);
        put_le(buf + 56, bits, 4);
        if (cases[c].first == 0.0f) {
            put_le(buf + 60, 0, 4);
            put_le(buf + 64, 0, 4);
        }
        reseal(buf, size);
        ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, cases[c].text);
        ck_assert_ptr_null(t);
        free(buf);
        protood_scorer_free(s);
    }
}
END_TEST

/* Found by fuzzing (tests/fuzz/corpus/scorer/finding-ssd-origin-beyond-float.scorer): an SSD
 * model whose stored origin had a coordinate of 5e80 loaded, and every score was NaN (the centred
 * query overflowed float32 and met a zero in the projection). A normalising Gaussian model must
 * keep the float32 products of scoring finite; a raw one only needs a plausible origin. */
START_TEST(gaussian_models_must_score_in_float32)
{
    enum { n = 10, d = 3 };
    float x[n * d];
    uint64_t seed = 5;
    for (int i = 0; i < n * d; i++)
        x[i] = (float)(uniform(&seed) - 0.5);
    static const struct {
        int normalize;
        int field; /* 0 origin[0], 1 proj[0][0], 2 centres[0][0] */
        double value;
        const char *text; /* NULL: still loads */
    } cases[] = {
        {1, 0, 5e80, "origin outside"},
        {1, 0, 2.0, "origin outside"},          /* the mean of unit rows has norm <= 1 */
        {0, 0, 2.0, NULL},                      /* raw rows may have any mean within fit's bound */
        {0, 0, 5e80, "origin outside"},
        {1, 1, 1e36, "projection too large"},
        {0, 1, 1e36, NULL},                     /* raw: not bounded at load (see lib/scorer.c) */
        {1, 2, 1e37, "projected centres too large"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        protood_scorer *s, *t = NULL;
        ck_assert_int_eq(protood_scorer_create(&s, PROTOOD_SCORER_SSD, d), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_set_param(s, PROTOOD_SCORER_NORMALIZE, cases[c].normalize), PROTOOD_OK);
        ck_assert_int_eq(protood_scorer_fit(s, n, x, NULL, 0), PROTOOD_OK);
        int64_t rank = s->model->rank;
        size_t size;
        unsigned char *buf = to_buffer(s, &size);
        ck_assert_int_eq(protood_scorer_from_buffer(&t, buf, size), PROTOOD_OK); /* as saved: fine */
        protood_scorer_free(t);
        t = NULL;
        /* payload: n_centres 48, rank 56, origin 64 (d doubles), proj (d x rank floats), signs
         * (rank doubles), centres (rank doubles for SSD's one centre) */
        size_t proj_at = 64 + 8 * d, centres_at = proj_at + 4 * (size_t)(d * rank) + 8 * (size_t)rank;
        if (cases[c].field == 1) {
            float v = (float)cases[c].value;
            memcpy(buf + proj_at, &v, 4);
        } else {
            memcpy(buf + (cases[c].field == 0 ? 64 : centres_at), &cases[c].value, 8);
        }
        reseal(buf, size);
        if (cases[c].text) {
            ASSERT_FAILS(protood_scorer_from_buffer(&t, buf, size), PROTOOD_E_FORMAT, cases[c].text);
            ck_assert_ptr_null(t);
        } else {
            ck_assert_msg(protood_scorer_from_buffer(&t, buf, size) == PROTOOD_OK, "case %zu: %s", c,
                          protood_last_error());
            protood_scorer_free(t);
        }
        free(buf);
        protood_scorer_free(s);
    }
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("scorer");
    TCase *tc = tcase_create("handle");
    tcase_add_test(tc, create_and_parameters);
    tcase_add_test(tc, normalize_is_fixed_once_fitted);
    tcase_add_test(tc, bad_input_changes_nothing);
    tcase_add_test(tc, raw_rows_beyond_float_range_are_refused);
    suite_add_tcase(suite, tc);
    tc = tcase_create("stream");
    tcase_add_test(tc, streamed_fit_and_score_equal_in_memory);
    tcase_add_test(tc, streamed_gaussian_fit_across_blocks);
    tcase_add_test(tc, callback_failure_at_any_batch_changes_nothing);
    tcase_add_test(tc, stream_argument_checks);
    suite_add_tcase(suite, tc);
    tc = tcase_create("file");
    tcase_add_test(tc, save_load_round_trip);
    tcase_add_test(tc, truncated_or_corrupt_data_is_refused);
    tcase_add_test(tc, inconsistent_files_are_refused);
    tcase_add_test(tc, stored_rows_must_be_what_fit_leaves);
    tcase_add_test(tc, gaussian_models_must_score_in_float32);
    suite_add_tcase(suite, tc);
    return tu_run_suite(suite);
}
