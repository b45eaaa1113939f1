#include "alloc.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Allocations left before the injected failure; 0 = none armed. In normal use this is one relaxed
 * atomic load per allocation, against calls that are made once per step or fit. */
static atomic_long fail_countdown;
static atomic_bool fault_fired;

static bool inject_failure(void)
{
    if (atomic_load_explicit(&fail_countdown, memory_order_relaxed) == 0)
        return false;
    if (atomic_fetch_sub(&fail_countdown, 1) != 1)
        return false;
    atomic_store(&fault_fired, true);
    return true;
}

void *pood_malloc(size_t size)
{
    return inject_failure() ? NULL : malloc(size);
}

void *pood_calloc(size_t count, size_t size)
{
    return inject_failure() ? NULL : calloc(count, size);
}

void *pood_realloc(void *ptr, size_t size)
{
    return inject_failure() ? NULL : realloc(ptr, size);
}

void *pood_aligned_alloc(size_t alignment, size_t size)
{
    return inject_failure() ? NULL : aligned_alloc(alignment, size);
}

void pood_alloc_fail_nth(long n)
{
    atomic_store(&fault_fired, false);
    atomic_store(&fail_countdown, n > 0 ? n : 0);
}

bool pood_alloc_fault_fired(void)
{
    return atomic_load(&fault_fired);
}
