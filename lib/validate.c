/* Boundary checks: everything is validated before any state is touched. */
#include "validate.h"

#include <math.h>

#include "errors.h"

protood_status pood_check_count(const char *func, const char *name, int64_t n)
{
    if (n < 1)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "%s = %lld, must be >= 1", name, (long long)n);
    return PROTOOD_OK;
}

protood_status pood_check_finite(const char *func, const char *name, int64_t n, int64_t dim, const float *x)
{
    if (!x)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "%s is NULL", name);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < dim; j++)
            if (!isfinite(x[i * dim + j]))
                return pood_fail(PROTOOD_E_NONFINITE, func, "%s[%lld][%lld] = %g", name, (long long)i,
                                 (long long)j, (double)x[i * dim + j]);
    return PROTOOD_OK;
}

protood_status pood_check_rows(const char *func, const char *name, int64_t n, int64_t dim, const float *x)
{
    protood_status st = pood_check_finite(func, name, n, dim, x);
    if (st != PROTOOD_OK)
        return st;
    for (int64_t i = 0; i < n; i++) {
        int64_t j = 0;
        while (j < dim && x[i * dim + j] == 0.0f)
            j++;
        if (j == dim)
            return pood_fail(PROTOOD_E_NONFINITE, func, "%s row %lld is all zeros and cannot be normalised", name,
                             (long long)i);
    }
    return PROTOOD_OK;
}

protood_status pood_check_labels(const char *func, int64_t n, const int32_t *labels, int64_t n_classes)
{
    if (!labels)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "labels is NULL");
    for (int64_t i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return pood_fail(PROTOOD_E_LABEL, func, "labels[%lld] = %d outside [0, %lld)", (long long)i,
                             labels[i], (long long)n_classes);
    return PROTOOD_OK;
}

protood_status pood_checked_size(const char *func, int64_t a, int64_t b, size_t elem_size, size_t *out)
{
    size_t ab, bytes;
    if (a < 0 || b < 0 || __builtin_mul_overflow((size_t)a, (size_t)b, &ab) ||
        __builtin_mul_overflow(ab, elem_size, &bytes))
        return pood_fail(PROTOOD_E_SHAPE, func, "%lld x %lld elements overflow the address space", (long long)a,
                         (long long)b);
    *out = bytes;
    return PROTOOD_OK;
}
