/* Error reporting, checked allocation, a clock and the seeded random generator. */
#include "fmnist.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int fm_fail(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("fmnist_ood: ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
    return -1;
}

void *fm_alloc(size_t count, size_t size, const char *what)
{
    if (size != 0 && count > SIZE_MAX / size) {
        fm_fail("%s: %zu x %zu bytes overflows", what, count, size);
        return NULL;
    }
    size_t bytes = count * size;
    void *p = malloc(bytes > 0 ? bytes : 1); /* malloc(0) may return NULL */
    if (!p)
        fm_fail("%s: out of memory (%zu bytes)", what, bytes);
    return p;
}

double fm_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void fm_rng_seed(fm_rng *rng, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t fm_rng_next(fm_rng *rng)
{
    uint64_t *s = rng->s;
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

float fm_rng_uniform(fm_rng *rng)
{
    return (float)(fm_rng_next(rng) >> 40) * 0x1.0p-24f;
}

uint32_t fm_rng_below(fm_rng *rng, uint32_t n)
{
    /* Rejection keeps every value equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = fm_rng_next(rng);
    while (x >= limit);
    return (uint32_t)(x % n);
}

float fm_rng_normal(fm_rng *rng)
{
    /* Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]. */
    double u = 1.0 - (double)(fm_rng_next(rng) >> 11) * 0x1.0p-53;
    double v = (double)(fm_rng_next(rng) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

void fm_rng_shuffle(fm_rng *rng, int64_t *items, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)fm_rng_below(rng, (uint32_t)(i + 1));
        int64_t t = items[i];
        items[i] = items[j];
        items[j] = t;
    }
}
