/* NumPy .npy files: header parsing, dtype/order conversion on read, atomic writes.
 * Format reference: numpy/lib/format.py (NEP 1). */
#include "npy.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "errors.h"
#include "fileio.h"

static const unsigned char NPY_MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

/* NumPy itself refuses headers above 10 000 bytes unless told otherwise; a generous bound keeps
 * a corrupt length from making us allocate gigabytes. */
#define MAX_HEADER_LEN (1u << 20)

static int host_is_big_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Header dictionary parser: {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }      */
/* ---------------------------------------------------------------------------------------- */

typedef struct cursor {
    const char *p;
    const char *end;
} cursor;

static void skip_ws(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int accept(cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* A Python string literal without escapes ('...' or "..."), copied into out. */
static int parse_string(cursor *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return 0;
    char quote = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\' || n + 1 >= cap)
            return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return 0;
    c->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(cursor *c, const char *word)
{
    skip_ws(c);
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, word, n) == 0) {
        c->p += n;
        return 1;
    }
    return 0;
}

/* Non-negative decimal integer, optionally with Python 2's 'L' suffix. */
static int parse_dim(cursor *c, int64_t *out)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return 0;
    int64_t v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        int d = *c->p++ - '0';
        if (v > (INT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (c->p < c->end && *c->p == 'L')
        c->p++;
    *out = v;
    return 1;
}

#define MAX_DIMS 32

static protood_status parse_shape(const char *func, const char *path, cursor *c, pood_npy_header *h)
{
    if (!accept(c, '('))
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': header 'shape' is not a tuple", path);
    int64_t dims[MAX_DIMS];
    int ndim = 0;
    for (;;) {
        if (accept(c, ')'))
            break;
        if (ndim == MAX_DIMS)
            return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': too many dimensions in 'shape'", path);
        int r = parse_dim(c, &dims[ndim]);
        if (r < 0)
            return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': a dimension in 'shape' overflows int64",
                             path);
        if (r == 0)
            return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': malformed 'shape' tuple", path);
        ndim++;
        if (accept(c, ','))
            continue;
        if (accept(c, ')'))
            break;
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': malformed 'shape' tuple", path);
    }
    if (ndim == 0 || ndim > 2)
        return pood_fail(PROTOOD_E_FORMAT, func,
                         "path '%s': %d-dimensional array not supported (1-D or 2-D only)", path, ndim);
    h->ndim = ndim;
    h->rows = dims[0];
    h->cols = ndim == 2 ? dims[1] : 1;
    return PROTOOD_OK;
}

static protood_status parse_descr(const char *func, const char *path, const char *descr,
                                  pood_npy_header *h)
{
    char order = descr[0];
    const char *type = descr + 1;
    if (order != '<' && order != '>' && order != '|' && order != '=') {
        order = '=';
        type = descr;
    }
    if (strchr(type, 'O'))
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': object arrays ('%s') are not supported",
                         path, descr);
    static const struct {
        const char *code;
        int32_t dtype;
        size_t size;
    } known[] = {{"f4", PROTOOD_DTYPE_F32, 4}, {"f8", PROTOOD_DTYPE_F64, 8}, {"f2", PROTOOD_DTYPE_F16, 2},
                 {"i4", PROTOOD_DTYPE_I32, 4}, {"i8", PROTOOD_DTYPE_I64, 8}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        /* '|' means "byte order not applicable", which NumPy only writes for one-byte types. */
        if (strcmp(type, known[i].code) == 0 && order != '|') {
            h->dtype = known[i].dtype;
            h->itemsize = known[i].size;
            h->swap = order == '=' ? 0 : (order == '>') != host_is_big_endian();
            return PROTOOD_OK;
        }
    }
    return pood_fail(PROTOOD_E_FORMAT, func,
                     "path '%s': dtype '%s' not supported (float32, float64, float16, int32, int64 only)",
                     path, descr);
}

static protood_status parse_header_dict(const char *func, const char *path, const char *text, size_t len,
                                        pood_npy_header *h)
{
    cursor c = {text, text + len};
    int have_descr = 0, have_order = 0, have_shape = 0;
    char descr[64] = "";
    if (!accept(&c, '{'))
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': header is not a dictionary", path);
    for (;;) {
        if (accept(&c, '}'))
            break;
        char key[32];
        if (!parse_string(&c, key, sizeof key) || !accept(&c, ':'))
            return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': malformed header dictionary", path);
        protood_status st = PROTOOD_OK;
        if (strcmp(key, "descr") == 0 && !have_descr) {
            have_descr = 1;
            skip_ws(&c);
            if (c.p < c.end && *c.p == '[')
                return pood_fail(PROTOOD_E_FORMAT, func,
                                 "path '%s': structured arrays are not supported", path);
            if (!parse_string(&c, descr, sizeof descr))
                return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': header 'descr' is not a string", path);
            st = parse_descr(func, path, descr, h);
        } else if (strcmp(key, "fortran_order") == 0 && !have_order) {
            have_order = 1;
            if (parse_word(&c, "True"))
                h->fortran_order = 1;
            else if (parse_word(&c, "False"))
                h->fortran_order = 0;
            else
                return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': header 'fortran_order' is not a bool",
                                 path);
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            have_shape = 1;
            st = parse_shape(func, path, &c, h);
        } else {
            return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': unexpected or repeated header key '%s'",
                             path, key);
        }
        if (st != PROTOOD_OK)
            return st;
        if (accept(&c, ','))
            continue;
        if (accept(&c, '}'))
            break;
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': malformed header dictionary", path);
    }
    skip_ws(&c);
    if (c.p != c.end)
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': unexpected text after the header dictionary",
                         path);
    if (!have_descr || !have_order || !have_shape)
        return pood_fail(PROTOOD_E_FORMAT, func, "path '%s': header lacks '%s'", path,
                         !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return PROTOOD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening a file                                                                             */
/* ---------------------------------------------------------------------------------------- */

static uint32_t le_u16(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8;
}

static uint32_t le_u32(const unsigned char *b)
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

protood_status pood_npy_open(const char *func, const char *path, FILE **out, pood_npy_header *h)
{
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return pood_fail(PROTOOD_E_IO, func, "path '%s': cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return pood_fail(PROTOOD_E_IO, func, "path '%s': not a regular file", path);
    }
    uint64_t file_size = (uint64_t)st.st_size;

    pood_npy_header hd;
    memset(&hd, 0, sizeof hd);
    protood_status status = PROTOOD_OK;
    char *text = NULL;
    unsigned char pre[12];
    size_t got = fread(pre, 1, 10, f);
    if (got < 8 || memcmp(pre, NPY_MAGIC, 6) != 0) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': not a .npy file (bad magic)", path);
        goto done;
    }
    hd.major = pre[6];
    hd.minor = pre[7];
    if (hd.major < 1 || hd.major > 3 || hd.minor != 0) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': unsupported .npy format version %u.%u", path,
                           (unsigned)hd.major, (unsigned)hd.minor);
        goto done;
    }
    size_t prefix = hd.major == 1 ? 10 : 12;
    if (prefix == 12 && got == 10)
        got += fread(pre + 10, 1, 2, f);
    if (got < prefix) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': truncated header", path);
        goto done;
    }
    uint32_t header_len = hd.major == 1 ? le_u16(pre + 8) : le_u32(pre + 8);
    if ((uint64_t)prefix + header_len > file_size) {
        status = pood_fail(PROTOOD_E_FORMAT, func,
                           "path '%s': header length %u runs beyond the end of the file (%llu bytes)", path,
                           header_len, (unsigned long long)file_size);
        goto done;
    }
    if (header_len > MAX_HEADER_LEN) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': header length %u is implausibly large", path,
                           header_len);
        goto done;
    }
    text = pood_malloc(header_len + 1u);
    if (!text) {
        status = pood_fail(PROTOOD_E_NOMEM, func, "path '%s': no memory for the header", path);
        goto done;
    }
    if (fread(text, 1, header_len, f) != header_len) {
        status = pood_fail(PROTOOD_E_IO, func, "path '%s': read error in the header", path);
        goto done;
    }
    text[header_len] = '\0';
    if (memchr(text, '\0', header_len)) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': NUL byte in the header", path);
        goto done;
    }
    status = parse_header_dict(func, path, text, header_len, &hd);
    if (status != PROTOOD_OK)
        goto done;

    /* Element count and byte size, guarded against overflow of int64 and size_t. */
    uint64_t count = 0, bytes = 0;
    if (__builtin_mul_overflow((uint64_t)hd.rows, (uint64_t)hd.cols, &count) ||
        __builtin_mul_overflow(count, (uint64_t)hd.itemsize, &bytes) || bytes > (uint64_t)INT64_MAX ||
        bytes > (uint64_t)SIZE_MAX) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': shape (%lld, %lld) overflows the address space",
                           path, (long long)hd.rows, (long long)hd.cols);
        goto done;
    }
    hd.data_offset = prefix + header_len;
    hd.data_bytes = bytes;
    uint64_t available = file_size - hd.data_offset;
    if (available < bytes) {
        status = pood_fail(PROTOOD_E_FORMAT, func,
                           "path '%s': truncated data (shape (%lld, %lld) needs %llu bytes, file has %llu)",
                           path, (long long)hd.rows, (long long)hd.cols, (unsigned long long)bytes,
                           (unsigned long long)available);
        goto done;
    }
    if (available > bytes) {
        status = pood_fail(PROTOOD_E_FORMAT, func, "path '%s': %llu unexpected bytes after the data", path,
                           (unsigned long long)(available - bytes));
        goto done;
    }
done:
    free(text);
    if (status != PROTOOD_OK) {
        fclose(f);
        return status;
    }
    *h = hd;
    *out = f;
    return PROTOOD_OK;
}

protood_status protood_npy_info(const char *path, int32_t *dtype, int64_t *rows, int64_t *cols)
{
    FILE *f;
    pood_npy_header h;
    protood_status st = pood_npy_open(__func__, path, &f, &h);
    if (st != PROTOOD_OK)
        return st;
    fclose(f);
    if (dtype)
        *dtype = h.dtype;
    if (rows)
        *rows = h.rows;
    if (cols)
        *cols = h.cols;
    return PROTOOD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Element decoding                                                                           */
/* ---------------------------------------------------------------------------------------- */

static void load_bytes(unsigned char *dst, const unsigned char *src, size_t n, int swap)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = swap ? src[n - 1 - i] : src[i];
}

/* IEEE 754 binary16 to binary32, exact for every value (subnormals, infinities, NaN payloads). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {
        bits = sign;
    } else {
        /* Subnormal half: normalise into a float32 exponent. */
        int shift = 0;
        while (!(mant & 0x400u)) {
            mant <<= 1;
            shift++;
        }
        mant &= 0x3ffu;
        bits = sign | ((uint32_t)(113 - shift) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double element_as_double(const unsigned char *p, const pood_npy_header *h)
{
    unsigned char b[8];
    load_bytes(b, p, h->itemsize, h->swap);
    switch (h->dtype) {
    case PROTOOD_DTYPE_F32: {
        float v;
        memcpy(&v, b, 4);
        return v;
    }
    case PROTOOD_DTYPE_F64: {
        double v;
        memcpy(&v, b, 8);
        return v;
    }
    case PROTOOD_DTYPE_F16: {
        uint16_t v;
        memcpy(&v, b, 2);
        return half_to_float(v);
    }
    case PROTOOD_DTYPE_I32: {
        int32_t v;
        memcpy(&v, b, 4);
        return v;
    }
    default: {
        int64_t v;
        memcpy(&v, b, 8);
        return (double)v;
    }
    }
}

static int64_t element_as_int64(const unsigned char *p, const pood_npy_header *h)
{
    unsigned char b[8];
    load_bytes(b, p, h->itemsize, h->swap);
    if (h->dtype == PROTOOD_DTYPE_I32) {
        int32_t v;
        memcpy(&v, b, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, b, 8);
    return v;
}

/* The nearest float32 (ties to even) of an int64, rounded once. Through double it would be rounded
 * twice, and a value near the midpoint of two floats could land on the wrong one; a plain
 * (float) cast is right on x86-64 hardware, but not under every emulator (valgrind rounds it
 * through double), so the rounding is spelled out. */
static float int64_to_nearest_float(int64_t v)
{
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    if (u < (1ull << 53))
        return (float)(double)v; /* exact in double: one rounding */
    int shift = 0;
    while ((u >> shift) >= (1ull << 24))
        shift++;
    uint64_t kept = u >> shift, rest = u & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    kept += rest > half || (rest == half && (kept & 1));
    float f = ldexpf((float)kept, shift); /* kept <= 2^24: exact */
    return v < 0 ? -f : f;
}

/* The nearest float32 of an element. */
static float element_as_float(const unsigned char *p, const pood_npy_header *h)
{
    if (h->dtype == PROTOOD_DTYPE_I64)
        return int64_to_nearest_float(element_as_int64(p, h));
    return (float)element_as_double(p, h);
}

/* Row-major destination index of the i-th element in file order. */
static size_t dest_index(size_t i, const pood_npy_header *h)
{
    if (!h->fortran_order || h->ndim == 1)
        return i;
    size_t rows = (size_t)h->rows, cols = (size_t)h->cols;
    return (i % rows) * cols + i / rows;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                    */
/* ---------------------------------------------------------------------------------------- */

static protood_status check_read_args(const char *func, const char *path, int64_t rows, int64_t cols,
                                      const void *out)
{
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "path is NULL");
    if (rows < 0)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "rows = %lld is negative", (long long)rows);
    if (cols < 0)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "cols = %lld is negative", (long long)cols);
    if (!out && rows > 0 && cols > 0)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "out is NULL");
    return PROTOOD_OK;
}

/* The whole data section, raw. Only for conversions: the native fast path reads in place. */
static protood_status read_raw(const char *func, const char *path, FILE *f, const pood_npy_header *h,
                               unsigned char **out)
{
    unsigned char *raw = pood_malloc(h->data_bytes ? (size_t)h->data_bytes : 1);
    if (!raw)
        return pood_fail(PROTOOD_E_NOMEM, func, "path '%s': no memory for %llu bytes of data", path,
                         (unsigned long long)h->data_bytes);
    if (fread(raw, 1, (size_t)h->data_bytes, f) != (size_t)h->data_bytes) {
        free(raw);
        return pood_fail(PROTOOD_E_IO, func, "path '%s': read error in the data", path);
    }
    *out = raw;
    return PROTOOD_OK;
}

static protood_status open_expecting(const char *func, const char *path, int64_t rows, int64_t cols,
                                     FILE **f, pood_npy_header *h)
{
    protood_status st = pood_npy_open(func, path, f, h);
    if (st != PROTOOD_OK)
        return st;
    if (h->rows != rows || h->cols != cols) {
        fclose(*f);
        return pood_fail(PROTOOD_E_SHAPE, func, "path '%s': file holds %lld x %lld, caller expects %lld x %lld",
                         path, (long long)h->rows, (long long)h->cols, (long long)rows, (long long)cols);
    }
    return PROTOOD_OK;
}

protood_status protood_npy_read_f32(const char *path, int64_t rows, int64_t cols, float *out)
{
    protood_status st = check_read_args(__func__, path, rows, cols, out);
    if (st != PROTOOD_OK)
        return st;
    FILE *f;
    pood_npy_header h;
    if ((st = open_expecting(__func__, path, rows, cols, &f, &h)) != PROTOOD_OK)
        return st;
    size_t count = (size_t)(h.data_bytes / h.itemsize);

    if (h.dtype == PROTOOD_DTYPE_F32 && !h.swap && (!h.fortran_order || h.ndim == 1)) {
        /* Native layout: straight into the caller's buffer. The size was checked against the
         * header, so only an I/O error part-way can leave `out` partly written. */
        size_t got = fread(out, sizeof(float), count, f);
        fclose(f);
        if (got != count)
            return pood_fail(PROTOOD_E_IO, __func__, "path '%s': read error in the data", path);
        return PROTOOD_OK;
    }
    unsigned char *raw;
    st = read_raw(__func__, path, f, &h, &raw);
    fclose(f);
    if (st != PROTOOD_OK)
        return st;
    /* Validate everything before writing anything. */
    for (size_t i = 0; i < count; i++) {
        double v = element_as_double(raw + i * h.itemsize, &h);
        if (isfinite(v) && fabs(v) > (double)FLT_MAX) {
            free(raw);
            return pood_fail(PROTOOD_E_FORMAT, __func__,
                             "path '%s': element %zu = %g is outside the float32 range", path, i, v);
        }
    }
    for (size_t i = 0; i < count; i++)
        out[dest_index(i, &h)] = element_as_float(raw + i * h.itemsize, &h);
    free(raw);
    return PROTOOD_OK;
}

protood_status protood_npy_read_f64(const char *path, int64_t rows, int64_t cols, double *out)
{
    protood_status st = check_read_args(__func__, path, rows, cols, out);
    if (st != PROTOOD_OK)
        return st;
    FILE *f;
    pood_npy_header h;
    if ((st = open_expecting(__func__, path, rows, cols, &f, &h)) != PROTOOD_OK)
        return st;
    unsigned char *raw;
    st = read_raw(__func__, path, f, &h, &raw);
    fclose(f);
    if (st != PROTOOD_OK)
        return st;
    size_t count = (size_t)(h.data_bytes / h.itemsize);
    for (size_t i = 0; i < count; i++)
        out[dest_index(i, &h)] = element_as_double(raw + i * h.itemsize, &h);
    free(raw);
    return PROTOOD_OK;
}

protood_status protood_npy_read_i32(const char *path, int64_t n, int32_t *out)
{
    protood_status st = check_read_args(__func__, path, n, 1, out);
    if (st != PROTOOD_OK)
        return st;
    FILE *f;
    pood_npy_header h;
    if ((st = open_expecting(__func__, path, n, 1, &f, &h)) != PROTOOD_OK)
        return st;
    if (h.dtype != PROTOOD_DTYPE_I32 && h.dtype != PROTOOD_DTYPE_I64) {
        fclose(f);
        return pood_fail(PROTOOD_E_FORMAT, __func__,
                         "path '%s': labels must be int32 or int64, the file holds floating-point data", path);
    }
    unsigned char *raw;
    st = read_raw(__func__, path, f, &h, &raw);
    fclose(f);
    if (st != PROTOOD_OK)
        return st;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = element_as_int64(raw + (size_t)i * h.itemsize, &h);
        if (v < INT32_MIN || v > INT32_MAX) {
            free(raw);
            return pood_fail(PROTOOD_E_FORMAT, __func__, "path '%s': element %lld = %lld is outside the int32 range",
                             path, (long long)i, (long long)v);
        }
    }
    for (int64_t i = 0; i < n; i++)
        out[i] = (int32_t)element_as_int64(raw + (size_t)i * h.itemsize, &h);
    free(raw);
    return PROTOOD_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Header exactly as numpy.save writes a version 1.0 file: the dictionary padded with spaces and
 * a final newline so that the data start on a 64-byte boundary. */
static size_t format_header(char *buf, size_t cap, const char *type, int ndim, int64_t rows, int64_t cols)
{
    char dict[160];
    char order = host_is_big_endian() ? '>' : '<';
    int n = ndim == 1 ? snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%lld,), }",
                                 order, type, (long long)rows)
                      : snprintf(dict, sizeof dict,
                                 "{'descr': '%c%s', 'fortran_order': False, 'shape': (%lld, %lld), }", order,
                                 type, (long long)rows, (long long)cols);
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    if (padded > cap)
        return 0;
    memcpy(buf, NPY_MAGIC, 6);
    buf[6] = 1;
    buf[7] = 0;
    size_t header_len = padded - 10;
    buf[8] = (char)(header_len & 0xff);
    buf[9] = (char)(header_len >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', padded - total);
    buf[padded - 1] = '\n';
    return padded;
}

static protood_status write_npy(const char *func, const char *path, const char *type, size_t itemsize, int ndim,
                                int64_t rows, int64_t cols, const void *data)
{
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "path is NULL");
    if (rows < 0)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "%s = %lld is negative", ndim == 1 ? "n" : "rows",
                         (long long)rows);
    if (cols < 1)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "cols = %lld, must be >= 1", (long long)cols);
    if (!data && rows > 0)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "data is NULL");
    uint64_t count, bytes;
    if (__builtin_mul_overflow((uint64_t)rows, (uint64_t)cols, &count) ||
        __builtin_mul_overflow(count, (uint64_t)itemsize, &bytes) || bytes > (uint64_t)SIZE_MAX ||
        bytes > (uint64_t)INT64_MAX)
        return pood_fail(PROTOOD_E_SHAPE, func, "%lld x %lld elements overflow the address space",
                         (long long)rows, (long long)cols);
    char header[256];
    size_t header_size = format_header(header, sizeof header, type, ndim, rows, cols);
    pood_chunk chunks[2] = {{header, header_size}, {data, (size_t)bytes}};
    return pood_write_file_atomic(func, path, chunks, 2);
}

protood_status protood_npy_write_f32(const char *path, int64_t rows, int64_t cols, const float *data)
{
    return write_npy(__func__, path, "f4", sizeof(float), 2, rows, cols, data);
}

protood_status protood_npy_write_f32_vector(const char *path, int64_t n, const float *data)
{
    return write_npy(__func__, path, "f4", sizeof(float), 1, n, 1, data);
}

protood_status protood_npy_write_i32(const char *path, int64_t n, const int32_t *data)
{
    return write_npy(__func__, path, "i4", sizeof(int32_t), 1, n, 1, data);
}
