/* Prototype bank: shape, parameters, prototypes and their random initialisation. */
#include "bank.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"
#include "rng.h"
#include "validate.h"

/* Parameter table: defaults are the authors' CIFAR-100 settings (SPEC.md §3, §4). */
static const struct {
    const char *name;
    double def;
    double lo, hi;      /* allowed range */
    int lo_open, hi_open;
    int integer;
} param_info[POOD_BANK_N_KEYS + 1] = {
    [PROTOOD_BANK_MOMENTUM] = {"momentum", 0.999, 0.0, 1.0, 0, 1, 0},
    [PROTOOD_BANK_TEMPERATURE] = {"temperature", 0.1, 0.0, INFINITY, 1, 1, 0},
    [PROTOOD_BANK_SINKHORN_EPSILON] = {"sinkhorn_epsilon", 0.05, 0.0, INFINITY, 1, 1, 0},
    [PROTOOD_BANK_SINKHORN_ITERS] = {"sinkhorn_iters", 3, 1, 1000000, 0, 0, 1},
    [PROTOOD_BANK_TOPK] = {"topk", 5, 0, 2147483647.0, 0, 0, 1},
    [PROTOOD_BANK_LAMBDA_PCON] = {"lambda_pcon", 1.0, 0.0, INFINITY, 0, 1, 0},
    [PROTOOD_BANK_PCON_TEMPERATURE] = {"pcon_temperature", 0.5, 0.0, INFINITY, 1, 1, 0},
    [PROTOOD_BANK_COMP_WEIGHT] = {"comp_weight", 1.0, 0.0, INFINITY, 0, 1, 0},
    [PROTOOD_BANK_DIS_BASE_TEMPERATURE] = {"dis_base_temperature", 0.1, 0.0, INFINITY, 1, 1, 0},
    [PROTOOD_BANK_COMP_BASE_TEMPERATURE] = {"comp_base_temperature", 0.07, 0.0, INFINITY, 1, 1, 0},
};

double pood_bank_param_default(int32_t key)
{
    return key >= 1 && key <= POOD_BANK_N_KEYS ? param_info[key].def : NAN;
}

static void scale_rows(int64_t n, int64_t dim, const float *in, float *out, double min_norm)
{
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t j = 0; j < dim; j++)
            s += (double)in[i * dim + j] * in[i * dim + j];
        double norm = sqrt(s);
        double inv = 1.0 / (norm > min_norm ? norm : min_norm);
        for (int64_t j = 0; j < dim; j++)
            out[i * dim + j] = (float)(in[i * dim + j] * inv);
    }
}

void pood_normalize_rows(int64_t n, int64_t dim, const float *in, float *out)
{
    scale_rows(n, dim, in, out, 1e-12);
}

void pood_unit_rows(int64_t n, int64_t dim, const float *in, float *out)
{
    scale_rows(n, dim, in, out, 0.0);
}

protood_status pood_bank_alloc(const char *func, int64_t n_classes, int64_t protos_per_class, int64_t dim,
                               protood_bank **out)
{
    protood_status st;
    if ((st = pood_check_count(func, "n_classes", n_classes)) != PROTOOD_OK ||
        (st = pood_check_count(func, "protos_per_class", protos_per_class)) != PROTOOD_OK ||
        (st = pood_check_count(func, "dim", dim)) != PROTOOD_OK)
        return st;
    size_t bytes;
    int64_t n_protos;
    if (__builtin_mul_overflow(n_classes, protos_per_class, &n_protos))
        return pood_fail(PROTOOD_E_SHAPE, func, "n_classes %lld x protos_per_class %lld overflows",
                         (long long)n_classes, (long long)protos_per_class);
    if ((st = pood_checked_size(func, n_protos, dim, sizeof(float), &bytes)) != PROTOOD_OK)
        return st;
    protood_bank *b = pood_calloc(1, sizeof *b);
    float *protos = pood_malloc(bytes);
    if (!b || !protos) {
        free(b);
        free(protos);
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld x %lld prototypes", (long long)n_protos,
                         (long long)dim);
    }
    b->n_classes = n_classes;
    b->protos_per_class = protos_per_class;
    b->dim = dim;
    b->n_protos = n_protos;
    b->protos = protos;
    for (int32_t k = 1; k <= POOD_BANK_N_KEYS; k++)
        b->params[k] = param_info[k].def;
    *out = b;
    return PROTOOD_OK;
}

protood_status protood_bank_create(protood_bank **out, int64_t n_classes, int64_t protos_per_class, int64_t dim)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    protood_bank *b;
    protood_status st = pood_bank_alloc(__func__, n_classes, protos_per_class, dim, &b);
    if (st != PROTOOD_OK)
        return st;
    /* A new bank is usable at once: the reference PALM initialisation with seed 0. */
    pood_bank_fill_random(b, PROTOOD_INIT_POSITIVE, 0);
    *out = b;
    return PROTOOD_OK;
}

void protood_bank_free(protood_bank *bank)
{
    if (!bank)
        return;
    free(bank->protos);
    free(bank->work);
    free(bank);
}

protood_status protood_bank_clone(protood_bank **out, const protood_bank *src)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!src)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "src is NULL");
    protood_bank *b = pood_malloc(sizeof *b);
    size_t bytes = (size_t)src->n_protos * (size_t)src->dim * sizeof(float);
    float *protos = pood_malloc(bytes);
    if (!b || !protos) {
        free(b);
        free(protos);
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for the copy");
    }
    *b = *src;
    memcpy(protos, src->protos, bytes);
    b->protos = protos;
    b->work = NULL;
    b->work_size = 0;
    b->reducer = (pood_reducer){NULL, NULL, 0, 1};
    *out = b;
    return PROTOOD_OK;
}

protood_status protood_bank_shape(const protood_bank *bank, int64_t *n_classes, int64_t *protos_per_class,
                                  int64_t *dim)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (n_classes)
        *n_classes = bank->n_classes;
    if (protos_per_class)
        *protos_per_class = bank->protos_per_class;
    if (dim)
        *dim = bank->dim;
    return PROTOOD_OK;
}

protood_status pood_bank_check_param(const char *func, protood_status status, const char *where, int32_t key,
                                    double value)
{
    const char *name = param_info[key].name;
    double lo = param_info[key].lo, hi = param_info[key].hi;
    if (!isfinite(value))
        return pood_fail(status, func, "%s%s = %g, must be finite", where, name, value);
    if (value < lo || (param_info[key].lo_open && value == lo) || value > hi ||
        (param_info[key].hi_open && value == hi))
        return pood_fail(status, func, "%s%s = %g outside %c%g, %g%c", where, name, value,
                         param_info[key].lo_open ? '(' : '[', lo, hi, param_info[key].hi_open ? ')' : ']');
    if (param_info[key].integer && value != floor(value))
        return pood_fail(status, func, "%s%s = %g, must be an integer", where, name, value);
    return PROTOOD_OK;
}

protood_status protood_bank_set_param(protood_bank *bank, int32_t key, double value)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (key < 1 || key > POOD_BANK_N_KEYS)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "key = %d is not a bank parameter", key);
    protood_status st = pood_bank_check_param(__func__, PROTOOD_E_INVALID_ARG, "", key, value);
    if (st != PROTOOD_OK)
        return st;
    bank->params[key] = value;
    return PROTOOD_OK;
}

protood_status protood_bank_get_param(const protood_bank *bank, int32_t key, double *value)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (key < 1 || key > POOD_BANK_N_KEYS)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "key = %d is not a bank parameter", key);
    if (!value)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "value is NULL");
    *value = bank->params[key];
    return PROTOOD_OK;
}

void pood_bank_fill_random(protood_bank *bank, int32_t scheme, uint64_t seed)
{
    pood_rng rng;
    pood_rng_seed(&rng, seed);
    int64_t d = bank->dim;
    for (int64_t r = 0; r < bank->n_protos; r++) {
        float *row = bank->protos + r * d;
        double s;
        do { /* an all-zero draw cannot be normalised: draw the row again */
            s = 0.0;
            for (int64_t j = 0; j < d; j++) {
                row[j] = scheme == PROTOOD_INIT_SPHERE ? (float)pood_rng_normal(&rng) : pood_rng_uniform_f32(&rng);
                s += (double)row[j] * row[j];
            }
        } while (s == 0.0);
    }
    pood_normalize_rows(bank->n_protos, d, bank->protos, bank->protos);
}

protood_status protood_bank_init_random(protood_bank *bank, int32_t scheme, uint64_t seed)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (scheme != PROTOOD_INIT_SPHERE && scheme != PROTOOD_INIT_POSITIVE)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scheme = %d is not PROTOOD_INIT_SPHERE (1) or "
                         "PROTOOD_INIT_POSITIVE (2)", scheme);
    pood_bank_fill_random(bank, scheme, seed);
    return PROTOOD_OK;
}

protood_status protood_bank_get_prototypes(const protood_bank *bank, float *out)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    memcpy(out, bank->protos, (size_t)bank->n_protos * (size_t)bank->dim * sizeof(float));
    return PROTOOD_OK;
}

protood_status protood_bank_set_prototypes(protood_bank *bank, const float *in)
{
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    protood_status st = pood_check_rows(__func__, "in", bank->n_protos, bank->dim, in);
    if (st != PROTOOD_OK)
        return st;
    pood_unit_rows(bank->n_protos, bank->dim, in, bank->protos);
    return PROTOOD_OK;
}

protood_status pood_bank_workspace(protood_bank *bank, const char *func, size_t bytes, void **out)
{
    if (bytes > bank->work_size) {
        void *w = pood_malloc(bytes);
        if (!w)
            return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %zu bytes of workspace", bytes);
        free(bank->work);
        bank->work = w;
        bank->work_size = bytes;
    }
    *out = bank->work;
    return PROTOOD_OK;
}
