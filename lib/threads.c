/* protood_set_threads: one knob for the library's OpenMP loops and the BLAS under them. */
#include "protood.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(PROTOOD_BLAS_OPENBLAS)
#include <cblas.h>
#elif defined(PROTOOD_BLAS_BLIS)
#include <blis.h>
#endif

#include "errors.h"

protood_status protood_set_threads(int32_t n)
{
    if (n < 1)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "n = %d, must be >= 1", n);
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
#if defined(PROTOOD_BLAS_OPENBLAS)
    openblas_set_num_threads(n);
#elif defined(PROTOOD_BLAS_BLIS)
    bli_thread_set_num_threads(n);
#endif
    return PROTOOD_OK;
}
