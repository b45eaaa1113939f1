/* Internal: a float exp that compilers vectorise, for the softmax and Sinkhorn loops that
 * dominate a training step once the products are in BLAS (libm's exp is a call per element and
 * never vectorises without -ffast-math). */
#ifndef PROTOOD_LIB_FASTEXP_H
#define PROTOOD_LIB_FASTEXP_H

#include <stdint.h>
#include <string.h>

/* e^x for float x, within 2 ulp of the correctly rounded value for x in [-87, 88]; 0 below -87.3
 * (where float leaves the normal range; callers only feed differences to a maximum, x <= 0, so
 * these terms are negligible next to the maximum's 1). Cephes' expf: x = n ln2 + r with
 * |r| <= ln2/2 (ln2 split in two so that n ln2 is exact), a degree-6 polynomial for e^r, and 2^n
 * built in the exponent bits. Branch-free, so a loop over it vectorises. */
static inline float pood_expf(float x)
{
    float xc = x < -87.0f ? -87.0f : x;
    xc = xc > 88.0f ? 88.0f : xc;
    /* round(x / ln2) by the 1.5 * 2^23 trick: exact for |x / ln2| < 2^22, and SSE2 has no round */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < -87.3f ? 0.0f : y;
}

#endif
