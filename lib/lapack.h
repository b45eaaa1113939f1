/* Internal: the few LAPACK routines the library calls, declared here because Debian's OpenBLAS
 * ships no LAPACKE and the reference LAPACKE is not always installed. These are the Fortran
 * entry points: every argument by pointer, 32-bit integers (LP64), and one hidden trailing
 * length argument per CHARACTER argument. gfortran (>= 8) passes those lengths as size_t; leaving
 * them out works by accident on x86-64 and breaks elsewhere, so they are always passed. */
#ifndef PROTOOD_LIB_LAPACK_H
#define PROTOOD_LIB_LAPACK_H

#include <stddef.h>

typedef int pood_lapack_int;

/* Symmetric eigendecomposition by divide and conquer: eigenvalues ascending in w, eigenvectors
 * (jobz = 'V') overwrite the column-major matrix a. */
void dsyevd_(const char *jobz, const char *uplo, const pood_lapack_int *n, double *a,
             const pood_lapack_int *lda, double *w, double *work, const pood_lapack_int *lwork,
             pood_lapack_int *iwork, const pood_lapack_int *liwork, pood_lapack_int *info,
             size_t jobz_len, size_t uplo_len);

#endif
