/* Every heap allocation of the library goes through these wrappers, so that the fault tests
 * (tests/test_faults.c) can make any single one of them fail and check that the caller reports
 * PROTOOD_E_NOMEM and leaves its handles as they were. Release with free(). */
#ifndef POOD_ALLOC_H
#define POOD_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *pood_malloc(size_t size);
void *pood_calloc(size_t count, size_t size);
void *pood_realloc(void *ptr, size_t size);
void *pood_aligned_alloc(size_t alignment, size_t size);

/* Tests only (not exported): make the n-th allocation from now fail, n >= 1; 0 disarms. Whether
 * it fired is then reported by pood_alloc_fault_fired(). Process-wide, not for concurrent use. */
void pood_alloc_fail_nth(long n);
bool pood_alloc_fault_fired(void);

#endif
