/* Scorers over several processes (docs/distributed.md): protood_scorer_fit and _score with the
 * caller's sum-allreduce attached.
 *
 *   - MAHALANOBIS / SSD: every rank accumulates the moments of its rows (scorer_maha.c) with the
 *     shifts a single process would use (the first row of each class in global order), the
 *     moments are summed, and every rank builds the same model from them. Scoring is local.
 *   - KNN: each rank keeps its rows (its shard). A query's k nearest over the union are among the
 *     union of every shard's k nearest, so each rank sends its k smallest distances per query
 *     (an allgather through the sum-allreduce: each rank fills its slot of a zeroed buffer) and
 *     every rank takes the k-th smallest of the R k candidates. Distances are the double-precision
 *     ones of scorer_knn.c, so the score has the bits of the single-process score.
 * Kept apart from scorer.c and scorer_knn.c, which only dispatch here. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "alloc.h"
#include "bank.h"
#include "blas_threads.h"
#include "errors.h"
#include "scorer.h"
#include "validate.h"

/* Queries per KNN exchange: bounds the R x k candidate buffer (doubles) to about 8 MB. */
#define POOD_DIST_CANDIDATES (1 << 20)

protood_status pood_scorer_check_whole(const char *func, const protood_scorer *s)
{
    if (s && s->shards && (!s->reducer.fn || s->reducer.size != s->shards))
        return pood_fail(PROTOOD_E_STATE, func, "the KNN scorer holds one shard of %d ranks and can only score with a "
                         "reducer of that size attached (now: %s of size %d)", (int)s->shards,
                         s->reducer.fn ? "a reducer" : "none", s->reducer.fn ? (int)s->reducer.size : 1);
    return PROTOOD_OK;
}

static protood_status check_fit_args(const char *func, const protood_scorer *s, int64_t n, const float *x,
                                     const int32_t *labels, int64_t n_classes)
{
    protood_status st;
    size_t bytes;
    if ((st = pood_check_count(func, "n", n)) != PROTOOD_OK ||
        (st = pood_checked_size(func, n, s->dim, sizeof(float), &bytes)) != PROTOOD_OK)
        return st;
    if (!x)
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "x is NULL");
    if ((st = s->normalize ? pood_check_rows(func, "x", n, s->dim, x) : pood_check_finite(func, "x", n, s->dim, x)) !=
        PROTOOD_OK)
        return st;
    if (s->kind == PROTOOD_SCORER_MAHALANOBIS) {
        if ((st = pood_check_count(func, "n_classes", n_classes)) != PROTOOD_OK)
            return st;
        if (n_classes > INT32_MAX)
            return pood_fail(PROTOOD_E_SHAPE, func, "n_classes = %lld exceeds %d", (long long)n_classes, INT32_MAX);
        if ((st = pood_check_labels(func, n, labels, n_classes)) != PROTOOD_OK)
            return st;
    }
    return PROTOOD_OK;
}

/* KNN: the rows stay where they are; only the shard sizes are exchanged (k against the union). */
static protood_status fit_knn(const char *func, protood_scorer *s, int64_t n, const float *x, protood_status st)
{
    const pood_reducer *red = &s->reducer;
    const int64_t R = red->size;
    double *buf = pood_calloc((size_t)R + 1, sizeof *buf);
    if (!buf)
        return pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld shard sizes", (long long)R);
    if (st == PROTOOD_OK)
        buf[1 + red->rank] = (double)n;
    if ((st = pood_reduce_agree(func, red, st, buf, R)) != PROTOOD_OK) {
        free(buf);
        return st;
    }
    double total = 0.0;
    for (int64_t r = 0; r < R; r++)
        total += buf[1 + r];
    free(buf);
    if ((double)s->k > total) /* the same verdict on every rank */
        return pood_fail(PROTOOD_E_INVALID_ARG, func, "k = %lld exceeds the %.0f training rows of all %lld ranks",
                         (long long)s->k, total, (long long)R);
    pood_fit *f = NULL;
    pood_model *m = NULL;
    if ((st = pood_fit_begin(func, s, n, 0, &f)) == PROTOOD_OK) {
        pood_fit_add(f, n, x, NULL);
        st = pood_fit_finish(func, f, &m);
    }
    pood_fit_free(f);
    /* commit only where every rank can: a half-fitted union would score wrongly everywhere */
    double flag[1];
    if ((st = pood_reduce_agree(func, red, st, flag, 0)) != PROTOOD_OK) {
        pood_model_free(m);
        return st;
    }
    pood_model_free(s->model);
    s->model = m;
    s->shards = red->size;
    return PROTOOD_OK;
}

/* MAHALANOBIS / SSD. Exchanges: an agreement, the class counts per rank (R x C), an agreement,
 * the shifts (C x dim), the moments (1 + C + C x dim + dim x dim), and a last agreement before the
 * model is swapped in. Every exchange has the same size on every rank (a rank whose arguments
 * failed leaves after the first agreement, together with the others). */
static protood_status fit_gauss(const char *func, protood_scorer *s, int64_t n, const float *x,
                                const int32_t *labels, int64_t n_classes, protood_status st)
{
    const pood_reducer *red = &s->reducer;
    const int64_t R = red->size, d = s->dim;
    const int maha = s->kind == PROTOOD_SCORER_MAHALANOBIS;
    const int64_t nc = maha ? n_classes : 1;
    size_t bytes;
    double *counts = NULL, *shift = NULL, *moments = NULL, flag[1];
    int64_t *owner = NULL;
    pood_gauss_fit *g = NULL;
    pood_model *m = NULL;
    if (st == PROTOOD_OK && (st = pood_checked_size(func, R, nc, sizeof(double), &bytes)) == PROTOOD_OK) {
        counts = pood_calloc(1, bytes);
        owner = pood_malloc((size_t)nc * sizeof *owner);
        if (!counts || !owner)
            st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld x %lld class counts", (long long)R,
                           (long long)nc);
    }
    if ((st = pood_reduce_agree(func, red, st, flag, 0)) != PROTOOD_OK)
        goto done;
    for (int64_t i = 0; i < n; i++)
        counts[red->rank * nc + (maha ? labels[i] : 0)] += 1.0;
    if ((st = pood_reduce(func, red, "class counts", counts, R * nc)) != PROTOOD_OK)
        goto done;
    /* every class needs a row somewhere; its shift comes from the lowest rank that has one */
    for (int64_t c = 0; c < nc; c++) {
        owner[c] = -1;
        for (int64_t r = 0; r < R && owner[c] < 0; r++)
            if (counts[r * nc + c] > 0.0)
                owner[c] = r;
        if (owner[c] < 0) { /* the same verdict on every rank */
            st = pood_fail(PROTOOD_E_INVALID_ARG, func, "labels: class %lld of n_classes = %lld has no rows on any "
                           "of the %lld ranks (every class needs at least one)", (long long)c, (long long)nc,
                           (long long)R);
            goto done;
        }
    }
    if ((st = pood_gauss_fit_begin(func, s->kind, d, s->normalize, nc, &g)) == PROTOOD_OK &&
        (st = pood_checked_size(func, nc, d, sizeof(double), &bytes)) == PROTOOD_OK) {
        shift = pood_calloc(1, bytes);
        moments = pood_malloc((size_t)pood_gauss_fit_moments_count(g) * sizeof *moments);
        if (!shift || !moments)
            st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for the %lld x %lld moments", (long long)d, (long long)d);
    }
    if ((st = pood_reduce_agree(func, red, st, flag, 0)) != PROTOOD_OK)
        goto done;
    for (int64_t c = 0; c < nc; c++) {
        if (owner[c] != red->rank)
            continue;
        for (int64_t i = 0; i < n; i++)
            if (!maha || labels[i] == c) {
                pood_gauss_shift_row(s->normalize, d, x + i * d, shift + c * d);
                break;
            }
    }
    if ((st = pood_reduce(func, red, "class shifts", shift, nc * d)) != PROTOOD_OK)
        goto done;
    pood_gauss_fit_preset_shift(g, shift);
    pood_gauss_fit_add(g, n, x, maha ? labels : NULL);
    int64_t mc = pood_gauss_fit_moments_count(g);
    pood_gauss_fit_moments_pack(g, moments);
    if ((st = pood_reduce(func, red, "moments", moments, mc)) != PROTOOD_OK)
        goto done;
    pood_gauss_fit_moments_unpack(g, moments);
    st = pood_gauss_fit_finish(func, g, &m);   /* the same data on every rank: the same verdict */
    if ((st = pood_reduce_agree(func, red, st, flag, 0)) != PROTOOD_OK)
        goto done;
    pood_model_free(s->model);
    s->model = m;
    m = NULL;
    s->shards = 0;   /* every rank holds the whole model */
done:
    pood_model_free(m);
    pood_gauss_fit_free(g);
    free(counts);
    free(owner);
    free(shift);
    free(moments);
    return st;
}

protood_status pood_scorer_fit_dist(const char *func, protood_scorer *s, int64_t n, const float *x,
                                    const int32_t *labels, int64_t n_classes)
{
    protood_status st = check_fit_args(func, s, n, x, labels, n_classes);
    if (s->kind == PROTOOD_SCORER_KNN)
        return fit_knn(func, s, n, x, st);
    return fit_gauss(func, s, n, x, labels, n_classes, st);
}

/* Put v at the root of the max-heap heap[0 .. size) and sift it down to its place. */
static void heap_sift_down(double *heap, int64_t size, double v)
{
    int64_t at = 0;
    for (;;) {
        int64_t c = 2 * at + 1;
        if (c >= size)
            break;
        if (c + 1 < size && heap[c + 1] > heap[c])
            c++;
        if (!(heap[c] > v))
            break;
        heap[at] = heap[c];
        at = c;
    }
    heap[at] = v;
}

/* The kr smallest of the double distances from `query` to the shard's rows, ascending, in out;
 * heap (kr doubles) is scratch. */
static void shard_nearest(const pood_model *m, int64_t d, const float *query, int64_t kr, double *heap,
                          double *out)
{
    int64_t fill = 0;
    for (int64_t r = 0; r < m->n_rows; r++) {
        const float *x = m->rows + r * d;
        double v = 0.0; /* the distance of scorer_knn.c, term for term */
        for (int64_t j = 0; j < d; j++) {
            double t = (double)query[j] - (double)x[j];
            v += t * t;
        }
        if (fill < kr) { /* sift up */
            int64_t at = fill++;
            while (at > 0 && heap[(at - 1) / 2] < v) {
                heap[at] = heap[(at - 1) / 2];
                at = (at - 1) / 2;
            }
            heap[at] = v;
        } else if (v < heap[0]) {
            heap_sift_down(heap, kr, v); /* replaces the root, the largest */
        }
    }
    /* heap sort in place: repeatedly move the maximum to the end */
    for (int64_t end = kr - 1; end > 0; end--) {
        double v = heap[end];
        heap[end] = heap[0];
        heap_sift_down(heap, end, v);
    }
    memcpy(out, heap, (size_t)kr * sizeof *out);
}

protood_status pood_scorer_score_dist(const char *func, const protood_scorer *s, int64_t m, const float *q,
                                      float *out)
{
    const pood_reducer *red = &s->reducer;
    const int64_t R = red->size, d = s->dim, k = s->k;
    const int64_t kr = s->model->n_rows < k ? s->model->n_rows : k;
    protood_status st = pood_scorer_check_whole(func, s);
    size_t bytes;
    if (st == PROTOOD_OK && (st = pood_check_count(func, "m", m)) == PROTOOD_OK &&
        (st = pood_checked_size(func, m, d, sizeof(float), &bytes)) == PROTOOD_OK) {
        if (!q)
            st = pood_fail(PROTOOD_E_INVALID_ARG, func, "q is NULL");
        else if (!out)
            st = pood_fail(PROTOOD_E_INVALID_ARG, func, "scores_out is NULL");
        else
            st = s->normalize ? pood_check_rows(func, "q", m, d, q) : pood_check_finite(func, "q", m, d, q);
    }
    int64_t per = POOD_DIST_CANDIDATES / (R * k);
    per = per < 1 ? 1 : per > m ? m : per;
    /* the shard's distances run on the OpenMP threads (no BLAS here), each with its own scratch */
    const int threads = pood_max_threads();
    double *cand = NULL, *heap = NULL;
    float *qn = NULL, *scores = NULL;
    if (st == PROTOOD_OK) {
        cand = pood_malloc((size_t)(per * R * k) * sizeof *cand);
        heap = pood_malloc((size_t)threads * (size_t)k * sizeof *heap);
        qn = pood_malloc((size_t)threads * (size_t)d * sizeof *qn);
        scores = pood_malloc((size_t)m * sizeof *scores);
        if (!cand || !heap || !qn || !scores)
            st = pood_fail(PROTOOD_E_NOMEM, func, "no memory for %lld x %lld x %lld candidate distances",
                           (long long)per, (long long)R, (long long)k);
    }
    double flag[1];
    if ((st = pood_reduce_agree(func, red, st, flag, 0)) != PROTOOD_OK)
        goto done;
    for (int64_t q0 = 0; q0 < m; q0 += per) {
        int64_t rows = m - q0 < per ? m - q0 : per;
        memset(cand, 0, (size_t)(rows * R * k) * sizeof *cand);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 8) if (threads > 1 && rows > 8)
        for (int64_t i = 0; i < rows; i++) {
#ifdef _OPENMP
            const int64_t me = omp_get_thread_num();
#else
            const int64_t me = 0;
#endif
            float *qt = qn + me * d;
            const float *qi = q + (q0 + i) * d;
            if (s->normalize)
                pood_unit_rows(1, d, qi, qt);
            else
                memcpy(qt, qi, (size_t)d * sizeof *qt);
            double *slot = cand + (i * R + red->rank) * k;
            shard_nearest(s->model, d, qt, kr, heap + me * k, slot);
            for (int64_t t = kr; t < k; t++) /* a shard smaller than k: its missing neighbours are far */
                slot[t] = INFINITY;
        }
        if ((st = pood_reduce(func, red, "KNN candidate distances", cand, rows * R * k)) != PROTOOD_OK)
            goto done;
        /* the k-th smallest of R ascending lists of k */
        for (int64_t i = 0; i < rows; i++) {
            const double *c = cand + i * R * k;
            double kth = INFINITY;
            /* heap holds each list's read position (as a double index) when R <= k; otherwise scan */
            for (int64_t r = 0; r < R && r < k; r++)
                heap[r] = 0.0;
            if (R <= k) {
                for (int64_t step = 0; step < k; step++) {
                    int64_t best = -1;
                    double bv = INFINITY;
                    for (int64_t r = 0; r < R; r++) {
                        int64_t p = (int64_t)heap[r];
                        if (p < k && (best < 0 || c[r * k + p] < bv)) {
                            best = r;
                            bv = c[r * k + p];
                        }
                    }
                    kth = bv;
                    heap[best] += 1.0;
                }
            } else {
                /* more ranks than k: the k-th smallest of R k values by selection into heap */
                int64_t fill = 0;
                for (int64_t t = 0; t < R * k; t++) {
                    double v = c[t];
                    if (fill < k) {
                        int64_t at = fill++;
                        while (at > 0 && heap[at - 1] > v) {
                            heap[at] = heap[at - 1];
                            at--;
                        }
                        heap[at] = v;
                    } else if (v < heap[k - 1]) {
                        int64_t at = k - 1;
                        while (at > 0 && heap[at - 1] > v) {
                            heap[at] = heap[at - 1];
                            at--;
                        }
                        heap[at] = v;
                    }
                }
                kth = heap[k - 1];
            }
            scores[q0 + i] = (float)-kth;
        }
    }
    memcpy(out, scores, (size_t)m * sizeof *out);
done:
    free(cand);
    free(heap);
    free(qn);
    free(scores);
    return st;
}
