/* The prototype bank: handle, parameters, initialisation (random and from features), prototypes
 * and persistence. Expected values are computed here (or typed from API.md / SPEC.md /
 * docs/bank-format.md), never taken from the library's own output. */
#include <dirent.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* Test data come from this generator, not the library's. Each test that uses it seeds it, so its
 * data do not depend on which tests ran before it in the same process (CK_FORK=no). */
static uint64_t test_state;
static void test_seed(uint64_t seed)
{
    test_state = seed;
}
static double test_uniform(void)
{
    test_state = test_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(test_state >> 11) * 0x1.0p-53;
}

static void fill_uniform(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * test_uniform());
}

/* A pointer no call may write over *out on failure: the outputs keep it. */
static char sentinel_storage;
#define SENTINEL ((protood_bank *)(void *)&sentinel_storage)

/* Everything observable about a bank, to show a failed call changed nothing. */
typedef struct snapshot {
    int64_t c, k, d;
    double params[11];
    float *protos;
} snapshot;

static snapshot take(const protood_bank *b)
{
    snapshot s;
    ck_assert_int_eq(protood_bank_shape(b, &s.c, &s.k, &s.d), PROTOOD_OK);
    for (int32_t key = 1; key <= 10; key++)
        ck_assert_int_eq(protood_bank_get_param(b, key, &s.params[key]), PROTOOD_OK);
    s.protos = malloc((size_t)(s.c * s.k * s.d) * sizeof(float));
    ck_assert_int_eq(protood_bank_get_prototypes(b, s.protos), PROTOOD_OK);
    return s;
}

static int same_snapshot(const snapshot *a, const snapshot *b)
{
    return a->c == b->c && a->k == b->k && a->d == b->d &&
           memcmp(a->params + 1, b->params + 1, 10 * sizeof(double)) == 0 &&
           memcmp(a->protos, b->protos, (size_t)(a->c * a->k * a->d) * sizeof(float)) == 0;
}

static void assert_unchanged(const protood_bank *b, const snapshot *before, const char *what)
{
    snapshot now = take(b);
    ck_assert_msg(same_snapshot(&now, before), "%s: the bank changed", what);
    free(now.protos);
}

static void expect_error(protood_status got, protood_status want, const char *message, const char *what)
{
    ck_assert_msg(got == want, "%s: status %d, expected %d (%s)", what, got, want, protood_last_error());
    ck_assert_msg(strstr(protood_last_error(), message) != NULL, "%s: message '%s' lacks '%s'", what,
                  protood_last_error(), message);
}

static double norm_f32(const float *v, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++)
        s += (double)v[j] * v[j];
    return sqrt(s);
}

static double cosine(const float *a, const double *b, int64_t d)
{
    double s = 0.0, na = 0.0, nb = 0.0;
    for (int64_t j = 0; j < d; j++) {
        s += a[j] * b[j];
        na += (double)a[j] * a[j];
        nb += b[j] * b[j];
    }
    return s / sqrt(na * nb);
}

static float *prototypes_of(const protood_bank *b)
{
    int64_t c, k, d;
    protood_bank_shape(b, &c, &k, &d);
    float *p = malloc((size_t)(c * k * d) * sizeof(float));
    ck_assert_int_eq(protood_bank_get_prototypes(b, p), PROTOOD_OK);
    return p;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* ---- handle ----------------------------------------------------------------------------- */

START_TEST(create_validates_its_arguments)
{
    protood_bank *b = SENTINEL; /* a sentinel that must survive failures */
    expect_error(protood_bank_create(NULL, 2, 2, 2), PROTOOD_E_INVALID_ARG, "out is NULL", "out NULL");
    expect_error(protood_bank_create(&b, 0, 2, 2), PROTOOD_E_INVALID_ARG, "n_classes = 0", "n_classes 0");
    expect_error(protood_bank_create(&b, 2, -1, 2), PROTOOD_E_INVALID_ARG, "protos_per_class = -1", "K -1");
    expect_error(protood_bank_create(&b, 2, 2, 0), PROTOOD_E_INVALID_ARG, "dim = 0", "dim 0");
    expect_error(protood_bank_create(&b, INT64_MAX / 2, 3, 1), PROTOOD_E_SHAPE, "overflows", "C x K overflow");
    expect_error(protood_bank_create(&b, INT64_MAX / 4, 1, 8), PROTOOD_E_SHAPE, "overflow", "P x D overflow");
    ck_assert_ptr_eq(b, SENTINEL);
    ck_assert_str_eq(protood_last_error(), "protood_bank_create: 2305843009213693951 x 8 elements overflow the "
                                           "address space");
}
END_TEST

START_TEST(shape_free_and_clone)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 5, 3, 7), PROTOOD_OK);
    int64_t c = 0, k = 0, d = 0;
    ck_assert_int_eq(protood_bank_shape(b, &c, &k, &d), PROTOOD_OK);
    ck_assert_int_eq(c, 5);
    ck_assert_int_eq(k, 3);
    ck_assert_int_eq(d, 7);
    ck_assert_int_eq(protood_bank_shape(b, NULL, NULL, NULL), PROTOOD_OK); /* outputs are optional */
    d = -1;
    ck_assert_int_eq(protood_bank_shape(b, NULL, NULL, &d), PROTOOD_OK);
    ck_assert_int_eq(d, 7);
    expect_error(protood_bank_shape(NULL, &c, &k, &d), PROTOOD_E_INVALID_ARG, "bank is NULL", "shape NULL");
    protood_bank_free(NULL); /* a no-op */

    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_TOPK, 2), PROTOOD_OK);
    protood_bank *copy = SENTINEL;
    expect_error(protood_bank_clone(NULL, b), PROTOOD_E_INVALID_ARG, "out is NULL", "clone out NULL");
    expect_error(protood_bank_clone(&copy, NULL), PROTOOD_E_INVALID_ARG, "src is NULL", "clone src NULL");
    ck_assert_ptr_eq(copy, SENTINEL);
    ck_assert_int_eq(protood_bank_clone(&copy, b), PROTOOD_OK);
    snapshot sb = take(b), sc = take(copy);
    ck_assert(same_snapshot(&sb, &sc));

    /* Independent: changing either leaves the other as it was. */
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, 9), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, 0.5), PROTOOD_OK);
    assert_unchanged(copy, &sc, "clone after changing the source");
    snapshot sb2 = take(b);
    ck_assert_int_eq(protood_bank_set_param(copy, PROTOOD_BANK_TEMPERATURE, 0.7), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(copy, PROTOOD_INIT_SPHERE, 10), PROTOOD_OK);
    assert_unchanged(b, &sb2, "source after changing the clone");
    protood_bank_free(b);
    /* The clone outlives its source. */
    double v;
    ck_assert_int_eq(protood_bank_get_param(copy, PROTOOD_BANK_TOPK, &v), PROTOOD_OK);
    ck_assert(v == 2.0);
    protood_bank_free(copy);
    free(sb.protos);
    free(sc.protos);
    free(sb2.protos);
}
END_TEST

/* ---- parameters ------------------------------------------------------------------------- */

/* API.md / SPEC.md §3, §4, typed here. */
static const struct {
    int32_t key;
    const char *name;
    double def;
    double accept[4];   /* NAN ends the list */
    double reject[4];
} param_table[] = {
    {PROTOOD_BANK_MOMENTUM, "momentum", 0.999, {0.0, 0.5, 0x1.fffffffffffffp-1, NAN},
     {-0x1p-1074, 1.0, 2.0, NAN}},
    {PROTOOD_BANK_TEMPERATURE, "temperature", 0.1, {DBL_MIN, 1e6, NAN}, {0.0, -0.1, NAN}},
    {PROTOOD_BANK_SINKHORN_EPSILON, "sinkhorn_epsilon", 0.05, {DBL_MIN, 3.0, NAN}, {0.0, -1.0, NAN}},
    {PROTOOD_BANK_SINKHORN_ITERS, "sinkhorn_iters", 3, {1, 1e6, NAN}, {0, 1e6 + 1, 2.5, NAN}},
    {PROTOOD_BANK_TOPK, "topk", 5, {0, 2147483647.0, NAN}, {-1, 2147483648.0, 1.5, NAN}},
    {PROTOOD_BANK_LAMBDA_PCON, "lambda_pcon", 1.0, {0.0, 1e9, NAN}, {-1e-12, NAN}},
    {PROTOOD_BANK_PCON_TEMPERATURE, "pcon_temperature", 0.5, {DBL_MIN, 2.0, NAN}, {0.0, -0.5, NAN}},
    {PROTOOD_BANK_COMP_WEIGHT, "comp_weight", 1.0, {0.0, 2.0, NAN}, {-1e-300, NAN}},
    {PROTOOD_BANK_DIS_BASE_TEMPERATURE, "dis_base_temperature", 0.1, {DBL_MIN, 1.0, NAN}, {0.0, -2.0, NAN}},
    {PROTOOD_BANK_COMP_BASE_TEMPERATURE, "comp_base_temperature", 0.07, {DBL_MIN, 1.0, NAN}, {0.0, -0.07, NAN}},
};
#define N_PARAMS (sizeof param_table / sizeof param_table[0])

START_TEST(parameter_defaults_match_spec)
{
    ck_assert_uint_eq(N_PARAMS, 10);
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 3, 2, 4), PROTOOD_OK);
    for (size_t i = 0; i < N_PARAMS; i++) {
        double v = NAN;
        ck_assert_int_eq(protood_bank_get_param(b, param_table[i].key, &v), PROTOOD_OK);
        ck_assert_msg(v == param_table[i].def, "%s default %.17g, SPEC says %.17g", param_table[i].name, v,
                      param_table[i].def);
    }
    protood_bank_free(b);
}
END_TEST

START_TEST(parameter_ranges_at_the_boundaries)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 3, 2, 4), PROTOOD_OK);
    const double always_bad[3] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < N_PARAMS; i++) {
        int32_t key = param_table[i].key;
        const char *name = param_table[i].name;
        double last = param_table[i].def;
        for (int a = 0; !isnan(param_table[i].accept[a]); a++) {
            double v = param_table[i].accept[a], got = NAN;
            ck_assert_msg(protood_bank_set_param(b, key, v) == PROTOOD_OK, "%s = %.17g rejected: %s", name, v,
                          protood_last_error());
            ck_assert_int_eq(protood_bank_get_param(b, key, &got), PROTOOD_OK);
            ck_assert_msg(got == v, "%s: set %.17g, got %.17g", name, v, got);
            last = v;
        }
        double rejects[8];
        int n_rej = 0;
        for (int r = 0; !isnan(param_table[i].reject[r]); r++)
            rejects[n_rej++] = param_table[i].reject[r];
        for (int r = 0; r < 3; r++)
            rejects[n_rej++] = always_bad[r];
        for (int r = 0; r < n_rej; r++) {
            snapshot before = take(b);
            protood_status st = protood_bank_set_param(b, key, rejects[r]);
            ck_assert_msg(st == PROTOOD_E_INVALID_ARG, "%s = %g accepted", name, rejects[r]);
            ck_assert_msg(strncmp(protood_last_error(), "protood_bank_set_param: ", 24) == 0 &&
                              strstr(protood_last_error(), name) != NULL,
                          "%s = %g: message '%s' does not name the parameter", name, rejects[r],
                          protood_last_error());
            double got;
            ck_assert_int_eq(protood_bank_get_param(b, key, &got), PROTOOD_OK);
            ck_assert_msg(got == last, "%s changed to %g after a rejected %g", name, got, rejects[r]);
            assert_unchanged(b, &before, name);
            free(before.protos);
        }
    }
    protood_bank_free(b);
}
END_TEST

START_TEST(unknown_keys_and_null_arguments)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 2, 2, 3), PROTOOD_OK);
    snapshot before = take(b);
    const int32_t bad_keys[] = {0, 11, -1, 1000, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "key = %d is not a bank parameter", bad_keys[i]);
        expect_error(protood_bank_set_param(b, bad_keys[i], 1.0), PROTOOD_E_INVALID_ARG, want, "set unknown");
        double v = 42.0;
        expect_error(protood_bank_get_param(b, bad_keys[i], &v), PROTOOD_E_INVALID_ARG, want, "get unknown");
        ck_assert(v == 42.0);
    }
    expect_error(protood_bank_set_param(NULL, 1, 0.5), PROTOOD_E_INVALID_ARG, "bank is NULL", "set NULL");
    double v;
    expect_error(protood_bank_get_param(NULL, 1, &v), PROTOOD_E_INVALID_ARG, "bank is NULL", "get NULL bank");
    expect_error(protood_bank_get_param(b, 1, NULL), PROTOOD_E_INVALID_ARG, "value is NULL", "get NULL value");
    assert_unchanged(b, &before, "unknown keys");
    free(before.protos);
    protood_bank_free(b);
}
END_TEST

/* ---- random initialisation -------------------------------------------------------------- */

START_TEST(init_random_gives_unit_rows_of_the_scheme)
{
    const int64_t C = 3, K = 4, D = 16, P = C * K;
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, C, K, D), PROTOOD_OK);
    float *p = malloc((size_t)(P * D) * sizeof(float));
    for (int scheme = PROTOOD_INIT_SPHERE; scheme <= PROTOOD_INIT_POSITIVE; scheme++) {
        ck_assert_int_eq(protood_bank_init_random(b, scheme, 77), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_get_prototypes(b, p), PROTOOD_OK);
        int negative = 0;
        for (int64_t r = 0; r < P; r++) {
            ck_assert_msg(fabs(norm_f32(p + r * D, D) - 1.0) < 1e-6, "scheme %d row %lld norm %.9g", scheme,
                          (long long)r, norm_f32(p + r * D, D));
            for (int64_t j = 0; j < D; j++)
                negative += p[r * D + j] < 0.0f;
        }
        if (scheme == PROTOOD_INIT_POSITIVE)
            ck_assert_int_eq(negative, 0);
        else /* about half of 192 symmetric draws; 60..132 is beyond 5 standard deviations */
            ck_assert_msg(negative > 60 && negative < 132, "SPHERE: %d of 192 entries negative", negative);
    }
    free(p);
    protood_bank_free(b);
}
END_TEST

START_TEST(init_random_is_seeded)
{
    protood_bank *a, *b;
    ck_assert_int_eq(protood_bank_create(&a, 4, 3, 8), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_create(&b, 4, 3, 8), PROTOOD_OK);
    size_t bytes = 4 * 3 * 8 * sizeof(float);
    for (int scheme = PROTOOD_INIT_SPHERE; scheme <= PROTOOD_INIT_POSITIVE; scheme++) {
        ck_assert_int_eq(protood_bank_init_random(a, scheme, 5), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_random(b, scheme, 5), PROTOOD_OK);
        float *pa = prototypes_of(a), *pb = prototypes_of(b);
        ck_assert_msg(memcmp(pa, pb, bytes) == 0, "scheme %d: same seed, different prototypes", scheme);
        ck_assert_int_eq(protood_bank_init_random(b, scheme, 6), PROTOOD_OK);
        free(pb);
        pb = prototypes_of(b);
        ck_assert_msg(memcmp(pa, pb, bytes) != 0, "scheme %d: seeds 5 and 6 agree", scheme);
        free(pa);
        free(pb);
    }
    /* A new bank holds what init_random(POSITIVE, 0) draws (protood.h). */
    protood_bank *fresh;
    ck_assert_int_eq(protood_bank_create(&fresh, 4, 3, 8), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(a, PROTOOD_INIT_POSITIVE, 0), PROTOOD_OK);
    float *pa = prototypes_of(a), *pf = prototypes_of(fresh);
    ck_assert(memcmp(pa, pf, bytes) == 0);

    /* Bad scheme or bank: an error, nothing drawn. */
    snapshot before = take(a);
    expect_error(protood_bank_init_random(a, 0, 1), PROTOOD_E_INVALID_ARG, "scheme = 0", "scheme 0");
    expect_error(protood_bank_init_random(a, 3, 1), PROTOOD_E_INVALID_ARG, "scheme = 3", "scheme 3");
    expect_error(protood_bank_init_random(NULL, 1, 1), PROTOOD_E_INVALID_ARG, "bank is NULL", "bank NULL");
    assert_unchanged(a, &before, "bad scheme");
    free(before.protos);
    free(pa);
    free(pf);
    protood_bank_free(a);
    protood_bank_free(b);
    protood_bank_free(fresh);
}
END_TEST

/* ---- prototypes ------------------------------------------------------------------------- */

START_TEST(set_prototypes_normalises_and_validates)
{
    const int64_t C = 2, K = 2, D = 5, P = C * K;
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, C, K, D), PROTOOD_OK);
    float in[20], out[20];
    for (int64_t r = 0; r < P; r++)
        for (int64_t j = 0; j < D; j++)
            in[r * D + j] = (float)((r + 1) * (j - 1.5) * (r == 2 ? 1e-20 : 1.0)); /* one tiny row */
    ck_assert_int_eq(protood_bank_set_prototypes(b, in), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_get_prototypes(b, out), PROTOOD_OK);
    for (int64_t r = 0; r < P; r++) {
        double s = 0.0;
        for (int64_t j = 0; j < D; j++)
            s += (double)in[r * D + j] * in[r * D + j];
        for (int64_t j = 0; j < D; j++) {
            double want = in[r * D + j] / sqrt(s);
            ck_assert_msg(fabs(out[r * D + j] - want) <= 1e-7, "[%lld][%lld] = %.9g, want %.9g", (long long)r,
                          (long long)j, (double)out[r * D + j], want);
        }
    }

    snapshot before = take(b);
    float bad[20];
    memcpy(bad, in, sizeof bad);
    bad[1 * D + 2] = NAN;
    expect_error(protood_bank_set_prototypes(b, bad), PROTOOD_E_NONFINITE, "in[1][2] = nan", "NaN");
    memcpy(bad, in, sizeof bad);
    bad[3 * D + 4] = -INFINITY;
    expect_error(protood_bank_set_prototypes(b, bad), PROTOOD_E_NONFINITE, "in[3][4] = -inf", "Inf");
    memcpy(bad, in, sizeof bad);
    memset(bad + 2 * D, 0, (size_t)D * sizeof(float));
    expect_error(protood_bank_set_prototypes(b, bad), PROTOOD_E_NONFINITE, "in row 2 is all zeros", "zero row");
    expect_error(protood_bank_set_prototypes(b, NULL), PROTOOD_E_INVALID_ARG, "in is NULL", "in NULL");
    expect_error(protood_bank_set_prototypes(NULL, in), PROTOOD_E_INVALID_ARG, "bank is NULL", "bank NULL");
    assert_unchanged(b, &before, "rejected set_prototypes");
    float sentinel[20];
    for (int i = 0; i < 20; i++)
        sentinel[i] = out[i] = 7.0f;
    expect_error(protood_bank_get_prototypes(b, NULL), PROTOOD_E_INVALID_ARG, "out is NULL", "get out NULL");
    expect_error(protood_bank_get_prototypes(NULL, out), PROTOOD_E_INVALID_ARG, "bank is NULL", "get NULL");
    ck_assert(memcmp(out, sentinel, sizeof out) == 0);
    free(before.protos);
    protood_bank_free(b);
}
END_TEST

/* ---- initialisation from features ------------------------------------------------------- */

/* n2 of the sum of the normalised rows of class c, in double (the CIDER reference, SPEC.md §5). */
static void class_mean_direction(int64_t n, int64_t d, const float *x, const int32_t *labels, int32_t c,
                                 double *out)
{
    for (int64_t j = 0; j < d; j++)
        out[j] = 0.0;
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] != c)
            continue;
        double norm = norm_f32(x + i * d, d);
        for (int64_t j = 0; j < d; j++)
            out[j] += x[i * d + j] / norm;
    }
    double s = 0.0;
    for (int64_t j = 0; j < d; j++)
        s += out[j] * out[j];
    for (int64_t j = 0; j < d; j++)
        out[j] /= sqrt(s);
}

START_TEST(class_means_when_k_is_one)
{
    test_seed(1);
    const int64_t C = 4, D = 8, N = 40;
    float x[40 * 8];
    int32_t labels[40];
    fill_uniform(x, (size_t)(N * D), -1.0, 1.0);
    for (int64_t i = 0; i < N; i++) {
        labels[i] = (int32_t)(i * 7 % 3); /* classes 0..2; class 3 has no rows */
        for (int64_t j = 0; j < D; j++)
            x[i * D + j] *= (float)(0.1 + 10 * (i % 5)); /* raw rows of very different norms */
    }
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, C, 1, D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, 0.5), PROTOOD_OK);
    snapshot before = take(b);
    ck_assert_int_eq(protood_bank_init_from_features(b, N, x, labels, 1), PROTOOD_OK);
    float *p = prototypes_of(b);
    for (int32_t c = 0; c < 3; c++) {
        double want[8];
        class_mean_direction(N, D, x, labels, c, want);
        for (int64_t j = 0; j < D; j++)
            ck_assert_msg(fabs(p[c * D + j] - want[j]) <= 5e-7, "class %d [%lld] = %.9g, want %.9g", c,
                          (long long)j, (double)p[c * D + j], want[j]);
    }
    /* The class without rows keeps its prototype; the parameters are untouched. */
    ck_assert(memcmp(p + 3 * D, before.protos + 3 * D, (size_t)D * sizeof(float)) == 0);
    snapshot after = take(b);
    ck_assert(memcmp(after.params + 1, before.params + 1, 10 * sizeof(double)) == 0);

    /* K = 1 does not use the seed. */
    ck_assert_int_eq(protood_bank_init_from_features(b, N, x, labels, 999), PROTOOD_OK);
    float *p2 = prototypes_of(b);
    ck_assert(memcmp(p, p2, (size_t)(C * D) * sizeof(float)) == 0);

    /* A class whose normalised rows cancel keeps its prototype. */
    float pair[2 * 8];
    int32_t pair_labels[2] = {1, 1};
    for (int64_t j = 0; j < D; j++) {
        pair[j] = (float)(j + 1);
        pair[D + j] = -2.0f * (float)(j + 1); /* normalises to exactly the negation */
    }
    ck_assert_int_eq(protood_bank_init_from_features(b, 2, pair, pair_labels, 0), PROTOOD_OK);
    float *p3 = prototypes_of(b);
    ck_assert(memcmp(p3, p2, (size_t)(C * D) * sizeof(float)) == 0);

    /* A row of norm far below n2's 1e-12 floor still gives a unit prototype along it. */
    float tiny[8];
    int32_t tiny_label = 2;
    for (int64_t j = 0; j < D; j++)
        tiny[j] = (float)(j - 2.5) * 1e-30f;
    ck_assert_int_eq(protood_bank_init_from_features(b, 1, tiny, &tiny_label, 0), PROTOOD_OK);
    float *p4 = prototypes_of(b);
    ck_assert(fabs(norm_f32(p4 + 2 * D, D) - 1.0) < 1e-6);
    for (int64_t j = 0; j < D; j++)
        ck_assert(fabs(p4[2 * D + j] - tiny[j] / norm_f32(tiny, D)) <= 1e-6);
    free(p4);
    free(p);
    free(p2);
    free(p3);
    free(before.protos);
    free(after.protos);
    protood_bank_free(b);
}
END_TEST

/* Rows around cluster directions: class c, cluster k points along basis vector 3c + k. */
#define CL_C 2
#define CL_K 3
#define CL_D 12
#define CL_PER 15
#define CL_N (CL_C * CL_K * CL_PER)
static void make_clusters(float *x, int32_t *labels, int32_t *truth)
{
    int64_t order[CL_N];
    for (int64_t i = 0; i < CL_N; i++)
        order[i] = i;
    for (int64_t i = CL_N - 1; i > 0; i--) { /* shuffle so that clusters interleave */
        int64_t j = (int64_t)(test_uniform() * (double)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int64_t r = 0; r < CL_N; r++) {
        int64_t g = order[r] / CL_PER; /* 0 .. C*K-1 */
        labels[r] = (int32_t)(g / CL_K);
        truth[r] = (int32_t)(g % CL_K);
        float scale = (float)(0.5 + 1.5 * test_uniform());
        for (int64_t j = 0; j < CL_D; j++) {
            double v = (j == g ? 1.0 : 0.0) + 0.1 * (test_uniform() - 0.5);
            x[r * CL_D + j] = (float)(scale * v);
        }
    }
}

START_TEST(kmeans_recovers_separated_clusters)
{
    test_seed(2);
    float x[CL_N * CL_D];
    int32_t labels[CL_N], truth[CL_N];
    make_clusters(x, labels, truth);
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, CL_C, CL_K, CL_D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_from_features(b, CL_N, x, labels, 2024), PROTOOD_OK);
    float *p = prototypes_of(b);
    for (int32_t c = 0; c < CL_C; c++) {
        /* The expected centres: n2 of the mean of each true cluster's normalised rows. */
        double want[CL_K][CL_D];
        int32_t group[CL_N];
        for (int32_t k = 0; k < CL_K; k++) {
            for (int64_t i = 0; i < CL_N; i++)
                group[i] = labels[i] == c && truth[i] == k ? 1 : 0;
            class_mean_direction(CL_N, CL_D, x, group, 1, want[k]);
        }
        int used[CL_K] = {0};
        for (int32_t slot = 0; slot < CL_K; slot++) {
            const float *row = p + (c * CL_K + slot) * CL_D;
            ck_assert(fabs(norm_f32(row, CL_D) - 1.0) < 1e-6);
            int best = 0;
            for (int k = 1; k < CL_K; k++)
                if (cosine(row, want[k], CL_D) > cosine(row, want[best], CL_D))
                    best = k;
            ck_assert_msg(!used[best], "class %d: two prototypes on cluster %d", c, best);
            used[best] = 1;
            for (int64_t j = 0; j < CL_D; j++)
                ck_assert_msg(fabs(row[j] - want[best][j]) <= 1e-6, "class %d slot %d [%lld] = %.9g, want %.9g",
                              c, slot, (long long)j, (double)row[j], want[best][j]);
        }
    }
    free(p);
    protood_bank_free(b);
}
END_TEST

/* Each prototype of a class is n2 of the mean of the class rows nearest to it (double, here):
 * what Lloyd iterations run to convergence leave. */
static void assert_lloyd_fixed_point(const float *p, int64_t n, int64_t d, int64_t k, const float *x,
                                     const int32_t *labels, int32_t c)
{
    double *sum = calloc((size_t)(k * d), sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        if (labels[i] != c)
            continue;
        double nx = norm_f32(x + i * d, d), best_s = -2.0;
        int64_t best = 0;
        for (int64_t m = 0; m < k; m++) {
            double s = 0.0;
            for (int64_t j = 0; j < d; j++)
                s += p[(c * k + m) * d + j] * (x[i * d + j] / nx);
            if (s > best_s) {
                best_s = s;
                best = m;
            }
        }
        for (int64_t j = 0; j < d; j++)
            sum[best * d + j] += x[i * d + j] / nx;
    }
    for (int64_t m = 0; m < k; m++) {
        double s = 0.0;
        for (int64_t j = 0; j < d; j++)
            s += sum[m * d + j] * sum[m * d + j];
        ck_assert_msg(s > 0.0, "class %d centre %lld has no rows", c, (long long)m);
        for (int64_t j = 0; j < d; j++)
            ck_assert_msg(fabs(p[(c * k + m) * d + j] - sum[m * d + j] / sqrt(s)) <= 1e-5,
                          "class %d centre %lld is not the mean of its rows", c, (long long)m);
    }
    free(sum);
}

START_TEST(kmeans_is_deterministic_per_seed_and_converged)
{
    test_seed(3);
    const int64_t C = 2, K = 4, D = 3, N = 120;
    float x[120 * 3];
    int32_t labels[120];
    fill_uniform(x, (size_t)(N * D), -1.0, 1.0); /* no structure: the seed decides */
    for (int64_t i = 0; i < N; i++)
        labels[i] = (int32_t)(i % 2);
    protood_bank *a, *b;
    ck_assert_int_eq(protood_bank_create(&a, C, K, D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_create(&b, C, K, D), PROTOOD_OK);
    size_t bytes = (size_t)(C * K * D) * sizeof(float);
    float *results[8];
    int distinct = 0;
    for (uint64_t seed = 0; seed < 8; seed++) {
        ck_assert_int_eq(protood_bank_init_from_features(a, N, x, labels, seed), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, 1000 + seed), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_init_from_features(b, N, x, labels, seed), PROTOOD_OK);
        results[seed] = prototypes_of(a);
        float *pb = prototypes_of(b);
        /* Same data and seed: bit-identical, whatever the bank held before (every slot is reached). */
        ck_assert_msg(memcmp(results[seed], pb, bytes) == 0, "seed %llu not reproducible",
                      (unsigned long long)seed);
        free(pb);
        for (int32_t c = 0; c < C; c++)
            assert_lloyd_fixed_point(results[seed], N, D, K, x, labels, c);
        int seen = 0;
        for (uint64_t s = 0; s < seed; s++)
            seen |= memcmp(results[s], results[seed], bytes) == 0;
        distinct += !seen;
    }
    ck_assert_msg(distinct >= 2, "8 seeds gave %d distinct results: the seed is not used", distinct);
    for (int s = 0; s < 8; s++)
        free(results[s]);
    protood_bank_free(a);
    protood_bank_free(b);
}
END_TEST

/* True if row (a unit vector) equals n2(v) to within 1e-6. */
static int is_direction_of(const float *row, const float *v, int64_t d)
{
    double nv = norm_f32(v, d);
    for (int64_t j = 0; j < d; j++)
        if (fabs(row[j] - v[j] / nv) > 1e-6)
            return 0;
    return 1;
}

START_TEST(short_and_empty_classes)
{
    const int64_t C = 4, K = 3, D = 5;
    /* class 0: 2 rows; class 1: none; class 2: 5 rows in 2 directions (exact multiples of two rows,
     * which normalise to the same floats); class 3: exactly K distinct rows. */
    const float a[5] = {1, 2, 0, -1, 0.5f}, bb[5] = {-2, 0, 1, 1, 3}, r0[5] = {0, 1, 1, 0, 0},
                r1[5] = {3, -1, 0, 2, 0}, t0[5] = {1, 0, 0, 0, 0}, t1[5] = {0, 0, 0, 2, 0}, t2[5] = {1, 1, 1, 1, 1};
    const float *rows[10] = {a, r0, t0, bb, t1, r1, a, t2, bb, a};
    const float scale[10] = {2, 1, 1, 4, 1, 1, 1, 1, 1, 0.5f};
    const int32_t labels[10] = {2, 0, 3, 2, 3, 0, 2, 3, 2, 2};
    float x[10 * 5];
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 5; j++)
            x[i * 5 + j] = scale[i] * rows[i][j];
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, C, K, D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, 99), PROTOOD_OK);
    float *before = prototypes_of(b);
    ck_assert_int_eq(protood_bank_init_from_features(b, 10, x, labels, 3), PROTOOD_OK);
    float *p = prototypes_of(b);
#define SLOT(c, k) (p + ((c) * K + (k)) * D)
#define KEPT(c, k) (memcmp(SLOT(c, k), before + ((c) * K + (k)) * D, (size_t)D * sizeof(float)) == 0)
    /* class 0: the two rows in slots 0 and 1 (either order), slot 2 kept */
    ck_assert((is_direction_of(SLOT(0, 0), r0, D) && is_direction_of(SLOT(0, 1), r1, D)) ||
              (is_direction_of(SLOT(0, 0), r1, D) && is_direction_of(SLOT(0, 1), r0, D)));
    ck_assert(KEPT(0, 2));
    /* class 1: all kept */
    ck_assert(KEPT(1, 0) && KEPT(1, 1) && KEPT(1, 2));
    /* class 2: the two directions, slot 2 kept */
    ck_assert((is_direction_of(SLOT(2, 0), a, D) && is_direction_of(SLOT(2, 1), bb, D)) ||
              (is_direction_of(SLOT(2, 0), bb, D) && is_direction_of(SLOT(2, 1), a, D)));
    ck_assert(KEPT(2, 2));
    /* class 3: every row is a prototype */
    const float *t[3] = {t0, t1, t2};
    for (int i = 0; i < 3; i++) {
        int found = 0;
        for (int k = 0; k < 3; k++)
            found += is_direction_of(SLOT(3, k), t[i], D);
        ck_assert_msg(found == 1, "class 3 row %d matches %d prototypes", i, found);
    }
#undef SLOT
#undef KEPT
    free(before);
    free(p);
    protood_bank_free(b);
}
END_TEST

START_TEST(init_from_features_rejects_bad_input_unchanged)
{
    test_seed(4);
    const int64_t C = 3, D = 4, N = 6;
    float x[6 * 4];
    int32_t labels[6] = {0, 1, 2, 0, 1, 2};
    fill_uniform(x, (size_t)(N * D), 0.5, 1.0);
    for (int64_t k = 1; k <= 2; k++) {
        protood_bank *b;
        ck_assert_int_eq(protood_bank_create(&b, C, k, D), PROTOOD_OK);
        ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_TOPK, 1), PROTOOD_OK);
        snapshot before = take(b);
        float bad[6 * 4];
        int32_t bad_labels[6];
#define RESET()                                                                                               \
    do {                                                                                                      \
        memcpy(bad, x, sizeof bad);                                                                           \
        memcpy(bad_labels, labels, sizeof bad_labels);                                                        \
    } while (0)
#define EXPECT(call, status, message)                                                                         \
    do {                                                                                                      \
        expect_error(call, status, message, message);                                                         \
        ck_assert(strncmp(protood_last_error(), "protood_bank_init_from_features: ", 33) == 0);               \
        assert_unchanged(b, &before, message);                                                                \
    } while (0)
        RESET();
        EXPECT(protood_bank_init_from_features(NULL, N, bad, bad_labels, 0), PROTOOD_E_INVALID_ARG, "bank is NULL");
        EXPECT(protood_bank_init_from_features(b, 0, bad, bad_labels, 0), PROTOOD_E_INVALID_ARG,
               "n = 0, must be >= 1");
        EXPECT(protood_bank_init_from_features(b, -2, bad, bad_labels, 0), PROTOOD_E_INVALID_ARG, "n = -2");
        EXPECT(protood_bank_init_from_features(b, N, NULL, bad_labels, 0), PROTOOD_E_INVALID_ARG, "x is NULL");
        EXPECT(protood_bank_init_from_features(b, N, bad, NULL, 0), PROTOOD_E_INVALID_ARG, "labels is NULL");
        bad[3 * D + 1] = NAN;
        EXPECT(protood_bank_init_from_features(b, N, bad, bad_labels, 0), PROTOOD_E_NONFINITE, "x[3][1] = nan");
        RESET();
        bad[5 * D + 3] = INFINITY;
        EXPECT(protood_bank_init_from_features(b, N, bad, bad_labels, 0), PROTOOD_E_NONFINITE, "x[5][3] = inf");
        RESET();
        memset(bad + 2 * D, 0, (size_t)D * sizeof(float));
        EXPECT(protood_bank_init_from_features(b, N, bad, bad_labels, 0), PROTOOD_E_NONFINITE,
               "x row 2 is all zeros");
        RESET();
        bad_labels[4] = 3;
        EXPECT(protood_bank_init_from_features(b, N, bad, bad_labels, 0), PROTOOD_E_LABEL,
               "labels[4] = 3 outside [0, 3)");
        bad_labels[4] = 1;
        bad_labels[0] = -1;
        EXPECT(protood_bank_init_from_features(b, N, bad, bad_labels, 0), PROTOOD_E_LABEL,
               "labels[0] = -1 outside [0, 3)");
        /* A bad value in the last row is found before anything is written. */
        RESET();
        bad_labels[N - 1] = INT32_MAX;
        EXPECT(protood_bank_init_from_features(b, N, bad, bad_labels, 0), PROTOOD_E_LABEL, "labels[5]");
#undef EXPECT
#undef RESET
        /* And the good input works on the same bank afterwards. */
        ck_assert_int_eq(protood_bank_init_from_features(b, N, x, labels, 0), PROTOOD_OK);
        free(before.protos);
        protood_bank_free(b);
    }
}
END_TEST

/* ---- persistence ------------------------------------------------------------------------ */

/* Non-default values, so a reader that fills in defaults fails the round trip. */
static const double saved_params[11] = {0, 0.25, 0.3, 0.02, 7, 2, 0.5, 0.25, 2.0, 0.2, 0.09};

static protood_bank *bank_for_saving(int64_t c, int64_t k, int64_t d, uint64_t seed)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, c, k, d), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_init_random(b, PROTOOD_INIT_SPHERE, seed), PROTOOD_OK);
    for (int32_t key = 1; key <= 10; key++)
        ck_assert_int_eq(protood_bank_set_param(b, key, saved_params[key]), PROTOOD_OK);
    return b;
}

static unsigned char *to_buffer(const protood_bank *b, size_t *size)
{
    ck_assert_int_eq(protood_bank_to_buffer(b, NULL, 0, size), PROTOOD_OK);
    unsigned char *buf = malloc(*size);
    size_t written = 0;
    ck_assert_int_eq(protood_bank_to_buffer(b, buf, *size, &written), PROTOOD_OK);
    ck_assert_uint_eq(written, *size);
    return buf;
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_f64(unsigned char *p, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_le(p, bits, 8);
}

static void put_f32(unsigned char *p, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    put_le(p, bits, 4);
}

static float get_f32(const unsigned char *p)
{
    uint32_t bits = (uint32_t)get_le(p, 4);
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Recompute the trailing CRC-32 (docs/bank-format.md: zlib's, over everything before it). */
static void refresh_crc(unsigned char *buf, size_t size)
{
    put_le(buf + size - 4, crc32(0L, buf, (uInt)(size - 4)), 4);
}

static void assert_same_bank(const protood_bank *a, const protood_bank *b)
{
    snapshot sa = take(a), sb = take(b);
    ck_assert_msg(same_snapshot(&sa, &sb), "round trip changed the bank");
    free(sa.protos);
    free(sb.protos);
}

START_TEST(file_round_trip_is_bit_exact)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "bank.pdb");
    protood_bank *b = bank_for_saving(5, 3, 17, 31), *loaded = NULL;
    ck_assert_int_eq(protood_bank_save(b, path), PROTOOD_OK);
    ck_assert_int_eq(count_entries(dir), 1); /* no temporary file left */
    ck_assert_int_eq(protood_bank_load(&loaded, path), PROTOOD_OK);
    assert_same_bank(b, loaded);
    for (int32_t key = 1; key <= 10; key++) {
        double v;
        ck_assert_int_eq(protood_bank_get_param(loaded, key, &v), PROTOOD_OK);
        ck_assert(v == saved_params[key]);
    }
    /* The loaded bank is a full bank: it saves to the same bytes. */
    char *path2 = tu_path(dir, "again.pdb");
    ck_assert_int_eq(protood_bank_save(loaded, path2), PROTOOD_OK);
    size_t n1, n2;
    unsigned char *f1 = tu_read_bytes(path, &n1), *f2 = tu_read_bytes(path2, &n2);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(f1, f2, n1) == 0);
    /* Saving over an existing file replaces it. */
    protood_bank *other = bank_for_saving(2, 1, 3, 8), *reloaded;
    ck_assert_int_eq(protood_bank_save(other, path), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_load(&reloaded, path), PROTOOD_OK);
    assert_same_bank(other, reloaded);
    ck_assert_int_eq(count_entries(dir), 2);
    free(f1);
    free(f2);
    protood_bank_free(b);
    protood_bank_free(loaded);
    protood_bank_free(other);
    protood_bank_free(reloaded);
    tu_rmtree(dir);
    free(path);
    free(path2);
    free(dir);
}
END_TEST

START_TEST(buffer_round_trip_and_documented_layout)
{
    test_seed(5);
    const int64_t C = 3, K = 2, D = 5, P = C * K;
    protood_bank *b = bank_for_saving(C, K, D, 4);
    /* A bank after init_from_features, to cover more than random prototypes. */
    float x[12 * 5];
    int32_t labels[12];
    fill_uniform(x, sizeof x / sizeof x[0], -1.0, 1.0);
    for (int i = 0; i < 12; i++)
        labels[i] = i % 3;
    ck_assert_int_eq(protood_bank_init_from_features(b, 12, x, labels, 5), PROTOOD_OK);
    size_t size;
    unsigned char *buf = to_buffer(b, &size);
    ck_assert_uint_eq(size, 124 + 4 * (size_t)(P * D));

    /* Decode by hand as docs/bank-format.md describes. */
    ck_assert(memcmp(buf, "PROTOODB", 8) == 0);
    ck_assert_uint_eq(get_le(buf + 8, 4), 1);
    ck_assert_uint_eq(get_le(buf + 12, 4), 0);
    ck_assert_uint_eq(get_le(buf + 16, 8), (uint64_t)C);
    ck_assert_uint_eq(get_le(buf + 24, 8), (uint64_t)K);
    ck_assert_uint_eq(get_le(buf + 32, 8), (uint64_t)D);
    for (int key = 1; key <= 10; key++) {
        uint64_t bits = get_le(buf + 40 + 8 * (key - 1), 8);
        double v;
        memcpy(&v, &bits, 8);
        ck_assert_msg(v == saved_params[key], "parameter %d stored as %g", key, v);
    }
    float *p = prototypes_of(b);
    for (int64_t i = 0; i < P * D; i++)
        ck_assert(get_f32(buf + 120 + 4 * i) == p[i]);
    ck_assert_uint_eq(get_le(buf + size - 4, 4), crc32(0L, buf, (uInt)(size - 4)));

    protood_bank *back = NULL;
    ck_assert_int_eq(protood_bank_from_buffer(&back, buf, size), PROTOOD_OK);
    assert_same_bank(b, back);

    /* A file holds exactly the buffer's bytes. */
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "b.pdb");
    ck_assert_int_eq(protood_bank_save(b, path), PROTOOD_OK);
    size_t fsize;
    unsigned char *file = tu_read_bytes(path, &fsize);
    ck_assert_uint_eq(fsize, size);
    ck_assert(memcmp(file, buf, size) == 0);
    free(file);
    free(p);
    free(buf);
    protood_bank_free(b);
    protood_bank_free(back);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(to_buffer_capacity_and_arguments)
{
    protood_bank *b = bank_for_saving(2, 2, 3, 1);
    size_t need = 0;
    ck_assert_int_eq(protood_bank_to_buffer(b, NULL, 0, &need), PROTOOD_OK);
    ck_assert_uint_eq(need, 172);
    ck_assert_int_eq(protood_bank_to_buffer(b, NULL, 12345, &need), PROTOOD_OK); /* capacity ignored */
    ck_assert_uint_eq(need, 172);
    unsigned char buf[200], sentinel[200];
    memset(sentinel, 0xAB, sizeof sentinel);
    const size_t small[] = {0, 1, 123, 171};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++) {
        memset(buf, 0xAB, sizeof buf);
        size_t got = 777;
        expect_error(protood_bank_to_buffer(b, buf, small[i], &got), PROTOOD_E_INVALID_ARG,
                     "the bank needs 172", "too small");
        ck_assert(memcmp(buf, sentinel, sizeof buf) == 0);
        ck_assert_uint_eq(got, 777);
    }
    ck_assert_str_eq(protood_last_error(), "protood_bank_to_buffer: capacity = 171 bytes, the bank needs 172");
    /* A larger buffer is filled to the size only. */
    memset(buf, 0xAB, sizeof buf);
    size_t got = 0;
    ck_assert_int_eq(protood_bank_to_buffer(b, buf, sizeof buf, &got), PROTOOD_OK);
    ck_assert_uint_eq(got, 172);
    ck_assert(memcmp(buf + 172, sentinel, sizeof buf - 172) == 0);
    protood_bank *back;
    ck_assert_int_eq(protood_bank_from_buffer(&back, buf, got), PROTOOD_OK);
    assert_same_bank(b, back);
    protood_bank_free(back);

    expect_error(protood_bank_to_buffer(NULL, buf, sizeof buf, &got), PROTOOD_E_INVALID_ARG, "bank is NULL", "bank");
    expect_error(protood_bank_to_buffer(b, buf, sizeof buf, NULL), PROTOOD_E_INVALID_ARG, "size_out is NULL", "size");
    expect_error(protood_bank_to_buffer(b, NULL, 0, NULL), PROTOOD_E_INVALID_ARG, "size_out is NULL", "size");
    back = SENTINEL;
    expect_error(protood_bank_from_buffer(NULL, buf, got), PROTOOD_E_INVALID_ARG, "out is NULL", "from out");
    expect_error(protood_bank_from_buffer(&back, NULL, got), PROTOOD_E_INVALID_ARG, "buf is NULL", "from buf");
    expect_error(protood_bank_from_buffer(&back, NULL, 0), PROTOOD_E_INVALID_ARG, "buf is NULL", "from buf 0");
    ck_assert_ptr_eq(back, SENTINEL);
    expect_error(protood_bank_save(NULL, "x"), PROTOOD_E_INVALID_ARG, "bank is NULL", "save bank");
    expect_error(protood_bank_save(b, NULL), PROTOOD_E_INVALID_ARG, "path is NULL", "save path");
    protood_bank_free(b);
}
END_TEST

START_TEST(save_is_atomic)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "keep.pdb");
    const char old[] = "previous content, not a bank";
    tu_write_bytes(path, old, sizeof old);
    protood_bank *b = bank_for_saving(4, 3, 20, 2);

    /* The write itself fails part-way (file size limit): the old file stays, no temporary is left. */
    struct rlimit saved, tiny;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &saved), 0);
    tiny = saved;
    tiny.rlim_cur = 100;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &tiny), 0);
    protood_status st = protood_bank_save(b, path);
    ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    expect_error(st, PROTOOD_E_IO, "write failed", "size limit");
    ck_assert_ptr_nonnull(strstr(protood_last_error(), path));

    /* The target is a directory: rename fails. */
    char *sub = tu_path(dir, "sub");
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    expect_error(protood_bank_save(b, sub), PROTOOD_E_IO, "rename failed", "directory target");
    /* The directory does not exist. */
    char *missing = tu_path(dir, "missing/bank.pdb");
    expect_error(protood_bank_save(b, missing), PROTOOD_E_IO, "cannot create a temporary file", "missing dir");
    ck_assert_ptr_nonnull(strstr(protood_last_error(), missing));

    size_t n;
    unsigned char *now = tu_read_bytes(path, &n);
    ck_assert_uint_eq(n, sizeof old);
    ck_assert(memcmp(now, old, n) == 0);
    ck_assert_int_eq(count_entries(dir), 2); /* keep.pdb and sub only */
    ck_assert_int_eq(count_entries(sub), 0);
    free(now);

    ck_assert_int_eq(protood_bank_save(b, path), PROTOOD_OK);
    ck_assert_int_eq(count_entries(dir), 2);
    protood_bank *back;
    ck_assert_int_eq(protood_bank_load(&back, path), PROTOOD_OK);
    assert_same_bank(b, back);
    protood_bank_free(back);
    protood_bank_free(b);
    tu_rmtree(dir);
    free(sub);
    free(missing);
    free(path);
    free(dir);
}
END_TEST

START_TEST(load_reports_io_errors)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "absent.pdb");
    protood_bank *out = SENTINEL;
    expect_error(protood_bank_load(&out, path), PROTOOD_E_IO, "cannot open", "absent");
    ck_assert_ptr_nonnull(strstr(protood_last_error(), path));
    expect_error(protood_bank_load(&out, dir), PROTOOD_E_IO, "not a regular file", "directory");
    expect_error(protood_bank_load(&out, NULL), PROTOOD_E_INVALID_ARG, "path is NULL", "path NULL");
    expect_error(protood_bank_load(NULL, path), PROTOOD_E_INVALID_ARG, "out is NULL", "out NULL");
    ck_assert_ptr_eq(out, SENTINEL);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* Both readers must reject `bytes` with E_FORMAT and leave *out alone. The buffer copy is exactly
 * `size` bytes long, so the sanitizer build catches any read past its end. */
static void expect_rejected(const char *dir, const unsigned char *bytes, size_t size, const char *message,
                            const char *what)
{
    unsigned char *copy = malloc(size ? size : 1);
    memcpy(copy, bytes, size);
    protood_bank *out = SENTINEL;
    protood_status st = protood_bank_from_buffer(&out, copy, size);
    ck_assert_msg(st == PROTOOD_E_FORMAT, "%s: from_buffer gave %d (%s)", what, st, protood_last_error());
    ck_assert_msg(!message || strstr(protood_last_error(), message), "%s: message '%s' lacks '%s'", what,
                  protood_last_error(), message);
    ck_assert_ptr_eq(out, SENTINEL);
    free(copy);
    if (dir) {
        char *path = tu_path(dir, "bad.pdb");
        tu_write_bytes(path, bytes, size);
        st = protood_bank_load(&out, path);
        ck_assert_msg(st == PROTOOD_E_FORMAT, "%s: load gave %d (%s)", what, st, protood_last_error());
        ck_assert_msg(!message || strstr(protood_last_error(), message), "%s: message '%s' lacks '%s'", what,
                      protood_last_error(), message);
        ck_assert_ptr_eq(out, SENTINEL);
        free(path);
    }
}

START_TEST(every_truncation_is_rejected)
{
    char *dir = tu_mkdtemp();
    protood_bank *b = bank_for_saving(2, 2, 3, 11);
    size_t size;
    unsigned char *buf = to_buffer(b, &size);
    ck_assert_uint_eq(size, 172);
    for (size_t len = 0; len < size; len++) {
        char what[64];
        snprintf(what, sizeof what, "truncated to %zu bytes", len);
        expect_rejected(dir, buf, len, len < 124 ? "truncated" : "truncated or trailing data", what);
    }
    unsigned char *longer = malloc(size + 1);
    memcpy(longer, buf, size);
    longer[size] = 0;
    expect_rejected(dir, longer, size + 1, "truncated or trailing data", "one trailing byte");
    /* The untouched bytes do load: the loop above could fail. */
    protood_bank *back;
    ck_assert_int_eq(protood_bank_from_buffer(&back, buf, size), PROTOOD_OK);
    protood_bank_free(back);
    free(longer);
    free(buf);
    protood_bank_free(b);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(every_byte_and_bit_flip_is_rejected)
{
    char *dir = tu_mkdtemp();
    protood_bank *b = bank_for_saving(2, 2, 3, 12);
    size_t size;
    unsigned char *buf = to_buffer(b, &size);
    unsigned char *bad = malloc(size);
    for (size_t i = 0; i < size; i++) {
        char what[64];
        memcpy(bad, buf, size);
        bad[i] ^= 0xFF;
        snprintf(what, sizeof what, "byte %zu xor 0xff", i);
        expect_rejected(dir, bad, size, NULL, what);
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bad, buf, size);
            bad[i] ^= (unsigned char)(1u << bit);
            snprintf(what, sizeof what, "byte %zu bit %d", i, bit);
            expect_rejected(NULL, bad, size, NULL, what);
        }
    }
    /* In the data part, the checksum is what catches it. */
    memcpy(bad, buf, size);
    bad[130] ^= 0x01;
    expect_rejected(NULL, bad, size, "checksum mismatch", "flip in a prototype");
    memcpy(bad, buf, size);
    bad[size - 1] ^= 0x80;
    expect_rejected(NULL, bad, size, "checksum mismatch", "flip in the checksum");
    free(bad);
    free(buf);
    protood_bank_free(b);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(wrong_magic_version_and_reserved)
{
    char *dir = tu_mkdtemp();
    protood_bank *b = bank_for_saving(2, 2, 3, 13);
    size_t size;
    unsigned char *buf = to_buffer(b, &size);
    unsigned char *bad = malloc(size);

    memcpy(bad, buf, size);
    bad[7] = 'X';
    refresh_crc(bad, size);
    expect_rejected(dir, bad, size, "bad magic", "magic PROTOODX");
    expect_rejected(dir, (const unsigned char *)"\x93NUMPY\x01\x00", 8, "bad magic", "a .npy prefix");
    expect_rejected(dir, (const unsigned char *)"PRX", 3, "bad magic", "short wrong magic");
    expect_rejected(dir, (const unsigned char *)"PRO", 3, "truncated", "short right magic");

    const uint32_t versions[] = {0, 2, 0x01000000u, UINT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        memcpy(bad, buf, size);
        put_le(bad + 8, versions[i], 4);
        refresh_crc(bad, size);
        char want[64];
        snprintf(want, sizeof want, "unsupported format version %u", versions[i]);
        expect_rejected(dir, bad, size, want, want);
    }
    memcpy(bad, buf, size);
    put_le(bad + 12, 1, 4);
    refresh_crc(bad, size);
    expect_rejected(dir, bad, size, "reserved field = 1", "reserved");
    free(bad);
    free(buf);
    protood_bank_free(b);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(inconsistent_content_with_a_valid_checksum)
{
    char *dir = tu_mkdtemp();
    protood_bank *b = bank_for_saving(2, 2, 3, 14);
    size_t size;
    unsigned char *buf = to_buffer(b, &size);
    unsigned char *bad = malloc(size);
#define PATCH_I64(off, v) (memcpy(bad, buf, size), put_le(bad + (off), (uint64_t)(int64_t)(v), 8), refresh_crc(bad, size))
    /* shape */
    PATCH_I64(16, 0);
    expect_rejected(dir, bad, size, "shape 0 x 2 x 3", "n_classes 0");
    PATCH_I64(24, -1);
    expect_rejected(dir, bad, size, "every extent must be >= 1", "K -1");
    PATCH_I64(32, INT64_MIN);
    expect_rejected(dir, bad, size, "every extent must be >= 1", "dim min");
    PATCH_I64(24, INT64_C(1) << 62);
    expect_rejected(dir, bad, size, "overflows", "C x K overflow");
    PATCH_I64(32, INT64_C(1) << 61);
    expect_rejected(dir, bad, size, "overflows", "bytes overflow");
    PATCH_I64(16, 1);
    expect_rejected(dir, bad, size, "shape 1 x 2 x 3 takes 148", "too few classes for the size");
    PATCH_I64(32, 4);
    expect_rejected(dir, bad, size, "truncated or trailing data", "dim too large for the size");
#undef PATCH_I64

    /* parameters out of range */
    static const struct {
        int key;
        double value;
        const char *name;
    } params[] = {
        {1, 1.0, "momentum"},       {1, -0.5, "momentum"},           {2, 0.0, "temperature"},
        {3, NAN, "sinkhorn_epsilon"}, {4, 2.5, "sinkhorn_iters"},    {4, 0.0, "sinkhorn_iters"},
        {5, -1.0, "topk"},          {6, -1.0, "lambda_pcon"},        {7, INFINITY, "pcon_temperature"},
        {8, -INFINITY, "comp_weight"}, {9, -0.1, "dis_base_temperature"}, {10, 0.0, "comp_base_temperature"},
    };
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++) {
        memcpy(bad, buf, size);
        put_f64(bad + 40 + 8 * (params[i].key - 1), params[i].value);
        refresh_crc(bad, size);
        expect_rejected(dir, bad, size, params[i].name, params[i].name);
    }

    /* prototypes: not finite, not unit */
    memcpy(bad, buf, size);
    put_f32(bad + 120 + 4 * (1 * 3 + 2), NAN);
    refresh_crc(bad, size);
    expect_rejected(dir, bad, size, "prototype[1][2] = nan", "NaN prototype");
    memcpy(bad, buf, size);
    put_f32(bad + 120 + 4 * 9, -INFINITY);
    refresh_crc(bad, size);
    expect_rejected(dir, bad, size, "prototype[3][0] = -inf", "Inf prototype");
    const float factors[] = {2.0f, 0.0f, 1.002f, 0.998f, -1.5f};
    for (size_t f = 0; f < sizeof factors / sizeof factors[0]; f++) {
        memcpy(bad, buf, size);
        for (int j = 0; j < 3; j++)
            put_f32(bad + 120 + 4 * (2 * 3 + j), get_f32(buf + 120 + 4 * (2 * 3 + j)) * factors[f]);
        refresh_crc(bad, size);
        expect_rejected(dir, bad, size, "prototype row 2 has norm", "non-unit prototype");
    }
    /* Within the documented 1e-3 the row loads, as stored (not renormalised). */
    memcpy(bad, buf, size);
    for (int j = 0; j < 3; j++)
        put_f32(bad + 120 + 4 * (2 * 3 + j), get_f32(buf + 120 + 4 * (2 * 3 + j)) * 1.0005f);
    refresh_crc(bad, size);
    protood_bank *back;
    ck_assert_int_eq(protood_bank_from_buffer(&back, bad, size), PROTOOD_OK);
    float *p = prototypes_of(back);
    for (int j = 0; j < 3; j++)
        ck_assert(p[2 * 3 + j] == get_f32(bad + 120 + 4 * (2 * 3 + j)));
    free(p);
    protood_bank_free(back);
    free(bad);
    free(buf);
    protood_bank_free(b);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *bank_suite(void)
{
    Suite *s = suite_create("bank");
    TCase *tc = tcase_create("handle");
    tcase_add_test(tc, create_validates_its_arguments);
    tcase_add_test(tc, shape_free_and_clone);
    tcase_add_test(tc, parameter_defaults_match_spec);
    tcase_add_test(tc, parameter_ranges_at_the_boundaries);
    tcase_add_test(tc, unknown_keys_and_null_arguments);
    tcase_add_test(tc, init_random_gives_unit_rows_of_the_scheme);
    tcase_add_test(tc, init_random_is_seeded);
    tcase_add_test(tc, set_prototypes_normalises_and_validates);
    suite_add_tcase(s, tc);
    tc = tcase_create("init-from-features");
    tcase_add_test(tc, class_means_when_k_is_one);
    tcase_add_test(tc, kmeans_recovers_separated_clusters);
    tcase_add_test(tc, kmeans_is_deterministic_per_seed_and_converged);
    tcase_add_test(tc, short_and_empty_classes);
    tcase_add_test(tc, init_from_features_rejects_bad_input_unchanged);
    suite_add_tcase(s, tc);
    tc = tcase_create("persistence");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, file_round_trip_is_bit_exact);
    tcase_add_test(tc, buffer_round_trip_and_documented_layout);
    tcase_add_test(tc, to_buffer_capacity_and_arguments);
    tcase_add_test(tc, save_is_atomic);
    tcase_add_test(tc, load_reports_io_errors);
    tcase_add_test(tc, every_truncation_is_rejected);
    tcase_add_test(tc, every_byte_and_bit_flip_is_rejected);
    tcase_add_test(tc, wrong_magic_version_and_reserved);
    tcase_add_test(tc, inconsistent_content_with_a_valid_checksum);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(bank_suite());
}
