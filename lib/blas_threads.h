/* Internal: keeping the BLAS single-threaded while the library's own OpenMP threads call it. */
#ifndef PROTOOD_LIB_BLAS_THREADS_H
#define PROTOOD_LIB_BLAS_THREADS_H

/* Number of OpenMP threads a parallel loop of the library would use (1 without OpenMP). */
int pood_max_threads(void);

/* Bracket a parallel region whose threads each call the BLAS on their own tile.
 *
 * Why: a threaded BLAS called from several threads at once oversubscribes the cores, and with
 * OpenBLAS's pthreads build its thread pool and ours fight for them (measured 30% slower on two
 * cores). How depends on the BLAS:
 *   - OpenBLAS, pthreads build: it has no per-call or per-thread setting in 0.3.21, so the global
 *     thread count is set to 1 for as long as at least one such region runs (a counted, locked
 *     section: concurrent callers nest correctly and the first caller's value is restored).
 *   - OpenBLAS OpenMP build, BLIS (OpenMP), and any BLAS that threads with OpenMP: a BLAS call
 *     inside our parallel region opens a nested region, which OpenMP runs with one thread unless
 *     the user enabled nesting (OMP_MAX_ACTIVE_LEVELS > 1), so nothing needs changing.
 * Every _begin must be paired with one _end on the same thread. */
void pood_blas_serial_begin(void);
void pood_blas_serial_end(void);

#endif
