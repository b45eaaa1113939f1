/* Portable random numbers: xoshiro256** + splitmix64, and a libm-independent normal.
 * Determinism across platforms rests on IEEE-754 double arithmetic with no fused multiply-add
 * contraction; meson builds with -std=c11, under which GCC and Clang do not contract. */
#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void pood_rng_seed(pood_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t pood_rng_next(pood_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double pood_rng_uniform(pood_rng *r)
{
    return (double)(pood_rng_next(r) >> 11) * 0x1.0p-53;
}

float pood_rng_uniform_f32(pood_rng *r)
{
    return (float)(pood_rng_next(r) >> 40) * 0x1.0p-24f;
}

uint64_t pood_rng_below(pood_rng *r, uint64_t n)
{
    /* Rejection keeps every value equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = pood_rng_next(r);
    while (x >= limit);
    return x % n;
}

/* Natural logarithm of x > 0 from frexp (exact) and the series of 2 atanh(s), |s| <= 0.1716,
 * truncated where the next term is below 1e-19. */
static double portable_log(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752440) {
        m *= 2.0;
        e -= 1;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k <= 23; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return e * 0.69314718055994530942 + 2.0 * sum;
}

double pood_rng_normal(pood_rng *r)
{
    for (;;) {
        double u = 2.0 * pood_rng_uniform(r) - 1.0, v = 2.0 * pood_rng_uniform(r) - 1.0;
        double q = u * u + v * v;
        if (q > 0.0 && q < 1.0)
            return u * sqrt(-2.0 * portable_log(q) / q);   /* sqrt is correctly rounded in IEEE */
    }
}
