/* The error model and version functions of API.md. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(status_strings_are_distinct_and_never_null)
{
    static const protood_status codes[] = {
        PROTOOD_OK,         PROTOOD_E_INVALID_ARG, PROTOOD_E_NOMEM,    PROTOOD_E_SHAPE,
        PROTOOD_E_STATE,    PROTOOD_E_NONFINITE,   PROTOOD_E_LABEL,    PROTOOD_E_IO,
        PROTOOD_E_FORMAT,   PROTOOD_E_CALLBACK,    PROTOOD_E_UNSUPPORTED, PROTOOD_E_INTERNAL,
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        const char *s = protood_status_string(codes[i]);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, "unknown status");
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(s, protood_status_string(codes[j]));
    }
    ck_assert_str_eq(protood_status_string(PROTOOD_OK), "ok");
    ck_assert_str_eq(protood_status_string(-12345), "unknown status");
    ck_assert_str_eq(protood_status_string(7), "unknown status");
}
END_TEST

START_TEST(status_values_are_the_contract)
{
    /* API.md fixes these numbers; bindings hard-code them. */
    ck_assert_int_eq(PROTOOD_OK, 0);
    ck_assert_int_eq(PROTOOD_E_INVALID_ARG, -1);
    ck_assert_int_eq(PROTOOD_E_NOMEM, -2);
    ck_assert_int_eq(PROTOOD_E_SHAPE, -3);
    ck_assert_int_eq(PROTOOD_E_STATE, -4);
    ck_assert_int_eq(PROTOOD_E_NONFINITE, -5);
    ck_assert_int_eq(PROTOOD_E_LABEL, -6);
    ck_assert_int_eq(PROTOOD_E_IO, -7);
    ck_assert_int_eq(PROTOOD_E_FORMAT, -8);
    ck_assert_int_eq(PROTOOD_E_CALLBACK, -9);
    ck_assert_int_eq(PROTOOD_E_UNSUPPORTED, -10);
    ck_assert_int_eq(PROTOOD_E_INTERNAL, -99);
}
END_TEST

START_TEST(last_error_names_function_argument_and_value)
{
    ck_assert_int_eq(protood_npy_read_f32("x.npy", -3, 2, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_npy_read_f32: rows = -3 is negative");
    /* A later success does not clear it. */
    ck_assert_int_eq(protood_version_number() > 0, 1);
    ck_assert_str_eq(protood_last_error(), "protood_npy_read_f32: rows = -3 is negative");
}
END_TEST

static void *fail_in_thread(void *arg)
{
    (void)arg;
    char *seen = malloc(1024);
    seen[0] = '\0';
    /* A fresh thread starts with no error, whatever other threads did. */
    strcat(seen, protood_last_error());
    strcat(seen, "|");
    protood_npy_write_f32(NULL, 1, 1, NULL);
    strcat(seen, protood_last_error());
    return seen;
}

START_TEST(last_error_is_per_thread)
{
    ck_assert_int_eq(protood_npy_info(NULL, NULL, NULL, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_str_eq(protood_last_error(), "protood_npy_info: path is NULL");
    pthread_t t;
    void *seen;
    ck_assert_int_eq(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
    ck_assert_int_eq(pthread_join(t, &seen), 0);
    ck_assert_str_eq((char *)seen, "|protood_npy_write_f32: path is NULL");
    ck_assert_str_eq(protood_last_error(), "protood_npy_info: path is NULL");
    free(seen);
}
END_TEST

START_TEST(long_messages_are_truncated_safely)
{
    char path[4000];
    memset(path, 'a', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    ck_assert_int_eq(protood_npy_info(path, NULL, NULL, NULL), PROTOOD_E_IO);
    const char *msg = protood_last_error();
    ck_assert_int_lt(strlen(msg), 1024);
    ck_assert_int_eq(strncmp(msg, "protood_npy_info: path 'aaaa", 28), 0);
}
END_TEST

START_TEST(versions_agree)
{
    ck_assert_uint_eq(protood_version_number(), PROTOOD_VERSION_NUMBER);
    ck_assert_uint_eq(protood_version_number(), 200); /* 0.2.0 */
    ck_assert_str_eq(protood_version_string(), PROTOOD_VERSION_STRING);
    ck_assert_str_eq(protood_version_string(), "0.2.0");
    ck_assert_uint_eq(protood_abi_version(), PROTOOD_ABI_VERSION);
    ck_assert_uint_eq(protood_abi_version(), 0);
    char expect[32];
    snprintf(expect, sizeof expect, "%d.%d.%d", PROTOOD_VERSION_MAJOR, PROTOOD_VERSION_MINOR,
             PROTOOD_VERSION_PATCH);
    ck_assert_str_eq(protood_version_string(), expect);
}
END_TEST

START_TEST(build_info_describes_the_build)
{
    const char *info = protood_build_info();
    ck_assert_ptr_nonnull(info);
    ck_assert_int_eq(strncmp(info, "version=0.2.0;abi=0;blas=", 25), 0);
    const char *expected_blas = getenv("PROTOOD_EXPECT_BLAS");
    ck_assert_msg(expected_blas && *expected_blas, "PROTOOD_EXPECT_BLAS not set by meson");
    ck_assert_int_eq(strncmp(info + 25, expected_blas, strlen(expected_blas)), 0);
    ck_assert_ptr_nonnull(strstr(info, ";openmp="));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, status_strings_are_distinct_and_never_null);
    tcase_add_test(tc, status_values_are_the_contract);
    tcase_add_test(tc, last_error_names_function_argument_and_value);
    tcase_add_test(tc, last_error_is_per_thread);
    tcase_add_test(tc, long_messages_are_truncated_safely);
    suite_add_tcase(s, tc);
    tc = tcase_create("version");
    tcase_add_test(tc, versions_agree);
    tcase_add_test(tc, build_info_describes_the_build);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
