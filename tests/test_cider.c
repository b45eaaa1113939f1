/* CIDER step (SPEC.md §4): every reference case, an independent float64 implementation
 * (refsteps.c) for finite-difference gradient checks through the chain of sequential EMA updates,
 * and the error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "refsteps.h"
#include "testutil.h"

static void run_cider_case(const char *name)
{
    tu_fixture *fx = tu_fixture_load(name);
    int64_t C = (int64_t)tu_fixture_param(fx, "n_classes"), D = (int64_t)tu_fixture_param(fx, "dim");
    int64_t n = (int64_t)tu_fixture_param(fx, "n"), r, c, nl;
    ck_assert_int_eq((int64_t)tu_fixture_param(fx, "n_protos"), 1);
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, C, 1, D), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, tu_fixture_param(fx, "momentum")), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_TEMPERATURE, tu_fixture_param(fx, "temperature")),
                     PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_COMP_WEIGHT, tu_fixture_param(fx, "weight_comp")),
                     PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_DIS_BASE_TEMPERATURE,
                                            tu_fixture_param(fx, "dis_base_temperature")),
                     PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_COMP_BASE_TEMPERATURE,
                                            tu_fixture_param(fx, "comp_base_temperature")),
                     PROTOOD_OK);
    float *p0 = tu_fixture_f32(fx, "prototypes_in.npy", &r, &c);
    ck_assert_int_eq(r * c, C * D);
    ck_assert_int_eq(protood_bank_set_prototypes(b, p0), PROTOOD_OK);
    float *h = tu_fixture_f32(fx, "features.npy", &r, &c);
    ck_assert_int_eq(r * c, n * D);
    int32_t *y = tu_fixture_i32(fx, "labels.npy", &nl);
    ck_assert_int_eq(nl, n);

    double losses[3];
    float *grad = malloc((size_t)(n * D) * sizeof *grad), *pout = malloc((size_t)(C * D) * sizeof *pout);
    ck_assert_msg(protood_cider_step(b, n, h, y, losses, grad) == PROTOOD_OK, "%s", protood_last_error());
    static const char *keys[3] = {"loss_total", "loss_comp", "loss_dis"};
    double lerr = 0;
    for (int k = 0; k < 3; k++) {
        double want = tu_fixture_param(fx, keys[k]);
        ck_assert_msg(fabs(losses[k] - want) <= 1e-5 * fabs(want), "%s: %s = %.12g, expected %.12g", name, keys[k],
                      losses[k], want);
        lerr = fmax(lerr, fabs(losses[k] - want) / fabs(want));
    }
    double *g_want = tu_fixture_f64(fx, "grad.npy", &r, &c);
    ck_assert_int_eq(r * c, n * D);
    tu_assert_close_f32_f64(grad, g_want, (size_t)(n * D), 1e-4, "grad");
    ck_assert_int_eq(protood_bank_get_prototypes(b, pout), PROTOOD_OK);
    double *p_want = tu_fixture_f64(fx, "prototypes_out.npy", &r, &c);
    ck_assert_int_eq(r * c, C * D);
    tu_assert_close_f32_f64(pout, p_want, (size_t)(C * D), 1e-4, "prototypes_out");
    printf("%-20s loss rel %.2e  grad %.2e  protos %.2e\n", name, lerr, tu_max_abs_err(grad, g_want, (size_t)(n * D)),
           tu_max_abs_err(pout, p_want, (size_t)(C * D)));
    free(g_want);
    free(p_want);
    free(pout);
    free(grad);
    free(p0);
    free(h);
    free(y);
    protood_bank_free(b);
    tu_fixture_free(fx);
}

START_TEST(case_cider_small) { run_cider_case("cider_small"); }
END_TEST
START_TEST(case_cider_slow_ema) { run_cider_case("cider_slow_ema"); }
END_TEST
START_TEST(case_cider_cifar_shape) { run_cider_case("cider_cifar_shape"); }
END_TEST

/* ---- against the float64 implementation of refsteps.c ------------------------------------ */

static unsigned lcg_state;
static double lcg_uniform(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (double)((lcg_state >> 8) & 0xffffff) / 16777216.0;
}

static float *random_rows(int64_t n, int64_t d, unsigned seed)
{
    lcg_state = seed;
    float *h = malloc((size_t)(n * d) * sizeof *h);
    for (int64_t i = 0; i < n; i++) {
        double scale = 0.3 + 2.7 * lcg_uniform();
        for (int64_t j = 0; j < d; j++)
            h[i * d + j] = (float)(scale * (2 * lcg_uniform() - 1));
    }
    return h;
}

/* The step against the float64 implementation (refsteps.c) on random rows. Also checks that the
 * dispersion path through the sequential updates is visible. */
static void check_against_reference(const tu_cider_params *rp, int64_t n, const int32_t *y, unsigned seed)
{
    protood_bank *b = tu_cider_bank(rp, seed);
    float *h = random_rows(n, rp->D, seed);
    tu_step_check c = tu_check_cider_step(rp, b, n, h, y);
    ck_assert_msg(c.path > 100 * 1e-4 * fmax(c.gmax, 1), "the update path (%.3g) is too small to be tested", c.path);
    free(h);
    protood_bank_free(b);
}


START_TEST(gradient_through_sequential_updates)
{
    /* several rows per class, interleaved, so every chain has length > 1 */
    tu_cider_params rp = {4, 5, 0.5, 0.1, 1.0, 0.1, 0.07};
    int32_t y[13] = {0, 1, 0, 2, 2, 0, 3, 1, 2, 0, 1, 0, 2};
    check_against_reference(&rp, 13, y, 1);
}
END_TEST

START_TEST(gradient_slow_ema_weighted)
{
    tu_cider_params rp = {3, 6, 0.95, 0.1, 2.0, 0.1, 0.07};
    int32_t y[10] = {2, 2, 2, 0, 2, 0, 0, 2, 0, 2};   /* class 1 absent: dispersion still sees it */
    check_against_reference(&rp, 10, y, 2);
}
END_TEST

START_TEST(gradient_other_temperatures)
{
    tu_cider_params rp = {5, 4, 0.7, 0.3, 0.5, 0.2, 0.05};
    int32_t y[9] = {4, 3, 4, 1, 0, 4, 2, 3, 4};
    check_against_reference(&rp, 9, y, 3);
}
END_TEST

START_TEST(gradient_large_batch)
{
    tu_cider_params rp = {10, 16, 0.5, 0.1, 1.0, 0.1, 0.07};
    int32_t y[120];
    for (int i = 0; i < 120; i++)
        y[i] = (i * 7) % 10;
    int64_t n = 120, C = rp.C, D = rp.D;
    protood_bank *b = tu_cider_bank(&rp, 4);
    float *h = random_rows(n, D, 4), *p0 = malloc((size_t)(C * D) * sizeof *p0);
    ck_assert_int_eq(protood_bank_get_prototypes(b, p0), PROTOOD_OK);
    double losses[3], want[3];
    float *grad = malloc((size_t)(n * D) * sizeof *grad);
    ck_assert_int_eq(protood_cider_step(b, n, h, y, losses, grad), PROTOOD_OK);
    double *hd = malloc((size_t)(n * D) * sizeof *hd), *mu = malloc((size_t)(C * D) * sizeof *mu);
    for (int64_t k = 0; k < n * D; k++)
        hd[k] = h[k];
    tu_ref_cider(&rp, n, hd, y, p0, want, mu, NULL);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs(losses[k] - want[k]) <= 1e-5 * fabs(want[k]), "loss[%d]", k);
    tu_assert_close_f32_f64(b->protos, mu, (size_t)(C * D), 1e-5, "prototypes");
    free(hd);
    free(mu);
    free(grad);
    free(p0);
    free(h);
    protood_bank_free(b);
}
END_TEST

START_TEST(single_class_has_no_dispersion)
{
    tu_cider_params rp = {1, 4, 0.5, 0.1, 1.0, 0.1, 0.07};
    protood_bank *b = tu_cider_bank(&rp, 5);
    float *h = random_rows(3, 4, 5), g[12];
    int32_t y[3] = {0, 0, 0};
    double l[3];
    ck_assert_int_eq(protood_cider_step(b, 3, h, y, l, g), PROTOOD_OK);
    ck_assert_double_eq(l[2], 0.0);   /* no other prototype */
    ck_assert_double_eq_tol(l[1], 0.0, 1e-12);   /* a softmax over one class */
    ck_assert_double_eq(l[0], l[1]);
    for (int k = 0; k < 12; k++)
        ck_assert_float_eq_tol(g[k], 0.0f, 1e-6f);
    free(h);
    protood_bank_free(b);
}
END_TEST

START_TEST(null_outputs_and_workspace_reuse)
{
    tu_cider_params rp = {4, 8, 0.5, 0.1, 1.0, 0.1, 0.07};
    protood_bank *b = tu_cider_bank(&rp, 6), *b1, *b2, *b3;
    ck_assert_int_eq(protood_bank_clone(&b1, b), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_clone(&b2, b), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_clone(&b3, b), PROTOOD_OK);
    float *h = random_rows(10, 8, 6), g0[80], g2[80];
    int32_t y[10] = {0, 1, 2, 3, 0, 1, 2, 3, 1, 1};
    double l0[3], l1[3];
    ck_assert_int_eq(protood_cider_step(b, 10, h, y, l0, g0), PROTOOD_OK);
    ck_assert_int_eq(protood_cider_step(b1, 10, h, y, l1, NULL), PROTOOD_OK);
    ck_assert_int_eq(protood_cider_step(b2, 10, h, y, NULL, g2), PROTOOD_OK);
    ck_assert_int_eq(protood_cider_step(b3, 10, h, y, NULL, NULL), PROTOOD_OK);
    ck_assert_mem_eq(l0, l1, sizeof l0);
    ck_assert_mem_eq(g0, g2, sizeof g0);
    ck_assert_mem_eq(b->protos, b1->protos, 32 * sizeof(float));
    ck_assert_mem_eq(b->protos, b2->protos, 32 * sizeof(float));
    ck_assert_mem_eq(b->protos, b3->protos, 32 * sizeof(float));
    void *work = b->work;
    size_t size = b->work_size;
    for (int r = 0; r < 3; r++)
        ck_assert_int_eq(protood_cider_step(b, 10, h, y, l0, g0), PROTOOD_OK);
    ck_assert_ptr_eq(b->work, work);
    ck_assert_uint_eq(b->work_size, size);
    free(h);
    protood_bank_free(b);
    protood_bank_free(b1);
    protood_bank_free(b2);
    protood_bank_free(b3);
}
END_TEST

static void expect_cider_error(protood_bank *b, int64_t n, const float *h, const int32_t *y, protood_status want,
                               const char *needle)
{
    int64_t P = b->n_protos, D = b->dim;
    protood_bank *copy;
    ck_assert_int_eq(protood_bank_clone(&copy, b), PROTOOD_OK);
    float *before = malloc((size_t)(P * D) * sizeof *before), *after = malloc((size_t)(P * D) * sizeof *after);
    ck_assert_int_eq(protood_bank_get_prototypes(b, before), PROTOOD_OK);
    double losses[3] = {-1, -2, -3};
    float grad[64];
    for (int k = 0; k < 64; k++)
        grad[k] = 42.0f;
    ck_assert_int_eq(protood_cider_step(b, n, h, y, losses, grad), want);
    ck_assert_msg(strstr(protood_last_error(), needle) != NULL, "message '%s' lacks '%s'", protood_last_error(),
                  needle);
    ck_assert_msg(strncmp(protood_last_error(), "protood_cider_step: ", 20) == 0, "'%s'", protood_last_error());
    ck_assert_int_eq(protood_bank_get_prototypes(b, after), PROTOOD_OK);
    ck_assert_mem_eq(before, after, (size_t)(P * D) * sizeof *before);
    ck_assert_mem_eq(copy->params, b->params, sizeof b->params);
    ck_assert(losses[0] == -1 && losses[1] == -2 && losses[2] == -3);
    for (int k = 0; k < 64; k++)
        ck_assert(grad[k] == 42.0f);
    free(before);
    free(after);
    protood_bank_free(copy);
}

START_TEST(bad_input_is_rejected_and_changes_nothing)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 3, 1, 4), PROTOOD_OK);
    float *h = random_rows(6, 4, 7);
    int32_t y[6] = {0, 1, 2, 0, 1, 2};
    ck_assert_int_eq(protood_cider_step(b, 6, h, y, NULL, NULL), PROTOOD_OK);   /* workspace exists */

    expect_cider_error(b, 0, h, y, PROTOOD_E_INVALID_ARG, "n = 0");
    expect_cider_error(b, 6, NULL, y, PROTOOD_E_INVALID_ARG, "h is NULL");
    expect_cider_error(b, 6, h, NULL, PROTOOD_E_INVALID_ARG, "labels is NULL");
    h[3 * 4 + 1] = NAN;
    expect_cider_error(b, 6, h, y, PROTOOD_E_NONFINITE, "h[3][1] = nan");
    h[3 * 4 + 1] = INFINITY;
    expect_cider_error(b, 6, h, y, PROTOOD_E_NONFINITE, "h[3][1] = inf");
    h[3 * 4 + 1] = 0.5f;
    for (int j = 0; j < 4; j++)
        h[4 * 4 + j] = 0.0f;
    expect_cider_error(b, 6, h, y, PROTOOD_E_NONFINITE, "h row 4 is all zeros");
    h[4 * 4 + 0] = 1.0f;
    y[5] = 3;
    expect_cider_error(b, 6, h, y, PROTOOD_E_LABEL, "labels[5] = 3 outside [0, 3)");
    y[5] = -2;
    expect_cider_error(b, 6, h, y, PROTOOD_E_LABEL, "labels[5] = -2 outside [0, 3)");
    y[5] = 2;
    ck_assert_int_eq(protood_cider_step(NULL, 6, h, y, NULL, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_cider_step: bank is NULL");

    protood_bank *mix;
    ck_assert_int_eq(protood_bank_create(&mix, 3, 2, 4), PROTOOD_OK);
    expect_cider_error(mix, 6, h, y, PROTOOD_E_STATE, "protos_per_class = 2");
    protood_bank_free(mix);
    free(h);
    protood_bank_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cider");
    TCase *tc = tcase_create("reference_cases");
    tcase_add_test(tc, case_cider_small);
    tcase_add_test(tc, case_cider_slow_ema);
    tcase_add_test(tc, case_cider_cifar_shape);
    suite_add_tcase(s, tc);
    TCase *tg = tcase_create("gradient");
    tcase_add_test(tg, gradient_through_sequential_updates);
    tcase_add_test(tg, gradient_slow_ema_weighted);
    tcase_add_test(tg, gradient_other_temperatures);
    tcase_add_test(tg, gradient_large_batch);
    suite_add_tcase(s, tg);
    TCase *tb = tcase_create("behaviour");
    tcase_add_test(tb, single_class_has_no_dispersion);
    tcase_add_test(tb, null_outputs_and_workspace_reuse);
    tcase_add_test(tb, bad_input_is_rejected_and_changes_nothing);
    suite_add_tcase(s, tb);
    return tu_run_suite(s);
}
