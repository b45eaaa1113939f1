/* Fuzz target: the .npy reader (protood_npy_info, _read_f32, _read_f64, _read_i32) on any bytes.
 *
 * Invariants beyond "no crash": a rejected file is E_FORMAT with a message naming the function
 * and the outputs untouched; an accepted header describes exactly the bytes present; every value
 * each reader returns equals an independent decoding of the data section (float32 reads give the
 * nearest float32), and each reader rejects exactly what its documented conversion rules say;
 * what was read, written back with the library's writers, reads again bit for bit. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "npy.h"

static const protood_status FORMAT_ONLY[] = {PROTOOD_E_FORMAT, PROTOOD_OK};

/* The reference: the data section decoded here, independently of lib/npy.c, into row-major
 * order. float16 by its definition (sign, 5-bit exponent, 10-bit fraction); int64 kept as an
 * integer so that its nearest float32 is one rounding away. */
typedef struct ref_value {
    double d;     /* exact, except int64 beyond 2^53 */
    float f;      /* the nearest float32 */
    int64_t i;    /* integer dtypes */
} ref_value;

static ref_value decode(const uint8_t *p, const pood_npy_header *h)
{
    /* The element's bytes as an unsigned number in the file's byte order (the header's, as the
     * library read it: the byte order of the host unless swap says otherwise). */
    const uint16_t one = 1;
    unsigned char first;
    memcpy(&first, &one, 1);
    int big_endian_file = h->swap ? first == 1 : first == 0;
    uint64_t bits = 0;
    for (size_t b = 0; b < h->itemsize; b++)
        bits |= (uint64_t)p[big_endian_file ? h->itemsize - 1 - b : b] << (8 * b);
    ref_value v = {0, 0, 0};
    switch (h->dtype) {
    case PROTOOD_DTYPE_F32: {
        uint32_t u = (uint32_t)bits;
        memcpy(&v.f, &u, 4);
        v.d = v.f;
        break;
    }
    case PROTOOD_DTYPE_F64:
        memcpy(&v.d, &bits, 8);
        v.f = (float)v.d;
        break;
    case PROTOOD_DTYPE_F16: {
        int exp = (int)(bits >> 10) & 31, frac = (int)(bits & 1023);
        double mag = exp == 0 ? ldexp(frac, -24) : exp == 31 ? (frac ? NAN : INFINITY) : ldexp(1024 + frac, exp - 25);
        v.d = bits & 0x8000 ? -mag : mag;
        v.f = (float)v.d;
        break;
    }
    case PROTOOD_DTYPE_I32:
        v.i = (int32_t)(uint32_t)bits;
        v.d = (double)v.i;
        v.f = (float)v.i;
        break;
    default:
        v.i = (int64_t)bits;
        v.d = (double)v.i;
        v.f = (float)v.i;
        break;
    }
    return v;
}

static int same_value(double got, double want)
{
    return (isnan(got) && isnan(want)) || got == want;
}

static void check_values(const char *path, const uint8_t *data, size_t size, int32_t dtype, int64_t rows,
                         int64_t cols)
{
    FILE *file;
    pood_npy_header h;
    FUZZ_CHECK(pood_npy_open("fuzz", path, &file, &h) == PROTOOD_OK, "the header accepted by info is not");
    fclose(file);
    FUZZ_CHECK(h.dtype == dtype && h.rows == rows && h.cols == cols, "header and info disagree");
    FUZZ_CHECK(h.data_offset + h.data_bytes == size, "data section [%llu, +%llu) of a %zu-byte file",
               (unsigned long long)h.data_offset, (unsigned long long)h.data_bytes, size);

    size_t count = (size_t)rows * (size_t)cols;
    ref_value *ref = malloc((count ? count : 1) * sizeof *ref);
    double *d = malloc((count ? count : 1) * sizeof *d);
    float *f = malloc((count ? count : 1) * sizeof *f);
    int32_t *lab = malloc((count ? count : 1) * sizeof *lab);
    FUZZ_CHECK(ref && d && f && lab, "no memory for %zu values", count);
    for (size_t k = 0; k < count; k++) {
        /* Fortran order stores column after column. */
        size_t row = h.fortran_order ? k % (size_t)rows : k / (size_t)cols;
        size_t col = h.fortran_order ? k / (size_t)rows : k % (size_t)cols;
        ref[row * (size_t)cols + col] = decode(data + h.data_offset + k * h.itemsize, &h);
    }

    protood_status st = protood_npy_read_f64(path, rows, cols, d);
    FUZZ_CHECK(st == PROTOOD_OK, "info accepted the file but read_f64 returned %d", (int)st);
    for (size_t i = 0; i < count; i++)
        FUZZ_CHECK(same_value(d[i], ref[i].d), "element %zu: read_f64 gives %.17g, want %.17g", i, d[i], ref[i].d);

    int out_of_range = 0;
    for (size_t i = 0; i < count; i++)
        out_of_range |= isfinite(ref[i].d) && fabs(ref[i].d) > (double)FLT_MAX;
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
            FUZZ_CHECK(same_value(f[i], ref[i].f), "element %zu: read_f32 gives %.9g, the nearest float32 is %.9g", i,
                       (double)f[i], (double)ref[i].f);
    }

    /* Labels: n x 1 integer files only, int64 range-checked. */
    st = protood_npy_read_i32(path, rows, lab);
    if (cols != 1) {
        FUZZ_CHECK(st == PROTOOD_E_SHAPE, "read_i32 of a %lld x %lld file returned %d", (long long)rows,
                   (long long)cols, (int)st);
    } else if (dtype != PROTOOD_DTYPE_I32 && dtype != PROTOOD_DTYPE_I64) {
        FUZZ_CHECK(st == PROTOOD_E_FORMAT, "read_i32 of floating-point data returned %d", (int)st);
    } else {
        int fits = 1;
        for (size_t i = 0; i < count; i++)
            fits &= ref[i].i >= INT32_MIN && ref[i].i <= INT32_MAX;
        FUZZ_CHECK(st == (fits ? PROTOOD_OK : PROTOOD_E_FORMAT), "read_i32 returned %d, labels %s int32", (int)st,
                   fits ? "within" : "beyond");
        for (size_t i = 0; fits && i < count; i++)
            FUZZ_CHECK(lab[i] == ref[i].i, "label %zu: %d, want %lld", i, lab[i], (long long)ref[i].i);
    }

    /* What was read writes back and reads again bit for bit (NaN payloads too): float32 data as a
     * rows x cols file, labels as a vector. Columns of zero width cannot be written. */
    const char *out = fuzz_scratch_path("round-trip.npy");
    if (!out_of_range) {
        st = protood_npy_write_f32(out, rows, cols, f);
        if (cols < 1) {
            FUZZ_CHECK(st == PROTOOD_E_INVALID_ARG, "writing %lld x 0 returned %d", (long long)rows, (int)st);
        } else {
            int32_t dt;
            int64_t r, c;
            FUZZ_CHECK(st == PROTOOD_OK, "write_f32 of %lld x %lld returned %d", (long long)rows, (long long)cols,
                       (int)st);
            FUZZ_CHECK(protood_npy_info(out, &dt, &r, &c) == PROTOOD_OK && dt == PROTOOD_DTYPE_F32 && r == rows &&
                           c == cols, "written file reads back as %d, %lld x %lld", (int)dt, (long long)r, (long long)c);
            float *back = malloc((count ? count : 1) * sizeof *back);
            FUZZ_CHECK(back != NULL, "no memory");
            FUZZ_CHECK(protood_npy_read_f32(out, rows, cols, back) == PROTOOD_OK, "reading the written file");
            FUZZ_CHECK(count == 0 || memcmp(back, f, count * sizeof *f) == 0, "round trip changed the data");
            free(back);
            unlink(out);
        }
    }
    if (cols == 1 && st == PROTOOD_OK && protood_npy_read_i32(path, rows, lab) == PROTOOD_OK) {
        int32_t *back = malloc((count ? count : 1) * sizeof *back);
        FUZZ_CHECK(back != NULL, "no memory");
        FUZZ_CHECK(protood_npy_write_i32(out, rows, lab) == PROTOOD_OK, "write_i32");
        FUZZ_CHECK(protood_npy_read_i32(out, rows, back) == PROTOOD_OK, "reading the written labels");
        FUZZ_CHECK(count == 0 || memcmp(back, lab, count * sizeof *lab) == 0, "label round trip changed them");
        free(back);
        unlink(out);
    }

    /* A shape other than the file's is E_SHAPE for every reader. */
    int64_t other_rows = rows == INT64_MAX ? rows - 1 : rows + 1;
    FUZZ_CHECK(protood_npy_read_f64(path, other_rows, cols, d) == PROTOOD_E_SHAPE, "wrong rows accepted");
    free(lab);
    free(f);
    free(d);
    free(ref);
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
    check_values(path, data, size, dtype, rows, cols);
    return 0;
}
