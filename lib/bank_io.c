/* Bank persistence: the versioned, checksummed little-endian format of docs/bank-format.md.
 * Files and buffers share one writer and one parser; a file is only read in full once its first
 * bytes have shown that its size is what the shape they declare implies. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "alloc.h"
#include "bank.h"
#include "errors.h"
#include "fileio.h"
#include "serial.h"

static const unsigned char BANK_MAGIC[8] = {'P', 'R', 'O', 'T', 'O', 'O', 'D', 'B'};
#define BANK_FORMAT_VERSION 1u
/* magic 8, version 4, reserved 4, shape 3 x 8, parameters 10 x 8 */
#define BANK_HEADER_BYTES ((size_t)120)
#define BANK_CRC_BYTES ((size_t)4)
/* Stored prototypes must be unit vectors to within this. The library normalises in double and
 * rounds to float32 (norms within ~1e-7 of 1); the slack admits writers that normalise in float. */
#define BANK_NORM_TOLERANCE 1e-3

static size_t bank_bytes(const protood_bank *bank)
{
    /* Cannot overflow: the prototypes' P x D x 4 bytes were allocated. */
    return BANK_HEADER_BYTES + (size_t)bank->n_protos * (size_t)bank->dim * sizeof(float) + BANK_CRC_BYTES;
}

static protood_status serialise(const char *func, const protood_bank *bank, pood_writer *w)
{
    memset(w, 0, sizeof *w);
    pood_put_bytes(w, BANK_MAGIC, sizeof BANK_MAGIC);
    pood_put_u32(w, BANK_FORMAT_VERSION);
    pood_put_u32(w, 0);   /* reserved */
    pood_put_i64(w, bank->n_classes);
    pood_put_i64(w, bank->protos_per_class);
    pood_put_i64(w, bank->dim);
    pood_put_f64s(w, bank->params + 1, POOD_BANK_N_KEYS);
    pood_put_f32s(w, bank->protos, (size_t)bank->n_protos * (size_t)bank->dim);
    if (!w->failed)
        pood_put_u32(w, pood_crc32(w->buf, w->size));
    if (w->failed) {
        pood_writer_free(w);
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory to serialise %zu bytes", bank_bytes(bank));
    }
    return PROTOOD_OK;
}

typedef struct bank_header {
    int64_t n_classes, protos_per_class, dim;
} bank_header;

/* What the first bytes say about the whole: the magic, a version this library reads, a valid
 * shape, and a total size equal to what that shape implies. `head` holds the first
 * min(size, BANK_HEADER_BYTES) bytes of a `size`-byte file or buffer. */
static protood_status parse_header(const char *func, const char *where, const unsigned char *head, size_t size,
                                   bank_header *h)
{
    size_t have = size < sizeof BANK_MAGIC ? size : sizeof BANK_MAGIC;
    if (memcmp(head, BANK_MAGIC, have) != 0)
        return pood_fail(PROTOOD_E_FORMAT, func, "%sbad magic: not a libprotood bank", where);
    if (size < BANK_HEADER_BYTES + BANK_CRC_BYTES)
        return pood_fail(PROTOOD_E_FORMAT, func, "%struncated: %zu bytes, a bank takes at least %zu", where, size,
                         BANK_HEADER_BYTES + BANK_CRC_BYTES);
    pood_reader r = {head, BANK_HEADER_BYTES, sizeof BANK_MAGIC, 0};
    uint32_t version = pood_get_u32(&r);
    if (version != BANK_FORMAT_VERSION)
        return pood_fail(PROTOOD_E_FORMAT, func, "%sunsupported format version %u (this library reads %u)", where,
                         version, BANK_FORMAT_VERSION);
    uint32_t reserved = pood_get_u32(&r);
    if (reserved != 0)
        return pood_fail(PROTOOD_E_FORMAT, func, "%sreserved field = %u, must be 0", where, reserved);
    h->n_classes = pood_get_i64(&r);
    h->protos_per_class = pood_get_i64(&r);
    h->dim = pood_get_i64(&r);
    if (h->n_classes < 1 || h->protos_per_class < 1 || h->dim < 1)
        return pood_fail(PROTOOD_E_FORMAT, func, "%sshape %lld x %lld x %lld: every extent must be >= 1", where,
                         (long long)h->n_classes, (long long)h->protos_per_class, (long long)h->dim);
    int64_t p, pd;
    size_t bytes;
    if (__builtin_mul_overflow(h->n_classes, h->protos_per_class, &p) || __builtin_mul_overflow(p, h->dim, &pd) ||
        __builtin_mul_overflow((uint64_t)pd, (uint64_t)sizeof(float), &bytes) ||
        __builtin_add_overflow(bytes, BANK_HEADER_BYTES + BANK_CRC_BYTES, &bytes))
        return pood_fail(PROTOOD_E_FORMAT, func, "%sshape %lld x %lld x %lld overflows", where,
                         (long long)h->n_classes, (long long)h->protos_per_class, (long long)h->dim);
    if (size != bytes)
        return pood_fail(PROTOOD_E_FORMAT, func,
                         "%s%zu bytes, but shape %lld x %lld x %lld takes %zu (truncated or trailing data)", where,
                         size, (long long)h->n_classes, (long long)h->protos_per_class, (long long)h->dim, bytes);
    return PROTOOD_OK;
}

/* The whole file or buffer (its header already accepted by parse_header): checksum, parameters,
 * prototypes. A bank is allocated only once everything but the prototypes' values has passed. */
static protood_status parse_body(const char *func, const char *where, const unsigned char *data, size_t size,
                                 const bank_header *h, protood_bank **out)
{
    pood_reader tail = {data, size, size - BANK_CRC_BYTES, 0};
    uint32_t stored = pood_get_u32(&tail), computed = pood_crc32(data, size - BANK_CRC_BYTES);
    if (stored != computed)
        return pood_fail(PROTOOD_E_FORMAT, func, "%schecksum mismatch (stored %08x, computed %08x): corrupt data",
                         where, stored, computed);
    pood_reader r = {data, size, BANK_HEADER_BYTES - POOD_BANK_N_KEYS * sizeof(double), 0};
    double params[POOD_BANK_N_KEYS + 1];
    pood_get_f64s(&r, params + 1, POOD_BANK_N_KEYS);
    protood_status st;
    for (int32_t key = 1; key <= POOD_BANK_N_KEYS; key++)
        if ((st = pood_bank_check_param(func, PROTOOD_E_FORMAT, where, key, params[key])) != PROTOOD_OK)
            return st;

    protood_bank *b;
    if ((st = pood_bank_alloc(func, h->n_classes, h->protos_per_class, h->dim, &b)) != PROTOOD_OK)
        return st;
    memcpy(b->params + 1, params + 1, POOD_BANK_N_KEYS * sizeof(double));
    pood_get_f32s(&r, b->protos, (size_t)b->n_protos * (size_t)b->dim);
    for (int64_t i = 0; i < b->n_protos; i++) {
        const float *row = b->protos + i * b->dim;
        double s = 0.0;
        for (int64_t j = 0; j < b->dim; j++) {
            if (!isfinite(row[j])) {
                st = pood_fail(PROTOOD_E_FORMAT, func, "%sprototype[%lld][%lld] = %g", where, (long long)i,
                               (long long)j, (double)row[j]);
                goto reject;
            }
            s += (double)row[j] * row[j];
        }
        if (!(fabs(sqrt(s) - 1.0) <= BANK_NORM_TOLERANCE)) {
            st = pood_fail(PROTOOD_E_FORMAT, func, "%sprototype row %lld has norm %.9g, not 1", where, (long long)i,
                           sqrt(s));
            goto reject;
        }
    }
    *out = b;
    return PROTOOD_OK;
reject:
    protood_bank_free(b);
    return st;
}

protood_status protood_bank_to_buffer(const protood_bank *bank, void *buf, size_t capacity, size_t *size_out)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (!size_out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "size_out is NULL");
    size_t need = bank_bytes(bank);
    if (!buf) {
        *size_out = need;
        return PROTOOD_OK;
    }
    if (capacity < need)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "capacity = %zu bytes, the bank needs %zu", capacity,
                         need);
    pood_writer w;
    protood_status st = serialise(__func__, bank, &w);
    if (st != PROTOOD_OK)
        return st;
    memcpy(buf, w.buf, w.size);
    *size_out = w.size;
    pood_writer_free(&w);
    return PROTOOD_OK;
}

protood_status protood_bank_from_buffer(protood_bank **out, const void *buf, size_t size)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!buf)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "buf is NULL");
    const char *where = "buffer: ";
    bank_header h;
    protood_status st = parse_header(__func__, where, buf, size, &h);
    if (st != PROTOOD_OK)
        return st;
    return parse_body(__func__, where, buf, size, &h, out);
}

protood_status protood_bank_save(const protood_bank *bank, const char *path)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "path is NULL");
    pood_writer w;
    protood_status st = serialise(__func__, bank, &w);
    if (st != PROTOOD_OK)
        return st;
    pood_chunk chunk = {w.buf, w.size};
    st = pood_write_file_atomic(__func__, path, &chunk, 1);
    pood_writer_free(&w);
    return st;
}

protood_status protood_bank_load(protood_bank **out, const char *path)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "path is NULL");
    /* Message prefix; a longer path is cut, which only shortens the message. */
    char where[512];
    snprintf(where, sizeof where, "path '%s': ", path);
    FILE *f = fopen(path, "rb");
    if (!f)
        return pood_fail(PROTOOD_E_IO, __func__, "%scannot open: %s", where, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return pood_fail(PROTOOD_E_IO, __func__, "%snot a regular file", where);
    }
    protood_status st;
    unsigned char *data = NULL;
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        st = pood_fail(PROTOOD_E_FORMAT, __func__, "%s%lld bytes do not fit in memory", where,
                       (long long)sb.st_size);
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char head[BANK_HEADER_BYTES];
    size_t head_size = size < sizeof head ? size : sizeof head;
    if (fread(head, 1, head_size, f) != head_size) {
        st = pood_fail(PROTOOD_E_IO, __func__, "%sread error in the header", where);
        goto done;
    }
    bank_header h;
    if ((st = parse_header(__func__, where, head, size, &h)) != PROTOOD_OK)
        goto done;
    data = pood_malloc(size);
    if (!data) {
        st = pood_fail(PROTOOD_E_NOMEM, __func__, "%sno memory for %zu bytes", where, size);
        goto done;
    }
    memcpy(data, head, head_size);
    if (fread(data + head_size, 1, size - head_size, f) != size - head_size) {
        st = pood_fail(PROTOOD_E_IO, __func__, "%sread error (or the file shrank while being read)", where);
        goto done;
    }
    st = parse_body(__func__, where, data, size, &h, out);
done:
    free(data);
    fclose(f);
    return st;
}
