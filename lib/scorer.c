/* The scorer handle: parameters, validation, fitting (in memory, from a bank, or streamed through
 * the caller's callback), the parallel tile driver behind scoring, and the file format
 * (docs/scorer-format.md). The arithmetic of each kind lives in scorer_knn.c, scorer_maha.c and
 * scorer_proto.c. */
#include "scorer.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "alloc.h"
#include "bank.h"
#include "blas_threads.h"
#include "errors.h"
#include "fileio.h"
#include "serial.h"
#include "simd.h"
#include "validate.h"

static const char *kind_name(int32_t kind)
{
    switch (kind) {
    case PROTOOD_SCORER_KNN: return "KNN";
    case PROTOOD_SCORER_MAHALANOBIS: return "MAHALANOBIS";
    case PROTOOD_SCORER_SSD: return "SSD";
    case PROTOOD_SCORER_PROTOTYPE: return "PROTOTYPE";
    default: return "unknown";
    }
}

static int valid_kind(int32_t kind)
{
    return kind >= PROTOOD_SCORER_KNN && kind <= PROTOOD_SCORER_PROTOTYPE;
}

/* ---- Handle and parameters ---------------------------------------------------------------- */

/* Largest k accepted: every integer up to it is exact in the double of set_param. */
#define MAX_K 9007199254740992.0

protood_status protood_scorer_create(protood_scorer **out, int32_t kind, int64_t dim)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!valid_kind(kind))
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__,
                         "kind = %d is not PROTOOD_SCORER_KNN (1), _MAHALANOBIS (2), _SSD (3) or _PROTOTYPE (4)",
                         kind);
    protood_status st = pood_check_count(__func__, "dim", dim);
    if (st != PROTOOD_OK)
        return st;
    if (dim > INT32_MAX) /* the BLAS takes 32-bit dimensions */
        return pood_fail(PROTOOD_E_SHAPE, __func__, "dim = %lld exceeds %d", (long long)dim, INT32_MAX);
    protood_scorer *s = pood_calloc(1, sizeof *s);
    if (!s)
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for the scorer");
    s->kind = kind;
    s->dim = dim;
    s->k = POOD_SCORER_DEFAULT_K;
    s->normalize = 1;
    s->tile_rows = dim < POOD_SCORER_WIDE_DIM ? POOD_SCORER_TILE_ROWS : 2 * POOD_SCORER_TILE_ROWS;
    s->tile_cols = dim < POOD_SCORER_WIDE_DIM ? POOD_SCORER_TILE_COLS : POOD_SCORER_TILE_COLS / 2;
    *out = s;
    return PROTOOD_OK;
}

void pood_model_free(pood_model *m)
{
    if (!m)
        return;
    free(m->rows);
    free(m->row_sq);
    free(m->origin);
    free(m->proj);
    free(m->signs);
    free(m->centres);
    free(m->centres_f);
    free(m->centres_sq);
    free(m);
}

void protood_scorer_free(protood_scorer *scorer)
{
    if (!scorer)
        return;
    pood_model_free(scorer->model);
    free(scorer);
}

void pood_scorer_set_tiles(protood_scorer *scorer, int64_t tile_rows, int64_t tile_cols)
{
    scorer->tile_rows = tile_rows;
    scorer->tile_cols = tile_cols;
}

protood_status protood_scorer_set_param(protood_scorer *scorer, int32_t key, double value)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    switch (key) {
    case PROTOOD_SCORER_K:
        if (!(value >= 1.0 && value <= MAX_K) || value != floor(value))
            return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "k = %g, must be an integer >= 1", value);
        /* Keep the invariant k <= training rows of a fitted KNN scorer, so scoring cannot fail on it. */
        if (scorer->kind == PROTOOD_SCORER_KNN && scorer->model && value > (double)scorer->model->n_rows)
            return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "k = %g exceeds the %lld training rows of the fitted "
                             "scorer", value, (long long)scorer->model->n_rows);
        scorer->k = (int64_t)value;
        return PROTOOD_OK;
    case PROTOOD_SCORER_NORMALIZE:
        if (value != 0.0 && value != 1.0)
            return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "normalize = %g, must be 0 or 1", value);
        /* The fitted model was built from rows treated one way; scoring queries the other way would
         * compare unlike things. */
        if (scorer->model && (int32_t)value != scorer->normalize)
            return pood_fail(PROTOOD_E_STATE, __func__, "normalize = %g on a scorer fitted with normalize = %d: "
                             "set it before fit", value, scorer->normalize);
        scorer->normalize = (int32_t)value;
        return PROTOOD_OK;
    default:
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "key = %d is not a scorer parameter", key);
    }
}

protood_status protood_scorer_get_param(const protood_scorer *scorer, int32_t key, double *value)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    if (key != PROTOOD_SCORER_K && key != PROTOOD_SCORER_NORMALIZE)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "key = %d is not a scorer parameter", key);
    if (!value)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "value is NULL");
    *value = key == PROTOOD_SCORER_K ? (double)scorer->k : (double)scorer->normalize;
    return PROTOOD_OK;
}

protood_status protood_scorer_info(const protood_scorer *scorer, int32_t *kind, int64_t *dim, int32_t *fitted)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    if (kind)
        *kind = scorer->kind;
    if (dim)
        *dim = scorer->dim;
    if (fitted)
        *fitted = scorer->model != NULL;
    return PROTOOD_OK;
}

/* ---- Fitted model ------------------------------------------------------------------------- */

protood_status pood_model_derive(const char *func, int32_t kind, int64_t dim, pood_model *m)
{
    if (kind == PROTOOD_SCORER_KNN) {
        m->row_sq = pood_malloc((size_t)m->n_rows * sizeof(float));
        if (!m->row_sq)
            return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld row norms", (long long)m->n_rows);
        m->row_sq_max = 0.0;
        for (int64_t i = 0; i < m->n_rows; i++) {
            double s = 0.0;
            for (int64_t j = 0; j < dim; j++)
                s += (double)m->rows[i * dim + j] * m->rows[i * dim + j];
            m->row_sq[i] = (float)s;
            m->row_sq_max = s > m->row_sq_max ? s : m->row_sq_max;
        }
        m->row_norm_max = sqrt(m->row_sq_max);
    } else if (kind == PROTOOD_SCORER_MAHALANOBIS || kind == PROTOOD_SCORER_SSD) {
        const int64_t r = m->rank;
        m->centres_f = pood_malloc((size_t)m->n_centres * (size_t)r * sizeof(float));
        m->centres_sq = pood_malloc((size_t)m->n_centres * sizeof(double));
        if (!m->centres_f || !m->centres_sq)
            return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld projected centres", (long long)m->n_centres);
        m->centres_norm_max = 0.0;
        for (int64_t c = 0; c < m->n_centres; c++) {
            double sq = 0.0, norm = 0.0;
            for (int64_t t = 0; t < r; t++) {
                double v = m->centres[c * r + t];
                m->centres_f[c * r + t] = (float)(m->signs[t] * v);
                sq += m->signs[t] * v * v;
                norm += v * v;
            }
            m->centres_sq[c] = sq;
            norm = sqrt(norm);
            m->centres_norm_max = norm > m->centres_norm_max ? norm : m->centres_norm_max;
        }
    }
    return PROTOOD_OK;
}

/* ---- Fit sessions ------------------------------------------------------------------------- */

struct pood_fit {
    int32_t kind;
    int32_t normalize;
    int64_t dim, n, added;
    pood_model *rows_model;      /* KNN, PROTOTYPE: the rows, filled as they arrive */
    pood_gauss_fit *gauss;       /* MAHALANOBIS, SSD */
};

void pood_fit_free(pood_fit *f)
{
    if (!f)
        return;
    pood_model_free(f->rows_model);
    pood_gauss_fit_free(f->gauss);
    free(f);
}

protood_status pood_fit_begin(const char *func, const protood_scorer *s, int64_t n, int64_t n_classes,
                              pood_fit **out)
{
    pood_fit *f = pood_calloc(1, sizeof *f);
    if (!f)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for the fit");
    f->kind = s->kind;
    f->normalize = s->normalize;
    f->dim = s->dim;
    f->n = n;
    protood_status st = PROTOOD_OK;
    if (s->kind == PROTOOD_SCORER_KNN || s->kind == PROTOOD_SCORER_PROTOTYPE) {
        size_t bytes;
        if ((st = pood_checked_size(func, n, s->dim, sizeof(float), &bytes)) == PROTOOD_OK) {
            f->rows_model = pood_calloc(1, sizeof *f->rows_model);
            if (f->rows_model)
                f->rows_model->rows = pood_malloc(bytes);
            if (!f->rows_model || !f->rows_model->rows)
                st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld x %lld rows", (long long)n,
                               (long long)s->dim);
            else
                f->rows_model->n_rows = n;
        }
    } else {
        st = pood_gauss_fit_begin(func, s->kind, s->dim, s->normalize,
                                  s->kind == PROTOOD_SCORER_MAHALANOBIS ? n_classes : 1, &f->gauss);
    }
    if (st != PROTOOD_OK) {
        pood_fit_free(f);
        return st;
    }
    *out = f;
    return PROTOOD_OK;
}

void pood_fit_add(pood_fit *f, int64_t count, const float *rows, const int32_t *labels)
{
    if (f->gauss) {
        pood_gauss_fit_add(f->gauss, count, rows, f->kind == PROTOOD_SCORER_MAHALANOBIS ? labels : NULL);
    } else {
        float *dst = f->rows_model->rows + f->added * f->dim;
        if (f->normalize)
            pood_unit_rows(count, f->dim, rows, dst);
        else
            memcpy(dst, rows, (size_t)count * (size_t)f->dim * sizeof(float));
    }
    f->added += count;
}

protood_status pood_fit_finish(const char *func, pood_fit *f, pood_model **out)
{
    if (f->gauss)
        return pood_gauss_fit_finish(func, f->gauss, out);
    protood_status st = pood_model_derive(func, f->kind, f->dim, f->rows_model);
    if (st != PROTOOD_OK)
        return st;
    *out = f->rows_model;
    f->rows_model = NULL;
    return PROTOOD_OK;
}

/* ---- Validation --------------------------------------------------------------------------- */

/* Largest squared row norm accepted without normalisation: the float32 GEMMs must not overflow. */
#define MAX_RAW_SQ_NORM 1e36

/* Rows of a batch whose first row is row `first` of the whole input, reported with absolute
 * indices ("x[1027][3] = nan"). Rows to be normalised must not be all zeros; rows used as given
 * must have a squared norm the float32 products can hold. */
static protood_status check_rows_at(const char *func, const char *name, int64_t first, int64_t count, int64_t dim,
                                    const float *x, int normalize)
{
    for (int64_t i = 0; i < count; i++) {
        const float *row = x + i * dim;
        double sq = 0.0;
        POOD_SIMD_SUM(sq)
        for (int64_t j = 0; j < dim; j++)
            sq += (double)row[j] * row[j];
        if (!isfinite(sq)) /* NaN or Inf somewhere in the row (the double sum cannot overflow) */
            for (int64_t j = 0; j < dim; j++)
                if (!isfinite(row[j]))
                    return pood_fail(PROTOOD_E_NONFINITE, func, "%s[%lld][%lld] = %g", name,
                                     (long long)(first + i), (long long)j, (double)row[j]);
        if (normalize && sq == 0.0)
            return pood_fail(PROTOOD_E_NONFINITE, func, "%s row %lld is all zeros and cannot be normalised", name,
                             (long long)(first + i));
        if (!normalize && sq > MAX_RAW_SQ_NORM)
            return pood_fail(PROTOOD_E_NONFINITE, func, "%s row %lld has squared norm %g, beyond float32 products "
                             "(normalize = 0 needs < %g)", name, (long long)(first + i), sq, MAX_RAW_SQ_NORM);
    }
    return PROTOOD_OK;
}

static protood_status check_labels_at(const char *func, int64_t first, int64_t count, const int32_t *labels,
                                      int64_t n_classes)
{
    for (int64_t i = 0; i < count; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return pood_fail(PROTOOD_E_LABEL, func, "labels[%lld] = %d outside [0, %lld)", (long long)(first + i),
                             labels[i], (long long)n_classes);
    return PROTOOD_OK;
}

/* What fit needs besides the rows themselves, for n training rows. */
static protood_status check_fit_shape(const char *func, const protood_scorer *s, int64_t n, int64_t n_classes)
{
    protood_status st = pood_check_count(func, "n", n);
    if (st != PROTOOD_OK)
        return st;
    size_t bytes;
    if ((st = pood_checked_size(func, n, s->dim, sizeof(float), &bytes)) != PROTOOD_OK)
        return st;
    if (s->kind == PROTOOD_SCORER_KNN && s->k > n)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "k = %lld exceeds n = %lld training rows", (long long)s->k,
                         (long long)n);
    if (s->kind == PROTOOD_SCORER_MAHALANOBIS) {
        if ((st = pood_check_count(func, "n_classes", n_classes)) != PROTOOD_OK)
            return st;
        /* Checked before anything is sized by n_classes: more classes than rows leaves one empty. */
        if (n_classes > n)
            return pood_fail(PROTOOD_E_INVALID_ARG, func, "n_classes = %lld exceeds n = %lld rows, so some class "
                             "has no rows", (long long)n_classes, (long long)n);
        if (n_classes > INT32_MAX) /* the BLAS takes 32-bit dimensions */
            return pood_fail(PROTOOD_E_SHAPE, func, "n_classes = %lld exceeds %d", (long long)n_classes, INT32_MAX);
    }
    if (s->kind == PROTOOD_SCORER_PROTOTYPE && n > INT32_MAX)
        return pood_fail(PROTOOD_E_SHAPE, func, "n = %lld prototypes exceed %d", (long long)n, INT32_MAX);
    return PROTOOD_OK;
}

static void commit_model(protood_scorer *s, pood_model *m)
{
    pood_model_free(s->model);
    s->model = m;
    s->shards = 0;
}

/* ---- Fit ---------------------------------------------------------------------------------- */

protood_status protood_scorer_fit(protood_scorer *scorer, int64_t n, const float *x, const int32_t *labels,
                                  int64_t n_classes)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    if (scorer->reducer.fn && scorer->kind != PROTOOD_SCORER_PROTOTYPE) /* scorer_dist.c */
        return pood_scorer_fit_dist(__func__, scorer, n, x, labels, n_classes);
    protood_status st = check_fit_shape(__func__, scorer, n, n_classes);
    if (st != PROTOOD_OK)
        return st;
    if (!x)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "x is NULL");
    if ((st = check_rows_at(__func__, "x", 0, n, scorer->dim, x, scorer->normalize)) != PROTOOD_OK)
        return st;
    if (scorer->kind == PROTOOD_SCORER_MAHALANOBIS && (st = pood_check_labels(__func__, n, labels, n_classes)) != PROTOOD_OK)
        return st;

    pood_fit *f;
    pood_model *m = NULL;
    if ((st = pood_fit_begin(__func__, scorer, n, n_classes, &f)) != PROTOOD_OK)
        return st;
    pood_fit_add(f, n, x, labels);
    st = pood_fit_finish(__func__, f, &m);
    pood_fit_free(f);
    if (st == PROTOOD_OK)
        commit_model(scorer, m);
    return st;
}

protood_status protood_scorer_fit_bank(protood_scorer *scorer, const protood_bank *bank)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    if (!bank)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "bank is NULL");
    if (scorer->kind != PROTOOD_SCORER_PROTOTYPE)
        return pood_fail(PROTOOD_E_STATE, __func__, "scorer kind = %d (%s): only a PROTOTYPE scorer is fitted to a "
                         "bank", scorer->kind, kind_name(scorer->kind));
    int64_t n_classes, per_class, dim;
    protood_status st = protood_bank_shape(bank, &n_classes, &per_class, &dim);
    if (st != PROTOOD_OK)
        return st;
    if (dim != scorer->dim)
        return pood_fail(PROTOOD_E_SHAPE, __func__, "bank dim = %lld, scorer dim = %lld", (long long)dim,
                         (long long)scorer->dim);
    int64_t n = n_classes * per_class; /* the bank checked this product when it was created */
    if ((st = check_fit_shape(__func__, scorer, n, 0)) != PROTOOD_OK)
        return st;
    float *protos = pood_malloc((size_t)n * (size_t)dim * sizeof(float));
    if (!protos)
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for %lld prototypes", (long long)n);
    pood_fit *f = NULL;
    pood_model *m = NULL;
    if ((st = protood_bank_get_prototypes(bank, protos)) == PROTOOD_OK &&
        (st = pood_fit_begin(__func__, scorer, n, 0, &f)) == PROTOOD_OK) {
        pood_fit_add(f, n, protos, NULL);
        st = pood_fit_finish(__func__, f, &m);
    }
    pood_fit_free(f);
    free(protos);
    if (st == PROTOOD_OK)
        commit_model(scorer, m);
    return st;
}

/* Pull rows [first, first + count) from the caller into rows (and labels when non-NULL). */
static protood_status pull(const char *func, protood_feature_fn fn, void *user, int64_t first, int64_t count,
                           float *rows, int32_t *labels)
{
    int32_t rc = fn(user, first, count, rows, labels);
    if (rc != 0)
        return pood_fail(PROTOOD_E_CALLBACK, func, "fn returned %d for rows [%lld, %lld)", rc, (long long)first,
                         (long long)(first + count));
    return PROTOOD_OK;
}

protood_status protood_scorer_fit_stream(protood_scorer *scorer, int64_t n, int64_t batch, protood_feature_fn fn,
                                         void *user, int64_t n_classes)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    /* A local fit would silently ignore the other ranks' rows. */
    if (scorer->reducer.fn)
        return pood_fail(PROTOOD_E_STATE, __func__, "the scorer has a reducer: streaming fits are single-process, "
                         "fit the rank's rows with protood_scorer_fit");
    protood_status st = check_fit_shape(__func__, scorer, n, n_classes);
    if (st != PROTOOD_OK || (st = pood_check_count(__func__, "batch", batch)) != PROTOOD_OK)
        return st;
    if (!fn)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "fn is NULL");
    if (batch > n)
        batch = n;
    const int need_labels = scorer->kind == PROTOOD_SCORER_MAHALANOBIS;
    const int64_t d = scorer->dim;
    float *rows = pood_malloc((size_t)batch * (size_t)d * sizeof(float)); /* <= n x d, checked above */
    int32_t *labels = need_labels ? pood_malloc((size_t)batch * sizeof(int32_t)) : NULL;
    if (!rows || (need_labels && !labels)) {
        free(rows);
        free(labels);
        return pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for a batch of %lld rows", (long long)batch);
    }
    pood_fit *f = NULL;
    pood_model *m = NULL;
    if ((st = pood_fit_begin(__func__, scorer, n, n_classes, &f)) == PROTOOD_OK) {
        for (int64_t first = 0; first < n && st == PROTOOD_OK; first += batch) {
            int64_t count = n - first < batch ? n - first : batch;
            if ((st = pull(__func__, fn, user, first, count, rows, labels)) != PROTOOD_OK ||
                (st = check_rows_at(__func__, "rows", first, count, d, rows, scorer->normalize)) != PROTOOD_OK ||
                (need_labels && (st = check_labels_at(__func__, first, count, labels, n_classes)) != PROTOOD_OK))
                break;
            pood_fit_add(f, count, rows, labels);
        }
        if (st == PROTOOD_OK)
            st = pood_fit_finish(__func__, f, &m);
    }
    pood_fit_free(f);
    free(rows);
    free(labels);
    if (st == PROTOOD_OK)
        commit_model(scorer, m);
    return st;
}

/* ---- Scoring: tiles of queries, in parallel --------------------------------------------- */

typedef void (*tile_fn)(const protood_scorer *, int64_t, const float *, float *, void *);

/* One scoring call's execution plan and scratch, reused for every chunk of a streamed call. */
typedef struct tile_run {
    const protood_scorer *s;
    tile_fn fn;
    int64_t tile_rows;
    int threads;          /* > 1: tiles in parallel, BLAS single-threaded; 1: BLAS as configured */
    size_t stride;
    unsigned char *scratch;
} tile_run;

/* Queries per tile for a call scoring m rows. The tile fixes which queries share a GEMM, so it is
 * chosen once per call from m alone: a streamed call then forms exactly the tiles of the
 * in-memory call and gives the same bits. */
static int64_t plan_tile_rows(const protood_scorer *s, int64_t m, int threads)
{
    int64_t rows = s->tile_rows;
    if (s->kind == PROTOOD_SCORER_KNN) { /* ~24 k bytes of selection state per query: a tile <= 64 MB */
        int64_t cap = (int64_t)(((size_t)64 << 20) / pood_knn_bytes_per_query(s->k));
        rows = rows < cap ? rows : (cap > 1 ? cap : 1);
    }
    if (threads > 1 && m < rows * threads) { /* few queries: still give every thread a tile */
        int64_t share = (m + threads - 1) / threads;
        rows = rows < share ? rows : share;
    }
    return rows;
}

static protood_status run_begin(const char *func, const protood_scorer *s, int64_t m, tile_run *run)
{
    memset(run, 0, sizeof *run);
    run->s = s;
    size_t (*scratch_fn)(const protood_scorer *, int64_t);
    switch (s->kind) {
    case PROTOOD_SCORER_KNN: run->fn = pood_knn_tile; scratch_fn = pood_knn_scratch; break;
    case PROTOOD_SCORER_PROTOTYPE: run->fn = pood_proto_tile; scratch_fn = pood_proto_scratch; break;
    default: run->fn = pood_gauss_tile; scratch_fn = pood_gauss_scratch; break;
    }
    /* The mode is fixed per call, not per chunk (see run_chunk). */
    int threads = pood_max_threads();
    run->tile_rows = plan_tile_rows(s, m, threads);
    run->threads = threads;
    int64_t tiles = (m + run->tile_rows - 1) / run->tile_rows;
    int64_t slots = tiles < threads ? tiles : threads;
    size_t bytes = scratch_fn(s, run->tile_rows);
    if (bytes == 0 || bytes > SIZE_MAX / 2)
        return pood_fail(PROTOOD_E_SHAPE, func, "scratch for %lld queries per tile overflows",
                         (long long)run->tile_rows);
    run->stride = (bytes + 63) & ~(size_t)63;
    if (run->stride > SIZE_MAX / (size_t)slots)
        return pood_fail(PROTOOD_E_SHAPE, func, "scratch for %lld threads overflows", (long long)slots);
    run->scratch = pood_aligned_alloc(64, run->stride * (size_t)slots);
    if (!run->scratch)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %zu bytes of scratch", run->stride * (size_t)slots);
    return PROTOOD_OK;
}

/* Score `count` validated queries; tiles start at q. */
static void run_chunk(const tile_run *run, int64_t count, const float *q, float *out)
{
    const protood_scorer *s = run->s;
    const int64_t tr = run->tile_rows, d = s->dim, tiles = (count + tr - 1) / tr;
    if (run->threads <= 1) {
        for (int64_t t = 0; t < tiles; t++) {
            int64_t rows = count - t * tr < tr ? count - t * tr : tr;
            run->fn(s, rows, q + t * tr * d, out + t * tr, run->scratch);
        }
        return;
    }
    /* Every tile runs its GEMMs single-threaded, also when this chunk has one tile, so that a tile's
     * bits never depend on how many tiles a chunk of a streamed call happened to hold. */
    pood_blas_serial_begin();
#ifdef _OPENMP
    int team = tiles < run->threads ? (int)tiles : run->threads;
#pragma omp parallel for num_threads(team) schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; t++) {
        int64_t rows = count - t * tr < tr ? count - t * tr : tr;
        run->fn(s, rows, q + t * tr * d, out + t * tr, run->scratch + (size_t)omp_get_thread_num() * run->stride);
    }
#endif
    pood_blas_serial_end();
}

static void run_end(tile_run *run)
{
    free(run->scratch);
    run->scratch = NULL;
}

static protood_status check_score_args(const char *func, const protood_scorer *s, int64_t m, const float *out)
{
    if (!s)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "scorer is NULL");
    protood_status st = pood_check_count(func, "m", m);
    if (st != PROTOOD_OK)
        return st;
    size_t bytes;
    if ((st = pood_checked_size(func, m, s->dim, sizeof(float), &bytes)) != PROTOOD_OK)
        return st;
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "scores_out is NULL");
    if (!s->model)
        return pood_fail(PROTOOD_E_STATE, func, "the %s scorer is not fitted: call protood_scorer_fit first",
                         kind_name(s->kind));
    return PROTOOD_OK;
}

protood_status protood_scorer_score(const protood_scorer *scorer, int64_t m, const float *q, float *scores_out)
{
    if (scorer && scorer->shards && scorer->reducer.fn) /* scorer_dist.c */
        return pood_scorer_score_dist(__func__, scorer, m, q, scores_out);
    protood_status st = pood_scorer_check_whole(__func__, scorer);
    if (st == PROTOOD_OK)
        st = check_score_args(__func__, scorer, m, scores_out);
    if (st != PROTOOD_OK)
        return st;
    if (!q)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "q is NULL");
    if ((st = check_rows_at(__func__, "q", 0, m, scorer->dim, q, scorer->normalize)) != PROTOOD_OK)
        return st;
    tile_run run;
    if ((st = run_begin(__func__, scorer, m, &run)) != PROTOOD_OK)
        return st;
    run_chunk(&run, m, q, scores_out);
    run_end(&run);
    return PROTOOD_OK;
}

protood_status protood_scorer_score_stream(const protood_scorer *scorer, int64_t m, int64_t batch,
                                           protood_feature_fn fn, void *user, float *scores_out)
{
    protood_status st = pood_scorer_check_whole(__func__, scorer);
    if (scorer && scorer->shards && st == PROTOOD_OK) /* streaming is not distributed */
        st = pood_fail(PROTOOD_E_STATE, __func__, "the KNN scorer holds one shard of %d: use protood_scorer_score",
                       (int)scorer->shards);
    if (st == PROTOOD_OK)
        st = check_score_args(__func__, scorer, m, scores_out);
    if (st != PROTOOD_OK || (st = pood_check_count(__func__, "batch", batch)) != PROTOOD_OK)
        return st;
    if (!fn)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "fn is NULL");
    if (batch > m)
        batch = m;
    tile_run run;
    if ((st = run_begin(__func__, scorer, m, &run)) != PROTOOD_OK)
        return st;
    /* Rows wait in `rows` until they fill whole tiles (a remainder of < tile_rows is carried to the
     * next batch); scores go to `scores` and reach scores_out only when every row succeeded. */
    const int64_t d = scorer->dim, tr = run.tile_rows;
    size_t row_bytes;
    float *rows = NULL, *scores = NULL;
    if ((st = pood_checked_size(__func__, batch + tr - 1, d, sizeof(float), &row_bytes)) == PROTOOD_OK) {
        rows = pood_malloc(row_bytes);
        scores = pood_malloc((size_t)m * sizeof(float));
    }
    if (st != PROTOOD_OK) {
        /* recorded by pood_checked_size */
    } else if (!rows || !scores) {
        st = pood_fail(PROTOOD_E_NOMEM, __func__, "no memory for a batch of %lld rows", (long long)batch);
    } else {
        int64_t next = 0, held = 0, done = 0;
        while (done < m) {
            int64_t count = m - next < batch ? m - next : batch;
            if ((st = pull(__func__, fn, user, next, count, rows + held * d, NULL)) != PROTOOD_OK ||
                (st = check_rows_at(__func__, "rows", next, count, d, rows + held * d, scorer->normalize)) !=
                    PROTOOD_OK)
                break;
            next += count;
            held += count;
            int64_t ready = next == m ? held : held / tr * tr;
            run_chunk(&run, ready, rows, scores + done);
            done += ready;
            held -= ready;
            memmove(rows, rows + ready * d, (size_t)held * (size_t)d * sizeof(float));
        }
    }
    if (st == PROTOOD_OK)
        memcpy(scores_out, scores, (size_t)m * sizeof(float));
    free(rows);
    free(scores);
    run_end(&run);
    return st;
}

/* ---- File format (docs/scorer-format.md) -------------------------------------------------- */

static const unsigned char MAGIC[8] = {'P', 'O', 'O', 'D', 'S', 'C', 'O', 'R'};
#define FORMAT_VERSION 1u
#define HEADER_BYTES 48   /* magic .. payload size */
#define TRAILER_BYTES 4   /* CRC-32 */

static protood_status serialize(const char *func, const protood_scorer *s, pood_writer *w)
{
    if (s->shards) /* loaded, a shard would score as if it were the whole training set */
        return pood_fail(PROTOOD_E_STATE, func, "the KNN scorer holds one shard of %d ranks (fitted with a reducer) "
                         "and cannot be saved", (int)s->shards);
    const pood_model *m = s->model;
    pood_put_bytes(w, MAGIC, sizeof MAGIC);
    pood_put_u32(w, FORMAT_VERSION);
    pood_put_u32(w, (uint32_t)s->kind);
    pood_put_i64(w, s->dim);
    pood_put_i64(w, s->k);
    pood_put_u32(w, (uint32_t)s->normalize);
    pood_put_u32(w, m ? 1u : 0u);
    size_t size_at = w->size;
    pood_put_u64(w, 0); /* payload size, patched below */
    if (m) {
        if (s->kind == PROTOOD_SCORER_KNN || s->kind == PROTOOD_SCORER_PROTOTYPE) {
            pood_put_i64(w, m->n_rows);
            pood_put_f32s(w, m->rows, (size_t)m->n_rows * (size_t)s->dim);
        } else {
            pood_put_i64(w, m->n_centres);
            pood_put_i64(w, m->rank);
            pood_put_f64s(w, m->origin, (size_t)s->dim);
            pood_put_f32s(w, m->proj, (size_t)s->dim * (size_t)m->rank);
            pood_put_f64s(w, m->signs, (size_t)m->rank);
            pood_put_f64s(w, m->centres, (size_t)m->n_centres * (size_t)m->rank);
        }
    }
    if (w->failed)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory to serialise the scorer");
    uint64_t payload = (uint64_t)(w->size - HEADER_BYTES);
    for (int i = 0; i < 8; i++)
        w->buf[size_at + (size_t)i] = (unsigned char)(payload >> (8 * i));
    pood_put_u32(w, pood_crc32(w->buf, w->size));
    if (w->failed)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory to serialise the scorer");
    return PROTOOD_OK;
}

/* "path 'x': " when reading a file, "" for a buffer: prefixes every format message. */
typedef struct source {
    char text[600];
} source;

static source source_of(const char *path)
{
    source src = {{0}};
    if (path)
        snprintf(src.text, sizeof src.text, "path '%s': ", path);
    return src;
}

#define FORMAT_FAIL(...) pood_fail(PROTOOD_E_FORMAT, func, __VA_ARGS__)

static int all_finite_f32(const float *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

static int all_finite_f64(const double *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return 0;
    return 1;
}

/* Stored rows must be rows fit could have left: unit vectors when the scorer normalises (fit
 * normalises in double and rounds to float32; the slack is the bank format's), otherwise within
 * the squared norm fit accepts. Other rows would score outside the kind's range, e.g. a
 * PROTOTYPE "cosine" of 6e14, or overflow the float32 products. NULL if all pass. */
#define STORED_NORM_TOLERANCE 1e-3
static const char *check_stored_rows(const float *rows, int64_t n, int64_t dim, uint32_t normalize)
{
    for (int64_t i = 0; i < n; i++) {
        double sq = 0.0;
        for (int64_t j = 0; j < dim; j++)
            sq += (double)rows[i * dim + j] * rows[i * dim + j];
        if (normalize && !(fabs(sqrt(sq) - 1.0) <= STORED_NORM_TOLERANCE))
            return "a row is not unit-norm although normalize = 1";
        if (!normalize && sq > MAX_RAW_SQ_NORM)
            return "a row's squared norm exceeds what fit accepts with normalize = 0";
    }
    return NULL;
}

/* A Gaussian model's origin is its training mean, so it obeys the rows' bound. With normalize = 1
 * every query has norm 1, so |q - origin| <= 2 per coordinate, and the float32 products of
 * scoring (p = W^T (q - origin), then p . m_c) are bounded by the model alone: keep every partial
 * sum of p under 1e30 and |p| |m_c| under 1e38 (float32 ends at 3.4e38), or a score could be NaN
 * (inf - inf). Fitted models are far inside (W scales as 1/sqrt of eigenvalues kept above
 * D * 2.2e-16 of the largest); a stored origin coordinate of 5e80 was not. Queries of a raw model
 * are bounded only by fit's 1e36 squared norm, and fit itself can make models whose extreme
 * queries overflow, so no such bound is imposed there. NULL if the model passes. */
#define GAUSS_P_LIMIT 1e30
#define GAUSS_CROSS_LIMIT 1e38
static const char *check_gauss_range(const pood_model *m, int64_t dim, uint32_t normalize)
{
    double sq = 0.0;
    for (int64_t j = 0; j < dim; j++)
        sq += m->origin[j] * m->origin[j];
    if (normalize ? !(sqrt(sq) <= 1.0 + STORED_NORM_TOLERANCE) : !(sq <= MAX_RAW_SQ_NORM))
        return "origin outside the range of a training mean";
    if (!normalize)
        return NULL;
    double p_sq = 0.0, m_max = 0.0;
    for (int64_t t = 0; t < m->rank; t++) {
        double col = 0.0; /* bounds |p_t| and each of its partial sums */
        for (int64_t j = 0; j < dim; j++)
            col += 2.0 * fabs((double)m->proj[j * m->rank + t]);
        if (!(col <= GAUSS_P_LIMIT))
            return "projection too large for float32 scoring";
        p_sq += col * col;
    }
    for (int64_t c = 0; c < m->n_centres; c++) {
        double c_sq = 0.0;
        for (int64_t t = 0; t < m->rank; t++)
            c_sq += m->centres[c * m->rank + t] * m->centres[c * m->rank + t];
        m_max = sqrt(c_sq) > m_max ? sqrt(c_sq) : m_max;
    }
    if (!(sqrt(p_sq) * m_max <= GAUSS_CROSS_LIMIT) || !(m_max <= GAUSS_P_LIMIT))
        return "projected centres too large for float32 scoring";
    return NULL;
}

/* Read exactly rows x cols values of `elem` bytes into a new array, or fail as a format error. */
static void *get_array(pood_reader *r, int64_t rows, int64_t cols, size_t elem)
{
    size_t n;
    if (rows < 0 || cols < 0 || __builtin_mul_overflow((size_t)rows, (size_t)cols, &n) || n > SIZE_MAX / elem ||
        n * elem > pood_reader_left(r)) {
        r->overrun = 1;
        return NULL;
    }
    void *out = pood_malloc(n * elem > 0 ? n * elem : 1);
    if (!out)
        return NULL;
    if (elem == sizeof(float))
        pood_get_f32s(r, out, n);
    else
        pood_get_f64s(r, out, n);
    return out;
}

static protood_status parse(const char *func, const char *path, const unsigned char *buf, size_t size,
                            protood_scorer **out)
{
    source src = source_of(path);
    if (size < HEADER_BYTES + TRAILER_BYTES)
        return FORMAT_FAIL("%s%zu bytes is too short for a scorer (at least %d)", src.text, size,
                           HEADER_BYTES + TRAILER_BYTES);
    if (memcmp(buf, MAGIC, sizeof MAGIC) != 0)
        return FORMAT_FAIL("%snot a libprotood scorer (bad magic)", src.text);
    pood_reader r = {buf, size - TRAILER_BYTES, sizeof MAGIC, 0};
    uint32_t version = pood_get_u32(&r);
    if (version != FORMAT_VERSION)
        return FORMAT_FAIL("%sformat version %u is not supported (this library reads version %u)", src.text, version,
                           FORMAT_VERSION);
    pood_reader trailer = {buf + size - TRAILER_BYTES, TRAILER_BYTES, 0, 0};
    uint32_t stored = pood_get_u32(&trailer), computed = pood_crc32(buf, size - TRAILER_BYTES);
    if (stored != computed)
        return FORMAT_FAIL("%schecksum mismatch (stored 0x%08x, computed 0x%08x): the data are corrupt", src.text,
                           stored, computed);
    uint32_t kind = pood_get_u32(&r);
    int64_t dim = pood_get_i64(&r), k = pood_get_i64(&r);
    uint32_t normalize = pood_get_u32(&r), fitted = pood_get_u32(&r);
    uint64_t payload = pood_get_u64(&r);
    if (kind < PROTOOD_SCORER_KNN || kind > PROTOOD_SCORER_PROTOTYPE)
        return FORMAT_FAIL("%skind = %u is unknown", src.text, kind);
    if (dim < 1 || dim > INT32_MAX)
        return FORMAT_FAIL("%sdim = %lld outside [1, %d]", src.text, (long long)dim, INT32_MAX);
    if (k < 1 || (double)k > MAX_K)
        return FORMAT_FAIL("%sk = %lld is not >= 1", src.text, (long long)k);
    if (normalize > 1 || fitted > 1)
        return FORMAT_FAIL("%snormalize = %u, fitted = %u: each must be 0 or 1", src.text, normalize, fitted);
    if (payload != pood_reader_left(&r) || (!fitted && payload != 0))
        return FORMAT_FAIL("%spayload size %llu does not match the %zu bytes present", src.text,
                           (unsigned long long)payload, pood_reader_left(&r));

    protood_scorer *s;
    protood_status st = protood_scorer_create(&s, (int32_t)kind, dim);
    if (st != PROTOOD_OK)
        return st;
    s->k = k;
    s->normalize = (int32_t)normalize;
    if (!fitted) {
        *out = s;
        return PROTOOD_OK;
    }
    pood_model *m = pood_calloc(1, sizeof *m);
    if (!m) {
        protood_scorer_free(s);
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for the model");
    }
    const char *bad = NULL;
    if (kind == PROTOOD_SCORER_KNN || kind == PROTOOD_SCORER_PROTOTYPE) {
        m->n_rows = pood_get_i64(&r);
        if (m->n_rows < 1 || (kind == PROTOOD_SCORER_PROTOTYPE && m->n_rows > INT32_MAX))
            bad = "row count out of range";
        else if (kind == PROTOOD_SCORER_KNN && k > m->n_rows)
            bad = "k exceeds the training rows";
        else if (!(m->rows = get_array(&r, m->n_rows, dim, sizeof(float))) && !r.overrun)
            st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld rows", (long long)m->n_rows);
        else if (r.overrun)
            bad = "rows truncated";
        else if (!all_finite_f32(m->rows, (size_t)m->n_rows * (size_t)dim))
            bad = "non-finite value in the rows";
        else
            bad = check_stored_rows(m->rows, m->n_rows, dim, normalize);
    } else {
        m->n_centres = pood_get_i64(&r);
        m->rank = pood_get_i64(&r);
        if (m->n_centres < 1 || m->n_centres > INT32_MAX || (kind == PROTOOD_SCORER_SSD && m->n_centres != 1))
            bad = "centre count out of range";
        else if (m->rank < 1 || m->rank > dim)
            bad = "rank outside [1, dim]";
        else if (!(m->origin = get_array(&r, dim, 1, sizeof(double))) ||
                 !(m->proj = get_array(&r, dim, m->rank, sizeof(float))) ||
                 !(m->signs = get_array(&r, m->rank, 1, sizeof(double))) ||
                 !(m->centres = get_array(&r, m->n_centres, m->rank, sizeof(double)))) {
            if (r.overrun)
                bad = "model arrays truncated";
            else
                st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for the model");
        } else if (!all_finite_f64(m->origin, (size_t)dim) ||
                   !all_finite_f32(m->proj, (size_t)dim * (size_t)m->rank) ||
                   !all_finite_f64(m->centres, (size_t)m->n_centres * (size_t)m->rank)) {
            bad = "non-finite value in the model";
        } else {
            for (int64_t t = 0; t < m->rank && !bad; t++)
                if (m->signs[t] != 1.0 && m->signs[t] != -1.0)
                    bad = "eigenvalue sign other than +1 or -1";
            if (!bad)
                bad = check_gauss_range(m, dim, normalize);
        }
    }
    if (!bad && st == PROTOOD_OK && pood_reader_left(&r) != 0)
        bad = "trailing bytes after the model";
    if (bad)
        st = FORMAT_FAIL("%s%s scorer: %s", src.text, kind_name((int32_t)kind), bad);
    if (st == PROTOOD_OK)
        st = pood_model_derive(func, (int32_t)kind, dim, m);
    if (st != PROTOOD_OK) {
        pood_model_free(m);
        protood_scorer_free(s);
        return st;
    }
    s->model = m;
    *out = s;
    return PROTOOD_OK;
}

protood_status protood_scorer_to_buffer(const protood_scorer *scorer, void *buf, size_t capacity, size_t *size_out)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    if (!size_out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "size_out is NULL");
    pood_writer w = {0};
    protood_status st = serialize(__func__, scorer, &w);
    if (st == PROTOOD_OK && buf) {
        if (capacity < w.size)
            st = pood_fail(PROTOOD_E_INVALID_ARG, __func__, "capacity = %zu bytes, the scorer needs %zu", capacity,
                           w.size);
        else
            memcpy(buf, w.buf, w.size);
    }
    if (st == PROTOOD_OK)
        *size_out = w.size;
    pood_writer_free(&w);
    return st;
}

protood_status protood_scorer_from_buffer(protood_scorer **out, const void *buf, size_t size)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!buf)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "buf is NULL");
    return parse(__func__, NULL, buf, size, out);
}

protood_status protood_scorer_save(const protood_scorer *scorer, const char *path)
{
    if (!scorer)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "scorer is NULL");
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "path is NULL");
    pood_writer w = {0};
    protood_status st = serialize(__func__, scorer, &w);
    if (st == PROTOOD_OK) {
        pood_chunk chunk = {w.buf, w.size};
        st = pood_write_file_atomic(__func__, path, &chunk, 1);
    }
    pood_writer_free(&w);
    return st;
}

protood_status protood_scorer_load(protood_scorer **out, const char *path)
{
    if (!out)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "out is NULL");
    if (!path)
        return pood_fail(PROTOOD_E_INVALID_ARG, __func__, "path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f)
        return pood_fail(PROTOOD_E_IO, __func__, "path '%s': cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return pood_fail(PROTOOD_E_IO, __func__, "path '%s': cannot determine the size: %s", path, strerror(errno));
    }
    buf = pood_malloc(size > 0 ? (size_t)size : 1);
    if (!buf) {
        fclose(f);
        return pood_fail(PROTOOD_E_NOMEM, __func__, "path '%s': no memory for %ld bytes", path, size);
    }
    size_t got = fread(buf, 1, (size_t)size, f);
    int read_error = ferror(f);
    fclose(f);
    protood_status st;
    if (read_error || got != (size_t)size)
        st = pood_fail(PROTOOD_E_IO, __func__, "path '%s': read %zu of %ld bytes", path, got, size);
    else
        st = parse(__func__, path, buf, (size_t)size, out);
    free(buf);
    return st;
}
