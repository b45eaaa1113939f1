/* Internal: Sinkhorn-Knopp soft assignment (SPEC.md §2) on caller-provided scratch, so that the
 * PALM step can run it twice per call on the bank's workspace without allocating. */
#ifndef PROTOOD_LIB_SINKHORN_H
#define PROTOOD_LIB_SINKHORN_H

#include <stddef.h>
#include <stdint.h>

/* Scratch (in doubles) that pood_sinkhorn needs besides its output, for an n x p problem run by
 * the calling thread's OpenMP team size. Must be queried on the thread that calls pood_sinkhorn. */
size_t pood_sinkhorn_scratch_doubles(int64_t n, int64_t p);

/* SPEC.md §2 on scores (n x p float32) into q (n x p, float64: small entries that float32 would
 * flush to zero still count when the PALM weights renormalise a class's top-k entries).
 * n, p >= 1, epsilon > 0, iters >= 1, scores finite (not checked here). `bound` > 0 promises
 * |scores| <= bound (cosines of unit vectors: a little over 1) and saves a pass over the scores
 * to find their range; 0 means unknown. `scratch` holds pood_sinkhorn_scratch_doubles(n, p)
 * doubles. */
void pood_sinkhorn(int64_t n, int64_t p, const float *scores, double bound, double epsilon, int32_t iters,
                   double *q, double *scratch);

/* The largest spread (max - min of the scores, divided by epsilon) that the direct scaling form
 * handles; beyond it pood_sinkhorn works in the log domain. */
#define POOD_SINKHORN_DIRECT_RANGE 250.0
/* Up to this spread the direct route exponentiates in float (vectorised). */
#define POOD_SINKHORN_FLOAT_RANGE 80.0

#endif
