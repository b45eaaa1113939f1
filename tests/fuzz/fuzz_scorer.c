/* Fuzz target: the scorer reader, protood_scorer_from_buffer and protood_scorer_load, on any
 * bytes.
 *
 * Each input is read as it is and with its checksum recomputed (fuzz_fix_crc), so that mutations
 * reach the model parsing behind the checksum. Invariants: a rejected image is E_FORMAT, names
 * the function and leaves *out untouched; the buffer and file readers agree; an accepted scorer
 * saves back to exactly the input bytes and, when fitted, scores unit queries with numbers (no
 * NaN) of the range its kind implies, the same bits from both readers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static const protood_status FORMAT_ONLY[] = {PROTOOD_E_FORMAT, PROTOOD_OK};

/* Two unit queries: the first axis and the diagonal. */
static float *make_queries(int64_t dim)
{
    float *q = calloc(2 * (size_t)dim, sizeof *q);
    FUZZ_CHECK(q != NULL, "no memory for queries of dim %lld", (long long)dim);
    q[0] = 1.0f;
    for (int64_t j = 0; j < dim; j++)
        q[dim + j] = (float)(1.0 / sqrt((double)dim));
    return q;
}

static void check_accepted(const protood_scorer *s, const protood_scorer *from_file, const uint8_t *data,
                           size_t size)
{
    int32_t kind = -1, fitted = -1;
    int64_t dim = -1;
    FUZZ_CHECK(protood_scorer_info(s, &kind, &dim, &fitted) == PROTOOD_OK, "info");
    FUZZ_CHECK(kind >= PROTOOD_SCORER_KNN && kind <= PROTOOD_SCORER_PROTOTYPE && dim >= 1 && (fitted == 0 || fitted == 1),
               "kind %d, dim %lld, fitted %d", (int)kind, (long long)dim, (int)fitted);
    double k, normalize;
    FUZZ_CHECK(protood_scorer_get_param(s, PROTOOD_SCORER_K, &k) == PROTOOD_OK && k >= 1 && k == floor(k), "k");
    FUZZ_CHECK(protood_scorer_get_param(s, PROTOOD_SCORER_NORMALIZE, &normalize) == PROTOOD_OK &&
                   (normalize == 0 || normalize == 1), "normalize");

    /* Every field is meaningful: saving gives back exactly the bytes read. */
    size_t need = 0;
    FUZZ_CHECK(protood_scorer_to_buffer(s, NULL, 0, &need) == PROTOOD_OK && need == size,
               "to_buffer needs %zu bytes for a %zu-byte image", need, size);
    unsigned char *again = malloc(size);
    FUZZ_CHECK(again != NULL, "no memory");
    FUZZ_CHECK(protood_scorer_to_buffer(s, again, size, &need) == PROTOOD_OK, "to_buffer");
    FUZZ_CHECK(memcmp(again, data, size) == 0, "saved image differs from the one read");
    free(again);
    if (!fitted)
        return;

    /* A fitted model holds at least dim values, so dim is bounded by the input size here. */
    float *q = make_queries(dim);
    float scores[2] = {0, 0}, again_scores[2] = {0, 0};
    protood_status st = protood_scorer_score(s, 2, q, scores);
    FUZZ_CHECK(st == PROTOOD_OK, "scoring unit queries with a loaded %d scorer: %d", (int)kind, (int)st);
    FUZZ_CHECK(protood_scorer_score(from_file, 2, q, again_scores) == PROTOOD_OK, "scoring (file)");
    FUZZ_CHECK(memcmp(scores, again_scores, sizeof scores) == 0, "buffer and file scorers disagree: %.9g / %.9g",
               (double)scores[0], (double)again_scores[0]);
    for (int i = 0; i < 2; i++) {
        /* A raw (normalize = 0) Gaussian model is not range-checked at load (lib/scorer.c,
         * check_gauss_range): fit can make ones whose float32 evaluation overflows. */
        if (normalize == 1 || kind == PROTOOD_SCORER_KNN || kind == PROTOOD_SCORER_PROTOTYPE)
            FUZZ_CHECK(!isnan(scores[i]), "query %d scores NaN (kind %d)", i, (int)kind);
        if (kind == PROTOOD_SCORER_KNN)
            FUZZ_CHECK(scores[i] <= 0, "KNN score %.9g > 0 (a negative squared distance)", (double)scores[i]);
        if (kind == PROTOOD_SCORER_PROTOTYPE && normalize == 1)
            FUZZ_CHECK(fabsf(scores[i]) <= 1.0f + 1e-5f, "prototype score %.9g is not a cosine", (double)scores[i]);
    }
    free(q);
}

static void check_image(const uint8_t *data, size_t size)
{
    protood_scorer *sentinel = (protood_scorer *)&sentinel, *s = sentinel;
    protood_status st = protood_scorer_from_buffer(&s, data, size);
    protood_scorer *from_file = sentinel;
    protood_status fst = protood_scorer_load(&from_file, fuzz_file(data, size));
    FUZZ_CHECK(fst == st, "scorer_load returned %d, scorer_from_buffer %d", (int)fst, (int)st);
    if (st != PROTOOD_OK) {
        fuzz_check_failure(fst, "protood_scorer_load", FORMAT_ONLY);
        FUZZ_CHECK(from_file == sentinel, "failed scorer_load wrote *out");
        st = protood_scorer_from_buffer(&s, data, size);
        fuzz_check_failure(st, "protood_scorer_from_buffer", FORMAT_ONLY);
        FUZZ_CHECK(s == sentinel, "failed scorer_from_buffer wrote *out");
        return;
    }
    check_accepted(s, from_file, data, size);
    protood_scorer_free(from_file);
    protood_scorer_free(s);
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
