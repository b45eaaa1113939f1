/* protood_set_threads reaches OpenMP and the BLAS actually linked. */
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(PROTOOD_BLAS_OPENBLAS)
#include <cblas.h>
#elif defined(PROTOOD_BLAS_BLIS)
#include <blis.h>
#endif

#include "testutil.h"

START_TEST(rejects_fewer_than_one)
{
    ck_assert_int_eq(protood_set_threads(0), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_set_threads: n = 0, must be >= 1");
    ck_assert_int_eq(protood_set_threads(-3), PROTOOD_E_INVALID_ARG);
}
END_TEST

START_TEST(sets_openmp_and_blas)
{
    for (int n = 1; n <= 3; n++) {
        ck_assert_int_eq(protood_set_threads(n), PROTOOD_OK);
#ifdef _OPENMP
        ck_assert_int_eq(omp_get_max_threads(), n);
#endif
#if defined(PROTOOD_BLAS_OPENBLAS)
        ck_assert_int_eq(openblas_get_num_threads(), n);
#elif defined(PROTOOD_BLAS_BLIS)
        ck_assert_int_eq((int)bli_thread_get_num_threads(), n);
#endif
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = tcase_create("threads");
    tcase_add_test(tc, rejects_fewer_than_one);
    tcase_add_test(tc, sets_openmp_and_blas);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
