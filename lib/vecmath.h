/* Internal: the row kernels of the training steps that are not matrix products: a float exp that
 * compilers vectorise (libm's exp is a call per element and never vectorises without
 * -ffast-math), softmax sums, maxima and dot products. Once the products are in BLAS, these
 * loops are what is left of a step's time. */
#ifndef PROTOOD_LIB_VECMATH_H
#define PROTOOD_LIB_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* The hot loops of the training steps are compiled twice, for the x86-64 baseline (SSE2) and for
 * AVX2, and the loader picks one by the CPU (GCC's function multiversioning through an ifunc):
 * twice the vector width for the exp and Sinkhorn passes, without raising the build's baseline.
 * Both versions compute the same thing; only the order of some partial sums differs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define POOD_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define POOD_MULTIVERSION
#endif

/* e^x for float x <= 88, within 2 ulp of the correctly rounded value for x in [-87, 88]; 0 below
 * -87.3 (where float leaves the normal range; callers only feed differences to a maximum, x <= 0,
 * where such terms are negligible next to the maximum's 1). Cephes' expf: x = n ln2 + r with
 * |r| <= ln2/2 (ln2 split in two so that n ln2 is exact), a degree-6 polynomial for e^r, and 2^n
 * built in the exponent bits. The clamp and the flush select by bit masks instead of ?: so that a
 * loop over it vectorises at -O2 without if-conversion. */
static inline float pood_expf(float x)
{
    const float lo = -87.0f;
    int32_t xb, lob, yb;
    memcpy(&xb, &x, sizeof xb);
    memcpy(&lob, &lo, sizeof lob);
    int32_t below = -(int32_t)!(x >= lo);      /* all ones where x is clamped (NaN too: no UB below) */
    int32_t keep = -(int32_t)(x >= -87.3f);    /* all zeros where the result flushes to 0 (or x is NaN) */
    int32_t cb = (xb & ~below) | (lob & below);
    float xc;
    memcpy(&xc, &cb, sizeof xc);
    /* round(xc / ln2) by the 1.5 * 2^23 trick: SSE2 has no vector rounding instruction */
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
    memcpy(&yb, &y, sizeof yb);
    yb &= keep;
    memcpy(&y, &yb, sizeof y);
    return y;
}

/* max_j x[j] for n >= 1 (-inf for n = 0), with eight independent partial maxima so that the loop
 * vectorises and does not wait on one comparison chain. */
#if defined(__GNUC__)
__attribute__((noinline, unused))
#endif
POOD_MULTIVERSION static float pood_max_f(int64_t n, const float *x)
{
    float part[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int t = 0; t < 8; t++)
            part[t] = x[j + t] > part[t] ? x[j + t] : part[t];
    for (; j < n; j++)
        part[0] = x[j] > part[0] ? x[j] : part[0];
    for (int t = 1; t < 8; t++)
        part[0] = part[t] > part[0] ? part[t] : part[0];
    return part[0];
}

/* sum_j a[j] b[j] of float rows, accumulated in double with eight independent partial sums. */
#if defined(__GNUC__)
__attribute__((noinline, unused))
#endif
POOD_MULTIVERSION static double pood_dot_f(int64_t n, const float *a, const float *b)
{
    double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int t = 0; t < 8; t++)
            part[t] += (double)a[j + t] * b[j + t];
    for (; j < n; j++)
        part[0] += (double)a[j] * b[j];
    return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

/* out[j] = e^((x[j] - shift) * scale) for j < n, with out == x allowed, or out NULL to only sum;
 * returns the sum in double. The softmax rows of the steps go through here. Kept out of line:
 * inlined into a caller, GCC -O3 unswitches the caller's loops into copies it then fails to
 * vectorise. */
#if defined(__GNUC__)
__attribute__((noinline, unused))
#endif
POOD_MULTIVERSION static double pood_exp_sum(int64_t n, const float *x, float shift, float scale, float *out)
{
    double total = 0.0;
    if (out == x) { /* in place: one pointer, so the vectoriser needs no run-time overlap check */
        float *xo = out;
#pragma omp simd reduction(+ : total)
        for (int64_t j = 0; j < n; j++) {
            float e = pood_expf((xo[j] - shift) * scale);
            xo[j] = e;
            total += e;
        }
    } else if (out) {
#pragma omp simd reduction(+ : total)
        for (int64_t j = 0; j < n; j++) {
            float e = pood_expf((x[j] - shift) * scale);
            out[j] = e;
            total += e;
        }
    } else {
#pragma omp simd reduction(+ : total)
        for (int64_t j = 0; j < n; j++)
            total += pood_expf((x[j] - shift) * scale);
    }
    return total;
}

#endif
