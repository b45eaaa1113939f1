/* The fixture loader reads the reference cases of ../shared/fixtures consistently. */
#include <math.h>
#include <stdlib.h>

#include "testutil.h"

START_TEST(palm_case_shapes_match_its_parameters)
{
    tu_fixture *fx = tu_fixture_load("palm_small");
    int64_t n = (int64_t)tu_fixture_param(fx, "n"), d = (int64_t)tu_fixture_param(fx, "dim");
    int64_t p = (int64_t)(tu_fixture_param(fx, "n_classes") * tu_fixture_param(fx, "n_protos"));
    int64_t rows, cols, nl;
    float *h = tu_fixture_f32(fx, "features.npy", &rows, &cols);
    ck_assert_int_eq(rows, n);
    ck_assert_int_eq(cols, d);
    double *proto = tu_fixture_f64(fx, "prototypes_out.npy", &rows, &cols);
    ck_assert_int_eq(rows, p);
    ck_assert_int_eq(cols, d);
    for (int64_t r = 0; r < p; r++) { /* the reference keeps prototypes at unit norm */
        double s = 0;
        for (int64_t j = 0; j < d; j++)
            s += proto[r * d + j] * proto[r * d + j];
        ck_assert_double_eq_tol(s, 1.0, 1e-12);
    }
    int32_t *y = tu_fixture_i32(fx, "labels.npy", &nl);
    ck_assert_int_eq(nl, n);
    for (int64_t i = 0; i < n; i++)
        ck_assert(y[i] >= 0 && y[i] < tu_fixture_param(fx, "n_classes"));
    ck_assert_double_eq_tol(tu_fixture_param(fx, "loss_total"),
                            tu_fixture_param(fx, "loss_mle") +
                                tu_fixture_param(fx, "lambda_pcon") * tu_fixture_param(fx, "loss_pcon"),
                            1e-12);
    ck_assert(!tu_fixture_has(fx, "no_such_key"));
    free(h);
    free(proto);
    free(y);
    tu_fixture_free(fx);
}
END_TEST

START_TEST(sinkhorn_rows_sum_to_one)
{
    tu_fixture *fx = tu_fixture_load("sinkhorn");
    int64_t n, p;
    double *q = tu_fixture_f64(fx, "assign.npy", &n, &p);
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int64_t j = 0; j < p; j++)
            s += q[i * p + j];
        ck_assert_double_eq_tol(s, 1.0, 1e-9);
    }
    free(q);
    tu_fixture_free(fx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fixtures");
    TCase *tc = tcase_create("loader");
    tcase_add_test(tc, palm_case_shapes_match_its_parameters);
    tcase_add_test(tc, sinkhorn_rows_sum_to_one);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
