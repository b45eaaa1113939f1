/* Internal: Sinkhorn-Knopp soft assignment (SPEC.md §2) on caller-provided scratch, so that the
 * PALM step can run it twice per call on the bank's workspace without allocating. */
#ifndef PROTOOD_LIB_SINKHORN_H
#define PROTOOD_LIB_SINKHORN_H

#include <stddef.h>
#include <stdint.h>

/* Scratch (in doubles) that pood_sinkhorn needs besides its output, for an n x p problem run by
 * the calling thread's OpenMP team size. Must be queried on the thread that calls pood_sinkhorn. */
size_t pood_sinkhorn_scratch_doubles(int64_t n, int64_t p);

/* Rows whose output is only read on a window of columns: row i on [group[i] * width, +width),
 * e.g. the prototypes of the row's class. The last pass then writes only those entries. */
typedef struct pood_sinkhorn_window {
    const int32_t *group;
    int64_t width;
} pood_sinkhorn_window;

/* SPEC.md §2 on scores (n x p float32) into q (n x p, float64: small entries that float32 would
 * flush to zero still count when the PALM weights renormalise a class's top-k entries).
 * n, p >= 1, epsilon > 0, iters >= 1, scores finite (not checked here). `bound` > 0 promises
 * |scores| <= bound (cosines of unit vectors: a little over 1) and saves a pass over the scores
 * to find their range; 0 means unknown. `window` NULL: every entry of q is written; otherwise
 * only each row's window is guaranteed (the rest of q is scratch). `scratch` holds
 * pood_sinkhorn_scratch_doubles(n, p) doubles. */
void pood_sinkhorn(int64_t n, int64_t p, const float *scores, double bound, double epsilon, int32_t iters,
                   const pood_sinkhorn_window *window, double *q, double *scratch);

/* The largest spread (max - min of the scores, divided by epsilon) that the direct scaling form
 * handles; beyond it pood_sinkhorn works in the log domain. */
#define POOD_SINKHORN_DIRECT_RANGE 250.0
/* Up to this spread the direct route exponentiates in float (vectorised). */
#define POOD_SINKHORN_FLOAT_RANGE 80.0

#endif
