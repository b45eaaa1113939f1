/* Internal: the order-preserving score keys and sort behind the metrics of SPEC.md §7. */
#ifndef PROTOOD_LIB_METRICS_H
#define PROTOOD_LIB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "protood.h"

/* Map a non-NaN float to a uint32 whose unsigned order is the float order, -0 and +0 mapping to
 * the same key (they compare equal, so they must tie). */
uint32_t pood_score_key(float x);
/* Inverse of pood_score_key (-0 comes back as +0). */
float pood_score_from_key(uint32_t key);
/* Sort keys[0..n) ascending, using tmp[0..n) as scratch (LSD radix, byte digits). */
void pood_sort_keys(uint32_t *keys, uint32_t *tmp, size_t n);

/* The rate 1 - tpr as the published code writes it: when tpr is a decimal of at most 15 digits
 * (0.95), the double nearest the decimal complement (0.05), not the floating-point difference
 * 1 - 0.95 = 0.050000000000000044, which moves round(0.05 * n) at n = 10. Otherwise 1 - tpr. */
double pood_complement_rate(double tpr);

/* Python's round() of a finite double >= 0 to an integer: ties to even, whatever the caller's
 * floating-point rounding mode. */
double pood_round_half_even(double x);

#endif
