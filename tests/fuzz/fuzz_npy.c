/* Fuzz target: the .npy reader (protood_npy_info, _read_f32, _read_f64, _read_i32) on any bytes.
 *
 * Invariants beyond "no crash": a rejected file is E_FORMAT with a message naming the function
 * and the outputs untouched; an accepted header describes exactly the bytes present; the three
 * readers agree with each other value for value, and each rejects or accepts exactly what its
 * documented conversion rules say. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static const protood_status FORMAT_ONLY[] = {PROTOOD_E_FORMAT, PROTOOD_OK};

/* Every supported dtype converts to float64 exactly, except int64 beyond 2^53 (rounded): the
 * reference for the other two readers. */
static void check_values(const char *path, int32_t dtype, int64_t rows, int64_t cols)
{
    size_t count = (size_t)rows * (size_t)cols;
    double *d = malloc((count ? count : 1) * sizeof *d);
    float *f = malloc((count ? count : 1) * sizeof *f);
    FUZZ_CHECK(d && f, "no memory for %zu values", count);
    protood_status st = protood_npy_read_f64(path, rows, cols, d);
    FUZZ_CHECK(st == PROTOOD_OK, "info accepted the file but read_f64 returned %d", (int)st);

    int out_of_range = 0;
    for (size_t i = 0; i < count; i++)
        out_of_range |= isfinite(d[i]) && fabs(d[i]) > (double)FLT_MAX;
    for (size_t i = 0; i < count; i++)
        f[i] = 42.0f;
    st = protood_npy_read_f32(path, rows, cols, f);
    if (out_of_range) {
        FUZZ_CHECK(st == PROTOOD_E_FORMAT, "read_f32 returned %d on a value beyond float32", (int)st);
        for (size_t i = 0; i < count; i++)
            FUZZ_CHECK(f[i] == 42.0f, "read_f32 failed but wrote out[%zu]", i);
    } else {
        FUZZ_CHECK(st == PROTOOD_OK, "read_f32 returned %d on values within float32", (int)st);
        for (size_t i = 0; i < count; i++)
            FUZZ_CHECK((isnan(d[i]) && isnan(f[i])) || f[i] == (float)d[i],
                       "element %zu: read_f32 gives %.9g, read_f64 %.17g", i, (double)f[i], d[i]);
        if (dtype == PROTOOD_DTYPE_F32 || dtype == PROTOOD_DTYPE_F16)
            for (size_t i = 0; i < count; i++)  /* exact in float32: a double round trip changes nothing */
                FUZZ_CHECK(isnan(d[i]) || (double)f[i] == d[i], "element %zu not exact", i);
    }

    /* Labels: n x 1 integer files only, int64 range-checked. */
    int32_t *lab = malloc((count ? count : 1) * sizeof *lab);
    FUZZ_CHECK(lab != NULL, "no memory");
    st = protood_npy_read_i32(path, rows, lab);
    if (cols != 1) {
        FUZZ_CHECK(st == PROTOOD_E_SHAPE, "read_i32 of a %lld x %lld file returned %d", (long long)rows,
                   (long long)cols, (int)st);
    } else if (dtype != PROTOOD_DTYPE_I32 && dtype != PROTOOD_DTYPE_I64) {
        FUZZ_CHECK(st == PROTOOD_E_FORMAT, "read_i32 of floating-point data returned %d", (int)st);
    } else {
        int fits = 1;
        for (size_t i = 0; i < count; i++)
            fits &= d[i] >= (double)INT32_MIN && d[i] <= (double)INT32_MAX;
        FUZZ_CHECK(st == (fits ? PROTOOD_OK : PROTOOD_E_FORMAT), "read_i32 returned %d, labels %s int32", (int)st,
                   fits ? "within" : "beyond");
        for (size_t i = 0; fits && i < count; i++)
            FUZZ_CHECK((double)lab[i] == d[i], "label %zu: %d, read_f64 %.17g", i, lab[i], d[i]);
    }

    /* A shape other than the file's is E_SHAPE for every reader. */
    int64_t other_rows = rows == INT64_MAX ? rows - 1 : rows + 1;
    FUZZ_CHECK(protood_npy_read_f64(path, other_rows, cols, d) == PROTOOD_E_SHAPE, "wrong rows accepted");
    free(lab);
    free(f);
    free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size);
    int32_t dtype = -7;
    int64_t rows = -7, cols = -7;
    protood_status st = protood_npy_info(path, &dtype, &rows, &cols);
    if (st != PROTOOD_OK) {
        fuzz_check_failure(st, "protood_npy_info", FORMAT_ONLY);
        FUZZ_CHECK(dtype == -7 && rows == -7 && cols == -7, "failed info wrote its outputs");
        FUZZ_CHECK(strstr(protood_last_error(), path) != NULL, "message does not name the file");
        float out = 42.0f;
        st = protood_npy_read_f32(path, 1, 1, &out);
        fuzz_check_failure(st, "protood_npy_read_f32", FORMAT_ONLY);
        FUZZ_CHECK(out == 42.0f, "failed read wrote its output");
        return 0;
    }
    FUZZ_CHECK(dtype >= PROTOOD_DTYPE_F32 && dtype <= PROTOOD_DTYPE_I64, "dtype %d", (int)dtype);
    FUZZ_CHECK(rows >= 0 && cols >= 0, "shape %lld x %lld", (long long)rows, (long long)cols);
    static const size_t itemsize[] = {0, 4, 8, 2, 4, 8};
    /* The data section holds exactly rows x cols items, so their bytes fit in the input. */
    FUZZ_CHECK(rows == 0 || cols == 0 || ((uint64_t)cols <= size && (uint64_t)rows <= size &&
                                          (uint64_t)rows * (uint64_t)cols * itemsize[dtype] < size),
               "shape %lld x %lld of %zu-byte items in a %zu-byte file", (long long)rows, (long long)cols,
               itemsize[dtype], size);
    check_values(path, dtype, rows, cols);
    return 0;
}
