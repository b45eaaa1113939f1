/* .npy reading and writing: files from real NumPy in every supported layout, round trips,
 * atomic writes, and every malformed-file case with its status. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static const char *samples_dir(void)
{
    const char *d = getenv("PROTOOD_NPY_SAMPLES");
    ck_assert_msg(d && *d, "PROTOOD_NPY_SAMPLES is not set (meson test sets it)");
    return d;
}

static char *sample(const char *name)
{
    return tu_path(samples_dir(), name);
}

/* The values tests/make_npy_samples.py wrote, computed here independently. */
static double expected_value(const char *code, int i, int j)
{
    int k = 5 * i + j;
    return code[0] == 'f' ? k * 0.5 - 3.0 : k * 7.0 - 40.0;
}

static const char *codes[] = {"f4", "f8", "f2", "i4", "i8"};
static const int32_t code_dtypes[] = {PROTOOD_DTYPE_F32, PROTOOD_DTYPE_F64, PROTOOD_DTYPE_F16, PROTOOD_DTYPE_I32,
                                      PROTOOD_DTYPE_I64};

START_TEST(reads_every_numpy_layout)
{
    static const char *endians[] = {"le", "be"};
    static const char *orders[] = {"C", "F"};
    int files = 0;
    for (int c = 0; c < 5; c++)
        for (int e = 0; e < 2; e++)
            for (int o = 0; o < 2; o++)
                for (int v = 1; v <= 3; v++) {
                    char name[64];
                    snprintf(name, sizeof name, "a_%s_%s_%s_v%d.npy", codes[c], endians[e], orders[o], v);
                    char *path = sample(name);
                    int32_t dtype = 0;
                    int64_t rows = 0, cols = 0;
                    ck_assert_msg(protood_npy_info(path, &dtype, &rows, &cols) == PROTOOD_OK, "%s: %s", name,
                                  protood_last_error());
                    ck_assert_int_eq(dtype, code_dtypes[c]);
                    ck_assert_int_eq(rows, 3);
                    ck_assert_int_eq(cols, 5);
                    float f[15];
                    double d[15];
                    ck_assert_msg(protood_npy_read_f32(path, 3, 5, f) == PROTOOD_OK, "%s: %s", name,
                                  protood_last_error());
                    ck_assert_msg(protood_npy_read_f64(path, 3, 5, d) == PROTOOD_OK, "%s: %s", name,
                                  protood_last_error());
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 5; j++) {
                            double want = expected_value(codes[c], i, j);
                            ck_assert_msg(f[i * 5 + j] == (float)want, "%s f32 [%d,%d] = %g, want %g", name, i, j,
                                          (double)f[i * 5 + j], want);
                            ck_assert_msg(d[i * 5 + j] == want, "%s f64 [%d,%d] = %g, want %g", name, i, j,
                                          d[i * 5 + j], want);
                        }
                    free(path);
                    files++;
                }
    ck_assert_int_eq(files, 60);
}
END_TEST

START_TEST(reads_one_dimensional_files_and_labels)
{
    for (int c = 0; c < 5; c++)
        for (int e = 0; e < 2; e++) {
            char name[64];
            snprintf(name, sizeof name, "v_%s_%s.npy", codes[c], e ? "be" : "le");
            char *path = sample(name);
            int64_t rows, cols;
            ck_assert_int_eq(protood_npy_info(path, NULL, &rows, &cols), PROTOOD_OK);
            ck_assert_int_eq(rows, 15);
            ck_assert_int_eq(cols, 1);
            float f[15];
            ck_assert_int_eq(protood_npy_read_f32(path, 15, 1, f), PROTOOD_OK);
            for (int k = 0; k < 15; k++)
                ck_assert(f[k] == (float)expected_value(codes[c], k / 5, k % 5));
            int32_t lab[15];
            protood_status st = protood_npy_read_i32(path, 15, lab);
            if (codes[c][0] == 'i') {
                ck_assert_msg(st == PROTOOD_OK, "%s: %s", name, protood_last_error());
                for (int k = 0; k < 15; k++)
                    ck_assert_int_eq(lab[k], 7 * k - 40);
            } else {
                ck_assert_int_eq(st, PROTOOD_E_FORMAT);
                ck_assert_ptr_nonnull(strstr(protood_last_error(), "labels must be int32 or int64"));
            }
            free(path);
        }
}
END_TEST

START_TEST(rejects_what_numpy_writes_but_we_do_not_read)
{
    static const struct {
        const char *file, *message;
    } cases[] = {
        {"bad_object.npy", "object arrays"},   {"bad_structured.npy", "structured arrays"},
        {"bad_3d.npy", "3-dimensional"},       {"bad_0d.npy", "0-dimensional"},
        {"bad_u1.npy", "dtype '|u1' not supported"}, {"bad_c8.npy", "dtype '<c8' not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = sample(cases[i].file);
        int64_t rows = -5;
        ck_assert_int_eq(protood_npy_info(path, NULL, &rows, NULL), PROTOOD_E_FORMAT);
        ck_assert_int_eq(rows, -5); /* outputs untouched on failure */
        ck_assert_msg(strstr(protood_last_error(), cases[i].message), "%s: message '%s' lacks '%s'",
                      cases[i].file, protood_last_error(), cases[i].message);
        ck_assert_ptr_nonnull(strstr(protood_last_error(), "protood_npy_info"));
        free(path);
    }
}
END_TEST

START_TEST(range_checked_conversions)
{
    char *path = sample("bad_i8_range.npy");
    int32_t lab[3] = {11, 22, 33};
    ck_assert_int_eq(protood_npy_read_i32(path, 3, lab), PROTOOD_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "1099511627776"));
    ck_assert_int_eq(lab[0], 11); /* nothing written */
    free(path);

    path = sample("bad_f8_range.npy");
    float f[2] = {7, 7};
    ck_assert_int_eq(protood_npy_read_f32(path, 2, 1, f), PROTOOD_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "outside the float32 range"));
    ck_assert(f[0] == 7 && f[1] == 7);
    double d[2];
    ck_assert_int_eq(protood_npy_read_f64(path, 2, 1, d), PROTOOD_OK);
    ck_assert(d[1] == 1e300);
    free(path);
}
END_TEST

/* Found while writing the fuzz target's independent decoder (tests/fuzz/fuzz_npy.c): int64 went
 * through float64 on its way to float32, and 2^62 + 2^38 + 1, just above the midpoint between two
 * floats, became 2^62 + 2^38 (the midpoint) and then 2^62 by ties-to-even, instead of the nearest
 * float 2^62 + 2^39. */
START_TEST(int64_converts_to_the_nearest_float32)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "big.npy");
    static const char dict[] = "{'descr': '<i8', 'fortran_order': False, 'shape': (6,), }\n";
    const int64_t v[6] = {(INT64_C(1) << 62) + (INT64_C(1) << 38) + 1, -((INT64_C(1) << 62) + (INT64_C(1) << 38) + 1),
                          INT64_MAX, INT64_MIN,
                          /* exact midpoints: ties go to the even neighbour */
                          (INT64_C(1) << 62) + (INT64_C(1) << 38), (INT64_C(1) << 62) + 3 * (INT64_C(1) << 38)};
    unsigned char buf[256];
    size_t n = strlen(dict);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)n;
    buf[9] = 0;
    memcpy(buf + 10, dict, n);
    for (int i = 0; i < 6; i++)
        for (int b = 0; b < 8; b++) /* little-endian whatever the host */
            buf[10 + n + 8 * (size_t)i + (size_t)b] = (unsigned char)((uint64_t)v[i] >> (8 * b));
    tu_write_bytes(path, buf, 10 + n + 48);
    float f[6];
    ck_assert_int_eq(protood_npy_read_f32(path, 6, 1, f), PROTOOD_OK);
    ck_assert(f[0] == 0x1.000002p62f);   /* 2^62 + 2^39 */
    ck_assert(f[1] == -0x1.000002p62f);
    ck_assert(f[2] == 0x1p63f);
    ck_assert(f[3] == -0x1p63f);
    ck_assert(f[4] == 0x1p62f);          /* 2^62 (even) rather than 2^62 + 2^39 */
    ck_assert(f[5] == 0x1.000004p62f);   /* 2^62 + 2^40 (even) rather than 2^62 + 2^39 */
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(empty_array)
{
    char *path = sample("empty_f4.npy");
    int64_t rows, cols;
    ck_assert_int_eq(protood_npy_info(path, NULL, &rows, &cols), PROTOOD_OK);
    ck_assert_int_eq(rows, 0);
    ck_assert_int_eq(cols, 7);
    ck_assert_int_eq(protood_npy_read_f32(path, 0, 7, NULL), PROTOOD_OK);
    free(path);
}
END_TEST

START_TEST(shape_and_argument_errors)
{
    char *path = sample("a_f4_le_C_v1.npy");
    float f[15];
    ck_assert_int_eq(protood_npy_read_f32(path, 5, 3, f), PROTOOD_E_SHAPE);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "file holds 3 x 5, caller expects 5 x 3"));
    ck_assert_int_eq(protood_npy_read_f32(path, 3, 5, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "out is NULL"));
    ck_assert_int_eq(protood_npy_read_f32(NULL, 3, 5, f), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "path is NULL"));
    ck_assert_int_eq(protood_npy_read_f32(path, -1, 5, f), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "rows = -1"));
    int32_t lab[15];
    ck_assert_int_eq(protood_npy_read_i32(path, 15, lab), PROTOOD_E_SHAPE); /* 3 x 5 is not a label vector */
    ck_assert_int_eq(protood_npy_info(NULL, NULL, NULL, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_npy_info("/nonexistent/dir/x.npy", NULL, NULL, NULL), PROTOOD_E_IO);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "/nonexistent/dir/x.npy"));
    ck_assert_int_eq(protood_npy_info("/", NULL, NULL, NULL), PROTOOD_E_IO);
    free(path);
}
END_TEST

/* ---- writes ----------------------------------------------------------------------------- */

START_TEST(write_read_round_trip)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "m.npy");
    float m[6 * 7];
    for (int i = 0; i < 42; i++)
        m[i] = sinf((float)i) * 1e3f;
    m[5] = NAN;
    m[6] = -INFINITY;
    ck_assert_int_eq(protood_npy_write_f32(path, 6, 7, m), PROTOOD_OK);
    int32_t dtype;
    int64_t rows, cols;
    ck_assert_int_eq(protood_npy_info(path, &dtype, &rows, &cols), PROTOOD_OK);
    ck_assert_int_eq(dtype, PROTOOD_DTYPE_F32);
    ck_assert_int_eq(rows, 6);
    ck_assert_int_eq(cols, 7);
    float back[42];
    ck_assert_int_eq(protood_npy_read_f32(path, 6, 7, back), PROTOOD_OK);
    ck_assert_mem_eq(back, m, sizeof m); /* bit-exact, NaN included */

    size_t size;
    unsigned char *bytes = tu_read_bytes(path, &size);
    ck_assert_uint_eq(size, 128 + sizeof m); /* header padded to 64 bytes, as numpy.save does */
    ck_assert_mem_eq(bytes, "\x93NUMPY\x01\x00", 8);
    ck_assert_int_eq(bytes[127], '\n');
    free(bytes);

    char *vpath = tu_path(dir, "v.npy");
    ck_assert_int_eq(protood_npy_write_f32_vector(vpath, 4, m), PROTOOD_OK);
    ck_assert_int_eq(protood_npy_info(vpath, NULL, &rows, &cols), PROTOOD_OK);
    ck_assert_int_eq(rows, 4);
    ck_assert_int_eq(cols, 1);

    char *lpath = tu_path(dir, "l.npy");
    const int32_t lab[3] = {0, -1, 2147483647};
    int32_t lback[3];
    ck_assert_int_eq(protood_npy_write_i32(lpath, 3, lab), PROTOOD_OK);
    ck_assert_int_eq(protood_npy_read_i32(lpath, 3, lback), PROTOOD_OK);
    ck_assert_mem_eq(lback, lab, sizeof lab);
    tu_rmtree(dir);
    free(path);
    free(vpath);
    free(lpath);
    free(dir);
}
END_TEST

START_TEST(write_is_atomic_and_leaves_old_file_on_failure)
{
    char *dir = tu_mkdtemp();
    char *path = tu_path(dir, "keep.npy");
    const float a[2] = {1, 2};
    ck_assert_int_eq(protood_npy_write_f32(path, 1, 2, a), PROTOOD_OK);
    size_t before_size;
    unsigned char *before = tu_read_bytes(path, &before_size);

    /* A failing write (here: invalid arguments, then an unwritable directory) never touches it. */
    ck_assert_int_eq(protood_npy_write_f32(path, 1, 0, a), PROTOOD_E_INVALID_ARG);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "cols = 0"));
    ck_assert_int_eq(protood_npy_write_f32(path, 2, 2, NULL), PROTOOD_E_INVALID_ARG);
    ck_assert_int_eq(protood_npy_write_f32(path, INT64_MAX, 2, a), PROTOOD_E_SHAPE);
    if (geteuid() != 0) { /* root ignores directory permissions */
        ck_assert_int_eq(chmod(dir, 0500), 0);
        ck_assert_int_eq(protood_npy_write_f32(path, 1, 2, a), PROTOOD_E_IO);
        ck_assert_int_eq(chmod(dir, 0700), 0);
    }
    ck_assert_int_eq(protood_npy_write_f32("/nonexistent/dir/x.npy", 1, 2, a), PROTOOD_E_IO);
    ck_assert_ptr_nonnull(strstr(protood_last_error(), "/nonexistent/dir/x.npy"));

    size_t after_size;
    unsigned char *after = tu_read_bytes(path, &after_size);
    ck_assert_uint_eq(after_size, before_size);
    ck_assert_mem_eq(after, before, before_size);

    /* Replacing works and leaves no temporary file behind. */
    const float b[4] = {3, 4, 5, 6};
    ck_assert_int_eq(protood_npy_write_f32(path, 2, 2, b), PROTOOD_OK);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(before);
    free(after);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

/* ---- malformed files -------------------------------------------------------------------- */

/* A valid version-1.0 file of 2 x 3 little-endian float32, built byte by byte. */
static size_t valid_file(unsigned char *buf, const char *dict)
{
    size_t n = strlen(dict);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(n & 0xff);
    buf[9] = (unsigned char)(n >> 8);
    memcpy(buf + 10, dict, n);
    for (int i = 0; i < 6; i++) {
        float v = (float)i;
        memcpy(buf + 10 + n + 4 * i, &v, 4);
    }
    return 10 + n + 24;
}

static const char *GOOD_DICT = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n";

static void expect_format_error(const char *dir, const unsigned char *bytes, size_t size, const char *message,
                                const char *label)
{
    char *path = tu_path(dir, "bad.npy");
    tu_write_bytes(path, bytes, size);
    int32_t dtype = 99;
    ck_assert_msg(protood_npy_info(path, &dtype, NULL, NULL) == PROTOOD_E_FORMAT, "%s: info accepted it", label);
    ck_assert_int_eq(dtype, 99);
    if (message)
        ck_assert_msg(strstr(protood_last_error(), message), "%s: message '%s' lacks '%s'", label,
                      protood_last_error(), message);
    ck_assert_msg(strstr(protood_last_error(), path), "%s: message does not name the file", label);
    float out[6] = {42, 42, 42, 42, 42, 42};
    ck_assert_msg(protood_npy_read_f32(path, 2, 3, out) == PROTOOD_E_FORMAT, "%s: read accepted it", label);
    for (int i = 0; i < 6; i++)
        ck_assert(out[i] == 42);
    free(path);
}

START_TEST(valid_handmade_file_is_read)
{
    char *dir = tu_mkdtemp();
    unsigned char buf[512];
    size_t n = valid_file(buf, GOOD_DICT);
    char *path = tu_path(dir, "ok.npy");
    tu_write_bytes(path, buf, n);
    float out[6];
    ck_assert_int_eq(protood_npy_read_f32(path, 2, 3, out), PROTOOD_OK);
    for (int i = 0; i < 6; i++)
        ck_assert(out[i] == (float)i);
    tu_rmtree(dir);
    free(path);
    free(dir);
}
END_TEST

START_TEST(every_truncation_is_a_format_error)
{
    char *dir = tu_mkdtemp();
    unsigned char buf[512];
    size_t n = valid_file(buf, GOOD_DICT);
    for (size_t len = 0; len < n; len++) {
        char label[48];
        snprintf(label, sizeof label, "truncated to %zu", len);
        expect_format_error(dir, buf, len, NULL, label);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(malformed_headers)
{
    char *dir = tu_mkdtemp();
    unsigned char buf[1024];
    size_t n;
    static const struct {
        const char *dict, *message;
    } dicts[] = {
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 3), }\n", "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 3), }\n", "overflows int64"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4, 3), }\n", "truncated data"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3), }\n", "unexpected bytes after the data"},
        {"{'descr': '<q9', 'fortran_order': False, 'shape': (2, 3), }\n", "dtype '<q9' not supported"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }\n", "object arrays"},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 3), }\n", "not a bool"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3], }\n", "not a tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3), }\n", "malformed 'shape'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}\n", "header key 'extra'"},
        {"{'descr': '<f4', 'descr': '<f4', 'shape': (2, 3), }\n", "repeated header key 'descr'"},
        {"{'descr': '<f4', 'shape': (2, 3), }\n", "lacks 'fortran_order'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } junk\n", "after the header dictionary"},
        {"['descr', '<f4']\n", "not a dictionary"},
        {"{'descr': <f4, 'fortran_order': False, 'shape': (2, 3), }\n", "not a string"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3), }\n", "malformed header dictionary"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), \n", "malformed header dictionary"},
    };
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        n = valid_file(buf, dicts[i].dict);
        expect_format_error(dir, buf, n, dicts[i].message, dicts[i].dict);
    }

    n = valid_file(buf, GOOD_DICT);
    buf[0] = 0x92;
    expect_format_error(dir, buf, n, "bad magic", "bad magic");

    n = valid_file(buf, GOOD_DICT);
    buf[6] = 4;
    expect_format_error(dir, buf, n, "format version 4.0", "version 4.0");
    buf[6] = 0;
    expect_format_error(dir, buf, n, "format version 0.0", "version 0.0");

    n = valid_file(buf, GOOD_DICT);
    buf[8] = 0xff;
    buf[9] = 0x7f;
    expect_format_error(dir, buf, n, "beyond the end of the file", "header length beyond file");

    /* Version 2.0 with a four-byte header length of 4 GiB - 1. */
    unsigned char v2[64] = "\x93NUMPY\x02\x00\xff\xff\xff\xff{}";
    expect_format_error(dir, v2, 14, "beyond the end of the file", "v2 header length");

    n = valid_file(buf, GOOD_DICT);
    buf[20] = '\0';
    expect_format_error(dir, buf, n, "NUL byte", "NUL in header");

    expect_format_error(dir, (const unsigned char *)"", 0, "bad magic", "empty file");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *npy_suite(void)
{
    Suite *s = suite_create("npy");
    TCase *tc = tcase_create("numpy-files");
    tcase_add_test(tc, reads_every_numpy_layout);
    tcase_add_test(tc, reads_one_dimensional_files_and_labels);
    tcase_add_test(tc, rejects_what_numpy_writes_but_we_do_not_read);
    tcase_add_test(tc, range_checked_conversions);
    tcase_add_test(tc, int64_converts_to_the_nearest_float32);
    tcase_add_test(tc, empty_array);
    tcase_add_test(tc, shape_and_argument_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("writes");
    tcase_add_test(tc, write_read_round_trip);
    tcase_add_test(tc, write_is_atomic_and_leaves_old_file_on_failure);
    suite_add_tcase(s, tc);
    tc = tcase_create("malformed");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, valid_handmade_file_is_read);
    tcase_add_test(tc, every_truncation_is_a_format_error);
    tcase_add_test(tc, malformed_headers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(npy_suite());
}
