/* Fuzz target: the bank reader, protood_bank_from_buffer and protood_bank_load, on any bytes.
 *
 * Each input is read twice: as it is, and with its checksum recomputed (fuzz_fix_crc), since
 * almost every mutation fails the checksum and would otherwise never reach the parsing behind it.
 * Invariants: a rejected image is E_FORMAT, names the function and leaves *out untouched; the
 * buffer and the file reader agree; an accepted bank has the shape its size implies, unit-norm
 * prototypes and valid parameters, saves back to exactly the input bytes, clones and reloads
 * identically, and serves as a scorer's prototypes with scores in [-1, 1]. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static const protood_status FORMAT_ONLY[] = {PROTOOD_E_FORMAT, PROTOOD_OK};
#define HEADER_BYTES 120 /* docs/bank-format.md: magic, version, reserved, shape, 10 parameters */
#define CRC_BYTES 4

static void check_same(const protood_bank *a, const protood_bank *b, const char *what)
{
    size_t na, nb;
    FUZZ_CHECK(protood_bank_to_buffer(a, NULL, 0, &na) == PROTOOD_OK, "size of a loaded bank");
    FUZZ_CHECK(protood_bank_to_buffer(b, NULL, 0, &nb) == PROTOOD_OK, "size of a loaded bank");
    FUZZ_CHECK(na == nb, "%s: %zu bytes against %zu", what, na, nb);
    unsigned char *ba = malloc(na), *bb = malloc(nb);
    FUZZ_CHECK(ba && bb, "no memory");
    FUZZ_CHECK(protood_bank_to_buffer(a, ba, na, &na) == PROTOOD_OK, "%s: to_buffer", what);
    FUZZ_CHECK(protood_bank_to_buffer(b, bb, nb, &nb) == PROTOOD_OK, "%s: to_buffer", what);
    FUZZ_CHECK(memcmp(ba, bb, na) == 0, "%s: the images differ", what);
    free(ba);
    free(bb);
}

static void check_accepted(const protood_bank *bank, const uint8_t *data, size_t size)
{
    int64_t c = -1, k = -1, d = -1;
    FUZZ_CHECK(protood_bank_shape(bank, &c, &k, &d) == PROTOOD_OK, "shape of a loaded bank");
    FUZZ_CHECK(c >= 1 && k >= 1 && d >= 1, "shape %lld x %lld x %lld", (long long)c, (long long)k, (long long)d);
    FUZZ_CHECK((uint64_t)c * (uint64_t)k * (uint64_t)d * 4u + HEADER_BYTES + CRC_BYTES == size,
               "shape %lld x %lld x %lld from %zu bytes", (long long)c, (long long)k, (long long)d, size);
    for (int32_t key = PROTOOD_BANK_MOMENTUM; key <= PROTOOD_BANK_COMP_BASE_TEMPERATURE; key++) {
        double v;
        FUZZ_CHECK(protood_bank_get_param(bank, key, &v) == PROTOOD_OK && isfinite(v), "parameter %d", (int)key);
    }
    size_t p = (size_t)(c * k), dim = (size_t)d;
    float *protos = malloc(p * dim * sizeof *protos);
    FUZZ_CHECK(protos != NULL, "no memory");
    FUZZ_CHECK(protood_bank_get_prototypes(bank, protos) == PROTOOD_OK, "get_prototypes");
    for (size_t i = 0; i < p; i++) {
        double s = 0.0;
        for (size_t j = 0; j < dim; j++) {
            FUZZ_CHECK(isfinite(protos[i * dim + j]), "prototype %zu not finite", i);
            s += (double)protos[i * dim + j] * protos[i * dim + j];
        }
        FUZZ_CHECK(fabs(sqrt(s) - 1.0) <= 1e-3, "prototype %zu has norm %.9g", i, sqrt(s));
    }

    /* The format has no slack: saving gives back the very bytes that were read. */
    size_t need = 0;
    FUZZ_CHECK(protood_bank_to_buffer(bank, NULL, 0, &need) == PROTOOD_OK && need == size,
               "to_buffer needs %zu bytes for a %zu-byte image", need, size);
    unsigned char *again = malloc(size);
    FUZZ_CHECK(again != NULL, "no memory");
    FUZZ_CHECK(protood_bank_to_buffer(bank, again, size, &need) == PROTOOD_OK, "to_buffer");
    FUZZ_CHECK(memcmp(again, data, size) == 0, "saved image differs from the one read");
    protood_bank *back = NULL, *clone = NULL;
    FUZZ_CHECK(protood_bank_from_buffer(&back, again, size) == PROTOOD_OK, "saved image does not reload");
    check_same(bank, back, "reloaded");
    FUZZ_CHECK(protood_bank_clone(&clone, bank) == PROTOOD_OK, "clone");
    check_same(bank, clone, "clone");
    protood_bank_free(clone);
    protood_bank_free(back);
    free(again);

    /* Usable as it is: a prototype scorer fitted to it scores each prototype (its own best match)
     * near 1, every score a cosine. */
    protood_scorer *s = NULL;
    FUZZ_CHECK(protood_scorer_create(&s, PROTOOD_SCORER_PROTOTYPE, d) == PROTOOD_OK, "scorer_create");
    FUZZ_CHECK(protood_scorer_fit_bank(s, bank) == PROTOOD_OK, "fit_bank on a loaded bank");
    float *scores = malloc(p * sizeof *scores);
    FUZZ_CHECK(scores != NULL, "no memory");
    FUZZ_CHECK(protood_scorer_score(s, (int64_t)p, protos, scores) == PROTOOD_OK, "scoring the prototypes");
    for (size_t i = 0; i < p; i++)
        FUZZ_CHECK(scores[i] >= 1.0f - 1e-3f && scores[i] <= 1.0f + 1e-5f, "prototype %zu scores %.9g", i,
                   (double)scores[i]);
    free(scores);
    protood_scorer_free(s);
    free(protos);
}

static void check_image(const uint8_t *data, size_t size)
{
    protood_bank *sentinel = (protood_bank *)&sentinel, *bank = sentinel;
    protood_status st = protood_bank_from_buffer(&bank, data, size);

    /* The file reader must say the same. */
    protood_bank *from_file = sentinel;
    protood_status fst = protood_bank_load(&from_file, fuzz_file(data, size));
    FUZZ_CHECK(fst == st, "bank_load returned %d, bank_from_buffer %d", (int)fst, (int)st);
    if (st != PROTOOD_OK) {
        fuzz_check_failure(fst, "protood_bank_load", FORMAT_ONLY);
        FUZZ_CHECK(from_file == sentinel, "failed bank_load wrote *out");
        st = protood_bank_from_buffer(&bank, data, size); /* its own message, checked last */
        fuzz_check_failure(st, "protood_bank_from_buffer", FORMAT_ONLY);
        FUZZ_CHECK(bank == sentinel, "failed bank_from_buffer wrote *out");
        return;
    }
    check_same(bank, from_file, "load against from_buffer");
    check_accepted(bank, data, size);
    protood_bank_free(from_file);
    protood_bank_free(bank);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_image(data, size);
    unsigned char *fixed = fuzz_fix_crc(data, size);
    if (fixed && memcmp(fixed, data, size) != 0)
        check_image(fixed, size);
    free(fixed);
    return 0;
}
