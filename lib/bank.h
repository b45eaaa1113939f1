/* Internal: the prototype bank handle, shared by the bank, the training steps and the scorers. */
#ifndef PROTOOD_LIB_BANK_H
#define PROTOOD_LIB_BANK_H

#include <stddef.h>
#include <stdint.h>

#include "protood.h"
#include "reducer.h"

#define POOD_BANK_N_KEYS 10   /* keys 1..10 of protood.h */

struct protood_bank {
    int64_t n_classes;
    int64_t protos_per_class;   /* K */
    int64_t dim;                /* D */
    int64_t n_protos;           /* P = n_classes * K */
    double params[POOD_BANK_N_KEYS + 1];   /* indexed by PROTOOD_BANK_* key; [0] unused */
    float *protos;              /* P x D, class-major, every row at unit norm */

    /* Scratch for the training steps, grown on demand and kept so that a step allocates nothing
     * after the first at a given batch size. Never copied by clone, never saved. */
    void *work;
    size_t work_size;

    /* The caller's allreduce for data-parallel steps (fn NULL: single process). Never copied by
     * clone, never saved: it belongs to this process's communicator. */
    pood_reducer reducer;
};

/* Scratch of at least `bytes` from the bank's workspace. On allocation failure the old workspace is
 * kept, E_NOMEM is recorded under `func`, and the bank is otherwise unchanged. */
protood_status pood_bank_workspace(protood_bank *bank, const char *func, size_t bytes, void **out);

/* A bank of the given shape with default parameters and uninitialised prototypes. Shape errors
 * (INVALID_ARG for a count < 1, SHAPE for an overflow) and NOMEM are recorded under `func`. */
protood_status pood_bank_alloc(const char *func, int64_t n_classes, int64_t protos_per_class, int64_t dim,
                               protood_bank **out);

/* OK if `value` is allowed for `key` (1..POOD_BANK_N_KEYS, checked by the caller); otherwise
 * records "func: <where><name> = <value> ..." and returns `status` (INVALID_ARG for set_param,
 * FORMAT for a file being loaded). */
protood_status pood_bank_check_param(const char *func, protood_status status, const char *where, int32_t key,
                                    double value);

/* Default value of each key (SPEC.md §3, §4); keys outside 1..POOD_BANK_N_KEYS give NaN. */
double pood_bank_param_default(int32_t key);

/* Row-wise n2 of SPEC.md §1: x / max(||x||, 1e-12), with the norm accumulated in double. */
void pood_normalize_rows(int64_t n, int64_t dim, const float *in, float *out);
/* x / ||x|| without the 1e-12 floor, for rows that become prototypes and for the scorers' inputs:
 * any finite non-zero float32 row then gets unit norm (its squares can neither underflow nor
 * overflow a double), whereas n2 leaves a row of norm below 1e-12 short of unit length (a row of
 * magnitude 1e-30 would become a vector of norm 1e-18, scoring as the origin). Rows must not be
 * all zero. */
void pood_unit_rows(int64_t n, int64_t dim, const float *in, float *out);

/* Fill bank->protos with a random scheme (validated by the caller). */
void pood_bank_fill_random(protood_bank *bank, int32_t scheme, uint64_t seed);

#endif
