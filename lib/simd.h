/* Internal: loop vectorisation hints. Reductions in double (sums of squares, maxima) do not
 * vectorise without permission to reassociate, which -O2 never assumes; `omp simd` grants it for
 * one loop. The order of a vectorised sum is fixed by the binary, so results stay reproducible.
 * Without OpenMP the hints vanish and the loops run in source order. */
#ifndef PROTOOD_LIB_SIMD_H
#define PROTOOD_LIB_SIMD_H

#if defined(_OPENMP)
#define POOD_PRAGMA(x) _Pragma(#x)
#define POOD_SIMD POOD_PRAGMA(omp simd)
#define POOD_SIMD_SUM(...) POOD_PRAGMA(omp simd reduction(+ : __VA_ARGS__))
#define POOD_SIMD_MAX(var) POOD_PRAGMA(omp simd reduction(max : var))
#define POOD_SIMD_MIN(var) POOD_PRAGMA(omp simd reduction(min : var))
#define POOD_SIMD_OR(var) POOD_PRAGMA(omp simd reduction(| : var))
#else
#define POOD_SIMD
#define POOD_SIMD_SUM(...)
#define POOD_SIMD_MAX(var)
#define POOD_SIMD_MIN(var)
#define POOD_SIMD_OR(var)
#endif

#endif
