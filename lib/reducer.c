/* Attaching the caller's sum-allreduce to a handle, and the exchanges every distributed call shares. */
#include "reducer.h"

#include "bank.h"
#include "errors.h"
#include "scorer.h"

protood_status pood_reduce(const char *func, const pood_reducer *r, const char *what, double *buf, int64_t count)
{
    int32_t rc = r->fn(r->user, buf, count);
    if (rc != 0)
        return pood_fail(PROTOOD_E_CALLBACK, func, "reducer returned %d on rank %d of %d (%s, %lld values)", (int)rc,
                         (int)r->rank, (int)r->size, what, (long long)count);
    return PROTOOD_OK;
}

protood_status pood_reduce_agree(const char *func, const pood_reducer *r, protood_status local, double *buf,
                                 int64_t extra)
{
    /* A failed rank still joins this one exchange, so that no rank is left waiting in the next. */
    buf[0] = local != PROTOOD_OK ? 1.0 : 0.0;
    if (local != PROTOOD_OK)
        for (int64_t t = 1; t <= extra; t++)
            buf[t] = 0.0;
    if (local != PROTOOD_OK) {
        (void)r->fn(r->user, buf, 1 + extra);   /* its own message stays the last error */
        return local;
    }
    protood_status st = pood_reduce(func, r, "argument check", buf, 1 + extra);
    if (st != PROTOOD_OK)
        return st;
    if (buf[0] != 0.0)
        return pood_fail(PROTOOD_E_STATE, func, "the call failed on %.0f other rank(s) of %d; nothing was changed",
                         buf[0], (int)r->size);
    return PROTOOD_OK;
}

static protood_status check_reducer(const char *func, protood_allreduce_fn fn, int32_t rank, int32_t size)
{
    if (!fn && (rank != 0 || size != 1))
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "fn is NULL (single process) with rank = %d, size = %d; "
                         "must be 0 and 1", (int)rank, (int)size);
    if (size < 1)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "size = %d, must be >= 1", (int)size);
    if (rank < 0 || rank >= size)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "rank = %d outside [0, size = %d)", (int)rank, (int)size);
    return PROTOOD_OK;
}

protood_status protood_bank_set_reducer(protood_bank *bank, protood_allreduce_fn fn, void *user, int32_t rank,
                                        int32_t size)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    protood_status st = check_reducer(__func__, fn, rank, size);
    if (st != PROTOOD_OK)
        return st;
    bank->reducer = (pood_reducer){fn, fn ? user : NULL, rank, size};
    return PROTOOD_OK;
}

protood_status protood_scorer_set_reducer(protood_scorer *scorer, protood_allreduce_fn fn, void *user,
                                          int32_t rank, int32_t size)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    protood_status st = check_reducer(__func__, fn, rank, size);
    if (st != PROTOOD_OK)
        return st;
    scorer->reducer = (pood_reducer){fn, fn ? user : NULL, rank, size};
    return PROTOOD_OK;
}
