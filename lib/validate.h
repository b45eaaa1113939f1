/* Internal: boundary checks shared by every entry point that takes feature rows or labels. */
#ifndef PROTOOD_LIB_VALIDATE_H
#define PROTOOD_LIB_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "protood.h"

/* n >= 1 rows of `dim` finite floats, none all-zero; `name` is the argument name for messages
 * ("h", "x", "q"). Reports the first offending element, e.g. "h[3][7] = nan". */
protood_status pood_check_rows(const char *func, const char *name, int64_t n, int64_t dim, const float *x);
/* Like pood_check_rows but all-zero rows are allowed (raw features that are not normalised). */
protood_status pood_check_finite(const char *func, const char *name, int64_t n, int64_t dim, const float *x);
/* Every labels[i] in [0, n_classes). */
protood_status pood_check_labels(const char *func, int64_t n, const int32_t *labels, int64_t n_classes);
/* n >= 1 (named `name`). */
protood_status pood_check_count(const char *func, const char *name, int64_t n);
/* a * b * elem_size without overflow of size_t; E_SHAPE otherwise. */
protood_status pood_checked_size(const char *func, int64_t a, int64_t b, size_t elem_size, size_t *out);

#endif
