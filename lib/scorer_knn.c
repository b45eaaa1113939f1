/* Exact KNN score (Sun et al. 2022): -||q - x_(k)||^2, the negative squared distance to the k-th
 * nearest training row.
 *
 * One tile of queries at a time: the training rows are swept in tiles of tile_cols, each sweep a
 * single cblas_sgemm into a buffer that fits in L2 and is reused, followed by a scan that
 * keeps, per query, the k smallest values in a bounded reservoir (below). The m x n distance matrix
 * never exists.
 *
 * "Computed carefully": the GEMM only ranks. It ranks by v = |x|^2 - 2 q.x in float32 (|q|^2 is the
 * same for every candidate of a query; the GEMM adds -2 q.x onto rows of |x|^2), whose rounding
 * error has the a-priori bound eps below;
 * 2 - 2 q.x style cancellation and the GEMM's blocking (its bits change with the tile shape) are
 * then kept out of the result like this:
 *   - rows ranked within 2 eps above the k-th value are kept too (the "band");
 *   - at the end, with r the exact k-th smallest v: kept rows with v < r - 2 eps are certainly
 *     among the k nearest and nearer than the k-th (distance below r - eps + |q|^2, the k-th is at
 *     least r - eps + |q|^2); rows not kept have v >= r + 2 eps and are certainly farther. The rows
 *     in between are the only ones that can be the k-th, so their distances are recomputed in
 *     double from the stored rows and the right order statistic taken.
 * The score is therefore the k-th smallest of the double-precision distances, bit for bit whatever
 * the tiles, the thread count or the BLAS. If the band crowds the reservoir below (many
 * near-duplicates at the boundary), that query falls back to an exact double sweep over all rows. */
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bank.h"
#include "scorer.h"
#include "simd.h"

/* Per query, a reservoir of RES_CAP(k) = 2k + 64 (value, row) pairs holds every row ranked below
 * the current limit (an upper bound of the k-th value, plus the band). When it fills, compact()
 * lowers the limit and drops the rows beyond it. Appending is O(1), a compaction O(capacity)
 * every ~k admissions: unlike a binary heap, whose k log k sifting dominated at k = 300 (CIDER's
 * setting), the cost hardly grows with k. A query whose band alone nearly fills the reservoir
 * (many near-duplicates at the boundary) stops collecting and takes the exact fallback. BLOCK
 * slots of slack let a whole filter block be appended before the capacity is checked. */
#define RES_CAP(k) (2 * (k) + 64)
#define RES_MIN_FREE 32
#define BLOCK 16               /* rows per filter block; also the reservoir's slack beyond RES_CAP */
#define RES_SLOTS(k) (RES_CAP(k) + BLOCK)

typedef struct knn_layout {
    size_t queries, vals, res_val, res_idx, res_n, limit, width, cand;
    pood_layout l;
} knn_layout;

static knn_layout layout(const protood_scorer *s, int64_t tile_rows)
{
    knn_layout k = {0};
    int64_t cols = s->tile_cols < s->model->n_rows ? s->tile_cols : s->model->n_rows;
    k.queries = pood_layout_add(&k.l, tile_rows, s->dim, sizeof(float));
    k.vals = pood_layout_add(&k.l, tile_rows, cols, sizeof(float));
    k.res_val = pood_layout_add(&k.l, tile_rows, RES_SLOTS(s->k), sizeof(float));
    k.res_idx = pood_layout_add(&k.l, tile_rows, RES_SLOTS(s->k), sizeof(int64_t));
    k.res_n = pood_layout_add(&k.l, tile_rows, 1, sizeof(int64_t));
    k.limit = pood_layout_add(&k.l, tile_rows, 1, sizeof(float));
    k.width = pood_layout_add(&k.l, tile_rows, 1, sizeof(float));
    k.cand = pood_layout_add(&k.l, RES_SLOTS(s->k), 1, sizeof(double));
    return k;
}

size_t pood_knn_scratch(const protood_scorer *s, int64_t tile_rows)
{
    knn_layout k = layout(s, tile_rows);
    return k.l.overflow ? 0 : k.l.size;
}

size_t pood_knn_bytes_per_query(int64_t k)
{
    return (size_t)RES_SLOTS(k) * (sizeof(float) + sizeof(int64_t));
}

/* Reorder val[0..n) (with idx alongside) so that val[kth] holds the value of rank kth (0-based),
 * with no larger value before it and no smaller one after it. Hoare partitioning around a
 * median of three: equal values split evenly, so duplicates do not degrade it. */
static void select_rank(float *val, int64_t *idx, int64_t n, int64_t kth)
{
    int64_t lo = 0, hi = n - 1;
    while (hi > lo) {
        float a = val[lo], b = val[lo + (hi - lo) / 2], c = val[hi];
        float pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (val[i] < pivot)
                i++;
            while (val[j] > pivot)
                j--;
            if (i <= j) {
                float tv = val[i];
                val[i] = val[j];
                val[j] = tv;
                int64_t ti = idx[i];
                idx[i] = idx[j];
                idx[j] = ti;
                i++;
                j--;
            }
        }
        if (kth <= j)
            hi = j;
        else if (kth >= i)
            lo = i;
        else
            break;
    }
}

/* Per-query reservoir, pointing into the tile's scratch. */
typedef struct query_sel {
    float *val;
    int64_t *idx;
    int64_t n;        /* -1: overflowed, the query takes the exact fallback */
    float limit;      /* admit rows ranked below this: k-th value + width (+inf until first full) */
    float width;      /* 2 eps */
} query_sel;

/* Tighten the limit to (about) the reservoir's k-th value and drop what falls beyond it. The
 * limit only has to be an upper bound of the true k-th value plus the width, so an exact
 * quickselect (branchy, the cost that dominated at large k) is not needed: a 256-bin histogram
 * finds the bin holding the k-th value, and t = the largest value in the bins up to it has at
 * least k values at or below it. Branch-free passes; the exact k-th is taken once, at the end. */
static void compact(query_sel *q, int64_t k)
{
    enum { BINS = 256 };
    const int64_t n = q->n;
    float *val = q->val;
    float lo = val[0], hi = val[0];
    POOD_SIMD_MAX(hi)
    for (int64_t j = 0; j < n; j++)
        hi = val[j] > hi ? val[j] : hi;
    POOD_SIMD_MIN(lo)
    for (int64_t j = 0; j < n; j++)
        lo = val[j] < lo ? val[j] : lo;
    float t = hi; /* all n >= k values are <= hi: right when they (nearly) coincide */
    if ((double)hi - (double)lo > 1e-30) {
        /* Any binning that never decreases with v will do, as long as both passes use the same
         * one: bin(v) = min((int)((v - lo) * scale), BINS - 1), monotone in v. */
        const float scale = (float)((BINS - 1) / ((double)hi - (double)lo));
        int32_t count[BINS] = {0};
        for (int64_t j = 0; j < n; j++) {
            int b = (int)((val[j] - lo) * scale);
            count[b < BINS - 1 ? b : BINS - 1]++;
        }
        int64_t seen = 0;
        int bin = 0;
        while ((seen += count[bin]) < k)
            bin++;
        t = lo;
        POOD_SIMD_MAX(t)
        for (int64_t j = 0; j < n; j++) {
            float v = val[j];
            int b = (int)((v - lo) * scale);
            float c = (b < BINS - 1 ? b : BINS - 1) <= bin ? v : lo;
            t = c > t ? c : t;
        }
    }
    q->limit = t + q->width;
    int64_t kept = 0;
    for (int64_t j = 0; j < n; j++) {
        float v = val[j];
        val[kept] = v;
        q->idx[kept] = q->idx[j];
        kept += v < q->limit;
    }
    q->n = kept;
    if (kept > RES_CAP(k) - RES_MIN_FREE) { /* the band alone nearly fills it */
        q->n = -1;
        q->limit = -INFINITY; /* nothing passes the filter any more */
    }
}

/* Bit t set for each of the BLOCK values below the limit. */
static unsigned block_mask(const float *v, float limit)
{
#if defined(__SSE2__) && BLOCK == 16
    /* x86-64 always has SSE2; movemask turns four comparisons into bits in one instruction, and
     * the usual answer (no row passes) costs a single one. */
    const __m128 lim = _mm_set1_ps(limit);
    __m128 c0 = _mm_cmplt_ps(_mm_loadu_ps(v), lim), c1 = _mm_cmplt_ps(_mm_loadu_ps(v + 4), lim);
    __m128 c2 = _mm_cmplt_ps(_mm_loadu_ps(v + 8), lim), c3 = _mm_cmplt_ps(_mm_loadu_ps(v + 12), lim);
    if (!_mm_movemask_ps(_mm_or_ps(_mm_or_ps(c0, c1), _mm_or_ps(c2, c3))))
        return 0;
    return (unsigned)_mm_movemask_ps(c0) | (unsigned)_mm_movemask_ps(c1) << 4 |
           (unsigned)_mm_movemask_ps(c2) << 8 | (unsigned)_mm_movemask_ps(c3) << 12;
#else
    unsigned mask = 0;
    for (int t = 0; t < BLOCK; t++)
        mask |= (unsigned)(v[t] < limit) << t;
    return mask;
#endif
}

/* Offer one query's ranking values v = |x|^2 - 2 q.x for training rows [base, base + cols). Once
 * the reservoir has been full most rows fall beyond the limit: each block of rows is tested at
 * once and only the rows that pass are touched. */
static void select_row(query_sel *q, const float *v, int64_t cols, int64_t base, int64_t k)
{
    int64_t j = 0;
    for (; j + BLOCK <= cols && q->n >= 0; j += BLOCK) {
        unsigned mask = block_mask(v + j, q->limit);
        if (!mask)
            continue;
        int64_t n = q->n;
        while (mask) {
            int t = __builtin_ctz(mask);
            mask &= mask - 1;
            q->val[n] = v[j + t];
            q->idx[n++] = base + j + t;
        }
        q->n = n;
        if (n >= RES_CAP(k)) /* the reservoir has BLOCK slots of slack beyond RES_CAP */
            compact(q, k);
    }
    for (; j < cols && q->n >= 0; j++) {
        if (v[j] < q->limit) {
            q->val[q->n] = v[j];
            q->idx[q->n++] = base + j;
            if (q->n >= RES_CAP(k))
                compact(q, k);
        }
    }
}

static double distance(const float *a, const float *b, int64_t d)
{
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) {
        double t = (double)a[j] - (double)b[j];
        s += t * t;
    }
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The k-th smallest double distance from `query` to every row: the fallback for crowded
 * boundaries, with a max-heap of k doubles in `heap` (O(n d), taken only by such queries). */
static double exact_kth(const pood_model *m, const float *query, int64_t d, int64_t k, double *heap)
{
    for (int64_t r = 0; r < m->n_rows; r++) {
        double v = distance(query, m->rows + r * d, d);
        int64_t i;
        if (r < k) {
            for (i = r; i > 0 && heap[(i - 1) / 2] < v; i = (i - 1) / 2)
                heap[i] = heap[(i - 1) / 2];
        } else if (v < heap[0]) {
            for (i = 0;;) {
                int64_t c = 2 * i + 1;
                if (c >= k)
                    break;
                if (c + 1 < k && heap[c + 1] > heap[c])
                    c++;
                if (heap[c] <= v)
                    break;
                heap[i] = heap[c];
                i = c;
            }
        } else {
            continue;
        }
        heap[i] = v;
    }
    return heap[0];
}

void pood_knn_tile(const protood_scorer *s, int64_t rows, const float *q, float *out, void *scratch)
{
    const pood_model *m = s->model;
    const int64_t d = s->dim, n = m->n_rows, k = s->k, cap = RES_SLOTS(k);
    const int64_t tile_cols = s->tile_cols < n ? s->tile_cols : n;
    knn_layout lay = layout(s, rows);
    char *base = scratch;
    float *qn = (float *)(base + lay.queries);
    float *vals = (float *)(base + lay.vals);
    float *res_val = (float *)(base + lay.res_val);
    int64_t *res_idx = (int64_t *)(base + lay.res_idx);
    int64_t *res_n = (int64_t *)(base + lay.res_n);
    float *limit = (float *)(base + lay.limit);
    float *width = (float *)(base + lay.width);
    double *cand = (double *)(base + lay.cand);

    if (s->normalize)
        pood_unit_rows(rows, d, q, qn);
    else
        memcpy(qn, q, (size_t)rows * (size_t)d * sizeof(float));
    /* v is fl(|x|^2) (one rounding of the double norm) plus d products -2 q_j x_j (exact scaling)
     * summed in any order: |v - exact| <= gamma_{d+1} (|x|^2 + 2 sum |q_j x_j|) + u |x|^2
     * <= eps = 2 gamma_{d+2} (|x|^2 + 2 |q| |x|), gamma_n = n u / (1 - n u), u = 2^-24. The band
     * is 2 eps, doubled again for safety: a wider band costs only a few more exact distances. */
    const double u = FLT_EPSILON / 2, nu = (double)(d + 2) * u, gamma = nu / (1.0 - nu);
    for (int64_t i = 0; i < rows; i++) {
        double qq = 0.0;
        for (int64_t j = 0; j < d; j++)
            qq += (double)qn[i * d + j] * qn[i * d + j];
        double eps = 2.0 * gamma * (m->row_sq_max + 2.0 * sqrt(qq) * m->row_norm_max);
        width[i] = (float)(4.0 * eps) + FLT_MIN;
        limit[i] = INFINITY;
        res_n[i] = 0;
    }

    for (int64_t c0 = 0; c0 < n; c0 += tile_cols) {
        int64_t cols = n - c0 < tile_cols ? n - c0 : tile_cols;
        /* v = |x|^2 - 2 q.x straight from the GEMM (beta = 1 on rows of |x|^2): the scan then only
         * compares. The bound on v's rounding below covers this summation too. */
        for (int64_t i = 0; i < rows; i++)
            memcpy(vals + i * cols, m->row_sq + c0, (size_t)cols * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)d, -2.0f, qn, (int)d,
                    m->rows + c0 * d, (int)d, 1.0f, vals, (int)cols);
        for (int64_t i = 0; i < rows; i++) {
            query_sel sel = {res_val + i * cap, res_idx + i * cap, res_n[i], limit[i], width[i]};
            select_row(&sel, vals + i * cols, cols, c0, k);
            res_n[i] = sel.n;
            limit[i] = sel.limit;
        }
    }

    for (int64_t i = 0; i < rows; i++) {
        const float *query = qn + i * d;
        if (res_n[i] < 0) {
            out[i] = (float)-exact_kth(m, query, d, k, cand);
            continue;
        }
        float *val = res_val + i * cap;
        int64_t *idx = res_idx + i * cap;
        select_rank(val, idx, res_n[i], k - 1);
        const float root = val[k - 1], w = width[i];
        int64_t sure = 0, nc = 0; /* rows certainly nearer than the k-th; candidates */
        for (int64_t r = 0; r < res_n[i]; r++) {
            if (val[r] < root - w)
                sure++;
            else if (val[r] < root + w)
                cand[nc++] = distance(query, m->rows + idx[r] * d, d);
        }
        if (nc > 1)
            qsort(cand, (size_t)nc, sizeof *cand, cmp_double);
        out[i] = (float)-cand[k - sure - 1];
    }
}
