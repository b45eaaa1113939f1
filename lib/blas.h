/* Internal: the CBLAS interface of whichever BLAS the build selected (OpenBLAS or BLIS). */
#ifndef PROTOOD_LIB_BLAS_H
#define PROTOOD_LIB_BLAS_H

/* Debian's BLIS cblas.h defines static helpers that no caller uses; keep them from turning every
 * file that multiplies matrices into a warning. */
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif
#include <cblas.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#endif
