/* Internal: the PALM step with its intermediate matrices exposed, for the reference tests. */
#ifndef PROTOOD_LIB_PALM_H
#define PROTOOD_LIB_PALM_H

#include <stdint.h>

#include "protood.h"

/* Optional copies of the step's intermediates (SPEC.md §3), each n x P float32 or NULL:
 * q1 = the first Sinkhorn pass (step 2), a = the EMA update weights A (step 4), w = the loss
 * weights W (step 7). */
typedef struct pood_palm_trace {
    float *q1;
    float *a;
    float *w;
} pood_palm_trace;

/* protood_palm_step with a trace (NULL: none); errors are reported under `func`. */
protood_status pood_palm_step(const char *func, protood_bank *bank, int64_t n, const float *h,
                              const int32_t *labels, double *losses, float *grad, const pood_palm_trace *trace);

/* Square P x P matrix helpers shared with the CIDER step: fill the lower triangle from the upper
 * one (after ssyrk), and G := G + G^T. */
void pood_mirror_upper(int64_t P, float *G);
void pood_add_transpose(int64_t P, float *G);

#endif
