/* Internal: Sinkhorn-Knopp soft assignment (SPEC.md §2) on caller-provided scratch, so that the
 * PALM step can run it twice per call on the bank's workspace without allocating. */
#ifndef PROTOOD_LIB_SINKHORN_H
#define PROTOOD_LIB_SINKHORN_H

#include <stddef.h>
#include <stdint.h>

#include "reducer.h"

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

/* Sinkhorn over the rows of all ranks (docs/distributed.md): each rank passes its own n rows,
 * q gets those rows of the global result. Per pass it exchanges the p column sums (plus a flag)
 * `iters` times and one status flag. Only the direct route is distributed: the log route needs
 * maxima, which a sum-allreduce cannot form; pood_sinkhorn_dist_ok(bound, epsilon) says whether
 * the direct route holds (every practical epsilon on unit vectors: epsilon >= 0.008). On return
 * `status` is OK, E_CALLBACK (the reducer failed) or E_INTERNAL (scalings overflowed on some
 * rank; every rank reports it), the message recorded under `func`. */
typedef struct pood_sinkhorn_dist {
    const char *func;
    const pood_reducer *reducer;
    double n_total;          /* rows over all ranks */
    protood_status status;   /* out */
} pood_sinkhorn_dist;

int pood_sinkhorn_dist_ok(double bound, double epsilon);
void pood_sinkhorn_reduced(int64_t n, int64_t p, const float *scores, double bound, double epsilon, int32_t iters,
                           const pood_sinkhorn_window *window, double *q, double *scratch, pood_sinkhorn_dist *dist);

/* The largest spread (max - min of the scores, divided by epsilon) that the direct scaling form
 * handles; beyond it pood_sinkhorn works in the log domain. */
#define POOD_SINKHORN_DIRECT_RANGE 250.0
/* Up to this spread the direct route exponentiates in float (vectorised). */
#define POOD_SINKHORN_FLOAT_RANGE 80.0

#endif
