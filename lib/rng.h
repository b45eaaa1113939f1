/* Internal: a seeded generator that gives the same numbers on every platform. */
#ifndef PROTOOD_LIB_RNG_H
#define PROTOOD_LIB_RNG_H

#include <stdint.h>

/* xoshiro256** (Blackman & Vigna), seeded through splitmix64 so that any 64-bit seed, 0 included,
 * gives a well-mixed state. */
typedef struct pood_rng {
    uint64_t s[4];
} pood_rng;

void pood_rng_seed(pood_rng *r, uint64_t seed);
uint64_t pood_rng_next(pood_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double pood_rng_uniform(pood_rng *r);
/* Uniform in [0, 1) as float32 with 24 random bits (like torch.rand). */
float pood_rng_uniform_f32(pood_rng *r);
/* Uniform integer in [0, n), without modulo bias; n >= 1. */
uint64_t pood_rng_below(pood_rng *r, uint64_t n);
/* Standard normal: Marsaglia's polar method over a logarithm built from IEEE basic operations
 * only (frexp and a fixed series), so the result does not depend on the platform's libm. */
double pood_rng_normal(pood_rng *r);

#endif
