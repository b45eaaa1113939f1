/* Internal: the caller's sum-allreduce attached to a bank or a scorer (docs/distributed.md). */
#ifndef PROTOOD_LIB_REDUCER_H
#define PROTOOD_LIB_REDUCER_H

#include <stdint.h>

#include "protood.h"

typedef struct pood_reducer {
    protood_allreduce_fn fn;   /* NULL: single process */
    void *user;
    int32_t rank, size;
} pood_reducer;

/* Sum buf over the participants; a failing callback is recorded under `func` as E_CALLBACK with
 * `what` (which exchange) and the value it returned. */
protood_status pood_reduce(const char *func, const pood_reducer *r, const char *what, double *buf, int64_t count);

/* The agreement exchange that opens every distributed call: each rank reports whether its own
 * arguments passed (`local` = its status) and `extra` numbers (may be 0). buf must hold
 * 1 + extra doubles; extra values are summed in place. Returns `local` if it failed, E_CALLBACK,
 * E_STATE if another rank failed, else OK. */
protood_status pood_reduce_agree(const char *func, const pood_reducer *r, protood_status local, double *buf,
                                 int64_t extra);

#endif
