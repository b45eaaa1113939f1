/* Independent float64 implementations of the training steps (SPEC.md §2-§4, with the library's
 * documented departures: no Sinkhorn floor where float64 exp(S/eps) overflows, a prototype kept when
 * its EMA update cancels, no dispersion loss for one class), and the check of a library step
 * against them: losses, prototypes, and the gradient against central differences. Shared by the
 * step suites and the extreme-input suite. */
#ifndef PROTOOD_REFSTEPS_H
#define PROTOOD_REFSTEPS_H

#include <stddef.h>
#include <stdint.h>

#include "protood.h"

/* max |got - want| relative to max(|want|, 1). */
double tu_max_abs_err(const float *got, const double *want, size_t n);

/* Sinkhorn in float64 (in the log domain where exp(S/eps) overflows) on n x p scores; out gets
 * N Q (every row summing to 1 where no floor applies). */
void tu_ref_sinkhorn(int64_t n, int64_t p, const double *s, double eps, int iters, double *out);

/* ---- PALM (SPEC.md §3) ---- */

typedef struct tu_palm_params {
    int64_t C, K, D;
    double m, tau, eps, lambda, tau_p;
    int iters, topk;
} tu_palm_params;

/* What the reference autograd treats as constants: Sinkhorn outputs, T, A, W, the pcon shift. */
typedef struct tu_palm_frozen {
    double *A, *W, *shift, *pn;   /* n x P, n x P, P, and P' (P x D) where L_mle treats it as constant */
} tu_palm_frozen;

/* losses[3]; pout (P x D) may be NULL. With `fresh` non-NULL the constants are computed and stored
 * there; with `frozen` non-NULL they are taken from it (for finite differences). */
void tu_ref_palm(const tu_palm_params *rp, int64_t n, const double *h, const int32_t *y, const float *p0,
                 double *losses, double *pout, tu_palm_frozen *fresh, const tu_palm_frozen *frozen);

/* A bank of rp's shape and parameters with prototypes drawn by PROTOOD_INIT_SPHERE from seed. */
protood_bank *tu_palm_bank(const tu_palm_params *rp, uint64_t seed);

/* What a check measured: the largest |gradient| by finite differences, the largest contribution
 * of the loss path that reaches h only through the prototype updates (lambda L_pcon for PALM,
 * L_dis for CIDER), and the largest gradient error relative to max(1, max |gradient|). */
typedef struct tu_step_check {
    double gmax, path, err;
} tu_step_check;

/* One PALM step of bank b (parameters rp) on h (n x D, labels y or NULL) against tu_ref_palm:
 * losses within 1e-5 relative, prototypes, A and W within 1e-5, the gradient within 1e-4 of
 * central differences (step 1e-6, or 1e-18 in rows below n2's 1e-12 floor). Moves b. */
tu_step_check tu_check_palm_step(const tu_palm_params *rp, protood_bank *b, int64_t n, const float *h,
                                 const int32_t *y);

/* ---- CIDER (SPEC.md §4) ---- */

typedef struct tu_cider_params {
    int64_t C, D;
    double m, tau, w, b_dis, b_comp;
} tu_cider_params;

/* losses[3]; mu_out (C x D) may be NULL; mu_const (C x D) non-NULL: L_comp uses these prototypes
 * (the reference detaches them there), else the updated ones. */
void tu_ref_cider(const tu_cider_params *rp, int64_t n, const double *h, const int32_t *y, const float *p0,
                  double *losses, double *mu_out, const double *mu_const);

protood_bank *tu_cider_bank(const tu_cider_params *rp, uint64_t seed);

/* One CIDER step against tu_ref_cider, as tu_check_palm_step. Moves b. */
tu_step_check tu_check_cider_step(const tu_cider_params *rp, protood_bank *b, int64_t n, const float *h,
                                  const int32_t *y);

#endif
