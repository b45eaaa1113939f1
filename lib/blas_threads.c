/* BLAS threading control around the library's own parallel loops (see blas_threads.h). */
#include "blas_threads.h"

#include <pthread.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(PROTOOD_BLAS_OPENBLAS)
#include <cblas.h>
#endif

int pood_max_threads(void)
{
#ifdef _OPENMP
    int n = omp_get_max_threads();
    return n > 0 ? n : 1;
#else
    return 1;
#endif
}

#if defined(PROTOOD_BLAS_OPENBLAS)
/* openblas_get_parallel(): 0 sequential build, 1 pthreads, 2 OpenMP. Only the pthreads build
 * needs (and tolerates) the global switch: in the OpenMP build openblas_set_num_threads calls
 * omp_set_num_threads, which would shrink our own parallel regions instead. */
static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static int serial_depth;
static int saved_threads;

void pood_blas_serial_begin(void)
{
    if (openblas_get_parallel() != 1)
        return;
    pthread_mutex_lock(&serial_lock);
    if (serial_depth++ == 0) {
        saved_threads = openblas_get_num_threads();
        if (saved_threads > 1)
            openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&serial_lock);
}

void pood_blas_serial_end(void)
{
    if (openblas_get_parallel() != 1)
        return;
    pthread_mutex_lock(&serial_lock);
    if (--serial_depth == 0 && saved_threads > 1)
        openblas_set_num_threads(saved_threads);
    pthread_mutex_unlock(&serial_lock);
}
#else
void pood_blas_serial_begin(void) {}
void pood_blas_serial_end(void) {}
#endif
