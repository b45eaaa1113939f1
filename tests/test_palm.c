/* PALM step (SPEC.md §3): every reference case, an independent float64 implementation of the step
 * (refsteps.c) for finite-difference gradient checks, protood_palm_assign, and the error paths. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bank.h"
#include "palm.h"
#include "refsteps.h"
#include "testutil.h"

/* ---- reference cases ---------------------------------------------------------------------- */

static protood_bank *bank_from_fixture(const tu_fixture *fx, int64_t *n_out, float **h, int32_t **y)
{
    int64_t C = (int64_t)tu_fixture_param(fx, "n_classes"), K = (int64_t)tu_fixture_param(fx, "n_protos");
    int64_t D = (int64_t)tu_fixture_param(fx, "dim"), n = (int64_t)tu_fixture_param(fx, "n"), r, c;
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, C, K, D), PROTOOD_OK);
    static const struct {
        int32_t key;
        const char *name;
    } keys[] = {
        {PROTOOD_BANK_MOMENTUM, "momentum"},
        {PROTOOD_BANK_TEMPERATURE, "temperature"},
        {PROTOOD_BANK_SINKHORN_EPSILON, "sinkhorn_epsilon"},
        {PROTOOD_BANK_SINKHORN_ITERS, "sinkhorn_iters"},
        {PROTOOD_BANK_TOPK, "topk"},
        {PROTOOD_BANK_LAMBDA_PCON, "lambda_pcon"},
        {PROTOOD_BANK_PCON_TEMPERATURE, "pcon_temperature"},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        ck_assert_int_eq(protood_bank_set_param(b, keys[k].key, tu_fixture_param(fx, keys[k].name)), PROTOOD_OK);
    float *p0 = tu_fixture_f32(fx, "prototypes_in.npy", &r, &c);
    ck_assert_int_eq(r, C * K);
    ck_assert_int_eq(c, D);
    ck_assert_int_eq(protood_bank_set_prototypes(b, p0), PROTOOD_OK);
    free(p0);
    *h = tu_fixture_f32(fx, "features.npy", &r, &c);
    ck_assert_int_eq(r, n);
    ck_assert_int_eq(c, D);
    *y = NULL;
    if (tu_fixture_param(fx, "supervised") != 0) {
        int64_t nl;
        *y = tu_fixture_i32(fx, "labels.npy", &nl);
        ck_assert_int_eq(nl, n);
    }
    *n_out = n;
    return b;
}

static void run_palm_case(const char *name)
{
    tu_fixture *fx = tu_fixture_load(name);
    int64_t n, r, c;
    float *h;
    int32_t *y;
    protood_bank *b = bank_from_fixture(fx, &n, &h, &y);
    int64_t P = b->n_protos, D = b->dim;
    protood_bank *twin;
    ck_assert_int_eq(protood_bank_clone(&twin, b), PROTOOD_OK);

    float *grad = malloc((size_t)(n * D) * sizeof *grad), *grad2 = malloc((size_t)(n * D) * sizeof *grad2);
    float *q1 = malloc((size_t)(n * P) * sizeof *q1), *a = malloc((size_t)(n * P) * sizeof *a);
    float *w = malloc((size_t)(n * P) * sizeof *w);
    double losses[3], losses2[3];
    pood_palm_trace tr = {q1, a, w};
    ck_assert_msg(pood_palm_step("test", b, n, h, y, losses, grad, &tr) == PROTOOD_OK, "%s", protood_last_error());

    static const char *loss_keys[3] = {"loss_total", "loss_mle", "loss_pcon"};
    for (int k = 0; k < 3; k++) {
        double want = tu_fixture_param(fx, loss_keys[k]);
        ck_assert_msg(fabs(losses[k] - want) <= 1e-5 * fabs(want) + (want == 0 ? 1e-12 : 0),
                      "%s: %s = %.12g, expected %.12g", name, loss_keys[k], losses[k], want);
    }
    double *g_want = tu_fixture_f64(fx, "grad.npy", &r, &c);
    ck_assert_int_eq(r * c, n * D);
    tu_assert_close_f32_f64(grad, g_want, (size_t)(n * D), 1e-4, "grad");
    float *pout = malloc((size_t)(P * D) * sizeof *pout);
    ck_assert_int_eq(protood_bank_get_prototypes(b, pout), PROTOOD_OK);
    double *p_want = tu_fixture_f64(fx, "prototypes_out.npy", &r, &c);
    ck_assert_int_eq(r * c, P * D);
    tu_assert_close_f32_f64(pout, p_want, (size_t)(P * D), 1e-4, "prototypes_out");
    static const char *mats[3] = {"sinkhorn_first.npy", "assign_update.npy", "assign_loss.npy"};
    float *got[3] = {q1, a, w};
    double errs[3];
    for (int k = 0; k < 3; k++) {
        double *want = tu_fixture_f64(fx, mats[k], &r, &c);
        ck_assert_int_eq(r, n);
        ck_assert_int_eq(c, P);
        tu_assert_close_f32_f64(got[k], want, (size_t)(n * P), 1e-4, mats[k]);
        errs[k] = tu_max_abs_err(got[k], want, (size_t)(n * P));
        free(want);
    }
    double lerr = 0;
    for (int k = 0; k < 3; k++) {
        double want = tu_fixture_param(fx, loss_keys[k]);
        if (want != 0 && fabs(losses[k] - want) / fabs(want) > lerr)
            lerr = fabs(losses[k] - want) / fabs(want);
    }
    printf("%-26s loss rel %.2e  grad %.2e  protos %.2e  q1 %.2e  A %.2e  W %.2e\n", name, lerr,
           tu_max_abs_err(grad, g_want, (size_t)(n * D)), tu_max_abs_err(pout, p_want, (size_t)(P * D)), errs[0], errs[1],
           errs[2]);

    /* the public entry point computes exactly the same, and the bank ends identical */
    ck_assert_int_eq(protood_palm_step(twin, n, h, y, losses2, grad2), PROTOOD_OK);
    ck_assert_mem_eq(losses, losses2, sizeof losses);
    ck_assert_mem_eq(grad, grad2, (size_t)(n * D) * sizeof *grad);
    ck_assert_mem_eq(b->protos, twin->protos, (size_t)(P * D) * sizeof(float));

    free(g_want);
    free(p_want);
    free(pout);
    free(grad);
    free(grad2);
    free(q1);
    free(a);
    free(w);
    free(h);
    free(y);
    protood_bank_free(b);
    protood_bank_free(twin);
    tu_fixture_free(fx);
}

START_TEST(case_palm_small) { run_palm_case("palm_small"); }
END_TEST
START_TEST(case_palm_no_pcon) { run_palm_case("palm_no_pcon"); }
END_TEST
START_TEST(case_palm_single_proto) { run_palm_case("palm_single_proto"); }
END_TEST
START_TEST(case_palm_all_protos_k0) { run_palm_case("palm_all_protos_k0"); }
END_TEST
START_TEST(case_palm_strong_ema) { run_palm_case("palm_strong_ema"); }
END_TEST
START_TEST(case_palm_sharp_sinkhorn) { run_palm_case("palm_sharp_sinkhorn"); }
END_TEST
START_TEST(case_palm_unsupervised) { run_palm_case("palm_unsupervised"); }
END_TEST
START_TEST(case_palm_unnormalised_inputs) { run_palm_case("palm_unnormalised_inputs"); }
END_TEST
START_TEST(case_palm_cifar_shape) { run_palm_case("palm_cifar_shape"); }
END_TEST

/* ---- against the float64 implementation of refsteps.c ------------------------------------ */

static unsigned lcg_state;
static double lcg_uniform(void)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (double)((lcg_state >> 8) & 0xffffff) / 16777216.0;
}

/* Random raw rows with norms between 0.3 and 3, so the chain through n2 matters. */
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

/* The library's step against the float64 implementation (refsteps.c), on random rows and
 * labels. Also checks that the contrastive loss's path through the EMA update is visible in the
 * gradient (so that dropping it would fail this test). */
static void check_against_reference(const tu_palm_params *rp, int64_t n, int supervised, unsigned seed)
{
    protood_bank *b = tu_palm_bank(rp, seed);
    float *h = random_rows(n, rp->D, seed);
    int32_t *y = NULL;
    if (supervised) {
        y = malloc((size_t)n * sizeof *y);
        for (int64_t i = 0; i < n; i++)
            y[i] = (int32_t)((i * 7 + seed) % (unsigned)rp->C);
    }
    tu_step_check c = tu_check_palm_step(rp, b, n, h, y);
    if (rp->lambda > 0 && rp->m <= 0.9)   /* at m = 0.999 the path is real but 1000x smaller */
        ck_assert_msg(c.path > 100 * 1e-4 * fmax(c.gmax, 1), "the EMA path (%.3g) is too small to be tested",
                      c.path);
    free(h);
    free(y);
    protood_bank_free(b);
}


START_TEST(gradient_supervised_sparse_support)
{
    /* P = 24, top-2 of 6: the scatter/gather route */
    tu_palm_params rp = {4, 6, 6, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 2};
    check_against_reference(&rp, 14, 1, 1);
}
END_TEST

START_TEST(gradient_supervised_dense_support)
{
    /* k = 0: every prototype of the class, A materialised for GEMMs */
    tu_palm_params rp = {3, 3, 5, 0.5, 0.1, 0.05, 1.5, 0.5, 3, 0};
    check_against_reference(&rp, 11, 1, 2);
}
END_TEST

START_TEST(gradient_unsupervised)
{
    tu_palm_params rp = {2, 5, 6, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 3};
    check_against_reference(&rp, 12, 0, 3);
}
END_TEST

START_TEST(gradient_large_topk_sorted_selection)
{
    /* supports of more than 16 entries are selected by sorting: unsupervised top-20 of 30, and
     * supervised top-18 of a class of 20 */
    tu_palm_params rp = {3, 10, 4, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 20};
    check_against_reference(&rp, 14, 0, 7);
    tu_palm_params rp2 = {2, 20, 4, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 18};
    check_against_reference(&rp2, 14, 1, 8);
}
END_TEST

START_TEST(gradient_single_row_batch)
{
    /* One row: Sinkhorn's column step makes every entry equal, so any top-k below the whole class
     * would be a choice among exact ties; k = 0 takes them all. */
    tu_palm_params rp = {2, 3, 5, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 0};
    check_against_reference(&rp, 1, 1, 9);
    check_against_reference(&rp, 1, 0, 10);
}
END_TEST

START_TEST(single_prototype_bank_has_no_contrastive_loss)
{
    /* P = 1: no other prototype to contrast with, so L_pcon = 0 (the reference's log of an empty
     * sum would be -inf), and L_mle = -(1/N) sum_i [L_i1 - L_i1] = 0 exactly: one prototype takes
     * all the weight and all the softmax */
    tu_palm_params rp = {1, 1, 4, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 5};
    protood_bank *b = tu_palm_bank(&rp, 12);
    float *h = random_rows(5, 4, 12), g[20];
    int32_t y[5] = {0, 0, 0, 0, 0};
    double l[3];
    for (int sup = 0; sup < 2; sup++) {
        ck_assert_int_eq(protood_palm_step(b, 5, h, sup ? y : NULL, l, g), PROTOOD_OK);
        ck_assert_double_eq(l[2], 0.0);
        ck_assert_double_eq_tol(l[1], 0.0, 1e-6);
        ck_assert_double_eq(l[0], l[1]);
        for (int k = 0; k < 20; k++)
            ck_assert_float_eq_tol(g[k], 0.0f, 1e-5f);
        double nrm = 0;
        for (int j = 0; j < 4; j++)
            nrm += (double)b->protos[j] * b->protos[j];
        ck_assert_double_eq_tol(nrm, 1.0, 1e-6);
    }
    free(h);
    protood_bank_free(b);
}
END_TEST

START_TEST(gradient_single_prototype_per_class)
{
    tu_palm_params rp = {5, 1, 4, 0.5, 0.2, 0.05, 1.0, 0.3, 2, 1};
    check_against_reference(&rp, 10, 1, 4);
}
END_TEST

START_TEST(gradient_log_domain_sinkhorn)
{
    /* eps = 0.002 puts both Sinkhorn passes on the log-domain route */
    tu_palm_params rp = {3, 4, 5, 0.5, 0.1, 0.002, 1.0, 0.5, 3, 2};
    check_against_reference(&rp, 12, 1, 5);
}
END_TEST

START_TEST(gradient_without_pcon_and_default_momentum)
{
    tu_palm_params rp = {3, 4, 5, 0.999, 0.1, 0.05, 0.0, 0.5, 3, 5};
    check_against_reference(&rp, 9, 1, 6);
    tu_palm_params rp2 = {3, 4, 5, 0.999, 0.1, 0.05, 1.0, 0.5, 3, 5};
    check_against_reference(&rp2, 9, 1, 6);
}
END_TEST

START_TEST(large_batch_threaded)
{
    /* above every threading threshold, sparse route, against the reference (no differences) */
    tu_palm_params rp = {12, 6, 16, 0.9, 0.1, 0.05, 1.0, 0.5, 3, 5};
    int64_t n = 200, P = rp.C * rp.K, D = rp.D;
    protood_bank *b = tu_palm_bank(&rp, 9);
    float *h = random_rows(n, D, 9), *p0 = malloc((size_t)(P * D) * sizeof *p0);
    int32_t *y = malloc((size_t)n * sizeof *y);
    for (int64_t i = 0; i < n; i++)
        y[i] = (int32_t)(i % rp.C);
    ck_assert_int_eq(protood_bank_get_prototypes(b, p0), PROTOOD_OK);
    double losses[3], want[3];
    float *grad = malloc((size_t)(n * D) * sizeof *grad);
    ck_assert_int_eq(protood_palm_step(b, n, h, y, losses, grad), PROTOOD_OK);
    double *hd = malloc((size_t)(n * D) * sizeof *hd), *pout = malloc((size_t)(P * D) * sizeof *pout);
    for (int64_t k = 0; k < n * D; k++)
        hd[k] = h[k];
    tu_ref_palm(&rp, n, hd, y, p0, want, pout, NULL, NULL);
    for (int k = 0; k < 3; k++)
        ck_assert_msg(fabs(losses[k] - want[k]) <= 1e-5 * fabs(want[k]), "loss[%d] = %.12g, reference %.12g", k,
                      losses[k], want[k]);
    tu_assert_close_f32_f64(b->protos, pout, (size_t)(P * D), 1e-5, "prototypes");
    free(hd);
    free(pout);
    free(grad);
    free(h);
    free(p0);
    free(y);
    protood_bank_free(b);
}
END_TEST

/* ---- outputs that may be NULL, unassigned prototypes, workspace reuse ------------------------ */

START_TEST(null_outputs_give_the_same_step)
{
    tu_palm_params rp = {3, 4, 8, 0.9, 0.1, 0.05, 1.0, 0.5, 3, 2};
    int64_t n = 16, P = 12, D = 8;
    protood_bank *b = tu_palm_bank(&rp, 21), *b1, *b2, *b3;
    ck_assert_int_eq(protood_bank_clone(&b1, b), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_clone(&b2, b), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_clone(&b3, b), PROTOOD_OK);
    float *h = random_rows(n, D, 21);
    int32_t y[16];
    for (int i = 0; i < 16; i++)
        y[i] = i % 3;
    double l0[3], l1[3];
    float g0[16 * 8], g2[16 * 8];
    ck_assert_int_eq(protood_palm_step(b, n, h, y, l0, g0), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b1, n, h, y, l1, NULL), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b2, n, h, y, NULL, g2), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_step(b3, n, h, y, NULL, NULL), PROTOOD_OK);
    for (int k = 0; k < 3; k++)
        ck_assert_double_eq_tol(l0[k], l1[k], 1e-12 * fabs(l0[k]) + 1e-15);
    ck_assert_mem_eq(g0, g2, sizeof g0);
    ck_assert_mem_eq(b->protos, b1->protos, (size_t)(P * D) * sizeof(float));
    ck_assert_mem_eq(b->protos, b2->protos, (size_t)(P * D) * sizeof(float));
    ck_assert_mem_eq(b->protos, b3->protos, (size_t)(P * D) * sizeof(float));
    free(h);
    protood_bank_free(b);
    protood_bank_free(b1);
    protood_bank_free(b2);
    protood_bank_free(b3);
}
END_TEST

START_TEST(classes_absent_from_the_batch_keep_their_prototypes)
{
    tu_palm_params rp = {4, 3, 8, 0.5, 0.1, 0.05, 1.0, 0.5, 3, 2};
    int64_t n = 10, D = 8, K = 3;
    protood_bank *b = tu_palm_bank(&rp, 31);
    float before[12 * 8];
    ck_assert_int_eq(protood_bank_get_prototypes(b, before), PROTOOD_OK);
    float *h = random_rows(n, D, 31);
    int32_t y[10];
    for (int i = 0; i < 10; i++)
        y[i] = i % 2 ? 1 : 3;   /* classes 0 and 2 absent */
    ck_assert_int_eq(protood_palm_step(b, n, h, y, NULL, NULL), PROTOOD_OK);
    for (int c = 0; c < 4; c++) {
        int same = memcmp(before + c * K * D, b->protos + c * K * D, (size_t)(K * D) * sizeof(float)) == 0;
        ck_assert_msg(same == (c == 0 || c == 2), "class %d: prototypes %s", c, same ? "unchanged" : "moved");
    }
    free(h);
    protood_bank_free(b);
}
END_TEST

START_TEST(steps_reuse_the_workspace)
{
    tu_palm_params rp = {5, 4, 16, 0.9, 0.1, 0.05, 1.0, 0.5, 3, 3};
    int64_t n = 40, D = 16;
    protood_bank *b = tu_palm_bank(&rp, 41);
    float *h = random_rows(n, D, 41), *g = malloc((size_t)(n * D) * sizeof *g);
    int32_t y[40];
    for (int i = 0; i < 40; i++)
        y[i] = i % 5;
    double l[3];
    ck_assert_int_eq(protood_palm_step(b, n, h, y, l, g), PROTOOD_OK);
    void *work = b->work;
    size_t size = b->work_size;
    ck_assert_ptr_nonnull(work);
    for (int r = 0; r < 3; r++) {
        ck_assert_int_eq(protood_palm_step(b, n, h, y, l, g), PROTOOD_OK);
        ck_assert_int_eq(protood_palm_step(b, n / 2, h, NULL, l, g), PROTOOD_OK);
    }
    ck_assert_ptr_eq(b->work, work);
    ck_assert_uint_eq(b->work_size, size);
    free(h);
    free(g);
    protood_bank_free(b);
}
END_TEST

/* ---- palm_assign ------------------------------------------------------------------------------ */

/* palm_assign on the bank before the step equals n1_rows(T ⊙ M ⊙ Q1) built in this test from the
 * case's own first Sinkhorn pass. */
static void check_assign_case(const char *name)
{
    tu_fixture *fx = tu_fixture_load(name);
    int64_t n, r, c;
    float *h;
    int32_t *y;
    protood_bank *b = bank_from_fixture(fx, &n, &h, &y);
    int64_t P = b->n_protos, K = b->protos_per_class;
    double *q1 = tu_fixture_f64(fx, "sinkhorn_first.npy", &r, &c);
    int64_t k = (int64_t)tu_fixture_param(fx, "topk"), cap = y ? K : P;
    if (k == 0 || k > cap)
        k = cap;
    double *want = calloc((size_t)(n * P), sizeof *want), *mass = malloc((size_t)n * sizeof *mass);
    for (int64_t i = 0; i < n; i++) {
        char *taken = calloc((size_t)P, 1);
        double sum = 0;
        for (int64_t t = 0; t < k; t++) {
            int64_t best = -1;
            for (int64_t j = 0; j < P; j++) {
                if (taken[j] || (y && j / K != y[i]))
                    continue;
                if (best < 0 || q1[i * P + j] > q1[i * P + best])
                    best = j;
            }
            taken[best] = 1;
            want[i * P + best] = q1[i * P + best];
            sum += q1[i * P + best];
        }
        for (int64_t j = 0; j < P; j++)
            want[i * P + j] /= fmax(sum, 1e-12);
        mass[i] = sum;
        free(taken);
    }
    float *got = malloc((size_t)(n * P) * sizeof *got), before[4096];
    ck_assert_int_le(P * b->dim, 4096);
    ck_assert_int_eq(protood_bank_get_prototypes(b, before), PROTOOD_OK);
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, got), PROTOOD_OK);
    tu_assert_close_f32_f64(got, want, (size_t)(n * P), 1e-4, "weights");
    ck_assert_mem_eq(before, b->protos, (size_t)(P * b->dim) * sizeof(float));
    for (int64_t i = 0; i < n; i++) { /* rows sum to 1 unless their support holds < 1e-12 of Q1 */
        double s = 0;
        for (int64_t j = 0; j < P; j++)
            s += got[i * P + j];
        if (mass[i] >= 1e-12)
            ck_assert_double_eq_tol(s, 1.0, 1e-5);
        else
            ck_assert_double_le(s, 1.0);
    }
    free(mass);
    free(q1);
    free(want);
    free(got);
    free(h);
    free(y);
    protood_bank_free(b);
    tu_fixture_free(fx);
}

START_TEST(assign_matches_first_pass_of_reference_cases)
{
    check_assign_case("palm_small");
    check_assign_case("palm_unsupervised");
    check_assign_case("palm_all_protos_k0");
    check_assign_case("palm_sharp_sinkhorn");
}
END_TEST

/* ---- bad input: status, message, bank and outputs untouched ----------------------------------- */

static void expect_palm_error(protood_bank *b, int64_t n, const float *h, const int32_t *y, protood_status want,
                              const char *needle)
{
    int64_t P = b->n_protos, D = b->dim;
    protood_bank *copy;
    ck_assert_int_eq(protood_bank_clone(&copy, b), PROTOOD_OK);
    float *before = malloc((size_t)(P * D) * sizeof *before), *after = malloc((size_t)(P * D) * sizeof *after);
    ck_assert_int_eq(protood_bank_get_prototypes(b, before), PROTOOD_OK);
    double losses[3] = {-1, -2, -3};
    float grad[64], weights[256];
    for (int k = 0; k < 64; k++)
        grad[k] = 42.0f;
    for (int k = 0; k < 256; k++)
        weights[k] = 42.0f;
    ck_assert_int_eq(protood_palm_step(b, n, h, y, losses, grad), want);
    ck_assert_msg(strstr(protood_last_error(), needle) != NULL, "message '%s' lacks '%s'", protood_last_error(),
                  needle);
    ck_assert_msg(strncmp(protood_last_error(), "protood_palm_step: ", 19) == 0, "'%s'", protood_last_error());
    ck_assert_int_eq(protood_palm_assign(b, n, h, y, weights), want);
    ck_assert_msg(strstr(protood_last_error(), needle) != NULL, "message '%s' lacks '%s'", protood_last_error(),
                  needle);
    ck_assert_msg(strncmp(protood_last_error(), "protood_palm_assign: ", 21) == 0, "'%s'", protood_last_error());
    ck_assert_int_eq(protood_bank_get_prototypes(b, after), PROTOOD_OK);
    ck_assert_mem_eq(before, after, (size_t)(P * D) * sizeof *before);
    ck_assert_mem_eq(copy->params, b->params, sizeof b->params);
    ck_assert(losses[0] == -1 && losses[1] == -2 && losses[2] == -3);
    for (int k = 0; k < 64; k++)
        ck_assert(grad[k] == 42.0f);
    for (int k = 0; k < 256; k++)
        ck_assert(weights[k] == 42.0f);
    free(before);
    free(after);
    protood_bank_free(copy);
}

START_TEST(bad_input_is_rejected_and_changes_nothing)
{
    protood_bank *b;
    ck_assert_int_eq(protood_bank_create(&b, 4, 3, 4), PROTOOD_OK);
    ck_assert_int_eq(protood_bank_set_param(b, PROTOOD_BANK_MOMENTUM, 0.5), PROTOOD_OK);
    float *h = random_rows(6, 4, 51);
    int32_t y[6] = {0, 1, 2, 3, 0, 1};
    /* a successful step first, so the workspace exists and a failing call could dirty it */
    ck_assert_int_eq(protood_palm_step(b, 6, h, y, NULL, NULL), PROTOOD_OK);

    expect_palm_error(b, 0, h, y, PROTOOD_E_INVALID_ARG, "n = 0");
    expect_palm_error(b, -5, h, y, PROTOOD_E_INVALID_ARG, "n = -5");
    expect_palm_error(b, 6, NULL, y, PROTOOD_E_INVALID_ARG, "h is NULL");
    h[2 * 4 + 3] = NAN;
    expect_palm_error(b, 6, h, y, PROTOOD_E_NONFINITE, "h[2][3] = nan");
    h[2 * 4 + 3] = 0.5f;
    h[5 * 4 + 0] = -INFINITY;
    expect_palm_error(b, 6, h, y, PROTOOD_E_NONFINITE, "h[5][0] = -inf");
    expect_palm_error(b, 6, h, NULL, PROTOOD_E_NONFINITE, "h[5][0] = -inf");
    h[5 * 4 + 0] = 0.25f;
    for (int j = 0; j < 4; j++)
        h[1 * 4 + j] = 0.0f;
    expect_palm_error(b, 6, h, y, PROTOOD_E_NONFINITE, "h row 1 is all zeros");
    h[1 * 4 + 2] = 1e-30f;   /* tiny but not zero: accepted */
    y[3] = 4;
    expect_palm_error(b, 6, h, y, PROTOOD_E_LABEL, "labels[3] = 4 outside [0, 4)");
    y[3] = -1;
    expect_palm_error(b, 6, h, y, PROTOOD_E_LABEL, "labels[3] = -1 outside [0, 4)");
    y[3] = 3;
    ck_assert_int_eq(protood_palm_step(NULL, 6, h, y, NULL, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_palm_step: bank is NULL");
    float w[6 * 12];
    ck_assert_int_eq(protood_palm_assign(NULL, 6, h, y, w), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_palm_assign: bank is NULL");
    ck_assert_int_eq(protood_palm_assign(b, 6, h, y, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_palm_assign: weights_out is NULL");
    /* a tiny row is accepted and gives finite results */
    double l[3];
    float g[6 * 4];
    ck_assert_int_eq(protood_palm_step(b, 6, h, y, l, g), PROTOOD_OK);
    for (int k = 0; k < 3; k++)
        ck_assert(isfinite(l[k]));
    free(h);
    protood_bank_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("palm");
    TCase *tc = tcase_create("reference_cases");
    tcase_add_test(tc, case_palm_small);
    tcase_add_test(tc, case_palm_no_pcon);
    tcase_add_test(tc, case_palm_single_proto);
    tcase_add_test(tc, case_palm_all_protos_k0);
    tcase_add_test(tc, case_palm_strong_ema);
    tcase_add_test(tc, case_palm_sharp_sinkhorn);
    tcase_add_test(tc, case_palm_unsupervised);
    tcase_add_test(tc, case_palm_unnormalised_inputs);
    tcase_add_test(tc, case_palm_cifar_shape);
    suite_add_tcase(s, tc);
    TCase *tg = tcase_create("gradient");
    tcase_add_test(tg, gradient_supervised_sparse_support);
    tcase_add_test(tg, gradient_supervised_dense_support);
    tcase_add_test(tg, gradient_unsupervised);
    tcase_add_test(tg, gradient_large_topk_sorted_selection);
    tcase_add_test(tg, gradient_single_prototype_per_class);
    tcase_add_test(tg, gradient_single_row_batch);
    tcase_add_test(tg, single_prototype_bank_has_no_contrastive_loss);
    tcase_add_test(tg, gradient_log_domain_sinkhorn);
    tcase_add_test(tg, gradient_without_pcon_and_default_momentum);
    tcase_add_test(tg, large_batch_threaded);
    suite_add_tcase(s, tg);
    TCase *tb = tcase_create("behaviour");
    tcase_add_test(tb, null_outputs_give_the_same_step);
    tcase_add_test(tb, classes_absent_from_the_batch_keep_their_prototypes);
    tcase_add_test(tb, steps_reuse_the_workspace);
    tcase_add_test(tb, assign_matches_first_pass_of_reference_cases);
    tcase_add_test(tb, bad_input_is_rejected_and_changes_nothing);
    suite_add_tcase(s, tb);
    return tu_run_suite(s);
}
